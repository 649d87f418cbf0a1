//! OAuth 2.0 client credentials (RFC 6749 §4.4): the token route MoEngage calls before it sends
//! webhooks, and the tokens the webhook then accepts ([`crate::webhook::auth`]).
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

use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::delivery::forward::{Access, Forwarder};
use crate::settings::config::OAuthClient;
use crate::settings::secret::{SecretSource, SettingsError};
use crate::webhook::answer::HttpError;

/// The route's path suffix: `/oauth/token` (HTTP API), `/prod/oauth/token` (REST API with
/// its stage), a Function URL's `/oauth/token`.
pub const TOKEN_PATH: &str = "/oauth/token";
/// The first part of every token (its format's version).
pub const TOKEN_PREFIX: &str = "mseg1";
/// How long a token lasts (`expires_in`).
pub const TOKEN_TTL_SECS: u64 = 3600;
/// How far the clocks of two instances may disagree: a token minted by one instance whose
/// clock is ahead still verifies on another.
pub const CLOCK_LEEWAY_SECS: u64 = 60;
/// The largest token request body read; a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// The message of the HMAC that derives a client's signing key from its secret.
pub const KEY_LABEL: &[u8] = b"moengage-segment oauth signing key v1";
/// The first bytes MAC'ed into every token.
pub const MAC_TAG: &[u8] = b"moengage-segment oauth token v1";
/// No token of this format is longer: `mseg1.` + 20 digits + `.` + 43 characters.
const MAX_TOKEN_CHARS: usize = 96;
const REALM: &str = "Basic realm=\"moengage-segment\"";

type HmacSha256 = Hmac<Sha256>;

/// Whether a request goes to the token route.
pub fn is_token_path(path: &str) -> bool {
    path.ends_with(TOKEN_PATH)
}

/// The current time in Unix seconds.
pub fn now_secs() -> u64 {
    u64::try_from(crate::mapping::time::now_millis() / 1000).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// Why a token is not accepted (for tests and logs; the webhook answers 401 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a token of this function")]
    Malformed,
    #[error("the token's signature does not match the client")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token claims an expiry further ahead than tokens last")]
    TooFarAhead,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    // HMAC takes keys of any length: this never fails, but a failure would fail closed.
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// The MAC of a token of `client` expiring at `expiry`.
fn token_mac(client: &OAuthClient, expiry: u64) -> Option<[u8; 32]> {
    let key = hmac_sha256(client.secret.expose().as_bytes(), &[KEY_LABEL])?;
    let id = client.id.expose().as_bytes();
    let id_len = u64::try_from(id.len()).ok()?.to_be_bytes();
    hmac_sha256(&key, &[MAC_TAG, &id_len, id, &expiry.to_be_bytes()])
}

/// A token for `client` issued at `now` (Unix seconds), valid for [`TOKEN_TTL_SECS`]. `None`
/// only if `now` is so far in the future that the expiry overflows.
pub fn mint(client: &OAuthClient, now: u64) -> Option<String> {
    let expiry = now.checked_add(TOKEN_TTL_SECS)?;
    let mac = token_mac(client, expiry)?;
    Some(format!(
        "{TOKEN_PREFIX}.{expiry}.{}",
        URL_SAFE_NO_PAD.encode(mac)
    ))
}

/// A canonical decimal expiry: digits only, no sign, no leading zero, within u64.
fn parse_expiry(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && !(s.len() > 1 && s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// Checks a token presented at `now` (Unix seconds) against `client`.
pub fn verify(token: &str, client: &OAuthClient, now: u64) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(prefix), Some(expiry), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if prefix != TOKEN_PREFIX {
        return Err(TokenError::Malformed);
    }
    let expiry = parse_expiry(expiry).ok_or(TokenError::Malformed)?;
    // Unpadded, canonical base64url only: one encoding per MAC.
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| TokenError::Malformed)?;
    if mac.len() != 32 {
        return Err(TokenError::Malformed);
    }
    let expected = token_mac(client, expiry).ok_or(TokenError::BadSignature)?;
    if !bool::from(expected.as_slice().ct_eq(&mac)) {
        return Err(TokenError::BadSignature);
    }
    if expiry <= now {
        return Err(TokenError::Expired);
    }
    if expiry > now.saturating_add(TOKEN_TTL_SECS + CLOCK_LEEWAY_SECS) {
        return Err(TokenError::TooFarAhead);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors and answers

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

fn respond(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache");
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp = resp.header(header::ALLOW, "POST");
    }
    if status == StatusCode::UNAUTHORIZED {
        resp = resp.header(header::WWW_AUTHENTICATE, REALM);
    }
    resp.body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
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

// ---------------------------------------------------------------------------------------------
// Requests

const NOT_FORM: &str = "the body is not valid application/x-www-form-urlencoded UTF-8";
const NOT_JSON: &str = "the body is not a JSON object";
const NOT_STRINGS: &str = "grant_type, client_id and client_secret must be JSON strings";
const BAD_CONTENT_TYPE: &str =
    "Content-Type must be application/x-www-form-urlencoded or application/json";
const ENCODED: &str = "Content-Encoding is not supported: send the body as it is";
const BOTH_METHODS: &str =
    "client credentials are both in the Authorization header and in the body: use one";
const MANY_AUTHORIZATION: &str = "more than one Authorization header";
const NO_GRANT_TYPE: &str = "grant_type is missing";

/// The parameters read from the body (RFC 6749 §4.4.2, §2.3.1).
#[derive(Default)]
struct Params {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    seen: HashSet<String>,
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Params")
            .field("grant_type", &self.grant_type.as_ref().map(|_| "[set]"))
            .field("client_id", &self.client_id.as_ref().map(|_| "[set]"))
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[set]"),
            )
            .finish()
    }
}

fn repeated(name: &str) -> &'static str {
    match name {
        "grant_type" => "grant_type is repeated",
        "client_id" => "client_id is repeated",
        "client_secret" => "client_secret is repeated",
        "scope" => "scope is repeated",
        _ => "a parameter is repeated",
    }
}

impl Params {
    fn add(&mut self, name: String, value: String) -> Result<(), OAuthError> {
        if self.seen.contains(&name) {
            return Err(OAuthError::InvalidRequest(repeated(&name)));
        }
        // RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
        let value = (!value.is_empty()).then_some(value);
        match name.as_str() {
            "grant_type" => self.grant_type = value,
            "client_id" => self.client_id = value,
            "client_secret" => self.client_secret = value,
            // `scope` and unknown parameters are ignored (§3.3: the server may ignore a
            // scope; §3.2: unrecognized parameters must be).
            _ => {}
        }
        self.seen.insert(name);
        Ok(())
    }
}

/// Decodes one application/x-www-form-urlencoded name or value: `+` is a space, `%XX` a
/// byte; a malformed escape (`%` not followed by two hex digits) or a result that is not
/// UTF-8 is `None`.
pub fn form_decode(s: &[u8]) -> Option<String> {
    let well_formed = s
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| {
            s.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        });
    if !well_formed {
        return None;
    }
    let spaced: Vec<u8> = s
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

fn parse_form(body: &[u8]) -> Result<Params, OAuthError> {
    let mut params = Params::default();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut halves = pair.splitn(2, |b| *b == b'=');
        let name = halves.next().unwrap_or_default();
        let value = halves.next().unwrap_or_default();
        let name = form_decode(name).ok_or(OAuthError::InvalidRequest(NOT_FORM))?;
        let value = form_decode(value).ok_or(OAuthError::InvalidRequest(NOT_FORM))?;
        params.add(name, value)?;
    }
    Ok(params)
}

/// A JSON object's members in order, repeated names included (serde_json's maps keep the
/// last one).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

fn parse_json(body: &[u8]) -> Result<Params, OAuthError> {
    let Members(members) =
        serde_json::from_slice(body).map_err(|_| OAuthError::InvalidRequest(NOT_JSON))?;
    let mut params = Params::default();
    for (name, value) in members {
        let known = matches!(name.as_str(), "grant_type" | "client_id" | "client_secret");
        let value = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            _ if known => return Err(OAuthError::InvalidRequest(NOT_STRINGS)),
            _ => String::new(),
        };
        params.add(name, value)?;
    }
    Ok(params)
}

/// Reads the body as its `Content-Type` says: form-urlencoded (RFC 6749) or JSON. Without a
/// `Content-Type`, a body starting with `{` is JSON, anything else a form.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let json = match headers.get(header::CONTENT_TYPE) {
        None => body.trim_ascii_start().starts_with(b"{"),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| OAuthError::InvalidRequest(BAD_CONTENT_TYPE))?;
            let media = v.split(';').next().unwrap_or_default().trim();
            if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                false
            } else if media.eq_ignore_ascii_case("application/json") {
                true
            } else {
                return Err(OAuthError::InvalidRequest(BAD_CONTENT_TYPE));
            }
        }
    };
    if json {
        parse_json(body)
    } else {
        parse_form(body)
    }
}

/// Client credentials as presented. HTTP Basic gives two readings: form-decoded (RFC 6749
/// §2.3.1) and as sent (clients that skip the encoding); either may match.
struct Presented(Vec<(Vec<u8>, Vec<u8>)>);

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Presented([{} redacted readings])", self.0.len())
    }
}

/// The readings of an `Authorization: Basic` header; `None` for another scheme (ignored).
fn basic_credentials(value: &HeaderValue) -> Result<Option<Presented>, OAuthError> {
    let value = value
        .to_str()
        .map_err(|_| OAuthError::InvalidClient("Authorization header is not ASCII"))?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .map_err(|_| OAuthError::InvalidClient("Basic credentials are not base64"))?;
    let mut halves = decoded.splitn(2, |b| *b == b':');
    let (Some(id), Some(secret)) = (halves.next(), halves.next()) else {
        return Err(OAuthError::InvalidClient("Basic credentials have no colon"));
    };
    // Trimmed, as the stored credentials are.
    let raw = (id.trim_ascii().to_vec(), secret.trim_ascii().to_vec());
    let mut readings = Vec::with_capacity(2);
    if let (Some(id), Some(secret)) = (form_decode(id), form_decode(secret)) {
        let reading = (
            id.trim_ascii().as_bytes().to_vec(),
            secret.trim_ascii().as_bytes().to_vec(),
        );
        if reading != raw {
            readings.push(reading);
        }
    }
    readings.push(raw);
    Ok(Some(Presented(readings)))
}

/// The client credentials of a request: HTTP Basic or the body, not both.
fn client_credentials(headers: &HeaderMap, params: &Params) -> Result<Presented, OAuthError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let first = authorization.next();
    if authorization.next().is_some() {
        return Err(OAuthError::InvalidRequest(MANY_AUTHORIZATION));
    }
    match first.map(basic_credentials).transpose()?.flatten() {
        Some(basic) => {
            // A `client_id` beside Basic is allowed (§3.2.1) when it names the same client.
            let same_id = |id: &String| {
                basic
                    .0
                    .iter()
                    .any(|(basic_id, _)| basic_id.as_slice() == id.trim_ascii().as_bytes())
            };
            if params.client_secret.is_some()
                || params.client_id.as_ref().is_some_and(|id| !same_id(id))
            {
                return Err(OAuthError::InvalidRequest(BOTH_METHODS));
            }
            Ok(basic)
        }
        None => match (&params.client_id, &params.client_secret) {
            (Some(id), Some(secret)) => Ok(Presented(vec![(
                id.trim_ascii().as_bytes().to_vec(),
                secret.trim_ascii().as_bytes().to_vec(),
            )])),
            (None, None) => Err(OAuthError::InvalidClient("no client credentials")),
            _ => Err(OAuthError::InvalidClient("incomplete client credentials")),
        },
    }
}

/// A token request whose form is valid: credentials presented, `grant_type` right. Only
/// comparing the credentials with the secret's is left.
#[derive(Debug)]
pub struct TokenRequest {
    presented: Presented,
}

impl TokenRequest {
    /// Checks everything that needs no settings, in the order of the module's doc.
    pub fn read(method: &Method, headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        if *method != Method::POST {
            return Err(OAuthError::MethodNotAllowed(crate::excerpt::excerpt(
                method.as_str(),
                40,
            )));
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(OAuthError::TooLarge(MAX_BODY_BYTES));
        }
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.as_bytes().trim_ascii());
        if encoding.is_some_and(|e| !e.is_empty() && !e.eq_ignore_ascii_case(b"identity")) {
            return Err(OAuthError::InvalidRequest(ENCODED));
        }
        let params = parse_body(headers, body)?;
        let presented = client_credentials(headers, &params)?;
        match params.grant_type.as_deref() {
            None => Err(OAuthError::InvalidRequest(NO_GRANT_TYPE)),
            Some("client_credentials") => Ok(TokenRequest { presented }),
            Some(_) => Err(OAuthError::UnsupportedGrantType),
        }
    }

    /// Whether the presented credentials are `client`'s (constant-time, every reading and
    /// both halves compared).
    pub fn authenticates(&self, client: &OAuthClient) -> bool {
        let (id, secret) = (
            client.id.expose().as_bytes(),
            client.secret.expose().as_bytes(),
        );
        let mut ok = Choice::from(0);
        for (presented_id, presented_secret) in &self.presented.0 {
            ok |= presented_id.as_slice().ct_eq(id) & presented_secret.as_slice().ct_eq(secret);
        }
        ok.into()
    }

    /// The token for this request at `now`, given the settings (`access`).
    pub fn issue(
        &self,
        access: Result<Access, SettingsError>,
        now: u64,
    ) -> Result<String, OAuthError> {
        let settings = match access {
            Ok(Access::Check(settings)) => settings,
            // A dry run without settings has no client to check against.
            Ok(Access::Open) => return Err(OAuthError::InvalidClient("no settings (dry run)")),
            Err(e) => return Err(OAuthError::Settings(HttpError::from(e))),
        };
        let Some(client) = settings.webhook.oauth.as_ref() else {
            return Err(OAuthError::InvalidClient(
                "OAuth is not configured in the secret",
            ));
        };
        if !self.authenticates(client) {
            return Err(OAuthError::InvalidClient("wrong client credentials"));
        }
        mint(client, now).ok_or(OAuthError::MintFailed)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::config::{Secret, Settings};
    use std::sync::Arc;

    const NOW: u64 = 1_764_331_200;

    fn client(id: &str, secret: &str) -> OAuthClient {
        OAuthClient {
            id: Secret::new(id),
            secret: Secret::new(secret),
        }
    }

    fn moe() -> OAuthClient {
        client("moengage", "s3cr3t+/=%")
    }

    // --- tokens ------------------------------------------------------------------------

    #[test]
    fn minted_tokens_verify_until_they_expire() {
        let c = moe();
        let t = mint(&c, NOW).unwrap();
        assert!(
            t.starts_with(&format!("mseg1.{}.", NOW + TOKEN_TTL_SECS)),
            "{t}"
        );
        assert_eq!(t.len(), "mseg1.".len() + 10 + 1 + 43);
        assert_eq!(verify(&t, &c, NOW), Ok(()));
        assert_eq!(verify(&t, &c, NOW + TOKEN_TTL_SECS - 1), Ok(()));
        assert_eq!(
            verify(&t, &c, NOW + TOKEN_TTL_SECS),
            Err(TokenError::Expired)
        );
        assert_eq!(verify(&t, &c, u64::MAX), Err(TokenError::Expired));
        // Deterministic: the same client and time give the same token.
        assert_eq!(mint(&c, NOW), Some(t));
        assert_eq!(mint(&c, u64::MAX - 1), None);
    }

    #[test]
    fn a_token_from_the_future_is_refused_beyond_the_clock_leeway() {
        let c = moe();
        let ahead = mint(&c, NOW + CLOCK_LEEWAY_SECS).unwrap();
        assert_eq!(verify(&ahead, &c, NOW), Ok(()));
        let too_far = mint(&c, NOW + CLOCK_LEEWAY_SECS + 1).unwrap();
        assert_eq!(verify(&too_far, &c, NOW), Err(TokenError::TooFarAhead));
        assert_eq!(verify(&too_far, &c, 0), Err(TokenError::TooFarAhead));
    }

    #[test]
    fn another_client_or_a_rotated_secret_revokes_tokens() {
        let t = mint(&moe(), NOW).unwrap();
        for other in [
            client("moengage", "rotated"),
            client("moengage2", "s3cr3t+/=%"),
            client("Moengage", "s3cr3t+/=%"),
            client("moengage", "s3cr3t+/=% "),
        ] {
            assert_eq!(verify(&t, &other, NOW), Err(TokenError::BadSignature));
        }
        // The id is length-prefixed: moving bytes between id and secret changes the MAC.
        let a = mint(&client("ab", "c"), NOW).unwrap();
        assert_eq!(
            verify(&a, &client("a", "bc"), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn forged_and_tampered_tokens_are_refused() {
        let c = moe();
        let t = mint(&c, NOW).unwrap();
        let (head, mac) = t.rsplit_once('.').unwrap();
        // Another MAC of the right shape.
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(verify(&forged, &c, NOW), Err(TokenError::BadSignature));
        // One character of the MAC changed.
        let mut flipped = mac.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{head}.{}", String::from_utf8(flipped).unwrap());
        assert_eq!(verify(&flipped, &c, NOW), Err(TokenError::BadSignature));
        // The expiry moved, earlier or later, with the original MAC.
        for expiry in [NOW + 10, NOW + TOKEN_TTL_SECS + 1, NOW + TOKEN_TTL_SECS - 1] {
            let tampered = format!("mseg1.{expiry}.{mac}");
            assert_eq!(verify(&tampered, &c, NOW), Err(TokenError::BadSignature));
        }
        // A MAC minted for another client, on this client's expiry.
        let other = mint(&client("evil", "evil"), NOW).unwrap();
        let (_, other_mac) = other.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{head}.{other_mac}"), &c, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_of_every_shape() {
        let c = moe();
        let t = mint(&c, NOW).unwrap();
        let (_, mac) = t.rsplit_once('.').unwrap();
        let exp = NOW + TOKEN_TTL_SECS;
        let padded = format!("{}=", URL_SAFE_NO_PAD.encode([1u8; 32]));
        let std_alphabet = mac.replace('-', "+").replace('_', "/");
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            "mseg1".into(),
            format!("mseg1.{exp}"),
            format!("mseg1.{exp}."),
            format!("mseg1..{mac}"),
            format!(".{exp}.{mac}"),
            format!("mseg2.{exp}.{mac}"),
            format!("MSEG1.{exp}.{mac}"),
            format!("mseg1.{exp}.{mac}."),
            format!("mseg1.{exp}.{mac}.x"),
            format!("x.mseg1.{exp}.{mac}"),
            format!("mseg1.0{exp}.{mac}"),
            format!("mseg1.+{exp}.{mac}"),
            format!("mseg1.-{exp}.{mac}"),
            format!("mseg1. {exp}.{mac}"),
            format!("mseg1.{exp}.{mac} "),
            format!("mseg1.{exp}e0.{mac}"),
            format!("mseg1.99999999999999999999.{mac}"),
            format!("mseg1.999999999999999999999.{mac}"),
            format!("mseg1.{exp}.{}", &mac[..42]),
            format!("mseg1.{exp}.{mac}A"),
            format!("mseg1.{exp}.{mac}AAAA"),
            format!("mseg1.{exp}.{padded}"),
            format!("mseg1.{exp}.{}", URL_SAFE_NO_PAD.encode([1u8; 31])),
            format!("mseg1.{exp}.{}", URL_SAFE_NO_PAD.encode([1u8; 33])),
            format!("mseg1.{exp}.!!!!"),
            format!("mseg1.{exp}.{}", "A".repeat(10_000)),
            "mseg1.é.ü".into(),
            "\u{0}".repeat(50),
        ];
        for case in &cases {
            assert_eq!(
                verify(case, &c, NOW),
                Err(TokenError::Malformed),
                "{case:?}"
            );
        }
        // The standard alphabet is refused when it differs from base64url.
        if std_alphabet != mac {
            let std_token = format!("mseg1.{exp}.{std_alphabet}");
            assert_eq!(verify(&std_token, &c, NOW), Err(TokenError::Malformed));
        }
        // "0" is canonical, and long expired.
        let zero = format!("mseg1.0.{mac}");
        assert_eq!(verify(&zero, &c, NOW), Err(TokenError::BadSignature));
    }

    // --- requests -----------------------------------------------------------------------

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
    const JSON: (&str, &str) = ("content-type", "application/json");

    fn read(h: &[(&'static str, &str)], body: &str) -> Result<TokenRequest, OAuthError> {
        TokenRequest::read(&Method::POST, &headers(h), body.as_bytes())
    }

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    fn code(r: Result<TokenRequest, OAuthError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    /// Authenticates as [`moe`] (`s3cr3t+/=%`).
    fn authenticates(r: Result<TokenRequest, OAuthError>) -> bool {
        r.unwrap().authenticates(&moe())
    }

    #[test]
    fn form_bodies_with_percent_encoding_and_plus() {
        let body =
            "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t%2B%2F%3D%25";
        assert!(authenticates(read(&[FORM], body)));
        // Charset parameter, case, scope, unknown parameters, empty pairs.
        let body = "scope=read+write&&grant_type=client_credentials&x=1&client_id=moengage&client_secret=s3cr3t%2b%2f%3d%25&";
        assert!(authenticates(read(
            &[(
                "content-type",
                "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
            )],
            body
        )));
        // `+` is a space: an unencoded `+` in the secret does not match.
        let body = "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t+/=%25";
        assert!(!authenticates(read(&[FORM], body)));
        let spaced = client("moengage", "a b");
        let body = "grant_type=client_credentials&client_id=moengage&client_secret=a+b";
        assert!(read(&[FORM], body).unwrap().authenticates(&spaced));
        let body = "grant_type=client_credentials&client_id=moengage&client_secret=a%20b";
        assert!(read(&[FORM], body).unwrap().authenticates(&spaced));
        // Encoded names, UTF-8 values.
        let utf8 = client("clïent", "sécret");
        let body =
            "grant%5Ftype=client_credentials&client_id=cl%C3%AFent&client_secret=s%C3%A9cret";
        assert!(read(&[FORM], body).unwrap().authenticates(&utf8));
        // Without a Content-Type, a form.
        let body =
            "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t%2B%2F%3D%25";
        assert!(authenticates(read(&[], body)));
        // Presented values are trimmed, as stored ones are.
        let body = "grant_type=client_credentials&client_id=+moengage+&client_secret=s3cr3t%2B%2F%3D%25%0A";
        assert!(authenticates(read(&[FORM], body)));
    }

    #[test]
    fn malformed_forms_are_invalid_requests() {
        for body in [
            "grant_type=client_credentials&client_id=moengage&client_secret=%",
            "grant_type=client_credentials&client_id=moengage&client_secret=%4",
            "grant_type=client_credentials&client_id=moengage&client_secret=%zz",
            "grant_type=client_credentials&client_id=moengage&client_secret=%FF",
            "grant_%=client_credentials",
        ] {
            let r = read(&[FORM], body);
            assert_eq!(code(r), "invalid_request", "{body}");
        }
        let bad_utf8 = TokenRequest::read(&Method::POST, &headers(&[FORM]), b"client_id=\xff");
        assert_eq!(code(bad_utf8), "invalid_request");
    }

    #[test]
    fn repeated_parameters_are_invalid_requests() {
        for body in [
            "grant_type=client_credentials&grant_type=client_credentials&client_id=moengage&client_secret=x",
            "grant_type=client_credentials&client_id=moengage&client_id=moengage&client_secret=x",
            "grant_type=client_credentials&client_id=moengage&client_secret=x&client_secret=y",
            "grant_type=client_credentials&client_id=moengage&client_secret=x&client_secret=",
            "grant_type=client_credentials&client_id=moengage&client_secret=x&scope=a&scope=b",
            "grant_type=client_credentials&client_id=moengage&client_secret=x&x=1&x=2",
            "grant_type=client_credentials&client_id=moengage&client_secret=x&client%5Fid=moengage",
        ] {
            let e = read(&[FORM], body).unwrap_err();
            assert_eq!(e.code(), "invalid_request", "{body}");
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        }
        let e = read(
            &[JSON],
            r#"{"grant_type":"client_credentials","client_id":"moengage","client_secret":"x","client_secret":"y"}"#,
        )
        .unwrap_err();
        assert_eq!(e.description(), "client_secret is repeated");
    }

    #[test]
    fn json_bodies() {
        let body = r#"{"grant_type":"client_credentials","client_id":"moengage","client_secret":"s3cr3t+/=%","scope":["a"],"extra":{"x":1}}"#;
        assert!(authenticates(read(&[JSON], body)));
        assert!(authenticates(read(
            &[("content-type", "application/json; charset=utf-8")],
            body
        )));
        // Without a Content-Type, an object is JSON.
        assert!(authenticates(read(&[], &format!("  {body}"))));
        // JSON strings are not form-decoded.
        let encoded = r#"{"grant_type":"client_credentials","client_id":"moengage","client_secret":"s3cr3t%2B%2F%3D%25"}"#;
        assert!(!authenticates(read(&[JSON], encoded)));
        for bad in [
            "",
            "[]",
            "null",
            r#""grant_type=client_credentials""#,
            r#"{"grant_type":"client_credentials""#,
            r#"{"grant_type":"client_credentials","client_id":1,"client_secret":"x"}"#,
            r#"{"grant_type":["client_credentials"],"client_id":"moengage","client_secret":"x"}"#,
            r#"{"grant_type":"client_credentials","client_id":"moengage","client_secret":"x"} trailing"#,
        ] {
            assert_eq!(code(read(&[JSON], bad)), "invalid_request", "{bad}");
        }
        // null counts as absent.
        let null_secret =
            r#"{"grant_type":"client_credentials","client_id":"moengage","client_secret":null}"#;
        assert_eq!(code(read(&[JSON], null_secret)), "invalid_client");
    }

    #[test]
    fn basic_credentials_are_form_decoded_or_taken_as_sent() {
        let grant = "grant_type=client_credentials";
        // RFC 6749 §2.3.1: form-encoded before base64.
        let encoded = basic("moengage", "s3cr3t%2B%2F%3D%25");
        assert!(authenticates(read(
            &[FORM, ("authorization", &encoded)],
            grant
        )));
        // Clients that skip the encoding: `+` and `%` taken as sent.
        let raw = basic("moengage", "s3cr3t+/=%");
        assert!(authenticates(read(&[FORM, ("authorization", &raw)], grant)));
        // Encoded ids with colons; lower-case scheme; the secret may hold colons.
        let colon = client("a:b", "c:d");
        let h = basic("a%3Ab", "c:d").replace("Basic", "basic");
        assert!(
            read(&[FORM, ("authorization", &h)], grant)
                .unwrap()
                .authenticates(&colon)
        );
        // Wrong ones do not match either way.
        for (id, secret) in [
            ("moengage", "s3cr3t"),
            ("moengage2", "s3cr3t+/=%"),
            ("", ""),
        ] {
            let h = basic(id, secret);
            assert!(!authenticates(read(&[FORM, ("authorization", &h)], grant)));
        }
        // Malformed Basic: invalid_client, before the secret is read.
        for h in ["Basic !!!", "Basic bm9jb2xvbg==", "Basic"] {
            let e = read(&[FORM, ("authorization", h)], grant).unwrap_err();
            assert_eq!(e.code(), "invalid_client", "{h}");
        }
        // Another scheme is ignored: the body's credentials count.
        let body =
            "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t%2B%2F%3D%25";
        assert!(authenticates(read(
            &[FORM, ("authorization", "Bearer x")],
            body
        )));
        let r = read(&[FORM, ("authorization", "Bearer x")], grant);
        assert_eq!(code(r), "invalid_client");
    }

    #[test]
    fn both_methods_or_two_authorization_headers_are_invalid_requests() {
        let h = basic("moengage", "s3cr3t+/=%");
        for body in [
            "grant_type=client_credentials&client_secret=s3cr3t%2B%2F%3D%25",
            "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t%2B%2F%3D%25",
            "grant_type=client_credentials&client_id=other",
        ] {
            let e = read(&[FORM, ("authorization", &h)], body).unwrap_err();
            assert_eq!(e.description(), BOTH_METHODS, "{body}");
        }
        // The same client_id beside Basic is allowed (RFC 6749 §3.2.1).
        let body = "grant_type=client_credentials&client_id=moengage";
        assert!(authenticates(read(&[FORM, ("authorization", &h)], body)));
        let e = read(
            &[FORM, ("authorization", &h), ("authorization", &h)],
            "grant_type=client_credentials",
        )
        .unwrap_err();
        assert_eq!(e.description(), MANY_AUTHORIZATION);
    }

    #[test]
    fn the_order_of_refusals() {
        let creds = "client_id=moengage&client_secret=x";
        // No credentials at all: invalid_client, whatever the grant type.
        assert_eq!(code(read(&[FORM], "")), "invalid_client");
        assert_eq!(code(read(&[FORM], "grant_type=password")), "invalid_client");
        assert_eq!(code(read(&[FORM], "client_id=moengage")), "invalid_client");
        assert_eq!(code(read(&[FORM], "client_secret=x")), "invalid_client");
        assert_eq!(
            code(read(&[FORM], "client_id=&client_secret=x")),
            "invalid_client"
        );
        // Credentials, then the grant type.
        assert_eq!(code(read(&[FORM], creds)), "invalid_request");
        let e = read(&[FORM], &format!("grant_type=&{creds}")).unwrap_err();
        assert_eq!(e.description(), NO_GRANT_TYPE);
        for grant in [
            "password",
            "authorization_code",
            "Client_Credentials",
            "client_credentials ",
        ] {
            let body = format!("grant_type={}&{creds}", grant.replace(' ', "+"));
            let e = read(&[FORM], &body).unwrap_err();
            assert_eq!(e.code(), "unsupported_grant_type", "{grant}");
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        }
        // Body problems come first.
        assert_eq!(
            code(read(&[("content-type", "text/plain")], creds)),
            "invalid_request"
        );
        assert_eq!(
            code(read(&[FORM, ("content-encoding", "gzip")], creds)),
            "invalid_request"
        );
        let identity = format!("grant_type=client_credentials&{creds}");
        assert_eq!(
            code(read(&[FORM, ("content-encoding", "identity")], &identity)),
            "ok"
        );
        let big = format!(
            "grant_type=client_credentials&{creds}&pad={}",
            "x".repeat(MAX_BODY_BYTES)
        );
        let e = read(&[FORM], &big).unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request")
        );
        let at_limit = format!("grant_type=client_credentials&{creds}&pad=");
        let at_limit = format!("{at_limit}{}", "x".repeat(MAX_BODY_BYTES - at_limit.len()));
        assert_eq!(code(read(&[FORM], &at_limit)), "ok");
        let e = TokenRequest::read(&Method::GET, &headers(&[]), b"").unwrap_err();
        assert_eq!(e.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    fn settings(oauth: Option<(&str, &str)>) -> Arc<Settings> {
        Arc::new(
            Settings::from_fields(crate::settings::config::SecretFields {
                segment_write_key: Some("wk".into()),
                segment_region: Some("us".into()),
                webhook_token: Some("tok".into()),
                oauth_client_id: oauth.map(|(i, _)| i.to_owned()),
                oauth_client_secret: oauth.map(|(_, s)| s.to_owned()),
                ..Default::default()
            })
            .unwrap(),
        )
    }

    #[test]
    fn issuing_needs_configured_oauth_and_the_right_credentials() {
        let body =
            "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t%2B%2F%3D%25";
        let req = read(&[FORM], body).unwrap();
        let ok = Ok(Access::Check(settings(Some(("moengage", "s3cr3t+/=%")))));
        let token = req.issue(ok, NOW).unwrap();
        assert_eq!(verify(&token, &moe(), NOW), Ok(()));

        let refusals = [
            (
                Ok(Access::Check(settings(Some(("moengage", "other"))))),
                "invalid_client",
            ),
            (Ok(Access::Check(settings(None))), "invalid_client"),
            (Ok(Access::Open), "invalid_client"),
            (
                Err(SettingsError::Unavailable(
                    "GetSecretValue arn:aws:secretsmanager:x".into(),
                )),
                "settings_unavailable",
            ),
            (
                Err(SettingsError::Invalid(
                    crate::settings::config::ConfigError::Missing("segment_region"),
                )),
                "misconfigured",
            ),
        ];
        let mut descriptions = Vec::new();
        for (access, want) in refusals {
            let e = req.issue(access, NOW).unwrap_err();
            assert_eq!(e.code(), want);
            let resp = answer(&Err(e));
            let body: serde_json::Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
            let text = body.to_string();
            for leak in ["arn:", "segment_region", "s3cr3t", "moengage"] {
                assert!(!text.contains(leak), "{text}");
            }
            descriptions.push((resp.status(), body));
        }
        // Every invalid_client answer is the same.
        assert!(descriptions[..3].windows(2).all(|w| w[0] == w[1]));
        assert_eq!(descriptions[0].0, StatusCode::UNAUTHORIZED);
        assert_eq!(descriptions[3].0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(descriptions[4].0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn answers_are_rfc6749_json_and_never_cached() {
        let ok = answer(&Ok("mseg1.1.x".into()));
        assert_eq!(ok.status(), StatusCode::OK);
        let body: serde_json::Value = serde_json::from_slice(ok.body().as_ref()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"access_token": "mseg1.1.x", "token_type": "Bearer", "expires_in": 3600})
        );
        let cases = [
            (OAuthError::InvalidClient("x"), StatusCode::UNAUTHORIZED),
            (
                OAuthError::InvalidRequest(NO_GRANT_TYPE),
                StatusCode::BAD_REQUEST,
            ),
            (OAuthError::UnsupportedGrantType, StatusCode::BAD_REQUEST),
            (
                OAuthError::MethodNotAllowed("GET".into()),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (
                OAuthError::TooLarge(MAX_BODY_BYTES),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
        ];
        for resp in std::iter::once(ok).chain(cases.into_iter().map(|(e, status)| {
            let r = answer(&Err(e));
            assert_eq!(r.status(), status);
            let body: serde_json::Value = serde_json::from_slice(r.body().as_ref()).unwrap();
            assert!(body["error"].is_string() && body["error_description"].is_string());
            r
        })) {
            let h = resp.headers();
            assert_eq!(h[header::CACHE_CONTROL], "no-store");
            assert_eq!(h[header::PRAGMA], "no-cache");
            assert_eq!(h[header::CONTENT_TYPE], "application/json");
            assert_eq!(
                h.get(header::WWW_AUTHENTICATE).is_some(),
                resp.status() == StatusCode::UNAUTHORIZED
            );
            assert_eq!(
                h.get(header::ALLOW).map(|v| v.to_str().unwrap()),
                (resp.status() == StatusCode::METHOD_NOT_ALLOWED).then_some("POST")
            );
        }
    }

    #[test]
    fn token_paths() {
        for p in ["/oauth/token", "/prod/oauth/token", "/a/b/oauth/token"] {
            assert!(is_token_path(p), "{p}");
        }
        for p in [
            "/",
            "/moengage",
            "/oauth/token/",
            "/xoauth/token",
            "/oauth/tokens",
            "/oauth",
        ] {
            assert!(!is_token_path(p), "{p}");
        }
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode(b"a+b%20c%2b").as_deref(), Some("a b c+"));
        assert_eq!(form_decode(b"%C3%A9").as_deref(), Some("é"));
        assert_eq!(form_decode(b"").as_deref(), Some(""));
        for bad in [&b"%"[..], b"%2", b"%g0", b"%0g", b"%C3", b"\xff", b"%ff%fe"] {
            assert_eq!(form_decode(bad), None, "{bad:?}");
        }
    }
}
