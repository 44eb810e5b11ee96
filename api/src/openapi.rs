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
//! - every operation: `503 unavailable` with `Retry-After` (the store, or for a read route the
//!   read replica, is unreachable, contention persisted, or the request ran past the timeout).
//!
//! An operation that documents one of these statuses itself keeps its own description.
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{SchemaType, Type};
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
    optional_body_is_not_null(operation);
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
        "`unavailable`: the store is unreachable (no connection within `GATEHOUSE_DB_ACQUIRE_TIMEOUT_MS`; for a read route with `GATEHOUSE_READ_DATABASE_URL`, the read replica), contention persisted or the request took too long; retry after the `Retry-After` seconds",
    );
}

/// An optional JSON body (`request_body(content = Option<T>)`, the only way to say "optional" in
/// the attribute) comes out as `oneOf: [T, null]`; the server takes no body or a `T`, never a JSON
/// `null`, so the schema says `T` and `required: false` says the rest.
fn optional_body_is_not_null(operation: &mut Operation) {
    let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
        return;
    };
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        let Some(RefOr::T(Schema::OneOf(one_of))) = content.schema.as_ref() else {
            continue;
        };
        let is_null = |item: &RefOr<Schema>| matches!(item, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
        let mut rest = one_of.items.iter().filter(|item| !is_null(item));
        if let (Some(only), None) = (rest.next(), rest.next()) {
            if one_of.items.len() == 2 {
                content.schema = Some(only.clone());
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(doc: &mut utoipa::openapi::OpenApi, path: &str) -> Vec<String> {
        let item = doc.paths.paths.get_mut(path).expect("path in the document");
        operations(item)
            .next()
            .expect("an operation")
            .responses
            .responses
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn shared_answers_follow_what_an_operation_is() {
        let mut doc = crate::app::openapi();
        // A JSON body without a bearer.
        let login = statuses(&mut doc, "/v1/login");
        for status in ["400", "413", "415", "503"] {
            assert!(login.contains(&status.to_string()), "{status}: {login:?}");
        }
        assert!(!login.contains(&"404".to_string()), "{login:?}");
        // A bearer and a path id, no body.
        let session = statuses(&mut doc, "/v1/me/sessions/{session_id}");
        for status in ["400", "401", "404", "503"] {
            assert!(
                session.contains(&status.to_string()),
                "{status}: {session:?}"
            );
        }
        assert!(!session.contains(&"415".to_string()), "{session:?}");
        // An optional body is its type, not `T or null`.
        let phrase = doc.paths.paths["/v1/me/anti-phishing-phrase"]
            .delete
            .clone();
        let body = serde_json::to_value(phrase.and_then(|op| op.request_body)).unwrap_or_default();
        assert_eq!(
            body["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/RemovePhraseRequest",
            "{body}"
        );
        assert_ne!(body["required"], true, "{body}");
        // `/metrics` never answers 401.
        assert!(!statuses(&mut doc, "/metrics").contains(&"401".to_string()));
    }

    #[test]
    fn password_bounds_are_the_policy_s() {
        let mut doc = crate::app::openapi();
        let policy = gatehouse_domain::password::PasswordPolicy {
            min_len: 10,
            max_len: 50,
        };
        password_bounds(&mut doc, &policy);
        let schemas = &doc.components.as_ref().expect("components").schemas;
        for (schema, property, new) in PASSWORD_PROPERTIES {
            let Some(RefOr::T(Schema::Object(object))) = schemas.get(schema) else {
                panic!("{schema} is not in the document");
            };
            let Some(RefOr::T(Schema::Object(field))) = object.properties.get(property) else {
                panic!("{schema}.{property} is not in the document");
            };
            assert_eq!(field.max_length, Some(200), "{schema}.{property}");
            assert_eq!(field.min_length, new.then_some(1), "{schema}.{property}");
        }
    }
}
