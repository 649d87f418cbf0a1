//! Stateless tokens: `mseg1.<expiry>.<mac>`, minted for a client and verified against it
//! (module docs of [`super`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::settings::config::OAuthClient;

/// The first part of every token (its format's version).
pub const TOKEN_PREFIX: &str = "mseg1";
/// How long a token lasts (`expires_in`).
pub const TOKEN_TTL_SECS: u64 = 3600;
/// How far the clocks of two instances may disagree: a token minted by one instance whose
/// clock is ahead still verifies on another.
pub const CLOCK_LEEWAY_SECS: u64 = 60;
/// The message of the HMAC that derives a client's signing key from its secret.
pub const KEY_LABEL: &[u8] = b"moengage-segment oauth signing key v1";
/// The first bytes MAC'ed into every token.
pub const MAC_TAG: &[u8] = b"moengage-segment oauth token v1";
/// No token of this format is longer: `mseg1.` + 20 digits + `.` + 43 characters.
pub(super) const MAX_TOKEN_CHARS: usize = 96;
pub(super) type HmacSha256 = Hmac<Sha256>;

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

pub(super) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    // HMAC takes keys of any length: this never fails, but a failure would fail closed.
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// The MAC of a token of `client` expiring at `expiry`.
pub(super) fn token_mac(client: &OAuthClient, expiry: u64) -> Option<[u8; 32]> {
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
pub(super) fn parse_expiry(s: &str) -> Option<u64> {
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
