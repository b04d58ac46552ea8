//! An in-process federation for tests: real nodes, each with its own sled folder, office port and federation
//! port on pre-bound loopback listeners, linked over real mutual TLS with certificates made for the test.
//!
//! ```ignore
//! let mut cluster = Cluster::start(&JIANGSU, "").await?;
//! // … office calls on cluster.node("320102") …
//! cluster.wait_delivered(Duration::from_secs(30)).await?;
//! cluster.restart("320100").await?;
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use ecovol_coordinator::region::DivisionCode;
use ecovol_node::config::Config;
use ecovol_node::federation::certs;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::federation_service_client::FederationServiceClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{Authed, Bearer, Tokens, bootstrap_accounts};

/// A province, two cities, four counties of Jiangsu (GB/T 2260), as (code, level, parent).
pub const JIANGSU: [(&str, &str, Option<&str>); 7] = [
    ("320000", "province", None),
    ("320100", "city", Some("320000")),
    ("320200", "city", Some("320000")),
    ("320102", "county", Some("320100")),
    ("320104", "county", Some("320100")),
    ("320205", "county", Some("320200")),
    ("320206", "county", Some("320200")),
];

/// The federation's CA and volunteer key, in a folder of the test.
pub struct FederationFiles {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub ca_key_pem: String,
}

impl FederationFiles {
    pub fn create(dir: &Path, name: &str) -> anyhow::Result<FederationFiles> {
        std::fs::create_dir_all(dir)?;
        let (ca_pem, ca_key_pem) = certs::generate_ca(name)?;
        std::fs::write(dir.join("ca.pem"), &ca_pem)?;
        certs::write_federation_key(&dir.join("federation.key"), true)?;
        Ok(FederationFiles { dir: dir.to_path_buf(), ca_pem, ca_key_pem })
    }

    /// A node certificate and key (PEM) of this federation for `code`.
    pub fn node_identity(&self, code: &str) -> anyhow::Result<(String, String)> {
        Ok(certs::issue_node_cert(
            &self.ca_pem,
            &self.ca_key_pem,
            DivisionCode::parse(code)?,
            &["localhost".into(), "127.0.0.1".into()],
        )?)
    }
}

/// One node of the cluster.
pub struct ClusterNode {
    pub code: String,
    pub level: &'static str,
    pub parent: Option<String>,
    pub office: SocketAddr,
    pub federation: SocketAddr,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub tokens: Tokens,
    /// False while the node runs without a `[federation]` section (an office working alone).
    pub linked: bool,
    pub channel: Option<Channel>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl ClusterNode {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn running(&self) -> bool {
        self.task.is_some()
    }

    /// An office client channel with `token` (the node must be running).
    pub fn authed(&self, token: &str) -> Authed {
        let channel = self.channel.clone().unwrap_or_else(|| panic!("node {} is stopped", self.code));
        InterceptedService::new(channel, Bearer::new(token))
    }

    pub fn staff(&self) -> Authed {
        self.authed(&self.tokens.staff)
    }
}

/// A running federation.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub files: FederationFiles,
    pub nodes: BTreeMap<String, ClusterNode>,
    extra_toml: String,
}

impl Cluster {
    /// Starts every node of `topology` (parents first). `extra_toml` is appended to every node's config (after
    /// the `[federation]` keys, so it may add federation keys such as `stale_after_ms = 1000`, or new sections).
    pub async fn start(topology: &[(&str, &'static str, Option<&str>)], extra_toml: &str) -> anyhow::Result<Cluster> {
        Self::start_with(topology, extra_toml, &[]).await
    }

    /// As `start`, with the nodes in `alone` configured without `[federation]` (see `link`).
    pub async fn start_with(
        topology: &[(&str, &'static str, Option<&str>)],
        extra_toml: &str,
        alone: &[&str],
    ) -> anyhow::Result<Cluster> {
        let root = tempfile::tempdir()?;
        let files = FederationFiles::create(&root.path().join("federation"), "test")?;
        let mut cluster = Cluster { root, files, nodes: BTreeMap::new(), extra_toml: extra_toml.to_string() };
        let mut federation_listeners = BTreeMap::new();
        let mut office_listeners = BTreeMap::new();
        for (code, _, _) in topology {
            federation_listeners.insert(code.to_string(), TcpListener::bind("127.0.0.1:0").await?);
            office_listeners.insert(code.to_string(), TcpListener::bind("127.0.0.1:0").await?);
        }
        for (code, level, parent) in topology {
            let dir = cluster.root.path().join(code);
            std::fs::create_dir_all(&dir)?;
            let (cert, key) = cluster.files.node_identity(code)?;
            std::fs::write(dir.join("node.pem"), cert)?;
            std::fs::write(dir.join("node.key.pem"), key)?;
            ecovol_node::crypto::NodeKeys::generate_file(&dir.join("node.key"))?;
            let node = ClusterNode {
                code: code.to_string(),
                level,
                parent: parent.map(str::to_string),
                office: office_listeners[*code].local_addr()?,
                federation: federation_listeners[*code].local_addr()?,
                dir: dir.clone(),
                config_path: dir.join("node.toml"),
                tokens: Tokens {
                    operator: String::new(),
                    staff: String::new(),
                    auditor: String::new(),
                    staff_civil_affairs: String::new(),
                },
                linked: !alone.contains(code),
                channel: None,
                shutdown: None,
                task: None,
            };
            cluster.nodes.insert(code.to_string(), node);
        }
        for (code, _, _) in topology {
            cluster.write_config(code)?;
            let config = Config::load_with_env(Some(&cluster.nodes[*code].config_path), std::iter::empty())?;
            let tokens = bootstrap_accounts(&config).await?;
            let node = cluster.nodes.get_mut(*code).context("node")?;
            node.tokens = tokens;
            let office = office_listeners.remove(*code).context("listener")?;
            let federation = federation_listeners.remove(*code).context("listener")?;
            Self::launch(node, config, office, federation).await?;
        }
        Ok(cluster)
    }

    fn write_config(&self, code: &str) -> anyhow::Result<()> {
        let node = &self.nodes[code];
        if !node.linked {
            let text = format!(
                "[node]\ncode = \"{code}\"\nlevel = \"{}\"\nname = \"测试 {code}\"\n\n\
                 [store]\npath = \"data\"\nkey_file = \"node.key\"\ncache_capacity_mb = 16\n\n\
                 [office]\nlisten = \"{}\"\nshutdown_grace_ms = 2000\n",
                node.level, node.office
            );
            std::fs::write(&node.config_path, text)?;
            return Ok(());
        }
        let parent = match &node.parent {
            Some(parent) => format!("parent = \"https://{}\"\n", self.nodes[parent].federation),
            None => String::new(),
        };
        let text = format!(
            "[node]\ncode = \"{code}\"\nlevel = \"{level}\"\nname = \"测试 {code}\"\n\n\
             [store]\npath = \"data\"\nkey_file = \"node.key\"\ncache_capacity_mb = 16\n\n\
             [office]\nlisten = \"{office}\"\nshutdown_grace_ms = 2000\n\n\
             [federation]\nca_file = \"{ca}\"\ncert_file = \"node.pem\"\nkey_file = \"node.key.pem\"\n\
             volunteer_key_file = \"{volunteer_key}\"\nlisten = \"{federation}\"\n{parent}\
             {poll}retry_backoff_ms_min = 50\nretry_backoff_ms_max = 400\nack_timeout_ms = 3000\n\
             {extra}\n",
            level = node.level,
            office = node.office,
            ca = self.files.dir.join("ca.pem").display(),
            volunteer_key = self.files.dir.join("federation.key").display(),
            federation = node.federation,
            extra = self.extra_toml,
            // Tests poll fast so that plans and notices arrive within their waits; a benchmark may set its own.
            poll = if self.extra_toml.contains("poll_interval_ms") { "" } else { "poll_interval_ms = 50\n" },
        );
        std::fs::write(&node.config_path, text)?;
        Ok(())
    }

    async fn launch(
        node: &mut ClusterNode,
        config: Config,
        office: TcpListener,
        federation: TcpListener,
    ) -> anyhow::Result<()> {
        let (shutdown, stop) = oneshot::channel::<()>();
        node.task = Some(tokio::spawn(ecovol_node::server::run_with(config, office, Some(federation), async move {
            let _ = stop.await;
        })));
        node.shutdown = Some(shutdown);
        let channel = Endpoint::from_shared(format!("http://{}", node.office))?
            .connect()
            .await
            .with_context(|| format!("connecting to node {}", node.code))?;
        node.channel = Some(channel);
        Ok(())
    }

    pub fn node(&self, code: &str) -> &ClusterNode {
        &self.nodes[code]
    }

    /// Stops a node gracefully (its folder stays). Its children keep their entries until it is back.
    pub async fn stop(&mut self, code: &str) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(code).context("no such node")?;
        node.channel = None;
        if let Some(shutdown) = node.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = node.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// Starts a stopped node again on the same ports and folder.
    pub async fn start_again(&mut self, code: &str) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(code).context("no such node")?;
        let config = Config::load_with_env(Some(&node.config_path), std::iter::empty())?;
        let office = bind_again(node.office).await?;
        let federation = bind_again(node.federation).await?;
        Self::launch(node, config, office, federation).await
    }

    /// Gives a node that worked alone its `[federation]` section and restarts it: it joins the federation.
    pub async fn link(&mut self, code: &str) -> anyhow::Result<()> {
        self.stop(code).await?;
        self.nodes.get_mut(code).context("no such node")?.linked = true;
        self.write_config(code)?;
        self.start_again(code).await
    }

    pub async fn restart(&mut self, code: &str) -> anyhow::Result<()> {
        self.stop(code).await?;
        self.start_again(code).await
    }

    /// The federation status of a running node.
    pub async fn status(&self, code: &str) -> anyhow::Result<pb::GetFederationStatusResponse> {
        let node = self.node(code);
        let mut client = pb::node_service_client::NodeServiceClient::new(node.staff());
        Ok(client.get_federation_status(pb::GetFederationStatusRequest {}).await?.into_inner())
    }

    /// Waits until everything written so far has reached the top: every running node with a parent has no
    /// unacknowledged entry. Counties are asked before cities, so an entry that moves up during the sweep is
    /// seen at its next stop.
    pub async fn wait_delivered(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut order: Vec<&ClusterNode> = self.nodes.values().filter(|n| n.parent.is_some() && n.linked).collect();
        order.sort_by_key(|node| match node.level {
            "county" => 0,
            "city" => 1,
            _ => 2,
        });
        loop {
            let mut pending = Vec::new();
            for node in &order {
                if !node.running() {
                    continue;
                }
                let uplink = self.status(&node.code).await?.uplink.unwrap_or_default();
                if uplink.backlog > 0 {
                    pending.push(format!("{}: backlog {} error {:?}", node.code, uplink.backlog, uplink.last_error));
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("not delivered in time: {pending:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A federation client to `target`'s federation port presenting `identity` (cert, key PEM) and trusting `ca`.
    pub async fn federation_client(
        &self,
        target: &str,
        ca_pem: &str,
        identity: Option<(String, String)>,
    ) -> anyhow::Result<FederationServiceClient<Channel>> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .domain_name(certs::node_dns_name(DivisionCode::parse(target)?));
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let channel = Endpoint::from_shared(format!("https://{}", self.node(target).federation))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        Ok(FederationServiceClient::new(channel))
    }

    /// Stops every node (children first), dropping clients so graceful shutdown is quick.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let codes: Vec<String> = self.nodes.keys().rev().cloned().collect();
        for code in codes {
            if self.nodes[&code].running() {
                self.stop(&code).await?;
            }
        }
        Ok(())
    }
}

/// Binds `address` again after its node stopped (the port may take a moment to be free).
async fn bind_again(address: SocketAddr) -> anyhow::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("cannot bind {address} again: {last:?}")
}
