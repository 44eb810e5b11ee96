//! `GET /v1/me/activity` and `GET /v1/me/activity/export`: every security event of the signed-in
//! account in plain words (the `activity_v1` read model), a page at a time or streamed whole as
//! CSV or JSON ("export any session logs you need").
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use gatehouse_projections::activity::{self, ActivityFilter, ActivityKind, ActivityRow};
use gatehouse_projections::csv;
use gatehouse_store::Store;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::fresh::{own_writes, Freshness};
use crate::request::Authenticated;
use crate::state::AppState;

/// Read models an activity answer reads.
const READ_MODELS: &[&str] = &[activity::NAME];

/// Rows an export reads per query while it streams.
const EXPORT_PAGE: i64 = 500;

/// CSV columns of the export, in order.
pub const CSV_COLUMNS: [&str; 7] = [
    "at",
    "kind",
    "outcome",
    "ip",
    "user_agent",
    "device",
    "detail",
];

/// The schema of an activity kind: a string, one of the closed list.
fn kind_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ActivityKind::ALL.iter().map(|k| k.as_str())))
        .description(Some("What the entry is about (a closed list)."))
        .build()
        .into()
}

/// The schema of an outcome: a string, one of the closed list.
fn outcome_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(activity::OUTCOMES.iter().copied()))
        .description(Some("How it ended."))
        .build()
        .into()
}

/// The schema of the `kind` filter (optional, one of the closed list).
fn kind_param_schema() -> RefOr<Schema> {
    RefOr::T(kind_schema())
}

/// Paging and filter of the activity.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Entries per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (a positive integer).
    #[param(minimum = 1)]
    pub cursor: Option<i64>,
    /// Only entries of this kind.
    #[param(schema_with = kind_param_schema)]
    pub kind: Option<String>,
}

/// One security event, in plain words (no secret: destinations are masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// What it is about.
    #[schema(schema_with = kind_schema)]
    pub kind: String,
    /// `succeeded`, `failed`, `refused` or `recorded`.
    #[schema(schema_with = outcome_schema)]
    pub outcome: String,
    /// Client IP of the request, when the event records one.
    pub ip: Option<String>,
    /// User agent of the request.
    pub user_agent: Option<String>,
    /// Device id the frontend supplied.
    pub device: Option<String>,
    /// Plain words.
    pub detail: String,
}

impl From<ActivityRow> for ActivityEntry {
    fn from(r: ActivityRow) -> Self {
        Self {
            at: DateTime::from_timestamp_millis(r.at_ms).unwrap_or_default(),
            kind: r.kind,
            outcome: r.outcome,
            ip: r.ip,
            user_agent: r.user_agent,
            device: r.device,
            detail: r.detail,
        }
    }
}

/// A page of the activity, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    /// Entries.
    pub entries: Vec<ActivityEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<i64>,
    /// Read your own writes.
    #[serde(flatten)]
    pub freshness: Freshness,
}

/// The `kind` filter, checked against the closed list.
fn parse_kind(kind: Option<&str>) -> Result<Option<ActivityKind>, ApiError> {
    kind.map(|k| {
        ActivityKind::parse(k)
            .ok_or_else(|| ApiError::bad_request("kind is not an activity kind").with_field("kind"))
    })
    .transpose()
}

/// Every security event of the account, newest first: sign-ins and refusals, codes issued and
/// where they were delivered (masked), factors, contacts, password, phrase, API keys, whitelist,
/// devices, sessions ended, recovery. Waits up to `GATEHOUSE_READ_YOUR_WRITES_MS` for the
/// caller's own latest event; `stale: true` when it had not arrived by then.
#[utoipa::path(get, path = "/v1/me/activity", tag = "history", security(("bearer" = [])), params(ActivityQuery),
    responses(
        (status = 200, body = ActivityPage),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request`: limit not 1 to 100, cursor not a positive integer, unknown kind"),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub async fn list_activity(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<ActivityQuery>, QueryRejection>,
) -> Result<Json<ActivityPage>, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::bad_request("limit and cursor must be integers, kind an activity kind")
    })?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 100").with_field("limit"));
    }
    if query.cursor.is_some_and(|c| c < 1) {
        return Err(ApiError::bad_request("cursor must be a positive integer").with_field("cursor"));
    }
    let kind = parse_kind(query.kind.as_deref())?;
    let account_id = auth.account_id();
    let freshness = own_writes(&state, &account_id, READ_MODELS).await?;
    let filter = ActivityFilter {
        kind,
        before: query.cursor,
        ..ActivityFilter::default()
    };
    let rows = activity::page(state.store().reads(), &account_id, &filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<ActivityRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        rows.last().map(|r| r.sequence)
    } else {
        None
    };
    Ok(Json(ActivityPage {
        entries: rows.into_iter().map(ActivityEntry::from).collect(),
        next_cursor,
        freshness,
    }))
}

/// Format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// RFC 4180 CSV: a first line naming the account and the range (starting with `#`), the
    /// column names, then one row per entry; cells that a spreadsheet would run as a formula
    /// (starting with `=`, `+`, `-`, `@`, tab or carriage return) are prefixed with `'`.
    Csv,
    /// One JSON object: `account_id`, `from`, `to`, `stale` (when true) and `entries`.
    Json,
}

/// What to export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `json`.
    #[param(inline)]
    pub format: Option<ExportFormat>,
    /// Entries at or after this instant (RFC 3339); default: the first.
    pub from: Option<DateTime<Utc>>,
    /// Entries at or before this instant (RFC 3339); default: now. Not before `from`.
    pub to: Option<DateTime<Utc>>,
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One row as CSV cells, in [`CSV_COLUMNS`] order.
fn csv_cells(r: &ActivityRow) -> [String; 7] {
    [
        instant(DateTime::from_timestamp_millis(r.at_ms).unwrap_or_default()),
        r.kind.clone(),
        r.outcome.clone(),
        r.ip.clone().unwrap_or_default(),
        r.user_agent.clone().unwrap_or_default(),
        r.device.clone().unwrap_or_default(),
        r.detail.clone(),
    ]
}

/// Where the export stands while it streams.
struct Export {
    store: Store,
    account_id: String,
    filter: ActivityFilter,
    format: ExportFormat,
    /// Rows written so far (JSON needs commas between them).
    written: u64,
    /// The closing text was written.
    done: bool,
}

impl Export {
    /// The next chunk of the body: the next page of rows, or the closing text once they run out.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if self.done {
            return None;
        }
        let rows = match activity::page(
            self.store.reads(),
            &self.account_id,
            &self.filter,
            EXPORT_PAGE,
        )
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                // The status line is gone already: the body ends short, and the log says why.
                tracing::error!(error = %e, "activity export failed");
                return Some((Err(std::io::Error::other("export failed")), self.finished()));
            }
        };
        let mut out = String::new();
        if rows.is_empty() {
            if self.format == ExportFormat::Json {
                out.push_str("]}\n");
            }
            return Some((Ok(Bytes::from(out)), self.finished()));
        }
        for row in &rows {
            match self.format {
                ExportFormat::Csv => out.push_str(&csv::safe_record(csv_cells(row))),
                ExportFormat::Json => {
                    if self.written > 0 {
                        out.push(',');
                    }
                    let entry = ActivityEntry::from(row.clone());
                    out.push_str(&serde_json::to_string(&entry).unwrap_or_default());
                    out.push('\n');
                }
            }
            self.written += 1;
        }
        self.filter.before = rows.last().map(|r| r.sequence);
        Some((Ok(Bytes::from(out)), self))
    }

    fn finished(mut self) -> Self {
        self.done = true;
        self
    }
}

/// The account's activity in a range, newest first, streamed as CSV or JSON (the same rows as
/// `GET /v1/me/activity`, at any length, without holding them in memory). Waits for the caller's
/// own latest event like the list (`stale` in the JSON, and in the CSV's first line, when it had
/// not arrived).
#[utoipa::path(get, path = "/v1/me/activity/export", tag = "history", security(("bearer" = [])), params(ExportQuery),
    responses(
        (status = 200, description = "The export (`Content-Disposition: attachment`). CSV columns: `at, kind, outcome, ip, user_agent, device, detail`, after a first line `# Gatehouse security activity of account <id> from <from> to <to>`; `kind` is one of the `ActivityEntry.kind` values.",
            content(
                (String = "text/csv"),
                (ActivityExport = "application/json"),
            )),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request`: format not `csv` or `json`, `from` or `to` not RFC 3339, `from` after `to`"),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub async fn export_activity(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::bad_request("format must be csv or json, from and to RFC 3339 instants")
    })?;
    let to = query.to.unwrap_or(auth.now);
    if query.from.is_some_and(|from| from > to) {
        return Err(ApiError::bad_request("from must not be after to").with_field("from"));
    }
    let format = query.format.unwrap_or(ExportFormat::Csv);
    let account_id = auth.account_id();
    let freshness = own_writes(&state, &account_id, READ_MODELS).await?;
    let from_text = query
        .from
        .map_or_else(|| "the first entry".to_string(), instant);
    let (content_type, head) = match format {
        ExportFormat::Csv => {
            let mut head = format!(
                "# Gatehouse security activity of account {account_id} from {from_text} to {}{}\r\n",
                instant(to),
                if freshness.stale {
                    " (stale: the latest event may be missing)"
                } else {
                    ""
                }
            );
            head.push_str(&csv::record(CSV_COLUMNS));
            ("text/csv; charset=utf-8", head)
        }
        ExportFormat::Json => {
            let mut head = serde_json::json!({
                "account_id": account_id,
                "from": query.from.map(instant),
                "to": instant(to),
            });
            if freshness.stale {
                head["stale"] = serde_json::Value::Bool(true);
            }
            let mut text = head.to_string();
            // Reopen the object to stream the entries into it.
            text.pop();
            text.push_str(",\"entries\":[\n");
            ("application/json", text)
        }
    };
    let export = Export {
        store: state.store().clone(),
        account_id: account_id.clone(),
        filter: ActivityFilter {
            kind: None,
            before: None,
            from_ms: query.from.map(|f| f.timestamp_millis()),
            to_ms: Some(to.timestamp_millis()),
        },
        format,
        written: 0,
        done: false,
    };
    let rows = futures::stream::unfold(export, Export::next_chunk);
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) })
        .chain(rows);
    let extension = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"gatehouse-activity-{account_id}.{extension}\""),
        )
        .body(Body::from_stream(body))
        .map_err(ApiError::internal)
}

/// The JSON export's shape (streamed).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityExport {
    /// The account.
    pub account_id: String,
    /// Start of the range; absent: from the first entry.
    pub from: Option<DateTime<Utc>>,
    /// End of the range.
    pub to: DateTime<Utc>,
    /// `true` when the caller's own latest event may be missing (see `GET /v1/me/activity`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Entries, newest first.
    pub entries: Vec<ActivityEntry>,
}

/// This module's routes.
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list_activity))
        .routes(utoipa_axum::routes!(export_activity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_csv_cells_of_a_formula_like_agent_are_neutralised() {
        let row = ActivityRow {
            sequence: 3,
            at_ms: 0,
            kind: "sign_in".into(),
            outcome: "succeeded".into(),
            ip: Some("203.0.113.5".into()),
            user_agent: Some("=HYPERLINK(\"http://evil\")".into()),
            device: Some("@dev".into()),
            detail: "Signed in".into(),
        };
        let line = csv::safe_record(csv_cells(&row));
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000Z,sign_in,succeeded,203.0.113.5,\"'=HYPERLINK(\"\"http://evil\"\")\",'@dev,Signed in\r\n"
        );
    }

    #[test]
    fn test_kind_filter_accepts_the_closed_list_only() {
        assert_eq!(parse_kind(None).unwrap(), None);
        assert_eq!(
            parse_kind(Some("sign_in")).unwrap(),
            Some(ActivityKind::SignIn)
        );
        assert!(parse_kind(Some("Sign_In")).is_err());
    }
}
