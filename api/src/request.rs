//! Request facts the handlers need: the caller's context (IP, user agent) and the bearer session.
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::{Account, AccountCommand};
use secrecy::SecretString;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{self, PresentedToken};

/// The caller as auditors see it: IP and user agent (the device id comes from the body).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Client IP.
    pub ip: Option<IpAddr>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
}

impl Caller {
    /// The event context, with the device id the frontend gave.
    pub fn context(&self, device_id: Option<String>) -> RequestContext {
        RequestContext::new(
            self.ip.map(|ip| ip.to_string()),
            self.user_agent.clone(),
            device_id,
        )
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let ip = peer.map(|peer| client_ip(peer, &parts.headers, state.trusted_proxies()));
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Self { ip, user_agent })
    }
}

/// The client address: the socket peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left
/// are client-controlled and could be forged).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// A request authenticated by a live session, with the account state it was checked against.
pub struct Authenticated {
    /// The presented token's parts.
    pub token: PresentedToken,
    /// The account, as loaded for the check.
    pub account: Account,
    /// Time of the check.
    pub now: DateTime<Utc>,
}

impl Authenticated {
    /// The account id as a string (aggregate id).
    pub fn account_id(&self) -> String {
        self.token.account_id.to_string()
    }

    /// The session id.
    pub fn session_id(&self) -> Uuid {
        self.token.session_id
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let raw = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(ApiError::unauthenticated)?;
        let token =
            tokens::parse(&SecretString::from(raw.trim())).ok_or_else(ApiError::unauthenticated)?;
        let now = Utc::now();
        // Checked against the aggregate, not a projection: a revoked token fails on its next use.
        let account = state.accounts().load(&token.account_id.to_string()).await?;
        let session = account
            .authenticate(token.session_id, &token.token_hash, now)
            .map_err(|_| ApiError::unauthenticated())?;
        // Use keeps a session alive; the domain says when that needs a write (at most once per
        // `extend_after`, not on every request).
        let needs_extension = session
            .extension_at(now, &state.accounts().services().sessions)
            .is_some();
        let account = if needs_extension {
            let session_id = token.session_id;
            let id = token.account_id.to_string();
            let executed = state
                .accounts()
                .execute(
                    &id,
                    || AccountCommand::ExtendSession {
                        session_id,
                        at: now,
                    },
                    crate::metadata::metadata(),
                )
                .await?;
            executed.aggregate
        } else {
            account
        };
        Ok(Self {
            token,
            account,
            now,
        })
    }
}

/// The proof a request carries by its session alone (for the proof policy's stepped-up rows).
pub fn session_proof(auth: &Authenticated) -> gatehouse_domain::Proof {
    gatehouse_domain::Proof {
        session_id: Some(auth.session_id()),
        ..gatehouse_domain::Proof::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn test_forwarded_for_is_ignored_from_untrusted_peers() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, &headers("1.2.3.4"), &[]), peer);
    }

    #[test]
    fn test_forwarded_for_from_trusted_proxy_takes_rightmost_untrusted_entry() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        // "6.6.6.6" was written by the client itself; 198.51.100.7 is what our proxy saw.
        let got = client_ip(
            proxy,
            &headers("6.6.6.6, 198.51.100.7, 10.0.0.2"),
            &[proxy, inner],
        );
        assert_eq!(got, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(proxy, &headers("garbage"), &[proxy]), proxy);
    }
}
