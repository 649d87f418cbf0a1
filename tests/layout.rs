//! The layout's rules, checked on the source (ARCHITECTURE.md "Invariants"):
//!
//! - imports between the top-level modules of `src/` point one way, down the pipeline: a
//!   module names (`crate::…`, in code or docs) only modules of a lower stage ([`STAGES`]),
//!   so there is no cycle;
//! - no source file holds more than [`MAX_FILE_CODE_LINES`] lines of code (its tests apart:
//!   a `mod tests` in it, or a `tests.rs`);
//! - no function outside tests is longer than [`MAX_FN_LINES`] lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The top-level modules of `src/`, lowest stage first: each may name only modules of a
/// lower stage. Modules of one stage never name each other.
const STAGES: &[&[&str]] = &[
    &["excerpt"],
    &["decode"],
    &["mapping"],
    &["settings", "telemetry"],
    &["delivery"],
    &["webhook", "backfill"],
    &["app"],
    &["cli"],
];

const MAX_FILE_CODE_LINES: usize = 600;
const MAX_FN_LINES: usize = 60;

fn stage(module: &str) -> Option<usize> {
    STAGES.iter().position(|s| s.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The library's source files by top-level module (`src/bin` is not part of the library).
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let mut by_module: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for path in files {
        let rel = path.strip_prefix(src()).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "bin" || module == "lib" {
            continue;
        }
        by_module.entry(module).or_default().push(path);
    }
    by_module
}

/// The text before the file's `#[cfg(test)] mod tests` (the tests apart).
fn without_tests(text: &str) -> &str {
    let lines: Vec<&str> = text.lines().collect();
    let mut offset = 0;
    for (i, line) in lines.iter().enumerate() {
        let test_module = line.starts_with("mod tests")
            || (line.starts_with("#[cfg(test)]")
                && lines.get(i + 1).is_some_and(|l| l.starts_with("mod ")));
        if test_module {
            return &text[..offset];
        }
        offset += line.len() + 1;
    }
    text
}

/// A line with its string literals emptied and its `//` comment cut (good enough for this
/// code base: no raw strings hold braces that matter here).
fn code_of(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_str = false;
                    out.push('"');
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push('"');
            }
            '\'' => {
                // A char literal ('{', '\'', '\u{…}') or a lifetime.
                let rest: String = chars.clone().take(12).collect();
                if let Some(end) = rest.find('\'').filter(|e| *e <= 10)
                    && (end == 1 || rest.starts_with('\\'))
                {
                    for _ in 0..=end {
                        chars.next();
                    }
                    out.push_str("' '");
                } else {
                    out.push('\'');
                }
            }
            '/' if chars.peek() == Some(&'/') => break,
            c => out.push(c),
        }
    }
    out
}

#[test]
fn imports_point_down_the_pipeline() {
    let mut wrong = Vec::new();
    for (module, files) in modules() {
        let Some(own) = stage(&module) else {
            wrong.push(format!(
                "src/{module}: a top-level module missing from STAGES"
            ));
            continue;
        };
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                for (at, _) in line.match_indices("crate::") {
                    let name: String = line[at + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name == module || name.is_empty() {
                        continue;
                    }
                    match stage(&name) {
                        Some(s) if s < own => {}
                        _ => wrong.push(format!(
                            "{}:{}: {module} names crate::{name}",
                            path.strip_prefix(src()).unwrap().display(),
                            n + 1
                        )),
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the stages:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn source_files_and_functions_stay_small() {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let mut wrong = Vec::new();
    for path in files {
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = without_tests(&text);
        let name = path.strip_prefix(src()).unwrap().display().to_string();
        let code_lines = code
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .count();
        if code_lines > MAX_FILE_CODE_LINES {
            wrong.push(format!("{name}: {code_lines} lines of code"));
        }
        for (start, fn_name, len) in functions(code) {
            if len > MAX_FN_LINES {
                wrong.push(format!("{name}:{start}: fn {fn_name} is {len} lines"));
            }
        }
    }
    assert!(wrong.is_empty(), "too large:\n{}", wrong.join("\n"));
}

/// Each function's first line (1-based), name and length in lines, signature to closing
/// brace (nested functions are measured on their own, and within their parent).
fn functions(code: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<String> = code.lines().map(code_of).collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let mut depth = 0i64;
        let mut opened = false;
        for (j, l) in lines.iter().enumerate().skip(i) {
            if !opened && l.contains(';') && !l.contains('{') {
                break; // a declaration without a body
            }
            depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
            opened |= l.contains('{');
            if opened && depth <= 0 {
                found.push((i + 1, name.clone(), j - i + 1));
                break;
            }
        }
    }
    found
}

fn fn_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.next() {
        match w {
            "pub" | "pub(crate)" | "pub(super)" | "async" | "const" | "unsafe" | "extern" => {}
            w if w.starts_with("pub(") => {}
            "fn" => {
                let name: String = words
                    .next()?
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                return (!name.is_empty()).then_some(name);
            }
            _ => return None,
        }
    }
    None
}

#[test]
fn the_checks_catch_what_they_are_for() {
    // An upward import, a long function, a declaration without a body.
    let long = format!("fn long() {{\n{}}}\n", "    x();\n".repeat(70));
    assert_eq!(functions(&long), [(1, "long".to_owned(), 72)]);
    assert_eq!(
        functions("fn f(x: u8);\nfn g() {}\n"),
        [(2, "g".to_owned(), 1)]
    );
    assert_eq!(code_of(r#"let s = "{"; // }"#), r#"let s = ""; "#);
    assert_eq!(
        code_of("let c = '{'; let l: &'a str;"),
        "let c = ' '; let l: &'a str;"
    );
    assert!(stage("decode") < stage("mapping") && stage("mapping") < stage("delivery"));
    assert_eq!(
        without_tests("fn a() {}\n#[cfg(test)]\nmod tests {}\n"),
        "fn a() {}\n"
    );
}
