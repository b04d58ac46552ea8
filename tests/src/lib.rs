//! Test harness for ecovol: real nodes on pre-bound loopback listeners with their own temporary sled directories,
//! real gRPC clients, and real `ecovol` processes for what only processes show (kill -9, restart).
//!
//! ```ignore
//! let node = TestNode::start(NodeSpec::county("330106")).await?;
//! let mut volunteers = node.volunteers(&node.staff_token);
//! ```

pub mod bench;
pub mod browser;
pub mod cluster;
pub mod federation_load;
pub mod fixtures;
pub mod process;
pub mod proxy;
pub mod scenario;
pub mod sim;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use ecovol_node::account::{CreateAccount, offline};
use ecovol_node::auth::{Department, Role};
use ecovol_node::config::Config;
use ecovol_proto::v1::{
    account_service_client::AccountServiceClient, audit_service_client::AuditServiceClient,
    node_service_client::NodeServiceClient, site_service_client::SiteServiceClient,
    team_service_client::TeamServiceClient, volunteer_service_client::VolunteerServiceClient,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// What node to start.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub code: String,
    pub level: &'static str,
    pub name: String,
    /// Extra TOML appended to the generated config (e.g. `[office.tls]`).
    pub extra_toml: String,
}

impl NodeSpec {
    pub fn county(code: &str) -> Self {
        Self { code: code.into(), level: "county", name: format!("测试县 {code}"), extra_toml: String::new() }
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Bearer(MetadataValue::from_str(&format!("Bearer {token}")).ok())
    }

    pub fn none() -> Self {
        Bearer(None)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// Tokens of the accounts every test node is created with (one per role).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub operator: String,
    pub staff: String,
    pub auditor: String,
    /// Staff of another department (civil affairs), for department checks.
    pub staff_civil_affairs: String,
}

/// A node of the federation serving in this test process.
pub struct TestNode {
    pub address: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub tokens: Tokens,
    pub channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Writes a node's config and key into `dir`; returns the config path.
pub fn write_node_files(dir: &Path, spec: &NodeSpec, listen: &str) -> anyhow::Result<PathBuf> {
    let config_path = dir.join("node.toml");
    let text = format!(
        "[node]\ncode = \"{}\"\nlevel = \"{}\"\nname = \"{}\"\n\n[store]\npath = \"data\"\nkey_file = \"node.key\"\ncache_capacity_mb = 16\n\n[office]\nlisten = \"{listen}\"\n{}\n",
        spec.code, spec.level, spec.name, spec.extra_toml
    );
    std::fs::write(&config_path, text)?;
    let key = dir.join("node.key");
    if !key.exists() {
        ecovol_node::crypto::NodeKeys::generate_file(&key)?;
    }
    Ok(config_path)
}

/// Creates the standard accounts on a stopped node's store.
pub async fn bootstrap_accounts(config: &Config) -> anyhow::Result<Tokens> {
    let make = async |name: &str, department: Department, role: Role| -> anyhow::Result<String> {
        let command = CreateAccount {
            name: name.into(),
            department,
            roles: vec![role],
            team_id: None,
            volunteer_number: None,
            client_cert_sha256: None,
        };
        Ok(offline::create(config, command).await?.1)
    };
    Ok(Tokens {
        operator: make("运维 ops", Department::EcologyBureau, Role::Operator).await?,
        staff: make("工作人员 staff", Department::EcologyBureau, Role::Staff).await?,
        auditor: make("审计 auditor", Department::EcologyBureau, Role::Auditor).await?,
        staff_civil_affairs: make("民政 staff", Department::CivilAffairs, Role::Staff).await?,
    })
}

impl TestNode {
    /// Starts a node in this process on `127.0.0.1:0` with a fresh store and the standard accounts.
    pub async fn start(spec: NodeSpec) -> anyhow::Result<TestNode> {
        let dir = tempfile::tempdir()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let config_path = write_node_files(dir.path(), &spec, &address.to_string())?;
        let config = Config::load_with_env(Some(&config_path), std::iter::empty())?;
        let tokens = bootstrap_accounts(&config).await?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(ecovol_node::server::run(config, listener, async move {
            let _ = stop.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{address}"))?
            .connect()
            .await
            .context("connecting to the test node")?;
        Ok(TestNode { address, dir, config_path, tokens, channel, shutdown: Some(shutdown), task: Some(task) })
    }

    /// Stops the node gracefully (in-flight requests finish, store flushed). Returns the node's folder, which
    /// is deleted when the returned value is dropped, so a test can still look at the stopped node's files.
    pub async fn stop(mut self) -> anyhow::Result<tempfile::TempDir> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(std::mem::replace(&mut self.dir, tempfile::tempdir()?))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn authed(&self, token: &str) -> Authed {
        InterceptedService::new(self.channel.clone(), Bearer::new(token))
    }

    pub fn volunteers(&self, token: &str) -> VolunteerServiceClient<Authed> {
        VolunteerServiceClient::new(self.authed(token))
    }

    pub fn teams(&self, token: &str) -> TeamServiceClient<Authed> {
        TeamServiceClient::new(self.authed(token))
    }

    pub fn sites(&self, token: &str) -> SiteServiceClient<Authed> {
        SiteServiceClient::new(self.authed(token))
    }

    pub fn accounts(&self, token: &str) -> AccountServiceClient<Authed> {
        AccountServiceClient::new(self.authed(token))
    }

    pub fn audit(&self, token: &str) -> AuditServiceClient<Authed> {
        AuditServiceClient::new(self.authed(token))
    }

    pub fn node(&self, token: &str) -> NodeServiceClient<Authed> {
        NodeServiceClient::new(self.authed(token))
    }

    /// Clients with no credentials at all.
    pub fn anonymous_volunteers(&self) -> VolunteerServiceClient<Authed> {
        VolunteerServiceClient::new(InterceptedService::new(self.channel.clone(), Bearer::none()))
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Runs `ecovol ARGS` in this process (`ecovol_node::cli::run_with`); returns (exit code, standard output,
/// standard error).
pub async fn run_ecovol(args: &[&str]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args = std::iter::once("ecovol").chain(args.iter().copied()).map(str::to_string);
    let code = ecovol_node::cli::run_with(args, &mut out, &mut err).await;
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

/// As `run_ecovol`, as `ecovol --node <office address> --token <token> ARGS`.
pub async fn run_ecovol_on(office: std::net::SocketAddr, token: &str, args: &[&str]) -> (i32, String, String) {
    let address = format!("http://{office}");
    let all: Vec<&str> =
        ["--node", address.as_str(), "--token", token].into_iter().chain(args.iter().copied()).collect();
    run_ecovol(&all).await
}

/// The field names of a status's `google.rpc.BadRequest` violations.
/// A loopback port nobody listens on right now (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_or(0, |address| address.port())
}

/// `GET path` over plain HTTP/1.1 on a loopback port (the metrics port); (status line, body). A node just
/// (re)started may not have bound its port yet: connecting is retried for five seconds.
pub async fn http_get(port: u16, path: &str) -> anyhow::Result<(String, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut attempts = 0;
    let mut stream = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => break stream,
            Err(_) if attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error).with_context(|| format!("port {port}")),
        }
    };
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").context("an HTTP answer")?;
    Ok((head.lines().next().unwrap_or_default().to_string(), body.to_string()))
}

/// The value of one series (`name` or `name{labels}`, as written) in a Prometheus text body.
pub fn metric_value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
}

pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|bad| bad.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&next) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path);
                }
            }
        }
    }
    out
}

/// Every needle that occurs in the bytes of some file under `dir`, with the first file it was found in. Each file
/// is read once, and each needle length is checked with one sliding window over a hash set, so thousands of
/// needles cost about as much as one.
pub fn needles_found_under(dir: &Path, needles: &[&[u8]]) -> Vec<(String, PathBuf)> {
    use std::collections::{BTreeMap, HashSet};
    let mut by_length: BTreeMap<usize, HashSet<&[u8]>> = BTreeMap::new();
    for needle in needles.iter().filter(|needle| !needle.is_empty()) {
        by_length.entry(needle.len()).or_default().insert(needle);
    }
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in files_under(dir) {
        let Ok(bytes) = std::fs::read(&path) else { continue };
        for (length, set) in &by_length {
            for window in bytes.windows(*length) {
                if set.contains(window) {
                    found.entry(String::from_utf8_lossy(window).into_owned()).or_insert_with(|| path.clone());
                }
            }
        }
    }
    found.into_iter().collect()
}

/// True if `needle` occurs anywhere in the bytes of any file under `dir`.
pub fn bytes_occur_under(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    files_under(dir).into_iter().find(|path| {
        std::fs::read(path).map(|bytes| bytes.windows(needle.len()).any(|window| window == needle)).unwrap_or(false)
    })
}

/// A channel to a node serving TLS on `address`: trusts `ca_pem`, expects the name "localhost" in the node's
/// certificate, and presents `identity` (a client certificate and its key) if given.
pub async fn tls_channel(
    address: SocketAddr,
    ca_pem: &[u8],
    identity: Option<tonic::transport::Identity>,
) -> anyhow::Result<Channel> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Ok(Endpoint::from_shared(format!("https://{address}"))?.tls_config(tls)?.connect().await?)
}

impl TestNode {
    /// Starts a node like `start`, but serving TLS: `files` (name, contents) are written into the node's folder
    /// first, so `spec.extra_toml` can name them relative to the config (`[office.tls]` with `cert_file = "…"`),
    /// and the harness connects over TLS trusting `ca_pem` (see `tls_channel`).
    pub async fn start_tls(spec: NodeSpec, files: &[(&str, &[u8])], ca_pem: &[u8]) -> anyhow::Result<TestNode> {
        let dir = tempfile::tempdir()?;
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents)?;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let config_path = write_node_files(dir.path(), &spec, &address.to_string())?;
        let config = Config::load_with_env(Some(&config_path), std::iter::empty())?;
        let tokens = bootstrap_accounts(&config).await?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(ecovol_node::server::run(config, listener, async move {
            let _ = stop.await;
        }));
        let channel = tls_channel(address, ca_pem, None).await.context("connecting to the test node over TLS")?;
        Ok(TestNode { address, dir, config_path, tokens, channel, shutdown: Some(shutdown), task: Some(task) })
    }
}
