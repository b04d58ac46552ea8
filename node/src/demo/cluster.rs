//! The local federation of `ecovol up`: seven real nodes in this process, one province, two cities and four
//! counties, linked county → city → province over mutual TLS exactly as offices on separate servers would be.
//!
//! Folder layout (made on the first run, reused after):
//! - `certs/`: the federation CA (`ca.pem`, `ca.key`), one certificate and key per node (`<code>.pem`,
//!   `<code>.key`, for the node name plus `localhost` and `127.0.0.1`), and the pseudonym key `federation.key`;
//! - `<code>/`: one folder per node with its `node.toml`, `node.key`, `data/` (its own sled store) and
//!   `tokens.txt` (operator, staff and auditor tokens of its demo accounts).
//!
//! Ports: on the first run every port is picked free by the system (`127.0.0.1:0`) and written into the
//! node's `node.toml`; later runs listen on the same ports again, so the printed addresses and commands stay
//! valid. A port taken meanwhile is reported by name (node, key, file) instead of being moved silently: moving it
//! would also mean rewriting the parent addresses of the children. Counties take no children, so they have no
//! federation port (`federation.listen` is empty), as in a real deployment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use ecovol_coordinator::region::DivisionCode;
use ecovol_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use super::{Authed, DemoTokens, authed, create_accounts, read_tokens, write_tokens};
use crate::config::{Config, Level};
use crate::crypto::NodeKeys;
use crate::federation::certs;

/// One office of the demo federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// GB/T 2260 division code.
    pub code: &'static str,
    /// The place as people say it, for tables: 玄武区.
    pub short_name: &'static str,
    /// The office running the node (`node.name`).
    pub office_name: &'static str,
    /// The parent's code; `None` for the province.
    pub parent: Option<&'static str>,
}

/// The demo federation: 江苏省, its cities 南京市 and 无锡市, and two districts of each. Parents come before their
/// children, so starting in this order never leaves a child's parent unprepared.
pub const PLACES: [Place; 7] = [
    Place { code: "320000", short_name: "江苏省", office_name: "江苏省生态环境厅", parent: None },
    Place { code: "320100", short_name: "南京市", office_name: "南京市生态环境局", parent: Some("320000") },
    Place { code: "320200", short_name: "无锡市", office_name: "无锡市生态环境局", parent: Some("320000") },
    Place {
        code: "320102", short_name: "玄武区", office_name: "南京市玄武生态环境局", parent: Some("320100")
    },
    Place {
        code: "320104", short_name: "秦淮区", office_name: "南京市秦淮生态环境局", parent: Some("320100")
    },
    Place {
        code: "320205", short_name: "锡山区", office_name: "无锡市锡山生态环境局", parent: Some("320200")
    },
    Place {
        code: "320206", short_name: "惠山区", office_name: "无锡市惠山生态环境局", parent: Some("320200")
    },
];

/// The code of the top node.
pub const PROVINCE: &str = "320000";

impl Place {
    pub fn division_code(&self) -> DivisionCode {
        DivisionCode::parse(self.code).unwrap_or_else(|_| unreachable!("the demo's codes are valid"))
    }

    pub fn level(&self) -> Level {
        crate::federation::level_of(self.division_code())
    }

    /// The short name of the place with code `code` (the code itself if it is not a demo place).
    pub fn name_of(code: &str) -> &str {
        PLACES.iter().find(|place| place.code == code).map_or(code, |place| place.short_name)
    }
}

/// How the local federation runs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `federation.poll_interval_ms` of every node: how soon links look for work when nothing wakes them.
    pub poll_interval_ms: u64,
    /// Office address of the province on the first run (`None`: a free port). Later runs use the config's.
    pub province_listen: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self { poll_interval_ms: 200, province_listen: None }
    }
}

/// A running node of the local federation.
#[derive(Debug, Clone)]
pub struct DemoNode {
    pub place: Place,
    /// `<dir>/<code>`.
    pub folder: PathBuf,
    pub config_path: PathBuf,
    /// The office port (plain HTTP/2 on loopback).
    pub office: SocketAddr,
    /// The federation port (mutual TLS); `None` on a county.
    pub federation: Option<SocketAddr>,
    pub tokens: DemoTokens,
    /// The web console (`[console] listen`, plain HTTP on loopback); `None` for a folder made before it existed.
    pub console: Option<SocketAddr>,
    /// A channel to the office port.
    pub channel: Channel,
}

impl DemoNode {
    /// `http://127.0.0.1:PORT`, as `--node` takes it.
    pub fn office_url(&self) -> String {
        format!("http://{}", self.office)
    }

    /// Clients authenticated as this node's demo staff account.
    pub fn staff(&self) -> anyhow::Result<Authed> {
        authed(&self.channel, &self.tokens.staff)
    }

    /// Rolled-up statistics of `region` (empty: the node's whole territory) over `[start, end]`.
    pub async fn region_stats(
        &self,
        region: &str,
        start: NaiveDate,
        end: NaiveDate,
    ) -> anyhow::Result<pb::GetRegionStatsResponse> {
        let request = pb::GetRegionStatsRequest {
            region: region.into(),
            start_date: start.to_string(),
            end_date: end.to_string(),
        };
        let mut client = pb::stats_service_client::StatsServiceClient::new(self.staff()?);
        Ok(client.get_region_stats(request).await?.into_inner())
    }

    /// The node's own statistics (`GetStats`, computed from its records) over `[start, end]`.
    pub async fn stats(&self, start: NaiveDate, end: NaiveDate) -> anyhow::Result<pb::GetStatsResponse> {
        let request = pb::GetStatsRequest { start_date: start.to_string(), end_date: end.to_string() };
        let mut client = pb::stats_service_client::StatsServiceClient::new(self.staff()?);
        Ok(client.get_stats(request).await?.into_inner())
    }

    pub async fn federation_status(&self) -> anyhow::Result<pb::GetFederationStatusResponse> {
        let mut client = pb::node_service_client::NodeServiceClient::new(self.staff()?);
        Ok(client.get_federation_status(pb::GetFederationStatusRequest {}).await?.into_inner())
    }
}

/// The seven nodes, serving until [`LocalFederation::stop`] (or until dropped, which stops them without waiting).
pub struct LocalFederation {
    /// The demo's folder (absolute).
    pub dir: PathBuf,
    /// In the order of [`PLACES`].
    pub nodes: Vec<DemoNode>,
    stop: watch::Sender<bool>,
    servers: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

/// Prepares `dir` if needed (certificates, configs, keys, accounts) and starts its seven nodes. Returns once every
/// node answers on its office port.
pub async fn start_federation(dir: &Path, options: &ClusterOptions) -> anyhow::Result<LocalFederation> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let certs_dir = dir.join("certs");
    prepare_certificates(&certs_dir)?;
    let listeners = prepare_configs(&dir, options).await?;
    let (stop, stopped) = watch::channel(false);
    let mut prepared = Vec::new();
    // Accounts are made on each stopped store (as an operator would), in parallel: each opens its own store.
    let mut account_tasks = Vec::new();
    for (place, (office, federation)) in PLACES.iter().zip(listeners) {
        let folder = dir.join(place.code);
        let config_path = folder.join("node.toml");
        let config = Config::load_with_env(Some(&config_path), std::iter::empty())
            .with_context(|| format!("{} {}: {}", place.code, place.short_name, config_path.display()))?;
        if !config.store.key_file.exists() {
            NodeKeys::generate_file(&config.store.key_file)?;
        }
        let tokens_path = folder.join("tokens.txt");
        account_tasks.push(tokio::spawn(async move {
            let tokens = match read_tokens(&tokens_path) {
                Some(tokens) => tokens,
                None => {
                    let tokens = create_accounts(&config).await?;
                    write_tokens(&tokens_path, &tokens)?;
                    tokens
                }
            };
            anyhow::Ok((config, tokens))
        }));
        prepared.push((*place, folder, config_path, office, federation));
    }
    let mut nodes = Vec::new();
    let mut servers = Vec::new();
    for ((place, folder, config_path, office, federation), accounts) in prepared.into_iter().zip(account_tasks) {
        let (config, tokens) = accounts.await??;
        let office_address = office.local_addr()?;
        let federation_address = federation.as_ref().map(TcpListener::local_addr).transpose()?;
        let console = config.console.listen.parse::<SocketAddr>().ok();
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        servers.push((place.code, tokio::spawn(crate::server::run_with(config, office, federation, shutdown))));
        // The listener is bound already: the connection waits in its backlog until the server accepts.
        let channel = Endpoint::from_shared(format!("http://{office_address}"))?.connect_lazy();
        nodes.push(DemoNode {
            place,
            folder,
            config_path,
            office: office_address,
            federation: federation_address,
            tokens,
            console,
            channel,
        });
    }
    let mut federation = LocalFederation { dir, nodes, stop, servers };
    federation.wait_ready(Duration::from_secs(30)).await?;
    Ok(federation)
}

impl LocalFederation {
    /// The node of `code`.
    pub fn node(&self, code: &str) -> anyhow::Result<&DemoNode> {
        self.nodes.iter().find(|node| node.place.code == code).with_context(|| format!("no demo node {code}"))
    }

    pub fn province(&self) -> &DemoNode {
        &self.nodes[0]
    }

    /// The nodes of one level, in the order of [`PLACES`].
    pub fn at_level(&self, level: Level) -> impl Iterator<Item = &DemoNode> {
        self.nodes.iter().filter(move |node| node.place.level() == level)
    }

    /// The direct children of `code`.
    pub fn children_of<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a DemoNode> + 'a {
        self.nodes.iter().filter(move |node| node.place.parent == Some(code))
    }

    /// Waits until every node answers; a node that failed to start is reported with its own error.
    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for (node, (_, server)) in self.nodes.iter().zip(&mut self.servers) {
            loop {
                if server.is_finished() {
                    let outcome = server.await.map_err(anyhow::Error::from).and_then(|served| served);
                    let error = outcome.err().unwrap_or_else(|| anyhow::anyhow!("it stopped without an error"));
                    return Err(error.context(format!(
                        "node {} {} stopped during start-up",
                        node.place.code, node.place.short_name
                    )));
                }
                let mut client = pb::node_service_client::NodeServiceClient::new(node.staff()?);
                match client.get_node_info(pb::GetNodeInfoRequest {}).await {
                    Ok(_) => break,
                    Err(status) if Instant::now() > deadline => {
                        bail!(
                            "node {} {} did not answer within {within:?}: {status}",
                            node.place.code,
                            node.place.short_name
                        )
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
        Ok(())
    }

    /// Waits until the province holds every county's figures over `[start, end]`: its rolled-up totals equal the
    /// sum of the counties' own (each county's `GetRegionStats` of itself, the same definitions), and no uplink
    /// holds an entry its parent has not acknowledged. (The time of the last acknowledgement is not asked for:
    /// after a restart with nothing to send there is none.) Returns how long it took; on timeout the error
    /// says which part is missing and what each link reports.
    pub async fn wait_converged(&self, start: NaiveDate, end: NaiveDate, within: Duration) -> anyhow::Result<Duration> {
        let began = Instant::now();
        loop {
            let lagging = self.lagging(start, end).await?;
            if lagging.is_empty() {
                return Ok(began.elapsed());
            }
            if began.elapsed() > within {
                bail!(
                    "the province did not hold every county's figures within {within:?}:\n  {}",
                    lagging.join("\n  ")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What still keeps the federation from having converged (empty once it has).
    pub async fn lagging(&self, start: NaiveDate, end: NaiveDate) -> anyhow::Result<Vec<String>> {
        let mut lagging = Vec::new();
        for node in self.nodes.iter().filter(|node| node.place.parent.is_some()) {
            let status = node.federation_status().await?;
            let uplink = status.uplink.unwrap_or_default();
            if uplink.backlog > 0 {
                lagging.push(format!(
                    "{} {}: {} entries not yet acknowledged by {}{}",
                    node.place.code,
                    node.place.short_name,
                    uplink.backlog,
                    uplink.parent_code,
                    if uplink.last_error.is_empty() {
                        String::new()
                    } else {
                        format!(", last error: {}", uplink.last_error)
                    }
                ));
            }
        }
        let mut counties = pb::RegionTotals::default();
        for county in self.at_level(Level::County) {
            let own = county.region_stats("", start, end).await?.totals.unwrap_or_default();
            counties = add_totals(&counties, &own);
        }
        let province = self.province().region_stats("", start, end).await?.totals.unwrap_or_default();
        if province != counties {
            lagging.push(format!(
                "the province's totals {} differ from the sum of the counties' own {}",
                brief(&province),
                brief(&counties)
            ));
        }
        Ok(lagging)
    }

    /// Stops every node gracefully (in-flight requests finish, stores flushed); reports the first failure.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let mut first_failure = None;
        for (code, server) in std::mem::take(&mut self.servers) {
            let outcome = server.await.map_err(anyhow::Error::from).and_then(|served| served);
            if let Err(error) = outcome {
                first_failure.get_or_insert(error.context(format!("node {code}")));
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

impl Drop for LocalFederation {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Field-wise sum of two region totals (star levels merged), in the shape `GetRegionStats` answers.
pub fn add_totals(a: &pb::RegionTotals, b: &pb::RegionTotals) -> pb::RegionTotals {
    let mut stars = std::collections::BTreeMap::<u32, u64>::new();
    for count in a.star_distribution.iter().chain(&b.star_distribution) {
        *stars.entry(count.stars).or_default() += count.volunteers;
    }
    pb::RegionTotals {
        registered_volunteers: a.registered_volunteers + b.registered_volunteers,
        newly_registered_volunteers: a.newly_registered_volunteers + b.newly_registered_volunteers,
        active_volunteer_months: a.active_volunteer_months + b.active_volunteer_months,
        teams: a.teams + b.teams,
        projects_published: a.projects_published + b.projects_published,
        sign_ups_accepted: a.sign_ups_accepted + b.sign_ups_accepted,
        confirmed_hours_x100: a.confirmed_hours_x100 + b.confirmed_hours_x100,
        trainings: a.trainings + b.trainings,
        trainees: a.trainees + b.trainees,
        rating_sum: a.rating_sum + b.rating_sum,
        rating_count: a.rating_count + b.rating_count,
        star_distribution: stars
            .into_iter()
            .filter(|(_, volunteers)| *volunteers > 0)
            .map(|(stars, volunteers)| pb::StarCount { stars, volunteers })
            .collect(),
    }
}

fn brief(totals: &pb::RegionTotals) -> String {
    format!(
        "(volunteers {}, teams {}, projects {}, sign-ups {}, hours {}, trainings {}, ratings {})",
        totals.registered_volunteers,
        totals.teams,
        totals.projects_published,
        totals.sign_ups_accepted,
        crate::cli::stats::hours(totals.confirmed_hours_x100),
        totals.trainings,
        totals.rating_count
    )
}

/// Makes the CA, the node certificates and the pseudonym key that are missing (all of them on the first run).
fn prepare_certificates(certs_dir: &Path) -> anyhow::Result<()> {
    let ca_cert = certs_dir.join(certs::CA_CERT_FILE);
    let ca_key = certs_dir.join(certs::CA_KEY_FILE);
    if !ca_cert.exists() || !ca_key.exists() {
        if PLACES.iter().any(|place| certs_dir.join(format!("{}.pem", place.code)).exists()) {
            bail!(
                "{} holds node certificates but no CA: the folder is damaged; delete it or name another with --dir",
                certs_dir.display()
            );
        }
        certs::write_ca(certs_dir, "ecovol up demo", false)?;
    }
    let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
    for place in &PLACES {
        if !certs_dir.join(format!("{}.pem", place.code)).exists() {
            certs::write_node(certs_dir, &ca_cert, &ca_key, place.division_code(), &hosts, false)?;
        }
    }
    let federation_key = certs_dir.join("federation.key");
    if !federation_key.exists() {
        certs::write_federation_key(&federation_key, false)?;
    }
    Ok(())
}

type Listeners = (TcpListener, Option<TcpListener>);

/// Writes every node's `node.toml` on the first run (with free ports), or reads them back; returns each node's
/// bound office and federation listeners, in the order of [`PLACES`].
async fn prepare_configs(dir: &Path, options: &ClusterOptions) -> anyhow::Result<Vec<Listeners>> {
    let present: Vec<bool> = PLACES.iter().map(|place| dir.join(place.code).join("node.toml").exists()).collect();
    if present.iter().all(|present| *present) {
        return bind_configured(dir).await;
    }
    if present.iter().any(|present| *present) {
        bail!(
            "{} holds the configs of only some demo nodes (an earlier run was interrupted while preparing it): \
             delete it or name another with --dir",
            dir.display()
        );
    }
    let mut listeners = Vec::new();
    for place in &PLACES {
        let office = match (&options.province_listen, place.parent) {
            (Some(address), None) => {
                std::net::TcpListener::bind(address).with_context(|| format!("cannot listen on --listen {address}"))?
            }
            _ => std::net::TcpListener::bind("127.0.0.1:0")?,
        };
        let federation =
            if place.level() == Level::County { None } else { Some(std::net::TcpListener::bind("127.0.0.1:0")?) };
        listeners.push((office, federation));
    }
    let federation_address = |code: &str| -> anyhow::Result<Option<SocketAddr>> {
        let index = PLACES.iter().position(|place| place.code == code).context("unknown parent")?;
        Ok(listeners[index].1.as_ref().map(std::net::TcpListener::local_addr).transpose()?)
    };
    for (place, (office, federation)) in PLACES.iter().zip(&listeners) {
        let folder = dir.join(place.code);
        std::fs::create_dir_all(&folder)?;
        let parent = match place.parent {
            Some(parent) => {
                let address = federation_address(parent)?.context("a parent without a federation port")?;
                format!("parent = \"https://{address}\"\n")
            }
            None => String::new(),
        };
        let listen = match federation {
            Some(listener) => format!("listen = \"{}\"\n", listener.local_addr()?),
            None => String::new(),
        };
        // The web console on a free port of its own (docs/CONSOLE.md); `up` prints its address.
        let console = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let level = match place.level() {
            Level::Province => "province",
            Level::City => "city",
            Level::County => "county",
        };
        let text = format!(
            "# A node of the local federation made by `ecovol up`. Every key is explained in \
             deploy/node.example.toml.\n\
             [node]\ncode = \"{code}\"\nlevel = \"{level}\"\nname = \"{name}\"\n\n\
             [store]\npath = \"data\"\nkey_file = \"node.key\"\ncache_capacity_mb = 16\n\n\
             [office]\nlisten = \"{office}\"\n\n\
             [federation]\nca_file = \"../certs/ca.pem\"\ncert_file = \"../certs/{code}.pem\"\n\
             key_file = \"../certs/{code}.key\"\nvolunteer_key_file = \"../certs/federation.key\"\n\
             {listen}{parent}\
             # Short intervals so the demo converges in a second or two (the default is 1000).\n\
             poll_interval_ms = {poll}\nretry_backoff_ms_min = 100\nretry_backoff_ms_max = 2000\n\
             stale_after_ms = 30000\n\n\
             [console]\nlisten = \"{console}\"\n",
            code = place.code,
            name = place.office_name,
            office = office.local_addr()?,
            poll = options.poll_interval_ms,
        );
        std::fs::write(folder.join("node.toml"), text)?;
    }
    listeners
        .into_iter()
        .map(|(office, federation)| Ok((into_tokio(office)?, federation.map(into_tokio).transpose()?)))
        .collect()
}

fn into_tokio(listener: std::net::TcpListener) -> anyhow::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

/// Binds the ports written in the configs of an earlier run.
async fn bind_configured(dir: &Path) -> anyhow::Result<Vec<Listeners>> {
    let mut listeners = Vec::new();
    for place in &PLACES {
        let path = dir.join(place.code).join("node.toml");
        let config = Config::load_with_env(Some(&path), std::iter::empty())
            .with_context(|| format!("{} {}: {}", place.code, place.short_name, path.display()))?;
        let bind = async |key: &str, address: &str| {
            TcpListener::bind(address).await.with_context(|| {
                format!(
                    "node {} {} cannot listen on {key} = {address} (set in {}): the port is in use. Is another \
                     `ecovol up` running on {}? Stop it, free the port, or start afresh with another --dir",
                    place.code,
                    place.short_name,
                    path.display(),
                    dir.display()
                )
            })
        };
        let office = bind("office.listen", &config.office.listen).await?;
        let federation = match config.federation.as_ref().filter(|section| !section.listen.is_empty()) {
            Some(section) => Some(bind("federation.listen", &section.listen).await?),
            None => None,
        };
        listeners.push((office, federation));
    }
    Ok(listeners)
}
