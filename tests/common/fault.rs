//! A fault-injecting HTTP/1.1 server on loopback that sits in front of moto.
//!
//! Each request it reads gets the next action of its plan (the last action
//! repeats): proxy to the upstream, answer with a status and AWS error body,
//! never answer, send headers then drip the body, or reset the connection.
//! It counts the requests it saw. It runs on its own thread and runtime, so
//! any test (blocking or async) can use it.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Debug)]
pub enum Action {
    /// Forward to the upstream (moto) and relay its answer.
    Proxy,
    /// Wait, then proxy (a slow but successful KMS).
    DelayProxy(Duration),
    /// Answer `status` with `{"__type": code, "message": ...}`.
    Error(u16, &'static str),
    /// Read the request, then say nothing, holding the connection open.
    Hang,
    /// Send status and headers for a 100-byte body, then one byte every `period`.
    Drip(Duration),
    /// Read the request, then close with a TCP reset.
    Reset,
}

pub struct FaultServer {
    pub url: String,
    requests: Arc<AtomicUsize>,
    bodies: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    _server: super::loopback::Loopback,
}

impl FaultServer {
    /// Starts a server whose n-th request (from 0) gets `plan[n]`, or the
    /// last action once the plan is used up.
    pub fn start(upstream: Option<String>, plan: Vec<Action>) -> FaultServer {
        assert!(!plan.is_empty());
        let requests = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counter, seen) = (Arc::clone(&requests), Arc::clone(&bodies));
        let plan = Arc::new(plan);
        let upstream = upstream.map(|u| u.trim_start_matches("http://").to_owned());
        let server = super::loopback::serve(move |sock| {
            let (counter, plan, upstream, seen) = (
                Arc::clone(&counter),
                Arc::clone(&plan),
                upstream.clone(),
                Arc::clone(&seen),
            );
            async move {
                let _ = serve_connection(sock, counter, plan, upstream, seen).await;
            }
        });
        FaultServer {
            url: format!("http://{}", server.addr),
            requests,
            bodies,
            _server: server,
        }
    }

    /// The raw requests seen so far (head and body).
    pub fn request_bytes(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().unwrap().clone()
    }

    /// Requests seen so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and Content-Length body); `None` at EOF.
/// (Also the chaos soak's, benches/soak/chaos.rs.)
pub async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap_or(0))
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                let mut chunk = [0u8; 8192];
                let n = sock.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let req: Vec<u8> = buf.drain(..total).collect();
            return Ok(Some(req));
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Replaces the Connection header of an HTTP head with `Connection: close`.
pub fn close_connection(message: &[u8]) -> Vec<u8> {
    let end = find(message, b"\r\n\r\n").unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..end]);
    let mut out: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    out.push_str("\r\nConnection: close");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&message[end..]);
    bytes
}

async fn serve_connection(
    mut sock: TcpStream,
    counter: Arc<AtomicUsize>,
    plan: Arc<Vec<Action>>,
    upstream: Option<String>,
    seen: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut sock, &mut buf).await? {
        seen.lock().unwrap().push(request.clone());
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let action = plan.get(n).unwrap_or_else(|| plan.last().unwrap()).clone();
        let action = match action {
            Action::DelayProxy(d) => {
                tokio::time::sleep(d).await;
                Action::Proxy
            }
            other => other,
        };
        match action {
            Action::DelayProxy(_) => unreachable!("resolved above"),
            Action::Proxy => {
                let upstream = upstream.as_deref().expect("a proxy plan needs an upstream");
                let mut up = TcpStream::connect(upstream).await?;
                up.write_all(&close_connection(&request)).await?;
                let mut response = Vec::new();
                up.read_to_end(&mut response).await?;
                sock.write_all(&close_connection(&response)).await?;
                return Ok(());
            }
            Action::Error(status, code) => {
                let body = format!(r#"{{"__type":"{code}","message":"injected {code}"}}"#);
                let reason = match status {
                    400 => "Bad Request",
                    429 => "Too Many Requests",
                    500 => "Internal Server Error",
                    503 => "Service Unavailable",
                    _ => "Error",
                };
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\n\
                     x-amzn-RequestId: fault-{n}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(response.as_bytes()).await?;
            }
            Action::Hang => {
                tokio::time::sleep(Duration::from_secs(600)).await;
                return Ok(());
            }
            Action::Drip(period) => {
                sock.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{",
                )
                .await?;
                for _ in 0..99 {
                    tokio::time::sleep(period).await;
                    sock.write_all(b" ").await?;
                }
                return Ok(());
            }
            Action::Reset => {
                sock.set_zero_linger()?;
                drop(sock);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A loopback address whose accept queue is full, so a connect hangs until
/// the client's connect timeout: a listener with backlog 0 that never
/// accepts, plus connections that fill its queue. Keep the value alive.
pub struct FullBacklog {
    pub url: String,
    _listener: std::net::TcpListener,
    _fillers: Vec<std::net::TcpStream>,
}

pub fn full_backlog() -> FullBacklog {
    // tokio's TcpSocket is the std-only way to choose the backlog; it needs
    // a runtime of its own, on a thread of its own (callers may be async).
    let listener = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
            socket.listen(0).unwrap().into_std().unwrap()
        })
    })
    .join()
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    // One more must now hang: that is what the tests rely on.
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
        "could not fill the accept queue of {addr}"
    );
    FullBacklog {
        url: format!("http://{addr}"),
        _listener: listener,
        _fillers: fillers,
    }
}
