//! Bulk loading for a rebuild into fresh tables on PostgreSQL: rows that are new by construction
//! ([`crate::batch::insert_new_rows`]) go in with `COPY … FROM STDIN` instead of multi-row
//! `insert … values … on conflict do nothing`. PostgreSQL then parses no statement, binds no
//! parameter and takes no speculative-insertion path per row: a third to a half of the time for
//! the same rows.
//!
//! The projections write through sqlx's `AnyConnection`, which has no `COPY`; the rows are copied
//! on a typed connection of the rebuild's own, [`BulkLoad`], handed to the read model's work by
//! [`load`] (a task-local, so that every projection keeps one code path for every store). The
//! copy commits on its own, before the batch transaction does: acceptable only for scratch tables
//! that a failed rebuild throws away, which is why nothing but a rebuild into fresh tables uses
//! it. Later statements of the batch transaction see the copied rows (read committed).
use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use gatehouse_store::StoreError;
use sqlx::postgres::PgConnection;
use tokio::sync::Mutex;

use crate::cell::Cell;

/// A typed PostgreSQL connection that resolves table names as the batch's connection does.
#[derive(Clone)]
pub struct BulkLoad {
    conn: Arc<Mutex<PgConnection>>,
}

/// Bytes per `CopyData` message. (One message per batch, near a megabyte, made PostgreSQL spend
/// a tenth of its time in `malloc` bookkeeping for the buffer that receives it.)
const COPY_MESSAGE_BYTES: usize = 64 * 1024;

tokio::task_local! {
    static BULK: BulkLoad;
}

impl BulkLoad {
    /// Copies into tables on `conn`. A copy waits for no lock longer than a few seconds: a row
    /// key held by the batch's own uncommitted transaction would otherwise wait forever (that
    /// transaction waits for the copy), and must fail the rebuild instead.
    pub async fn new(mut conn: PgConnection) -> Result<Self, StoreError> {
        sqlx::query("set lock_timeout to '10s'")
            .execute(&mut conn)
            .await?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Closes the connection (politely: PostgreSQL logs a connection that just goes away), once
    /// no work holds it any more.
    pub async fn close(self) {
        if let Ok(conn) = Arc::try_unwrap(self.conn) {
            let _ = sqlx::Connection::close(conn.into_inner()).await;
        }
    }

    /// `COPY {table} ({columns}) FROM STDIN` of `cells`, `columns.len()` to a row.
    pub(crate) async fn copy_in(
        &self,
        table: &str,
        columns: &[&str],
        cells: &[Cell<'_>],
    ) -> Result<(), StoreError> {
        let data = copy_text(cells, columns.len());
        let mut conn = self.conn.lock().await;
        let statement = format!("copy {table} ({}) from stdin", columns.join(", "));
        let mut copy = conn.copy_in_raw(&statement).await?;
        for chunk in data.chunks(COPY_MESSAGE_BYTES) {
            copy.send(chunk).await?;
        }
        copy.finish().await?;
        Ok(())
    }
}

/// Runs `work` with its fresh-row inserts copied in through `bulk`.
pub fn load<F: Future>(bulk: BulkLoad, work: F) -> impl Future<Output = F::Output> {
    BULK.scope(bulk, work)
}

/// The bulk load of the running work, if any.
pub(crate) fn current() -> Option<BulkLoad> {
    BULK.try_with(BulkLoad::clone).ok()
}

/// `cells` in `COPY`'s text format: fields separated by tabs, rows ended by newlines, `\N` for
/// `null`, and in text the backslash, tab, newline and carriage return escaped.
pub fn copy_text(cells: &[Cell<'_>], width: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(cells.len() * 12);
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(if i % width.max(1) == 0 { b'\n' } else { b'\t' });
        }
        match cell {
            Cell::Text(None) | Cell::Int(None) | Cell::Bool(None) => out.extend_from_slice(b"\\N"),
            Cell::Text(Some(text)) => {
                for byte in text.bytes() {
                    match byte {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(byte),
                    }
                }
            }
            // Writing to a `Vec` cannot fail.
            Cell::Int(Some(n)) => {
                let _ = write!(out, "{n}");
            }
            Cell::Bool(Some(b)) => out.push(if *b { b't' } else { b'f' }),
        }
    }
    if !cells.is_empty() {
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_copy_text_separates_fields_by_tabs_and_rows_by_newlines() {
        let cells = [
            Cell::from("a"),
            Cell::from(1i64),
            Cell::from(true),
            Cell::from("b"),
            Cell::from(-2i64),
            Cell::from(false),
        ];
        assert_eq!(copy_text(&cells, 3), b"a\t1\tt\nb\t-2\tf\n");
    }

    #[test]
    fn test_copy_text_writes_null_apart_from_the_text_backslash_n() {
        let cells = [
            Cell::Text(None),
            Cell::Int(None),
            Cell::Bool(None),
            Cell::from("\\N"),
        ];
        assert_eq!(copy_text(&cells, 4), b"\\N\t\\N\t\\N\t\\\\N\n");
    }

    #[test]
    fn test_copy_text_escapes_what_would_end_a_field_or_a_row() {
        let cells = [Cell::from("tab\there\nnew\rline\\."), Cell::from("é")];
        assert_eq!(
            copy_text(&cells, 2),
            "tab\\there\\nnew\\rline\\\\.\té\n".as_bytes()
        );
    }

    #[test]
    fn test_copy_text_of_no_rows_is_empty() {
        assert!(copy_text(&[], 3).is_empty());
    }
}
