//! `batch::insert_new_rows` inside and outside `bulk::load`: outside (the live runner), a row
//! written again by an event applied twice is left alone; inside (a rebuild's fold into fresh
//! tables, where each event is applied once), rows are copied in and a duplicate key fails the
//! rebuild instead of vanishing.
use gatehouse_projections::batch::insert_new_rows;
use gatehouse_projections::bulk::{self, BulkLoad};
use gatehouse_projections::cell::Cell;
use gatehouse_store::Backend;
use sqlx::Connection;

use super::support::TestDb;

const COLUMNS: [&str; 3] = ["id", "note", "n"];

fn cells<'a>(row: &'a (String, Option<String>, i64), c: &mut Vec<Cell<'a>>) {
    c.extend([Cell::from(&row.0), Cell::from(&row.1), Cell::from(row.2)]);
}

#[tokio::test]
async fn test_new_rows_are_copied_in_bulk_and_a_duplicate_fails_instead_of_vanishing() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    sqlx::query("create table bulk_probe (id text primary key, note text, n bigint not null)")
        .execute(&pool)
        .await
        .unwrap();
    let store = db.store().await;
    let mut conn = store.any().acquire().await.unwrap().detach();
    let rows = vec![
        ("a".to_string(), Some("tab\there \\N".to_string()), 1),
        ("b".to_string(), None, -2),
    ];

    // Outside a bulk load: inserted, and inserted again without error or duplicate.
    for _ in 0..2 {
        insert_new_rows(&mut conn, "bulk_probe", &COLUMNS, &rows, cells)
            .await
            .unwrap();
    }
    let count: i64 = sqlx::query_scalar("select count(*) from bulk_probe")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 2);

    // Inside one: copied in, values intact (null apart from the text `\N`).
    let Backend::Postgres(typed) = store.backend() else {
        panic!("PostgreSQL store expected");
    };
    let load = BulkLoad::new(typed.acquire().await.unwrap().detach())
        .await
        .unwrap();
    let fresh = vec![("c".to_string(), Some("x\\y\nz".to_string()), 3)];
    bulk::load(
        load.clone(),
        insert_new_rows(&mut conn, "bulk_probe", &COLUMNS, &fresh, cells),
    )
    .await
    .unwrap();
    let stored: Vec<(String, Option<String>, i64)> =
        sqlx::query_as("select id, note, n from bulk_probe order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        vec![rows[0].clone(), rows[1].clone(), fresh[0].clone()]
    );

    // The attack on the shortcut: a row that is not new. COPY refuses it, the rebuild fails.
    let again = bulk::load(
        load.clone(),
        insert_new_rows(&mut conn, "bulk_probe", &COLUMNS, &rows[..1], cells),
    )
    .await;
    let err = again
        .expect_err("a duplicate key must fail a bulk load")
        .to_string();
    assert!(err.contains("duplicate key"), "{err}");
    let count: i64 = sqlx::query_scalar("select count(*) from bulk_probe")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 3);
    load.close().await;
    let _ = conn.close().await;
}
