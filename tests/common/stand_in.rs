//! Stand-ins on loopback for the credential side of AWS: a container
//! credentials endpoint (what `AWS_CONTAINER_CREDENTIALS_FULL_URI` points
//! at), an IMDSv2 endpoint, and STS `GetCallerIdentity`. Each is a small
//! HTTP/1.1 server on its own thread (tests/common/loopback.rs).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }
}

pub enum Reply {
    /// Status, content type, body.
    Send(u16, &'static str, String),
    /// Status, extra header, body (text/plain).
    SendWithHeader(u16, (&'static str, String), String),
    /// Read the request, then never answer.
    Hang,
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

pub async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + 4 + len {
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Vec<u8> = buf.drain(..head_end + 4 + len).skip(head_end + 4).collect();
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

async fn serve_connection(mut sock: TcpStream, handler: Handler) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut sock, &mut buf).await? {
        match handler(&req) {
            Reply::Send(status, content_type, body) => {
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(response.as_bytes()).await?;
            }
            Reply::SendWithHeader(status, (name, value), body) => {
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n{name}: {value}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(response.as_bytes()).await?;
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
    }
    Ok(())
}

/// An HTTP server answering every request with `handler`.
pub fn serve_http(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> super::loopback::Loopback {
    let handler: Handler = Arc::new(handler);
    super::loopback::serve(move |sock| {
        let handler = Arc::clone(&handler);
        async move {
            let _ = serve_connection(sock, handler).await;
        }
    })
}

/// RFC 3339 UTC, second precision (what the container endpoint and IMDS send).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    aws_smithy_types::DateTime::from_secs(secs as i64)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap()
}

/// What the credential endpoint does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Error500,
    Hang,
}

/// Issued session credentials: token → (access key id, when KMS must stop
/// accepting it). Shared with a KMS stand-in that checks tokens.
pub type Issued = Arc<Mutex<HashMap<String, (String, SystemTime)>>>;

/// A credentials endpoint handing out fresh session credentials on every
/// request, each valid for `lifetime` (as its `Expiration` says).
pub struct CredentialEndpoint {
    pub url: String,
    pub issued: Issued,
    pub mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicUsize>,
    _server: super::loopback::Loopback,
}

impl CredentialEndpoint {
    /// `revoke_early`: every n-th token is accepted by KMS for only a third
    /// of its stated lifetime (a credential revoked or clock-skewed before
    /// its expiry), so KMS answers ExpiredTokenException first.
    pub fn start(path: &'static str, lifetime: Duration, revoke_every: Option<usize>) -> Self {
        let issued: Issued = Arc::default();
        let mode = Arc::new(Mutex::new(Mode::Serve));
        let requests = Arc::new(AtomicUsize::new(0));
        let (iss, m, count) = (Arc::clone(&issued), Arc::clone(&mode), Arc::clone(&requests));
        let server = serve_http(move |req| {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            if req.path != path {
                return Reply::Send(404, "text/plain", "not found".into());
            }
            match *m.lock().unwrap() {
                Mode::Error500 => return Reply::Send(500, "text/plain", "internal error".into()),
                Mode::Hang => return Reply::Hang,
                Mode::Serve => {}
            }
            let now = SystemTime::now();
            let expiry = now + lifetime;
            let valid_until = match revoke_every {
                Some(k) if n % k == 0 => now + lifetime / 3,
                _ => expiry,
            };
            let key = format!("ASIACONTAINER{n:06}");
            let token = format!("container-token-{n}");
            iss.lock()
                .unwrap()
                .insert(token.clone(), (key.clone(), valid_until));
            let body = serde_json::json!({
                "AccessKeyId": key,
                "SecretAccessKey": format!("secret-{n}"),
                "Token": token,
                "Expiration": rfc3339(expiry),
                "Code": "Success",
                "Type": "AWS-HMAC",
                "LastUpdated": rfc3339(now),
            });
            Reply::Send(200, "application/json", body.to_string())
        });
        CredentialEndpoint {
            url: format!("http://{}{path}", server.addr),
            issued,
            mode,
            requests,
            _server: server,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// A check for `FakeKms::start_checking`: session tokens this endpoint
    /// issued are accepted until they expire; `static_key` (long-term keys,
    /// no token) always.
    pub fn kms_check(&self, static_key: &'static str) -> super::fake_kms::CredentialCheck {
        let issued = Arc::clone(&self.issued);
        Arc::new(move |key: &str, token: &str| {
            if token.is_empty() {
                return (key == static_key)
                    .then_some(())
                    .map_or(Some("UnrecognizedClientException"), |_| None);
            }
            match issued.lock().unwrap().get(token) {
                Some((k, until)) if k == key && SystemTime::now() < *until => None,
                Some((k, _)) if k == key => Some("ExpiredTokenException"),
                _ => Some("UnrecognizedClientException"),
            }
        })
    }
}

/// An IMDSv2 stand-in whose listener accepts nothing for `blackout` (its
/// accept queue full, so connects time out), then serves a role's
/// credentials. Counts requests.
pub struct Imds {
    pub url: String,
    requests: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Imds {
    pub fn start(blackout: Duration) -> Imds {
        let requests = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&requests);
        let handler: Handler = Arc::new(move |req: &Request| {
            count.fetch_add(1, Ordering::SeqCst);
            let now = SystemTime::now();
            match (req.method.as_str(), req.path.as_str()) {
                ("PUT", "/latest/api/token") => Reply::SendWithHeader(
                    200,
                    ("x-aws-ec2-metadata-token-ttl-seconds", "21600".into()),
                    "imds-session-token".into(),
                ),
                _ if req.header("x-aws-ec2-metadata-token") != "imds-session-token" => {
                    Reply::Send(401, "text/plain", "unauthorized".into())
                }
                ("GET", "/latest/meta-data/iam/security-credentials/") => {
                    Reply::Send(200, "text/plain", "envseal-test-role".into())
                }
                ("GET", "/latest/meta-data/iam/security-credentials/envseal-test-role") => {
                    let body = serde_json::json!({
                        "Code": "Success",
                        "LastUpdated": rfc3339(now),
                        "Type": "AWS-HMAC",
                        "AccessKeyId": "ASIAINSTANCEROLE0001",
                        "SecretAccessKey": "instance-secret",
                        "Token": "instance-token",
                        "Expiration": rfc3339(now + Duration::from_secs(6 * 3600)),
                    });
                    Reply::Send(200, "application/json", body.to_string())
                }
                _ => Reply::Send(404, "text/plain", "not found".into()),
            }
        });
        // A listener with backlog 0 and its queue filled: connects hang
        // until it starts accepting (tests/common/fault.rs does the same).
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
                let listener = socket.listen(0).unwrap();
                let addr = listener.local_addr().unwrap();
                let mut fillers = Vec::new();
                if !blackout.is_zero() {
                    for _ in 0..8 {
                        let connect = tokio::net::TcpStream::connect(addr);
                        match tokio::time::timeout(Duration::from_millis(200), connect).await {
                            Ok(Ok(s)) => fillers.push(s),
                            _ => break,
                        }
                    }
                }
                addr_tx.send(addr).unwrap();
                let until = Instant::now() + blackout;
                let serve = async {
                    tokio::time::sleep_until(until.into()).await;
                    drop(fillers);
                    loop {
                        if let Ok((sock, _)) = listener.accept().await {
                            tokio::spawn(serve_connection(sock, Arc::clone(&handler)));
                        }
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = rx => {}
                }
            });
        });
        Imds {
            url: format!("http://{}", addr_rx.recv().unwrap()),
            requests,
            _stop: tx,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// What the STS stand-in answers to `GetCallerIdentity`.
#[derive(Clone, Copy, Debug)]
pub enum StsAnswer {
    Ok,
    /// 403 InvalidClientTokenId: a new key not yet visible everywhere.
    InvalidClientTokenId,
    /// 403 AccessDenied.
    AccessDenied,
}

pub struct Sts {
    pub url: String,
    requests: Arc<AtomicUsize>,
    _server: super::loopback::Loopback,
}

pub const ACCOUNT: &str = "111122223333";
pub const CALLER_ARN: &str = "arn:aws:sts::111122223333:assumed-role/envseal-test/session";

impl Sts {
    /// The n-th request gets `plan[n]`, the last answer repeating.
    pub fn start(plan: Vec<StsAnswer>) -> Sts {
        let requests = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&requests);
        let server = serve_http(move |req| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let body = String::from_utf8_lossy(&req.body);
            if !body.contains("Action=GetCallerIdentity") {
                return Reply::Send(400, "text/xml", error_xml("InvalidAction", "unsupported"));
            }
            match plan[n.min(plan.len() - 1)] {
                StsAnswer::Ok => Reply::Send(
                    200,
                    "text/xml",
                    format!(
                        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                         <GetCallerIdentityResult><Arn>{CALLER_ARN}</Arn><UserId>AROAEXAMPLE:session</UserId>\
                         <Account>{ACCOUNT}</Account></GetCallerIdentityResult>\
                         <ResponseMetadata><RequestId>sts-{n}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                    ),
                ),
                StsAnswer::InvalidClientTokenId => Reply::Send(
                    403,
                    "text/xml",
                    error_xml("InvalidClientTokenId", "The security token included in the request is invalid."),
                ),
                StsAnswer::AccessDenied => Reply::Send(
                    403,
                    "text/xml",
                    error_xml("AccessDenied", "not authorized to perform sts:GetCallerIdentity"),
                ),
            }
        });
        Sts {
            url: format!("http://{}", server.addr),
            requests,
            _server: server,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn error_xml(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>sts-error</RequestId></ErrorResponse>"
    )
}
