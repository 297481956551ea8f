//! The chaos soak's fault proxy: a loopback HTTP/1.1 proxy in front of moto
//! (KMS and DynamoDB, through the DynamoDB checker) that plays a
//! [`Schedule`] of phases by wall-clock time. The schedule lives here and
//! only here: the soak's workers ask [`Schedule::phase_at`] which phase a
//! record fell in; the proxy decides what each request meets.
//!
//! Phases: normal; a throttling storm (a share of calls answered as KMS
//! and DynamoDB answer a throttle, HTTP 400 `ThrottlingException`, and as
//! a throttling front end answers, HTTP 429); a latency spike (every call
//! slowed, a share past the client's read timeout); a full outage (every
//! connection reset or left hanging, longer than the client's deadline);
//! recovery. Before the schedule starts (warm-up) and after it ends every
//! request is proxied.
//!
//! Requests are read and relayed with tests/common/fault.rs's helpers;
//! each answer closes its connection, so every call is a new connection
//! and a fault never lingers in a pooled one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fault::{close_connection, read_request};

/// What a phase does to the calls that fall in it.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Every call proxied.
    None,
    /// `share` of the calls throttled: half with HTTP 400
    /// `ThrottlingException`, half with HTTP 429; the rest proxied.
    Throttle { share: f64 },
    /// Every call `delay` slower; `share` of them `slow` slower still
    /// (past the client's read timeout).
    Latency {
        delay: Duration,
        share: f64,
        slow: Duration,
    },
    /// No call answered: `hang_share` of the connections held open without
    /// a word until the phase ends, the rest reset (TCP RST).
    Outage { hang_share: f64 },
}

/// One phase of the schedule.
#[derive(Clone, Debug)]
pub struct Phase {
    pub name: &'static str,
    pub length: Duration,
    pub fault: Fault,
}

/// The phases, in order.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub phases: Vec<Phase>,
}

impl Schedule {
    /// The soak's schedule: five phases of `phase` each. `read_timeout` is
    /// the client's: the latency spike's slow calls go past it.
    pub fn soak(phase: Duration, read_timeout: Duration) -> Schedule {
        let p = |name, fault| Phase {
            name,
            length: phase,
            fault,
        };
        Schedule {
            phases: vec![
                p("normal", Fault::None),
                p("throttling", Fault::Throttle { share: 0.5 }),
                p(
                    "latency",
                    Fault::Latency {
                        delay: Duration::from_millis(50),
                        share: 0.4,
                        slow: read_timeout * 2,
                    },
                ),
                p("outage", Fault::Outage { hang_share: 0.5 }),
                p("recovery", Fault::None),
            ],
        }
    }

    /// The whole schedule's length.
    pub fn total(&self) -> Duration {
        self.phases.iter().map(|p| p.length).sum()
    }

    /// When phase `i` starts, from the schedule's start.
    pub fn start_of(&self, i: usize) -> Duration {
        self.phases[..i].iter().map(|p| p.length).sum()
    }

    /// The phase `t` after the schedule's start; `None` past its end.
    pub fn phase_at(&self, t: Duration) -> Option<usize> {
        let mut end = Duration::ZERO;
        for (i, p) in self.phases.iter().enumerate() {
            end += p.length;
            if t < end {
                return Some(i);
            }
        }
        None
    }
}

/// What the proxy did with the requests of one phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Requests read (KMS and DynamoDB).
    pub requests: u64,
    /// Of those, DynamoDB's.
    pub dynamodb: u64,
    /// Answered HTTP 400 `ThrottlingException`.
    pub throttled_400: u64,
    /// Answered HTTP 429.
    pub throttled_429: u64,
    /// Delayed past the read timeout.
    pub slowed: u64,
    /// Reset.
    pub reset: u64,
    /// Held open unanswered.
    pub hung: u64,
}

struct State {
    schedule: Schedule,
    upstream: String,
    /// When the schedule starts; `None`: not yet (warm-up, everything proxied).
    epoch: Mutex<Option<SystemTime>>,
    /// Per phase; the last slot counts requests outside the schedule.
    counts: Mutex<Vec<Counts>>,
    draws: AtomicU64,
}

impl State {
    /// The phase now and how long until it ends.
    fn now(&self) -> Option<(usize, Duration)> {
        let epoch = (*self.epoch.lock().unwrap())?;
        let t = SystemTime::now().duration_since(epoch).ok()?;
        let i = self.schedule.phase_at(t)?;
        Some((i, self.schedule.start_of(i + 1) - t))
    }

    /// A uniform draw in [0, 1): splitmix64 over a request counter, so a
    /// run's faults are spread evenly whatever the request mix.
    fn draw(&self) -> f64 {
        let mut z = self
            .draws
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn count(&self, phase: Option<usize>, f: impl FnOnce(&mut Counts)) {
        let mut counts = self.counts.lock().unwrap();
        let slot = phase.unwrap_or(counts.len() - 1);
        f(&mut counts[slot]);
    }
}

/// The proxy; it stops when dropped.
pub struct ChaosProxy {
    pub url: String,
    state: Arc<State>,
    _server: crate::loopback::Loopback,
}

impl ChaosProxy {
    /// A proxy to `upstream` (`http://host:port`) that proxies everything
    /// until [`ChaosProxy::start`].
    pub fn new(upstream: &str, schedule: Schedule) -> ChaosProxy {
        let phases = schedule.phases.len();
        let state = Arc::new(State {
            schedule,
            upstream: upstream.trim_start_matches("http://").to_owned(),
            epoch: Mutex::new(None),
            counts: Mutex::new(vec![Counts::default(); phases + 1]),
            draws: AtomicU64::new(0),
        });
        let shared = Arc::clone(&state);
        let server = crate::loopback::serve(move |sock| {
            let state = Arc::clone(&shared);
            async move {
                let _ = serve_connection(sock, state).await;
            }
        });
        ChaosProxy {
            url: format!("http://{}", server.addr),
            state,
            _server: server,
        }
    }

    /// Starts the schedule at `epoch`.
    pub fn start(&self, epoch: SystemTime) {
        *self.state.epoch.lock().unwrap() = Some(epoch);
    }

    /// What was done per phase so far.
    pub fn counts(&self) -> Vec<Counts> {
        let counts = self.state.counts.lock().unwrap();
        counts[..counts.len() - 1].to_vec()
    }
}

/// The AWS service a request is for, from its `X-Amz-Target`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Kms,
    DynamoDb,
}

fn service(request: &[u8]) -> Service {
    let end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(request.len());
    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
    if head.contains("x-amz-target: dynamodb_") {
        Service::DynamoDb
    } else {
        Service::Kms
    }
}

/// A throttle as the service sends it. KMS and DynamoDB document their
/// throttles as HTTP 400 with `ThrottlingException` (KMS API reference,
/// "Common Errors"; DynamoDB developer guide, "Error handling"): an
/// awsJson error body whose `__type` names the exception (DynamoDB's with
/// its namespace), `x-amzn-RequestId`, and for DynamoDB the body's CRC32
/// in `x-amz-crc32`. HTTP 429 is what a throttling front end in the path
/// answers (`TooManyRequestsException`); the SDK reads the status alone
/// as a throttle, and envseal's metrics keep 400 and 429 apart.
fn throttle(service: Service, status: u16, n: u64) -> Vec<u8> {
    let (content_type, code, message) = match (service, status) {
        (Service::Kms, 400) => (
            "application/x-amz-json-1.1",
            "ThrottlingException",
            "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
        ),
        (Service::Kms, _) => (
            "application/x-amz-json-1.1",
            "TooManyRequestsException",
            "Too many requests",
        ),
        (Service::DynamoDb, _) => (
            "application/x-amz-json-1.0",
            "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        ),
    };
    let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
    let reason = if status == 429 {
        "Too Many Requests"
    } else {
        "Bad Request"
    };
    let crc = match service {
        Service::DynamoDb => format!("x-amz-crc32: {}\r\n", crc32(body.as_bytes())),
        Service::Kms => String::new(),
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nx-amzn-RequestId: chaos-{n:016x}\r\nContent-Type: {content_type}\r\n\
         {crc}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// CRC-32 (IEEE 802.3), as DynamoDB's `x-amz-crc32` carries it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Relays one request to the upstream and its answer back, then closes.
async fn forward(mut sock: TcpStream, upstream: &str, request: &[u8]) -> std::io::Result<()> {
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        sock.set_zero_linger()?;
        return Ok(());
    };
    up.write_all(&close_connection(request)).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    sock.write_all(&close_connection(&response)).await
}

async fn serve_connection(mut sock: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let Some(request) = read_request(&mut sock, &mut buf).await? else {
        return Ok(());
    };
    let service = service(&request);
    let now = state.now();
    let phase = now.map(|(i, _)| i);
    state.count(phase, |c| {
        c.requests += 1;
        c.dynamodb += u64::from(service == Service::DynamoDb);
    });
    let fault = now.map_or(Fault::None, |(i, _)| state.schedule.phases[i].fault);
    match fault {
        Fault::None => forward(sock, &state.upstream, &request).await,
        Fault::Throttle { share } => {
            let d = state.draw();
            if d < share {
                let status = if d < share / 2.0 { 400 } else { 429 };
                state.count(phase, |c| match status {
                    400 => c.throttled_400 += 1,
                    _ => c.throttled_429 += 1,
                });
                let n = state.draws.load(Ordering::Relaxed);
                sock.write_all(&throttle(service, status, n)).await
            } else {
                forward(sock, &state.upstream, &request).await
            }
        }
        Fault::Latency { delay, share, slow } => {
            let mut wait = delay;
            if state.draw() < share {
                state.count(phase, |c| c.slowed += 1);
                wait += slow;
            }
            tokio::time::sleep(wait).await;
            forward(sock, &state.upstream, &request).await
        }
        Fault::Outage { hang_share } => {
            if state.draw() < hang_share {
                state.count(phase, |c| c.hung += 1);
                let left = now.map_or(Duration::ZERO, |(_, left)| left);
                tokio::time::sleep(left).await;
            } else {
                state.count(phase, |c| c.reset += 1);
                sock.set_zero_linger()?;
            }
            Ok(())
        }
    }
}
