//! A tiny OTLP/HTTP receiver: an HTTP/1.1 server on 127.0.0.1:0 that takes
//! each POST, hands its path and body to the test, and answers 200.
//!
//! Just enough HTTP for the OTLP exporter's requests: a request line,
//! headers, a `Content-Length` body (the exporter sends protobuf bodies
//! whole, never chunked), keep-alive. Anything else closes the connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Cap on one request's head and body; an OTLP test export is a few KiB.
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// One request the receiver took.
#[derive(Debug)]
pub struct Received {
    /// The request path, e.g. `/v1/traces`.
    pub path: String,
    /// The body, undecoded.
    pub body: Vec<u8>,
}

/// The running receiver. Dropping it stops accepting.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Received>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Binds 127.0.0.1:0 and starts serving.
    pub async fn start() -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, requests) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, tx.clone()));
            }
        });
        Ok(Receiver {
            addr,
            requests,
            task,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request, if one arrives within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.requests.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, tx: mpsc::UnboundedSender<Received>) {
    let mut buffer = Vec::new();
    loop {
        let Some((path, body)) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        if tx.send(Received { path, body }).is_err() {
            return;
        }
        let reply =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if stream.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Reads one request from `stream`; `buffer` keeps bytes read past it.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buffer.len() > MAX_REQUEST || read_more(stream, buffer).await == 0 {
            return None;
        }
    };
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (request_line.next()?, request_line.next()?.to_owned());
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())?;
    if method != "POST" || length > MAX_REQUEST {
        return None;
    }
    while buffer.len() < head_end + length {
        if read_more(stream, buffer).await == 0 {
            return None;
        }
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Some((path, body))
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            n
        }
        Err(_) => 0,
    }
}
