//! Serving one node: `run` binds every service to a pre-bound listener and serves until `shutdown` resolves, then
//! lets in-flight requests finish and flushes the store. Tests start nodes with it on `127.0.0.1:0`.
//!
//! SIGHUP reloads what a running node can change without a restart (`reload_on_hangup`): the federation deny
//! list, the office port's certificate, key and client CA, and the federation port's and the links' certificate
//! files. Connections already open finish on what they started with.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ecovol_proto::v1::{
    account_service_server::AccountServiceServer, audit_service_server::AuditServiceServer,
    node_service_server::NodeServiceServer, project_service_server::ProjectServiceServer,
    sign_up_service_server::SignUpServiceServer, site_service_server::SiteServiceServer,
    team_service_server::TeamServiceServer, volunteer_service_server::VolunteerServiceServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::app::App;
use crate::audit::{self, AuditContext};
use crate::auth::Caller;
use crate::config::Config;
use crate::service::campaign::CampaignApi;
use crate::service::certificate::CertificateApi;
use crate::service::exchange::ExchangeApi;
use crate::service::federation::FederationApi;
use crate::service::hours::ServiceRecordApi;
use crate::service::plan::PlanApi;
use crate::service::recognition::RecognitionApi;
use crate::service::stats::StatsApi;
use crate::service::supervision::SupervisionApi;
use crate::service::{
    account::AccountApi, audit::AuditApi, node::NodeApi, project::ProjectApi, signup::SignUpApi, site::SiteApi,
    team::TeamApi, volunteer::VolunteerApi,
};
use ecovol_proto::v1::campaign_service_server::CampaignServiceServer;
use ecovol_proto::v1::certificate_service_server::CertificateServiceServer;
use ecovol_proto::v1::exchange_service_server::ExchangeServiceServer;
use ecovol_proto::v1::federation_service_server::FederationServiceServer;
use ecovol_proto::v1::plan_service_server::PlanServiceServer;
use ecovol_proto::v1::recognition_service_server::RecognitionServiceServer;
use ecovol_proto::v1::service_record_service_server::ServiceRecordServiceServer;
use ecovol_proto::v1::stats_service_server::StatsServiceServer;
use ecovol_proto::v1::supervision_service_server::SupervisionServiceServer;

/// Loads the config at `path`, starts logging, binds the office port and serves until SIGTERM or Ctrl-C.
pub async fn serve(path: &Path, json_logs: bool) -> anyhow::Result<()> {
    let config = Config::load(Some(path))?;
    crate::telemetry::init(&config.log, json_logs);
    let listener = TcpListener::bind(&config.office.listen)
        .await
        .with_context(|| format!("cannot listen on office.listen = {}", config.office.listen))?;
    run(config, listener, shutdown_signal()).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Serves the node on `listener` until `shutdown` resolves (binding `federation.listen` if configured).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    run_with(config, listener, None, shutdown).await
}

/// As `run`, with the federation port's listener bound by the caller (tests bind `127.0.0.1:0`).
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    federation_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let office_tls = match &config.office.tls {
        Some(tls) => Some(PortTls::new(office_tls_config(tls)?)),
        None => None,
    };
    let federation_listener = match (&config.federation, federation_listener) {
        (_, Some(listener)) => Some(listener),
        (Some(section), None) if !section.listen.is_empty() => Some(
            TcpListener::bind(&section.listen)
                .await
                .with_context(|| format!("cannot listen on federation.listen = {}", section.listen))?,
        ),
        _ => None,
    };
    let federation_tls = match &config.federation {
        Some(section) if federation_listener.is_some() => Some(federation_tls_config(section)?),
        _ => None,
    };
    let app = App::open(config).context("cannot open the node")?;
    crate::stars::install_rule(&app).await.context("recording the star rule of [stars]")?;
    let links = crate::federation::link::start(&app).context("starting the links to the parent")?;
    let links = Arc::new(std::sync::Mutex::new(links));
    let metrics = crate::metrics::Metrics::new(&app.config);
    let monitoring = crate::metrics::start(&app, &metrics).await.context("starting the metrics port")?;
    // The web console (docs/CONSOLE.md), on its own port when `console.listen` is set.
    let console_tls = match &app.config.office.tls {
        Some(tls) if !app.config.console.listen.is_empty() => Some(console_tls_config(tls)?),
        _ => None,
    };
    let console = crate::console::start(&app, console_tls).await.context("starting the console")?;
    let (reloader, reload) = reload_on_hangup(app.clone(), office_tls.clone(), metrics.clone());
    let relinker = tokio::spawn(relink_on_reload(app.clone(), links.clone(), reload.clone()));
    let (stop_federation, federation_stopped) = tokio::sync::watch::channel(false);
    let federation_server = match (federation_listener, federation_tls) {
        (Some(listener), Some(tls)) => {
            tracing::info!(address = ?listener.local_addr().ok(), "federation port serving (mutual TLS)");
            let tls = PortTls::new(tls);
            Some(tokio::spawn(serve_federation(
                app.clone(),
                listener,
                tls,
                federation_stopped.clone(),
                reload,
                metrics.clone(),
            )))
        }
        _ => None,
    };
    let address = listener.local_addr().ok();
    tracing::info!(
        code = %app.config.node.code,
        level = ?app.config.node.level,
        name = %app.config.node.name,
        address = ?address,
        tls = office_tls.is_some(),
        "node serving"
    );

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<VolunteerServiceServer<VolunteerApi>>().await;
    health_reporter.set_serving::<TeamServiceServer<TeamApi>>().await;
    health_reporter.set_serving::<ServiceRecordServiceServer<ServiceRecordApi>>().await;
    health_reporter.set_serving::<SiteServiceServer<SiteApi>>().await;
    health_reporter.set_serving::<AccountServiceServer<AccountApi>>().await;
    health_reporter.set_serving::<AuditServiceServer<AuditApi>>().await;
    health_reporter.set_serving::<NodeServiceServer<NodeApi>>().await;
    health_reporter.set_serving::<RecognitionServiceServer<RecognitionApi>>().await;
    health_reporter.set_serving::<ProjectServiceServer<ProjectApi>>().await;
    health_reporter.set_serving::<SignUpServiceServer<SignUpApi>>().await;
    health_reporter.set_serving::<StatsServiceServer<StatsApi>>().await;
    health_reporter.set_serving::<CertificateServiceServer<CertificateApi>>().await;
    health_reporter.set_serving::<SupervisionServiceServer<SupervisionApi>>().await;
    health_reporter.set_serving::<PlanServiceServer<PlanApi>>().await;
    health_reporter.set_serving::<CampaignServiceServer<CampaignApi>>().await;
    health_reporter.set_serving::<ExchangeServiceServer<ExchangeApi>>().await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ecovol_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ecovol_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let limit = app.config.office.message_bytes_max;
    let mut builder = Server::builder()
        .timeout(Duration::from_millis(app.config.office.request_timeout_ms))
        .concurrency_limit_per_connection(app.config.office.concurrency_per_connection_max)
        .tcp_nodelay(true)
        .layer(crate::metrics::GrpcMetricsLayer::new(metrics.clone()))
        // Reads refused with PermissionDenied leave an audit entry, as refused writes do.
        .layer(crate::service::read_refusal::ReadRefusalAuditLayer::new(app.clone()));
    let router = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            RecognitionServiceServer::new(RecognitionApi { app: app.clone() }).max_decoding_message_size(limit),
        )
        .add_service(VolunteerServiceServer::new(VolunteerApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(TeamServiceServer::new(TeamApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(
            ServiceRecordServiceServer::new(ServiceRecordApi { app: app.clone() }).max_decoding_message_size(limit),
        )
        .add_service(SiteServiceServer::new(SiteApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(AccountServiceServer::new(AccountApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(AuditServiceServer::new(AuditApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(NodeServiceServer::new(NodeApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(ProjectServiceServer::new(ProjectApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(SignUpServiceServer::new(SignUpApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(StatsServiceServer::new(StatsApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(
            CertificateServiceServer::new(CertificateApi { app: app.clone() }).max_decoding_message_size(limit),
        )
        .add_service(
            SupervisionServiceServer::new(SupervisionApi { app: app.clone() }).max_decoding_message_size(limit),
        )
        .add_service(PlanServiceServer::new(PlanApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(CampaignServiceServer::new(CampaignApi { app: app.clone() }).max_decoding_message_size(limit))
        .add_service(ExchangeServiceServer::new(ExchangeApi { app: app.clone() }).max_decoding_message_size(limit));

    let sweeper = tokio::spawn(retention_sweeps(app.clone()));
    // Graceful shutdown: stop accepting, let in-flight requests finish for up to the grace period, then close what
    // is left (an idle client may keep its connection open long after GOAWAY).
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving_stopped = async {
        let _ = serving_stopped.await;
    };
    type Serving<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send + 'a>>;
    let (mut serving, office_acceptor): (Serving<'_>, _) = match &office_tls {
        Some(tls) => {
            let (acceptor, incoming) = accept_tls(listener, tls.clone(), "office", app.clone(), metrics.clone());
            (Box::pin(router.serve_with_incoming_shutdown(incoming, serving_stopped)), Some(acceptor))
        }
        None => {
            // TCP_NODELAY on every accepted connection (tonic's `tcp_nodelay` only applies to listeners it binds):
            // without it an answer written in two parts waits ~40 ms for the client's delayed ACK (Nagle).
            let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |accepted| {
                if let Ok(stream) = &accepted {
                    let _ = stream.set_nodelay(true);
                }
                accepted
            });
            (Box::pin(router.serve_with_incoming_shutdown(incoming, serving_stopped)), None)
        }
    };
    let grace = Duration::from_millis(app.config.office.shutdown_grace_ms);
    let served = tokio::select! {
        served = &mut serving => served,
        () = shutdown => {
            tracing::info!(grace_ms = grace.as_millis() as u64, "shutting down: finishing in-flight requests");
            let _ = stop_serving.send(());
            if let Some(acceptor) = &office_acceptor {
                acceptor.abort();
            }
            match tokio::time::timeout(grace, &mut serving).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!("shutdown grace period over: closing the remaining connections");
                    Ok(())
                }
            }
        }
    };
    sweeper.abort();
    relinker.abort();
    reloader.abort();
    if let Some(acceptor) = &office_acceptor {
        acceptor.abort();
    }
    drop(monitoring);
    if let Some(console) = &console {
        console.abort();
    }
    for link in links.lock().map(|mut links| std::mem::take(&mut *links)).unwrap_or_default() {
        link.abort();
    }
    let _ = stop_federation.send(true);
    if let Some(server) = federation_server {
        match tokio::time::timeout(grace, server).await {
            Ok(Ok(Err(error))) => tracing::warn!(%error, "federation port"),
            Err(_) => tracing::warn!("federation port: grace period over"),
            _ => {}
        }
    }
    health_reporter.set_not_serving::<VolunteerServiceServer<VolunteerApi>>().await;
    // In-flight requests have finished (graceful shutdown); flush and stop the committer.
    app.committer.stop().await;
    tracing::info!(code = %app.config.node.code, "node stopped; store flushed");
    served.context("serving")
}

/// The TLS settings of the federation port, read from the files `[federation]` names.
/// The federation port's TLS from the files `[federation]` names: the node's certificate and key, and a client
/// certificate of the federation CA **required** of every peer (AUTH-1 then checks which node it names).
fn federation_tls_config(section: &crate::config::FederationSection) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let files =
        TlsFiles { cert_file: &section.cert_file, key_file: &section.key_file, client_ca_file: Some(&section.ca_file) };
    server_tls_config("federation", files, ClientCertificates::Required)
}

/// The rustls configuration of a port: what each new connection's handshake uses, replaced on SIGHUP (so a
/// rotated certificate serves the next connection while open ones finish on the old one).
struct PortTls(std::sync::RwLock<Arc<rustls::ServerConfig>>);

impl PortTls {
    fn new(config: Arc<rustls::ServerConfig>) -> Arc<PortTls> {
        Arc::new(PortTls(std::sync::RwLock::new(config)))
    }

    fn current(&self) -> Arc<rustls::ServerConfig> {
        match self.0.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, config: Arc<rustls::ServerConfig>) {
        match self.0.write() {
            Ok(mut current) => *current = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }
}

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many refused handshakes are logged per port and minute; the rest are counted in the next line.
const REFUSALS_LOGGED_PER_MINUTE: u32 = 20;

/// The certificate files of a port.
struct TlsFiles<'a> {
    cert_file: &'a Path,
    key_file: &'a Path,
    client_ca_file: Option<&'a Path>,
}

/// Whether a port's clients must present a certificate of its client CA.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientCertificates {
    /// The federation port: no certificate, no connection.
    Required,
    /// The office port: a certificate logs in, a token works too.
    Optional,
}

/// The office port's TLS from the files `[office.tls]` names: the node's certificate chain and key, and, with
/// `client_ca_file`, client certificates of that CA accepted but not required (a token works too; an account is
/// bound to a certificate by its SHA-256, `auth::authenticate`). HTTP/2 only (ALPN h2), ring as the provider.
fn office_tls_config(tls: &crate::config::TlsSection) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let files =
        TlsFiles { cert_file: &tls.cert_file, key_file: &tls.key_file, client_ca_file: tls.client_ca_file.as_deref() };
    server_tls_config("office.tls", files, ClientCertificates::Optional)
}

/// The console's TLS: the office port's certificate, key and client CA (client certificates requested, not
/// required), speaking HTTP/1.1.
fn console_tls_config(tls: &crate::config::TlsSection) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut config = (*office_tls_config(tls)?).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A port's rustls configuration; errors name the config keys under `section`. HTTP/2 only (ALPN h2), ring.
fn server_tls_config(
    section: &str,
    files: TlsFiles<'_>,
    clients: ClientCertificates,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject as _;
    let tls = files;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read =
        |path: &Path, key: &str| std::fs::read(path).with_context(|| format!("{section}.{key} {}", path.display()));
    let chain = CertificateDer::pem_slice_iter(&read(tls.cert_file, "cert_file")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow::anyhow!("{section}.cert_file {}: {error}", tls.cert_file.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{section}.cert_file {}: holds no PEM certificate", tls.cert_file.display());
    }
    let key = PrivateKeyDer::from_pem_slice(&read(tls.key_file, "key_file")?)
        .map_err(|error| anyhow::anyhow!("{section}.key_file {}: {error}", tls.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .with_context(|| format!("{section}: TLS protocol versions"))?;
    // The federation section names its CA `ca_file`, the office's `client_ca_file`.
    let ca_key = if clients == ClientCertificates::Required {
        format!("{section}.ca_file")
    } else {
        format!("{section}.client_ca_file")
    };
    let builder = match tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(&read(ca, "client_ca_file")?) {
                let certificate = certificate.map_err(|error| anyhow::anyhow!("{ca_key} {}: {error}", ca.display()))?;
                roots.add(certificate).with_context(|| format!("{ca_key} {}", ca.display()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("{ca_key} {}: holds no PEM certificate", ca.display());
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match clients {
                ClientCertificates::Required => verifier,
                ClientCertificates::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier.build().with_context(|| format!("{ca_key} {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "{section}: the key {} does not go with the certificate {}",
            tls.key_file.display(),
            tls.cert_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections on a port and runs each one's TLS handshake with the configuration current at that
/// moment, so a reloaded certificate serves the next connection. Handshakes run side by side, each bounded by
/// `HANDSHAKE_TIMEOUT`, so a slow client holds up nobody; finished ones go to the server. A refused handshake (a
/// wrong CA, an expired certificate, plain text…) is counted, logged and audited (`RefusalLog`). Aborting the
/// returned task closes the port.
fn accept_tls(
    listener: TcpListener,
    tls: Arc<PortTls>,
    port: &'static str,
    app: Arc<App>,
    metrics: Arc<crate::metrics::Metrics>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio_stream::wrappers::ReceiverStream<std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>,
) {
    let (handoff, incoming) = tokio::sync::mpsc::channel(64);
    let refusals = Arc::new(RefusalLog::new(app, metrics));
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, port, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if handoff.is_closed() {
                return;
            }
            let _ = stream.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let (handoff, refusals) = (handoff.clone(), refusals.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = handoff.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => refusals.refused(port, peer, Some(&error)).await,
                    Err(_) => refusals.refused(port, peer, None).await,
                }
            });
        }
    });
    (task, tokio_stream::wrappers::ReceiverStream::new(incoming))
}

/// Refused handshakes, reported three ways: every one counted in `ecovol_tls_handshake_refusals_total`; at most
/// `REFUSALS_LOGGED_PER_MINUTE` a minute per port logged as a warning and written to the audit trail (MLPS level
/// 3 audits failed access), the rest counted in one line and one audit entry when the minute is over. So a flood
/// of bad connections can fill neither the log nor the store (each audit entry is a durable write).
struct RefusalLog {
    app: Arc<App>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Start of the current minute, refusals logged in it, refusals not logged in it.
    window: std::sync::Mutex<Option<(std::time::Instant, u32, u64)>>,
}

impl RefusalLog {
    fn new(app: Arc<App>, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self { app, metrics, window: std::sync::Mutex::new(None) }
    }

    /// Reports a refused handshake: `error` is rustls's (inside the I/O error), or `None` when it timed out.
    async fn refused(&self, port: &'static str, peer: std::net::SocketAddr, error: Option<&std::io::Error>) {
        let reason = refusal_reason(error);
        let detail = error.map_or_else(|| "the TLS handshake timed out".to_string(), ToString::to_string);
        self.metrics.tls_handshake_refused(port, reason);
        let (log_this, suppressed_before) = {
            let mut window = match self.window.lock() {
                Ok(window) => window,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = std::time::Instant::now();
            let (started, logged, suppressed) = window.get_or_insert((now, 0, 0));
            let mut suppressed_before = 0;
            if now.duration_since(*started) >= Duration::from_secs(60) {
                suppressed_before = *suppressed;
                (*started, *logged, *suppressed) = (now, 0, 0);
            }
            if *logged < REFUSALS_LOGGED_PER_MINUTE {
                *logged += 1;
                (true, suppressed_before)
            } else {
                *suppressed += 1;
                (false, suppressed_before)
            }
        };
        if suppressed_before > 0 {
            tracing::warn!(port, suppressed = suppressed_before, "more TLS handshakes were refused in the last minute");
            let summary = format!(
                "{suppressed_before} more TLS handshakes were refused in the minute before, not audited one by one"
            );
            self.audit(port, "peer/various", "various peers".to_string(), summary).await;
        }
        if log_this {
            tracing::warn!(port, %peer, reason = %detail, "TLS handshake refused");
            let account = format!("peer/{}", peer.ip());
            self.audit(
                port,
                &account,
                format!("TLS client at {peer}"),
                format!("TLS handshake refused ({reason}): {detail}"),
            )
            .await;
        }
    }

    /// Writes one `denied` audit entry for `port`'s handshake, under the peer's address (no certificate was
    /// accepted, so no node or account can be named).
    async fn audit(&self, port: &'static str, account_id: &str, name: String, detail: String) {
        let operation = match port {
            "federation" => "TlsHandshake/federation",
            _ => "TlsHandshake/office",
        };
        let caller = Caller {
            account_id: account_id.to_string(),
            name,
            department: crate::auth::Department::System,
            roles: Vec::new(),
            team_id: None,
            volunteer_number: None,
            request_id: format!("tls-{port}"),
        };
        let context = AuditContext::new(&caller, operation, caller.name.clone());
        // The job fails with the refusal, so only its audit entry is written; any other error means the entry
        // could not be written.
        let refusal = crate::error::DomainError::Unauthenticated(detail);
        let written = self.app.committer.write(context, move |_| Err::<(), _>(refusal)).await;
        if let Err(failure @ (crate::error::DomainError::Unavailable(_) | crate::error::DomainError::Internal(_))) =
            written
        {
            tracing::error!(%failure, port, "a refused TLS handshake could not be audited");
        }
    }
}

/// The reason label of a refused handshake: a few fixed words, whatever the peer sent.
fn refusal_reason(error: Option<&std::io::Error>) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(error) = error else { return "timeout" };
    match error.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(certificate)) => match certificate {
            CertificateError::UnknownIssuer => "unknown_ca",
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => "expired",
            CertificateError::Revoked => "revoked",
            _ => "bad_certificate",
        },
        Some(Error::NoCertificatesPresented) => "no_certificate",
        Some(Error::InvalidMessage(_)) => "not_tls",
        Some(_) => "other",
        None => match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => "closed",
            std::io::ErrorKind::InvalidData => "not_tls",
            _ => "other",
        },
    }
}

/// On each SIGHUP, `reload`; a reload that succeeded then makes the federation port and the links to the parent
/// read their certificate files again (the returned counter, see `serve_federation` and `relink_on_reload`).
fn reload_on_hangup(
    app: Arc<App>,
    office_tls: Option<Arc<PortTls>>,
    metrics: Arc<crate::metrics::Metrics>,
) -> (tokio::task::JoinHandle<()>, tokio::sync::watch::Receiver<u64>) {
    let mut hangups = hangups();
    let (reloaded, reloads) = tokio::sync::watch::channel(0u64);
    let task = tokio::spawn(async move {
        while hangups.changed().await.is_ok() {
            match reload(&app, office_tls.as_deref(), &metrics) {
                Ok(()) => reloaded.send_modify(|count| *count += 1),
                Err(error) => tracing::error!(
                    error = format!("{error:#}"),
                    "SIGHUP: nothing reloaded; the node keeps its current settings and certificates"
                ),
            }
        }
    });
    (task, reloads)
}

/// Reads the config again (the same file and `ECOVOL__…` variables as at start; the current settings for a
/// config that came from no file) and applies what a running node can change: `federation.denied`, and the
/// office port's certificate, key and client CA, read from their files again even where the paths stayed (how
/// certificates rotate). Everything is checked before anything changes: an invalid config, or office TLS files
/// that cannot be used, change nothing and are the error returned. Other settings that changed are named in a
/// warning: they take effect at the next restart.
fn reload(app: &App, office_tls: Option<&PortTls>, metrics: &crate::metrics::Metrics) -> anyhow::Result<()> {
    let current = &app.config;
    let (config, from) = match current.reload() {
        Some(loaded) => {
            let file = current.source.as_ref().map(|source| source.file.display().to_string()).unwrap_or_default();
            (loaded.with_context(|| format!("the configuration {file} is refused"))?, file)
        }
        None => (current.clone(), "the settings in memory".to_string()),
    };
    let office = match (office_tls, &config.office.tls) {
        (Some(_), Some(section)) => Some(office_tls_config(section)?),
        (None, None) => None,
        (Some(_), None) => anyhow::bail!("office.tls was removed: serving the office port without TLS needs a restart"),
        (None, Some(_)) => anyhow::bail!("office.tls was added: serving the office port with TLS needs a restart"),
    };
    let denied = config.federation.as_ref().map(|section| section.denied.entries()).unwrap_or_default();
    let restart = restart_needed(current, &config);

    if let (Some(tls), Some(office)) = (office_tls, office) {
        tls.replace(office);
    }
    if let Some(section) = &current.federation {
        section.denied.replace(denied.clone());
    }
    metrics.check_certificates(&config);
    tracing::info!(
        from = %from,
        federation_denied = ?denied,
        office_tls = office_tls.is_some(),
        "SIGHUP: reloaded federation.denied ({} entries){}; new connections use them",
        denied.len(),
        if office_tls.is_some() { " and the office port's certificate, key and client CA" } else { "" }
    );
    if !restart.is_empty() {
        tracing::warn!(
            changed = %restart.join(", "),
            "SIGHUP: these settings changed but take effect only at the next restart"
        );
    }
    Ok(())
}

/// The sections of `new` that differ from `old` in settings a reload does not apply.
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    fn differ(old: &impl std::fmt::Debug, new: &impl std::fmt::Debug) -> bool {
        format!("{old:?}") != format!("{new:?}")
    }
    let office = |config: &Config| crate::config::OfficeSection { tls: None, ..config.office.clone() };
    let federation = |config: &Config| {
        config
            .federation
            .clone()
            .map(|section| crate::config::FederationSection { denied: Default::default(), ..section })
    };
    let mut changed = Vec::new();
    let sections: [(&'static str, bool); 12] = [
        ("[console]", differ(&old.console, &new.console)),
        ("[node]", differ(&old.node, &new.node)),
        ("[store]", differ(&old.store, &new.store)),
        ("[office] (other than [office.tls])", differ(&office(old), &office(new))),
        ("[audit]", differ(&old.audit, &new.audit)),
        ("[limits]", differ(&old.limits, &new.limits)),
        ("[hours]", differ(&old.hours, &new.hours)),
        ("[stars]", differ(&old.stars, &new.stars)),
        ("[log]", differ(&old.log, &new.log)),
        ("[metrics]", differ(&old.metrics, &new.metrics)),
        ("[plans]", differ(&old.plans, &new.plans)),
        ("[federation] (other than denied)", differ(&federation(old), &federation(new))),
    ];
    for (section, differs) in sections {
        if differs {
            changed.push(section);
        }
    }
    changed
}

/// A counter that goes up on each SIGHUP (unix).
fn hangups() -> tokio::sync::watch::Receiver<u64> {
    let (count, counted) = tokio::sync::watch::channel(0u64);
    #[cfg(unix)]
    if let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    signal = hangup.recv() => if signal.is_none() { return },
                    () = count.closed() => return,
                }
                tracing::info!("SIGHUP: reloading the configuration and the certificate files");
                count.send_modify(|n| *n += 1);
            }
        });
    }
    counted
}

/// Serves the federation port until `stopped`. On each successful SIGHUP reload the certificate, key and CA files
/// are read again and serve the next connection's handshake; open connections finish on the old ones, and no
/// connection is dropped by the reload. Files that cannot be used are logged and the previous ones kept.
async fn serve_federation(
    app: Arc<App>,
    listener: TcpListener,
    tls: Arc<PortTls>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    mut reload: tokio::sync::watch::Receiver<u64>,
    metrics: Arc<crate::metrics::Metrics>,
) -> anyhow::Result<()> {
    let (acceptor, incoming) = accept_tls(listener, tls.clone(), "federation", app.clone(), metrics);
    let reload_app = app.clone();
    let reloader = tokio::spawn(async move {
        while reload.changed().await.is_ok() {
            let Some(section) = reload_app.config.federation.as_ref() else { return };
            match federation_tls_config(section) {
                Ok(config) => {
                    tls.replace(config);
                    tracing::info!("federation port: certificate reloaded; new connections use it");
                }
                Err(error) => tracing::error!(
                    error = format!("{error:#}"),
                    "federation port: cannot use the certificate files; still serving the previous certificate"
                ),
            }
        }
    });
    let served = Server::builder()
        .timeout(Duration::from_millis(app.config.office.request_timeout_ms.max(30_000)))
        .add_service(
            FederationServiceServer::new(FederationApi { app: app.clone() })
                .max_decoding_message_size(64 << 20)
                // Children may compress (`federation.compression`); answers are compressed only when asked.
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
                .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                .send_compressed(tonic::codec::CompressionEncoding::Zstd),
        )
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await;
    acceptor.abort();
    reloader.abort();
    served.map_err(anyhow::Error::from)
}

/// After a reload: restarts the links to the parent so they present the reloaded certificate. The old links are stopped first and their last writes waited for (a no-op write queued
/// behind them), so the new links restore exactly what the old ones left, as after a restart.
async fn relink_on_reload(
    app: Arc<App>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    mut reload: tokio::sync::watch::Receiver<u64>,
) {
    while reload.changed().await.is_ok() {
        let (Some(section), Some(parent)) = (app.config.federation.as_ref(), app.federation.parent.as_ref()) else {
            continue;
        };
        if let Err(error) = crate::federation::link::parent_channel(section, parent) {
            tracing::error!(
                error = format!("{error:#}"),
                "cannot use the reloaded certificate files for the links to the parent; keeping the previous ones"
            );
            continue;
        }
        let old = links.lock().map(|mut links| std::mem::take(&mut *links)).unwrap_or_default();
        for link in &old {
            link.abort();
        }
        let _ = app.committer.write_unaudited(|_| Ok(())).await;
        match crate::federation::link::start(&app) {
            Ok(started) => {
                if let Ok(mut links) = links.lock() {
                    *links = started;
                }
                tracing::info!("links to the parent restarted with the reloaded certificate");
            }
            Err(error) => tracing::error!(
                error = format!("{error:#}"),
                "cannot restart the links to the parent: nothing is sent to it until the files are fixed and SIGHUP is sent again"
            ),
        }
    }
}

/// Removes audit entries older than the configured retention, hourly, in bounded batches; each sweep that removes
/// anything leaves its own audit entry.
async fn retention_sweeps(app: Arc<App>) {
    let retention = chrono::Duration::days(i64::from(app.config.audit.retention_days));
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticker.tick().await;
        let cutoff = chrono::Utc::now() - retention;
        match audit::has_entries_before(&*app.store, cutoff) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                tracing::warn!(%error, "audit retention sweep could not read the trail");
                continue;
            }
        }
        let context = AuditContext::new(&Caller::system("retention"), "Audit/RetentionSweep", "audit trail");
        let result = app
            .committer
            .write(context, move |txn| {
                let removed = audit::prune_before(txn, cutoff, 10_000)?;
                txn.detail = format!("removed {removed} entries older than {cutoff}");
                Ok(removed)
            })
            .await;
        if let Ok(removed) = result {
            tracing::info!(removed, "audit retention sweep");
        }
    }
}
