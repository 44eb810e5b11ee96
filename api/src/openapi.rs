//! The answers every operation can give besides its own, added to the OpenAPI document from what
//! the operation is (a JSON body, a bearer, parameters), so the contract lists them once:
//!
//! - a JSON request body: `400 invalid_request` (malformed or not matching the schema) and `413
//!   payload_too_large` (over [`crate::app::BODY_LIMIT`]); a required one also `415
//!   unsupported_media_type` (no `Content-Type: application/json`), from
//!   [`crate::routes::ApiJson`];
//! - path or query parameters: `400 invalid_request` when one does not parse;
//! - a path parameter naming something: `404`;
//! - a bearer: `401 unauthenticated` (no valid session, API or staff token);
//! - every operation: `503 unavailable` (the store is unreachable, contention persisted, or the
//!   request ran past the timeout).
//!
//! An operation that documents one of these statuses itself keeps its own description.
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::{Ref, RefOr, Required, Response, ResponseBuilder, Schema};
use utoipa::Modify;

/// Adds the shared answers to every operation of the document.
pub struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                add_shared(operation);
            }
        }
    }
}

/// The operations of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn error(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add_shared(operation: &mut Operation) {
    let (json_body, body_required) = match operation.request_body.as_ref() {
        Some(RefOr::T(body)) => (
            body.content.contains_key("application/json"),
            body.required == Some(Required::True),
        ),
        Some(RefOr::Ref(_)) => (true, true),
        None => (false, false),
    };
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let path_parameter = parameters.iter().any(|p| match p {
        RefOr::T(p) => p.parameter_in == ParameterIn::Path,
        RefOr::Ref(_) => false,
    });
    // `/metrics` answers a missing or wrong token like an unknown path (404), never 401.
    let answers_401 = operation.operation_id.as_deref() != Some("metrics");
    let bearer = answers_401
        && operation
            .security
            .as_ref()
            .is_some_and(|requirements| !requirements.is_empty());
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| error(description));
    };
    if json_body || !parameters.is_empty() {
        add(
            "400",
            "`invalid_request`: the body is not valid JSON or does not match the schema, or a parameter does not parse",
        );
    }
    if json_body {
        add("413", "`payload_too_large`: the body is over 16 KiB");
    }
    // An optional body is read whatever its type (absent or blank means the default).
    if json_body && body_required {
        add(
            "415",
            "`unsupported_media_type`: send the body as JSON with `Content-Type: application/json`",
        );
    }
    if path_parameter {
        add(
            "404",
            "`not_found` or a more precise code: nothing of that id",
        );
    }
    if bearer {
        add(
            "401",
            "`unauthenticated`: no valid bearer (session, API key or staff token as the route takes)",
        );
    }
    add(
        "503",
        "`unavailable`: the store is unreachable, contention persisted or the request took too long; retry shortly",
    );
}

/// Password properties of request schemas: (schema, property, whether it sets a new password).
const PASSWORD_PROPERTIES: [(&str, &str, bool); 5] = [
    ("LoginRequest", "password", false),
    ("ProofInput", "password", false),
    ("RegisterRequest", "password", true),
    ("ResetRequest", "new_password", true),
    ("ChangePasswordRequest", "new_password", true),
];

/// Writes this server's password bounds into the document. The policy counts code points of
/// the NFKC normal form, which JSON Schema cannot express: the schema states the widest bound
/// the server enforces on the raw string (a password of more UTF-8 bytes than four times the
/// longest allowed is refused unread; an empty one is never a new password) and the description
/// states the rule.
pub fn password_bounds(
    openapi: &mut utoipa::openapi::OpenApi,
    policy: &gatehouse_domain::password::PasswordPolicy,
) {
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    for (schema, property, new) in PASSWORD_PROPERTIES {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
            continue;
        };
        let Some(RefOr::T(Schema::Object(field))) = object.properties.get_mut(property) else {
            continue;
        };
        field.max_length = Some(policy.max_bytes());
        let rule = if new {
            field.min_length = Some(1);
            format!(
                "{} to {} characters (Unicode code points of its NFKC normal form, white-space runs counted once), not common, not built from the account's identifiers; `422 weak_password` otherwise. The schema's bounds are the widest the server enforces on the raw string: over {} UTF-8 bytes is refused unread.",
                policy.min_len,
                policy.max_len,
                policy.max_bytes()
            )
        } else {
            format!(
                "Over {} UTF-8 bytes (four times the longest password allowed, {} characters) is refused unread with `400 invalid_request`.",
                policy.max_bytes(),
                policy.max_len
            )
        };
        let description = field.description.take().unwrap_or_default();
        field.description = Some(format!("{description} {rule}").trim().to_string());
    }
}
