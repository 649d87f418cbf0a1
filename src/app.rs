//! Wiring at the edge: builds the handler from the environment with real AWS and HTTP
//! clients. Used by the Lambda binary and by `moe2seg invoke`, so both run the same code.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::config::{ConfigError, Env, Region, SettingsSource};
use crate::deliver::{Deliver, DeliveryReport, DryRun, RetryPolicy, SegmentClient, Target};
use crate::handler::{Handler, SettingsMode};
use crate::map::Mapped;
use crate::metrics::MetricsSink;
use crate::park::SqsQueue;
use crate::secrets::{AwsSecretSource, SecretSource, SettingsCache, SettingsError, StaticSource};

/// Secrets Manager or environment variables.
pub enum AnySource {
    Aws(AwsSecretSource),
    Static(StaticSource),
}

impl SecretSource for AnySource {
    async fn fetch(&self) -> Result<String, SettingsError> {
        match self {
            AnySource::Aws(s) => s.fetch().await,
            AnySource::Static(s) => s.fetch().await,
        }
    }
}

/// Segment, or a printout of what would be sent.
pub enum AnyDeliver {
    Segment(SegmentClient),
    Dry(DryRun),
}

impl Deliver for AnyDeliver {
    async fn deliver(
        &self,
        target: Target<'_>,
        messages: &[Mapped],
        deadline: Instant,
    ) -> DeliveryReport {
        match self {
            AnyDeliver::Segment(c) => c.deliver(target, messages, deadline).await,
            AnyDeliver::Dry(d) => d.deliver(target, messages, deadline).await,
        }
    }
}

pub type App = Handler<AnySource, AnyDeliver, SqsQueue>;

/// Why the process cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "no configuration: set SECRET_ID (a Secrets Manager secret name or ARN), or SEGMENT_WRITE_KEY, SEGMENT_REGION and WEBHOOK_* for a run without AWS"
    )]
    NoSettings,
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// How the caller wants the handler built.
pub struct Options {
    /// With no settings at all, run dry (moe2seg invoke) instead of failing closed (Lambda).
    pub dry_run_without_settings: bool,
    /// Never send to Segment, even with settings (`moe2seg invoke --dry-run`).
    pub force_dry_run: bool,
    pub metrics: MetricsSink,
    /// Where a dry run prints its plan.
    pub dry_run_output: fn() -> Box<dyn Write + Send>,
}

/// Builds the handler from the environment.
pub async fn build(env: &Env, opts: Options) -> Result<App, StartupError> {
    let settings = match &env.source {
        SettingsSource::SecretsManager { secret_id, ttl } => {
            SettingsMode::Secret(SettingsCache::new(
                AnySource::Aws(AwsSecretSource::from_env(secret_id.clone()).await),
                *ttl,
            ))
        }
        SettingsSource::Env(settings) => SettingsMode::Secret(SettingsCache::new(
            AnySource::Static(StaticSource((**settings).clone())),
            Duration::MAX,
        )),
        SettingsSource::None if opts.dry_run_without_settings => SettingsMode::DryRun {
            region: std::env::var("SEGMENT_REGION")
                .ok()
                .and_then(|r| Region::parse(&r))
                .unwrap_or(Region::Us),
        },
        SettingsSource::None => SettingsMode::Unconfigured(StartupError::NoSettings.to_string()),
    };
    let dry = opts.force_dry_run || !matches!(settings, SettingsMode::Secret(_));
    let deliver = if dry {
        AnyDeliver::Dry(DryRun::new((opts.dry_run_output)()))
    } else {
        AnyDeliver::Segment(
            SegmentClient::new(RetryPolicy::default())
                .map_err(|e| StartupError::Http(e.to_string()))?,
        )
    };
    let mut handler = Handler::new(settings, deliver, env.endpoints.clone(), env.max_body_bytes);
    handler.metrics = opts.metrics;
    let park = match &env.dead_letter_queue_url {
        Some(url) if !dry => Some(SqsQueue::from_env(url.clone()).await),
        _ => None,
    };
    Ok(handler.with_park(park))
}

/// A handler that answers every request with 500 and `why` (a misconfigured Lambda keeps
/// running and says what is wrong, rather than crashing at every cold start).
pub fn unconfigured(why: String) -> App {
    Handler::new(
        SettingsMode::Unconfigured(why),
        AnyDeliver::Dry(DryRun::new(Box::new(std::io::sink()))),
        crate::config::Endpoints::default(),
        crate::config::DEFAULT_MAX_BODY_BYTES,
    )
    .with_park(None)
}

impl App {
    /// Lambda Init: read the secret and open the connection to the customer's Segment host,
    /// so the first invocation pays neither. Failures are logged; requests retry them.
    pub async fn warm_up(&self) {
        let started = Instant::now();
        let region = match self.prefetch().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading the secret during init failed; requests will retry");
                return;
            }
        };
        let secret_ms = started.elapsed().as_millis() as u64;
        if let (Some(region), AnyDeliver::Segment(client)) = (region, &self.deliver) {
            let base = self.endpoints.base(region);
            let res = client.warm(base, Duration::from_secs(2)).await;
            tracing::info!(
                secret_ms,
                warm_ms = started.elapsed().as_millis() as u64 - secret_ms,
                region = region.as_str(),
                warmed = res.is_ok(),
                "init complete"
            );
        }
    }
}
