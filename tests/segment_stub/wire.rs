//! Reading HTTP/1.1 requests off a socket, for the loopback test servers (the Segment
//! stand-in here, and `tests/fake_runtime`, which uses it through `segment_stub::wire`). Enough of
//! HTTP for our own clients: a request line, headers, and a `content-length` body.
#![allow(dead_code)]

use std::collections::HashMap;

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// Listens on a free 127.0.0.1 port and serves each connection with `serve(socket, state)`
/// on its own task; returns the address.
pub async fn listen<S, F, Fut>(state: S, serve: F) -> SocketAddr
where
    S: Clone + Send + 'static,
    F: Fn(TcpStream, S) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let conn = serve(sock, state.clone());
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    addr
}

/// One request.
pub struct WireRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// Reads the next request from a keep-alive connection; `buf` carries bytes read past it.
/// `None` when the peer closed the connection.
pub async fn read_request(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<WireRequest>> {
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if !fill(sock, buf).await? {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        if !fill(sock, buf).await? {
            return Ok(None);
        }
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Ok(Some(WireRequest {
        method,
        path,
        headers,
        body,
    }))
}

/// Reads more bytes into `buf`; false at end of stream.
async fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 65536];
    let n = sock.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}
