//! Reading a token request: its method, body (form or JSON) and client credentials (HTTP
//! Basic or the body), checked in the order the module docs of [`super`] give.

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::{HeaderMap, HeaderValue, Method, header};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use subtle::{Choice, ConstantTimeEq};

use crate::delivery::forward::Access;
use crate::settings::config::OAuthClient;
use crate::settings::secret::SettingsError;
use crate::webhook::answer::HttpError;
use crate::webhook::oauth::{MAX_BODY_BYTES, OAuthError};

use super::token::mint;

pub(super) const NOT_FORM: &str = "the body is not valid application/x-www-form-urlencoded UTF-8";
pub(super) const NOT_JSON: &str = "the body is not a JSON object";
pub(super) const NOT_STRINGS: &str = "grant_type, client_id and client_secret must be JSON strings";
pub(super) const BAD_CONTENT_TYPE: &str =
    "Content-Type must be application/x-www-form-urlencoded or application/json";
pub(super) const ENCODED: &str = "Content-Encoding is not supported: send the body as it is";
pub(super) const BOTH_METHODS: &str =
    "client credentials are both in the Authorization header and in the body: use one";
pub(super) const MANY_AUTHORIZATION: &str = "more than one Authorization header";
pub(super) const NO_GRANT_TYPE: &str = "grant_type is missing";

/// The parameters read from the body (RFC 6749 §4.4.2, §2.3.1).
#[derive(Default)]
pub(super) struct Params {
    pub(super) grant_type: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) seen: HashSet<String>,
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

pub(super) fn repeated(name: &str) -> &'static str {
    match name {
        "grant_type" => "grant_type is repeated",
        "client_id" => "client_id is repeated",
        "client_secret" => "client_secret is repeated",
        "scope" => "scope is repeated",
        _ => "a parameter is repeated",
    }
}

impl Params {
    pub(super) fn add(&mut self, name: String, value: String) -> Result<(), OAuthError> {
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

pub(super) fn parse_form(body: &[u8]) -> Result<Params, OAuthError> {
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
pub(super) struct Members(Vec<(String, serde_json::Value)>);

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

pub(super) fn parse_json(body: &[u8]) -> Result<Params, OAuthError> {
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
pub(super) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
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
pub(super) struct Presented(Vec<(Vec<u8>, Vec<u8>)>);

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Presented([{} redacted readings])", self.0.len())
    }
}

/// The readings of an `Authorization: Basic` header; `None` for another scheme (ignored).
pub(super) fn basic_credentials(value: &HeaderValue) -> Result<Option<Presented>, OAuthError> {
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
pub(super) fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<Presented, OAuthError> {
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
    pub(super) presented: Presented,
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
