//! The delivery worker: drains `notification_outbox_v1`, sends each message, and appends the
//! outcome (`NotificationDelivered` / `NotificationFailed`) to the account's stream.
//!
//! Each message is leased in `notification_attempts` before it is sent, so several server
//! processes can run workers against one database without sending a message twice at once.
//! Failures are retried with exponential backoff up to a limit; codes that expire before they
//! could be sent are given up at once.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gatehouse_domain::contact::ContactKind;
use gatehouse_domain::policy::Channel;
use gatehouse_domain::{Account, AccountCommand, AccountFact};
use gatehouse_projections::notice::Notice;
use gatehouse_projections::notifications::outbox::{self, DueMessage};
use gatehouse_store::StoreError;
use tokio::sync::watch;

use super::render::{self, Topic};
use super::{DeliveryError, EmailMessage, EmailSender, SmsMessage, SmsProvider};
use crate::state::AppState;

/// Label the anti-phishing phrase is sealed under.
pub const PHRASE_LABEL: &str = "anti-phishing-phrase";
/// How long a lease lasts: longer than any send may take.
const LEASE: Duration = Duration::from_secs(60);
/// Messages taken per round.
const BATCH: i64 = 32;
/// Longest wait between two tries.
const MAX_BACKOFF_SECONDS: i64 = 300;

/// Where messages go and how hard to try.
pub struct Delivery {
    /// Email.
    pub email: Arc<dyn EmailSender>,
    /// SMS.
    pub sms: Arc<dyn SmsProvider>,
    /// Tries before giving up.
    pub max_attempts: u32,
    /// `GATEHOUSE_PUBLIC_URL`, without a trailing slash: the freeze links' base.
    pub public_url: String,
    /// `GATEHOUSE_GEOIP_DB`, opened.
    pub geoip: Option<Arc<super::geoip::GeoIp>>,
}

/// Runs until `shutdown` turns true: a round whenever the projections move, and at least every
/// `poll` for retries.
pub async fn run(
    state: AppState,
    delivery: Delivery,
    poll: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut progress = state.runner().progress();
    let mut last_sweep = std::time::Instant::now();
    loop {
        match round(&state, &delivery).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "delivery round failed; retrying"),
        }
        if last_sweep.elapsed() > Duration::from_secs(60) {
            last_sweep = std::time::Instant::now();
            if let Err(e) = crate::codes::forget_expired(state.background_store(), Utc::now()).await
            {
                tracing::warn!(error = %e, "could not purge expired codes");
            }
            let closed = state.throttle().housekeep().await;
            state.protection().record_refusals(closed).await;
            if let Err(e) = crate::sms_budget::SmsBudget::prune(
                state.background_store(),
                Utc::now().timestamp_millis(),
            )
            .await
            {
                tracing::warn!(error = %e, "could not prune SMS budgets");
            }
            state.protection().housekeep();
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = progress.changed() => {}
            _ = tokio::time::sleep(poll) => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One round: every due message, leased, sent, recorded. Returns how many were taken.
pub async fn round(state: &AppState, delivery: &Delivery) -> Result<usize, StoreError> {
    let now_ms = Utc::now().timestamp_millis();
    let due = outbox::due(state.background_store(), now_ms, BATCH).await?;
    let mut taken = 0;
    for pending in due {
        if !lease(state, &pending.id, now_ms).await? {
            continue;
        }
        taken += 1;
        deliver_one(state, delivery, pending).await?;
    }
    Ok(taken)
}

async fn lease(state: &AppState, id: &str, now_ms: i64) -> Result<bool, StoreError> {
    let until = now_ms + LEASE.as_millis() as i64;
    outbox::lease(state.background_store(), id, now_ms, until).await
}

async fn deliver_one(
    state: &AppState,
    delivery: &Delivery,
    pending: DueMessage,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let attempts = pending.attempts + 1;
    let (destination, result) = match prepare_and_send(state, delivery, &pending, now).await {
        Ok(destination) => (destination, Ok(())),
        Err((destination, e)) => (destination, Err(e)),
    };
    let outcome = match &result {
        Ok(()) => AccountFact::NotificationDelivered {
            notification_id: pending.id.clone(),
            topic: pending.topic.clone(),
            channel: pending.channel,
            destination,
            attempts,
        },
        Err(e) => AccountFact::NotificationFailed {
            notification_id: pending.id.clone(),
            topic: pending.topic.clone(),
            channel: pending.channel,
            destination,
            reason: e.reason.clone(),
            attempts,
            permanent: e.permanent || attempts >= delivery.max_attempts,
        },
    };
    let settled = !matches!(
        outcome,
        AccountFact::NotificationFailed {
            permanent: false,
            ..
        }
    );
    match &result {
        Ok(()) => {
            tracing::info!(notification = %pending.id, topic = %pending.topic, channel = pending.channel.as_str(), "message delivered")
        }
        Err(e) => {
            tracing::warn!(notification = %pending.id, topic = %pending.topic, channel = pending.channel.as_str(), reason = %e.reason, attempts, "message not delivered")
        }
    }
    record_outcome(state, &pending, outcome, now).await;
    // Backoff: 2, 4, 8 … seconds, capped; a settled message is never taken again (its row
    // leaves `pending` when the projection sees the outcome).
    let backoff = if settled {
        MAX_BACKOFF_SECONDS
    } else {
        (1i64 << attempts.min(16)).min(MAX_BACKOFF_SECONDS)
    };
    outbox::record_try(
        state.background_store(),
        &pending.id,
        attempts,
        now.timestamp_millis() + backoff * 1000,
    )
    .await?;
    if settled {
        if let Some(code_id) = pending.code_id {
            crate::codes::forget(state.background_store(), code_id).await?;
        }
    }
    Ok(())
}

/// Builds the message and sends it; returns the masked destination either way.
async fn prepare_and_send(
    state: &AppState,
    delivery: &Delivery,
    pending: &DueMessage,
    now: DateTime<Utc>,
) -> Result<String, (String, DeliveryError)> {
    if let Some(expires_ms) = pending.expires_ms {
        if now.timestamp_millis() >= expires_ms {
            return Err((
                String::new(),
                DeliveryError::permanent("the code expired before it could be sent"),
            ));
        }
    }
    let account = state
        .accounts()
        .load(&pending.account_id)
        .await
        .map_err(|e| {
            (
                String::new(),
                DeliveryError::transient(format!("cannot load the account: {e}")),
            )
        })?;
    let notice = Notice::from_stored(&pending.topic, &pending.details);
    let known = notice.as_ref().ok();
    // A change notice goes to the contact that was replaced; the code of a requested contact
    // goes to that contact, not to the current one.
    let requested = known
        .and_then(Notice::flow_id)
        .and_then(|flow_id| {
            account
                .pending_contact(pending.channel.contact_kind())
                .filter(|p| p.flow_id == flow_id)
        })
        .map(|p| p.contact.sealed.as_str());
    let previous = known.and_then(Notice::previous_sealed).or(requested);
    let opened = open_contact_and_phrase(
        state,
        &pending.account_id,
        &account,
        pending.channel,
        previous,
    )
    .await
    .map_err(|e| (String::new(), e))?;
    let Some((address, phrase)) = opened else {
        return Err((
            String::new(),
            DeliveryError::permanent("the account has no such contact (or it was erased)"),
        ));
    };
    let masked = match pending.channel {
        Channel::Email => crate::mask::email(&address),
        Channel::Sms => crate::mask::phone(&address),
    };
    let code;
    let topic = match pending.code_id {
        Some(code_id) => {
            let flow = known
                .and_then(Notice::flow_id)
                .and_then(|id| account.flow(id));
            let Some(flow) = flow else {
                return Err((masked, DeliveryError::permanent("the flow is gone")));
            };
            code = crate::codes::take_for_delivery(state.background_store(), state.keys(), code_id)
                .await
                .map_err(|e| (masked.clone(), DeliveryError::transient(e.to_string())))?
                .ok_or_else(|| {
                    (
                        masked.clone(),
                        DeliveryError::permanent("the code is no longer held for delivery"),
                    )
                })?;
            let valid_minutes = pending
                .expires_ms
                .map(|ms| ((ms - now.timestamp_millis()) / 60_000).max(1))
                .unwrap_or(1);
            Topic::Code {
                code: &code,
                kind: flow.kind,
                valid_minutes,
            }
        }
        None => match known {
            Some(notice) => Topic::Notice(notice),
            None => Topic::Unrecognised(&pending.topic),
        },
    };
    let extras = extras(state, delivery, pending, known, now);
    let sent = match pending.channel {
        Channel::Email => {
            let (subject, body) = render::email(&topic, phrase.as_deref(), &extras);
            delivery
                .email
                .send(&EmailMessage {
                    id: pending.id.clone(),
                    to: address,
                    subject,
                    body,
                })
                .await
        }
        Channel::Sms => {
            // The pumping guard: decided once per message (a retry is not counted again).
            let key = pending
                .code_id
                .map(|c| c.to_string())
                .unwrap_or_else(|| pending.id.clone());
            let admission = state
                .sms_budget()
                .admit(
                    state.background_store(),
                    &key,
                    &address,
                    now.timestamp_millis(),
                )
                .await
                .map_err(|e| (masked.clone(), DeliveryError::transient(e.to_string())))?;
            if let crate::sms_budget::SmsAdmission::Spent { scope, .. } = &admission {
                record_withheld(state, pending, scope, now).await;
            }
            if let Some(reason) = admission.refusal() {
                return Err((masked, DeliveryError::permanent(reason)));
            }
            delivery
                .sms
                .send(&SmsMessage {
                    id: pending.id.clone(),
                    to: address,
                    body: render::sms(&topic, &extras),
                })
                .await
        }
    };
    sent.map(|()| masked.clone()).map_err(|e| (masked, e))
}

/// What a notice says beyond its details: a freeze link minted now (single use, 7 days; never
/// stored, so only this message holds it), the place of a new sign-in's address, and when the
/// event happened.
fn extras(
    state: &AppState,
    delivery: &Delivery,
    pending: &DueMessage,
    notice: Option<&Notice>,
    now: DateTime<Utc>,
) -> render::Extras {
    if pending.code_id.is_some() {
        return render::Extras::default();
    }
    let freeze_link = match state.keys().freeze_link_token(&pending.account_id, now) {
        Ok(token) => Some(format!("{}/freeze?t={token}", delivery.public_url)),
        Err(e) => {
            tracing::warn!(error = %e, "could not mint a freeze link; the notice goes without");
            None
        }
    };
    let place = match (notice, &delivery.geoip) {
        (Some(Notice::NewSignIn { ip: Some(ip), .. }), Some(geoip)) => geoip.place(ip),
        _ => None,
    };
    render::Extras {
        freeze_link,
        place,
        at: DateTime::from_timestamp_millis(pending.created_ms),
    }
}

/// Records that a text message was withheld by a spent SMS budget (`SmsWithheld`, which the
/// `sms_budget_reached` alert reads); the message's `NotificationFailed` follows.
async fn record_withheld(state: &AppState, pending: &DueMessage, scope: &str, now: DateTime<Utc>) {
    let flow_id = Notice::from_stored(&pending.topic, &pending.details)
        .ok()
        .and_then(|notice| notice.flow_id());
    let outcome = AccountFact::SmsWithheld {
        flow_id,
        scope: scope.to_string(),
    };
    record_outcome(state, pending, outcome, now).await;
}

/// Appends a delivery outcome to the account's stream (logged when it cannot be).
async fn record_outcome(
    state: &AppState,
    pending: &DueMessage,
    outcome: AccountFact,
    now: DateTime<Utc>,
) {
    let recorded = state
        .accounts()
        .execute(
            &pending.account_id,
            || AccountCommand::RecordNotificationOutcome {
                outcome: outcome.clone(),
                at: now,
            },
            crate::metadata::metadata(),
        )
        .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, notification = %pending.id, "could not record a delivery outcome");
    }
}

/// The contact for `channel` and the anti-phishing phrase, unsealed; `None` when the account has
/// no such contact or its data key was destroyed.
async fn open_contact_and_phrase(
    state: &AppState,
    account_id: &str,
    account: &Account,
    channel: Channel,
    instead: Option<&str>,
) -> Result<Option<(String, Option<String>)>, DeliveryError> {
    let kind = channel.contact_kind();
    let current = match kind {
        ContactKind::Email => account.email(),
        ContactKind::Phone => account.phone(),
    };
    let Some(sealed) = instead.or(current.map(|c| c.sealed.as_str())) else {
        return Ok(None);
    };
    let wrapped = crate::directory::wrapped_key(state.background_store(), account_id)
        .await
        .map_err(|e| DeliveryError::transient(format!("cannot read the account key: {e}")))?;
    let Some(wrapped) = wrapped else {
        return Ok(None);
    };
    let key = state
        .keys()
        .unwrap_data_key(account_id, &wrapped)
        .map_err(|_| DeliveryError::permanent("the account key cannot be unwrapped"))?;
    let address = key
        .open(account_id, kind, sealed)
        .map_err(|_| DeliveryError::permanent("the contact cannot be unsealed"))?;
    let phrase = account
        .anti_phishing_phrase()
        .and_then(|p| key.open_text(account_id, PHRASE_LABEL, p).ok());
    Ok(Some((address, phrase)))
}
