//! Tamper evidence: every aggregate's hash chain, and signed checkpoints of the global stream.
//!
//! - The chain (see `gatehouse_domain::chain`): each event records the link of its predecessor in
//!   the aggregate, so changing, removing, inserting or reordering an event breaks a link.
//! - A checkpoint (`checkpoint` subcommand) signs with Ed25519 the position reached, the number of
//!   events up to it, the running digest of the stream up to it
//!   (`d(n) = SHA-256(d(n-1) || canonical(event n))`, covering metadata and the global order too),
//!   and the chain head of every aggregate that changed since the previous checkpoint. The heads
//!   let `verify` pin what a chain alone cannot: an altered or removed *last* event, and an event
//!   slipped in below a checkpoint with a correctly recomputed link.
//!
//! `verify` walks the stream once (memory: one entry per aggregate), then diagnoses each suspect
//! aggregate from its full event list and names the event: `ALTERED`, `DELETED`, `REORDERED` or
//! `INSERTED`, with the aggregate id and sequence.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use chrono::Utc;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use gatehouse_domain::chain::{write_canonical, ChainLink, GENESIS};
use gatehouse_store::{Store, StoredEvent, StreamPosition};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::source::{self, Error, Result, Stream};
use gatehouse_replay::report::{CheckpointVerdict, TamperFinding, VerifyReport};

/// Environment variable holding the checkpoint signing key (64 hex characters, an Ed25519 seed).
pub const KEY_ENV: &str = "GATEHOUSE_CHECKPOINT_KEY";
/// Environment variable holding the public key `verify` trusts (64 hex characters).
pub const PUBLIC_KEY_ENV: &str = "GATEHOUSE_CHECKPOINT_PUBLIC_KEY";

/// The next running digest of the stream after `event`.
pub fn stream_link(prev: &str, event: &StoredEvent) -> String {
    let record = json!({
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "sequence": event.sequence,
        "event_type": event.event_type,
        "event_version": event.event_version,
        "payload": event.payload,
        "metadata": event.metadata,
    });
    let mut canonical = Vec::with_capacity(512);
    write_canonical(&record, &mut canonical);
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(&canonical);
    hex::encode(h.finalize())
}

/// The link an event's payload records for its predecessor.
fn recorded_prev(payload: &Value) -> Option<&str> {
    payload.get("prev").and_then(Value::as_str)
}

/// The chain head after `event`, from its own recorded link (no history needed).
pub fn head_after(payload: &Value) -> String {
    ChainLink(recorded_prev(payload).unwrap_or_default().to_string())
        .next(payload)
        .0
}

/// Reads a 32-byte hex key.
fn key_bytes(hex_text: &str, what: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|_| Error::Usage(format!("{what} must be 64 hex characters")))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| Error::Usage(format!("{what} must be 64 hex characters")))
}

/// The signing key: from `key_file` (hex seed) or `GATEHOUSE_CHECKPOINT_KEY`.
pub fn signing_key(key_file: Option<&Path>) -> Result<SigningKey> {
    let text = match key_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?,
        None => std::env::var(KEY_ENV).map_err(|_| {
            Error::Usage(format!(
                "no signing key: set {KEY_ENV} (64 hex characters) or pass --key-file"
            ))
        })?,
    };
    Ok(SigningKey::from_bytes(&key_bytes(
        &text,
        "the checkpoint key",
    )?))
}

/// The public key `verify` trusts: `--public-key`, `GATEHOUSE_CHECKPOINT_PUBLIC_KEY`, or the one
/// derived from `GATEHOUSE_CHECKPOINT_KEY`; `None` when none is configured.
pub fn trusted_key(public_key: Option<&str>) -> Result<Option<VerifyingKey>> {
    if let Some(hex_text) = public_key
        .map(str::to_string)
        .or_else(|| std::env::var(PUBLIC_KEY_ENV).ok())
    {
        let bytes = key_bytes(&hex_text, "the checkpoint public key")?;
        return VerifyingKey::from_bytes(&bytes)
            .map(Some)
            .map_err(|_| Error::Usage("the checkpoint public key is not a valid point".into()));
    }
    if std::env::var(KEY_ENV).is_ok() {
        return Ok(Some(signing_key(None)?.verifying_key()));
    }
    Ok(None)
}

/// A stored checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Row id.
    pub id: i64,
    /// Position signed.
    pub position: StreamPosition,
    /// Events up to and including it.
    pub count: i64,
    /// Running digest up to it.
    pub digest: String,
    /// Digest of the heads recorded with it.
    pub heads_digest: String,
    /// Signer's public key (hex).
    pub public_key: String,
    /// Signature (hex).
    pub signature: String,
    /// When it was made.
    pub created_ms: i64,
}

impl Checkpoint {
    /// The signed bytes.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "gatehouse-stream-checkpoint/v1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.position.tx,
            self.position.pos,
            self.count,
            self.digest,
            self.heads_digest,
            self.created_ms
        )
        .into_bytes()
    }
}

/// Heads of aggregates: `(type, id) -> (sequence, head)`.
type Heads = BTreeMap<(String, String), (i64, String)>;

fn heads_digest(heads: &Heads) -> String {
    let mut h = Sha256::new();
    for ((t, id), (seq, head)) in heads {
        h.update(format!("{t}\t{id}\t{seq}\t{head}\n").as_bytes());
    }
    hex::encode(h.finalize())
}

async fn load_checkpoints(store: &Store) -> Result<Vec<Checkpoint>> {
    let rows = sqlx::query(
        "select id, tx_id, position, event_count, digest, heads_digest, public_key, signature, created_ms
           from stream_checkpoints order by tx_id, position, id",
    )
    .fetch_all(store.any())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                id: r.try_get("id")?,
                position: StreamPosition {
                    tx: r.try_get("tx_id")?,
                    pos: r.try_get("position")?,
                },
                count: r.try_get("event_count")?,
                digest: r.try_get("digest")?,
                heads_digest: r.try_get("heads_digest")?,
                public_key: r.try_get("public_key")?,
                signature: r.try_get("signature")?,
                created_ms: r.try_get("created_ms")?,
            })
        })
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(Error::from)
}

async fn load_heads(store: &Store, checkpoint_id: i64) -> Result<Heads> {
    let rows = sqlx::query(
        "select aggregate_type, aggregate_id, sequence, head from stream_checkpoint_heads
          where checkpoint_id = $1",
    )
    .bind(checkpoint_id)
    .fetch_all(store.any())
    .await?;
    let mut heads = Heads::new();
    for r in rows {
        heads.insert(
            (r.try_get("aggregate_type")?, r.try_get("aggregate_id")?),
            (r.try_get("sequence")?, r.try_get("head")?),
        );
    }
    Ok(heads)
}

/// Signs a checkpoint at the current end of the stream; `None` when nothing is new since the last.
pub async fn checkpoint(store: &Store, key: &SigningKey) -> Result<Option<Checkpoint>> {
    let last = load_checkpoints(store).await?.into_iter().last();
    let (mut position, mut count, mut digest) = match &last {
        Some(c) => (c.position, c.count, c.digest.clone()),
        None => (StreamPosition::default(), 0, GENESIS.to_string()),
    };
    let pending = store.count_after(position).await?;
    let bar = source::progress(u64::try_from(pending).unwrap_or(0), "checkpoint");
    let mut heads = Heads::new();
    let mut stream = Stream::new(store, position);
    while let Some(batch) = stream.next_batch().await? {
        bar.inc(batch.len() as u64);
        for e in batch {
            digest = stream_link(&digest, &e);
            count += 1;
            position = e.position;
            heads.insert(
                (e.aggregate_type.clone(), e.aggregate_id.clone()),
                (e.sequence, head_after(&e.payload)),
            );
        }
    }
    bar.finish_and_clear();
    if heads.is_empty() {
        return Ok(None);
    }
    let mut cp = Checkpoint {
        id: 0,
        position,
        count,
        digest,
        heads_digest: heads_digest(&heads),
        public_key: hex::encode(key.verifying_key().as_bytes()),
        signature: String::new(),
        created_ms: Utc::now().timestamp_millis(),
    };
    cp.signature = hex::encode(key.sign(&cp.message()).to_bytes());
    let mut tx = store.any().begin().await?;
    let id: i64 = sqlx::query_scalar(
        "insert into stream_checkpoints
            (tx_id, position, event_count, digest, heads_digest, public_key, signature, created_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning id",
    )
    .bind(cp.position.tx)
    .bind(cp.position.pos)
    .bind(cp.count)
    .bind(&cp.digest)
    .bind(&cp.heads_digest)
    .bind(&cp.public_key)
    .bind(&cp.signature)
    .bind(cp.created_ms)
    .fetch_one(&mut *tx)
    .await?;
    for ((t, agg), (seq, head)) in &heads {
        sqlx::query(
            "insert into stream_checkpoint_heads (checkpoint_id, aggregate_type, aggregate_id, sequence, head)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(t)
        .bind(agg)
        .bind(seq)
        .bind(head)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    cp.id = id;
    Ok(Some(cp))
}

/// What was done to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Its content or its recorded link changed.
    Altered,
    /// It is gone.
    Deleted,
    /// It sits at the wrong place in its aggregate.
    Reordered,
    /// It was never appended by Gatehouse.
    Inserted,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Altered => "ALTERED",
            Self::Deleted => "DELETED",
            Self::Reordered => "REORDERED",
            Self::Inserted => "INSERTED",
        }
    }
}

/// One pinned tampering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What happened.
    pub kind: Kind,
    /// The event's sequence in its aggregate.
    pub sequence: i64,
    /// Why the tool says so.
    pub detail: String,
}

/// One event of an aggregate under diagnosis.
#[derive(Debug, Clone)]
pub struct Ev {
    /// Sequence.
    pub sequence: i64,
    /// Global position.
    pub position: StreamPosition,
    /// Payload as stored.
    pub payload: Value,
}

/// What the signed checkpoints say about one aggregate: per checkpoint, the range of positions it
/// covers beyond the previous one, and this aggregate's head if it changed in that range.
#[derive(Debug, Clone)]
pub struct CheckpointView {
    /// Checkpoint id.
    pub id: i64,
    /// Position of the previous checkpoint (exclusive).
    pub after: StreamPosition,
    /// Position of this checkpoint (inclusive).
    pub upto: StreamPosition,
    /// `(sequence, head)` recorded for this aggregate, if any.
    pub head: Option<(i64, String)>,
}

/// Pins what was done to one aggregate's events (sorted by sequence), from its chain and the
/// signed checkpoints. Pure, so that each rule is unit-tested.
pub fn diagnose(events: &[Ev], checkpoints: &[CheckpointView]) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    let prev = |i: usize| events.get(i).and_then(|e| recorded_prev(&e.payload));
    let mut head = GENESIS.to_string();
    let mut head_before_last: Option<String> = None;
    let mut expected = 1i64;
    let mut i = 0usize;
    while let Some(e) = events.get(i) {
        let rec = recorded_prev(&e.payload);
        if e.sequence > expected {
            for missing in expected..e.sequence {
                findings.push(Finding {
                    kind: Kind::Deleted,
                    sequence: missing,
                    detail: format!(
                        "sequence {missing} is missing between {} and {}",
                        expected - 1,
                        e.sequence
                    ),
                });
            }
            // Carry on from the link the next event recorded, to find later tampering too.
            if let Some(r) = rec {
                head = r.to_string();
            }
        }
        if rec == Some(head.as_str()) {
            head_before_last = Some(head.clone());
            head = ChainLink(head).next(&e.payload).0;
            expected = e.sequence + 1;
            i += 1;
            continue;
        }
        // The event does not link to the head so far. Is the missing successor further on?
        if let Some(j) = (i + 1..events.len()).find(|&j| prev(j) == Some(head.as_str())) {
            let after_j = ChainLink(head.clone()).next(&events[j].payload).0;
            if rec == Some(after_j.as_str()) {
                findings.push(Finding {
                    kind: Kind::Reordered,
                    sequence: e.sequence,
                    detail: format!(
                        "the event stored at sequence {} belongs at sequence {}, and this one after it",
                        events[j].sequence, e.sequence
                    ),
                });
                head = ChainLink(after_j).next(&e.payload).0;
                head_before_last = None;
                expected = events[j].sequence + 1;
                i = j + 1;
            } else {
                for k in i..j {
                    findings.push(Finding {
                        kind: Kind::Inserted,
                        sequence: events[k].sequence,
                        detail: format!(
                            "it links to no event of the chain, which resumes intact at sequence {}",
                            events[j].sequence
                        ),
                    });
                }
                expected = events[j].sequence;
                i = j;
            }
            continue;
        }
        if head_before_last.is_some() && rec == head_before_last.as_deref() {
            let inserted = events[i - 1].sequence;
            findings.push(Finding {
                kind: Kind::Inserted,
                sequence: inserted,
                detail: format!(
                    "sequence {} links past it to sequence {}",
                    e.sequence,
                    inserted - 1
                ),
            });
            head = ChainLink(rec.unwrap_or_default().to_string())
                .next(&e.payload)
                .0;
            expected = e.sequence + 1;
            i += 1;
            continue;
        }
        // Altered: either the predecessor's content (its successor's link no longer matches it)
        // or this event's own recorded link (then its successor does not match it either).
        let resynced = rec.map(|r| ChainLink(r.to_string()).next(&e.payload).0);
        let next_links = events.get(i + 1).is_some_and(|n| {
            n.sequence == e.sequence + 1 && recorded_prev(&n.payload) == resynced.as_deref()
        });
        let own_link_changed = i == 0 || (i + 1 < events.len() && !next_links);
        let (sequence, detail) = if own_link_changed {
            (
                e.sequence,
                format!(
                    "its recorded link {} matches no predecessor (expected {head})",
                    rec.unwrap_or("(none)")
                ),
            )
        } else {
            let p = events[i - 1].sequence;
            (
                p,
                format!(
                    "its content no longer hashes to the link sequence {} recorded",
                    e.sequence
                ),
            )
        };
        findings.push(Finding {
            kind: Kind::Altered,
            sequence,
            detail,
        });
        head_before_last = rec.map(str::to_string);
        head = if own_link_changed {
            // Its content is as it was: the successor's record is the head to carry on from.
            prev(i + 1).map(str::to_string).or(resynced).unwrap_or(head)
        } else {
            resynced.unwrap_or(head)
        };
        expected = e.sequence + 1;
        i += 1;
    }

    // What the signed checkpoints recorded.
    let pinned: HashSet<i64> = findings.iter().map(|f| f.sequence).collect();
    let mut extra = Vec::new();
    for cp in checkpoints {
        let span = events
            .iter()
            .filter(|e| e.position > cp.after && e.position <= cp.upto);
        match &cp.head {
            None => {
                for e in span {
                    extra.push(Finding {
                        kind: Kind::Inserted,
                        sequence: e.sequence,
                        detail: format!(
                            "it stands below signed checkpoint #{} which records no change to this aggregate",
                            cp.id
                        ),
                    });
                }
            }
            Some((seq, recorded)) => {
                for e in span.filter(|e| e.sequence > *seq) {
                    extra.push(Finding {
                        kind: Kind::Inserted,
                        sequence: e.sequence,
                        detail: format!(
                            "signed checkpoint #{} recorded this aggregate's last event as sequence {seq}",
                            cp.id
                        ),
                    });
                }
                match events.iter().find(|e| e.sequence == *seq) {
                    None => extra.push(Finding {
                        kind: Kind::Deleted,
                        sequence: *seq,
                        detail: format!("signed checkpoint #{} recorded it", cp.id),
                    }),
                    Some(e) if head_after(&e.payload) != *recorded => extra.push(Finding {
                        kind: Kind::Altered,
                        sequence: *seq,
                        detail: format!(
                            "its hash differs from the one signed in checkpoint #{}",
                            cp.id
                        ),
                    }),
                    Some(_) => {}
                }
            }
        }
    }
    for f in extra {
        if !pinned.contains(&f.sequence)
            && !findings
                .iter()
                .any(|g| g.kind == f.kind && g.sequence == f.sequence)
        {
            findings.push(f);
        }
    }
    let mut seen = HashSet::new();
    findings.retain(|f| seen.insert((f.kind, f.sequence)));
    findings
}

#[derive(Default)]
struct AggState {
    last_sequence: i64,
    /// Head computed along the chain from genesis.
    head: String,
    /// Head after the last event, from its own recorded link.
    recorded_head: String,
    broken: bool,
}

/// Options of `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Public key (64 hex characters) that must have signed the checkpoints; default
    /// GATEHOUSE_CHECKPOINT_PUBLIC_KEY, or the key derived from GATEHOUSE_CHECKPOINT_KEY.
    #[arg(long)]
    pub public_key: Option<String>,
    /// Machine-readable report on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs the verification; returns the report and whether everything held.
pub async fn verify(store: &Store, args: &VerifyArgs) -> Result<(VerifyReport, Vec<String>, bool)> {
    let trusted = trusted_key(args.public_key.as_deref())?;
    let checkpoints = load_checkpoints(store).await?;
    let mut lines = Vec::new();
    let mut aggs: HashMap<(String, String), AggState> = HashMap::new();
    let mut suspects: BTreeSet<(String, String)> = BTreeSet::new();
    let mut touched: HashSet<(String, String)> = HashSet::new();
    let mut cp_reports = Vec::new();
    let mut cp_failed = 0usize;
    let mut next_cp = 0usize;
    let mut digest = GENESIS.to_string();
    let mut count = 0i64;
    let mut broken_lines = Vec::new();

    let total = store.count_after(StreamPosition::default()).await?;
    let bar = source::progress(u64::try_from(total).unwrap_or(0), "verify");
    let mut stream = Stream::new(store, StreamPosition::default());
    let mut batch_opt = stream.next_batch().await?;
    loop {
        let batch = batch_opt.take().unwrap_or_default();
        let at_end = batch.is_empty();
        for e in batch.iter().map(Some).chain(at_end.then_some(None)) {
            // Settle every checkpoint this event is past (all of them at the end).
            while let Some(cp) = checkpoints.get(next_cp) {
                if e.is_some_and(|e| e.position <= cp.position) {
                    break;
                }
                let heads = load_heads(store, cp.id).await?;
                let (report, ok) = settle(cp, &heads, trusted.as_ref(), count, &digest);
                for key in heads.keys() {
                    let state = aggs.get(key);
                    let (seq, head) = &heads[key];
                    if state.is_none_or(|s| s.last_sequence != *seq || s.recorded_head != *head) {
                        suspects.insert(key.clone());
                    }
                }
                for key in touched.drain() {
                    if !heads.contains_key(&key) {
                        suspects.insert(key);
                    }
                }
                if !ok {
                    cp_failed += 1;
                }
                lines.push(report.text.clone());
                cp_reports.push(report);
                next_cp += 1;
            }
            let Some(e) = e else { break };
            digest = stream_link(&digest, e);
            count += 1;
            let key = (e.aggregate_type.clone(), e.aggregate_id.clone());
            touched.insert(key.clone());
            let state = aggs.entry(key.clone()).or_insert_with(|| AggState {
                head: GENESIS.to_string(),
                ..AggState::default()
            });
            let rec = recorded_prev(&e.payload);
            if !state.broken {
                if e.sequence != state.last_sequence + 1 || rec != Some(state.head.as_str()) {
                    state.broken = true;
                    broken_lines.push(format!(
                        "BROKEN {} at sequence {}: expected prev {} after sequence {}, found {}",
                        e.aggregate_id,
                        e.sequence,
                        state.head,
                        state.last_sequence,
                        rec.unwrap_or("(none)")
                    ));
                    suspects.insert(key);
                } else {
                    state.head = ChainLink(state.head.clone()).next(&e.payload).0;
                }
            }
            state.last_sequence = e.sequence;
            state.recorded_head = head_after(&e.payload);
        }
        bar.inc(batch.len() as u64);
        if at_end {
            break;
        }
        batch_opt = stream.next_batch().await?;
    }
    bar.finish_and_clear();
    let broken = aggs.values().filter(|s| s.broken).count();

    // Diagnose each suspect aggregate from its full history.
    let mut findings = Vec::new();
    for (agg_type, agg_id) in &suspects {
        let stored = source::aggregate_events(store, agg_type, agg_id).await?;
        let events: Vec<Ev> = stored
            .into_iter()
            .map(|e| Ev {
                sequence: e.sequence,
                position: e.position,
                payload: e.payload,
            })
            .collect();
        let views = checkpoint_views(store, &checkpoints, agg_type, agg_id).await?;
        for f in diagnose(&events, &views) {
            findings.push(TamperFinding {
                kind: f.kind.label().to_ascii_lowercase(),
                aggregate_type: agg_type.clone(),
                aggregate_id: agg_id.clone(),
                sequence: f.sequence,
                detail: f.detail.clone(),
            });
            lines.push(format!(
                "{} {agg_id} sequence {}: {}",
                f.kind.label(),
                f.sequence,
                f.detail
            ));
        }
    }
    lines.extend(broken_lines);
    lines.push(format!(
        "verified {count} events in {} aggregates: {broken} broken",
        aggs.len()
    ));
    lines.push(format!(
        "checkpoints: {} checked, {cp_failed} failed{}",
        checkpoints.len(),
        match (&trusted, checkpoints.is_empty()) {
            (None, false) =>
                "; no trusted public key configured, signatures checked against the stored keys only",
            _ => "",
        }
    ));
    let ok = broken == 0 && findings.is_empty() && cp_failed == 0;
    let report = VerifyReport {
        ok,
        events: count,
        aggregates: aggs.len() as u64,
        broken_aggregates: broken as u64,
        findings,
        checkpoints: cp_reports,
        trusted_key: trusted.map(|k| hex::encode(k.as_bytes())),
    };
    Ok((report, lines, ok))
}

/// Checks one checkpoint against the digest and count reached at its position.
fn settle(
    cp: &Checkpoint,
    heads: &Heads,
    trusted: Option<&VerifyingKey>,
    count: i64,
    digest: &str,
) -> (CheckpointVerdict, bool) {
    let stored_key = key_bytes(&cp.public_key, "stored key")
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok());
    let key_ok = match (trusted, &stored_key) {
        (Some(t), Some(s)) => t == s,
        (None, Some(_)) => true,
        _ => false,
    };
    let signature_ok = key_ok
        && stored_key.is_some_and(|k| {
            hex::decode(&cp.signature)
                .ok()
                .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
                .is_some_and(|b| {
                    k.verify_strict(&cp.message(), &Signature::from_bytes(&b))
                        .is_ok()
                })
        });
    let heads_ok = heads_digest(heads) == cp.heads_digest;
    let digest_ok = digest == cp.digest;
    let count_ok = count == cp.count;
    let ok = signature_ok && heads_ok && digest_ok && count_ok;
    let mut problems = Vec::new();
    if !key_ok {
        problems.push("signed by an untrusted key".to_string());
    } else if !signature_ok {
        problems.push("bad signature".to_string());
    }
    if !heads_ok {
        problems.push("its recorded heads were changed".to_string());
    }
    if !count_ok {
        problems.push(format!("{} events signed, {count} found", cp.count));
    }
    if !digest_ok {
        problems.push("the stream up to it differs from what was signed".to_string());
    }
    let text = format!(
        "CHECKPOINT #{} at ({}, {}): {}",
        cp.id,
        cp.position.tx,
        cp.position.pos,
        if ok {
            "signature and digest ok".to_string()
        } else {
            format!("FAILED: {}", problems.join("; "))
        }
    );
    (
        CheckpointVerdict {
            id: cp.id,
            position: source::position(cp.position),
            ok,
            signature_ok,
            digest_ok,
            count_ok,
            heads_ok,
            problems,
            text,
        },
        ok,
    )
}

async fn checkpoint_views(
    store: &Store,
    checkpoints: &[Checkpoint],
    agg_type: &str,
    agg_id: &str,
) -> Result<Vec<CheckpointView>> {
    let rows = sqlx::query(
        "select checkpoint_id, sequence, head from stream_checkpoint_heads
          where aggregate_type = $1 and aggregate_id = $2",
    )
    .bind(agg_type)
    .bind(agg_id)
    .fetch_all(store.any())
    .await?;
    let mut heads: HashMap<i64, (i64, String)> = HashMap::new();
    for r in rows {
        heads.insert(
            r.try_get("checkpoint_id")?,
            (r.try_get("sequence")?, r.try_get("head")?),
        );
    }
    let mut after = StreamPosition::default();
    let mut views = Vec::with_capacity(checkpoints.len());
    for cp in checkpoints {
        views.push(CheckpointView {
            id: cp.id,
            after,
            upto: cp.position,
            head: heads.remove(&cp.id),
        });
        after = cp.position;
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Ev> {
        let mut head = ChainLink::default();
        (1..=n)
            .map(|s| {
                let payload = json!({"prev": head.0, "n": s});
                head = head.next(&payload);
                Ev {
                    sequence: s,
                    position: StreamPosition { tx: 1, pos: s },
                    payload,
                }
            })
            .collect()
    }

    fn kinds(f: &[Finding]) -> Vec<(Kind, i64)> {
        f.iter().map(|f| (f.kind, f.sequence)).collect()
    }

    fn signed_at(events: &[Ev]) -> Vec<CheckpointView> {
        let last = events.last().unwrap();
        vec![CheckpointView {
            id: 1,
            after: StreamPosition::default(),
            upto: last.position,
            head: Some((last.sequence, head_after(&last.payload))),
        }]
    }

    #[test]
    fn test_diagnose_intact_chain_has_no_findings() {
        let events = chain(5);
        assert!(diagnose(&events, &signed_at(&events)).is_empty());
    }

    #[test]
    fn test_diagnose_pins_altered_content_and_altered_link() {
        let mut events = chain(5);
        events[2].payload["n"] = json!(99);
        assert_eq!(kinds(&diagnose(&events, &[])), vec![(Kind::Altered, 3)]);

        let mut events = chain(5);
        events[2].payload["prev"] = json!(GENESIS);
        assert_eq!(kinds(&diagnose(&events, &[])), vec![(Kind::Altered, 3)]);
    }

    #[test]
    fn test_diagnose_pins_altered_last_event_with_a_checkpoint() {
        let events = chain(5);
        let views = signed_at(&events);
        let mut tampered = events.clone();
        tampered[4].payload["n"] = json!(0);
        assert!(
            diagnose(&tampered, &[]).is_empty(),
            "a chain alone cannot see it"
        );
        assert_eq!(
            kinds(&diagnose(&tampered, &views)),
            vec![(Kind::Altered, 5)]
        );
    }

    #[test]
    fn test_diagnose_pins_deleted_events() {
        let mut events = chain(5);
        events.remove(2);
        assert_eq!(kinds(&diagnose(&events, &[])), vec![(Kind::Deleted, 3)]);

        let events = chain(5);
        let views = signed_at(&events);
        let mut last_gone = events.clone();
        last_gone.pop();
        assert_eq!(
            kinds(&diagnose(&last_gone, &views)),
            vec![(Kind::Deleted, 5)]
        );
    }

    #[test]
    fn test_diagnose_pins_reordered_events() {
        let mut events = chain(5);
        let (a, b) = (events[1].payload.clone(), events[2].payload.clone());
        events[1].payload = b;
        events[2].payload = a;
        assert_eq!(kinds(&diagnose(&events, &[])), vec![(Kind::Reordered, 2)]);
    }

    #[test]
    fn test_diagnose_pins_inserted_events() {
        // Inserted in the middle with a link that leads nowhere (later sequences shifted).
        let mut events = chain(5);
        events.insert(
            2,
            Ev {
                sequence: 3,
                position: StreamPosition { tx: 1, pos: 3 },
                payload: json!({"prev": "f00d", "n": "forged"}),
            },
        );
        for (i, e) in events.iter_mut().enumerate() {
            e.sequence = i as i64 + 1;
        }
        assert_eq!(kinds(&diagnose(&events, &[])), vec![(Kind::Inserted, 3)]);

        // Inserted with a correct link to its predecessor.
        let mut events = chain(5);
        let forged = json!({"prev": head_after(&events[1].payload), "n": "forged"});
        events.insert(
            2,
            Ev {
                sequence: 3,
                position: StreamPosition { tx: 1, pos: 3 },
                payload: forged,
            },
        );
        for (i, e) in events.iter_mut().enumerate() {
            e.sequence = i as i64 + 1;
        }
        assert_eq!(kinds(&diagnose(&events, &[])), vec![(Kind::Inserted, 3)]);

        // Appended with a correct link, below a signed checkpoint that did not record it.
        let events = chain(5);
        let views = signed_at(&events);
        let mut appended = events.clone();
        appended.push(Ev {
            sequence: 6,
            position: StreamPosition { tx: 1, pos: 4 },
            payload: json!({"prev": head_after(&events[4].payload), "n": 6}),
        });
        assert!(
            diagnose(&appended, &[]).is_empty(),
            "a chain alone cannot see it"
        );
        assert_eq!(
            kinds(&diagnose(&appended, &views)),
            vec![(Kind::Inserted, 6)]
        );
    }

    #[test]
    fn test_stream_link_covers_metadata_and_order() {
        let e = |id: &str, meta: Value| StoredEvent {
            position: StreamPosition::default(),
            aggregate_type: "Account".into(),
            aggregate_id: id.into(),
            sequence: 1,
            event_type: "X".into(),
            event_version: "1.0".into(),
            payload: json!({}),
            metadata: meta,
            recorded_at: None,
            decoded: Default::default(),
        };
        let a = stream_link(GENESIS, &e("a", json!({})));
        assert_ne!(a, stream_link(GENESIS, &e("a", json!({"r": 1}))));
        let ab = stream_link(&a, &e("b", json!({})));
        let ba = stream_link(
            &stream_link(GENESIS, &e("b", json!({}))),
            &e("a", json!({})),
        );
        assert_ne!(ab, ba);
    }

    #[test]
    fn test_checkpoint_signature_round_trip() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let mut cp = Checkpoint {
            id: 1,
            position: StreamPosition { tx: 5, pos: 9 },
            count: 9,
            digest: "d".into(),
            heads_digest: heads_digest(&Heads::new()),
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: String::new(),
            created_ms: 1,
        };
        cp.signature = hex::encode(key.sign(&cp.message()).to_bytes());
        let (r, ok) = settle(&cp, &Heads::new(), Some(&key.verifying_key()), 9, "d");
        assert!(ok, "{r:?}");
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        let (_, ok) = settle(&cp, &Heads::new(), Some(&other), 9, "d");
        assert!(!ok);
        let (_, ok) = settle(&cp, &Heads::new(), None, 9, "e");
        assert!(!ok);
    }
}
