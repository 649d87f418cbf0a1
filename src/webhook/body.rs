//! The request body: gunzipped when it says so (or starts like gzip), held to the size limit
//! before and after.

use std::borrow::Cow;
use std::io::Read;

use lambda_http::http::{HeaderMap, header};

use crate::webhook::answer::{HttpError, excerpt};

/// The request body, gunzipped when needed, within `limit` bytes (the gzip expansion too).
pub fn read_body<'b>(
    headers: &HeaderMap,
    raw: &'b [u8],
    limit: usize,
) -> Result<Cow<'b, [u8]>, HttpError> {
    if raw.len() > limit {
        return Err(HttpError::TooLarge(limit));
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let gzip_magic = raw.starts_with(&[0x1f, 0x8b]);
    match encoding.as_str() {
        "gzip" | "x-gzip" => {}
        "" | "identity" if gzip_magic => {}
        "" | "identity" => return Ok(Cow::Borrowed(raw)),
        other => return Err(HttpError::UnsupportedEncoding(excerpt(other))),
    }
    // The expansion is held to the same limit as the body: a 2 KB gzip bomb must not
    // become gigabytes.
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(raw)
        .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| HttpError::BadGzip(excerpt(&e.to_string())))?;
    if out.len() > limit {
        return Err(HttpError::TooLarge(limit));
    }
    Ok(Cow::Owned(out))
}
