//! Monitoring: Prometheus metrics on a port of their own (`[metrics] listen`), and the certificate expiry watch.
//!
//! **Why hand-rolled.** The exposition format is a few lines of text, the counters here are a handful, and most
//! figures (backlog, children, store size) are read from the node at scrape time. `metrics-exporter-prometheus`
//! would bring its own HTTP server stack (hyper with http1, hyper-util, …) plus `metrics`' registry and
//! atomics crates, for what is ~300 lines here; and a process-wide registry would mix the nodes that tests and
//! `ecovol up` run in one process. So: one `Metrics` per node, a tower layer on the office server counting calls,
//! and a tiny HTTP/1.1 responder on a tokio listener that answers `GET /metrics`.
//!
//! Nothing personal is exported: method names, gRPC codes, counts, ages, sizes, division codes of children.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tonic::codegen::http;

use crate::app::App;
use crate::config::Config;

/// Upper bounds (seconds) of the latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Most distinct method labels; calls to further paths are counted as method "other" (a client cannot grow the
/// exposition without bound by calling made-up paths).
const METHODS_MAX: usize = 256;
/// A certificate that expires within this many days is warned about in the log (and by the sample alert).
pub const CERT_WARN_DAYS: i64 = 30;
/// How often the certificate files are checked.
const CERT_CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Upper bounds (seconds) of the flush latency histogram's buckets: a flush on a good disk takes well under a
/// millisecond to a few milliseconds; a quarter of a second is what the sample alert calls slow.
const FLUSH_BUCKETS: [f64; 15] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The duration of each group flush of the committer, as a histogram that the committer thread records into
/// without a lock (`CommitStats::flush_seconds`), exposed as `ecovol_committer_flush_duration_seconds`.
#[derive(Debug, Default)]
pub struct FlushHistogram {
    /// Flushes per bucket of `FLUSH_BUCKETS` (not cumulative); longer ones are counted in `count` only.
    buckets: [std::sync::atomic::AtomicU64; FLUSH_BUCKETS.len()],
    count: std::sync::atomic::AtomicU64,
    sum_micros: std::sync::atomic::AtomicU64,
}

impl FlushHistogram {
    /// Records one flush that took `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(index) = FLUSH_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Flushes recorded so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the histogram `name` (HELP, TYPE, cumulative buckets, sum, count) to `out`.
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        // Count first: a flush recorded while rendering then shows in +Inf at most one scrape late, never a
        // bucket above +Inf.
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let mut cumulative = 0;
        for (bound, bucket) in FLUSH_BUCKETS.iter().zip(&self.buckets) {
            cumulative = (cumulative + bucket.load(Ordering::Relaxed)).min(count);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}");
    }
}

/// A latency histogram (counts per bucket, not cumulative; the exposition makes them cumulative).
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(index) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[index] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Calls {
    /// (method, gRPC code name) → calls answered.
    answered: BTreeMap<(String, &'static str), u64>,
    latency: BTreeMap<String, Histogram>,
}

/// The metrics one node keeps itself (everything else is read from the node when scraped).
#[derive(Debug)]
pub struct Metrics {
    calls: Mutex<Calls>,
    /// Certificate kind ("federation", "office") → end of validity, as last read from the configured files.
    certificates: Mutex<BTreeMap<&'static str, DateTime<Utc>>>,
    /// `office.request_timeout_ms`: a call dropped after this long was ended by the deadline.
    timeout: Duration,
    /// (port, reason) → TLS handshakes refused (`server::accept_tls`); every refusal counts, none is sampled.
    tls_handshake_refusals: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    pub fn new(config: &Config) -> Arc<Metrics> {
        Arc::new(Metrics {
            calls: Mutex::new(Calls::default()),
            certificates: Mutex::new(BTreeMap::new()),
            timeout: Duration::from_millis(config.office.request_timeout_ms),
            tls_handshake_refusals: Mutex::new(BTreeMap::new()),
        })
    }

    /// Counts one TLS handshake refused on `port` ("office", "federation") for `reason` (one of the few words
    /// `server::refusal_reason` gives, so the label set stays small whatever the peers send).
    pub fn tls_handshake_refused(&self, port: &'static str, reason: &'static str) {
        if let Ok(mut refusals) = self.tls_handshake_refusals.lock() {
            *refusals.entry((port, reason)).or_insert(0) += 1;
        }
    }

    /// TLS handshakes refused so far on `port` for `reason` (for tests).
    pub fn tls_handshake_refusals(&self, port: &str, reason: &str) -> u64 {
        self.tls_handshake_refusals
            .lock()
            .map(|refusals| refusals.iter().filter(|((p, r), _)| *p == port && *r == reason).map(|(_, n)| *n).sum())
            .unwrap_or(0)
    }

    fn record(&self, path: &str, code: &'static str, elapsed: Duration) {
        let Ok(mut calls) = self.calls.lock() else { return };
        let method = method_label(path);
        let method =
            if calls.latency.contains_key(method) || calls.latency.len() < METHODS_MAX { method } else { "other" };
        *calls.answered.entry((method.to_string(), code)).or_insert(0) += 1;
        calls.latency.entry(method.to_string()).or_default().observe(elapsed.as_secs_f64());
    }

    /// Calls answered so far with `method` and `code` (for tests).
    pub fn calls(&self, method: &str, code: &str) -> u64 {
        self.calls
            .lock()
            .map(|calls| calls.answered.iter().filter(|((m, c), _)| m == method && *c == code).map(|(_, n)| *n).sum())
            .unwrap_or(0)
    }

    /// Reads the configured certificates' expiry, warns about those that expire within `CERT_WARN_DAYS`, and
    /// keeps their dates for the `ecovol_certificate_*` gauges.
    pub fn check_certificates(&self, config: &Config) {
        let now = Utc::now();
        for (kind, path) in certificate_files(config) {
            let not_after = match std::fs::read(&path)
                .map_err(|error| error.to_string())
                .and_then(|pem| certificate_not_after(&pem))
            {
                Ok(not_after) => not_after,
                Err(error) => {
                    tracing::warn!(certificate = kind, path = %path.display(), %error, "cannot read the certificate's expiry");
                    continue;
                }
            };
            if let Ok(mut certificates) = self.certificates.lock() {
                certificates.insert(kind, not_after);
            }
            let days = (not_after - now).num_days();
            if not_after <= now {
                tracing::error!(
                    certificate = kind,
                    path = %path.display(),
                    not_after = %not_after.to_rfc3339(),
                    "the certificate has EXPIRED: peers refuse it; issue a new one and reload (SIGHUP) or restart"
                );
            } else if days < CERT_WARN_DAYS {
                tracing::warn!(
                    certificate = kind,
                    path = %path.display(),
                    not_after = %not_after.to_rfc3339(),
                    days_left = days,
                    "the certificate expires soon: issue a new one (ecovol certs issue) and reload (SIGHUP) or restart"
                );
            }
        }
    }
}

/// The certificates a node presents: its federation certificate and its office TLS certificate.
fn certificate_files(config: &Config) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut files = Vec::new();
    if let Some(federation) = &config.federation {
        files.push(("federation", federation.cert_file.clone()));
    }
    if let Some(tls) = &config.office.tls {
        files.push(("office", tls.cert_file.clone()));
    }
    files
}

/// The end of validity of the first certificate in a PEM file (any certificate, not only node certificates).
pub fn certificate_not_after(pem: &[u8]) -> Result<DateTime<Utc>, String> {
    let der = CertificateDer::from_pem_slice(pem).map_err(|error| format!("no PEM certificate: {error}"))?;
    let (_, certificate) = x509_parser::parse_x509_certificate(&der).map_err(|error| error.to_string())?;
    let seconds = certificate.validity().not_after.timestamp();
    DateTime::<Utc>::from_timestamp(seconds, 0).ok_or_else(|| format!("validity end {seconds} out of range"))
}

/// `/ecovol.v1.VolunteerService/RegisterVolunteer` → `ecovol.v1.VolunteerService/RegisterVolunteer`; a path that
/// is not `/<service>/<method>` in plain characters is "other".
fn method_label(path: &str) -> &str {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let plain = trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'/');
    if plain && trimmed.matches('/').count() == 1 && trimmed.len() <= 200 { trimmed } else { "other" }
}

/// The name of a gRPC status code as `tonic::Code` spells it.
fn code_name(code: &[u8]) -> &'static str {
    match code {
        b"0" => "Ok",
        b"1" => "Cancelled",
        b"2" => "Unknown",
        b"3" => "InvalidArgument",
        b"4" => "DeadlineExceeded",
        b"5" => "NotFound",
        b"6" => "AlreadyExists",
        b"7" => "PermissionDenied",
        b"8" => "ResourceExhausted",
        b"9" => "FailedPrecondition",
        b"10" => "Aborted",
        b"11" => "OutOfRange",
        b"12" => "Unimplemented",
        b"13" => "Internal",
        b"14" => "Unavailable",
        b"15" => "DataLoss",
        b"16" => "Unauthenticated",
        _ => "Unknown",
    }
}

/// Tower layer for the office server: counts every call by method and gRPC code, and times it.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService { inner, metrics: self.metrics.clone() }
    }
}

/// See [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// Records a call when it is answered, or, if its future is dropped first (the server's deadline, or the client
/// went away), as DeadlineExceeded or Cancelled.
struct CallGuard {
    metrics: Arc<Metrics>,
    path: String,
    started: Instant,
    code: Option<&'static str>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let code = self.code.unwrap_or(if elapsed >= self.metrics.timeout { "DeadlineExceeded" } else { "Cancelled" });
        self.metrics.record(&self.path, code, elapsed);
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = CallGuard {
            metrics: self.metrics.clone(),
            path: request.uri().path().to_string(),
            started: Instant::now(),
            code: None,
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut guard = guard;
            let result = answer.await;
            // A refusal is "trailers only": its grpc-status is in the headers. A unary call answered with a message
            // carries grpc-status 0 in its trailers, after the body: counted as Ok here.
            guard.code = Some(match &result {
                Ok(response) => response.headers().get("grpc-status").map_or("Ok", |code| code_name(code.as_bytes())),
                Err(_) => "Internal",
            });
            result
        })
    }
}

/// The monitoring tasks of a running node (metrics port, certificate watch); stopped when dropped.
pub struct Monitoring {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The metrics port actually bound (`[metrics] listen` may name port 0).
    pub address: Option<std::net::SocketAddr>,
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Checks the certificates now and daily, and serves `GET /metrics` on `[metrics] listen` if set.
pub async fn start(app: &Arc<App>, metrics: &Arc<Metrics>) -> anyhow::Result<Monitoring> {
    let mut tasks = Vec::new();
    metrics.check_certificates(&app.config);
    {
        let (app, metrics) = (app.clone(), metrics.clone());
        tasks.push(tokio::spawn(async move {
            let mut daily = tokio::time::interval(CERT_CHECK_EVERY);
            daily.tick().await;
            loop {
                daily.tick().await;
                metrics.check_certificates(&app.config);
            }
        }));
    }
    let mut address = None;
    if !app.config.metrics.listen.is_empty() {
        let listener = TcpListener::bind(&app.config.metrics.listen)
            .await
            .with_context(|| format!("cannot listen on metrics.listen = {}", app.config.metrics.listen))?;
        address = listener.local_addr().ok();
        tracing::info!(address = ?address, "metrics port serving (GET /metrics)");
        tasks.push(tokio::spawn(serve_http(listener, app.clone(), metrics.clone())));
    }
    Ok(Monitoring { tasks, address })
}

async fn serve_http(listener: TcpListener, app: Arc<App>, metrics: Arc<Metrics>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics port: cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (app, metrics) = (app.clone(), metrics.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, app, metrics)).await;
        });
    }
}

/// Answers one HTTP/1.x request and closes the connection.
async fn answer(mut stream: TcpStream, app: Arc<App>, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 8192 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut words = std::str::from_utf8(line).unwrap_or_default().split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = tokio::task::spawn_blocking(move || render(&app, &metrics)).await.unwrap_or_default();
            ("200 OK", body)
        }
        ("GET" | "HEAD", "/") => ("200 OK", "ecovol node: metrics at GET /metrics\n".to_string()),
        ("GET" | "HEAD", _) => ("404 Not Found", "not found: metrics are at /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "only GET\n".to_string()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One metric family: HELP and TYPE lines, then `samples` (label text without braces, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The exposition (Prometheus text format 0.0.4) of a node now.
pub fn render(app: &App, metrics: &Metrics) -> String {
    let mut out = String::with_capacity(16 << 10);
    let now = Utc::now();
    let node = &app.config.node;
    let links = crate::federation::link::status(app);
    let level_name = match node.level {
        crate::config::Level::Province => "province",
        crate::config::Level::City => "city",
        crate::config::Level::County => "county",
    };
    family(
        &mut out,
        "ecovol_node_info",
        "gauge",
        "The node: division code, level, release.",
        &[(
            format!("code=\"{}\",level=\"{level_name}\",version=\"{}\"", label(&node.code), env!("CARGO_PKG_VERSION")),
            1.0,
        )],
    );
    family(
        &mut out,
        "ecovol_node_start_time_seconds",
        "gauge",
        "When the node started, unix seconds.",
        &[(String::new(), app.started_at.timestamp() as f64)],
    );

    if let Ok(calls) = metrics.calls.lock() {
        let answered: Vec<(String, f64)> = calls
            .answered
            .iter()
            .map(|((method, code), n)| (format!("method=\"{}\",code=\"{code}\"", label(method)), *n as f64))
            .collect();
        family(
            &mut out,
            "ecovol_grpc_requests_total",
            "counter",
            "Office API calls by method and gRPC code (Cancelled: the client left; DeadlineExceeded: office.request_timeout_ms).",
            &answered,
        );
        let _ = writeln!(
            out,
            "# HELP ecovol_grpc_request_duration_seconds Office API call latency, by method.\n\
             # TYPE ecovol_grpc_request_duration_seconds histogram"
        );
        for (method, histogram) in &calls.latency {
            let method = label(method);
            let mut cumulative = 0;
            for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "ecovol_grpc_request_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "ecovol_grpc_request_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}\n\
                 ecovol_grpc_request_duration_seconds_sum{{method=\"{method}\"}} {}\n\
                 ecovol_grpc_request_duration_seconds_count{{method=\"{method}\"}} {}",
                histogram.count, histogram.sum, histogram.count
            );
        }
    }

    if let Ok(refusals) = metrics.tls_handshake_refusals.lock() {
        let samples: Vec<(String, f64)> = refusals
            .iter()
            .map(|((port, reason), n)| (format!("port=\"{port}\",reason=\"{reason}\""), *n as f64))
            .collect();
        family(
            &mut out,
            "ecovol_tls_handshake_refusals_total",
            "counter",
            "TLS handshakes refused on the office and federation ports, by port and reason (unknown_ca, expired, \
             revoked, bad_certificate, no_certificate, not_tls, timeout, closed, other).",
            &samples,
        );
    }

    let stats = app.committer.stats();
    let counter = |value: &std::sync::atomic::AtomicU64| vec![(String::new(), value.load(Ordering::Relaxed) as f64)];
    family(&mut out, "ecovol_committer_jobs_total", "counter", "Writes run by the committer.", &counter(&stats.jobs));
    family(
        &mut out,
        "ecovol_committer_flushes_total",
        "counter",
        "Store flushes (one per group of writes).",
        &counter(&stats.flushes),
    );
    family(
        &mut out,
        "ecovol_committer_flush_seconds_total",
        "counter",
        "Time spent flushing; divided by ecovol_committer_flushes_total, the mean flush latency.",
        &[(String::new(), stats.flush_micros.load(Ordering::Relaxed) as f64 / 1e6)],
    );
    family(
        &mut out,
        "ecovol_committer_busy_seconds_total",
        "counter",
        "Time the single writer spent running writes (not waiting for them or for flushes); its rate near 1 means \
         writes are limited by the writer.",
        &[(String::new(), stats.busy_micros.load(Ordering::Relaxed) as f64 / 1e6)],
    );
    stats.flush_seconds.render(
        &mut out,
        "ecovol_committer_flush_duration_seconds",
        "Duration of each store flush (one per group of writes); every write waits for one.",
    );

    let outbox = app.committer.outbox();
    let linked = links.uplink.is_some();
    family(
        &mut out,
        "ecovol_outbox_backlog_entries",
        "gauge",
        "Entries waiting for the parent's acknowledgement (0 without a parent).",
        &[(String::new(), if linked { outbox.pending() as f64 } else { 0.0 })],
    );
    family(
        &mut out,
        "ecovol_outbox_backlog_max_entries",
        "gauge",
        "federation.backlog_entries_max: at it the node refuses new changes.",
        &[(String::new(), if linked { outbox.backlog_max() as f64 } else { 0.0 })],
    );
    family(
        &mut out,
        "ecovol_outbox_alarm",
        "gauge",
        "1 while the backlog is at its cap and new changes are refused.",
        &[(String::new(), if linked && outbox.alarm() { 1.0 } else { 0.0 })],
    );
    if let Some(uplink) = &links.uplink {
        let parent = format!("parent=\"{}\"", label(&uplink.parent_code));
        family(
            &mut out,
            "ecovol_uplink_error",
            "gauge",
            "1 when the last attempt to reach the parent failed.",
            &[(parent.clone(), if uplink.last_error.is_empty() { 0.0 } else { 1.0 })],
        );
        if let Some(ack) = uplink.last_ack.as_ref().and_then(crate::wire::from_timestamp) {
            family(
                &mut out,
                "ecovol_uplink_last_ack_age_seconds",
                "gauge",
                "Seconds since the parent last acknowledged entries (since this start).",
                &[(parent, (now - ack).num_milliseconds() as f64 / 1000.0)],
            );
        }
    }

    let child = |code: &str| format!("child=\"{}\"", label(code));
    let mut contact = Vec::new();
    let mut stale = Vec::new();
    let mut backlog = Vec::new();
    let mut applied = Vec::new();
    for status in &links.children {
        if let Some(last) = status.last_contact.as_ref().and_then(crate::wire::from_timestamp) {
            contact.push((child(&status.code), (now - last).num_milliseconds() as f64 / 1000.0));
        }
        stale.push((child(&status.code), if status.stale { 1.0 } else { 0.0 }));
        backlog.push((child(&status.code), status.backlog as f64));
        applied.push((child(&status.code), status.entries_applied as f64));
    }
    family(
        &mut out,
        "ecovol_child_last_contact_age_seconds",
        "gauge",
        "Seconds since each child last delivered or pulled.",
        &contact,
    );
    family(
        &mut out,
        "ecovol_child_stale",
        "gauge",
        "1 when the child has been silent longer than federation.stale_after_ms.",
        &stale,
    );
    family(
        &mut out,
        "ecovol_child_backlog_entries",
        "gauge",
        "Entries the child reported still holding for this node.",
        &backlog,
    );
    family(
        &mut out,
        "ecovol_child_entries_applied_total",
        "counter",
        "Entries applied from each child's subtree.",
        &applied,
    );

    match app.store.size_on_disk() {
        Ok(bytes) => family(
            &mut out,
            "ecovol_store_size_bytes",
            "gauge",
            "Bytes the store occupies on disk.",
            &[(String::new(), bytes as f64)],
        ),
        Err(error) => tracing::warn!(%error, "metrics: cannot read the store's size"),
    }

    let certificates = metrics.certificates.lock().map(|certificates| certificates.clone()).unwrap_or_default();
    let kind = |kind: &str| format!("certificate=\"{kind}\"");
    family(
        &mut out,
        "ecovol_certificate_days_left",
        "gauge",
        "Days until the certificate the node presents expires (negative: expired).",
        &certificates
            .iter()
            .map(|(k, not_after)| (kind(k), (*not_after - now).num_seconds() as f64 / 86_400.0))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "ecovol_certificate_not_after_timestamp_seconds",
        "gauge",
        "When the certificate the node presents expires, unix seconds.",
        &certificates.iter().map(|(k, not_after)| (kind(k), not_after.timestamp() as f64)).collect::<Vec<_>>(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_bounded_and_plain() {
        assert_eq!(method_label("/ecovol.v1.NodeService/GetNodeInfo"), "ecovol.v1.NodeService/GetNodeInfo");
        assert_eq!(method_label("/x/y/z"), "other");
        assert_eq!(method_label("/a\"b/c"), "other");
        assert_eq!(code_name(b"7"), "PermissionDenied");
        assert_eq!(code_name(b"99"), "Unknown");
    }

    #[test]
    fn a_histogram_puts_each_observation_in_the_first_bucket_that_holds_it() {
        let mut histogram = Histogram::default();
        for seconds in [0.0001, 0.003, 0.003, 20.0] {
            histogram.observe(seconds);
        }
        assert_eq!(histogram.buckets[0], 1);
        assert_eq!(histogram.buckets[3], 2);
        assert_eq!(histogram.buckets.iter().sum::<u64>(), 3, "20 s is only in +Inf");
        assert_eq!(histogram.count, 4);
    }

    #[test]
    fn the_flush_histogram_is_cumulative_and_ends_with_its_count() {
        let histogram = FlushHistogram::default();
        for micros in [50, 300, 300, 2_000, 9_000_000] {
            histogram.observe(Duration::from_micros(micros));
        }
        let mut out = String::new();
        histogram.render(&mut out, "flush", "help");
        let sample = |series: &str| {
            out.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')).unwrap_or_else(|| panic!("{out}"))
        };
        assert!(out.starts_with("# HELP flush help\n# TYPE flush histogram\n"), "{out}");
        assert_eq!(sample("flush_bucket{le=\"0.0001\"}"), "1");
        assert_eq!(sample("flush_bucket{le=\"0.0005\"}"), "3");
        assert_eq!(sample("flush_bucket{le=\"0.0025\"}"), "4");
        assert_eq!(sample("flush_bucket{le=\"5\"}"), "4", "9 s is only in +Inf");
        assert_eq!(sample("flush_bucket{le=\"+Inf\"}"), "5");
        assert_eq!(sample("flush_count"), "5");
        assert_eq!(sample("flush_sum"), "9.00265");
    }

    #[test]
    fn the_expiry_of_any_pem_certificate_is_read() {
        let (ca, _) = crate::federation::certs::generate_ca("test").unwrap();
        let not_after = certificate_not_after(ca.as_bytes()).unwrap();
        assert!(not_after > Utc::now() + chrono::Duration::days(3000));
        assert!(certificate_not_after(b"not pem").is_err());
    }
}
