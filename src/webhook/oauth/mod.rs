//! OAuth 2.0 client credentials (RFC 6749 §4.4): the token route MoEngage calls before it sends
//! webhooks, and the tokens the webhook then accepts (as `Authorization: Bearer`).
//!
//! MoEngage (Settings › Advanced settings › Authorization configuration → OAuth 2.0, grant
//! type client credentials, token type Opaque) posts the secret's `oauth_client_id` and
//! `oauth_client_secret` to `POST …/oauth/token`, reads `access_token` and `expires_in` from
//! the answer, and sends `Authorization: Bearer <access_token>` with every webhook request.
//!
//! **Tokens are stateless**: `mseg1.<expiry>.<mac>`, where `<expiry>` is the expiry in Unix
//! seconds (canonical decimal) and `<mac>` the unpadded base64url HMAC-SHA256 of
//! [`MAC_TAG`], the client id (its length as a big-endian u64, then its bytes) and the expiry
//! (big-endian u64), keyed with HMAC-SHA256(client secret, [`KEY_LABEL`]). Nothing is
//! stored: changing the client secret (or id) revokes every token issued before. A token
//! lasts [`TOKEN_TTL_SECS`]; one claiming an expiry further ahead (beyond
//! [`CLOCK_LEEWAY_SECS`] of clock skew between instances) is refused. MACs are compared in
//! constant time.
//!
//! | answer | when |
//! |---|---|
//! | 200 `{"access_token", "token_type": "Bearer", "expires_in"}` | `grant_type=client_credentials` with the secret's client credentials |
//! | 400 `invalid_request` | a body that is neither form-urlencoded nor a JSON object, a repeated parameter, credentials both in `Authorization: Basic` and in the body, no `grant_type`, a `Content-Encoding` |
//! | 400 `unsupported_grant_type` | another `grant_type` |
//! | 401 `invalid_client` | no client credentials, malformed or wrong ones; OAuth not configured in the secret; a dry run without settings |
//! | 405 | not POST (`Allow: POST`) |
//! | 413 `invalid_request` | a body over [`MAX_BODY_BYTES`] |
//! | 500 `misconfigured` / 503 `settings_unavailable` | the secret is invalid / cannot be read: the webhook's fixed messages, details in the logs only |
//!
//! Every answer is JSON (RFC 6749 §5.1, §5.2: `{"error", "error_description"}` for errors)
//! with `Cache-Control: no-store` and `Pragma: no-cache`; a 401 carries
//! `WWW-Authenticate: Basic realm="moengage-segment"`.
//!
//! The checks run in this order: method, body size, body format and parameters, client
//! credentials present, grant type, then the secret is read and the credentials compared. A
//! caller without credentials is answered `invalid_client` before the secret is read, and
//! every `invalid_client` says the same thing: the caller learns nothing about the
//! configuration. Client credentials come from HTTP Basic (RFC 6749 §2.3.1: id and secret
//! form-urlencoded, then base64; values sent without that encoding match too) or from the
//! body's `client_id` and `client_secret`, never both. `scope` and unknown parameters are
//! ignored; a parameter without a value counts as absent (§3.1).

mod request;
#[cfg(test)]
mod tests;
mod token;

pub use request::{TokenRequest, form_decode};
pub use token::{
    CLOCK_LEEWAY_SECS, KEY_LABEL, MAC_TAG, TOKEN_PREFIX, TOKEN_TTL_SECS, TokenError, mint, verify,
};

use std::time::Instant;

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::delivery::forward::Forwarder;
use crate::settings::secret::SecretSource;
use crate::webhook::answer::{HttpError, json_response_with};

/// The route's path suffix: `/oauth/token` (HTTP API), `/prod/oauth/token` (REST API with
/// its stage), a Function URL's `/oauth/token`.
pub const TOKEN_PATH: &str = "/oauth/token";
/// The largest token request body read; a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Whether a request goes to the token route.
pub fn is_token_path(path: &str) -> bool {
    path.ends_with(TOKEN_PATH)
}

/// The current time in Unix seconds.
pub fn now_secs() -> u64 {
    u64::try_from(crate::mapping::time::now_millis() / 1000).unwrap_or(0)
}

/// Why a token request is refused. `Display` is for the log line (never a credential);
/// [`OAuthError::description`] is what the caller is told.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("method {0} is not allowed: the token route takes POST")]
    MethodNotAllowed(String),
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The reason is logged, never told: every `invalid_client` answer is the same.
    #[error("client authentication failed: {0}")]
    InvalidClient(&'static str),
    #[error("only grant_type=client_credentials is supported")]
    UnsupportedGrantType,
    /// The secret cannot be read (503) or is invalid (500).
    #[error(transparent)]
    Settings(HttpError),
    #[error("the token could not be signed")]
    MintFailed,
}

impl OAuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            OAuthError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            OAuthError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OAuthError::InvalidRequest(_) | OAuthError::UnsupportedGrantType => {
                StatusCode::BAD_REQUEST
            }
            OAuthError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
            OAuthError::Settings(e) => e.status(),
            OAuthError::MintFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The answer's `error`: RFC 6749 §5.2 codes, and the webhook's codes for 5xx.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::MethodNotAllowed(_) => "method_not_allowed",
            OAuthError::TooLarge(_) | OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::Settings(e) => e.code(),
            OAuthError::MintFailed => "server_error",
        }
    }

    /// The answer's `error_description`: about the caller's request for a 4xx, fixed for
    /// `invalid_client` and every 5xx (details are logged only).
    pub fn description(&self) -> String {
        match self {
            OAuthError::InvalidClient(_) => "client authentication failed".to_owned(),
            OAuthError::Settings(e) => e.public_message(),
            other => other.to_string(),
        }
    }
}

#[derive(Serialize)]
struct ErrorAnswer<'a> {
    error: &'static str,
    error_description: &'a str,
}

#[derive(Serialize)]
struct TokenAnswer<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

fn to_json(value: &impl Serialize) -> String {
    // Strings and numbers only: serializing cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"))
}

/// A token route answer: JSON, never cached (RFC 6749 §5.1).
fn respond(status: StatusCode, body: String) -> Response<Body> {
    json_response_with(
        status,
        body,
        &[
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
    )
}

/// The answer to a token request: the token, or the error.
pub fn answer(outcome: &Result<String, OAuthError>) -> Response<Body> {
    match outcome {
        Ok(token) => respond(
            StatusCode::OK,
            to_json(&TokenAnswer {
                access_token: token,
                token_type: "Bearer",
                expires_in: TOKEN_TTL_SECS,
            }),
        ),
        Err(e) => respond(
            e.status(),
            to_json(&ErrorAnswer {
                error: e.code(),
                error_description: &e.description(),
            }),
        ),
    }
}

/// The token route: one request in, one answer out, one summary log line (status and error
/// code, never a credential or token). The settings are read only for a request that passed
/// [`TokenRequest::read`], before `deadline`.
pub async fn serve<S: SecretSource>(
    forwarder: &Forwarder<S>,
    req: &Request,
    deadline: Instant,
) -> Response<Body> {
    let started = Instant::now();
    let outcome = match TokenRequest::read(req.method(), req.headers(), req.body().as_ref()) {
        Ok(request) => request.issue(forwarder.access(deadline).await, now_secs()),
        Err(e) => Err(e),
    };
    let resp = answer(&outcome);
    let status = resp.status().as_u16();
    let duration_ms = started.elapsed().as_millis() as u64;
    match &outcome {
        Ok(_) => tracing::info!(status, duration_ms, "token request summary"),
        Err(e) if e.status().is_server_error() => tracing::error!(
            status,
            error = e.code(),
            detail = %e,
            duration_ms,
            "token request summary"
        ),
        Err(e) => tracing::info!(
            status,
            error = e.code(),
            detail = %e,
            duration_ms,
            "token request summary"
        ),
    }
    resp
}
