//! Read models keep up while a long transaction runs elsewhere in the PostgreSQL cluster (issue
//! #23, item 4): the stream is no longer read below the cluster-wide oldest running transaction,
//! so a transaction left open in another database does not stop a sign-in from reaching the
//! login history.
use sqlx::Connection as _;

use super::support::{admin_url, eventually, fast_env, Server, TestDb, PASSWORD};

#[tokio::test]
async fn test_login_history_catches_up_while_another_database_holds_a_long_transaction() {
    let db = TestDb::new().await;
    // Another database of the same cluster: a transaction with an id, idle and left open for
    // the whole test (read below the cluster-wide `pg_snapshot_xmin`, it held every read model back).
    let mut elsewhere = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::query("begin").execute(&mut elsewhere).await.unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut elsewhere)
        .await
        .unwrap();

    let server = Server::start(Some(&db.url), &fast_env()).await;
    server.register("horizon@example.com", PASSWORD).await;
    let token = server.token("horizon@example.com", PASSWORD).await;
    eventually("the sign-in is in the login history", || async {
        let (status, body) = server
            .authed(reqwest::Method::GET, "/v1/me/login-history", &token)
            .await;
        assert_eq!(status, 200, "{body}");
        body["entries"]
            .as_array()
            .is_some_and(|entries| entries.iter().any(|e| e["outcome"] == "succeeded"))
    })
    .await;

    sqlx::query("rollback")
        .execute(&mut elsewhere)
        .await
        .unwrap();
}
