//! `moe2seg replay --queue URL`: drains a queue by hand through the same forwarding step as the
//! functions ([`crate::delivery::replay`]), with the function's settings.

use std::io;
use std::process::ExitCode;

use crate::app::DryRunWhen;
use crate::delivery::park::SqsQueue;
use crate::delivery::replay::{self, ReplayOptions};
use crate::settings::config::SettingsSource;

use super::env_and_app;

pub async fn replay(queue_url: String, dry_run: bool, max_batches: usize) -> ExitCode {
    crate::telemetry::logging::init(io::stderr);
    let when = if dry_run {
        DryRunWhen::Always
    } else {
        DryRunWhen::Never
    };
    let (env, app) = match env_and_app(when, false).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Err(e) = app.forwarder.prefetch().await {
        eprintln!("moe2seg: {e}");
        if !dry_run && matches!(env.source, SettingsSource::None) {
            eprintln!(
                "moe2seg: replay needs SECRET_ID (or SEGMENT_WRITE_KEY and SEGMENT_REGION); use --dry-run to only print"
            );
        }
        return ExitCode::from(2);
    }
    // The app's SQS client when it has one (one AWS configuration), else a new one.
    let known = app
        .forwarder
        .queues()
        .and_then(|q| q.parked.as_ref().or(q.refused.as_ref()));
    let queue = match known {
        Some(q) => q.sibling(queue_url),
        None => SqsQueue::from_env(queue_url).await,
    };
    let opts = ReplayOptions {
        dry_run,
        max_batches,
        ..ReplayOptions::default()
    };
    match replay::replay(&queue, &app.forwarder, &opts).await {
        Ok(report) => {
            super::print_json(&report, true);
            if report.failed == 0 && report.unreadable == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("moe2seg: replay failed: {e}");
            ExitCode::FAILURE
        }
    }
}
