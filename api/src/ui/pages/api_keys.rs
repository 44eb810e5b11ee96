//! API keys (`/account/api-keys`): the list with each key's last use, creation with the secret
//! shown this once, and revocation. Creating a key needs a stepped-up session (the API's proof
//! policy): the form carries the proof, the page steps the session up with it, then creates.
use askama::Template;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{
    act_on, outcome, refused_step_up, section, when, Problem, ProofFields, Section, SignedIn,
};
use crate::ui::csrf::CsrfForm;
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// A key as `GET /v1/me/api-keys` lists it (never its secret).
#[derive(Debug, Deserialize)]
pub struct Key {
    key_id: String,
    name: String,
    scopes: Vec<String>,
    allowed_ips: Vec<String>,
    status: String,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    last_used_ip: Option<String>,
}

impl Key {
    fn scopes(&self) -> String {
        self.scopes.join(", ")
    }

    fn networks(&self) -> String {
        if self.allowed_ips.is_empty() {
            "anywhere".into()
        } else {
            self.allowed_ips.join(", ")
        }
    }

    fn created(&self) -> String {
        when(&self.created_at)
    }

    fn expires(&self) -> String {
        self.expires_at.as_ref().map_or("never".into(), when)
    }

    fn last_used(&self) -> String {
        match (&self.last_used_at, &self.last_used_ip) {
            (Some(at), Some(ip)) => format!("{} from {ip}", when(at)),
            (Some(at), None) => when(at),
            _ => "never".into(),
        }
    }

    fn active(&self) -> bool {
        self.status == "active"
    }
}

#[derive(Debug, Deserialize)]
struct KeyList {
    keys: Vec<Key>,
}

/// The API keys page.
#[derive(Template)]
#[template(path = "self/api_keys.html")]
pub struct KeysPage {
    nav: Nav,
    keys: Vec<Key>,
    has_factor: bool,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// A new key's secret, shown this once.
#[derive(Template)]
#[template(path = "self/api_key_created.html")]
pub struct CreatedPage {
    nav: Nav,
    name: String,
    secret: String,
}

/// The API keys page as a [`Section`].
pub struct ApiKeys;

impl Section for ApiKeys {
    fn notice(done: &str) -> Option<&'static str> {
        (done == "revoked").then_some("The key is revoked: it no longer works anywhere.")
    }

    async fn page(
        ui: &UiState,
        me: &SignedIn,
        notice: Option<&'static str>,
        problem: Option<Problem>,
    ) -> Result<Response, Response> {
        let list: KeyList = me.read_json(ui, "/v1/me/api-keys").await?;
        let page = KeysPage {
            nav: me.nav("api-keys"),
            keys: list.keys,
            has_factor: me.has_factor(ui).await?,
            notice,
            problem,
        };
        Ok(render::html(StatusCode::OK, &page))
    }
}

/// The new key form: a name, its scopes (one box each), the addresses it may be used from,
/// and the proof.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    name: String,
    scope_read: Option<String>,
    scope_trade: Option<String>,
    scope_withdraw: Option<String>,
    allowed_ips: Option<String>,
    #[serde(flatten)]
    proof: ProofFields,
}

impl CreateForm {
    fn scopes(&self) -> Vec<&'static str> {
        [
            (&self.scope_read, "read"),
            (&self.scope_trade, "trade"),
            (&self.scope_withdraw, "withdraw"),
        ]
        .into_iter()
        .filter(|(ticked, _)| ticked.is_some())
        .map(|(_, scope)| scope)
        .collect()
    }

    fn networks(&self) -> Vec<&str> {
        self.allowed_ips
            .as_deref()
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|n| !n.is_empty())
            .collect()
    }
}

async fn create(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Response {
    if let Some(page) = refused_step_up::<ApiKeys>(&ui, &me, &form.proof).await {
        return page;
    }
    let body = json!({
        "name": form.name,
        "scopes": form.scopes(),
        "allowed_ips": form.networks(),
    });
    let result = me
        .call(&ui, Method::POST, "/v1/me/api-keys", Some(&body))
        .await;
    let nav = me.nav("api-keys");
    outcome::<ApiKeys>(&ui, &me, result, |answer| {
        match answer.body["key"].as_str() {
            Some(secret) => render::html(
                StatusCode::CREATED,
                &CreatedPage {
                    nav,
                    name: form.name.clone(),
                    secret: secret.to_string(),
                },
            ),
            None => render::internal_error(),
        }
    })
    .await
}

/// The revoke button's form.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    key_id: String,
}

async fn revoke(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Response {
    let delete = (Method::DELETE, "/v1/me/api-keys/{id}");
    act_on::<ApiKeys>(
        &ui,
        &me,
        delete,
        &form.key_id,
        "/account/api-keys?done=revoked",
    )
    .await
}

/// The routes of the API keys page.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/account/api-keys", get(section::<ApiKeys>))
        .route("/account/api-keys/create", post(create))
        .route("/account/api-keys/revoke", post(revoke))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &str) -> CreateForm {
        serde_urlencoded::from_str(pairs).unwrap()
    }

    #[test]
    fn test_create_form_reads_ticked_scopes_and_networks() {
        let f = form(
            "name=bot&scope_read=on&scope_withdraw=on&allowed_ips=203.0.113.7,+198.51.100.0%2F24++",
        );
        assert_eq!(f.scopes(), vec!["read", "withdraw"]);
        assert_eq!(f.networks(), vec!["203.0.113.7", "198.51.100.0/24"]);
        let f = form("name=bot");
        assert!(f.scopes().is_empty() && f.networks().is_empty());
    }
}
