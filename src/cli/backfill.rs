//! `moe2seg backfill SOURCE...`: MoEngage's S3 exports (files, directories, `s3://` prefixes)
//! into Segment from one machine, with the function's settings (the secret, or the
//! environment), a rate ceiling, a time window, a checkpoint to resume from, a progress bar
//! on a terminal and a summary at the end (docs/backfill.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::app::{AnySource, App, DryRunWhen};
use crate::backfill::checkpoint::{Checkpoint, Scope, Standing};
use crate::backfill::progress::Progress;
use crate::backfill::report::{FileEnd, Rejects, exit};
use crate::backfill::{Cancel, Run, Window, file, mapping_options, source};
use crate::delivery::forward::Forwarder;
use crate::delivery::pacer::Pacer;
use crate::mapping::options::MappingOptions;
use crate::mapping::time;
use crate::settings::config::SettingsSource;

/// Requests per second to Segment unless `--rate` says otherwise: a tenth of what Segment
/// takes per workspace, so live traffic keeps the rest.
pub const DEFAULT_RATE: u32 = 100;
/// Files at once unless `--concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// What `moe2seg backfill` was asked to do.
#[derive(Debug, Clone)]
pub struct Args {
    pub sources: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub rate: u32,
    pub concurrency: usize,
    pub checkpoint: Option<PathBuf>,
    pub rejects: Option<PathBuf>,
    pub dry_run: bool,
    pub batch_timeout: Duration,
}

/// A reason the run cannot start (exit 2, one line).
fn cannot_start(why: impl std::fmt::Display) -> ExitCode {
    eprintln!("moe2seg: {why}");
    ExitCode::from(exit::CANNOT_START)
}

/// Runs the backfill; the exit code of docs/backfill.md.
pub async fn backfill(args: Args) -> ExitCode {
    crate::telemetry::logging::init(std::io::stderr);
    let (forwarder, parts) = match prepare(&args).await {
        Ok(x) => x,
        Err(e) => return cannot_start(e),
    };
    let run = Run {
        forwarder: &forwarder,
        mapping: parts.mapping,
        window: parts.window,
        concurrency: args.concurrency,
        batch_budget: args.batch_timeout,
        deadline: None,
        checkpoint: parts.checkpoint,
        rejects: parts.rejects,
        cancel: Arc::new(Cancel::default()),
        read_bytes: Arc::default(),
        counts_sent: Default::default(),
        s3: Default::default(),
        aws: parts.aws,
    };
    let listed = match source::list(&args.sources, || run.s3()).await {
        Ok(l) => l,
        Err(e) => return cannot_start(e),
    };
    stop_on_ctrl_c(run.cancel.clone());
    // Files an earlier run settled are not counted in the progress.
    let todo: Vec<_> = listed
        .files
        .iter()
        .filter(|f| {
            run.checkpoint
                .as_ref()
                .is_none_or(|c| c.standing(&f.name, f.size) != Standing::Done)
        })
        .collect();
    let total_bytes = todo.iter().map(|f| f.size).sum();
    let progress = Arc::new(Progress::new(total_bytes, todo.len() as u64));
    let sent = run.counts_sent.clone();
    let ticker = progress.ticker(run.read_bytes.clone(), move || sent.load(Ordering::Relaxed));
    let summary = run
        .run(&listed, |file, end| {
            progress.update(
                run.read_bytes.load(Ordering::Relaxed),
                run.counts_sent.load(Ordering::Relaxed),
            );
            progress.file_ended(describe(&file.name, end));
        })
        .await;
    drop(ticker);
    progress.finish();
    if args.checkpoint.is_none() && summary.files_unfinished > 0 {
        eprintln!(
            "moe2seg: no --checkpoint: a rerun starts the unfinished files over (Segment deduplicates what it already took by messageId, for about a day)"
        );
    }
    eprintln!("{}", summary.human());
    super::print_json(&summary, false);
    ExitCode::from(summary.exit_code())
}

/// What a run is made of, besides the forwarder.
struct Parts {
    window: Window,
    mapping: Arc<MappingOptions>,
    checkpoint: Option<Checkpoint>,
    rejects: Rejects,
    aws: Option<aws_config::SdkConfig>,
}

/// Everything checked before anything is read or sent: the window, the settings (and their
/// mapping options), the checkpoint and the rejects file. The forwarder is paced at `--rate`.
async fn prepare(args: &Args) -> Result<(Forwarder<AnySource>, Parts), String> {
    check_limits(args)?;
    let window = window(args)?;
    let (app, aws) = app(args).await?;
    let open = Arc::new(app.mapping_options.clone().unwrap_or_default());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mapping = mapping_options(&app.forwarder, deadline, &open).await?;
    let scope = Scope::new(&window, &mapping);
    let checkpoint = args
        .checkpoint
        .as_deref()
        .map(|path| match args.dry_run {
            true => Checkpoint::read_only(path, &scope),
            false => Checkpoint::open(path, &scope),
        })
        .transpose()
        .map_err(|e| e.to_string())?;
    let rejects = match &args.rejects {
        Some(path) => Rejects::file(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => Rejects::stderr(),
    };
    let mut forwarder = app.forwarder;
    forwarder.pace(Arc::new(Pacer::per_second(args.rate)));
    let parts = Parts {
        window,
        mapping,
        checkpoint,
        rejects,
        aws,
    };
    Ok((forwarder, parts))
}

/// The line printed when a file ends, if it ended otherwise than done.
fn describe(name: &str, end: &FileEnd) -> Option<String> {
    match end {
        FileEnd::Done | FileEnd::Interrupted => None,
        FileEnd::Corrupt { line, why } => Some(format!(
            "moe2seg: {name}: read up to line {line}, the rest is not readable: {why}"
        )),
        FileEnd::Encrypted => Some(format!(
            "moe2seg: {name}: PGP-encrypted: not supported (decrypt it first)"
        )),
        FileEnd::Unfinished { why } => Some(format!(
            "moe2seg: {name}: not finished, a rerun resumes it: {why}"
        )),
    }
}

/// The most files at once (each holds a few batches in memory).
pub const MAX_CONCURRENCY: usize = 32;

/// `--rate` and `--concurrency` within their bounds.
fn check_limits(args: &Args) -> Result<(), String> {
    if args.rate == 0 {
        return Err("--rate must be at least 1 (requests per second)".into());
    }
    if !(1..=MAX_CONCURRENCY).contains(&args.concurrency) {
        return Err(format!("--concurrency must be 1 to {MAX_CONCURRENCY}"));
    }
    Ok(())
}

/// `--since` / `--until` as epoch milliseconds.
fn window(args: &Args) -> Result<Window, String> {
    let at = |flag: &str, v: &Option<String>| -> Result<Option<i64>, String> {
        v.as_deref()
            .map(|t| {
                time::parse_iso8601(t).ok_or_else(|| {
                    format!("{flag} {t:?} is not an RFC 3339 date-time (e.g. 2026-06-01T00:00:00Z)")
                })
            })
            .transpose()
    };
    let w = Window {
        since: at("--since", &args.since)?,
        until: at("--until", &args.until)?,
    };
    if let (Some(s), Some(u)) = (w.since, w.until)
        && s >= u
    {
        return Err("--since must be before --until".into());
    }
    Ok(w)
}

/// The app built from the environment as `moe2seg invoke` builds it, and the AWS
/// configuration for S3.
async fn app(args: &Args) -> Result<(App, Option<aws_config::SdkConfig>), String> {
    let env = super::cli_env(false)?;
    if matches!(env.source, SettingsSource::None) && !args.dry_run {
        return Err("backfill needs SECRET_ID (or SEGMENT_WRITE_KEY and SEGMENT_REGION); use --dry-run to only print".into());
    }
    let dry_run = if args.dry_run {
        DryRunWhen::Always
    } else {
        DryRunWhen::Never
    };
    let mut app = super::cli_app(&env, dry_run).await?;
    let needs_s3 = args.sources.iter().any(|s| s.starts_with("s3://"));
    let aws = match (app.aws.take(), needs_s3) {
        (Some(aws), _) => Some(aws),
        (None, true) => Some(crate::settings::config::aws_sdk_config().await),
        (None, false) => None,
    };
    Ok((app, aws))
}

/// Ctrl-C: no new file or line; batches in flight finish, the checkpoint is written and the
/// summary printed. A second Ctrl-C ends the process at once.
fn stop_on_ctrl_c(cancel: Arc<Cancel>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "moe2seg: stopping: in-flight batches finish, then the summary (Ctrl-C again to quit now)"
            );
            cancel.set();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
}

/// The default batch timeout of [`Args::batch_timeout`].
pub const DEFAULT_BATCH_TIMEOUT: Duration = file::DEFAULT_BATCH_BUDGET;
