//! Reading the customer's settings from Secrets Manager, with a TTL cache.
//!
//! The cache is filled during Lambda Init, re-read after `SECRET_TTL_SECONDS`, and re-read on
//! demand when Segment answers 401 (write key rotated). A failed re-read keeps serving the
//! last good settings (logged), so a Secrets Manager hiccup does not stop delivery; with no
//! settings at all the handler answers 503 (unreadable) or 500 (invalid).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::mapping::options::MappingOptions;
use crate::settings::config::{ConfigError, SecretFields, Settings};

/// Why settings are not available.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// The secret could not be read (network, permissions, throttling): HTTP 503.
    #[error("secret unavailable: {0}")]
    Unavailable(String),
    /// The secret was read but is not usable: HTTP 500, fail closed.
    #[error("secret invalid: {0}")]
    Invalid(#[from] ConfigError),
}

/// Something that yields the secret's `SecretString`.
pub trait SecretSource: Send + Sync + 'static {
    fn fetch(&self) -> impl Future<Output = Result<String, SettingsError>> + Send;
}

/// AWS Secrets Manager `GetSecretValue` (honours `AWS_ENDPOINT_URL_SECRETS_MANAGER`).
#[derive(Debug, Clone)]
pub struct AwsSecretSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl AwsSecretSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        AwsSecretSource {
            client,
            secret_id: secret_id.into(),
        }
    }

    /// Builds a client from the standard AWS environment (region, credentials, endpoint).
    pub async fn from_env(secret_id: impl Into<String>) -> Self {
        // Bounded calls: a stalled Secrets Manager must not hold an invocation (the handler
        // also gives up at its deadline).
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(crate::settings::config::aws_timeouts())
            .load()
            .await;
        AwsSecretSource::new(aws_sdk_secretsmanager::Client::new(&conf), secret_id)
    }
}

impl SecretSource for AwsSecretSource {
    async fn fetch(&self) -> Result<String, SettingsError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                let why = crate::settings::config::sdk_error_text(&e);
                SettingsError::Unavailable(format!("GetSecretValue {}: {why}", self.secret_id))
            })?;
        out.secret_string.ok_or_else(|| {
            SettingsError::Invalid(ConfigError::NotJson(
                "the secret has no SecretString (binary secrets are not supported)".into(),
            ))
        })
    }
}

/// A fixed secret (built from environment variables for local runs).
#[derive(Debug, Clone)]
pub struct StaticSource(pub Result<Settings, ConfigError>);

/// Settings with a time-to-live.
pub struct SettingsCache<S> {
    source: S,
    ttl: Duration,
    /// The settings and when they expire (`None`: never, e.g. environment settings).
    state: Mutex<Option<(Arc<Settings>, Option<Instant>)>>,
    /// The last good mapping options read: they keep serving while the secret's options are
    /// invalid, even across reads of a secret that was invalid or unreadable as a whole.
    last_good_options: std::sync::Mutex<Option<Arc<MappingOptions>>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl<S: SecretSource> SettingsCache<S> {
    pub fn new(source: S, ttl: Duration) -> Self {
        SettingsCache {
            source,
            ttl,
            state: Mutex::new(None),
            last_good_options: Default::default(),
            fetches: Default::default(),
        }
    }

    /// How many times the source was asked (for tests and the one-call-per-TTL promise).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Current settings, re-read when older than the TTL.
    pub async fn get(&self) -> Result<Arc<Settings>, SettingsError> {
        let mut state = self.state.lock().await;
        if let Some((settings, expires)) = state.as_ref()
            && expires.is_none_or(|at| Instant::now() < at)
        {
            return Ok(settings.clone());
        }
        self.load(&mut state).await
    }

    /// Re-reads now (after Segment answered 401). Returns the new settings.
    pub async fn refresh(&self) -> Result<Arc<Settings>, SettingsError> {
        let mut state = self.state.lock().await;
        self.load(&mut state).await
    }

    async fn load(
        &self,
        state: &mut Option<(Arc<Settings>, Option<Instant>)>,
    ) -> Result<Arc<Settings>, SettingsError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched = self
            .source
            .fetch()
            .await
            .and_then(|text| Settings::from_secret_json(&text).map_err(SettingsError::from));
        match fetched {
            Ok(mut settings) => {
                // Invalid mapping options never replace good ones.
                if let Ok(mut last_good) = self.last_good_options.lock() {
                    settings.mapping = settings.mapping.keeping(last_good.as_ref());
                    last_good.clone_from(&settings.mapping.options);
                }
                if let Some(e) = &settings.mapping.error {
                    let serving = match settings.mapping.options {
                        Some(_) => "the last good options",
                        None => "none: webhook requests are answered 500 until they are fixed",
                    };
                    tracing::error!(error = %e, serving, "the secret's mapping options are invalid");
                }
                let settings = Arc::new(settings);
                *state = Some((settings.clone(), Instant::now().checked_add(self.ttl)));
                Ok(settings)
            }
            Err(SettingsError::Unavailable(msg)) if state.is_some() => {
                tracing::warn!(error = %msg, "secret re-read failed; keeping the last good settings");
                match state.as_mut() {
                    Some((settings, expires)) => {
                        // Try again on the next request rather than after a full TTL.
                        *expires = Some(Instant::now());
                        Ok(settings.clone())
                    }
                    None => Err(SettingsError::Unavailable(msg)),
                }
            }
            Err(e) => {
                *state = None;
                Err(e)
            }
        }
    }
}

impl SecretSource for StaticSource {
    async fn fetch(&self) -> Result<String, SettingsError> {
        // Round-trip through JSON so these settings follow exactly the secret's rules.
        match &self.0 {
            Ok(s) => Ok(s.to_fields().to_json()),
            Err(e) => Err(SettingsError::Invalid(e.clone())),
        }
    }
}

/// A secret's fields held in memory (local runs: built from environment variables), read
/// and checked as the secret's text is.
#[derive(Debug, Clone)]
pub struct FieldsSource(pub SecretFields);

impl SecretSource for FieldsSource {
    async fn fetch(&self) -> Result<String, SettingsError> {
        Ok(self.0.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Scripted {
        answers: std::sync::Mutex<Vec<Result<String, SettingsError>>>,
        calls: AtomicUsize,
    }

    impl SecretSource for Arc<Scripted> {
        async fn fetch(&self) -> Result<String, SettingsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut a = self.answers.lock().unwrap();
            if a.len() > 1 {
                a.remove(0)
            } else {
                a[0].clone()
            }
        }
    }

    fn secret(key: &str) -> Result<String, SettingsError> {
        Ok(format!(
            r#"{{"segment_write_key":"{key}","segment_region":"us","webhook_token":"t"}}"#
        ))
    }

    fn scripted(answers: Vec<Result<String, SettingsError>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            answers: std::sync::Mutex::new(answers),
            calls: AtomicUsize::new(0),
        })
    }

    #[tokio::test]
    async fn one_fetch_per_ttl() {
        let src = scripted(vec![secret("k1")]);
        let cache = SettingsCache::new(src.clone(), Duration::from_secs(300));
        for _ in 0..5 {
            assert_eq!(cache.get().await.unwrap().write_key.expose(), "k1");
        }
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn expired_entries_are_reread_and_refresh_forces() {
        let src = scripted(vec![secret("k1"), secret("k2"), secret("k3")]);
        let cache = SettingsCache::new(src.clone(), Duration::ZERO);
        assert_eq!(cache.get().await.unwrap().write_key.expose(), "k1");
        assert_eq!(cache.get().await.unwrap().write_key.expose(), "k2");
        let cache = SettingsCache::new(src.clone(), Duration::from_secs(300));
        assert_eq!(cache.get().await.unwrap().write_key.expose(), "k3");
        assert_eq!(cache.refresh().await.unwrap().write_key.expose(), "k3");
        assert_eq!(src.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn unavailable_keeps_last_good_but_invalid_fails_closed() {
        let down = Err(SettingsError::Unavailable("down".into()));
        let src = scripted(vec![secret("k1"), down.clone(), Ok("{}".into())]);
        let cache = SettingsCache::new(src, Duration::ZERO);
        assert_eq!(cache.get().await.unwrap().write_key.expose(), "k1");
        assert_eq!(cache.get().await.unwrap().write_key.expose(), "k1");
        assert!(matches!(cache.get().await, Err(SettingsError::Invalid(_))));
        let cache = SettingsCache::new(scripted(vec![down]), Duration::ZERO);
        assert!(matches!(
            cache.get().await,
            Err(SettingsError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn last_good_options_survive_invalid_and_unreadable_secrets() {
        let with = |mapping: &str, key: bool| {
            let key = if key {
                r#""segment_write_key":"k","#
            } else {
                ""
            };
            Ok(format!(
                r#"{{{key}"segment_region":"us","webhook_token":"t","mapping":{mapping}}}"#
            ))
        };
        let src = scripted(vec![
            with(r#"{"skip_events":["Email Opened"]}"#, true),
            // An edit that briefly loses the write key: the secret is invalid as a whole.
            with("{}", false),
            Err(SettingsError::Unavailable("down".into())),
            // Fixed, but with a typo in the options.
            with(r#"{"skip_events":"Email Opened"}"#, true),
            // Fixed for good.
            with(r#"{"identify":"per_user"}"#, true),
        ]);
        let cache = SettingsCache::new(src, Duration::ZERO);
        let good = cache.get().await.unwrap().mapping.options.clone().unwrap();
        assert!(matches!(cache.get().await, Err(SettingsError::Invalid(_))));
        assert!(matches!(
            cache.get().await,
            Err(SettingsError::Unavailable(_))
        ));
        let s = cache.get().await.unwrap();
        assert!(s.mapping.error.is_some());
        assert_eq!(
            s.mapping.options.as_ref(),
            Some(&good),
            "the last good options serve"
        );
        let s = cache.get().await.unwrap();
        assert!(s.mapping.error.is_none());
        assert_ne!(s.mapping.options.as_ref(), Some(&good));
    }
}
