//! Configuration: the customer's secret (Segment write key, region, webhook credentials,
//! OAuth client) and the process environment.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::mapping::options::{Mapping, MappingOptions};

/// US Segment host.
pub const SEGMENT_US: &str = "https://api.segment.io";
/// EU Segment host.
pub const SEGMENT_EU: &str = "https://events.eu1.segmentapis.com";
/// Default request body limit (Lambda's synchronous payload limit is 6 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// Highest `MAX_BODY_BYTES` accepted: nothing larger reaches a Lambda function, and the
/// memory bounds (docs/reliability.md, "Limits") are measured at this size.
pub const MAX_MAX_BODY_BYTES: usize = DEFAULT_MAX_BODY_BYTES;
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(300);
/// Default `REDELIVERY_MAX_AGE_HOURS`: 7 days.
pub const DEFAULT_REDELIVERY_MAX_AGE_HOURS: u64 = 7 * 24;
/// Requests per second one backfill function sends Segment unless `BACKFILL_RATE` says
/// otherwise (the state machine runs several at once).
pub const DEFAULT_BACKFILL_RATE: u32 = 20;
/// Highest `REDELIVERY_MAX_AGE_HOURS`: 13 days, a day before the parked queue's 14-day
/// retention would delete the message.
pub const MAX_REDELIVERY_MAX_AGE_HOURS: u64 = 13 * 24;

/// Timeouts of the AWS clients (Secrets Manager, SQS): 2 s to connect, 5 s per attempt, 12 s
/// per call with retries.
pub fn aws_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(12))
        .build()
}

/// The AWS configuration of the process (region, credentials, endpoints such as
/// `AWS_ENDPOINT_URL_SQS`), with [`aws_timeouts`]: loaded once, shared by the Secrets Manager
/// and SQS clients.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(aws_timeouts())
        .load()
        .await
}

/// An AWS SDK error as one line: a service error's code and message (its full context would
/// embed the raw HTTP response), or a transport error with its cause chain.
pub fn sdk_error_text<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("ServiceError"),
            se.message().unwrap_or("")
        ),
        None => aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
    }
}

/// A credential. Its `Debug` never shows the value and it has no `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the few places that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The Segment workspace region. Segment accepts a wrong region with 200 and drops the data,
/// so the region is explicit and required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Us,
    Eu,
}

impl Region {
    pub fn parse(s: &str) -> Option<Region> {
        match s.trim().to_ascii_lowercase().as_str() {
            "us" => Some(Region::Us),
            "eu" => Some(Region::Eu),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
        }
    }
}

/// Configuration problems: the function fails closed (HTTP 500, nothing forwarded).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("secret is not a JSON object: {0}")]
    NotJson(String),
    #[error("secret field `{0}` is missing or empty")]
    Missing(&'static str),
    #[error("secret field `segment_region` must be \"us\" or \"eu\"")]
    BadRegion,
    #[error(
        "secret has no webhook credentials: set `webhook_username` and `webhook_password`, `webhook_token`, and/or `oauth_client_id` and `oauth_client_secret`"
    )]
    NoWebhookCredentials,
    #[error("secret has `{0}` without `{1}`")]
    HalfBasicPair(&'static str, &'static str),
    #[error("secret has `{0}` without `{1}`")]
    HalfOAuthClient(&'static str, &'static str),
    #[error("environment variable {0} is invalid: {1}")]
    BadEnv(&'static str, String),
}

/// Inbound credentials MoEngage must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAuth {
    pub basic: Option<(Secret, Secret)>,
    pub token: Option<Secret>,
    /// OAuth 2.0 client credentials: MoEngage exchanges them at `/oauth/token` for bearer
    /// tokens the webhook accepts (its OAuth token route).
    pub oauth: Option<OAuthClient>,
}

/// An OAuth 2.0 client (`oauth_client_id`, `oauth_client_secret`), trimmed like the other
/// credentials. Changing either revokes every token issued to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: Secret,
    pub secret: Secret,
}

/// The customer's settings, read from one Secrets Manager secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub write_key: Secret,
    pub region: Region,
    pub webhook: WebhookAuth,
    /// The mapping options in force, and whether the latest ones read are invalid.
    pub mapping: Mapping,
}

/// The secret's fields as stored (its JSON object), before they are checked: what
/// [`Settings::from_fields`] validates. Local runs build it from environment variables
/// ([`SecretFields::from_env`]) so that they follow exactly the secret's rules. Its `Debug`
/// shows which fields are set, never their values.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SecretFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_write_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_client_secret: Option<String>,
    /// Mapping options ([`crate::mapping::options`]), checked apart from the rest: invalid options
    /// never make the settings unusable ([`Mapping`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<serde_json::Value>,
}

impl fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "[set]");
        f.debug_struct("SecretFields")
            .field("segment_write_key", &set(&self.segment_write_key))
            .field("segment_region", &self.segment_region)
            .field("webhook_username", &set(&self.webhook_username))
            .field("webhook_password", &set(&self.webhook_password))
            .field("webhook_token", &set(&self.webhook_token))
            .field("oauth_client_id", &set(&self.oauth_client_id))
            .field("oauth_client_secret", &set(&self.oauth_client_secret))
            .field("mapping", &self.mapping)
            .finish()
    }
}

impl SecretFields {
    /// `SEGMENT_WRITE_KEY`, `SEGMENT_REGION`, `WEBHOOK_USERNAME`, `WEBHOOK_PASSWORD`,
    /// `WEBHOOK_TOKEN`, `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET` (local runs without AWS).
    pub fn from_env() -> SecretFields {
        SecretFields {
            segment_write_key: env_var("SEGMENT_WRITE_KEY"),
            segment_region: env_var("SEGMENT_REGION"),
            webhook_username: env_var("WEBHOOK_USERNAME"),
            webhook_password: env_var("WEBHOOK_PASSWORD"),
            webhook_token: env_var("WEBHOOK_TOKEN"),
            oauth_client_id: env_var("OAUTH_CLIENT_ID"),
            oauth_client_secret: env_var("OAUTH_CLIENT_SECRET"),
            mapping: None,
        }
    }

    /// The secret's JSON text.
    pub fn to_json(&self) -> String {
        // Strings only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

impl Settings {
    /// Parses the secret's `SecretString`. Error messages name fields, never values.
    pub fn from_secret_json(text: &str) -> Result<Settings, ConfigError> {
        let raw: SecretFields = serde_json::from_str(text).map_err(|e| {
            // serde's message can quote input; keep only its category and position.
            ConfigError::NotJson(format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        Settings::from_fields(raw)
    }

    /// The fields these settings were read from (for a secret built in memory: tests, local
    /// runs).
    pub fn to_fields(&self) -> SecretFields {
        let basic = self.webhook.basic.as_ref();
        let oauth = self.webhook.oauth.as_ref();
        SecretFields {
            segment_write_key: Some(self.write_key.expose().to_owned()),
            segment_region: Some(self.region.as_str().to_owned()),
            webhook_username: basic.map(|(u, _)| u.expose().to_owned()),
            webhook_password: basic.map(|(_, p)| p.expose().to_owned()),
            webhook_token: self.webhook.token.as_ref().map(|t| t.expose().to_owned()),
            oauth_client_id: oauth.map(|c| c.id.expose().to_owned()),
            oauth_client_secret: oauth.map(|c| c.secret.expose().to_owned()),
            mapping: self
                .mapping
                .options
                .as_ref()
                .filter(|o| ***o != MappingOptions::default())
                .map(|o| o.to_value()),
        }
    }

    /// Settings from the main fields (tests).
    pub fn from_parts(
        write_key: Option<String>,
        region: Option<String>,
        username: Option<String>,
        password: Option<String>,
        token: Option<String>,
    ) -> Result<Settings, ConfigError> {
        Settings::from_fields(SecretFields {
            segment_write_key: write_key,
            segment_region: region,
            webhook_username: username,
            webhook_password: password,
            webhook_token: token,
            ..SecretFields::default()
        })
    }

    /// Checks the secret's fields.
    pub fn from_fields(f: SecretFields) -> Result<Settings, ConfigError> {
        let SecretFields {
            segment_write_key: write_key,
            segment_region: region,
            webhook_username: username,
            webhook_password: password,
            webhook_token: token,
            oauth_client_id,
            oauth_client_secret,
            mapping,
        } = f;
        let write_key = non_empty(write_key).ok_or(ConfigError::Missing("segment_write_key"))?;
        let region = non_empty(region).ok_or(ConfigError::Missing("segment_region"))?;
        let region = Region::parse(&region).ok_or(ConfigError::BadRegion)?;
        let basic = pair(
            (username, "webhook_username"),
            (password, "webhook_password"),
            ConfigError::HalfBasicPair,
        )?;
        let token = non_empty(token).map(trimmed);
        let oauth = pair(
            (oauth_client_id, "oauth_client_id"),
            (oauth_client_secret, "oauth_client_secret"),
            ConfigError::HalfOAuthClient,
        )?
        .map(|(id, secret)| OAuthClient { id, secret });
        if basic.is_none() && token.is_none() && oauth.is_none() {
            return Err(ConfigError::NoWebhookCredentials);
        }
        Ok(Settings {
            write_key: Secret(write_key.trim().to_owned()),
            region,
            webhook: WebhookAuth {
                basic,
                token,
                oauth,
            },
            mapping: Mapping::read(mapping.as_ref()),
        })
    }
}

/// A stored credential, trimmed: it is compared trimmed, as presented ones are (a value
/// pasted with a stray space or newline must still match).
fn trimmed(v: String) -> Secret {
    Secret(v.trim_ascii().to_owned())
}

/// Two fields that go together (a Basic pair, an OAuth client): both, or neither; one alone
/// is `half(given, missing)`.
fn pair(
    (a, a_name): (Option<String>, &'static str),
    (b, b_name): (Option<String>, &'static str),
    half: fn(&'static str, &'static str) -> ConfigError,
) -> Result<Option<(Secret, Secret)>, ConfigError> {
    match (non_empty(a), non_empty(b)) {
        (Some(a), Some(b)) => Ok(Some((trimmed(a), trimmed(b)))),
        (Some(_), None) => Err(half(a_name, b_name)),
        (None, Some(_)) => Err(half(b_name, a_name)),
        (None, None) => Ok(None),
    }
}

/// Segment base URLs per region, overridable for tests and proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub us: String,
    pub eu: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            us: SEGMENT_US.to_owned(),
            eu: SEGMENT_EU.to_owned(),
        }
    }
}

impl Endpoints {
    /// Reads `SEGMENT_ENDPOINT_US` / `SEGMENT_ENDPOINT_EU`.
    pub fn from_env() -> Endpoints {
        let get = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().trim_end_matches('/').to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_owned())
        };
        Endpoints {
            us: get("SEGMENT_ENDPOINT_US", SEGMENT_US),
            eu: get("SEGMENT_ENDPOINT_EU", SEGMENT_EU),
        }
    }

    pub fn base(&self, region: Region) -> &str {
        match region {
            Region::Us => &self.us,
            Region::Eu => &self.eu,
        }
    }
}

/// Where the settings come from, decided by the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsSource {
    /// `SECRET_ID`: a Secrets Manager secret name or ARN.
    SecretsManager { secret_id: String, ttl: Duration },
    /// `SEGMENT_WRITE_KEY`, `SEGMENT_REGION`, `WEBHOOK_*`, `OAUTH_*` (local runs, no AWS): the
    /// secret's fields, checked as the secret's are when the settings are read.
    Env(Box<SecretFields>),
    /// Neither: `moe2seg invoke` runs dry.
    None,
}

/// Runtime knobs from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub source: SettingsSource,
    pub endpoints: Endpoints,
    pub max_body_bytes: usize,
    /// `DEAD_LETTER_QUEUE_URL`: the parked queue (transient failures, redelivered).
    pub dead_letter_queue_url: Option<String>,
    /// `REFUSED_QUEUE_URL`: the refused queue (kept for a person).
    pub refused_queue_url: Option<String>,
    /// `REDELIVERY_MAX_AGE_HOURS`: how long a parked event is redelivered before it is set
    /// aside in the refused queue (default 7 days, at most 13: the parked queue keeps
    /// messages 14 days).
    pub redelivery_max_age: Duration,
    /// `MAPPING_OPTIONS`: mapping options for local runs (with `SEGMENT_WRITE_KEY`, or a dry
    /// run without settings); checked at start. With `SECRET_ID` the secret's own apply.
    pub mapping_options: Option<MappingOptions>,
    /// `BACKFILL_RATE`: requests per second the backfill function sends Segment, at most.
    pub backfill_rate: u32,
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

fn env_num<T: std::str::FromStr>(k: &'static str, default: T) -> Result<T, ConfigError> {
    match env_var(k) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError::BadEnv(k, format!("not a number: {v}"))),
    }
}

/// [`env_num`], which must lie within `range` (`why` says where the bounds come from).
fn env_num_within<T>(
    k: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
    why: &str,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display,
{
    let n = env_num(k, default)?;
    if range.contains(&n) {
        return Ok(n);
    }
    Err(ConfigError::BadEnv(
        k,
        format!(
            "{n} is out of range: {} to {} ({why})",
            range.start(),
            range.end()
        ),
    ))
}

impl Env {
    pub fn from_env() -> Result<Env, ConfigError> {
        let mapping_options = env_var("MAPPING_OPTIONS")
            .map(|text| MappingOptions::from_json(&text))
            .transpose()
            .map_err(|e| ConfigError::BadEnv("MAPPING_OPTIONS", e.to_string()))?;
        let source = if let Some(secret_id) = env_var("SECRET_ID") {
            SettingsSource::SecretsManager {
                secret_id: secret_id.trim().to_owned(),
                ttl: Duration::from_secs(env_num(
                    "SECRET_TTL_SECONDS",
                    DEFAULT_SECRET_TTL.as_secs(),
                )?),
            }
        } else if env_var("SEGMENT_WRITE_KEY").is_some() {
            SettingsSource::Env(Box::new(SecretFields {
                mapping: mapping_options.as_ref().map(MappingOptions::to_value),
                ..SecretFields::from_env()
            }))
        } else {
            SettingsSource::None
        };
        let max_body_bytes = env_num_within(
            "MAX_BODY_BYTES",
            DEFAULT_MAX_BODY_BYTES,
            1..=MAX_MAX_BODY_BYTES,
            "Lambda's request payload limit",
        )?;
        let max_age_hours = env_num_within(
            "REDELIVERY_MAX_AGE_HOURS",
            DEFAULT_REDELIVERY_MAX_AGE_HOURS,
            1..=MAX_REDELIVERY_MAX_AGE_HOURS,
            "the parked queue keeps messages 14 days",
        )?;
        let redelivery_max_age = Duration::from_secs(max_age_hours * 3600);
        let backfill_rate = env_num_within(
            "BACKFILL_RATE",
            DEFAULT_BACKFILL_RATE,
            1..=1000,
            "Segment takes about 1,000 requests a second per workspace",
        )?;
        Ok(Env {
            source,
            endpoints: Endpoints::from_env(),
            max_body_bytes,
            dead_letter_queue_url: env_var("DEAD_LETTER_QUEUE_URL").map(|u| u.trim().to_owned()),
            refused_queue_url: env_var("REFUSED_QUEUE_URL").map(|u| u.trim().to_owned()),
            redelivery_max_age,
            mapping_options,
            backfill_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_secret() {
        let s = Settings::from_secret_json(
            r#"{"segment_write_key":"wk","segment_region":"EU","webhook_username":"u",
                "webhook_password":"p","webhook_token":"t"}"#,
        )
        .unwrap();
        assert_eq!(s.write_key.expose(), "wk");
        assert_eq!(s.region, Region::Eu);
        assert!(s.webhook.basic.is_some() && s.webhook.token.is_some());
    }

    #[test]
    fn token_only_and_basic_only() {
        assert!(
            Settings::from_secret_json(
                r#"{"segment_write_key":"wk","segment_region":"us","webhook_token":"t"}"#
            )
            .is_ok()
        );
        assert!(
            Settings::from_secret_json(
                r#"{"segment_write_key":"wk","segment_region":"us","webhook_username":"u","webhook_password":"p"}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn invalid_secrets() {
        let e = |j: &str| Settings::from_secret_json(j).unwrap_err();
        assert_eq!(
            e(r#"{"segment_region":"us","webhook_token":"t"}"#),
            ConfigError::Missing("segment_write_key")
        );
        assert_eq!(
            e(r#"{"segment_write_key":" ","segment_region":"us","webhook_token":"t"}"#),
            ConfigError::Missing("segment_write_key")
        );
        assert_eq!(
            e(r#"{"segment_write_key":"wk","webhook_token":"t"}"#),
            ConfigError::Missing("segment_region")
        );
        assert_eq!(
            e(r#"{"segment_write_key":"wk","segment_region":"eu1","webhook_token":"t"}"#),
            ConfigError::BadRegion
        );
        assert_eq!(
            e(r#"{"segment_write_key":"wk","segment_region":"us"}"#),
            ConfigError::NoWebhookCredentials
        );
        assert_eq!(
            e(r#"{"segment_write_key":"wk","segment_region":"us","webhook_username":"u"}"#),
            ConfigError::HalfBasicPair("webhook_username", "webhook_password")
        );
        assert!(matches!(e("not json"), ConfigError::NotJson(_)));
    }

    #[test]
    fn errors_and_debug_never_show_values() {
        let text = r#"{"segment_write_key":"SUPERSECRETKEY","segment_region":"mars","webhook_token":"TOKENVALUE"}"#;
        let err = Settings::from_secret_json(text).unwrap_err().to_string();
        assert!(
            !err.contains("SUPERSECRETKEY") && !err.contains("mars"),
            "{err}"
        );
        let bad_json = r#"{"segment_write_key":"SUPERSECRETKEY" "x"}"#;
        let err = Settings::from_secret_json(bad_json)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SUPERSECRETKEY"), "{err}");
        let ok = Settings::from_secret_json(
            r#"{"segment_write_key":"SUPERSECRETKEY","segment_region":"us","webhook_username":"USERNAME1","webhook_password":"PASSWORD1","webhook_token":"TOKENVALUE"}"#,
        )
        .unwrap();
        let dbg = format!("{ok:?}");
        for v in ["SUPERSECRETKEY", "USERNAME1", "PASSWORD1", "TOKENVALUE"] {
            assert!(!dbg.contains(v), "{dbg}");
        }
    }

    #[test]
    fn stored_credentials_are_trimmed() {
        let s = Settings::from_secret_json(
            r#"{"segment_write_key":" wk\n","segment_region":"us","webhook_username":" u ",
                "webhook_password":"p\t","webhook_token":" tok "}"#,
        )
        .unwrap();
        assert_eq!(s.write_key.expose(), "wk");
        let (u, p) = s.webhook.basic.unwrap();
        assert_eq!((u.expose(), p.expose()), ("u", "p"));
        assert_eq!(s.webhook.token.unwrap().expose(), "tok");
    }

    #[test]
    fn oauth_client_alone_is_enough_and_comes_in_pairs() {
        let s = Settings::from_secret_json(
            r#"{"segment_write_key":"wk","segment_region":"us",
                "oauth_client_id":" moengage \n","oauth_client_secret":"\tCLIENTSECRET1 "}"#,
        )
        .unwrap();
        assert!(s.webhook.basic.is_none() && s.webhook.token.is_none());
        let c = s.webhook.oauth.as_ref().unwrap();
        assert_eq!(
            (c.id.expose(), c.secret.expose()),
            ("moengage", "CLIENTSECRET1")
        );
        assert!(!format!("{s:?}").contains("CLIENTSECRET1"));
        let fields = s.to_fields();
        assert!(!format!("{fields:?}").contains("CLIENTSECRET1"));
        assert_eq!(Settings::from_fields(fields).unwrap(), s);

        let e = |j: &str| Settings::from_secret_json(j).unwrap_err();
        assert_eq!(
            e(r#"{"segment_write_key":"wk","segment_region":"us","oauth_client_id":"c"}"#),
            ConfigError::HalfOAuthClient("oauth_client_id", "oauth_client_secret")
        );
        // An empty field counts as absent, as for the other credentials.
        let blank = Settings::from_secret_json(
            r#"{"segment_write_key":"wk","segment_region":"us","webhook_token":"t","oauth_client_secret":" "}"#,
        )
        .unwrap();
        assert!(blank.webhook.oauth.is_none());
        assert_eq!(
            e(
                r#"{"segment_write_key":"wk","segment_region":"us","webhook_token":"t","oauth_client_secret":"s"}"#
            ),
            ConfigError::HalfOAuthClient("oauth_client_secret", "oauth_client_id")
        );
        let msg = ConfigError::NoWebhookCredentials.to_string();
        assert!(msg.contains("oauth_client_id"), "{msg}");
    }

    #[test]
    fn endpoints_by_region() {
        let e = Endpoints::default();
        assert_eq!(e.base(Region::Us), "https://api.segment.io");
        assert_eq!(e.base(Region::Eu), "https://events.eu1.segmentapis.com");
    }
}
