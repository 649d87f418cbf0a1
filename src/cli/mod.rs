//! `moe2seg`'s commands: [`map`] (a Streams body → Segment messages), [`invoke`] (a Lambda
//! event file → the handler its function runs), [`replay`] (a queue → Segment) and [`backfill`] (S3 exports → Segment).

pub mod backfill;
pub mod invoke;
pub mod map;
pub mod replay;

use std::io;
use std::process::ExitCode;

use crate::app::{self, App, DryRunWhen, Options};
use crate::settings::config::{Env, SettingsSource};
use crate::telemetry::metrics::MetricsSink;

/// Runs a subcommand on a single-threaded runtime (as the Lambda does).
pub fn block_on(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    run_on(
        tokio::runtime::Builder::new_current_thread(),
        ExitCode::FAILURE,
        fut,
    )
}

/// Runs `fut` on a runtime from `builder` (all drivers on); `cannot_start` is the exit code
/// when the runtime cannot be built.
pub fn run_on(
    mut builder: tokio::runtime::Builder,
    cannot_start: ExitCode,
    fut: impl std::future::Future<Output = ExitCode>,
) -> ExitCode {
    match builder.enable_all().build() {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("moe2seg: cannot start the async runtime: {e}");
            cannot_start
        }
    }
}

/// Prints `value` as JSON on stdout (`pretty` or one line). A closed stdout (`| head`) is
/// not an error worth a panic: the command's work is done and its exit code stands.
pub fn print_json(value: &impl serde::Serialize, pretty: bool) {
    use std::io::Write;
    let text = match pretty {
        true => serde_json::to_string_pretty(value),
        false => serde_json::to_string(value),
    };
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", text.unwrap_or_default());
}

/// For a command that serves no webhook (replay, backfill) with settings from the
/// environment: without `WEBHOOK_*` credentials, a random token no caller can know stands
/// in, so that the settings validate as the functions' do.
fn no_webhook(env: &mut Env) {
    if let SettingsSource::Env(fields) = &mut env.source {
        let given = [
            &fields.webhook_username,
            &fields.webhook_token,
            &fields.oauth_client_id,
        ];
        if given
            .iter()
            .all(|f| f.as_deref().is_none_or(|v| v.trim().is_empty()))
        {
            fields.webhook_token = Some(format!("{:032x}", fastrand::u128(..)));
        }
    }
}

/// The Lambda's environment and handler, built as the Lambda builds them, for a CLI run
/// (`webhook`: whether it serves webhook requests, which need the webhook credentials);
/// `Err` is the exit code after printing why.
pub async fn env_and_app(dry_run: DryRunWhen, webhook: bool) -> Result<(Env, App), ExitCode> {
    let cannot_start = |e: String| {
        eprintln!("moe2seg: {e}");
        ExitCode::from(2)
    };
    let env = cli_env(webhook).map_err(cannot_start)?;
    let app = cli_app(&env, dry_run).await.map_err(cannot_start)?;
    Ok((env, app))
}

/// The Lambda's environment for a CLI run (see [`env_and_app`]).
pub fn cli_env(webhook: bool) -> Result<Env, String> {
    let mut env = Env::from_env().map_err(|e| e.to_string())?;
    if !webhook {
        no_webhook(&mut env);
    }
    Ok(env)
}

/// The handler built from `env` as the Lambda builds it, for a CLI run: no metrics, dry-run
/// requests printed on stderr.
pub async fn cli_app(env: &Env, dry_run: DryRunWhen) -> Result<App, String> {
    let options = Options {
        dry_run,
        metrics: MetricsSink::Off,
        dry_run_output: || Box::new(io::stderr()),
    };
    app::build(env, options).await.map_err(|e| e.to_string())
}
