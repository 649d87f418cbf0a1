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

/// 2010-01-01T00:00:00Z: MoEngage did not exist before; an earlier `event_time` is a unit
/// mistake or a placeholder (`123` in MoEngage's own samples).
pub const EARLIEST_PLAUSIBLE_MILLIS: i64 = 1_262_304_000_000;
/// How far after the time received an event may claim to have happened (clock skew).
pub const MAX_FUTURE_MILLIS: i64 = 24 * 3600 * 1000;

/// Whether `millis` can be when an event received at `received_at_ms` happened.
pub fn is_plausible(millis: i64, received_at_ms: i64) -> bool {
    millis >= EARLIEST_PLAUSIBLE_MILLIS
        && millis <= received_at_ms.saturating_add(MAX_FUTURE_MILLIS)
}

/// The milliseconds of an optional `.fff…` at `i` (1 to 9 digits, cut to 3), and where the
/// text goes on.
fn fraction_millis(b: &[u8], mut i: usize) -> Option<(i64, usize)> {
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 9 {
            return None;
        }
        let digits = &b[start..i];
        for k in 0..3 {
            millis = millis * 10 + digits.get(k).map_or(0, |d| i64::from(d - b'0'));
        }
    }
    Some((millis, i))
}

/// The offset that ends the text, in minutes east of UTC: `Z`, `±hh:mm` or `±hhmm`.
fn offset_minutes(rest: &[u8]) -> Option<i64> {
    match rest {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    let two = |a: u8, c: u8| {
                        (a.is_ascii_digit() && c.is_ascii_digit())
                            .then(|| i64::from(a - b'0') * 10 + i64::from(c - b'0'))
                    };
                    (two(*h1, *h2)?, two(*m1, *m2)?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            Some(if *sign == b'-' { -total } else { total })
        }
        _ => None,
    }
}

/// Reads an ISO-8601 / RFC 3339 date-time with an offset (`2024-01-31T12:00:00Z`,
/// `2024-01-31 12:00:00.123+05:30`, `…+0530`) into epoch milliseconds. Every field must be
/// in range for a real calendar date (leap years included); fractions beyond milliseconds
/// are cut. `None` for anything else.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let (millis, i) = fraction_millis(b, 19)?;
    let offset_minutes = offset_minutes(b.get(i..)?)?;
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(secs * 1000 + millis)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil: (year, month, day) → days since 1970-01-01.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_millis(millis: i64) -> String {
    Iso::of(millis).as_str().to_owned()
}

/// An instant as `YYYY-MM-DDTHH:MM:SS.mmmZ`, on the stack (one per message: no allocation).
#[derive(Debug, Clone, Copy)]
pub struct Iso([u8; 24]);

impl Iso {
    pub fn of(millis: i64) -> Iso {
        let millis = millis.clamp(0, MAX_MILLIS);
        let secs = millis.div_euclid(1000);
        let ms = millis.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        // Written digit by digit: `format!` with padding costs more than the rest of a
        // message's timestamp handling together.
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y as u64);
        put(5, 2, u64::from(m));
        put(8, 2, u64::from(d));
        put(11, 2, (sod / 3600) as u64);
        put(14, 2, ((sod / 60) % 60) as u64);
        put(17, 2, (sod % 60) as u64);
        put(20, 3, ms as u64);
        Iso(out)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
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
    fn iso_date_times() {
        let ms = |t| parse_iso8601(t);
        assert_eq!(ms("2024-01-31T12:00:00Z"), Some(1_706_702_400_000));
        assert_eq!(ms(" 2024-01-31t12:00:00.1234z "), Some(1_706_702_400_123));
        assert_eq!(ms("2024-01-31T17:30:00.5+05:30"), Some(1_706_702_400_500));
        assert_eq!(ms("2024-01-31 07:00:00-0500"), Some(1_706_702_400_000));
        assert_eq!(ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(ms("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        for bad in [
            "2024-13-45T99:99:99Z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-31T24:00:00Z",
            "2024-01-31T12:60:00Z",
            "2024-01-31T12:00:60Z",
            "2024-01-31T12:00:00",
            "2024-01-31T12:00:00+24:00",
            "2024-01-31T12:00:00+05:60",
            "2024-01-31T12:00:00+5:30",
            "2024-01-31T12:00:00.Z",
            "2024-01-31T12:00:00.1234567890Z",
            "2024-01-31T12:00:00Zjunk",
            "2024-1-31T12:00:00Z",
            "2024-01-31",
            "1700000000",
            "２０２４-01-31T12:00:00Z",
        ] {
            assert_eq!(ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_through_the_formatter() {
        for t in [
            0,
            951_782_400_000,
            1_700_000_000_123,
            4_107_542_399_000,
            MAX_MILLIS,
        ] {
            assert_eq!(parse_iso8601(&format_millis(t)), Some(t), "{t}");
        }
    }

    #[test]
    fn plausibility_window() {
        let now = 1_764_331_200_000;
        assert!(is_plausible(EARLIEST_PLAUSIBLE_MILLIS, now));
        assert!(!is_plausible(EARLIEST_PLAUSIBLE_MILLIS - 1, now));
        assert!(!is_plausible(123_000, now));
        assert!(is_plausible(now + MAX_FUTURE_MILLIS, now));
        assert!(!is_plausible(now + MAX_FUTURE_MILLIS + 1, now));
    }
}
