//! The progress of a backfill on a terminal: files, events sent, events a second, and the
//! time left, from the bytes read against the listed sizes. Nothing is drawn when stderr is
//! not a terminal (the summary is printed either way).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar, and what it reads its figures from.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    files: u64,
    files_ended: AtomicU64,
}

impl Progress {
    /// A bar over `total_bytes` (the listed sizes) and `files` files; hidden unless stderr is
    /// a terminal.
    pub fn new(total_bytes: u64, files: u64) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(total_bytes.max(1)),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        let style = ProgressStyle::with_template("{bar:30} {percent:>3}% {msg} · ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        Progress {
            bar: bar.with_style(style),
            started: Instant::now(),
            files,
            files_ended: AtomicU64::new(0),
        }
    }

    /// A file ended (the line is printed above the bar).
    pub fn file_ended(&self, line: Option<String>) {
        self.files_ended.fetch_add(1, Ordering::Relaxed);
        if let Some(line) = line {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }

    /// Redraws from the counters: bytes read, messages sent.
    pub fn update(&self, read_bytes: u64, sent: u64) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        self.bar.set_position(read_bytes);
        self.bar.set_message(format!(
            "files {}/{} · {} events sent · {:.0} events/s",
            self.files_ended.load(Ordering::Relaxed),
            self.files,
            sent,
            sent as f64 / secs
        ));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Redraws every quarter second until `stop` is dropped (a task on the runtime).
    pub fn ticker(
        self: &Arc<Self>,
        read: Arc<AtomicU64>,
        sent: impl Fn() -> u64 + Send + 'static,
    ) -> Ticker {
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(250));
            loop {
                every.tick().await;
                me.update(read.load(Ordering::Relaxed), sent());
            }
        });
        Ticker(task)
    }
}

/// Stops the redrawing when dropped.
pub struct Ticker(tokio::task::JoinHandle<()>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}
