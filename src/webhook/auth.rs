//! Inbound authentication of MoEngage's requests: HTTP Basic with the secret's pair, the
//! secret's token as `Authorization: Bearer <token>` or `X-Api-Key: <token>`, or an OAuth 2.0
//! token from `/oauth/token` as `Authorization: Bearer <token>` ([`crate::webhook::oauth`]).
//! Comparisons are constant-time.

use base64::Engine;
use lambda_http::http::{self, HeaderMap};
use subtle::ConstantTimeEq;

use crate::settings::config::WebhookAuth;
use crate::webhook::oauth;

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // `ct_eq` on slices of different lengths returns false without comparing contents; the
    // length of a credential is not a secret worth hiding here.
    a.ct_eq(b).into()
}

/// Whether the request presents any credential at all (an `Authorization` or `X-Api-Key`
/// header): without one it is refused before the secret is read.
pub fn presents_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::AUTHORIZATION) || headers.contains_key("x-api-key")
}

/// Whether the request carries valid credentials; `now` (Unix seconds) decides whether an OAuth
/// token has expired.
pub fn authorized(headers: &HeaderMap, auth: &WebhookAuth, now: u64) -> bool {
    let mut ok = false;
    for value in headers.get_all(http::header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else { continue };
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            if let Some((user, pass)) = &auth.basic {
                let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
                    continue;
                };
                let Some(colon) = decoded.iter().position(|b| *b == b':') else {
                    continue;
                };
                // Trimmed, as the stored pair is.
                let (u, p) = (
                    decoded[..colon].trim_ascii(),
                    decoded[colon + 1..].trim_ascii(),
                );
                // Evaluate both halves so timing does not reveal which one was wrong.
                let good = ct_eq(u, user.expose().as_bytes()) & ct_eq(p, pass.expose().as_bytes());
                ok |= good;
            }
        } else if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(token) = &auth.token {
                ok |= ct_eq(rest.as_bytes(), token.expose().as_bytes());
            }
            if let Some(client) = &auth.oauth {
                ok |= oauth::verify(rest, client, now).is_ok();
            }
        }
    }
    if let Some(token) = &auth.token {
        for value in headers.get_all("x-api-key") {
            ok |= ct_eq(value.as_bytes().trim_ascii(), token.expose().as_bytes());
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::config::{OAuthClient, Secret};
    use lambda_http::http::HeaderValue;

    const NOW: u64 = 1_764_331_200;

    fn auth(basic: bool, token: bool) -> WebhookAuth {
        WebhookAuth {
            basic: basic.then(|| (Secret::new("moengage"), Secret::new("pa:ss"))),
            token: token.then(|| Secret::new("tok")),
            oauth: None,
        }
    }

    fn client(secret: &str) -> OAuthClient {
        OAuthClient {
            id: Secret::new("moengage"),
            secret: Secret::new(secret),
        }
    }

    fn authorized(headers: &HeaderMap, auth: &WebhookAuth) -> bool {
        super::authorized(headers, auth, NOW)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn basic_pair() {
        let a = auth(true, false);
        assert!(authorized(
            &headers(&[("authorization", &basic("moengage", "pa:ss"))]),
            &a
        ));
        assert!(authorized(
            &headers(&[(
                "authorization",
                &basic("moengage", "pa:ss").replace("Basic", "basic")
            )]),
            &a
        ));
        assert!(!authorized(
            &headers(&[("authorization", &basic("moengage", "wrong"))]),
            &a
        ));
        assert!(!authorized(
            &headers(&[("authorization", &basic("other", "pa:ss"))]),
            &a
        ));
        assert!(!authorized(
            &headers(&[("authorization", "Basic !!!notbase64")]),
            &a
        ));
        assert!(!authorized(
            &headers(&[("authorization", "Basic bm9jb2xvbg==")]),
            &a
        ));
        assert!(!authorized(&headers(&[]), &a));
        // A token is not accepted when only Basic is configured.
        assert!(!authorized(
            &headers(&[("authorization", "Bearer tok")]),
            &a
        ));
    }

    #[test]
    fn token_as_bearer_or_api_key() {
        let a = auth(false, true);
        assert!(authorized(&headers(&[("authorization", "Bearer tok")]), &a));
        assert!(authorized(&headers(&[("x-api-key", "tok")]), &a));
        assert!(!authorized(
            &headers(&[("authorization", "Bearer tok2")]),
            &a
        ));
        assert!(!authorized(&headers(&[("x-api-key", "to")]), &a));
        assert!(!authorized(
            &headers(&[("authorization", &basic("moengage", "pa:ss"))]),
            &a
        ));
    }

    #[test]
    fn either_when_both_configured() {
        let a = auth(true, true);
        assert!(authorized(
            &headers(&[("authorization", &basic("moengage", "pa:ss"))]),
            &a
        ));
        assert!(authorized(&headers(&[("x-api-key", "tok")]), &a));
    }

    #[test]
    fn oauth_tokens_as_bearer() {
        let a = WebhookAuth {
            oauth: Some(client("client-secret")),
            ..auth(true, true)
        };
        let token = oauth::mint(&client("client-secret"), NOW).unwrap();
        let bearer = format!("Bearer {token}");
        assert!(authorized(&headers(&[("authorization", &bearer)]), &a));
        assert!(authorized(
            &headers(&[("authorization", &format!("bearer  {token} "))]),
            &a
        ));
        // The static token and Basic still work beside OAuth.
        assert!(authorized(&headers(&[("authorization", "Bearer tok")]), &a));
        assert!(authorized(
            &headers(&[("authorization", &basic("moengage", "pa:ss"))]),
            &a
        ));
        // Only as Bearer, not as X-Api-Key.
        assert!(!authorized(&headers(&[("x-api-key", &token)]), &a));
        // Expired, or signed with a rotated secret, or OAuth not configured: refused.
        let at = |now| super::authorized(&headers(&[("authorization", &bearer)]), &a, now);
        assert!(at(NOW + oauth::TOKEN_TTL_SECS - 1));
        assert!(!at(NOW + oauth::TOKEN_TTL_SECS));
        let rotated = WebhookAuth {
            oauth: Some(client("rotated")),
            ..auth(false, false)
        };
        assert!(!authorized(
            &headers(&[("authorization", &bearer)]),
            &rotated
        ));
        assert!(!authorized(
            &headers(&[("authorization", &bearer)]),
            &auth(true, true)
        ));
        // A token is not a Basic password.
        assert!(!authorized(
            &headers(&[("authorization", &basic("moengage", &token))]),
            &a
        ));
    }

    #[test]
    fn nothing_configured_lets_nothing_in() {
        let a = auth(false, false);
        assert!(!authorized(&headers(&[("authorization", "Bearer ")]), &a));
        assert!(!authorized(&headers(&[("x-api-key", "")]), &a));
    }
}
