//! Timestamps: MoEngage `event_time` → ISO-8601 UTC (`2024-01-31T12:00:00.000Z`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Epoch seconds at or above this are read as milliseconds (1e11 s is the year 5138).
const MILLIS_THRESHOLD: f64 = 1e11;
/// 9999-12-31T23:59:59.999Z in milliseconds: the last instant ISO-8601's 4-digit year holds.
const MAX_MILLIS: i64 = 253_402_300_799_999;

/// Reads an `event_time` given as epoch seconds or milliseconds (integer, float or a string
/// holding one). Returns epoch milliseconds, or `None` when it is not a usable time.
pub fn parse_event_time(text: &str) -> Option<i64> {
    let t = text.trim();
    let v: f64 = t.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let millis = if v >= MILLIS_THRESHOLD { v } else { v * 1000.0 };
    let millis = millis.round();
    if millis > MAX_MILLIS as f64 {
        return None;
    }
    Some(millis as i64)
}

/// Whether `text` already is an ISO-8601 / RFC 3339 UTC-or-offset timestamp we can pass on.
pub fn looks_like_iso8601(text: &str) -> bool {
    let b = text.trim().as_bytes();
    b.len() >= 20
        && b.len() <= 35
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        && b[13] == b':'
        && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ')
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_millis(millis: i64) -> String {
    let millis = millis.clamp(0, MAX_MILLIS);
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// The current time in epoch milliseconds.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Howard Hinnant's days-from-civil inverse: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_millis(4_107_542_399_000), "2100-02-28T23:59:59.000Z");
        assert_eq!(format_millis(MAX_MILLIS), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn seconds_and_milliseconds() {
        assert_eq!(parse_event_time("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_event_time("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_event_time("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_event_time(" 1700000000 "), Some(1_700_000_000_000));
        assert_eq!(parse_event_time("0"), Some(0));
    }

    #[test]
    fn unusable_times() {
        for t in ["", "abc", "-5", "NaN", "inf", "1e30", "2024-01-01"] {
            assert_eq!(parse_event_time(t), None, "{t}");
        }
    }

    #[test]
    fn iso_detection() {
        assert!(looks_like_iso8601("2024-01-31T12:00:00Z"));
        assert!(looks_like_iso8601("2024-01-31T12:00:00.123+05:30"));
        assert!(!looks_like_iso8601("2024-01-31"));
        assert!(!looks_like_iso8601("1700000000"));
    }
}
