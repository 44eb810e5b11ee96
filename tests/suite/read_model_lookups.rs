//! The read models' batch lookups (`in (…)` lists of keys) read by index even on tables that
//! were never analysed: autovacuum is off on some servers, and a rebuild fills fresh tables
//! faster than any autovacuum would analyse them. The runner opens every batch's transaction
//! with `enable_seqscan` off (`runner::lock_all_pg`).
use std::sync::{Arc, Mutex};

use gatehouse_projections::runner::BoxFuture;
use gatehouse_projections::{Projection, ProjectionRunner};
use gatehouse_store::{StoreError, StoredEvent};
use sqlx::{AnyConnection, Row};

use super::support::TestDb;

async fn plan(conn: &mut AnyConnection, sql: &str) -> Result<String, sqlx::Error> {
    let rows = sqlx::query(&format!("explain {sql}"))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()
        .map(|lines| lines.join("\n"))
}

/// A read model that only looks: it plans `lookup` inside the runner's transaction.
struct PlanProbe {
    lookup: String,
    seen: Mutex<Option<String>>,
}

impl Projection for PlanProbe {
    fn name(&self) -> &'static str {
        "plan_probe_v1"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        _event: &'a StoredEvent,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let plan = plan(conn, &self.lookup).await?;
            *self.seen.lock().unwrap() = Some(plan);
            Ok(())
        })
    }
}

#[tokio::test]
async fn test_projection_lookups_read_by_index_without_statistics() {
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
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         values ('Probe', 'probe-1', 1, 'Probed', '1.0', '{}', '{}')",
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

    // Outside a projection's transaction the planner scans the whole table for 300 keys: what
    // the runner's setting is for.
    let mut conn = store.any().acquire().await.unwrap();
    assert!(plan(&mut conn, &lookup).await.unwrap().contains("Seq Scan"));
    drop(conn);

    let probe = Arc::new(PlanProbe {
        lookup,
        seen: Mutex::new(None),
    });
    let runner = ProjectionRunner::new(store.clone(), vec![probe.clone()]);
    // The stream hands out an event once every older transaction of the cluster has ended
    // (`pg_snapshot_xmin` is cluster-wide), so a test running beside this one can hold it back
    // for a moment: poll rather than expect it on the first pass.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if runner.run_once().await.unwrap() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the probe event was never delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let inside = probe.seen.lock().unwrap().clone().expect("the probe ran");
    assert!(!inside.contains("Seq Scan"), "{inside}");
    assert!(inside.contains("alert_known_v1_pkey"), "{inside}");

    // The setting ends with the transaction: the pool's connections plan as before.
    let setting: String = sqlx::query_scalar("select current_setting('enable_seqscan')")
        .fetch_one(store.any())
        .await
        .unwrap();
    assert_eq!(setting, "on");
}
