//! `gatehouse-replay` against a real store: verify finds a tampered event, rebuild restores the
//! read models.
use super::support::{fast_env, Server, TestDb, PASSWORD};

fn replay_binary() -> std::path::PathBuf {
    let bin = super::support::binary().with_file_name("gatehouse-replay");
    assert!(
        bin.exists(),
        "{} is missing: build it first (scripts/test does)",
        bin.display()
    );
    bin
}

async fn replay(db: &TestDb, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(replay_binary())
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn test_replay_verify_pins_a_tampered_event_and_rebuild_restores_read_models() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let account = server.register("audit@example.com", PASSWORD).await;
    server.token("audit@example.com", PASSWORD).await;
    server
        .login("audit@example.com", "not-the-password-1")
        .await;
    server.token("audit@example.com", PASSWORD).await;
    server.kill().await;

    let (code, out) = replay(&db, &["verify"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 broken"), "{out}");

    // Sign-up (with its email verification flow), two sign-ins (each trusting a device) and a
    // failure; the delivery of
    // the verification code may or may not have been recorded yet. The stream shows a
    // transaction only once every older one in the cluster has finished (other tests run
    // alongside), so the tail may take a moment to appear.
    let mut out = String::new();
    for _ in 0..100 {
        let (code, text) = replay(&db, &["history", "--aggregate", &account]).await;
        assert_eq!(code, 0);
        out = text;
        let types = out
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["event_type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .filter(|t| !t.starts_with("Notification"))
            .count();
        if types == 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let types = out
        .lines()
        .filter(|l| !l.contains("\"event_type\":\"Notification"))
        .count();
    assert_eq!(types, 10, "{out}");
    let failed_sequence = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["event_type"] == "LoginFailed")
        .and_then(|v| v["sequence"].as_i64())
        .unwrap();

    // An operator with superuser rights rewrites history: the failure becomes a success.
    let pool = db.pool().await;
    sqlx::query("alter table events disable trigger events_append_only")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "update events set payload = replace(payload::text, 'wrong_password', 'unknown_identifier')::json
          where aggregate_id = $1 and event_type = 'LoginFailed'",
    )
    .bind(&account)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("alter table events enable trigger events_append_only")
        .execute(&pool)
        .await
        .unwrap();
    let (code, out) = replay(&db, &["verify"]).await;
    assert_eq!(code, 1, "{out}");
    // The break shows at the link after the altered event.
    assert!(
        out.contains(&format!(
            "BROKEN {account} at sequence {}",
            failed_sequence + 1
        )),
        "{out}"
    );

    sqlx::query("delete from login_history_v1")
        .execute(&pool)
        .await
        .unwrap();
    // rebuild compares with the live read models (exit 1: they differ); --swap repairs them.
    let (code, out) = replay(&db, &["rebuild", "--swap"]).await;
    assert_eq!(code, 1, "{out}");
    let rows: i64 =
        sqlx::query_scalar("select count(*) from login_history_v1 where account_id = $1")
            .bind(&account)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rows, 3, "two successes and one failure");
}

/// Replay's text output with this test's stdout as raw bytes: (exit code, text).
async fn replay_text(db: &TestDb, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(replay_binary())
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("replay prints UTF-8"),
    )
}

#[tokio::test]
async fn test_replay_text_escapes_a_device_id_holding_terminal_escapes() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let account = server.register("tty@example.com", PASSWORD).await;
    // A client-chosen device id that would retitle the terminal, clear it, and forge a line.
    let evil =
        "\u{1b}]0;pwned\u{7}\u{1b}[2J\n  00:00:00  #99   LoginSucceeded   forged\u{9b}\u{202e}";
    for password in [PASSWORD, "not-the-password-1"] {
        let (status, body) = server
            .post(
                "/v1/login",
                serde_json::json!({"identifier": "tty@example.com", "password": password, "device_id": evil}),
            )
            .await;
        assert!(status == 200 || status == 401, "{body}");
    }
    server.kill().await;

    let mut outputs = Vec::new();
    for args in [
        vec!["timeline", "--account", account.as_str()],
        vec!["state", "--account", account.as_str()],
    ] {
        let (code, out) = replay_text(&db, &args).await;
        assert_eq!(code, 0, "{out}");
        outputs.push(out);
    }
    let timeline = &outputs[0];
    assert!(
        timeline.contains("device \\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{a}"),
        "{timeline}"
    );
    for out in &outputs {
        let raw: Vec<char> = out
            .chars()
            .filter(|c| (c.is_control() && *c != '\n') || *c == '\u{202e}')
            .collect();
        assert!(raw.is_empty(), "raw control characters {raw:?} in:\n{out}");
        assert!(
            !out.lines()
                .any(|l| l.contains("forged") && !l.contains("device")),
            "{out}"
        );
    }
}
