//! `moe2seg`: the command-line face of moengage-segment.

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moengage_segment::app::{self, Options};
use moengage_segment::cli_map;
use moengage_segment::config::{Env, SettingsSource};
use moengage_segment::invoke;
use moengage_segment::metrics::MetricsSink;

#[derive(Parser)]
#[command(name = "moe2seg", version, about = "MoEngage Streams → Segment bridge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Map one Streams body to Segment messages: JSON Lines on stdout, rejected events as
    /// JSON Lines on stderr. Exit 2 when the input is not a Streams request.
    Map {
        /// The body file; `-` or nothing reads stdin.
        file: Option<String>,
    },
    /// Run the Lambda handler in-process on an API Gateway / Function URL event file and
    /// print the HTTP response as JSON. Uses the Lambda's environment (SECRET_ID, or
    /// SEGMENT_WRITE_KEY + SEGMENT_REGION + WEBHOOK_*); with neither, runs dry.
    Invoke {
        /// The event JSON (e.g. events/apigw-v2.json).
        event_file: String,
        /// Print the Segment requests instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// Time budget of the invocation in seconds (the Lambda timeout).
        #[arg(long, default_value_t = 25)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Map { file } => map(file),
        Command::Invoke {
            event_file,
            dry_run,
            timeout,
        } => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("moe2seg: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(invoke(event_file, dry_run, timeout))
        }
    }
}

fn map(file: Option<String>) -> ExitCode {
    let bytes = match cli_map::read_input(file.as_deref()) {
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
    match cli_map::run_map(&bytes, &mut stdout, &mut stderr) {
        Ok(c) => ExitCode::from(c as u8),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moe2seg: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn invoke(event_file: String, dry_run: bool, timeout: u64) -> ExitCode {
    lambda_http::tracing::init_default_subscriber_with_writer(io::stderr);
    let text = match std::fs::read(&event_file) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!("moe2seg: cannot read {event_file}: {e}");
            return ExitCode::from(2);
        }
    };
    let req = match invoke::request_from_event(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("moe2seg: {event_file}: {e}");
            return ExitCode::from(2);
        }
    };
    let env = match Env::from_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("moe2seg: {e}");
            return ExitCode::from(2);
        }
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
    let app = match app::build(
        &env,
        Options {
            dry_run_without_settings: true,
            force_dry_run: dry_run,
            metrics: MetricsSink::Off,
            dry_run_output: || Box::new(io::stderr()),
        },
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("moe2seg: {e}");
            return ExitCode::from(2);
        }
    };
    let resp = app
        .handle(invoke::with_deadline(req, timeout.saturating_mul(1000)))
        .await;
    let out = invoke::response_json(&resp);
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    ExitCode::SUCCESS
}
