//! The HTTP transport of moengage-segment's Segment client: hyper-util's pooled client over
//! hyper-rustls (the system's root certificates, rustls with aws-lc-rs), HTTP/1.1, `https://`
//! and `http://` (local stand-ins). These are the crates the AWS SDK already brings, so the
//! binary carries one HTTP stack.
//!
//! It is its own crate so that the generic code it instantiates (the pool, hyper's
//! connection tasks, the TLS stream) is compiled at the dependencies' opt-level "s", not at
//! the main crate's opt-level 3: in the main crate it made the binary larger than with
//! reqwest.
//!
//! Redirects are never followed (hyper has no such feature). [`Client::send`] reads the
//! answer's head and at most a given number of body bytes, all within one timeout; a body
//! not read to its end is dropped with its connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// TCP keep-alive probes, after [`Settings::tcp_keepalive`] idle: every 15 s, at most 3 (the
/// defaults of the reqwest client used before).
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Connector = ConnectTimeout<hyper_rustls::HttpsConnector<HttpConnector>>;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bound on setting up a connection: TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    /// Pooled connections unused for this long are closed.
    pub pool_idle_timeout: Duration,
    /// Idle time before the first TCP keep-alive probe.
    pub tcp_keepalive: Duration,
}

/// A pooled HTTP/1.1 client (a clone shares the pool).
#[derive(Debug, Clone)]
pub struct Client {
    http: Arc<hyper_util::client::legacy::Client<Connector, Full<Bytes>>>,
}

/// Why [`Client::new`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No usable root certificate in the system's store (or a TLS set-up error).
    #[error("TLS set-up: {0}")]
    Tls(std::io::Error),
}

/// Why [`Client::send`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No answer head within the timeout.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// Connecting, sending or reading the answer head failed (the source chain says how).
    #[error(transparent)]
    Failed(hyper_util::client::legacy::Error),
}

/// An answer, its body cut at the caller's cap.
#[derive(Debug)]
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Client {
    pub fn new(settings: &Settings) -> Result<Client, BuildError> {
        let mut tcp = HttpConnector::new();
        // The TLS layer checks the scheme: https:// gets TLS, http:// not.
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(settings.connect_timeout));
        tcp.set_keepalive(Some(settings.tcp_keepalive));
        tcp.set_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL));
        tcp.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(BuildError::Tls)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            .build(ConnectTimeout {
                inner: https,
                timeout: settings.connect_timeout,
            });
        Ok(Client {
            http: Arc::new(http),
        })
    }

    /// Sends `req` and reads the answer's head, then at most `body_cap` bytes of its body, all
    /// within `timeout`. A body read error or the timeout ends the body early (the answer is
    /// still returned). A body read to its end leaves the connection reusable; a longer one
    /// is dropped with its connection.
    pub async fn send(
        &self,
        req: http::Request<Bytes>,
        body_cap: usize,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let resp =
            match tokio::time::timeout_at(deadline, self.http.request(req.map(Full::new))).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => return Err(SendError::Failed(e)),
                Err(_) => return Err(SendError::TimedOut(timeout)),
            };
        let (head, mut body) = resp.into_parts();
        let mut buf = Vec::new();
        while buf.len() < body_cap {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    // Trailers (not data) are skipped.
                    if let Some(bytes) = frame.data_ref() {
                        let take = bytes.len().min(body_cap - buf.len());
                        buf.extend_from_slice(&bytes[..take]);
                    }
                }
                Ok(None | Some(Err(_))) | Err(_) => break,
            }
        }
        Ok(Answer {
            status: head.status,
            headers: head.headers,
            body: buf,
        })
    }
}

/// A connector whose connections must be set up (TCP connect and TLS handshake) within
/// `timeout`; the TCP connector's own timeout covers only the connect.
#[derive(Debug, Clone)]
struct ConnectTimeout<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower_service::Service<http::Uri> for ConnectTimeout<C>
where
    C: tower_service::Service<http::Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let timeout = self.timeout;
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect timed out after {timeout:?}"),
                )
                .into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connection_set_up_is_bounded() {
        use tower_service::Service;
        /// A connector that never connects.
        #[derive(Clone)]
        struct Never;
        impl tower_service::Service<http::Uri> for Never {
            type Response = ();
            type Error = std::io::Error;
            type Future = std::future::Pending<Result<(), std::io::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: http::Uri) -> Self::Future {
                std::future::pending()
            }
        }
        let mut c = ConnectTimeout {
            inner: Never,
            timeout: Duration::from_millis(50),
        };
        let e = c
            .call(http::Uri::from_static("https://api.segment.io/"))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "connect timed out after 50ms");
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_cap() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let body = "x".repeat(10_000);
                    let head = format!(
                        "HTTP/1.1 422 Unprocessable\r\nx-a: b\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(body.as_bytes()).await;
                });
            }
        });
        let c = Client::new(&Settings {
            connect_timeout: Duration::from_secs(3),
            pool_idle_timeout: Duration::from_secs(90),
            tcp_keepalive: Duration::from_secs(30),
        })
        .unwrap();
        let req = http::Request::post(format!("http://{addr}/v1/batch"))
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let a = c.send(req, 4096, Duration::from_secs(2)).await.unwrap();
        assert_eq!(a.status, 422);
        assert_eq!(a.headers["x-a"], "b");
        assert_eq!(a.body, vec![b'x'; 4096]);
    }
}
