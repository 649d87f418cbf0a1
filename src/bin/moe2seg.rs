//! `moe2seg`: the command-line face of moengage-segment.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moengage_segment::cli;

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
        /// Mapping options (docs/mapping-options.md): a JSON file holding the options
        /// object, or a secret-shaped object with them under `mapping`.
        #[arg(long, value_name = "FILE")]
        options: Option<String>,
    },
    /// Run the Lambda handler in-process on an event file and print its answer as JSON: an
    /// API Gateway / Function URL event (the webhook: the HTTP response), an SQS event from
    /// the parked queue (redelivery: the batch item failures), or a Step Functions batch of
    /// export objects (`BatchInput` + `Items`: the backfill's summary). Uses the Lambda's
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
    /// Send MoEngage's S3 exports (history) to Segment: SOURCE is a `.json.gz` or JSON Lines
    /// file, a directory (walked), or `s3://bucket/prefix`. Uses the Lambda's settings
    /// (SECRET_ID, or SEGMENT_WRITE_KEY + SEGMENT_REGION; DEAD_LETTER_QUEUE_URL and
    /// REFUSED_QUEUE_URL to park what Segment will not take). Prints a summary (stderr, and
    /// JSON on stdout). Exit 0: all sent; 1: some rejected, refused or parked (reported);
    /// 2: could not start; 3: some files unfinished (rerun to resume); 130: interrupted.
    Backfill {
        /// Files, directories, or s3://bucket/prefix.
        #[arg(required = true)]
        sources: Vec<String>,
        /// Only events at or after this time (RFC 3339), by the message's timestamp: the
        /// event_time, or the end of the line's export hour.
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time (RFC 3339): set it to when the live webhook started.
        #[arg(long)]
        until: Option<String>,
        /// Requests per second to Segment, at most (Segment takes about 1,000 per workspace).
        #[arg(long, default_value_t = cli::backfill::DEFAULT_RATE)]
        rate: u32,
        /// Files in flight at once.
        #[arg(long, default_value_t = cli::backfill::DEFAULT_CONCURRENCY)]
        concurrency: usize,
        /// Records finished files and lines here; a rerun with it skips them.
        #[arg(long, value_name = "PATH")]
        checkpoint: Option<std::path::PathBuf>,
        /// Where lines and events not sent are reported (JSON Lines: file, line, reason);
        /// stderr without it.
        #[arg(long, value_name = "PATH")]
        rejects: Option<std::path::PathBuf>,
        /// Print the Segment requests instead of sending them; write no checkpoint.
        #[arg(long)]
        dry_run: bool,
        /// Seconds one batch may take, retries included, before its file is left unfinished.
        #[arg(long, default_value_t = cli::backfill::DEFAULT_BATCH_TIMEOUT.as_secs(), hide = true)]
        batch_timeout: u64,
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
        Command::Map { file, options } => cli::map::map(file, options),
        Command::Invoke {
            event_file,
            dry_run,
            timeout,
        } => cli::block_on(cli::invoke::invoke(event_file, dry_run, timeout)),
        Command::Replay {
            queue,
            dry_run,
            max_batches,
        } => cli::block_on(cli::replay::replay(queue, dry_run, max_batches)),
        Command::Backfill {
            sources,
            since,
            until,
            rate,
            concurrency,
            checkpoint,
            rejects,
            dry_run,
            batch_timeout,
        } => {
            let args = cli::backfill::Args {
                sources,
                since,
                until,
                rate,
                concurrency,
                checkpoint,
                rejects,
                dry_run,
                batch_timeout: std::time::Duration::from_secs(batch_timeout),
            };
            cli::run_on(
                tokio::runtime::Builder::new_multi_thread(),
                ExitCode::from(moengage_segment::backfill::report::exit::CANNOT_START),
                cli::backfill::backfill(args),
            )
        }
    }
}
