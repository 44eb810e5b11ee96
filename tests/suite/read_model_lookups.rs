//! The read models' batch lookups (`in (…)` lists of keys) read by index even on tables that
//! were never analysed: autovacuum is off on some servers, and a rebuild fills fresh tables
//! faster than any autovacuum would analyse them.
use sqlx::{Connection, Row};

use super::support::TestDb;

async fn plan(conn: &mut sqlx::AnyConnection, sql: &str) -> String {
    let rows = sqlx::query(&format!("explain {sql}"))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn seqscan(conn: &mut sqlx::AnyConnection) -> String {
    sqlx::query_scalar("select current_setting('enable_seqscan')")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn test_lookups_read_by_index_without_statistics_until_the_transaction_ends() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    // 20,000 known devices, never analysed (autovacuum kept off this table for the test).
    sqlx::query("alter table alert_known_v1 set (autovacuum_enabled = false)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "insert into alert_known_v1 (account_id, kind, value)
         select 'acct-' || g, 'device', 'd' || g from generate_series(1, 20000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let keys: Vec<String> = (1..=300).map(|i| format!("'acct-{i}'")).collect();
    let lookup = format!(
        "select account_id, kind, value from alert_known_v1 where account_id in ({})",
        keys.join(", ")
    );
    let store = db.store().await;
    let mut conn = store.any().acquire().await.unwrap().detach();

    // Left to itself, the planner scans the whole table for 300 keys (what the guard is for).
    assert!(plan(&mut conn, &lookup).await.contains("Seq Scan"));

    let mut tx = conn.begin().await.unwrap();
    gatehouse_projections::batch::index_lookups(&mut tx, true)
        .await
        .unwrap();
    let guarded = plan(&mut tx, &lookup).await;
    assert!(!guarded.contains("Seq Scan"), "{guarded}");
    assert!(guarded.contains("alert_known_v1_pkey"), "{guarded}");
    gatehouse_projections::batch::index_lookups(&mut tx, false)
        .await
        .unwrap();
    assert_eq!(seqscan(&mut tx).await, "on");
    // Left on at the end of a transaction, it ends with it.
    gatehouse_projections::batch::index_lookups(&mut tx, true)
        .await
        .unwrap();
    assert_eq!(seqscan(&mut tx).await, "off");
    tx.commit().await.unwrap();
    assert_eq!(seqscan(&mut conn).await, "on");
}
