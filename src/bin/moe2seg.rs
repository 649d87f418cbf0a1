//! `moe2seg`: the command-line face of moengage-segment.

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moengage_segment::cli;
use moengage_segment::lambda::app::{self, DryRunWhen, Options};
use moengage_segment::lambda::invoke;
use moengage_segment::settings::config::{Env, SettingsSource};
use moengage_segment::telemetry::metrics::MetricsSink;

#[derive(Parser)]
#[command(name = "moe2seg", version, about = "MoEngage Streams → Segment bridge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Map one Streams body to Segment messages: JSON Lines on stdout, rejected events as
    /// JSON Lines on stderr. Exit 2 when the input is not a Streams request, or the options
    /// are invalid.
    Map {
        /// The body file; `-` or nothing reads stdin.
        file: Option<String>,
        /// Mapping options (README "Mapping options"): a JSON file holding the options
        /// object, or a secret-shaped object with them under `mapping`.
        #[arg(long, value_name = "FILE")]
        options: Option<String>,
    },
    /// Run the Lambda handler in-process on an event file and print its answer as JSON: an
    /// API Gateway / Function URL event (the webhook: the HTTP response), or an SQS event
    /// from the parked queue (redelivery: the batch item failures). Uses the Lambda's
    /// environment (SECRET_ID, or SEGMENT_WRITE_KEY + SEGMENT_REGION + WEBHOOK_*;
    /// DEAD_LETTER_QUEUE_URL, REFUSED_QUEUE_URL); with no settings, runs dry.
    Invoke {
        /// The event JSON (e.g. events/apigw-v2.json, events/sqs-parked.json).
        event_file: String,
        /// Print the Segment requests instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// Time budget of the invocation in seconds (the Lambda timeout).
        #[arg(long, default_value_t = 25)]
        timeout: u64,
    },
    /// Re-deliver the events waiting in a queue to Segment (same messageIds), deleting each
    /// only once Segment took it (or, replaying the parked queue, once a refused one is set
    /// aside in REFUSED_QUEUE_URL). Re-reads the secret on a Segment 401 as the Lambda does.
    /// Uses the Lambda's settings (SECRET_ID, or SEGMENT_WRITE_KEY + SEGMENT_REGION). Prints
    /// a JSON report; exit 1 if any stayed.
    Replay {
        /// The SQS queue URL (the stack's RefusedQueueUrl output, or DeadLetterQueueUrl).
        #[arg(long)]
        queue: String,
        /// Print the Segment requests instead of sending them; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Stop after this many receive calls of up to 10 messages.
        #[arg(long, default_value_t = 100_000)]
        max_batches: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Map { file, options } => map(file, options),
        Command::Invoke {
            event_file,
            dry_run,
            timeout,
        } => block_on(invoke(event_file, dry_run, timeout)),
        Command::Replay {
            queue,
            dry_run,
            max_batches,
        } => block_on(replay(queue, dry_run, max_batches)),
    }
}

/// Runs a subcommand on a single-threaded runtime (as the Lambda does).
fn block_on(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
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
async fn env_and_app(dry_run: DryRunWhen) -> Result<(Env, app::App), ExitCode> {
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

async fn replay(queue_url: String, dry_run: bool, max_batches: usize) -> ExitCode {
    use moengage_segment::delivery::park::SqsQueue;
    use moengage_segment::delivery::replay::{self, ReplayOptions};
    moengage_segment::telemetry::logging::init(io::stderr);
    let when = if dry_run {
        DryRunWhen::Always
    } else {
        DryRunWhen::Never
    };
    let (env, app) = match env_and_app(when).await {
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
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
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

fn map(file: Option<String>, options: Option<String>) -> ExitCode {
    let options = match options.as_deref().map(cli::map::read_options) {
        None => Default::default(),
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            eprintln!("moe2seg: {e}");
            return ExitCode::from(2);
        }
    };
    let bytes = match cli::map::read_input(file.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "moe2seg: cannot read {}: {e}",
                file.as_deref().unwrap_or("stdin")
            );
            return ExitCode::from(2);
        }
    };
    // Stdout is line-buffered: one write per message without a BufWriter.
    let mut stdout = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut stderr = io::BufWriter::new(io::stderr().lock());
    match cli::map::run_map(&bytes, &options, &mut stdout, &mut stderr) {
        Ok(c) => ExitCode::from(c as u8),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moe2seg: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn invoke(event_file: String, dry_run: bool, timeout: u64) -> ExitCode {
    moengage_segment::telemetry::logging::init(io::stderr);
    let text = match std::fs::read(&event_file) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!("moe2seg: cannot read {event_file}: {e}");
            return ExitCode::from(2);
        }
    };
    let invocation = match invoke::event_from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("moe2seg: {event_file}: {e}");
            return ExitCode::from(2);
        }
    };
    let when = if dry_run {
        DryRunWhen::Always
    } else {
        DryRunWhen::NoSettings
    };
    let (env, app) = match env_and_app(when).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if matches!(env.source, SettingsSource::None) {
        eprintln!(
            "moe2seg: WARNING: neither SECRET_ID nor SEGMENT_WRITE_KEY is set: DRY RUN. \
             Inbound auth is skipped and nothing is sent to Segment; the requests that \
             would be sent are printed below."
        );
    } else if dry_run {
        eprintln!(
            "moe2seg: --dry-run: nothing is sent to Segment; the requests are printed below."
        );
    }
    let budget_ms = timeout.saturating_mul(1000);
    let out = match invocation {
        invoke::Invocation::Http(req) => {
            let resp = app
                .webhook()
                .handle(invoke::with_deadline(*req, budget_ms))
                .await;
            invoke::response_json(&resp)
        }
        invoke::Invocation::Sqs(event) => {
            let answer = app
                .redelivery()
                .redeliver(event, Some(invoke::deadline_ms(budget_ms)))
                .await;
            serde_json::to_value(&answer).unwrap_or_default()
        }
    };
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    ExitCode::SUCCESS
}
