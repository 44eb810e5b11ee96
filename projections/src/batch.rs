//! Set-based writes for read models: a batch of rows in one multi-row statement instead of a
//! round trip per row. The runner hands a projection every change of a batch at once (live
//! batches are the events of many commands, a rebuild's are a thousand events).
use gatehouse_store::StoreError;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::cell::Cell;

/// Rows per statement: far below the bind limits of PostgreSQL (65,535) and SQLite (32,766) at
/// the widest row (11 columns), large enough that the round trip and each statement's setup no
/// longer count (a 1 M-event rebuild: 12.0-12.3 s at 250, 12.5 s at 100).
pub const ROWS_PER_STATEMENT: usize = 250;

/// A query being built.
pub type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// Adds one row's cells, in column order, to the buffer.
pub type RowCells<'a, R> = fn(&'a R, &mut Vec<Cell<'a>>);

/// Binds one cell as the next parameter.
pub fn bind_cell<'q>(query: AnyQuery<'q>, cell: Cell<'q>) -> AnyQuery<'q> {
    match cell {
        Cell::Text(v) => query.bind(v),
        Cell::Int(v) => query.bind(v),
        Cell::Bool(v) => query.bind(v),
    }
}

/// The cells of `rows`, row after row, and how many the first row has. (Rows of another width
/// fail in the database: the statement's parameters or `COPY`'s columns do not match.)
fn cells_of<'a, R>(rows: &'a [R], cells: RowCells<'a, R>) -> (Vec<Cell<'a>>, usize) {
    let mut out = Vec::new();
    let mut width = 0;
    for (i, row) in rows.iter().enumerate() {
        cells(row, &mut out);
        if i == 0 {
            width = out.len();
        }
    }
    (out, width)
}

/// Writes `rows` as `{head} values (…), (…) {tail}`, in statements of at most
/// [`ROWS_PER_STATEMENT`] rows. `cells` gives one row's values in column order.
pub async fn insert_rows<'a, R>(
    conn: &mut AnyConnection,
    head: &str,
    tail: &str,
    rows: &'a [R],
    cells: RowCells<'a, R>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let (values, width) = cells_of(chunk, cells);
        let sql = format!("{head} values {} {tail}", placeholders(chunk.len(), width));
        let mut query = sqlx::query(&sql);
        for cell in values {
            query = bind_cell(query, cell);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts rows that are new by construction: each row's key comes from the event that made it,
/// so a row can only exist already when that event is applied again, and is then left alone
/// (`on conflict do nothing`). Inside [`crate::bulk::load`] (a rebuild into fresh tables, where
/// every event is applied once) the rows go in with `COPY` instead, which refuses duplicates.
pub async fn insert_new_rows<'a, R>(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    rows: &'a [R],
    cells: RowCells<'a, R>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    if let Some(bulk) = crate::bulk::current() {
        let (values, _) = cells_of(rows, cells);
        return bulk.copy_in(table, columns, &values).await;
    }
    insert_rows(
        conn,
        &format!("insert into {table} ({})", columns.join(", ")),
        "on conflict do nothing",
        rows,
        cells,
    )
    .await
}

/// Updates rows of `table` from a list of values, [`ROWS_PER_STATEMENT`] at a time:
/// `update {table} set {set} from (values …) as v where {table}.{key} = v.column1`. `set` names the
/// values `v.column2`, `v.column3`… (`values` columns are named so on PostgreSQL and SQLite
/// alike); `types` (SQL types, key first) give PostgreSQL the parameters' types. `cells` gives
/// one row's values in that order.
pub async fn update_rows<'a, R>(
    conn: &mut AnyConnection,
    table: &str,
    set: &str,
    key: &str,
    types: &[&str],
    rows: &'a [R],
    cells: RowCells<'a, R>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let values = (0..chunk.len())
            .map(|r| {
                let cells: Vec<String> = types
                    .iter()
                    .enumerate()
                    .map(|(c, t)| format!("cast(${} as {t})", r * types.len() + c + 1))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "update {table} set {set} from (values {values}) as v where {table}.{key} = v.column1"
        );
        let (bound, _) = cells_of(chunk, cells);
        let mut query = sqlx::query(&sql);
        for cell in bound {
            query = bind_cell(query, cell);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `$from, $from+1, …` for `n` values (an `in (…)` list).
pub fn list(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2), ($3, $4)` for 2 rows of width 2.
pub fn placeholders(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * width + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

/// Keeps, for each key, only the last item (in order of first appearance of the key): a run of
/// changes that each set the same columns of a row collapses to its last one, and one multi-row
/// upsert may touch each row once.
pub fn last_per_key<T: Clone, K: Eq + std::hash::Hash + Clone>(
    items: &[T],
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut index: std::collections::HashMap<K, usize> =
        std::collections::HashMap::with_capacity(items.len());
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        match index.get(&key(item)) {
            Some(&i) => out[i] = item.clone(),
            None => {
                index.insert(key(item), out.len());
                out.push(item.clone());
            }
        }
    }
    out
}

/// Splits `items` into maximal runs of consecutive items of the same kind, in order.
pub fn runs<T, K: PartialEq>(items: &[T], kind: impl Fn(&T) -> K) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || kind(&items[i]) != kind(&items[start]) {
            if i > start {
                out.push(&items[start..i]);
            }
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_placeholders_number_across_rows() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 1), "($1)");
    }

    #[test]
    fn test_last_per_key_keeps_order_of_first_appearance_and_last_value() {
        let items = vec![("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)];
        assert_eq!(
            last_per_key(&items, |i| i.0),
            vec![("a", 3), ("b", 5), ("c", 4)]
        );
    }

    #[test]
    fn test_runs_split_where_the_kind_changes() {
        let items = [1, 1, 2, 2, 2, 1];
        let r = runs(&items, |i| *i);
        assert_eq!(r, vec![&[1, 1][..], &[2, 2, 2][..], &[1][..]]);
        assert!(runs(&[] as &[i32], |i| *i).is_empty());
    }
}
