//! Pretty-printing the way senders do, for tests that formatting never changes the output.

/// The same text with whitespace added between every pair of tokens (tabs, newlines, CRLF,
/// spaces): strings, numbers and key order untouched, as a pretty-printer would leave them.
pub fn pretty(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let (mut in_string, mut escaped, mut depth) = (false, false, 0usize);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                depth += 1;
                out.push(c);
                out.push_str("\r\n");
                out.push_str(&"\t".repeat(depth));
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                out.push('\n');
                out.push_str(&"\t".repeat(depth));
                out.push(c);
            }
            ',' => {
                out.push_str(" ,\n");
                out.push_str(&"\t".repeat(depth));
            }
            ':' => out.push_str(" :  "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}
