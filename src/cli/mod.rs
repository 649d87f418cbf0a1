//! `moe2seg`'s commands: [`map`] (a Streams body → Segment messages), [`invoke`] (a Lambda
//! event file → the handler its function runs), [`replay`] (a queue → Segment) and [`backfill`] (S3 exports → Segment).

pub mod backfill;
pub mod invoke;
pub mod map;
pub mod replay;

use std::io;
use std::process::ExitCode;

use crate::app::{self, App, DryRunWhen, Options};
use crate::settings::config::Env;
use crate::telemetry::metrics::MetricsSink;

/// Runs a subcommand on a single-threaded runtime (as the Lambda does).
pub fn block_on(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("moe2seg: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The Lambda's environment and handler, built as the Lambda builds them, for a CLI run;
/// `Err` is the exit code after printing why.
pub async fn env_and_app(dry_run: DryRunWhen) -> Result<(Env, App), ExitCode> {
    let env = Env::from_env().map_err(|e| {
        eprintln!("moe2seg: {e}");
        ExitCode::from(2)
    })?;
    let app = app::build(
        &env,
        Options {
            dry_run,
            metrics: MetricsSink::Off,
            dry_run_output: || Box::new(io::stderr()),
        },
    )
    .await
    .map_err(|e| {
        eprintln!("moe2seg: {e}");
        ExitCode::from(2)
    })?;
    Ok((env, app))
}
