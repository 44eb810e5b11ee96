//! The attacker matrix of the proofs issue through the form routes (issue #21 item 3): the
//! pages call the API's proof policy, so a holder of a stolen session cookie (the whole cookie
//! jar, so the CSRF token is no obstacle) is asked for the fresh proof on every sensitive form
//! and changes nothing; a stranger without a cookie is sent to sign in. Table-driven, one fresh
//! account per row, against the real binary on PostgreSQL with a real SMTP server. The rows that
//! remove a passkey or a security key first register one over the API (the owner, with the
//! test kit's software authenticator and full proof), so the thief has a real key to aim at.
use reqwest::header::LOCATION;
use reqwest::Method;
use serde_json::{json, Value};

use super::e2e_recovery::{world, World};
use super::support::{Server, SoftPasskey, PASSWORD};
use super::ui_pages::PageClient;
use super::ui_security_center::{proof_asked, signed_in_with_factor, submit};

/// One sensitive form: its page (for the CSRF token), its route, its fields without proof and
/// the credential it aims at (registered first, its id sent as `key_id`).
struct Row {
    action: &'static str,
    page: &'static str,
    path: &'static str,
    form: &'static [(&'static str, &'static str)],
    credential: Option<Credential>,
}

/// A WebAuthn credential of the owner, registered over the API before the thief's try.
#[derive(Clone, Copy)]
enum Credential {
    Passkey,
    SecurityKey,
}

impl Credential {
    /// The API's collection of the credential.
    fn api(self) -> &'static str {
        match self {
            Self::Passkey => "/v1/me/passkeys",
            Self::SecurityKey => "/v1/me/security-keys",
        }
    }
}

/// The origin the server's WebAuthn settings accept by default.
const WEBAUTHN_ORIGIN: &str = "http://localhost:8080";

/// Registers a credential for the owner with the full proof (the password and one of the
/// backup codes, as a TOTP factor is enrolled); answers its id.
async fn register(server: &Server, token: &str, kind: Credential, backup_code: &str) -> String {
    let mut authenticator = SoftPasskey::new(WEBAUTHN_ORIGIN);
    let (status, body) = server
        .post_authed(&format!("{}/registration", kind.api()), token, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let credential = authenticator.register(&body["options"]).unwrap();
    let (status, body) = server
        .post_authed(
            kind.api(),
            token,
            json!({"ceremony_id": body["ceremony_id"], "name": "owner's key",
                   "credential": credential,
                   "proof": {"password": PASSWORD, "method": "backup_code", "code": backup_code}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["key_id"].as_str().unwrap().to_string()
}

const ROWS: [Row; 10] = [
    Row {
        action: "change the password",
        page: "/account/password",
        path: "/account/password",
        form: &[("new_password", "thief-chosen-password-77")],
        credential: None,
    },
    Row {
        action: "remove the second factor",
        page: "/account/factors",
        path: "/account/factors/totp/remove",
        form: &[],
        credential: None,
    },
    Row {
        action: "make new backup codes",
        page: "/account/factors",
        path: "/account/factors/backup-codes",
        form: &[],
        credential: None,
    },
    Row {
        action: "add a whitelist address",
        page: "/account/whitelist",
        path: "/account/whitelist/add",
        form: &[
            ("asset", "BTC"),
            ("network", "bitcoin"),
            ("address", "bc1qthiefthiefthiefthiefthiefthief0000"),
        ],
        credential: None,
    },
    Row {
        action: "create an API key",
        page: "/account/api-keys",
        path: "/account/api-keys/create",
        form: &[
            ("name", "thief"),
            ("scope_read", "on"),
            ("scope_withdraw", "on"),
        ],
        credential: None,
    },
    Row {
        action: "change the email",
        page: "/account/contacts",
        path: "/account/contacts/change",
        form: &[("kind", "email"), ("value", "thief@example.net")],
        credential: None,
    },
    Row {
        action: "add a phone",
        page: "/account/contacts",
        path: "/account/contacts/change",
        form: &[("kind", "phone"), ("value", "+14155552671")],
        credential: None,
    },
    Row {
        action: "set the anti-phishing phrase",
        page: "/account/contacts",
        path: "/account/contacts/phrase",
        form: &[("action", "set"), ("phrase", "thief knows this")],
        credential: None,
    },
    Row {
        action: "remove a passkey",
        page: "/account/factors",
        path: "/account/factors/passkeys/remove",
        form: &[],
        credential: Some(Credential::Passkey),
    },
    Row {
        action: "remove a security key",
        page: "/account/factors",
        path: "/account/factors/security-keys/remove",
        form: &[],
        credential: Some(Credential::SecurityKey),
    },
];

/// What the owner sees of the account: what any of the rows would change.
async fn owner_view(server: &Server, token: &str) -> Value {
    let mut view = json!({});
    for path in [
        "/v1/me",
        "/v1/me/api-keys",
        "/v1/me/withdrawal-addresses",
        "/v1/me/restrictions",
        "/v1/me/backup-codes",
        "/v1/me/passkeys",
        "/v1/me/security-keys",
    ] {
        let (status, body) = server.authed(Method::GET, path, token).await;
        assert_eq!(status, 200, "{path}: {body}");
        view[path] = body;
    }
    view
}

async fn thief_is_asked_for_proof(w: &World, n: usize, row: &Row) -> Option<String> {
    let email = format!("matrix.page.{n}@example.com");
    let (owner, token, codes) = signed_in_with_factor(w, &email).await;
    let key_id = match row.credential {
        Some(kind) => Some(register(&w.server, &token, kind, &codes[0]).await),
        None => None,
    };
    let mut form = row.form.to_vec();
    if let Some(id) = &key_id {
        form.push(("key_id", id));
    }
    let before = owner_view(&w.server, &token).await;
    if let (Some(kind), Some(id)) = (row.credential, &key_id) {
        assert!(
            before[kind.api()].to_string().contains(id.as_str()),
            "{before}"
        );
    }
    let mut thief = PageClient::new(&w.server);
    thief.cookies = owner.cookies.clone();
    let (status, _, html) = submit(&mut thief, row.page, row.path, &form).await;
    let mut wrong = Vec::new();
    if status != 403 {
        wrong.push(format!("answered {status}"));
    } else if !proof_asked(&html) {
        wrong.push("did not ask for the proof".to_string());
    }
    if owner_view(&w.server, &token).await != before {
        wrong.push("changed the account".to_string());
    }
    // The password still signs in: nothing was changed behind the page's back.
    if w.server.login(&email, PASSWORD).await.0 != 200 {
        wrong.push("the owner's password no longer works".to_string());
    }
    (!wrong.is_empty()).then(|| format!("{}: {}", row.action, wrong.join(", ")))
}

/// Every sensitive form, tried by the holder of a stolen cookie jar: asked for the fresh
/// proof, the account unchanged; and by a stranger without a cookie: sent to sign in.
#[tokio::test]
async fn test_stolen_cookie_is_asked_for_proof_on_every_sensitive_form() {
    let w = world(&[
        ("GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE", "1000000"),
        ("GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE", "10000"),
    ])
    .await;
    let mut failures = Vec::new();
    for (n, row) in ROWS.iter().enumerate() {
        if let Some(failure) = thief_is_asked_for_proof(&w, n, row).await {
            failures.push(failure);
        }
        // A stranger: a CSRF cookie and token of their own, no session.
        let mut stranger = PageClient::new(&w.server);
        let mut form = row.form.to_vec();
        if row.credential.is_some() {
            form.push(("key_id", "c29tZS1rZXk"));
        }
        let (status, headers, _) = submit(&mut stranger, "/sign-in", row.path, &form).await;
        if status != 303
            || headers.get(LOCATION).map(|l| l.to_str().unwrap_or(""))
                != Some("/sign-in?notice=expired")
        {
            failures.push(format!("{}: a stranger got {status}", row.action));
        }
    }
    assert!(
        failures.is_empty(),
        "the form routes disagree with the proof policy:\n{}",
        failures.join("\n")
    );
}
