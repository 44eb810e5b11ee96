//! The SMS pumping guard: hourly budgets of text messages, one global and one per country
//! calling code, shared by every server process through the database, and a deny-list of number
//! prefixes (premium-rate ranges and the like).
//!
//! A message's admission is decided once, keyed by its code id (or notification id): at sign-up
//! for the first phone code (so the answer can say `phone_verification_deferred`), else by the
//! delivery worker just before it would send. Counting is one upsert per scope that refuses past
//! the budget, both scopes in one transaction, so concurrent processes never overshoot.
use gatehouse_domain::contact::calling_code;
use gatehouse_store::{Store, StoreError};
use sqlx::Row;

/// Length of a budget window.
pub const WINDOW_MS: i64 = 3_600_000;

/// The budgets and the deny-list.
#[derive(Debug, Clone)]
pub struct SmsBudget {
    /// Text messages per hour, all numbers together.
    pub per_hour: u32,
    /// Text messages per hour to one country calling code.
    pub per_prefix_per_hour: u32,
    /// Number prefixes never texted (`+1900`, `+44909`).
    pub deny_prefixes: Vec<String>,
}

impl Default for SmsBudget {
    fn default() -> Self {
        Self {
            per_hour: 1000,
            per_prefix_per_hour: 200,
            deny_prefixes: Vec::new(),
        }
    }
}

/// The decision on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsAdmission {
    /// Counted; send it.
    Admitted,
    /// The number starts with a denied prefix.
    Denied(String),
    /// The budget of `scope` (`global` or a calling code) is spent for this hour.
    Spent {
        /// `global` or the calling code.
        scope: String,
        /// Seconds until the next window.
        retry_after: i64,
    },
}

impl SmsAdmission {
    /// Why a message was not sent (recorded in `NotificationFailed`); `None` when admitted.
    pub fn refusal(&self) -> Option<String> {
        match self {
            SmsAdmission::Admitted => None,
            SmsAdmission::Denied(prefix) => {
                Some(format!("numbers starting {prefix} are not texted"))
            }
            SmsAdmission::Spent { scope, .. } => {
                Some(format!("the hourly SMS budget ({scope}) is spent"))
            }
        }
    }
}

fn window_of(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(WINDOW_MS)
}

fn retry_after(window_ms: i64, now_ms: i64) -> i64 {
    ((window_ms + WINDOW_MS - now_ms) / 1000).max(1)
}

impl SmsBudget {
    /// The deny-list entry an E.164 number starts with.
    pub fn denied_prefix(&self, e164: &str) -> Option<&str> {
        self.deny_prefixes
            .iter()
            .find(|p| e164.starts_with(p.as_str()))
            .map(String::as_str)
    }

    /// Decides once whether the message `id` to `e164` may be sent, counting it when it may.
    pub async fn admit(
        &self,
        store: &Store,
        id: &str,
        e164: &str,
        now_ms: i64,
    ) -> Result<SmsAdmission, StoreError> {
        if let Some(row) = sqlx::query("select scope, window_ms from sms_admissions where id = $1")
            .bind(id)
            .fetch_optional(store.any())
            .await?
        {
            let scope: String = row.try_get("scope")?;
            let window_ms: i64 = row.try_get("window_ms")?;
            return Ok(match scope.strip_prefix("deny:") {
                _ if scope.is_empty() => SmsAdmission::Admitted,
                Some(prefix) => SmsAdmission::Denied(prefix.to_string()),
                None => SmsAdmission::Spent {
                    scope,
                    retry_after: retry_after(window_ms, now_ms),
                },
            });
        }
        let window_ms = window_of(now_ms);
        let decision = if let Some(prefix) = self.denied_prefix(e164) {
            SmsAdmission::Denied(prefix.to_string())
        } else {
            let prefix = calling_code(e164).unwrap_or_else(|| "unknown".to_string());
            self.count(store, window_ms, now_ms, &prefix).await?
        };
        let scope = match &decision {
            SmsAdmission::Admitted => String::new(),
            SmsAdmission::Denied(prefix) => format!("deny:{prefix}"),
            SmsAdmission::Spent { scope, .. } => scope.clone(),
        };
        sqlx::query(
            "insert into sms_admissions (id, scope, window_ms) values ($1, $2, $3)
             on conflict (id) do nothing",
        )
        .bind(id)
        .bind(scope)
        .bind(window_ms)
        .execute(store.any())
        .await?;
        Ok(decision)
    }

    /// Counts one message against the global and the prefix budget, both or neither.
    async fn count(
        &self,
        store: &Store,
        window_ms: i64,
        now_ms: i64,
        prefix: &str,
    ) -> Result<SmsAdmission, StoreError> {
        let mut tx = store.any().begin().await?;
        for (scope, budget) in [
            ("global", self.per_hour),
            (prefix, self.per_prefix_per_hour),
        ] {
            let counted = budget > 0
                && sqlx::query(
                    "insert into sms_budget (window_ms, scope, sent) values ($1, $2, 1)
                     on conflict (window_ms, scope) do update set sent = sms_budget.sent + 1
                       where sms_budget.sent < $3",
                )
                .bind(window_ms)
                .bind(scope)
                .bind(i64::from(budget))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
            if !counted {
                tx.rollback().await?;
                tracing::warn!(scope, "SMS budget spent: a text message is withheld");
                return Ok(SmsAdmission::Spent {
                    scope: scope.to_string(),
                    retry_after: retry_after(window_ms, now_ms),
                });
            }
        }
        tx.commit().await?;
        Ok(SmsAdmission::Admitted)
    }

    /// Seconds until the next window when this hour's global budget is spent; `None` otherwise.
    pub async fn global_spent(
        &self,
        store: &Store,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let window_ms = window_of(now_ms);
        let sent: Option<i64> = sqlx::query_scalar(
            "select sent from sms_budget where window_ms = $1 and scope = 'global'",
        )
        .bind(window_ms)
        .fetch_optional(store.any())
        .await?;
        Ok((sent.unwrap_or(0) >= i64::from(self.per_hour)).then(|| retry_after(window_ms, now_ms)))
    }

    /// Forgets windows and decisions older than a day.
    pub async fn prune(store: &Store, now_ms: i64) -> Result<(), StoreError> {
        let before = window_of(now_ms) - 24 * WINDOW_MS;
        sqlx::query("delete from sms_budget where window_ms < $1")
            .bind(before)
            .execute(store.any())
            .await?;
        sqlx::query("delete from sms_admissions where window_ms < $1")
            .bind(before)
            .execute(store.any())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_windows_are_clock_hours_and_retry_after_reaches_the_next() {
        assert_eq!(window_of(3 * WINDOW_MS + 5), 3 * WINDOW_MS);
        assert_eq!(retry_after(3 * WINDOW_MS, 3 * WINDOW_MS + 1000), 3599);
        assert_eq!(retry_after(3 * WINDOW_MS, 4 * WINDOW_MS - 1), 1);
    }

    #[test]
    fn test_deny_list_matches_prefixes() {
        let budget = SmsBudget {
            deny_prefixes: vec!["+1900".into(), "+44909".into()],
            ..SmsBudget::default()
        };
        assert_eq!(budget.denied_prefix("+19005550100"), Some("+1900"));
        assert_eq!(budget.denied_prefix("+449098790123"), Some("+44909"));
        assert_eq!(budget.denied_prefix("+14155550100"), None);
    }
}
