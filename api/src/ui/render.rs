//! Templates into answers. Every page is an askama template under `api/templates/` (compiled
//! in, checked at build time, every value HTML-escaped); no HTML is ever built by hand.
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// What the shared layout (`base.html`) shows around every page.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    /// A self-service session is open: show the account links and the sign-out button.
    pub signed_in: bool,
    /// The CSRF token for the layout's own forms (sign out).
    pub csrf: String,
    /// The current section, to mark its link (`security`, `sessions`, …).
    pub current: &'static str,
}

impl Nav {
    /// The layout of a page seen without a session.
    pub fn guest(csrf: &str) -> Self {
        Self {
            signed_in: false,
            csrf: csrf.to_string(),
            current: "",
        }
    }

    /// The layout of a signed-in page in section `current`.
    pub fn signed_in(csrf: &str, current: &'static str) -> Self {
        Self {
            signed_in: true,
            csrf: csrf.to_string(),
            current,
        }
    }
}

/// Renders `template` as an HTML answer with `status`.
pub fn html<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a page template failed to render");
            internal_error()
        }
    }
}

/// A page of one message (errors, refusals).
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    /// The layout.
    pub nav: Nav,
    /// The heading.
    pub title: &'a str,
    /// The text.
    pub text: &'a str,
}

/// A page of one message with `status`.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html(
        status,
        &MessagePage {
            nav: Nav::default(),
            title,
            text,
        },
    )
}

/// 500 without internals.
pub fn internal_error() -> Response {
    // The message template cannot fail to render; if it did, plain text says the same.
    let page = MessagePage {
        nav: Nav::default(),
        title: "Something went wrong",
        text: "Something went wrong on our side. Please try again in a moment.",
    };
    match page.render() {
        Ok(body) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    }
}

/// 400: a form that could not be read.
pub fn bad_form() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "Form not understood",
        "The form could not be read. Go back, reload the page and try again.",
    )
}

/// A `303 See Other` to `to` (after a form post).
pub fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
