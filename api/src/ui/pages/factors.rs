//! Second factors (`/account/factors`): TOTP enrolment with its QR code, backup codes (shown
//! once), security keys, and passkeys (a way to sign in on their own). Adding a factor or new backup codes needs the proof the API's proof
//! policy asks for: the form collects the password (and a current factor's code when one is
//! enrolled) and passes them as the API's `proof`.
use askama::Template;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{mirror, outcome, section, Empty, Problem, ProofFields, Section, SignedIn};
use crate::ui::csrf::CsrfForm;
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

#[derive(Debug, Deserialize)]
struct BackupLeft {
    remaining: usize,
    totp_enrolled: bool,
}

/// A registered security key or passkey.
#[derive(Debug, Deserialize)]
pub struct Key {
    key_id: String,
    name: String,
    registered_at: chrono::DateTime<chrono::Utc>,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Key {
    fn registered(&self) -> String {
        self.registered_at.format("%Y-%m-%d").to_string()
    }

    fn last_used(&self) -> String {
        self.last_used_at.map_or("never".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        })
    }
}

#[derive(Debug, Deserialize)]
struct KeyList {
    keys: Vec<Key>,
}

#[derive(Debug, Deserialize)]
struct PasskeyList {
    passkeys: Vec<Key>,
}

/// What a WebAuthn registration form adds: a security key (a second factor) or a passkey (a
/// way to sign in on its own). Both go through the same two API calls, under their own paths,
/// and the same proof.
#[derive(Debug, Clone, Copy)]
enum Credential {
    SecurityKey,
    Passkey,
}

impl Credential {
    /// The API collection: `POST {api}/registration` for the options, `POST {api}` to finish.
    fn api(self) -> &'static str {
        match self {
            Self::SecurityKey => "/v1/me/security-keys",
            Self::Passkey => "/v1/me/passkeys",
        }
    }

    /// Where the page goes once it is registered.
    fn done(self) -> &'static str {
        match self {
            Self::SecurityKey => "/account/factors?done=key",
            Self::Passkey => "/account/factors?done=passkey",
        }
    }

    /// Where the page goes once one is removed.
    fn removed(self) -> &'static str {
        match self {
            Self::SecurityKey => "/account/factors?done=key-removed",
            Self::Passkey => "/account/factors?done=passkey-removed",
        }
    }

    fn registered(self) -> &'static str {
        match self {
            Self::SecurityKey => "Your security key is registered.",
            Self::Passkey => "Your passkey is registered: you can sign in with it alone.",
        }
    }
}

/// The second factors page.
#[derive(Template)]
#[template(path = "self/factors.html")]
pub struct FactorsPage {
    nav: Nav,
    totp_enrolled: bool,
    backup_left: usize,
    keys: Vec<Key>,
    passkeys: Vec<Key>,
    has_factor: bool,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// TOTP enrolment: the QR code, the secret, and the confirmation form.
#[derive(Template)]
#[template(path = "self/totp_enrol.html")]
pub struct TotpPage {
    nav: Nav,
    qr_data_uri: String,
    secret: String,
    has_factor: bool,
    problem: Option<Problem>,
}

/// Backup codes, shown this once.
#[derive(Template)]
#[template(path = "self/backup_codes.html")]
pub struct CodesPage {
    nav: Nav,
    codes: Vec<String>,
    what: &'static str,
}

async fn show(
    ui: &UiState,
    me: &SignedIn,
    notice: Option<&'static str>,
    problem: Option<Problem>,
) -> Response {
    let left = match me.read(ui, "/v1/me/backup-codes").await {
        Ok(a) => a.json::<BackupLeft>(),
        Err(page) => return page,
    };
    let keys = match me.read(ui, "/v1/me/security-keys").await {
        Ok(a) => a.json::<KeyList>(),
        Err(page) => return page,
    };
    let passkeys = match me.read(ui, "/v1/me/passkeys").await {
        Ok(a) => a.json::<PasskeyList>(),
        Err(page) => return page,
    };
    let (Some(left), Some(keys), Some(passkeys)) = (left, keys, passkeys) else {
        return render::internal_error();
    };
    render::html(
        StatusCode::OK,
        &FactorsPage {
            nav: me.nav("factors"),
            has_factor: left.totp_enrolled || !keys.keys.is_empty(),
            totp_enrolled: left.totp_enrolled,
            backup_left: left.remaining,
            keys: keys.keys,
            passkeys: passkeys.passkeys,
            notice,
            problem,
        },
    )
}

/// The second factors page as a [`Section`].
pub struct Factors;

impl Section for Factors {
    fn notice(done: &str) -> Option<&'static str> {
        match done {
            "key" => Some(Credential::SecurityKey.registered()),
            "passkey" => Some(Credential::Passkey.registered()),
            "key-removed" => Some("The security key is removed."),
            "passkey-removed" => Some("The passkey is removed: it no longer signs you in."),
            "totp-removed" => Some("Your authenticator app is removed, with its backup codes."),
            _ => None,
        }
    }

    async fn page(
        ui: &UiState,
        me: &SignedIn,
        notice: Option<&'static str>,
        problem: Option<Problem>,
    ) -> Result<Response, Response> {
        Ok(show(ui, me, notice, problem).await)
    }
}

/// Starts TOTP enrolment: a new secret, shown as a QR code and as text.
async fn totp_start(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let answer = match me.call(&ui, Method::POST, "/v1/me/totp", None).await {
        Err(page) => return page,
        Ok(Err(failure)) => {
            return mirror(
                show(&ui, &me, None, Some(Problem::from(&failure))).await,
                &failure,
            )
        }
        Ok(Ok(answer)) => answer,
    };
    let (Some(svg), Some(secret)) = (
        answer.body["qr_svg"].as_str(),
        answer.body["secret"].as_str(),
    ) else {
        return render::internal_error();
    };
    let has_factor = !matches!(
        me.read(&ui, "/v1/me/security-keys").await.ok().and_then(|a| a.json::<KeyList>()),
        Some(KeyList { ref keys }) if keys.is_empty()
    );
    render::html(
        StatusCode::OK,
        &TotpPage {
            nav: me.nav("factors"),
            qr_data_uri: svg_data_uri(svg),
            secret: secret.to_string(),
            has_factor,
            problem: None,
        },
    )
}

/// An SVG document as a `data:` URI for an `<img>` (the CSP allows `img-src data:`; an inline
/// `<svg>` would be markup from outside the template).
fn svg_data_uri(svg: &str) -> String {
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

/// The TOTP confirmation form: a first code from the app, and the proof.
#[derive(Debug, Deserialize)]
pub struct TotpConfirmForm {
    code: String,
    #[serde(flatten)]
    proof: ProofFields,
}

async fn totp_confirm(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<TotpConfirmForm>,
) -> Response {
    let body = json!({"code": form.code.trim(), "proof": form.proof.proof()});
    match me
        .call(&ui, Method::POST, "/v1/me/totp/confirm", Some(&body))
        .await
    {
        Err(page) => page,
        Ok(Ok(answer)) => codes_page(&me, &answer.body, "Your authenticator app is set up."),
        Ok(Err(failure)) => mirror(
            show(&ui, &me, None, Some(Problem::from(&failure))).await,
            &failure,
        ),
    }
}

fn codes_page(me: &SignedIn, body: &Value, what: &'static str) -> Response {
    let codes = body["backup_codes"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    render::html(
        StatusCode::OK,
        &CodesPage {
            nav: me.nav("factors"),
            codes,
            what,
        },
    )
}

/// New backup codes (the proof: password and a current factor).
async fn backup_codes(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(proof): CsrfForm<ProofFields>,
) -> Response {
    let body = json!({"proof": proof.proof()});
    match me
        .call(&ui, Method::POST, "/v1/me/backup-codes", Some(&body))
        .await
    {
        Err(page) => page,
        Ok(Ok(answer)) => codes_page(
            &me,
            &answer.body,
            "New backup codes: the old ones no longer work.",
        ),
        Ok(Err(failure)) => mirror(
            show(&ui, &me, None, Some(Problem::from(&failure))).await,
            &failure,
        ),
    }
}

/// Removes the authenticator app and its backup codes (the proof: password and a current
/// factor, as the API's proof policy asks).
async fn totp_remove(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(proof): CsrfForm<ProofFields>,
) -> Response {
    let body = json!({"proof": proof.proof()});
    let result = me
        .call(&ui, Method::DELETE, "/v1/me/totp", Some(&body))
        .await;
    outcome::<Factors>(&ui, &me, result, |_| {
        render::see_other("/account/factors?done=totp-removed")
    })
    .await
}

/// The options for registering a security key or a passkey (`webauthn.js` asks for them with
/// the page's CSRF token; JSON, as the API answers them).
async fn options(ui: &UiState, me: &SignedIn, credential: Credential) -> Response {
    let path = format!("{}/registration", credential.api());
    match me.call(ui, Method::POST, &path, None).await {
        Err(page) => page,
        Ok(Ok(answer)) => Json(answer.body).into_response(),
        Ok(Err(failure)) => (
            failure.status,
            Json(json!({"error": {"code": failure.code, "message": failure.message}})),
        )
            .into_response(),
    }
}

async fn key_options(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    options(&ui, &me, Credential::SecurityKey).await
}

async fn passkey_options(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    options(&ui, &me, Credential::Passkey).await
}

/// The registration form: the authenticator's answer (filled in by `webauthn.js`), its name and
/// the proof.
#[derive(Debug, Deserialize)]
pub struct KeyForm {
    ceremony_id: String,
    credential: String,
    name: String,
    #[serde(flatten)]
    proof: ProofFields,
}

async fn key_register(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<KeyForm>,
) -> Response {
    register(&ui, &me, form, Credential::SecurityKey).await
}

async fn passkey_register(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<KeyForm>,
) -> Response {
    register(&ui, &me, form, Credential::Passkey).await
}

async fn register(ui: &UiState, me: &SignedIn, form: KeyForm, kind: Credential) -> Response {
    let Ok(credential) = serde_json::from_str::<Value>(&form.credential) else {
        return mirror(
            show(
                ui,
                me,
                None,
                Some(Problem {
                    message: "The authenticator did not answer (this needs JavaScript).".into(),
                    code: "invalid_request".into(),
                }),
            )
            .await,
            &crate::ui::call::ApiFailure {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request".into(),
                message: String::new(),
                field: None,
                next_action: None,
                retry_after: None,
            },
        );
    };
    let body = json!({
        "ceremony_id": form.ceremony_id,
        "name": form.name,
        "credential": credential,
        "proof": form.proof.proof(),
    });
    match me.call(ui, Method::POST, kind.api(), Some(&body)).await {
        Err(page) => page,
        Ok(Ok(answer)) if answer.body["backup_codes"].is_array() => {
            codes_page(me, &answer.body, kind.registered())
        }
        Ok(Ok(_)) => render::see_other(kind.done()),
        Ok(Err(failure)) => mirror(
            show(ui, me, None, Some(Problem::from(&failure))).await,
            &failure,
        ),
    }
}

/// The removal form: which key (its credential id) and the proof.
#[derive(Debug, Deserialize)]
pub struct RemoveForm {
    key_id: String,
    #[serde(flatten)]
    proof: ProofFields,
}

async fn key_remove(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Response {
    remove(&ui, &me, form, Credential::SecurityKey).await
}

async fn passkey_remove(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Response {
    remove(&ui, &me, form, Credential::Passkey).await
}

/// Removes one key through the API, which asks for the proof. A credential id is base64url;
/// anything else is not a form this page sent (and never reaches the API's path).
async fn remove(ui: &UiState, me: &SignedIn, form: RemoveForm, kind: Credential) -> Response {
    let id = form.key_id.trim();
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return render::bad_form();
    }
    let body = json!({"proof": form.proof.proof()});
    let path = format!("{}/{id}", kind.api());
    let result = me.call(ui, Method::DELETE, &path, Some(&body)).await;
    outcome::<Factors>(ui, me, result, |_| render::see_other(kind.removed())).await
}

/// The routes of the second factors page.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/account/factors", get(section::<Factors>))
        .route("/account/factors/totp", post(totp_start))
        .route("/account/factors/totp/confirm", post(totp_confirm))
        .route("/account/factors/totp/remove", post(totp_remove))
        .route("/account/factors/backup-codes", post(backup_codes))
        .route("/account/factors/security-keys/options", post(key_options))
        .route("/account/factors/security-keys", post(key_register))
        .route("/account/factors/passkeys/options", post(passkey_options))
        .route("/account/factors/passkeys", post(passkey_register))
        .route("/account/factors/security-keys/remove", post(key_remove))
        .route("/account/factors/passkeys/remove", post(passkey_remove))
}
