//! Test harness: a real Secrets Manager API (`moto_server` from PyPI `moto[server]`) on
//! 127.0.0.1, started by the tests themselves.
//!
//! Use from an integration test file with `mod moto;` and `let moto = moto::MotoServer::start();`.
//!
//! One server per test: start-up is well under a second, each test gets a clean account, and
//! the server lives in a local variable, so it is killed (SIGKILL + wait) by `Drop` when the
//! test returns *or panics*. There is no process-wide static server, because statics are never
//! dropped and would leave an orphan `moto_server` behind after the test binary exits. (Only a
//! SIGKILL of the test binary itself can orphan a server; it then keeps listening on a random
//! loopback port until killed.)
//!
//! Nothing here talks to AWS: the SDK clients are built from an explicit `http://127.0.0.1:PORT`
//! endpoint, a fixed region and static dummy credentials, without reading the environment or
//! `~/.aws` files.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};

/// The region every harness client and child environment uses.
pub const REGION: &str = "us-east-1";
/// Dummy credentials (moto accepts any signature).
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";

const NOT_FOUND: &str = "moto_server not found: run scripts/test (it installs moto[server] into .venv) or pip install 'moto[server]' and set MOTO_SERVER";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// A running `moto_server`, killed on drop.
pub struct MotoServer {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl MotoServer {
    /// Starts `moto_server` on a free loopback port and waits until it accepts connections.
    pub fn start() -> MotoServer {
        let exe = find_moto_server();
        // Picking a port and then letting moto bind it is racy (another process could take
        // it in between); if moto exits early, try again with a new port.
        let mut last_log = String::new();
        for _attempt in 0..3 {
            match try_start(&exe) {
                Ok(server) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("moto_server ({}) did not start:\n{last_log}", exe.display());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where moto's stdout/stderr go (kept when the test panics).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A Secrets Manager client for this server (region us-east-1, dummy credentials, short
    /// timeouts, fast retries).
    pub async fn client(&self) -> aws_sdk_secretsmanager::Client {
        client_for(&self.endpoint)
    }

    /// Creates a secret with a `SecretString`; returns its ARN.
    pub async fn create_secret(&self, name: &str, secret_string: &str) -> String {
        let out = self
            .client()
            .await
            .create_secret()
            .name(name)
            .secret_string(secret_string)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "moto CreateSecret {name}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            });
        out.arn.expect("CreateSecret returned no ARN")
    }

    /// Creates a binary secret (`SecretBinary`, no `SecretString`); returns its ARN.
    pub async fn create_binary_secret(&self, name: &str, bytes: &[u8]) -> String {
        let out = self
            .client()
            .await
            .create_secret()
            .name(name)
            .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(bytes))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "moto CreateSecret {name}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            });
        out.arn.expect("CreateSecret returned no ARN")
    }

    /// Stores a new current version of the secret (a rotation).
    pub async fn put_secret(&self, name: &str, secret_string: &str) {
        self.client()
            .await
            .put_secret_value()
            .secret_id(name)
            .secret_string(secret_string)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "moto PutSecretValue {name}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            });
    }

    /// An S3 client on this server (path-style, as moto needs), configured like
    /// [`MotoServer::client`].
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_s3::config::Region::new(REGION))
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "moto-harness",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Environment variables that make the standard AWS SDK environment chain of a child
    /// process reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// Makes `cmd` hermetic: removes every inherited `AWS_*` variable (profiles, session
    /// tokens, endpoint overrides of the developer's shell), points the shared config and
    /// credentials files at nothing, sends any *other* AWS service to a closed loopback port
    /// (so a misrouted call fails instead of reaching AWS), then sets [`MotoServer::env`].
    pub fn apply_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        let nothing = std::env::temp_dir().join("moto-harness-no-such-aws-file");
        cmd.env("AWS_CONFIG_FILE", &nothing)
            .env("AWS_SHARED_CREDENTIALS_FILE", &nothing)
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
            .envs(self.env())
    }

    /// Stops the server now (SIGKILL + wait); also done on drop.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("moto_server log kept at {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A Secrets Manager client for any endpoint (e.g. a closed port), configured like
/// [`MotoServer::client`]: it reads nothing from the environment, fails fast when the endpoint
/// is unreachable (2 s connect timeout, 10 s per operation, 2 attempts 20 ms apart).
pub fn client_for(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "moto-harness",
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(100)),
        )
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// A loopback endpoint where nothing listens (the port is bound, read and released).
pub fn closed_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

fn find_moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return p;
        }
        panic!("MOTO_SERVER={} is not a file. {NOT_FOUND}", p.display());
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{NOT_FOUND}"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// One start attempt; `Err(log text)` if moto exited before accepting connections.
fn try_start(exe: &Path) -> Result<MotoServer, String> {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("moto-server-{}-{port}.log", std::process::id()));
    let log_file =
        std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let mut cmd = Command::new(exe);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone log file"))
        .stderr(log_file);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}. {NOT_FOUND}", exe.display()));
    let mut server = MotoServer {
        endpoint: format!("http://127.0.0.1:{port}"),
        child,
        port,
        log,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let text = read_log(&server.log);
            let _ = std::fs::remove_file(&server.log);
            return Err(format!("exited with {status} on port {port}:\n{text}"));
        }
        if TcpStream::connect_timeout(&addr, POLL).is_ok() {
            // Connected: make sure it is our process that answered, not a port thief.
            if let Ok(None) = server.child.try_wait() {
                return Ok(server);
            }
            continue;
        }
        if Instant::now() >= deadline {
            let text = read_log(&server.log);
            panic!(
                "moto_server did not accept connections on {} within {READY_TIMEOUT:?}; log {}:\n{text}",
                server.endpoint,
                server.log.display()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}
