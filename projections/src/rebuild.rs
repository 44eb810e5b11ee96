//! The SQL of a rebuild into shadow tables (`gatehouse-replay rebuild`): making the shadow
//! tables, connections that resolve names to them, the runner's per-projection lock, the rows a
//! live table and its shadow do not share, and the swap of the rebuilt rows into the live tables.
//! The replay tool drives the rebuild (what to fold when, the report); the read models' tables
//! and their checkpoints are this crate's, so their SQL is here.
//!
//! Shadow tables: on PostgreSQL, tables of the same names in schema [`SHADOW_SCHEMA`] (created
//! `unlogged` and `like` the live ones, kept after the run for inspection); on the embedded store,
//! temporary tables of the same names. A rebuild connection resolves unqualified names to the
//! shadow tables first (`search_path` on PostgreSQL; SQLite searches `temp` first), so the
//! projections' own SQL writes there unchanged.
use std::sync::Arc;

use chrono::Utc;
use gatehouse_store::{Backend, Store, StoreError, StreamPosition};
use sqlx::AnyConnection;

use crate::bulk::BulkLoad;
use crate::runner::Projection;

/// The PostgreSQL schema of the shadow tables.
pub const SHADOW_SCHEMA: &str = "gatehouse_rebuild";

/// Why the shadow tables could not be made or reached.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A live table's schema could not be copied, or the store cannot bulk load.
    #[error("{0}")]
    Schema(String),
}

impl From<sqlx::Error> for ShadowError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Where the live tables and their shadows are.
pub struct Shadow {
    postgres: bool,
    live_schema: String,
}

/// A statement that builds an index on a shadow table after the fold (PostgreSQL). It names the
/// shadow table in full, so any connection of the store runs it.
pub struct DeferredIndex(String);

impl DeferredIndex {
    /// Builds the index.
    pub async fn build(&self, store: &Store) -> Result<(), StoreError> {
        sqlx::query(&self.0).execute(store.any()).await?;
        Ok(())
    }
}

/// What a live table and its shadow do not share, and both row counts.
pub struct TableRows {
    /// The table's columns, in order.
    pub columns: Vec<String>,
    /// Its primary key's columns (every column when it has none).
    pub key: Vec<String>,
    /// Rows of the shadow table that the live one lacks, each a JSON object of every column.
    pub rebuilt_only: Vec<String>,
    /// Rows of the live table that the shadow lacks, likewise.
    pub live_only: Vec<String>,
    /// Rows in the live table.
    pub live_rows: i64,
    /// Rows in the shadow table.
    pub rebuilt_rows: i64,
}

/// An index of a live table, as PostgreSQL's catalogue describes it.
#[derive(sqlx::FromRow)]
struct IndexRow {
    name: String,
    is_unique: bool,
    def: String,
}

/// An index of a live table, to be made on its shadow.
struct LiveIndex {
    name: String,
    unique: bool,
    /// `using btree (…)` and what follows (predicate, included columns).
    method: String,
}

/// A column as SQLite's `pragma_table_info` describes it.
#[derive(sqlx::FromRow)]
struct PragmaColumn {
    name: String,
    pk: i64,
}

impl Shadow {
    /// The live tables of `store` as `conn` sees them (its current schema on PostgreSQL).
    pub async fn of(store: &Store, conn: &mut AnyConnection) -> Result<Self, StoreError> {
        let postgres = store.kind() == "postgres";
        let live_schema = if postgres {
            sqlx::query_scalar::<_, String>("select current_schema()::text")
                .fetch_one(&mut *conn)
                .await?
        } else {
            "main".to_string()
        };
        Ok(Self {
            postgres,
            live_schema,
        })
    }

    /// On PostgreSQL (else the embedded store).
    pub fn postgres(&self) -> bool {
        self.postgres
    }

    /// A live table's qualified name.
    pub fn live(&self, table: &str) -> String {
        if self.postgres {
            format!("\"{}\".{table}", self.live_schema.replace('"', "\"\""))
        } else {
            format!("main.{table}")
        }
    }

    /// A shadow table's qualified name.
    pub fn shadow(&self, table: &str) -> String {
        if self.postgres {
            format!("{SHADOW_SCHEMA}.{table}")
        } else {
            format!("temp.{table}")
        }
    }

    /// Drops and recreates the shadow tables of `projections`, and makes `conn` resolve to them
    /// first. Returns the indexes to build after the fold (PostgreSQL).
    pub async fn create(
        &self,
        conn: &mut AnyConnection,
        projections: &[Arc<dyn Projection>],
    ) -> Result<Vec<DeferredIndex>, ShadowError> {
        let mut deferred = Vec::new();
        if self.postgres {
            sqlx::query(&format!("create schema if not exists {SHADOW_SCHEMA}"))
                .execute(&mut *conn)
                .await?;
            for p in projections {
                for table in p.tables() {
                    let shadow = self.shadow(table);
                    sqlx::query(&format!("drop table if exists {shadow}"))
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(&format!(
                        "create unlogged table {shadow} (like {} including all excluding indexes)",
                        self.live(table)
                    ))
                    .execute(&mut *conn)
                    .await?;
                    for index in self.live_indexes(conn, table).await? {
                        let sql = format!(
                            "create {}index \"{}\" on {shadow} {}",
                            if index.unique { "unique " } else { "" },
                            index.name.replace('"', "\"\""),
                            index.method
                        );
                        if p.deferred_indexes().contains(&index.name.as_str()) {
                            deferred.push(DeferredIndex(sql));
                        } else {
                            sqlx::query(&sql).execute(&mut *conn).await?;
                        }
                    }
                }
            }
            self.resolve_to_shadow(conn).await?;
        } else {
            for p in projections {
                for table in p.tables() {
                    let sql: Option<String> = sqlx::query_scalar(
                        "select sql from main.sqlite_master where type = 'table' and name = $1",
                    )
                    .bind(*table)
                    .fetch_optional(&mut *conn)
                    .await?;
                    let sql =
                        sql.ok_or_else(|| ShadowError::Schema(format!("no table {table}")))?;
                    let lower = sql.to_ascii_lowercase();
                    let Some(at) = lower.find("create table") else {
                        return Err(ShadowError::Schema(format!(
                            "cannot copy the schema of {table}"
                        )));
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

    /// The indexes of a live table (its primary key included, as a unique index: `on conflict`
    /// infers it from the columns alike).
    async fn live_indexes(
        &self,
        conn: &mut AnyConnection,
        table: &str,
    ) -> Result<Vec<LiveIndex>, ShadowError> {
        let rows: Vec<IndexRow> = sqlx::query_as(
            "select c.relname::text as name, i.indisunique as is_unique,
                    pg_get_indexdef(i.indexrelid) as def
               from pg_index i join pg_class c on c.oid = i.indexrelid
              where i.indrelid = ($1)::regclass
              order by c.relname",
        )
        .bind(self.live(table))
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(at) = row.def.find(" USING ") else {
                return Err(ShadowError::Schema(format!(
                    "cannot copy the index {:?}",
                    row.def
                )));
            };
            out.push(LiveIndex {
                method: row.def[at + 1..].to_string(),
                name: row.name,
                unique: row.is_unique,
            });
        }
        Ok(out)
    }

    /// A connection of its own (PostgreSQL) that resolves names to the shadow tables first and
    /// commits without waiting for the disk: the shadow tables are scratch space, and a crashed
    /// rebuild is run again.
    pub async fn connection(&self, store: &Store) -> Result<AnyConnection, StoreError> {
        let mut conn = store.any().acquire().await?.detach();
        self.resolve_to_shadow(&mut conn).await?;
        sqlx::query("set synchronous_commit to off")
            .execute(&mut conn)
            .await?;
        // Key lookups by index whatever the (absent) statistics of tables being filled say, as
        // in the runner's transactions ([`crate::runner::lock_all_pg`]).
        sqlx::query("set enable_seqscan to off")
            .execute(&mut conn)
            .await?;
        Ok(conn)
    }

    /// A typed connection for `COPY` into the shadow tables ([`crate::bulk`]), resolving names
    /// and committing as [`Shadow::connection`] does.
    pub async fn bulk_connection(&self, store: &Store) -> Result<BulkLoad, ShadowError> {
        let Backend::Postgres(pool) = store.backend() else {
            return Err(ShadowError::Schema("bulk load needs PostgreSQL".into()));
        };
        let mut conn = pool.acquire().await?.detach();
        sqlx::query(&self.search_path_to_shadow())
            .execute(&mut conn)
            .await?;
        sqlx::query("set synchronous_commit to off")
            .execute(&mut conn)
            .await?;
        Ok(BulkLoad::new(conn).await?)
    }

    /// `set search_path` that resolves unqualified names to the shadow tables first.
    fn search_path_to_shadow(&self) -> String {
        format!(
            "set search_path to {SHADOW_SCHEMA}, \"{}\"",
            self.live_schema.replace('"', "\"\"")
        )
    }

    /// Makes the connection resolve unqualified names to the shadow tables first (PostgreSQL).
    async fn resolve_to_shadow(&self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        sqlx::query(&self.search_path_to_shadow())
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Takes, in `conn`'s transaction, the lock the live runner takes for projection `name`
    /// (an advisory lock on PostgreSQL; on SQLite a write first, which takes the write lock).
    pub async fn lock_like_runner(
        &self,
        conn: &mut AnyConnection,
        name: &str,
    ) -> Result<(), StoreError> {
        if self.postgres {
            sqlx::query("select pg_advisory_xact_lock(hashtext($1)::bigint)")
                .bind(name)
                .execute(&mut *conn)
                .await?;
        } else {
            sqlx::query(
                "insert into main.projection_checkpoints (projection, tx_id, position, updated_ms)
                 values ($1, 0, 0, $2) on conflict (projection) do nothing",
            )
            .bind(name)
            .bind(Utc::now().timestamp_millis())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Column names and primary-key column names of a live table.
    async fn columns(
        &self,
        conn: &mut AnyConnection,
        table: &str,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        if self.postgres {
            let cols: Vec<String> = sqlx::query_scalar(
                "select column_name::text from information_schema.columns
                  where table_schema = $1 and table_name = $2 order by ordinal_position",
            )
            .bind(&self.live_schema)
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            let pk: Vec<String> = sqlx::query_scalar(
                "select a.attname::text from pg_index i
                   join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
                  where i.indrelid = ($1)::regclass and i.indisprimary order by a.attnum",
            )
            .bind(self.live(table))
            .fetch_all(&mut *conn)
            .await?;
            Ok((cols, pk))
        } else {
            let rows: Vec<PragmaColumn> =
                sqlx::query_as("select name, pk from pragma_table_info($1) order by cid")
                    .bind(table)
                    .fetch_all(&mut *conn)
                    .await?;
            let pk = rows
                .iter()
                .filter(|c| c.pk > 0)
                .map(|c| c.name.clone())
                .collect();
            Ok((rows.into_iter().map(|c| c.name).collect(), pk))
        }
    }

    /// The rows a live table and its shadow do not share, and both row counts.
    pub async fn table_rows(
        &self,
        conn: &mut AnyConnection,
        table: &str,
    ) -> Result<TableRows, StoreError> {
        let (cols, mut pk) = self.columns(conn, table).await?;
        if pk.is_empty() {
            pk = cols.clone();
        }
        let list = cols.join(", ");
        let pairs: Vec<String> = cols.iter().map(|c| format!("'{c}', {c}")).collect();
        let object = if self.postgres {
            format!("json_build_object({})::text", pairs.join(", "))
        } else {
            format!("json_object({})", pairs.join(", "))
        };
        let only = |a: &str, b: &str| {
            format!(
                "select {object} as row from (select {list} from {a} except select {list} from {b}) d"
            )
        };
        let live = self.live(table);
        let shadow = self.shadow(table);
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
        Ok(TableRows {
            columns: cols,
            key: pk,
            rebuilt_only,
            live_only,
            live_rows,
            rebuilt_rows,
        })
    }

    /// Replaces the live rows of `projection` with the rebuilt ones and sets its checkpoint to
    /// `at`, in `conn`'s transaction.
    pub async fn swap(
        &self,
        conn: &mut AnyConnection,
        projection: &dyn Projection,
        at: StreamPosition,
    ) -> Result<(), StoreError> {
        for table in projection.tables() {
            sqlx::query(&format!("delete from {}", self.live(table)))
                .execute(&mut *conn)
                .await?;
            sqlx::query(&format!(
                "insert into {} select * from {}",
                self.live(table),
                self.shadow(table)
            ))
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(
            "insert into projection_checkpoints (projection, tx_id, position, updated_ms)
             values ($1, $2, $3, $4)
             on conflict (projection) do update
                set tx_id = excluded.tx_id, position = excluded.position,
                    updated_ms = excluded.updated_ms",
        )
        .bind(projection.name())
        .bind(at.tx)
        .bind(at.pos)
        .bind(Utc::now().timestamp_millis())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Where projection `name` stands, as `conn` sees it (the start of the stream before its first
/// batch).
pub async fn checkpoint(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<StreamPosition, StoreError> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("select tx_id, position from projection_checkpoints where projection = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row
        .map(|(tx, pos)| StreamPosition { tx, pos })
        .unwrap_or_default())
}
