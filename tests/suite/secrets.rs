//! After real traffic, no secret is anywhere in the database in clear: not in events, snapshots,
//! side tables or read models.
use super::support::{fast_env, Server, TestDb, TEST_MASTER_KEY};

#[tokio::test]
async fn test_no_secret_or_personal_data_in_any_table() {
    let db = TestDb::new().await;
    // Debug logging, so that anything the server might log about requests is in the scan too.
    let mut env = fast_env();
    env.insert("GATEHOUSE_LOG".into(), "debug".into());
    let server = Server::start(Some(&db.url), &env).await;
    let password = "saffron-kettle-orbit-73-drift";
    let email = "secret.keeper@example.org";
    let (status, _) = server
        .post(
            "/v1/accounts",
            serde_json::json!({"email": email, "phone": "+14155551234", "password": password}),
        )
        .await;
    assert_eq!(status, 201);
    let mut tokens = Vec::new();
    for _ in 0..22 {
        // Enough sessions to cross a snapshot.
        tokens.push(server.token(email, password).await);
    }
    server.login(email, "a-wrong-password-here").await;
    server
        .authed(reqwest::Method::POST, "/v1/logout", &tokens[0])
        .await;
    server
        .authed(reqwest::Method::DELETE, "/v1/me/sessions", &tokens[1])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let pool = db.pool().await;
    let snapshots: i64 = sqlx::query_scalar("select count(*) from snapshots")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(snapshots > 0, "the scan should cover a snapshot too");
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.len() >= 8, "{tables:?}");
    let mut needles: Vec<String> = vec![
        password.into(),
        "wrong-password".into(),
        email.into(),
        "secret.keeper".into(),
        "14155551234".into(),
        TEST_MASTER_KEY.into(),
    ];
    for token in &tokens {
        needles.push(token.clone());
        needles.push(token.rsplit('.').next().unwrap().to_string());
    }
    let logs = server.logs().to_lowercase();
    assert!(
        !logs.is_empty(),
        "debug logging should have produced output"
    );
    for needle in &needles {
        assert!(
            !logs.contains(&needle.to_lowercase()),
            "the server logged a secret: {needle}"
        );
    }
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("select t::text from {table} t"))
            .fetch_all(&pool)
            .await
            .unwrap();
        for row in rows {
            let lower = row.to_lowercase();
            for needle in &needles {
                assert!(
                    !lower.contains(&needle.to_lowercase()),
                    "{table} holds a secret in clear: {row}"
                );
            }
        }
    }
}
