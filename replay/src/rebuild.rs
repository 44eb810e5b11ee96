//! `rebuild`: replays the stream from position zero into fresh shadow tables with the very
//! projection code the live runner uses (`Projection::apply`), compares them row by row with the
//! live read models, and optionally swaps the rebuilt rows in.
//!
//! Shadow tables: on PostgreSQL, tables of the same names in schema `gatehouse_rebuild` (created
//! `like` the live ones, kept after the run for inspection); on the embedded store, temporary
//! tables of the same names. The rebuild connection resolves unqualified names to the shadow
//! tables first (`search_path` on PostgreSQL; SQLite searches `temp` first), so the projections'
//! own SQL writes there unchanged.
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

use chrono::Utc;
use futures::StreamExt;
use gatehouse_projections::bulk::BulkLoad;
use gatehouse_projections::store::Backend;
use gatehouse_projections::{Projection, Store, StoredEvent, StreamPosition};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Connection, Row};

use gatehouse_replay::report::{self, RebuildReport};

use crate::source::{self, Error, Result};

/// Schema of the shadow tables on PostgreSQL.
pub const SHADOW_SCHEMA: &str = "gatehouse_rebuild";

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

struct Dialect {
    postgres: bool,
    live_schema: String,
}

impl Dialect {
    fn live(&self, table: &str) -> String {
        if self.postgres {
            format!("\"{}\".{table}", self.live_schema.replace('"', "\"\""))
        } else {
            format!("main.{table}")
        }
    }

    fn shadow(&self, table: &str) -> String {
        if self.postgres {
            format!("{SHADOW_SCHEMA}.{table}")
        } else {
            format!("temp.{table}")
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
    let postgres = store.kind() == "postgres";
    let live_schema = if postgres {
        sqlx::query_scalar::<_, String>("select current_schema()::text")
            .fetch_one(&mut conn)
            .await?
    } else {
        "main".to_string()
    };
    let dialect = Dialect {
        postgres,
        live_schema,
    };
    let started = std::time::Instant::now();
    let deferred = create_shadow(&mut conn, &dialect, &projections).await?;

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
    if dialect.postgres {
        fold_side_by_side(store, &dialect.live_schema, &mut targets, &bar).await?;
    } else {
        catch_up(store, &mut conn, &mut targets, Some(&bar)).await?;
    }
    bar.finish_and_clear();
    let fold_seconds = started.elapsed().as_secs_f64();
    // The deferred indexes, two at a time (on PostgreSQL each build is one sort on one core).
    // Their statements name the shadow tables in full, so any connection serves.
    let mut builds = futures::stream::iter(
        deferred
            .iter()
            .map(|sql| async move { sqlx::query(sql).execute(store.any()).await }),
    )
    .buffer_unordered(2);
    while let Some(built) = builds.next().await {
        built?;
    }
    let rebuild_seconds = started.elapsed().as_secs_f64();

    // Compare under the runner's locks, after applying what the live side applied meanwhile.
    let mut tx = conn.begin().await?;
    for t in &targets {
        if dialect.postgres {
            sqlx::query("select pg_advisory_xact_lock(hashtext($1)::bigint)")
                .bind(t.projection.name())
                .execute(&mut *tx)
                .await?;
        } else {
            // A write first takes SQLite's write lock, which the runner needs too.
            sqlx::query(
                "insert into main.projection_checkpoints (projection, tx_id, position, updated_ms)
                 values ($1, 0, 0, $2) on conflict (projection) do nothing",
            )
            .bind(t.projection.name())
            .bind(Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await?;
        }
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
    if dialect.postgres {
        // The shadow tables are written on another connection: a write here would give this
        // transaction an id, and while it compares, every stream reader of the cluster (the
        // live runner among them) would wait behind it (the stream shows only transactions
        // older than the oldest one running). Reads in this transaction see those commits.
        let mut writer = shadow_connection(store, &dialect.live_schema).await?;
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
            let (diffs, live_rows, rebuilt_rows) = compare(&mut tx, &dialect, table).await?;
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
            for table in t.projection.tables() {
                sqlx::query(&format!("delete from {}", dialect.live(table)))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&format!(
                    "insert into {} select * from {}",
                    dialect.live(table),
                    dialect.shadow(table)
                ))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "insert into projection_checkpoints (projection, tx_id, position, updated_ms)
                 values ($1, $2, $3, $4)
                 on conflict (projection) do update
                    set tx_id = excluded.tx_id, position = excluded.position,
                        updated_ms = excluded.updated_ms",
            )
            .bind(t.projection.name())
            .bind(t.rebuilt.tx)
            .bind(t.rebuilt.pos)
            .bind(Utc::now().timestamp_millis())
            .execute(&mut *tx)
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
        shadow: dialect.postgres.then(|| SHADOW_SCHEMA.to_string()),
        swapped: args.swap,
        text,
    };
    Ok((report, differences > 0))
}

/// Drops and recreates the shadow tables, and makes the connection resolve to them first.
/// Returns the statements that build the deferred indexes, to run after the fold (PostgreSQL).
async fn create_shadow(
    conn: &mut AnyConnection,
    dialect: &Dialect,
    projections: &[Arc<dyn Projection>],
) -> Result<Vec<String>> {
    let mut deferred = Vec::new();
    if dialect.postgres {
        sqlx::query(&format!("create schema if not exists {SHADOW_SCHEMA}"))
            .execute(&mut *conn)
            .await?;
        for p in projections {
            for table in p.tables() {
                let shadow = dialect.shadow(table);
                sqlx::query(&format!("drop table if exists {shadow}"))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(&format!(
                    "create unlogged table {shadow} (like {} including all excluding indexes)",
                    dialect.live(table)
                ))
                .execute(&mut *conn)
                .await?;
                for index in live_indexes(conn, dialect, table).await? {
                    let sql = format!(
                        "create {}index \"{}\" on {shadow} {}",
                        if index.unique { "unique " } else { "" },
                        index.name.replace('"', "\"\""),
                        index.method
                    );
                    if p.deferred_indexes().contains(&index.name.as_str()) {
                        deferred.push(sql);
                    } else {
                        sqlx::query(&sql).execute(&mut *conn).await?;
                    }
                }
            }
        }
        resolve_to_shadow(conn, &dialect.live_schema).await?;
    } else {
        for p in projections {
            for table in p.tables() {
                let sql: Option<String> = sqlx::query_scalar(
                    "select sql from main.sqlite_master where type = 'table' and name = $1",
                )
                .bind(*table)
                .fetch_optional(&mut *conn)
                .await?;
                let sql = sql.ok_or_else(|| Error::Usage(format!("no table {table}")))?;
                let lower = sql.to_ascii_lowercase();
                let Some(at) = lower.find("create table") else {
                    return Err(Error::Usage(format!("cannot copy the schema of {table}")));
                };
                let temp = format!(
                    "{}create temp table{}",
                    &sql[..at],
                    &sql[at + "create table".len()..]
                );
                sqlx::query(&format!("drop table if exists temp.{table}"))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(&temp).execute(&mut *conn).await?;
            }
        }
    }
    Ok(deferred)
}

/// An index of a live table, to be made on its shadow.
struct LiveIndex {
    name: String,
    unique: bool,
    /// `using btree (…)` and what follows (predicate, included columns).
    method: String,
}

/// The indexes of a live table (its primary key included, as a unique index: `on conflict`
/// infers it from the columns alike).
async fn live_indexes(
    conn: &mut AnyConnection,
    dialect: &Dialect,
    table: &str,
) -> Result<Vec<LiveIndex>> {
    let rows = sqlx::query(
        "select c.relname::text as name, i.indisunique as is_unique,
                pg_get_indexdef(i.indexrelid) as def
           from pg_index i join pg_class c on c.oid = i.indexrelid
          where i.indrelid = ($1)::regclass
          order by c.relname",
    )
    .bind(dialect.live(table))
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let def: String = row.try_get("def")?;
        let Some(at) = def.find(" USING ") else {
            return Err(Error::Usage(format!("cannot copy the index {def:?}")));
        };
        out.push(LiveIndex {
            name: row.try_get("name")?,
            unique: row.try_get("is_unique")?,
            method: def[at + 1..].to_string(),
        });
    }
    Ok(out)
}

/// The fold on PostgreSQL: each read model on its own connection (resolving names to the shadow
/// tables), its batches in transactions side by side with the others', the next batch read
/// meanwhile. Rows that are new by construction are copied in (`gatehouse_projections::bulk`)
/// on a second connection per read model: the shadow tables are fresh and each event is applied
/// once.
async fn fold_side_by_side(
    store: &Store,
    live_schema: &str,
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
        conns.push(shadow_connection(store, live_schema).await?);
        bulks.push(bulk_connection(store, live_schema).await?);
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
                Ok::<_, gatehouse_projections::StoreError>(Some(
                    read_batch(store, last, previous).await?,
                ))
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
) -> std::result::Result<Vec<StoredEvent>, gatehouse_projections::StoreError> {
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

/// A connection of its own (PostgreSQL) that resolves names to the shadow tables first and
/// commits without waiting for the disk: the shadow tables are scratch space, and a crashed
/// rebuild is run again.
async fn shadow_connection(store: &Store, live_schema: &str) -> Result<AnyConnection> {
    let mut conn = store.any().acquire().await?.detach();
    resolve_to_shadow(&mut conn, live_schema).await?;
    sqlx::query("set synchronous_commit to off")
        .execute(&mut conn)
        .await?;
    // Key lookups by index whatever the (absent) statistics of tables being filled say, as in
    // the runner's transactions (`gatehouse_projections::runner::BEGIN_PROJECTION_PG`).
    sqlx::query("set enable_seqscan to off")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// A typed connection for `COPY` into the shadow tables (see [`fold_side_by_side`]), resolving
/// names and committing as [`shadow_connection`] does.
async fn bulk_connection(store: &Store, live_schema: &str) -> Result<BulkLoad> {
    let Backend::Postgres(pool) = store.backend() else {
        return Err(Error::Usage("bulk load needs PostgreSQL".into()));
    };
    let mut conn = pool.acquire().await?.detach();
    sqlx::query(&search_path_to_shadow(live_schema))
        .execute(&mut conn)
        .await?;
    sqlx::query("set synchronous_commit to off")
        .execute(&mut conn)
        .await?;
    Ok(BulkLoad::new(conn).await?)
}

/// `set search_path` that resolves unqualified names to the shadow tables first.
fn search_path_to_shadow(live_schema: &str) -> String {
    format!(
        "set search_path to {SHADOW_SCHEMA}, \"{}\"",
        live_schema.replace('"', "\"\"")
    )
}

/// Makes the connection resolve unqualified names to the shadow tables first (PostgreSQL).
async fn resolve_to_shadow(conn: &mut AnyConnection, live_schema: &str) -> Result<()> {
    sqlx::query(&search_path_to_shadow(live_schema))
        .execute(conn)
        .await?;
    Ok(())
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

async fn checkpoint(conn: &mut AnyConnection, name: &str) -> Result<StreamPosition> {
    let row =
        sqlx::query("select tx_id, position from projection_checkpoints where projection = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match row {
        Some(r) => StreamPosition {
            tx: r.try_get("tx_id")?,
            pos: r.try_get("position")?,
        },
        None => StreamPosition::default(),
    })
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

/// Column names and primary-key column names of a live table.
async fn columns(
    conn: &mut AnyConnection,
    dialect: &Dialect,
    table: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    if dialect.postgres {
        let cols: Vec<String> = sqlx::query_scalar(
            "select column_name::text from information_schema.columns
              where table_schema = $1 and table_name = $2 order by ordinal_position",
        )
        .bind(&dialect.live_schema)
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        let pk: Vec<String> = sqlx::query_scalar(
            "select a.attname::text from pg_index i
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
              where i.indrelid = ($1)::regclass and i.indisprimary order by a.attnum",
        )
        .bind(dialect.live(table))
        .fetch_all(&mut *conn)
        .await?;
        Ok((cols, pk))
    } else {
        let rows = sqlx::query("select name, pk from pragma_table_info($1) order by cid")
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
        let mut cols = Vec::new();
        let mut pk = Vec::new();
        for r in rows {
            let name: String = r.try_get("name")?;
            let key: i64 = r.try_get("pk")?;
            if key > 0 {
                pk.push(name.clone());
            }
            cols.push(name);
        }
        Ok((cols, pk))
    }
}

/// Row-level differences between a live table and its shadow, and both row counts.
async fn compare(
    conn: &mut AnyConnection,
    dialect: &Dialect,
    table: &str,
) -> Result<(Vec<Difference>, i64, i64)> {
    let (cols, mut pk) = columns(conn, dialect, table).await?;
    if pk.is_empty() {
        pk = cols.clone();
    }
    let list = cols.join(", ");
    let pairs: Vec<String> = cols.iter().map(|c| format!("'{c}', {c}")).collect();
    let object = if dialect.postgres {
        format!("json_build_object({})::text", pairs.join(", "))
    } else {
        format!("json_object({})", pairs.join(", "))
    };
    let only = |a: &str, b: &str| {
        format!(
            "select {object} as row from (select {list} from {a} except select {list} from {b}) d"
        )
    };
    let live = dialect.live(table);
    let shadow = dialect.shadow(table);
    let rebuilt_only: Vec<String> = sqlx::query_scalar(&only(&shadow, &live))
        .fetch_all(&mut *conn)
        .await?;
    let live_only: Vec<String> = sqlx::query_scalar(&only(&live, &shadow))
        .fetch_all(&mut *conn)
        .await?;
    let live_rows: i64 = sqlx::query_scalar(&format!("select count(*) from {live}"))
        .fetch_one(&mut *conn)
        .await?;
    let rebuilt_rows: i64 = sqlx::query_scalar(&format!("select count(*) from {shadow}"))
        .fetch_one(&mut *conn)
        .await?;
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
