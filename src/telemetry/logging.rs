//! Log set-up for both binaries: `tracing` through `tracing-subscriber`'s formatter, driven
//! by the same variables as `lambda_http::tracing::init_default_subscriber`, but filtered by
//! [`Targets`] instead of `EnvFilter`. `EnvFilter` brings a regex engine (about 0.4 MB of
//! the binary) for span and field filters nobody sets on this function.
//!
//! - A bare level in `RUST_LOG` sets the level, else `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced
//!   logging controls, which the template always sets to `INFO`), else `INFO`, as with
//!   lambda_http's set-up. Lambda's `FATAL` counts as `ERROR`.
//! - `RUST_LOG` may also hold per-target levels: `info,moengage_segment=debug`. Directives
//!   this filter cannot read (span or field filters) are skipped, each named once on stderr.
//! - `AWS_LAMBDA_LOG_FORMAT=JSON` writes one JSON object per line (the template sets it).

use std::io;
use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// The filter the environment asks for, and the `RUST_LOG` directives it had to skip.
pub fn filter_from(lambda_level: Option<&str>, rust_log: Option<&str>) -> (Targets, Vec<String>) {
    let mut skipped = Vec::new();
    let mut targets = Targets::new();
    let mut bare = None;
    for directive in rust_log.unwrap_or("").split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        if let Some(level) = level(directive) {
            bare = Some(level);
        } else if let Some((target, level)) = directive.split_once('=')
            && let Some(level) = level_or_none(level)
            && is_target(target)
        {
            targets = targets.with_target(target.to_owned(), level);
        } else if is_target(directive) {
            targets = targets.with_target(directive.to_owned(), LevelFilter::TRACE);
        } else {
            skipped.push(directive.to_owned());
        }
    }
    let default = bare
        .or_else(|| lambda_level.and_then(level))
        .unwrap_or(LevelFilter::INFO);
    (targets.with_default(default), skipped)
}

/// Installs the global subscriber, writing to `writer`.
pub fn init<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let var = |name| std::env::var(name).ok();
    let (filter, skipped) = filter_from(
        var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        var("RUST_LOG").as_deref(),
    );
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(writer);
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests) keeps the first subscriber.
    let _ = if json {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt).try_init()
    };
    for d in skipped {
        tracing::warn!(directive = %crate::excerpt::excerpt(&d, 80), "RUST_LOG directive not supported (only level and target=level); skipped");
    }
}

/// Installs the global subscriber writing to stdout (the Lambda).
pub fn init_stdout() {
    init(io::stdout);
}

/// A level name as Lambda or `tracing` spell it, any case.
fn level(s: &str) -> Option<LevelFilter> {
    if s.eq_ignore_ascii_case("fatal") {
        return Some(LevelFilter::ERROR);
    }
    LevelFilter::from_str(s).ok()
}

fn level_or_none(s: &str) -> Option<LevelFilter> {
    level(s.trim())
}

/// A module path such as `moengage_segment::delivery::segment` or `aws_smithy_runtime`.
fn is_target(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled(t: &Targets, target: &str, level: Level) -> bool {
        t.would_enable(target, &level)
    }

    #[test]
    fn the_default_is_info() {
        let (t, skipped) = filter_from(None, None);
        assert!(skipped.is_empty());
        assert!(enabled(&t, "moengage_segment", Level::INFO));
        assert!(!enabled(&t, "moengage_segment", Level::DEBUG));
    }

    #[test]
    fn a_bare_level_in_rust_log_sets_the_default() {
        let (t, _) = filter_from(None, Some("debug"));
        assert!(enabled(&t, "aws_smithy_runtime", Level::DEBUG));
        assert!(!enabled(&t, "aws_smithy_runtime", Level::TRACE));
        let (t, _) = filter_from(None, Some("WARN"));
        assert!(!enabled(&t, "x", Level::INFO));
    }

    #[test]
    fn a_bare_rust_log_level_wins_over_lambdas() {
        // The template sets AWS_LAMBDA_LOG_LEVEL=INFO and RUST_LOG from `RustLog`: `warn`
        // there must lower the level.
        let (t, _) = filter_from(Some("INFO"), Some("warn"));
        assert!(!enabled(&t, "x", Level::INFO));
        assert!(enabled(&t, "x", Level::WARN));
        let (t, _) = filter_from(Some("INFO"), Some("debug"));
        assert!(enabled(&t, "x", Level::DEBUG));
        // Without a bare level in RUST_LOG, Lambda's level is the default.
        let (t, _) = filter_from(Some("ERROR"), Some("moengage_segment=debug"));
        assert!(!enabled(&t, "x", Level::WARN));
        assert!(enabled(&t, "moengage_segment", Level::DEBUG));
        let (t, _) = filter_from(Some("FATAL"), None);
        assert!(enabled(&t, "x", Level::ERROR));
        assert!(!enabled(&t, "x", Level::WARN));
        // An unknown level is ignored rather than silencing the function.
        let (t, _) = filter_from(Some("loud"), None);
        assert!(enabled(&t, "x", Level::INFO));
    }

    #[test]
    fn targets_get_their_own_level() {
        let (t, skipped) = filter_from(
            None,
            Some("warn, moengage_segment=debug,aws_smithy_runtime::client=trace,hyper"),
        );
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(enabled(
            &t,
            "moengage_segment::delivery::segment",
            Level::DEBUG
        ));
        assert!(!enabled(
            &t,
            "moengage_segment::delivery::segment",
            Level::TRACE
        ));
        assert!(enabled(
            &t,
            "aws_smithy_runtime::client::orchestrator",
            Level::TRACE
        ));
        assert!(!enabled(&t, "aws_smithy_runtime::x", Level::INFO));
        assert!(enabled(&t, "hyper::proto", Level::TRACE));
        assert!(!enabled(&t, "reqwest", Level::INFO));
    }

    #[test]
    fn unsupported_directives_are_skipped_and_named() {
        let (t, skipped) = filter_from(
            None,
            Some("info,[span{id=1}]=debug,x=loud,a=b=c,moengage_segment=debug"),
        );
        assert_eq!(skipped, ["[span{id=1}]=debug", "x=loud", "a=b=c"]);
        assert!(enabled(&t, "moengage_segment", Level::DEBUG));
        assert!(!enabled(&t, "other", Level::DEBUG));
    }
}
