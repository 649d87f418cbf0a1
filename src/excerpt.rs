//! Bounded, printable excerpts of untrusted text: what answers, log lines and records may
//! echo of the input or of a peer's answer.

/// At most `max_bytes` bytes of `s`, cut on a character boundary with `…` appended when cut,
/// and control characters replaced by `?` (each would take 6 bytes as a JSON escape). Its
/// JSON form is at most `2 × max_bytes + 5` bytes (`"` and `\` are escaped as 2).
pub fn excerpt(s: &str, max_bytes: usize) -> String {
    let mut end = s.len().min(max_bytes);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = s[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if end < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_printable_and_marked_when_cut() {
        assert_eq!(excerpt("abc", 10), "abc");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("a\u{1}\n\u{7f}b", 10), "a???b");
        // Never inside a character: é is 2 bytes.
        assert_eq!(excerpt("ééé", 3), "é…");
        assert_eq!(excerpt("", 0), "");
        assert_eq!(excerpt("x", 0), "…");
        let worst = "\u{1}\"".repeat(1_000);
        let json = serde_json::to_string(&excerpt(&worst, 100)).unwrap();
        assert!(json.len() <= 2 * 100 + 5, "{}", json.len());
    }
}
