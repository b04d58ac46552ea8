//! `ecovol up`: a whole federation on this machine, with no external services — the first thing to run.
//!
//! One process serves seven real nodes: the province 江苏省 (320000), its cities 南京市 (320100) and 无锡市
//! (320200), and two districts of each (玄武区 320102 and 秦淮区 320104; 锡山区 320205 and 惠山区 320206).
//! Each node has its own folder, store, office port and certificates, and they link county → city → province
//! over mutual TLS as separate offices would ([`cluster`]). Synthetic data is entered through each county's
//! office API ([`data`]); the cities and the province learn everything through the federation. `up` then waits
//! until the province's roll-up holds every county's figures, prints the province's statistics with each city's
//! breakdown, and how to reach every node from the command line ([`report`]).
//!
//! Running it again reuses the folder (default `./ecovol-up`): configs, ports, certificates, accounts and data.
//! All people in the demo data are synthetic.

pub mod cluster;
pub mod data;
pub mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ecovol_proto::v1 as pb;
use tonic::transport::Channel;

pub use cluster::{ClusterOptions, DemoNode, LocalFederation, PLACES, Place, start_federation};
pub use data::{DataPlan, Loaded};

use crate::account::{CreateAccount, offline};
use crate::auth::{Department, Role};
use crate::cli::connection::Credentials;
use crate::config::{Config, Level};

/// What `ecovol up` should do.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The demo's folder.
    pub dir: PathBuf,
    /// Office address of the province node on the first run (`None`: a free port).
    pub listen: Option<String>,
    /// Synthetic volunteers registered in each of the four counties on the first run.
    pub volunteers_per_county: u32,
    /// Stop after loading and printing (for tests and scripts).
    pub exit_after_load: bool,
    /// Seed of the synthetic data.
    pub seed: u64,
    /// Print the summary as JSON instead of tables.
    pub json: bool,
}

/// How long `up` waits for the province to hold every county's figures.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `up` waits for the mutual recognition notices to reach the counties, once converged.
const RECOGNITION_TIMEOUT: Duration = Duration::from_secs(15);

/// What `up` measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Preparing the folder and starting the seven nodes.
    pub start: Duration,
    /// Loading the synthetic data (`None` when it was loaded by an earlier run).
    pub load: Option<Duration>,
    /// From the end of loading until the province held every county's figures (`None` if it never did).
    pub convergence: Option<Duration>,
}

/// Starts the local federation, loads the demo data once, waits until the province holds every county's
/// figures, prints the summary, and serves until Ctrl-C (or returns after printing with `exit_after_load`).
pub async fn up(options: UpOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let began = Instant::now();
    let cluster_options = ClusterOptions { province_listen: options.listen.clone(), ..ClusterOptions::default() };
    let federation = start_federation(&options.dir, &cluster_options).await?;
    let mut timings = Timings { start: began.elapsed(), ..Timings::default() };
    let province = federation.province();
    if let Some(listen) = &options.listen
        && listen.parse::<std::net::SocketAddr>().ok() != Some(province.office)
    {
        eprintln!(
            "note: --listen applies to a new folder only: the province keeps {} from {}",
            province.office,
            province.config_path.display()
        );
    }
    let demo_file = federation.dir.join("demo.json");
    let (loaded, fresh) = match read_loaded(&demo_file)? {
        Some(loaded) => (loaded, false),
        None => {
            refuse_partial_load(&federation).await?;
            let plan = DataPlan {
                volunteers_per_county: options.volunteers_per_county,
                seed: options.seed,
                today: crate::wire::today_china(),
            };
            let loading = Instant::now();
            let loaded = data::load(&federation, plan).await?;
            timings.load = Some(loading.elapsed());
            std::fs::write(&demo_file, serde_json::to_vec_pretty(&loaded)?)
                .with_context(|| format!("cannot write {}", demo_file.display()))?;
            (loaded, true)
        }
    };
    let converging = Instant::now();
    let converged = federation.wait_converged(loaded.start_date, loaded.end_date, CONVERGENCE_TIMEOUT).await;
    let warning = match converged {
        Ok(_) => {
            timings.convergence = Some(converging.elapsed());
            wait_recognised(&federation, &loaded).await?
        }
        Err(error) if options.exit_after_load => {
            federation.stop().await?;
            return Err(error);
        }
        Err(error) => Some(format!("{error:#}")),
    };
    let summary = report::gather(&federation, &loaded, fresh, timings).await?;
    if options.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report::json(&summary))?)?;
    } else {
        out.write_all(report::text(&summary).as_bytes())?;
    }
    if let Some(warning) = warning {
        writeln!(out, "warning: {warning}")?;
    }
    if options.exit_after_load {
        return federation.stop().await;
    }
    if !options.json {
        writeln!(out, "serving until Ctrl-C")?;
    }
    out.flush()?;
    crate::server::shutdown_signal().await;
    federation.stop().await
}

/// Waits until every mobile person's hours are recognised in each of their counties; a warning if they are not.
async fn wait_recognised(federation: &LocalFederation, loaded: &Loaded) -> anyhow::Result<Option<String>> {
    let began = Instant::now();
    loop {
        let recognition = data::recognition(federation, loaded).await?;
        if recognition.iter().all(data::Recognition::complete) {
            return Ok(None);
        }
        if began.elapsed() > RECOGNITION_TIMEOUT {
            return Ok(Some(format!(
                "mutual recognition incomplete after {RECOGNITION_TIMEOUT:?}: some county has not been told the \
                 hours its volunteer served elsewhere: {recognition:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read_loaded(path: &Path) -> anyhow::Result<Option<Loaded>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))?))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Refuses to load over data that an interrupted earlier run left behind (it would be loaded twice).
async fn refuse_partial_load(federation: &LocalFederation) -> anyhow::Result<()> {
    for county in federation.at_level(Level::County) {
        let mut teams = pb::team_service_client::TeamServiceClient::new(county.staff()?);
        let existing = teams.list_teams(pb::ListTeamsRequest { page_size: 1, ..Default::default() }).await?;
        if !existing.into_inner().teams.is_empty() {
            bail!(
                "{} {} holds demo data but {} does not record a finished load (an earlier run was interrupted \
                 while loading): delete {} and run again, or name another folder with --dir",
                county.place.code,
                county.place.short_name,
                federation.dir.join("demo.json").display(),
                federation.dir.display()
            );
        }
    }
    Ok(())
}

/// Tokens of the demo accounts of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTokens {
    pub operator: String,
    pub staff: String,
    pub auditor: String,
}

/// Creates the demo accounts on a stopped node's store, as an operator at the console would.
async fn create_accounts(config: &Config) -> anyhow::Result<DemoTokens> {
    let make = async |name: &str, role: Role| -> anyhow::Result<String> {
        let command = CreateAccount {
            name: name.into(),
            department: Department::EcologyBureau,
            roles: vec![role],
            team_id: None,
            volunteer_number: None,
            client_cert_sha256: None,
        };
        Ok(offline::create(config, command).await?.1)
    };
    Ok(DemoTokens {
        operator: make("演示运维", Role::Operator).await?,
        staff: make("演示工作人员", Role::Staff).await?,
        auditor: make("演示审计员", Role::Auditor).await?,
    })
}

fn write_tokens(path: &Path, tokens: &DemoTokens) -> anyhow::Result<()> {
    let text = format!("operator {}\nstaff {}\nauditor {}\n", tokens.operator, tokens.staff, tokens.auditor);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

fn read_tokens(path: &Path) -> Option<DemoTokens> {
    let text = std::fs::read_to_string(path).ok()?;
    let find = |role: &str| text.lines().find_map(|line| line.strip_prefix(role).map(|token| token.trim().to_string()));
    Some(DemoTokens { operator: find("operator ")?, staff: find("staff ")?, auditor: find("auditor ")? })
}

/// A channel that carries a bearer token on every call.
pub type Authed = tonic::service::interceptor::InterceptedService<Channel, Credentials>;

fn authed(channel: &Channel, token: &str) -> anyhow::Result<Authed> {
    let credentials = Credentials::new(Some(token)).map_err(|failure| anyhow::anyhow!(failure.describe()))?;
    Ok(tonic::service::interceptor::InterceptedService::new(channel.clone(), credentials))
}

/// Refuses an `ecovol up` folder that holds something else.
pub fn check_folder(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() || dir.read_dir()?.next().is_none() {
        return Ok(());
    }
    if dir.join("node.toml").exists() {
        bail!(
            "{} holds the single-county demo of an earlier ecovol; `ecovol up` now starts a whole federation: \
             delete the folder or name another with --dir",
            dir.display()
        );
    }
    let ours = dir.join("certs").join(crate::federation::certs::CA_CERT_FILE).exists()
        || PLACES.iter().any(|place| dir.join(place.code).join("node.toml").exists());
    if !ours {
        bail!("{} exists and is not an `ecovol up` folder: name another with --dir", dir.display());
    }
    Ok(())
}
