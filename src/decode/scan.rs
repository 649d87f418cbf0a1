//! A validating JSON scanner that finds where values start and end without building them:
//! the fast path of [`crate::decode`].
//!
//! It accepts a subset of what serde_json accepts and nothing more: when it meets anything it
//! is not sure of (invalid JSON, but also nesting deeper than [`MAX_DEPTH`]) it gives up with
//! [`Unsure`], and the caller decodes the same text with serde_json, which then accepts it or
//! says exactly what is wrong. So the scanner decides speed, never what is accepted.
//! Grammar as serde_json's: whitespace is space, tab, CR, LF; strings hold no control
//! characters and only the escapes `\" \\ \/ \b \f \n \r \t \uXXXX` (any four hex digits, as
//! serde_json accepts when it skips a value); numbers are `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.

/// The scanner gave up: the text is invalid, or unusual enough to leave to serde_json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsure;

/// Nesting the scanner follows (serde_json's own limit is 128).
pub const MAX_DEPTH: usize = 100;

/// A string as scanned: its text between the quotes, and whether that holds escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Str<'a> {
    pub inner: &'a str,
    pub escaped: bool,
}

/// A position in a JSON text.
pub struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// One bit (the high bit of its byte) for each byte of `w` that is below 0x20, a `"` or a `\`;
/// exact up to the first such byte (a borrow may flag bytes after it).
#[inline]
fn special_bits(w: u64) -> u64 {
    // Below 0x20: subtracting 0x20 borrows into the high bit. `"` and `\`: their xor is 0,
    // which subtracting 1 borrows from. Bytes >= 0x80 are masked out by `!w`. Borrows run
    // towards later bytes only, so the lowest flagged byte is a real one.
    let control = w.wrapping_sub(LO * 0x20);
    let quote = (w ^ (LO * u64::from(b'"'))).wrapping_sub(LO);
    let backslash = (w ^ (LO * u64::from(b'\\'))).wrapping_sub(LO);
    (control | quote | backslash) & !w & HI
}

/// The index of the first byte at or after `from` that is below 0x20, a `"` or a `\`.
#[inline]
pub(crate) fn next_special(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let bits = special_bits(u64::from_le_bytes(word));
        if bits != 0 {
            return Some(i + (bits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    // Fewer than 8 bytes left: one more word, padded with a byte that is never special.
    let rest = b.get(i..)?;
    let mut word = [b'a'; 8];
    word.get_mut(..rest.len())?.copy_from_slice(rest);
    let bits = special_bits(u64::from_le_bytes(word));
    (bits != 0).then(|| i + (bits.trailing_zeros() / 8) as usize)
}

/// One bit for each byte of `w` that is a quote or a bracket (`"`, `[`, `]`, `{`, `}`); exact
/// up to the first one, like [`special_bits`].
#[inline]
fn structural_bits(w: u64) -> u64 {
    let zero = |c: u8| (w ^ (LO * u64::from(c))).wrapping_sub(LO);
    // `[` 0x5b and `{` 0x7b differ in one bit, as do `]` 0x5d and `}` 0x7d: fold it away.
    let folded = w | (LO * 0x20);
    let open = (folded ^ (LO * 0x7b)).wrapping_sub(LO);
    let close = (folded ^ (LO * 0x7d)).wrapping_sub(LO);
    (zero(b'"') | open | close) & !folded & HI
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips whitespace; the next byte, if any.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        let b = self.bytes();
        while let Some(&c) = b.get(self.pos) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(c);
            }
            self.pos += 1;
        }
        None
    }

    /// Skips whitespace and expects `c`.
    #[inline]
    pub fn expect(&mut self, c: u8) -> Result<(), Unsure> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// After whitespace, `c` is taken if it is next.
    #[inline]
    pub fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// The place to come back to ([`Scanner::reset`]) or take the text from
    /// ([`Scanner::since`]).
    pub fn mark(&mut self) -> usize {
        self.peek();
        self.pos
    }

    pub fn reset(&mut self, mark: usize) {
        self.pos = mark;
    }

    /// The text from `mark` to here.
    pub fn since(&self, mark: usize) -> &'a str {
        self.text.get(mark..self.pos).unwrap_or("")
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A string, after whitespace.
    pub fn string(&mut self) -> Result<Str<'a>, Unsure> {
        self.expect(b'"')?;
        self.string_rest()
    }

    /// The rest of a string whose opening quote was taken.
    fn string_rest(&mut self) -> Result<Str<'a>, Unsure> {
        let b = self.bytes();
        let start = self.pos;
        let mut escaped = false;
        let mut i = start;
        loop {
            i = next_special(b, i).ok_or(Unsure)?;
            match b[i] {
                b'"' => {
                    self.pos = i + 1;
                    // Both ends are ASCII quotes: char boundaries.
                    let inner = self.text.get(start..i).ok_or(Unsure)?;
                    return Ok(Str { inner, escaped });
                }
                b'\\' => {
                    escaped = true;
                    match b.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let hex = b.get(i + 2..i + 6).ok_or(Unsure)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Unsure);
                            }
                            i += 6;
                        }
                        _ => return Err(Unsure),
                    }
                }
                // A control character.
                _ => return Err(Unsure),
            }
        }
    }

    /// One value of any kind, after whitespace: its text (without surrounding whitespace).
    pub fn value(&mut self) -> Result<&'a str, Unsure> {
        self.value_spaced().map(|(text, _)| text)
    }

    /// [`Scanner::value`], and whether the value holds whitespace outside its strings (so
    /// needs [`crate::decode::json::compact_spaced`] to be compact).
    pub fn value_spaced(&mut self) -> Result<(&'a str, bool), Unsure> {
        self.peek().ok_or(Unsure)?;
        let start = self.pos;
        let spaced = self.skip_value()?;
        Ok((self.text.get(start..self.pos).ok_or(Unsure)?, spaced))
    }

    /// Skips whitespace inside a container; the next byte, if any. `spaced` is set when
    /// there was some.
    #[inline]
    fn inner_peek(&mut self, spaced: &mut bool) -> Option<u8> {
        let start = self.pos;
        let next = self.peek();
        *spaced |= self.pos != start;
        next
    }

    /// [`Scanner::inner_peek`], expecting `c`.
    #[inline]
    fn inner_expect(&mut self, c: u8, spaced: &mut bool) -> Result<(), Unsure> {
        if self.inner_peek(spaced) == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// The start of a member inside a container: for an object, its key and colon; then the
    /// whitespace before its value.
    #[inline]
    fn inner_member(&mut self, object: bool, spaced: &mut bool) -> Result<(), Unsure> {
        if object {
            self.inner_expect(b'"', spaced)?;
            self.string_rest()?;
            self.inner_expect(b':', spaced)?;
        }
        self.inner_peek(spaced);
        Ok(())
    }

    /// Skips one value that starts at `self.pos` (whitespace already skipped); whether it
    /// held whitespace (outside strings). Arrays and objects are followed with a stack of at
    /// most [`MAX_DEPTH`] levels (one bit each: set for an object), no recursion.
    fn skip_value(&mut self) -> Result<bool, Unsure> {
        let mut stack: u128 = 0;
        let mut depth = 0usize;
        let mut spaced = false;
        loop {
            // A value.
            match self.bytes().get(self.pos).copied().ok_or(Unsure)? {
                b'"' => {
                    self.pos += 1;
                    self.string_rest()?;
                }
                open @ (b'{' | b'[') => {
                    self.pos += 1;
                    let object = open == b'{';
                    let close = if object { b'}' } else { b']' };
                    if self.inner_peek(&mut spaced) == Some(close) {
                        self.pos += 1;
                    } else {
                        if depth == MAX_DEPTH {
                            return Err(Unsure);
                        }
                        stack = (stack << 1) | u128::from(object);
                        depth += 1;
                        self.inner_member(object, &mut spaced)?;
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(Unsure),
            }
            // After a complete value: close containers, or go on to the next member.
            loop {
                if depth == 0 {
                    return Ok(spaced);
                }
                let object = stack & 1 == 1;
                match self.inner_peek(&mut spaced) {
                    Some(b',') => {
                        self.pos += 1;
                        self.inner_member(object, &mut spaced)?;
                        break;
                    }
                    Some(b'}') if object => {
                        self.pos += 1;
                        stack >>= 1;
                        depth -= 1;
                    }
                    Some(b']') if !object => {
                        self.pos += 1;
                        stack >>= 1;
                        depth -= 1;
                    }
                    _ => return Err(Unsure),
                }
            }
        }
    }

    /// Skims an array or object that starts here (after whitespace): finds its end by
    /// matching brackets outside strings, without checking anything else. Its text is
    /// valid JSON only if a full scan says so ([`Scanner::value`]); when it is, this is its
    /// true end (brackets inside strings are skipped as strings are).
    pub fn skim(&mut self) -> Result<&'a str, Unsure> {
        if !matches!(self.peek(), Some(b'{' | b'[')) {
            return Err(Unsure);
        }
        let b = self.bytes();
        let start = self.pos;
        let mut depth = 0usize;
        let mut i = start;
        loop {
            let word = b.get(i..i + 8);
            let bits = match word {
                Some(chunk) => {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(chunk);
                    structural_bits(u64::from_le_bytes(w))
                }
                None => HI,
            };
            if bits == 0 {
                i += 8;
                continue;
            }
            // The first structural byte of the word (or, near the end, the next byte).
            let at = i + (bits.trailing_zeros() / 8) as usize;
            match b.get(at).copied().ok_or(Unsure)? {
                b'"' => {
                    // To the closing quote, over escapes.
                    let mut j = at + 1;
                    loop {
                        j = next_special(b, j).ok_or(Unsure)?;
                        match b[j] {
                            b'"' => break,
                            b'\\' => j += 2,
                            _ => j += 1,
                        }
                    }
                    i = j + 1;
                }
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Unsure);
                    }
                    i = at + 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1).ok_or(Unsure)?;
                    i = at + 1;
                    if depth == 0 {
                        self.pos = i;
                        return self.text.get(start..i).ok_or(Unsure);
                    }
                }
                _ => i = at + 1,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Unsure> {
        if self.bytes().get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    fn number(&mut self) -> Result<(), Unsure> {
        let b = self.bytes();
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(Unsure),
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(Unsure);
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(Unsure);
            }
        }
        self.pos = i;
        Ok(())
    }

    /// Iterates the members of an object, after whitespace: calls `member` with each key
    /// and the scanner placed before its value, which `member` must take (with
    /// [`Scanner::value`] or otherwise).
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Str<'a>) -> Result<(), Unsure>,
    ) -> Result<(), Unsure> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            member(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Unsure),
            }
        }
    }

    /// Iterates the elements of an array, after whitespace: `element` is called with the
    /// scanner placed before each, which it must take.
    pub fn array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<(), Unsure>,
    ) -> Result<(), Unsure> {
        self.expect(b'[')?;
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            element(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Unsure),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_spaced_tells_whitespace_outside_strings() {
        let spaced = |t: &str| Scanner::new(t).value_spaced().map(|(v, w)| (v.len(), w));
        assert_eq!(spaced("[1,2]"), Ok((5, false)));
        assert_eq!(
            spaced("  [1,2]  "),
            Ok((5, false)),
            "around the value is not inside"
        );
        assert_eq!(spaced(r#"["a b","c\td"]"#), Ok((14, false)));
        assert_eq!(spaced("\"a b\""), Ok((5, false)));
        for t in [
            "[1, 2]",
            "[ 1]",
            "[1 ]",
            "[\n]",
            "{\"a\" :1}",
            "{\"a\": 1}",
            "{ \"a\":1}",
            "{\"a\":1 }",
            "{\"a\":[[1],\t{}]}",
            "[[], [ ]]",
        ] {
            assert!(spaced(t).unwrap().1, "{t}");
        }
    }

    /// The scanner's verdict on a whole text: its value when valid, `None` when unsure.
    fn scan(text: &str) -> Option<&str> {
        let mut s = Scanner::new(text);
        let v = s.value().ok()?;
        s.at_end().then_some(v)
    }

    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[test]
    fn accepts_only_what_serde_json_accepts() {
        let valid = [
            "0",
            "-0",
            "1.5e+3",
            "-12.0E-2",
            "123456789012345678901234567890",
            "1e400",
            "true",
            "null",
            r#""""#,
            r#""a\"b\\c\/\b\f\n\r\t\u00e9\uD800x""#,
            "\"é😀\"",
            "[]",
            "{}",
            " [ 1 , { \"a\" : [ ] } , \"x\" ] ",
            r#"{"a":{"b":{"c":[[[{}]]]}},"d":null}"#,
            "\t\r\n[\n1\n]",
        ];
        for text in valid {
            assert!(serde_accepts(text), "{text}");
            assert!(scan(text).is_some(), "{text}");
            assert_eq!(scan(text), Some(text.trim_matches([' ', '\t', '\r', '\n'])));
        }
        let invalid = [
            "",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "True",
            "\"abc",
            "\"a\u{1}b\"",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"\\u12\"",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\" 1}",
            "[1 2]",
            "[1}",
            "{\"a\":1]",
            "1 2",
            "NaN",
            "\u{feff}1",
        ];
        for text in invalid {
            assert!(!serde_accepts(text), "{text}");
            assert!(scan(text).is_none(), "{text}");
        }
        // Deep nesting is left to serde_json (an empty innermost container is one level
        // more than the stack holds).
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_accepts(&nested(MAX_DEPTH + 2)));
        assert!(scan(&nested(MAX_DEPTH + 2)).is_none());
        assert!(scan(&nested(MAX_DEPTH + 1)).is_some());
    }

    #[test]
    fn special_bytes_are_found_at_every_offset() {
        for c in [0u8, 0x1f, b'"', b'\\'] {
            for pos in 0..20 {
                let mut b = vec![b'a'; 20];
                b[pos] = c;
                assert_eq!(next_special(&b, 0), Some(pos));
            }
        }
        assert_eq!(next_special(&[b'a'; 20], 0), None);
        assert_eq!(next_special("é😀\u{7f} ~".as_bytes(), 0), None);
    }

    #[test]
    fn objects_and_arrays_are_walked_member_by_member() {
        let mut s = Scanner::new(r#" {"a" : 1, "b\n":[true, "x"], "c":{}} "#);
        let mut seen = Vec::new();
        s.object(|s, k| {
            seen.push((k.inner, k.escaped, s.value()?));
            Ok(())
        })
        .unwrap();
        assert!(s.at_end());
        assert_eq!(
            seen,
            [
                ("a", false, "1"),
                ("b\\n", true, r#"[true, "x"]"#),
                ("c", false, "{}")
            ]
        );
        let mut n = 0;
        Scanner::new("[1, [2], {}]")
            .array(|s| {
                n += 1;
                s.value().map(drop)
            })
            .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn skimming_finds_the_end_a_full_scan_finds() {
        let texts = [
            "{}",
            "[]",
            r#"{"a":"]}\"}","b":[1,{"c":"\\"}],"d":"[{"}"#,
            r#"[ "x" , [ ] , { "y" : "}" } ]"#,
            r#"{"long string with no brackets at all, more than eight bytes":"yes"}"#,
        ];
        for text in texts {
            let body = format!("[{text} , 1]");
            let mut s = Scanner::new(&body);
            s.expect(b'[').unwrap();
            assert_eq!(s.skim(), Ok(text));
            assert_eq!(Scanner::new(text).value(), Ok(text));
        }
        // Never past the text, whatever it holds.
        for text in ["{", "[\"", "{\"a\\", "[[[", "\"x\""] {
            assert_eq!(Scanner::new(text).skim(), Err(Unsure), "{text}");
        }
        assert_eq!(
            Scanner::new("{]}").skim(),
            Ok("{]"),
            "brackets matched, not checked"
        );
    }
}
