//! `export`: events as JSON Lines or CSV, filtered by account, event type and time range, read
//! from the global stream one batch at a time (memory does not grow with the number of events),
//! with a manifest: counts per type, first and last position, the filters, and the SHA-256 of the
//! file exactly as written.
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use gatehouse_store::{Store, StoredEvent, StreamPosition};
use serde_json::json;
use sha2::{Digest, Sha256};

use gatehouse_replay::report::{ExportFilters, ExportManifest};

use crate::source::{self, Error, Result, Stream};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header; payload and metadata as JSON text.
    Csv,
}

/// What to export.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Only this account (aggregate id); repeatable.
    #[arg(long = "account")]
    pub accounts: Vec<String>,
    /// Only these event types (e.g. LoginFailed); repeatable.
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// Only events that happened at or after this instant (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Only events that happened before this instant (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    pub to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where to write the manifest (default: `<out>.manifest.json` with --out; none on stdout).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

/// CSV columns, in order.
pub const CSV_HEADER: [&str; 11] = [
    "tx",
    "position",
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "event_version",
    "at",
    "recorded_at",
    "payload",
    "metadata",
];

/// Writes one RFC 4180 record (the shared writer; cells are not neutralised: the auditors'
/// export stays byte-faithful to the store).
fn csv_record(out: &mut impl Write, fields: impl IntoIterator<Item = String>) -> Result<()> {
    out.write_all(gatehouse_projections::csv::record(fields).as_bytes())?;
    Ok(())
}

/// Counts what goes through it and hashes it.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct Filters {
    accounts: HashSet<String>,
    types: HashSet<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl Filters {
    fn matches(&self, e: &StoredEvent, at: Option<DateTime<Utc>>) -> bool {
        (self.accounts.is_empty() || self.accounts.contains(&e.aggregate_id))
            && (self.types.is_empty() || self.types.contains(&e.event_type))
            && self.from.is_none_or(|from| at.is_some_and(|t| t >= from))
            && self.to.is_none_or(|to| at.is_some_and(|t| t < to))
    }
}

/// Runs the export; returns the manifest.
pub async fn export(store: &Store, args: &ExportArgs) -> Result<ExportManifest> {
    let filters = Filters {
        accounts: args.accounts.iter().cloned().collect(),
        types: args.event_types.iter().cloned().collect(),
        from: args
            .from
            .as_deref()
            .map(source::parse_instant)
            .transpose()?,
        to: args.to.as_deref().map(source::parse_instant).transpose()?,
    };
    let erased = source::erased_accounts(store).await?;
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            File::create(path)
                .map_err(|e| Error::Usage(format!("cannot create {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = Hashing {
        inner: BufWriter::with_capacity(1 << 16, sink),
        hash: Sha256::new(),
        bytes: 0,
    };
    let csv = args.format == Format::Csv;
    if csv {
        csv_record(&mut out, CSV_HEADER.iter().map(|s| s.to_string()))?;
    }
    let total = store.count_after(StreamPosition::default()).await?;
    let bar = source::progress(u64::try_from(total).unwrap_or(0), "export");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut written = 0u64;
    let mut first: Option<StreamPosition> = None;
    let mut last: Option<StreamPosition> = None;
    let mut stream = Stream::new(store, StreamPosition::default());
    while let Some(batch) = stream.next_batch().await? {
        bar.inc(batch.len() as u64);
        for mut event in batch {
            let at = source::event_time(&event);
            if !filters.matches(&event, at) {
                continue;
            }
            if erased.contains(&event.aggregate_id) {
                source::redact_sealed(&mut event.payload);
            }
            first.get_or_insert(event.position);
            last = Some(event.position);
            *counts.entry(event.event_type.clone()).or_default() += 1;
            written += 1;
            let at_text = at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            let recorded = event
                .recorded_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            if csv {
                csv_record(
                    &mut out,
                    [
                        event.position.tx.to_string(),
                        event.position.pos.to_string(),
                        event.aggregate_type,
                        event.aggregate_id,
                        event.sequence.to_string(),
                        event.event_type,
                        event.event_version,
                        at_text.unwrap_or_default(),
                        recorded.unwrap_or_default(),
                        event.payload.to_string(),
                        event.metadata.to_string(),
                    ],
                )?;
            } else {
                let line = json!({
                    "position": source::position_json(event.position),
                    "aggregate_type": event.aggregate_type,
                    "aggregate_id": event.aggregate_id,
                    "sequence": event.sequence,
                    "event_type": event.event_type,
                    "event_version": event.event_version,
                    "at": at_text,
                    "recorded_at": recorded,
                    "payload": event.payload,
                    "metadata": event.metadata,
                });
                serde_json::to_writer(&mut out, &line).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    bar.finish_and_clear();
    let digest = hex::encode(out.hash.finalize());
    let manifest = ExportManifest {
        bytes: out.bytes,
        counts_by_type: counts,
        created_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        erased_accounts_redacted: erased.len() as u64,
        events: written,
        file: args.out.as_ref().map(|p| p.display().to_string()),
        filters: ExportFilters {
            accounts: args.accounts.clone(),
            event_types: args.event_types.clone(),
            from: filters.from,
            to: filters.to,
        },
        first_position: first.map(source::position),
        format: match args.format {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
        .to_string(),
        last_position: last.map(source::position),
        peak_rss_kib: peak_rss_kib(),
        sha256: digest,
        store: store.kind().to_string(),
        tool: concat!("gatehouse-replay ", env!("CARGO_PKG_VERSION")).to_string(),
    };
    let manifest_path = args
        .manifest
        .clone()
        .or_else(|| args.out.as_ref().map(|p| manifest_path_for(p)));
    if let Some(path) = manifest_path {
        let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::from)?;
        std::fs::write(&path, text + "\n")
            .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(manifest)
}

/// `<out>.manifest.json`.
pub fn manifest_path_for(out: &std::path::Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// This process's peak resident memory (Linux `VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
