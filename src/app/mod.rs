//! Wiring at the edge: builds the app from the environment with real AWS and HTTP clients
//! (one AWS configuration for Secrets Manager and SQS, one Segment client). Used by the
//! Lambda binaries and by `moe2seg`, so all run the same code.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backfill::lambda::BackfillFunction;
use crate::delivery::budget::Budget;
use crate::delivery::forward::{Forwarder, Mode};
use crate::delivery::outcome::Queues;
use crate::delivery::pacer::Pacer;
use crate::delivery::park::SqsQueue;
use crate::delivery::redeliver::Redelivery;
use crate::delivery::segment::{DryRun, RetryPolicy, SegmentClient};
use crate::mapping::options::MappingOptions;
use crate::settings::config::{
    ConfigError, DEFAULT_BACKFILL_RATE, DEFAULT_REDELIVERY_MAX_AGE_HOURS, Env, Region,
    SettingsSource,
};
use crate::settings::secret::{
    AwsSecretSource, FieldsSource, SecretSource, SettingsCache, SettingsError,
};
use crate::telemetry::metrics::MetricsSink;
use crate::webhook::Webhook;

/// Secrets Manager or environment variables.
pub enum AnySource {
    Aws(AwsSecretSource),
    Env(FieldsSource),
}

impl SecretSource for AnySource {
    async fn fetch(&self) -> Result<String, SettingsError> {
        match self {
            AnySource::Aws(s) => s.fetch().await,
            AnySource::Env(s) => s.fetch().await,
        }
    }
}

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

/// When the caller wants a dry run (print what would be sent, park nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRunWhen {
    /// Never: without settings the function is unconfigured (the Lambda, `moe2seg replay`).
    Never,
    /// When there are no settings at all (`moe2seg invoke`).
    NoSettings,
    /// Always, even with settings (`--dry-run`).
    Always,
}

/// How the caller wants the handler built.
pub struct Options {
    pub dry_run: DryRunWhen,
    pub metrics: MetricsSink,
    /// Where a dry run prints its plan.
    pub dry_run_output: fn() -> Box<dyn Write + Send>,
}

/// What a function (or `moe2seg`) runs with, built once from the environment: the one
/// [`Forwarder`] (settings, Segment client, queues) and what the handlers are configured
/// with. [`App::webhook`] and [`App::redelivery`] make the handlers.
pub struct App {
    pub forwarder: Forwarder<AnySource>,
    pub metrics: MetricsSink,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `REDELIVERY_MAX_AGE_HOURS`.
    pub redelivery_max_age: Duration,
    /// `MAPPING_OPTIONS` (a run without `SECRET_ID`).
    pub mapping_options: Option<MappingOptions>,
    /// `BACKFILL_RATE`.
    pub backfill_rate: u32,
    /// The AWS configuration, when one was loaded (a secret, queues).
    pub aws: Option<aws_config::SdkConfig>,
}

impl App {
    /// The webhook function's handler.
    pub fn webhook(self) -> Webhook<AnySource> {
        let mut webhook = Webhook::new(self.forwarder, self.max_body_bytes);
        webhook.metrics = self.metrics;
        if let Some(options) = self.mapping_options {
            webhook.open_mapping = Arc::new(options);
        }
        webhook
    }

    /// The backfill function's handler: requests to Segment at most `BACKFILL_RATE` a
    /// second; S3 read with the process's AWS configuration.
    pub async fn backfill(mut self) -> BackfillFunction<AnySource> {
        self.forwarder
            .pace(Arc::new(Pacer::per_second(self.backfill_rate)));
        let aws = match self.aws {
            Some(aws) => aws,
            None => crate::settings::config::aws_sdk_config().await,
        };
        BackfillFunction {
            forwarder: self.forwarder,
            budget: Budget::default(),
            aws: Some(aws),
            open_mapping: Arc::new(self.mapping_options.unwrap_or_default()),
        }
    }

    /// The redelivery function's handler.
    pub fn redelivery(self) -> Redelivery<AnySource> {
        let mut redelivery = Redelivery::new(self.forwarder);
        redelivery.metrics = self.metrics;
        redelivery.max_age = self.redelivery_max_age;
        redelivery
    }
}

/// Lambda Init, the same for every function: JSON logs on stdout, the handler built from the
/// environment, then the secret read and the Segment connection warmed. A misconfigured
/// function keeps running and answers 500 with the reason (fail closed), rather than crashing
/// at every cold start with nothing useful in the response.
pub async fn init_function() -> App {
    crate::telemetry::logging::init_stdout();
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    let opts = Options {
        dry_run: DryRunWhen::Never,
        metrics: MetricsSink::Stdout { function_name },
        dry_run_output: || Box::new(std::io::sink()),
    };
    let metrics = opts.metrics.clone();
    let built = match Env::from_env() {
        Ok(env) => build(&env, opts).await,
        Err(e) => Err(e.into()),
    };
    let app = built.unwrap_or_else(|e| {
        tracing::error!(error = %e, "startup configuration invalid; every request will get 500");
        unconfigured(e.to_string(), metrics)
    });
    app.warm_up().await;
    app
}

/// Builds the app from the environment.
pub async fn build(env: &Env, opts: Options) -> Result<App, StartupError> {
    let needs_aws = matches!(env.source, SettingsSource::SecretsManager { .. })
        || env.dead_letter_queue_url.is_some()
        || env.refused_queue_url.is_some();
    // One AWS configuration (region, credentials, endpoints, timeouts) for every client.
    let aws = match needs_aws {
        true => Some(crate::settings::config::aws_sdk_config().await),
        false => None,
    };
    let settings = settings_cache(env, aws.as_ref());
    let mode = match (settings, opts.dry_run) {
        (settings, DryRunWhen::Always) | (settings @ None, DryRunWhen::NoSettings) => {
            Mode::DryRun {
                settings,
                region: std::env::var("SEGMENT_REGION")
                    .ok()
                    .and_then(|r| Region::parse(&r))
                    .unwrap_or(Region::Us),
                printer: DryRun::new((opts.dry_run_output)()),
            }
        }
        (None, _) => Mode::Unconfigured(StartupError::NoSettings.to_string()),
        (Some(settings), _) => Mode::Live {
            settings,
            segment: SegmentClient::new(RetryPolicy::default())
                .map_err(|e| StartupError::Http(crate::delivery::segment::error_chain(&e)))?,
            queues: queues(env, aws.as_ref()),
        },
    };
    warn_about(env);
    Ok(App {
        forwarder: Forwarder {
            mode,
            endpoints: env.endpoints.clone(),
        },
        metrics: opts.metrics,
        max_body_bytes: env.max_body_bytes,
        redelivery_max_age: env.redelivery_max_age,
        mapping_options: env.mapping_options.clone(),
        backfill_rate: env.backfill_rate,
        aws,
    })
}

/// The customer's settings: the secret in Secrets Manager, or the environment's fields.
fn settings_cache(
    env: &Env,
    aws: Option<&aws_config::SdkConfig>,
) -> Option<SettingsCache<AnySource>> {
    match (&env.source, aws) {
        (SettingsSource::SecretsManager { secret_id, ttl }, Some(aws)) => Some(SettingsCache::new(
            AnySource::Aws(AwsSecretSource::new(
                aws_sdk_secretsmanager::Client::new(aws),
                secret_id.clone(),
            )),
            *ttl,
        )),
        (SettingsSource::Env(fields), _) => Some(SettingsCache::new(
            AnySource::Env(FieldsSource((**fields).clone())),
            Duration::MAX,
        )),
        _ => None,
    }
}

/// The parked and refused queues the environment names, on one SQS client.
fn queues(env: &Env, aws: Option<&aws_config::SdkConfig>) -> Queues {
    let sqs = aws.map(aws_sdk_sqs::Client::new);
    let queue = |url: &Option<String>| {
        url.clone()
            .zip(sqs.clone())
            .map(|(url, client)| SqsQueue::new(client, url))
    };
    Queues {
        parked: queue(&env.dead_letter_queue_url),
        refused: queue(&env.refused_queue_url),
    }
}

/// Settings that are valid but probably not what was meant.
fn warn_about(env: &Env) {
    if env.mapping_options.is_some() && matches!(env.source, SettingsSource::SecretsManager { .. })
    {
        tracing::warn!(
            "MAPPING_OPTIONS is ignored: with SECRET_ID the secret's `mapping` field holds the mapping options"
        );
    }
    if env.dead_letter_queue_url.is_some() && env.refused_queue_url.is_none() {
        tracing::warn!(
            "DEAD_LETTER_QUEUE_URL is set without REFUSED_QUEUE_URL: refusals are parked, and redelivery keeps refused or expired events in the parked queue until its retention deletes them"
        );
    }
}

/// An app whose handlers answer every request with 500 and `why` (a misconfigured Lambda
/// keeps running and says what is wrong, rather than crashing at every cold start).
pub fn unconfigured(why: String, metrics: MetricsSink) -> App {
    App {
        forwarder: Forwarder {
            mode: Mode::Unconfigured(why),
            endpoints: crate::settings::config::Endpoints::default(),
        },
        metrics,
        max_body_bytes: crate::settings::config::DEFAULT_MAX_BODY_BYTES,
        redelivery_max_age: Duration::from_secs(DEFAULT_REDELIVERY_MAX_AGE_HOURS * 3600),
        mapping_options: None,
        backfill_rate: DEFAULT_BACKFILL_RATE,
        aws: None,
    }
}

impl App {
    /// Lambda Init: read the secret and open the connection to the customer's Segment host,
    /// so the first invocation pays neither. Failures are logged; requests retry them.
    pub async fn warm_up(&self) {
        let started = Instant::now();
        let region = match self.forwarder.prefetch().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading the secret during init failed; requests will retry");
                return;
            }
        };
        let secret_ms = started.elapsed().as_millis() as u64;
        if let (Some(region), Mode::Live { segment, .. }) = (region, &self.forwarder.mode) {
            let base = self.forwarder.endpoints.base(region);
            let res = segment.warm(base, Duration::from_secs(2)).await;
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
