//! `rebuild`: replays the stream from position zero into fresh shadow tables with the very
//! projection code the live runner uses (`Projection::apply`), compares them row by row with the
//! live read models, and optionally swaps the rebuilt rows in.
//!
//! Shadow tables: on PostgreSQL, tables of the same names in schema `gatehouse_rebuild` (created
//! `like` the live ones, kept after the run for inspection); on the embedded store, temporary
//! tables of the same names. The rebuild connection resolves unqualified names to the shadow
//! tables first (`search_path` on PostgreSQL; SQLite searches `temp` first), so the projections'
//! own SQL writes there unchanged. The SQL of the shadow tables, the lock, the comparison's
//! queries and the swap is the read models' crate's (`gatehouse_projections::rebuild`); this
//! module decides what runs when and reports.
//!
//! Speed on PostgreSQL (a bulk load into fresh tables): the shadow tables are `unlogged` (they
//! are scratch space for the comparison; the swap copies rows into the logged live tables), the
//! indexes the fold does without ([`Projection::deferred_indexes`]: reader-only indexes, keys of
//! insert-only tables) are built after the fold with one sort each, and rows that are new by
//! construction are copied in. Each read model folds on its own connection, side by side, while
//! the next batch is read.
//!
//! Exactness while the server runs: each projection is rebuilt up to its live checkpoint; then,
//! holding the same per-projection lock the runner takes (advisory lock on PostgreSQL, the write
//! lock on SQLite), the tool reads the checkpoint again, applies the few events the live side
//! applied meanwhile, compares, swaps if asked, and commits. Live and rebuilt are therefore
//! compared at the same stream position.
use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use gatehouse_projections::rebuild::{checkpoint, Shadow, ShadowError, TableRows, SHADOW_SCHEMA};
use gatehouse_projections::Projection;
use gatehouse_store::{Store, StoredEvent, StreamPosition};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Connection};

use gatehouse_replay::report::{self, RebuildReport};

use crate::source::{self, Error, Result};

/// What to rebuild.
#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// Only this projection (e.g. lockout_state_v1); default: all.
    #[arg(long)]
    pub projection: Option<String>,
    /// Replace the live read models with the rebuilt rows (and move their checkpoints).
    #[arg(long)]
    pub swap: bool,
    /// Machine-readable report on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One row-level difference.
#[derive(Debug, Clone, PartialEq)]
pub enum Difference {
    /// A row the rebuild produced that the live table lacks.
    MissingFromLive {
        table: String,
        key: Value,
        row: Value,
    },
    /// A live row the rebuild did not produce.
    ExtraInLive {
        table: String,
        key: Value,
        row: Value,
    },
    /// Same key, different values: `(column, live, rebuilt)`.
    Changed {
        table: String,
        key: Value,
        columns: Vec<(String, Value, Value)>,
    },
}

impl Difference {
    fn to_report(&self) -> report::Difference {
        match self.clone() {
            Self::MissingFromLive { table, key, row } => report::Difference::MissingFromLive {
                key,
                rebuilt: row,
                table,
            },
            Self::ExtraInLive { table, key, row } => report::Difference::ExtraInLive {
                key,
                live: row,
                table,
            },
            Self::Changed {
                table,
                key,
                columns,
            } => report::Difference::Changed {
                columns: columns
                    .into_iter()
                    .map(|(column, live, rebuilt)| report::ChangedColumn {
                        column,
                        live,
                        rebuilt,
                    })
                    .collect(),
                key,
                table,
            },
        }
    }

    fn to_text(&self) -> String {
        match self {
            Self::MissingFromLive { table, key, row } => {
                format!("DIFF {table} {key}: missing from live (rebuilt {row})")
            }
            Self::ExtraInLive { table, key, row } => {
                format!("DIFF {table} {key}: in live only ({row})")
            }
            Self::Changed {
                table,
                key,
                columns,
            } => {
                let cols: Vec<String> = columns
                    .iter()
                    .map(|(c, l, r)| format!("{c} live={l} rebuilt={r}"))
                    .collect();
                format!("DIFF {table} {key}: {}", cols.join(", "))
            }
        }
    }
}

impl From<ShadowError> for Error {
    fn from(e: ShadowError) -> Self {
        match e {
            ShadowError::Store(e) => Self::Store(e),
            ShadowError::Schema(message) => Self::Usage(message),
        }
    }
}

/// Per-projection progress of the rebuild.
struct Target {
    projection: Arc<dyn Projection>,
    /// Where the rebuild stops: the live read model's checkpoint (with `--swap`, at least the
    /// stream head).
    target: StreamPosition,
    /// Where the shadow tables stand.
    rebuilt: StreamPosition,
    applied: u64,
}

/// Runs the rebuild; returns the report and whether any difference was found.
pub async fn rebuild(store: &Store, args: &RebuildArgs) -> Result<(RebuildReport, bool)> {
    let all = gatehouse_projections::rebuild_projections();
    let projections: Vec<Arc<dyn Projection>> = match &args.projection {
        None => all,
        Some(name) => {
            let chosen: Vec<_> = all.iter().filter(|p| p.name() == name).cloned().collect();
            if chosen.is_empty() {
                let names: Vec<&str> = all.iter().map(|p| p.name()).collect();
                return Err(Error::Usage(format!(
                    "no projection {name:?}; known: {}",
                    names.join(", ")
                )));
            }
            chosen
        }
    };
    // One dedicated connection: the shadow tables' name resolution is a session setting, and
    // SQLite's temporary tables exist only on the connection that made them.
    let mut conn = store.any().acquire().await?.detach();
    let shadow = Shadow::of(store, &mut conn).await?;
    let started = std::time::Instant::now();
    let deferred = shadow.create(&mut conn, &projections).await?;

    let head = if args.swap {
        store.stream_head().await?.unwrap_or_default()
    } else {
        StreamPosition::default()
    };
    let mut targets = Vec::with_capacity(projections.len());
    for p in &projections {
        targets.push(Target {
            target: checkpoint(&mut conn, p.name()).await?.max(head),
            projection: p.clone(),
            rebuilt: StreamPosition::default(),
            applied: 0,
        });
    }
    let total = store.count_after(StreamPosition::default()).await?;
    let bar = source::progress(u64::try_from(total).unwrap_or(0), "rebuild");
    if shadow.postgres() {
        fold_side_by_side(store, &shadow, &mut targets, &bar).await?;
    } else {
        catch_up(store, &mut conn, &mut targets, Some(&bar)).await?;
    }
    bar.finish_and_clear();
    let fold_seconds = started.elapsed().as_secs_f64();
    // The deferred indexes, two at a time (on PostgreSQL each build is one sort on one core).
    // Their statements name the shadow tables in full, so any connection serves.
    let mut builds =
        futures::stream::iter(deferred.iter().map(|index| index.build(store))).buffer_unordered(2);
    while let Some(built) = builds.next().await {
        built?;
    }
    let rebuild_seconds = started.elapsed().as_secs_f64();

    // Compare under the runner's locks, after applying what the live side applied meanwhile.
    let mut tx = conn.begin().await?;
    for t in &targets {
        shadow
            .lock_like_runner(&mut tx, t.projection.name())
            .await?;
    }
    let mut moved_back = Vec::new();
    for t in targets.iter_mut() {
        let now = checkpoint(&mut tx, t.projection.name()).await?;
        if args.swap {
            // Swapping: everything the live side applied, and at least what was rebuilt.
            t.target = now.max(t.rebuilt);
        } else {
            if now < t.rebuilt {
                moved_back.push(t.projection.name());
            }
            t.target = now;
        }
    }
    if shadow.postgres() {
        // The shadow tables are written on another connection: a write here would give this
        // transaction an id, and while it compares, every stream reader of the cluster (the
        // live runner among them) would wait behind it (the stream shows only transactions
        // older than the oldest one running). Reads in this transaction see those commits.
        let mut writer = shadow.connection(store).await?;
        catch_up(store, &mut writer, &mut targets, None).await?;
        for t in &targets {
            t.projection.finish(&mut writer).await?;
        }
        let _ = writer.close().await;
    } else {
        // SQLite: the temporary tables exist on this connection only; one writer at a time.
        catch_up(store, &mut tx, &mut targets, None).await?;
        for t in &targets {
            t.projection.finish(&mut tx).await?;
        }
    }

    let mut reports = Vec::new();
    let mut differences = 0u64;
    let mut text = Vec::new();
    for t in &targets {
        let mut tables = Vec::new();
        let mut diff_count = 0u64;
        for table in t.projection.tables() {
            let (diffs, live_rows, rebuilt_rows) = compare(&mut tx, &shadow, table).await?;
            diff_count += diffs.len() as u64;
            for d in &diffs {
                text.push(d.to_text());
            }
            tables.push(report::TableReport {
                differences: diffs.iter().map(Difference::to_report).collect(),
                rows_live: live_rows,
                rows_rebuilt: rebuilt_rows,
                table: table.to_string(),
            });
        }
        let behind = moved_back.contains(&t.projection.name());
        if behind {
            diff_count += 1;
            text.push(format!(
                "DIFF {}: the live checkpoint is behind the rebuilt position (reset meanwhile?)",
                t.projection.name()
            ));
        }
        differences += diff_count;
        text.push(format!(
            "{}: rebuilt from {} events up to position ({}, {}): {}",
            t.projection.name(),
            t.applied,
            t.rebuilt.tx,
            t.rebuilt.pos,
            if diff_count == 0 {
                "equal to live".to_string()
            } else {
                format!("{diff_count} difference(s)")
            }
        ));
        reports.push(report::ProjectionReport {
            differences: diff_count,
            events_applied: t.applied,
            position: source::position(t.rebuilt),
            projection: t.projection.name().to_string(),
            tables,
        });
    }
    if args.swap {
        for t in &targets {
            shadow
                .swap(&mut tx, t.projection.as_ref(), t.rebuilt)
                .await?;
        }
        text.push(format!(
            "swapped the rebuilt rows into {} read model(s)",
            targets.len()
        ));
    }
    tx.commit().await?;
    let _ = conn.close().await;
    let total_seconds = started.elapsed().as_secs_f64();
    text.push(format!(
        "rebuilt in {rebuild_seconds:.1} s (fold {fold_seconds:.1} s, deferred indexes {:.1} s), compared in {:.1} s",
        rebuild_seconds - fold_seconds,
        total_seconds - rebuild_seconds
    ));
    let report = RebuildReport {
        differences,
        projections: reports,
        seconds: report::RebuildSeconds {
            fold: fold_seconds,
            rebuild: rebuild_seconds,
            total: total_seconds,
        },
        shadow: shadow.postgres().then(|| SHADOW_SCHEMA.to_string()),
        swapped: args.swap,
        text,
    };
    Ok((report, differences > 0))
}

/// The fold on PostgreSQL: each read model on its own connection (resolving names to the shadow
/// tables), its batches in transactions side by side with the others', the next batch read
/// meanwhile. Rows that are new by construction are copied in (`gatehouse_projections::bulk`)
/// on a second connection per read model: the shadow tables are fresh and each event is applied
/// once.
async fn fold_side_by_side(
    store: &Store,
    shadow: &Shadow,
    targets: &mut [Target],
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    let (Some(from), Some(until)) = (
        targets.iter().map(|t| t.rebuilt).min(),
        targets.iter().map(|t| t.target).max(),
    ) else {
        return Ok(());
    };
    let mut conns = Vec::with_capacity(targets.len());
    let mut bulks = Vec::with_capacity(targets.len());
    for _ in targets.iter() {
        conns.push(shadow.connection(store).await?);
        bulks.push(shadow.bulk_connection(store).await?);
    }
    let mut position = from;
    let mut ahead: Option<Vec<StoredEvent>> = None;
    let mut done: Option<Arc<Vec<StoredEvent>>> = None;
    while position < until {
        let batch = match ahead.take() {
            Some(batch) => batch,
            None => read_batch(store, position, None).await?,
        };
        let Some(last) = batch.last().map(|e| e.position) else {
            break;
        };
        let batch = Arc::new(batch);
        // A task per read model, so that their work in this process spreads over the cores.
        let tasks: Vec<_> = targets
            .iter()
            .zip(conns.drain(..))
            .zip(&bulks)
            .map(|((t, conn), bulk)| {
                let (projection, after, upto) = (t.projection.clone(), t.rebuilt, t.target);
                let batch = batch.clone();
                let fold = fold_batch(conn, projection, batch, after, upto);
                tokio::spawn(gatehouse_projections::bulk::load(bulk.clone(), fold))
            })
            .collect();
        let previous = done.take();
        // The next batch is read (and the one before freed) while the read models work. (Freed
        // on another thread, a batch cost more than it saved.)
        let read_next = async {
            if last < until {
                Ok::<_, gatehouse_store::StoreError>(Some(read_batch(store, last, previous).await?))
            } else {
                drop(previous);
                Ok(None)
            }
        };
        let (folded, next) = tokio::join!(futures::future::join_all(tasks), read_next);
        for (t, done) in targets.iter_mut().zip(folded) {
            let (conn, applied) = done.map_err(|e| Error::Usage(format!("rebuild task: {e}")))?;
            conns.push(conn);
            if let Some((n, reached)) = applied? {
                t.applied += n;
                t.rebuilt = reached;
            }
        }
        ahead = next?;
        bar.inc(batch.len() as u64);
        position = last;
        done = Some(batch);
    }
    for conn in conns {
        let _ = conn.close().await;
    }
    for bulk in bulks {
        bulk.close().await;
    }
    Ok(())
}

/// Up to [`source::REBUILD_BATCH`] events after `after`, in queries of
/// [`source::REBUILD_READ`], their `Account` payloads decoded. While PostgreSQL answers a query,
/// this side frees `previous` (the batch before, whose decoded events and JSON trees took a fifth
/// of the fold when freed between batches, where nothing else ran) or decodes what it has read.
/// Decoded here, once: tasks running side by side would each decode the same events. A payload
/// that does not decode is reported by the read model that needs it.
async fn read_batch(
    store: &Store,
    after: StreamPosition,
    previous: Option<Arc<Vec<StoredEvent>>>,
) -> std::result::Result<Vec<StoredEvent>, gatehouse_store::StoreError> {
    let decode = |events: &[StoredEvent]| {
        for event in events {
            let _ = gatehouse_projections::account_event(event);
        }
    };
    let mut batch: Vec<StoredEvent> = Vec::new();
    let mut previous = previous;
    let mut position = after;
    while batch.len() < source::REBUILD_BATCH as usize {
        let (read, ()) = tokio::join!(store.read_stream(position, source::REBUILD_READ), async {
            drop(previous.take());
            decode(&batch);
        });
        let read = read?;
        let (n, last) = (read.len(), read.last().map(|e| e.position));
        batch.extend(read);
        match last {
            Some(last) if n == source::REBUILD_READ as usize => position = last,
            _ => break,
        }
    }
    decode(&batch);
    Ok(batch)
}

/// Applies to one read model, in one transaction, the events of `batch` after `after` up to
/// `upto`; hands the connection back with how many it applied and where it stopped.
async fn fold_batch(
    mut conn: AnyConnection,
    projection: Arc<dyn Projection>,
    batch: Arc<Vec<StoredEvent>>,
    after: StreamPosition,
    upto: StreamPosition,
) -> (AnyConnection, Result<Option<(u64, StreamPosition)>>) {
    let result = async {
        let pending: Vec<&StoredEvent> = batch
            .iter()
            .filter(|e| e.position > after && e.position <= upto)
            .collect();
        let Some(reached) = pending.last().map(|e| e.position) else {
            return Ok(None);
        };
        let mut tx = conn.begin().await?;
        projection.apply_batch(&mut tx, &pending, after).await?;
        tx.commit().await?;
        Ok(Some((pending.len() as u64, reached)))
    }
    .await;
    (conn, result)
}

/// Applies, per projection, the events after its rebuilt position up to its live position.
async fn catch_up(
    store: &Store,
    conn: &mut AnyConnection,
    targets: &mut [Target],
    bar: Option<&indicatif::ProgressBar>,
) -> Result<()> {
    let Some(from) = targets.iter().map(|t| t.rebuilt).min() else {
        return Ok(());
    };
    let Some(until) = targets.iter().map(|t| t.target).max() else {
        return Ok(());
    };
    let mut position = from;
    while position < until {
        let batch = store.read_stream(position, source::REBUILD_BATCH).await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            break;
        };
        let mut tx = conn.begin().await?;
        for t in targets.iter_mut() {
            let (after, upto) = (t.rebuilt, t.target);
            let pending: Vec<&StoredEvent> = batch
                .iter()
                .filter(|e| e.position > after && e.position <= upto)
                .collect();
            let Some(reached) = pending.last().map(|e| e.position) else {
                continue;
            };
            // The live runner's batch path, so the rebuild costs what the runner's does.
            t.projection.apply_batch(&mut tx, &pending, after).await?;
            t.applied += pending.len() as u64;
            t.rebuilt = reached;
        }
        tx.commit().await?;
        if let Some(bar) = bar {
            bar.inc(batch.len() as u64);
        }
        position = last;
    }
    Ok(())
}

/// Rows by their key's JSON text: `(key, row)`.
type RowsByKey = BTreeMap<String, (Value, Map<String, Value>)>;

/// Row-level differences between a live table and its shadow, and both row counts.
async fn compare(
    conn: &mut AnyConnection,
    shadow: &Shadow,
    table: &str,
) -> Result<(Vec<Difference>, i64, i64)> {
    let TableRows {
        columns: cols,
        key: pk,
        rebuilt_only,
        live_only,
        live_rows,
        rebuilt_rows,
    } = shadow.table_rows(conn, table).await?;
    let parse = |rows: Vec<String>| -> Result<RowsByKey> {
        let mut out = BTreeMap::new();
        for text in rows {
            let Value::Object(row) = serde_json::from_str::<Value>(&text)
                .map_err(|e| Error::Usage(format!("unreadable row of {table}: {e}")))?
            else {
                continue;
            };
            let key: Map<String, Value> = pk
                .iter()
                .map(|k| (k.clone(), row.get(k).cloned().unwrap_or(Value::Null)))
                .collect();
            let key = Value::Object(key);
            out.insert(key.to_string(), (key, row));
        }
        Ok(out)
    };
    let rebuilt = parse(rebuilt_only)?;
    let mut live_map = parse(live_only)?;
    let mut diffs = Vec::new();
    for (k, (key, row)) in rebuilt {
        match live_map.remove(&k) {
            Some((_, live_row)) => {
                let columns = cols
                    .iter()
                    .filter_map(|c| {
                        let l = live_row.get(c).cloned().unwrap_or(Value::Null);
                        let r = row.get(c).cloned().unwrap_or(Value::Null);
                        (l != r).then(|| (c.clone(), l, r))
                    })
                    .collect();
                diffs.push(Difference::Changed {
                    table: table.to_string(),
                    key,
                    columns,
                });
            }
            None => diffs.push(Difference::MissingFromLive {
                table: table.to_string(),
                key,
                row: Value::Object(row),
            }),
        }
    }
    for (_, (key, row)) in live_map {
        diffs.push(Difference::ExtraInLive {
            table: table.to_string(),
            key,
            row: Value::Object(row),
        });
    }
    Ok((diffs, live_rows, rebuilt_rows))
}
