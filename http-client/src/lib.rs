//! The HTTP transport of moengage-segment's Segment client: HTTP/1.1 over hyper's connection
//! API, with hyper-util's TCP connector and hyper-rustls (the system's root certificates,
//! rustls with aws-lc-rs) for `https://`, plain TCP for `http://` (local stand-ins). These are
//! the crates the AWS SDK already brings, so the binary carries one HTTP stack.
//!
//! Not hyper-util's pooled `legacy::Client`: built for this client's types it compiles in its
//! HTTP/2 paths too (the SDK enables hyper-util's `http2` feature); its request path was
//! ~0.49 MB of the stripped binary, this one is ~0.18 MB. This client needs only one small
//! pool of HTTP/1.1 connections ([`Client`]). It is its own crate so that the generic hyper
//! and TLS code it instantiates is compiled at the dependencies' opt-level "s", not at the
//! main crate's 3 (~32 KB less).
//!
//! Redirects are never followed. [`Client::send`] reads the answer's head and at most a given
//! number of body bytes, all within one timeout; a connection goes back to the pool only after
//! its answer was read to the end.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::timeout_at;

/// How long a connection may take to be ready for another request, once its answer was read
/// (then it is pooled) or when it is taken from the pool. One that is not is dropped: it may
/// still be writing an earlier request body the server answered without reading (an early
/// 401 or 413), and waiting for it would cost the next request its whole timeout.
const READY_WAIT: Duration = Duration::from_millis(100);

/// TCP keep-alive probes, after [`Settings::tcp_keepalive`] idle: every 15 s, at most 3 (the
/// defaults of the reqwest client used before).
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Connector = ConnectTimeout<hyper_rustls::HttpsConnector<HttpConnector>>;
type Sender = http1::SendRequest<Full<Bytes>>;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bound on setting up a connection: TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    /// Pooled connections unused for this long are not used again (closed at the next
    /// checkout, or earlier by the server).
    pub pool_idle_timeout: Duration,
    /// Idle time before the first TCP keep-alive probe.
    pub tcp_keepalive: Duration,
}

/// An HTTP/1.1 client with a pool of keep-alive connections (a clone shares the pool).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: Connector,
    pool_idle_timeout: Duration,
    /// Idle connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    key: Key,
    sender: Sender,
    since: Instant,
}

/// Which connections a request may use.
type Key = (Scheme, Authority);

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
    /// The URL has no scheme or host.
    #[error("invalid URL: an absolute http:// or https:// URL is needed")]
    Url,
    /// No answer head within the timeout.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// No connection (TCP, TLS or the connect timeout; the source chain says which).
    #[error("connect error")]
    Connect(#[source] BoxError),
    /// The exchange failed on an open connection (the source chain says how).
    #[error(transparent)]
    Http(hyper::Error),
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
        Ok(Client {
            inner: Arc::new(Inner {
                connector: ConnectTimeout {
                    inner: https,
                    timeout: settings.connect_timeout,
                },
                pool_idle_timeout: settings.pool_idle_timeout,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Sends `req` (an absolute URL) and reads the answer's head, then at most `body_cap`
    /// bytes of its body, all within `timeout`. A body read error or the timeout ends the body
    /// early (the answer is still returned). Only a connection whose answer was read to its
    /// end goes back to the pool.
    ///
    /// On a pooled connection the server closed before the request went out, the request is
    /// sent again on another one (as hyper-util's client does).
    pub async fn send(
        &self,
        req: http::Request<Bytes>,
        body_cap: usize,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let uri = req.uri().clone();
        let key: Key = match (uri.scheme(), uri.authority()) {
            (Some(s), Some(a)) => (s.clone(), a.clone()),
            _ => return Err(SendError::Url),
        };
        let mut req = req.map(Full::new);
        // HTTP/1.1 to an origin server: origin-form request target and a Host header.
        *req.uri_mut() = match uri.path_and_query() {
            Some(p) => http::Uri::from(p.clone()),
            None => http::Uri::from_static("/"),
        };
        if !req.headers().contains_key(http::header::HOST) {
            let host = uri.host().ok_or(SendError::Url)?;
            let host = match uri.port_u16() {
                Some(p)
                    if !(p == 443 && key.0 == Scheme::HTTPS
                        || p == 80 && key.0 == Scheme::HTTP) =>
                {
                    format!("{host}:{p}")
                }
                _ => host.to_owned(),
            };
            let host = http::HeaderValue::try_from(host).map_err(|_| SendError::Url)?;
            req.headers_mut().insert(http::header::HOST, host);
        }
        let (mut sender, resp) = loop {
            let (mut sender, reused) = match timeout_at(deadline, self.inner.checkout(&key)).await {
                Err(_) => return Err(SendError::TimedOut(timeout)),
                Ok(Some(sender)) => (sender, true),
                Ok(None) => match timeout_at(deadline, self.inner.connect(uri.clone())).await {
                    Err(_) => return Err(SendError::TimedOut(timeout)),
                    Ok(r) => (r?, false),
                },
            };
            match timeout_at(deadline, sender.try_send_request(req)).await {
                Err(_) => return Err(SendError::TimedOut(timeout)),
                Ok(Ok(resp)) => break (sender, resp),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        };
        let (head, mut body) = resp.into_parts();
        let mut buf = Vec::new();
        let mut ended = false;
        // Past the cap, one more read only to see the end of a body known to be complete (an
        // empty one, or one whose Content-Length was read): the connection can then be reused.
        while buf.len() < body_cap || body.is_end_stream() {
            match timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    // Trailers (not data) are skipped.
                    if let Some(bytes) = frame.data_ref() {
                        let take = bytes.len().min(body_cap.saturating_sub(buf.len()));
                        buf.extend_from_slice(&bytes[..take]);
                    }
                }
                Ok(None) => {
                    ended = true;
                    break;
                }
                Ok(Some(Err(_))) | Err(_) => break,
            }
        }
        if ended && !sender.is_closed() {
            let ready_by = deadline.min(tokio::time::Instant::now() + READY_WAIT);
            if let Ok(Ok(())) = timeout_at(ready_by, sender.ready()).await {
                self.inner.checkin(key, sender);
            }
        }
        // Otherwise the sender and the unread body are dropped: hyper closes the connection.
        Ok(Answer {
            status: head.status,
            headers: head.headers,
            body: buf,
        })
    }
}

impl Inner {
    /// The most recently used idle connection to `key` that is still open and ready for a
    /// request; expired and closed ones are dropped on the way.
    async fn checkout(&self, key: &Key) -> Option<Sender> {
        loop {
            let mut sender = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                idle.retain(|i| {
                    !i.sender.is_closed() && now.duration_since(i.since) < self.pool_idle_timeout
                });
                let at = idle.iter().rposition(|i| i.key == *key)?;
                idle.remove(at).sender
            };
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                return Some(sender);
            }
        }
    }

    fn checkin(&self, key: Key, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(Idle {
            key,
            sender,
            since: Instant::now(),
        });
    }

    /// A new connection (TCP, then TLS for https://), its HTTP/1.1 task spawned.
    async fn connect(&self, uri: http::Uri) -> Result<Sender, SendError> {
        use tower_service::Service;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(SendError::Connect)?;
        let io = connector.call(uri).await.map_err(SendError::Connect)?;
        let (sender, conn) = http1::handshake(io).await.map_err(SendError::Http)?;
        // Runs the connection until the server closes it or the last sender and body are
        // dropped; its errors reach the request that sees them.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
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

    /// A keep-alive HTTP/1.1 server answering each request with a body of the length given
    /// by its path (`/10`); counts the connections it accepted.
    async fn server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < end + 4 + len {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..end + 4 + len);
                        let path = head.split(' ').nth(1).unwrap_or("/0").to_owned();
                        let n: usize = path.trim_start_matches('/').parse().unwrap_or(0);
                        assert!(head.contains("\r\nhost: 127.0.0.1:"), "{head}");
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n{}",
                            if head.starts_with("head ") {
                                String::new()
                            } else {
                                "x".repeat(n)
                            }
                        );
                        if sock.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    fn client() -> Client {
        Client::new(&Settings {
            connect_timeout: Duration::from_secs(3),
            pool_idle_timeout: Duration::from_secs(90),
            tcp_keepalive: Duration::from_secs(30),
        })
        .unwrap()
    }

    fn post(url: String) -> http::Request<Bytes> {
        http::Request::post(url)
            .body(Bytes::from_static(b"{}"))
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_still_sending_is_not_reused() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The first connection answers 400 after the request head and never reads the body
        // (keeping the socket open); later ones answer each request.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 65536];
                    loop {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                        if n == 0 && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let early = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
                            let _ = sock.write_all(early).await;
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        // Later connections: one small request per read is enough here.
                        if n > 0 && buf.ends_with(b"{}") {
                            buf.clear();
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if sock.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let c = client();
        let big = http::Request::post(url.clone())
            .body(Bytes::from(vec![b'x'; 32 << 20]))
            .unwrap();
        let first = c.send(big, 4096, Duration::from_secs(3)).await.unwrap();
        assert_eq!(first.status, 400);
        let started = std::time::Instant::now();
        let second = c.send(post(url), 4096, Duration::from_secs(3)).await;
        assert_eq!(second.map(|a| a.status).ok(), Some(http::StatusCode::OK));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connections_are_reused_unless_a_body_is_left_unread() {
        use std::sync::atomic::Ordering;
        let (url, accepted) = server().await;
        let c = client();
        let t = Duration::from_secs(2);
        for _ in 0..3 {
            let a = c.send(post(format!("{url}/10")), 4096, t).await.unwrap();
            assert_eq!((a.status.as_u16(), a.body.len()), (200, 10));
        }
        let head = http::Request::head(format!("{url}/10"))
            .body(Bytes::new())
            .unwrap();
        let a = c.send(head, 0, t).await.unwrap();
        assert_eq!((a.status.as_u16(), a.body.len()), (200, 0));
        // A body read exactly up to the cap is still complete.
        c.send(post(format!("{url}/4096")), 4096, t).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // A body longer than the cap: read in part, its connection dropped.
        let a = c
            .send(post(format!("{url}/100000")), 4096, t)
            .await
            .unwrap();
        assert_eq!(a.body.len(), 4096);
        c.send(post(format!("{url}/10")), 4096, t).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Clones share the pool.
        c.clone()
            .send(post(format!("{url}/10")), 4096, t)
            .await
            .unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
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
        let c = client();
        let a = c
            .send(
                post(format!("http://{addr}/v1/batch")),
                4096,
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 422);
        assert_eq!(a.headers["x-a"], "b");
        assert_eq!(a.body, vec![b'x'; 4096]);
    }

    #[tokio::test]
    async fn relative_urls_are_refused() {
        let e = client()
            .send(post("/v1/batch".into()), 0, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, SendError::Url), "{e}");
    }
}
