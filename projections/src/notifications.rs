//! `notification_outbox_v1`: the messages owed to account owners, one row per message and channel.
//!
//! Rows are derived from events (a code issued, a password reset, a lock, a new sign-in…), and a
//! row leaves `pending` only through the outcome events the delivery worker appends
//! (`NotificationDelivered`, a permanent `NotificationFailed`). A rebuild from zero therefore
//! reproduces the table exactly and sends nothing twice. Notices go to the channels the owner has
//! verified at the time of the event (tracked in `notification_contacts_v1`).
use gatehouse_domain::policy::Channel;
use gatehouse_domain::{AccountFact, FreezeActor, StaffAccountAction};
use gatehouse_store::{StoreError, StoredEvent};
use sqlx::AnyConnection;

use crate::cell::Cell;
use crate::notice::Notice;
use crate::runner::ChangeProjection;
use crate::time::to_ms;

pub mod outbox;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Exactly this channel (one-time codes: the flow chose it).
    Channel(Channel),
    /// Every channel the owner has verified.
    AllVerified,
    /// The email, if verified (routine notices are not worth a text message).
    EmailIfVerified,
}

/// A change to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum NotificationChange {
    /// The owner verified a channel.
    ChannelVerified {
        account_id: String,
        channel: Channel,
    },
    /// A channel's contact was replaced: unverified until confirmed.
    ChannelUnverified {
        account_id: String,
        channel: Channel,
    },
    /// A message is owed.
    Enqueue {
        account_id: String,
        sequence: i64,
        notice: Notice,
        target: Target,
        code_id: Option<String>,
        created_ms: i64,
        expires_ms: Option<i64>,
    },
    /// The worker recorded how a message ended.
    Settled {
        notification_id: String,
        status: &'static str,
        at_ms: i64,
    },
}

/// The id of a message: its source event and channel.
pub fn notification_id(account_id: &str, sequence: i64, channel: Channel) -> String {
    format!("{account_id}/{sequence}/{}", channel.as_str())
}

/// The pure fold.
pub fn changes(event: &StoredEvent) -> Result<Vec<NotificationChange>, StoreError> {
    let Some(e) = crate::account_event(event)? else {
        return Ok(Vec::new());
    };
    let account_id = &event.aggregate_id;
    let created_ms = to_ms(e.at);
    let enqueue = |notice, target, code_id, expires_ms| NotificationChange::Enqueue {
        account_id: account_id.clone(),
        sequence: event.sequence,
        notice,
        target,
        code_id,
        created_ms,
        expires_ms,
    };
    Ok(match &e.fact {
        AccountFact::CodeIssued {
            flow_id,
            code_id,
            channel,
            expires_at,
            deliverable: true,
            ..
        } => vec![enqueue(
            Notice::Code { flow_id: *flow_id },
            Target::Channel(*channel),
            Some(code_id.to_string()),
            Some(to_ms(expires_at)),
        )],
        // Asked for, not yet in force: the current contact hears of it (and stays verified).
        AccountFact::ContactChangeRequested {
            kind,
            previous: Some(previous),
            ..
        } => vec![enqueue(
            Notice::ContactChangeRequested {
                previous_sealed: previous.sealed.clone(),
            },
            Target::Channel(Channel::for_contact(*kind)),
            None,
            None,
        )],
        AccountFact::ContactVerified { kind, .. } => vec![NotificationChange::ChannelVerified {
            account_id: account_id.clone(),
            channel: Channel::for_contact(*kind),
        }],
        AccountFact::ContactChanged { kind, previous, .. } => {
            let channel = Channel::for_contact(*kind);
            let mut out = Vec::with_capacity(2);
            // The old address hears of the change (sent to it, not to the new one).
            if let Some(previous) = previous {
                out.push(enqueue(
                    Notice::ContactChanged {
                        previous_sealed: previous.sealed.clone(),
                    },
                    Target::Channel(channel),
                    None,
                    None,
                ));
            }
            out.push(NotificationChange::ChannelUnverified {
                account_id: account_id.clone(),
                channel,
            });
            out
        }
        AccountFact::PasswordReset { context, .. } => vec![enqueue(
            Notice::PasswordReset {
                ip: context.ip.clone(),
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::PasswordChanged { context, .. } => vec![enqueue(
            Notice::PasswordChanged {
                ip: context.ip.clone(),
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::IdentifierClaimAttempted { .. } => vec![enqueue(
            Notice::IdentifierClaimAttempted {},
            Target::EmailIfVerified,
            None,
            None,
        )],
        AccountFact::AntiPhishingPhraseRemoved { .. } => vec![enqueue(
            Notice::AntiPhishingPhraseRemoved {},
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::AccountLocked { until, .. } => vec![enqueue(
            Notice::AccountLocked { until: *until },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::AccountUnlocked { reason, .. } => vec![enqueue(
            Notice::AccountUnlocked { reason: *reason },
            Target::AllVerified,
            None,
            None,
        )],
        // Only from a place the account had not signed in from (decided by the aggregate and
        // recorded, so a rebuild sends the same; events before the rule each had a notice).
        AccountFact::LoginSucceeded { familiar: true, .. } => Vec::new(),
        AccountFact::LoginSucceeded { context, .. } => vec![enqueue(
            Notice::NewSignIn {
                device_id: context.device_id.clone(),
                ip: context.ip.clone(),
                user_agent: context.user_agent.clone(),
            },
            Target::EmailIfVerified,
            None,
            None,
        )],
        AccountFact::DuplicateRegistrationAttempted { context } => vec![enqueue(
            Notice::DuplicateRegistration {
                ip: context.ip.clone(),
            },
            Target::EmailIfVerified,
            None,
            None,
        )],
        AccountFact::TotpEnrolled { context, .. } => vec![enqueue(
            Notice::SecondFactorAdded {
                ip: context.ip.clone(),
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::WithdrawalAddressAdded { usable_from, .. } => vec![enqueue(
            Notice::WithdrawalAddressAdded {
                usable_from: usable_from.to_rfc3339(),
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::WhitelistModeChanged { enabled: false, .. } => vec![enqueue(
            Notice::WhitelistDisabled {},
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::ApiKeyCreated { name, scopes, .. }
            if scopes.contains(&gatehouse_domain::ApiScope::Withdraw) =>
        {
            vec![enqueue(
                Notice::WithdrawKeyCreated { name: name.clone() },
                Target::AllVerified,
                None,
                None,
            )]
        }
        AccountFact::SecurityKeyRegistered { name, context, .. } => vec![enqueue(
            Notice::SecurityKeyAdded {
                ip: context.ip.clone(),
                name: name.clone(),
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::SecurityKeyRemoved { context, .. } => vec![enqueue(
            Notice::SecurityKeyRemoved {
                ip: context.ip.clone(),
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::SecondFactorRemoved { context } => vec![enqueue(
            Notice::SecondFactorRemoved {
                ip: context.ip.clone(),
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::RecoveryEvidenceSubmitted { .. } => vec![enqueue(
            Notice::RecoveryStarted {},
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::RecoveryReviewed {
            approved,
            hold_until,
            ..
        } => vec![enqueue(
            if *approved {
                Notice::RecoveryApproved {
                    hold_until: *hold_until,
                }
            } else {
                Notice::RecoveryDenied {
                    hold_until: *hold_until,
                }
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::RecoveryCancelled { .. } => vec![enqueue(
            Notice::RecoveryCancelled {},
            Target::AllVerified,
            None,
            None,
        )],
        // At most once a day per account (decided by the aggregate), so strangers cannot flood
        // the owner's inbox or phone.
        AccountFact::RecoveryRequestSetAside {
            owner_notified: true,
            ..
        } => vec![enqueue(
            Notice::RecoveryRequestSetAside {},
            Target::EmailIfVerified,
            None,
            None,
        )],
        AccountFact::AntiPhishingPhraseSet { .. } => vec![enqueue(
            Notice::AntiPhishingPhraseSet {},
            Target::EmailIfVerified,
            None,
            None,
        )],
        AccountFact::AccountFrozen { by, context, .. } => vec![enqueue(
            Notice::AccountFrozen {
                by: match by {
                    FreezeActor::Owner { .. } | FreezeActor::Recovery { .. } => "owner",
                    FreezeActor::Link { .. } => "link",
                    FreezeActor::Staff { .. } => "staff",
                }
                .to_string(),
                ip: context.ip.clone(),
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::AccountUnfrozen { by, hold_until, .. } => vec![enqueue(
            Notice::AccountUnfrozen {
                by: match by {
                    FreezeActor::Staff { .. } => "staff",
                    FreezeActor::Owner { .. }
                    | FreezeActor::Recovery { .. }
                    | FreezeActor::Link { .. } => "recovery",
                }
                .to_string(),
                hold_until: *hold_until,
            },
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::StaffActionTaken {
            action: StaffAccountAction::SignOut,
            ..
        } => vec![enqueue(
            Notice::SignedOutByStaff {},
            Target::AllVerified,
            None,
            None,
        )],
        AccountFact::NotificationDelivered {
            notification_id, ..
        } => vec![NotificationChange::Settled {
            notification_id: notification_id.clone(),
            status: "delivered",
            at_ms: created_ms,
        }],
        AccountFact::NotificationFailed {
            notification_id,
            permanent: true,
            ..
        } => vec![NotificationChange::Settled {
            notification_id: notification_id.clone(),
            status: "failed",
            at_ms: created_ms,
        }],
        _ => Vec::new(),
    })
}

async fn verified_channels(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<Channel>, StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "select email_verified, phone_verified from notification_contacts_v1 where account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(conn)
    .await?;
    let Some((email, phone)) = row else {
        return Ok(Vec::new());
    };
    Ok([(email, Channel::Email), (phone, Channel::Sms)]
        .into_iter()
        .filter(|(flag, _)| *flag != 0)
        .map(|(_, c)| c)
        .collect())
}

async fn write(conn: &mut AnyConnection, change: &NotificationChange) -> Result<(), StoreError> {
    match change {
        NotificationChange::ChannelVerified {
            account_id,
            channel,
        } => {
            let sql = match channel {
                Channel::Email => {
                    "insert into notification_contacts_v1 (account_id, email_verified) values ($1, 1)
                     on conflict (account_id) do update set email_verified = 1"
                }
                Channel::Sms => {
                    "insert into notification_contacts_v1 (account_id, phone_verified) values ($1, 1)
                     on conflict (account_id) do update set phone_verified = 1"
                }
            };
            sqlx::query(sql).bind(account_id).execute(conn).await?;
        }
        NotificationChange::ChannelUnverified {
            account_id,
            channel,
        } => {
            let sql = match channel {
                Channel::Email => {
                    "update notification_contacts_v1 set email_verified = 0 where account_id = $1"
                }
                Channel::Sms => {
                    "update notification_contacts_v1 set phone_verified = 0 where account_id = $1"
                }
            };
            sqlx::query(sql).bind(account_id).execute(conn).await?;
        }
        NotificationChange::Enqueue {
            account_id,
            sequence,
            notice,
            target,
            code_id,
            created_ms,
            expires_ms,
        } => {
            let channels = match target {
                Target::Channel(c) => vec![*c],
                Target::AllVerified => verified_channels(&mut *conn, account_id).await?,
                Target::EmailIfVerified => verified_channels(&mut *conn, account_id)
                    .await?
                    .into_iter()
                    .filter(|c| *c == Channel::Email)
                    .collect(),
            };
            for channel in channels {
                sqlx::query(
                    "insert into notification_outbox_v1 (id, account_id, sequence, topic, channel, code_id,
                                                         details, created_ms, expires_ms, status, updated_ms)
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $8)
                     on conflict (id) do nothing",
                )
                .bind(notification_id(account_id, *sequence, channel))
                .bind(account_id)
                .bind(sequence)
                .bind(notice.topic())
                .bind(channel.as_str())
                .bind(code_id)
                .bind(notice.details().to_string())
                .bind(created_ms)
                .bind(expires_ms)
                .execute(&mut *conn)
                .await?;
            }
        }
        NotificationChange::Settled {
            notification_id,
            status,
            at_ms,
        } => {
            sqlx::query(
                "update notification_outbox_v1 set status = $2, updated_ms = $3 where id = $1",
            )
            .bind(notification_id)
            .bind(*status)
            .bind(at_ms)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// A message row to insert.
struct OutboxRow<'c> {
    id: String,
    channel: Channel,
    change: &'c NotificationChange,
    /// The message's details as JSON text.
    details: String,
}

/// Verified flags of an account's channels: `(email, phone)`, `None` without a row.
type Contacts = std::collections::HashMap<String, Option<(i64, i64)>>;

/// A batch's changes at once: the verified channels of every account concerned read in one query
/// and followed in memory, then the new messages in multi-row inserts, the contacts rows that
/// changed in one upsert, and the outcomes in multi-row updates.
async fn write_many(
    conn: &mut AnyConnection,
    changes: &[NotificationChange],
) -> Result<(), StoreError> {
    let mut contacts: Contacts = Contacts::new();
    let concerned: std::collections::BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            NotificationChange::ChannelVerified { account_id, .. }
            | NotificationChange::ChannelUnverified { account_id, .. } => Some(account_id.as_str()),
            NotificationChange::Enqueue {
                account_id,
                target: Target::AllVerified | Target::EmailIfVerified,
                ..
            } => Some(account_id.as_str()),
            _ => None,
        })
        .collect();
    let concerned: Vec<&str> = concerned.into_iter().collect();
    for chunk in concerned.chunks(500) {
        let sql = format!(
            "select account_id, email_verified, phone_verified from notification_contacts_v1
              where account_id in ({})",
            crate::batch::list(1, chunk.len())
        );
        // Planned for these values each time (see the alerts reads).
        let mut q = sqlx::query_as::<_, (String, i64, i64)>(&sql).persistent(false);
        for a in chunk {
            q = q.bind(*a);
        }
        for a in chunk {
            contacts.insert(a.to_string(), None);
        }
        for (account, email, phone) in q.fetch_all(&mut *conn).await? {
            contacts.insert(account, Some((email, phone)));
        }
    }
    let mut changed: Vec<&str> = Vec::new();
    let mut outbox: Vec<OutboxRow<'_>> = Vec::new();
    let mut settled: Vec<(&str, &'static str, i64)> = Vec::new();
    for change in changes {
        match change {
            NotificationChange::ChannelVerified {
                account_id,
                channel,
            } => {
                let row = contacts.entry(account_id.clone()).or_default();
                let flags = row.get_or_insert((0, 0));
                match channel {
                    Channel::Email => flags.0 = 1,
                    Channel::Sms => flags.1 = 1,
                }
                changed.push(account_id);
            }
            NotificationChange::ChannelUnverified {
                account_id,
                channel,
            } => {
                // Like the single update: nothing without a row.
                if let Some(Some(flags)) = contacts.get_mut(account_id) {
                    match channel {
                        Channel::Email => flags.0 = 0,
                        Channel::Sms => flags.1 = 0,
                    }
                    changed.push(account_id);
                }
            }
            NotificationChange::Enqueue {
                account_id,
                sequence,
                target,
                notice,
                ..
            } => {
                let verified = contacts.get(account_id).copied().flatten();
                let channels: Vec<Channel> = match target {
                    Target::Channel(c) => vec![*c],
                    Target::AllVerified => verified_of(verified),
                    Target::EmailIfVerified => verified_of(verified)
                        .into_iter()
                        .filter(|c| *c == Channel::Email)
                        .collect(),
                };
                for channel in channels {
                    outbox.push(OutboxRow {
                        id: notification_id(account_id, *sequence, channel),
                        channel,
                        change,
                        details: notice.details().to_string(),
                    });
                }
            }
            NotificationChange::Settled {
                notification_id,
                status,
                at_ms,
            } => settled.push((notification_id, status, *at_ms)),
        }
    }
    let mut rows: Vec<(&str, (i64, i64))> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for account in changed {
        if seen.insert(account) {
            if let Some(Some(flags)) = contacts.get(account) {
                rows.push((account, *flags));
            }
        }
    }
    crate::batch::insert_rows(
        conn,
        "insert into notification_contacts_v1 (account_id, email_verified, phone_verified)",
        "on conflict (account_id) do update
            set email_verified = excluded.email_verified, phone_verified = excluded.phone_verified",
        &rows,
        |(account, (email, phone)), c| {
            c.extend([Cell::from(*account), Cell::from(*email), Cell::from(*phone)])
        },
    )
    .await?;
    crate::batch::insert_new_rows(
        conn,
        "notification_outbox_v1",
        &[
            "id",
            "account_id",
            "sequence",
            "topic",
            "channel",
            "code_id",
            "details",
            "created_ms",
            "expires_ms",
            "status",
            "updated_ms",
        ],
        &outbox,
        |row, c| {
            // Only messages are in this list.
            if let NotificationChange::Enqueue {
                account_id,
                sequence,
                notice,
                code_id,
                created_ms,
                expires_ms,
                ..
            } = row.change
            {
                c.extend([
                    Cell::from(&row.id),
                    Cell::from(account_id),
                    Cell::from(*sequence),
                    Cell::from(notice.topic()),
                    Cell::from(row.channel.as_str()),
                    Cell::from(code_id),
                    Cell::from(&row.details),
                    Cell::from(*created_ms),
                    Cell::from(*expires_ms),
                    Cell::from("pending"),
                    Cell::from(*created_ms),
                ])
            }
        },
    )
    .await?;
    // Outcomes after the inserts (a message and its outcome may share a batch); per message
    // the last one stands, as with updates one by one.
    let settled = crate::batch::last_per_key(&settled, |s| s.0);
    crate::batch::update_rows(
        conn,
        "notification_outbox_v1",
        "status = v.column2, updated_ms = v.column3",
        "id",
        &["text", "text", "bigint"],
        &settled,
        |(id, status, at), c| c.extend([Cell::from(*id), Cell::from(*status), Cell::from(*at)]),
    )
    .await
}

fn verified_of(flags: Option<(i64, i64)>) -> Vec<Channel> {
    let (email, phone) = flags.unwrap_or((0, 0));
    [(email, Channel::Email), (phone, Channel::Sms)]
        .into_iter()
        .filter(|(flag, _)| *flag != 0)
        .map(|(_, c)| c)
        .collect()
}

/// The `notification_outbox_v1` projection.
pub fn projection() -> ChangeProjection<NotificationChange> {
    ChangeProjection {
        name: "notification_outbox_v1",
        tables: &["notification_outbox_v1", "notification_contacts_v1"],
        deferred_indexes: &[
            "notification_outbox_v1_pending",
            "notification_outbox_v1_by_account",
        ],
        changes,
        write: |conn, change| Box::pin(write(conn, change)),
        write_many: Some(|conn, changes| Box::pin(write_many(conn, changes))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::stored;
    use gatehouse_domain::context::RequestContext;
    use uuid::Uuid;

    #[test]
    fn test_only_deliverable_codes_are_queued_on_their_channel() {
        let code = |deliverable| AccountFact::CodeIssued {
            requester: None,
            flow_id: Uuid::from_u128(1),
            code_id: Uuid::from_u128(2),
            channel: Channel::Sms,
            verifier: "v".into(),
            expires_at: chrono::DateTime::from_timestamp_millis(900).unwrap(),
            deliverable,
            context: RequestContext::default(),
        };
        let queued = changes(&stored("acc", 4, 100, code(true))).unwrap();
        assert!(matches!(&queued[..], [NotificationChange::Enqueue {
            notice: Notice::Code { flow_id }, target: Target::Channel(Channel::Sms), sequence: 4, expires_ms: Some(900), code_id: Some(id), ..
        }] if id == &Uuid::from_u128(2).to_string() && *flow_id == Uuid::from_u128(1)));
        assert!(changes(&stored("acc", 4, 100, code(false)))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn test_a_set_aside_recovery_request_tells_the_owner_only_when_the_aggregate_says_so() {
        let set_aside = |owner_notified| AccountFact::RecoveryRequestSetAside {
            flow_id: Uuid::from_u128(1),
            case_flow_id: Uuid::from_u128(2),
            owner_notified,
        };
        assert!(matches!(
            &changes(&stored("acc", 6, 100, set_aside(true))).unwrap()[..],
            [NotificationChange::Enqueue {
                notice: Notice::RecoveryRequestSetAside {},
                target: Target::EmailIfVerified,
                code_id: None,
                ..
            }]
        ));
        assert!(changes(&stored("acc", 6, 100, set_aside(false)))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn test_outcomes_settle_rows_and_transient_failures_do_not() {
        let failed = |permanent| AccountFact::NotificationFailed {
            notification_id: "acc/4/sms".into(),
            topic: "code".into(),
            channel: Channel::Sms,
            destination: String::new(),
            reason: "x".into(),
            attempts: 1,
            permanent,
        };
        assert!(changes(&stored("acc", 5, 100, failed(false)))
            .unwrap()
            .is_empty());
        assert_eq!(
            changes(&stored("acc", 5, 100, failed(true))).unwrap(),
            vec![NotificationChange::Settled {
                notification_id: "acc/4/sms".into(),
                status: "failed",
                at_ms: 100
            }]
        );
    }
}
