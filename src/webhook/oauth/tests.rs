//! The token route's unit tests.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::delivery::forward::Access;
use crate::settings::config::{OAuthClient, Secret, Settings};
use crate::settings::secret::SettingsError;

use super::request::*;
use super::token::*;
use super::*;
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
    let body = "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t%2B%2F%3D%25";
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
    let body = "grant%5Ftype=client_credentials&client_id=cl%C3%AFent&client_secret=s%C3%A9cret";
    assert!(read(&[FORM], body).unwrap().authenticates(&utf8));
    // Without a Content-Type, a form.
    let body = "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t%2B%2F%3D%25";
    assert!(authenticates(read(&[], body)));
    // Presented values are trimmed, as stored ones are.
    let body =
        "grant_type=client_credentials&client_id=+moengage+&client_secret=s3cr3t%2B%2F%3D%25%0A";
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
    let body = "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t%2B%2F%3D%25";
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
    let body = "grant_type=client_credentials&client_id=moengage&client_secret=s3cr3t%2B%2F%3D%25";
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
