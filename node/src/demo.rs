//! `ecovol up`: a node with demo data on this machine, with no external services — the first thing to run.
//!
//! Until the federation exists this is one county node (西湖区, 330106) on loopback; its folder (default
//! `./ecovol-up`) holds the config, the node key, the data and a `tokens.txt` with the demo accounts' tokens.
//! Running it again reuses the folder and its data. All people in the demo data are synthetic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use ecovol_proto::v1 as pb;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

use crate::account::{CreateAccount, offline};
use crate::auth::{Department, Role};
use crate::cli::connection::Credentials;
use crate::config::Config;
use crate::crypto::NodeKeys;
use crate::validate::identity_check_char;

/// What `ecovol up` should do.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The demo's folder.
    pub dir: PathBuf,
    /// Office address of the node.
    pub listen: String,
    /// Volunteers to generate on first start.
    pub volunteers: u32,
    /// Stop after loading and printing (for tests and scripts).
    pub exit_after_load: bool,
    /// Seed of the synthetic data.
    pub seed: u64,
}

const CODE: &str = "330106";
const NAME: &str = "杭州市西湖区生态环境分局";

/// Prepares the folder, starts the node, loads demo data once, prints how to use it, and serves until Ctrl-C
/// (or returns after loading with `exit_after_load`).
pub async fn up(options: UpOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&options.dir).with_context(|| format!("cannot create {}", options.dir.display()))?;
    let dir = options.dir.canonicalize()?;
    let config_path = dir.join("node.toml");
    let tokens_path = dir.join("tokens.txt");
    if !config_path.exists() {
        std::fs::write(
            &config_path,
            format!(
                "# Demo county node made by `ecovol up`. Every key is explained in deploy/node.example.toml.\n\
                 [node]\ncode = \"{CODE}\"\nlevel = \"county\"\nname = \"{NAME}\"\n\n\
                 [store]\npath = \"data\"\nkey_file = \"node.key\"\n\n[office]\nlisten = \"{}\"\n",
                options.listen
            ),
        )?;
    }
    let config = Config::load_with_env(Some(&config_path), std::iter::empty())?;
    if !config.store.key_file.exists() {
        NodeKeys::generate_file(&config.store.key_file)?;
    }
    let tokens = match read_tokens(&tokens_path) {
        Some(tokens) => tokens,
        None => {
            let tokens = create_accounts(&config).await?;
            write_tokens(&tokens_path, &tokens)?;
            tokens
        }
    };
    let listener = TcpListener::bind(&config.office.listen)
        .await
        .with_context(|| format!("cannot listen on {} (is another ecovol up running?)", config.office.listen))?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let channel = Endpoint::from_shared(format!("http://{address}"))?.connect().await?;
    let loaded = load_demo_data(&channel, &tokens.staff, options.volunteers, options.seed).await?;
    let summary = summarise(&channel, &tokens.staff).await?;
    writeln!(
        out,
        "ecovol demo node {CODE} {NAME} serving on http://{address} ({:.1} s)",
        started.elapsed().as_secs_f64()
    )?;
    if loaded {
        writeln!(out, "loaded synthetic demo data (seed {})", options.seed)?;
    }
    writeln!(out, "  volunteers {}  teams {}  sites {}", summary.0, summary.1, summary.2)?;
    writeln!(out, "  folder     {}", dir.display())?;
    writeln!(out, "  tokens     {} (operator, staff, auditor)", tokens_path.display())?;
    writeln!(out, "try:")?;
    writeln!(out, "  export ECOVOL_NODE=http://{address} ECOVOL_TOKEN={}", tokens.staff)?;
    writeln!(out, "  ecovol volunteer search --page-size 5")?;
    writeln!(out, "  ecovol team list")?;
    writeln!(out, "  ecovol --token {} audit list --page-size 5", tokens.auditor)?;
    if options.exit_after_load {
        let _ = stop.send(());
    } else {
        writeln!(out, "serving until Ctrl-C")?;
        out.flush()?;
        crate::server::shutdown_signal().await;
        let _ = stop.send(());
    }
    server.await??;
    Ok(())
}

/// Tokens of the demo accounts.
#[derive(Debug, Clone)]
pub struct DemoTokens {
    pub operator: String,
    pub staff: String,
    pub auditor: String,
}

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

type Authed = tonic::service::interceptor::InterceptedService<Channel, Credentials>;

fn authed(channel: &Channel, token: &str) -> anyhow::Result<Authed> {
    let credentials = Credentials::new(Some(token)).map_err(|failure| anyhow::anyhow!(failure.describe()))?;
    Ok(tonic::service::interceptor::InterceptedService::new(channel.clone(), credentials))
}

/// (volunteers, teams, sites) on the node.
async fn summarise(channel: &Channel, token: &str) -> anyhow::Result<(usize, usize, usize)> {
    let mut volunteers = pb::volunteer_service_client::VolunteerServiceClient::new(authed(channel, token)?);
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let page = volunteers
            .search_volunteers(pb::SearchVolunteersRequest { page_size: 500, page_token, ..Default::default() })
            .await?
            .into_inner();
        count += page.volunteers.len();
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut teams = pb::team_service_client::TeamServiceClient::new(authed(channel, token)?);
    let teams = teams.list_teams(pb::ListTeamsRequest { page_size: 500, ..Default::default() }).await?.into_inner();
    let mut sites = pb::site_service_client::SiteServiceClient::new(authed(channel, token)?);
    let sites = sites.list_sites(pb::ListSitesRequest { page_size: 500, ..Default::default() }).await?.into_inner();
    Ok((count, teams.teams.len(), sites.sites.len()))
}

const SURNAMES: &[&str] =
    &["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林"];
const GIVEN_MALE: &[&str] = &["伟", "强", "磊", "洋", "勇", "军", "杰", "涛", "明", "超", "浩然", "子轩"];
const GIVEN_FEMALE: &[&str] = &["芳", "娜", "敏", "静", "丽", "艳", "娟", "秀英", "雨桐", "欣怡", "晓燕", "婷"];
const SKILLS: &[&str] = &["垃圾分类", "水质监测", "鸟类观察", "环保宣讲", "急救", "摄影", "植树", "外语"];
const TEAMS: &[(&str, pb::TeamKind)] = &[
    ("西湖区生态环境志愿服务总队", pb::TeamKind::PeoplesOrganisation),
    ("浙江大学绿色浙江协会", pb::TeamKind::UniversityClub),
    ("西溪湿地护鸟队", pb::TeamKind::SocialOrganisation),
    ("龙井村低碳生活宣讲团", pb::TeamKind::Other),
    ("区生态环境分局青年志愿者", pb::TeamKind::Agency),
    ("某环保科技公司志愿者团队", pb::TeamKind::Enterprise),
];
const SITES: &[(&str, pb::SiteKind, &str)] = &[
    ("西湖区新时代文明实践中心", pb::SiteKind::CivilizationPracticeCentre, "杭州市西湖区文三路"),
    ("西溪湿地生态科普馆", pb::SiteKind::EcoEducationVenue, "杭州市西湖区天目山路"),
    ("西湖区污水处理厂公众开放日", pb::SiteKind::OpenFacility, "杭州市西湖区转塘"),
    ("龙井茶园生态研学基地", pb::SiteKind::StudyBase, "杭州市西湖区龙井路"),
    ("文新街道志愿服务站", pb::SiteKind::VolunteerStation, "杭州市西湖区文新街道"),
];

/// Loads sites, teams and `volunteers` synthetic volunteers, once (returns false if the node has data already).
async fn load_demo_data(channel: &Channel, token: &str, volunteers: u32, seed: u64) -> anyhow::Result<bool> {
    let mut teams = pb::team_service_client::TeamServiceClient::new(authed(channel, token)?);
    let existing = teams.list_teams(pb::ListTeamsRequest { page_size: 1, ..Default::default() }).await?.into_inner();
    if !existing.teams.is_empty() {
        return Ok(false);
    }
    let mut sites = pb::site_service_client::SiteServiceClient::new(authed(channel, token)?);
    for (name, kind, address) in SITES {
        sites
            .create_site(pb::CreateSiteRequest {
                name: name.to_string(),
                kind: *kind as i32,
                address: address.to_string(),
                location: Some(pb::GeoPoint { latitude: 30.26, longitude: 120.13 }),
                opening_notes: "周二至周日 9:00–17:00".into(),
            })
            .await?;
    }
    let mut team_ids = Vec::new();
    for (name, kind) in TEAMS {
        let team = teams
            .create_team(pb::CreateTeamRequest { name: name.to_string(), kind: *kind as i32, ..Default::default() })
            .await?
            .into_inner()
            .team
            .context("no team in reply")?;
        team_ids.push(team.team_id);
    }
    let team_ids = Arc::new(team_ids);
    // Register in parallel: writers share group commits.
    let workers = 16u32;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let channel = channel.clone();
        let token = token.to_string();
        let team_ids = team_ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ u64::from(worker));
            let mut client = pb::volunteer_service_client::VolunteerServiceClient::new(authed(&channel, &token)?);
            let mut teams = pb::team_service_client::TeamServiceClient::new(authed(&channel, &token)?);
            for index in (worker..volunteers).step_by(workers as usize) {
                let request = synthetic_volunteer(index, &mut rng);
                let number = client
                    .register_volunteer(request)
                    .await?
                    .into_inner()
                    .volunteer
                    .context("no volunteer in reply")?
                    .volunteer_number;
                if rng.random_bool(0.7) {
                    let team = team_ids[rng.random_range(0..team_ids.len())].clone();
                    let role = if rng.random_bool(0.1) { pb::MemberRole::Backbone } else { pb::MemberRole::Member };
                    teams
                        .add_team_member(pb::AddTeamMemberRequest {
                            team_id: team,
                            volunteer_number: number,
                            role: role as i32,
                        })
                        .await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(true)
}

/// A synthetic adult volunteer: the identity number is made with the GB 11643 check digit and is unique per
/// `index` (sequence digits carry the index), the phone is unique per index.
fn synthetic_volunteer(index: u32, rng: &mut impl Rng) -> pb::RegisterVolunteerRequest {
    // Year and month carry index / 1000, the sequence digits index % 1000: unique for 540,000 volunteers.
    let year = 1960 + (index / 1000) % 45;
    let month = 1 + (index / 45_000) % 12;
    let day = rng.random_range(1..=28);
    let first17 = format!("{CODE}{year:04}{month:02}{day:02}{:03}", index % 1000);
    let check = identity_check_char(&first17).unwrap_or('0');
    // The 17th digit (the last of the sequence) is odd for men, even for women (GB 11643).
    let given = if index % 2 == 1 { GIVEN_MALE } else { GIVEN_FEMALE };
    let name = format!("{}{}", SURNAMES[rng.random_range(0..SURNAMES.len())], given[rng.random_range(0..given.len())]);
    let skills = (0..rng.random_range(0..3)).map(|_| SKILLS[rng.random_range(0..SKILLS.len())].to_string());
    let mut skills: Vec<String> = skills.collect();
    skills.sort();
    skills.dedup();
    pb::RegisterVolunteerRequest {
        name,
        identity_number: format!("{first17}{check}"),
        phone: format!("199{:08}", index),
        skills,
        political_status: [
            pb::PoliticalStatus::Masses,
            pb::PoliticalStatus::LeagueMember,
            pb::PoliticalStatus::PartyMember,
        ][rng.random_range(0..3)] as i32,
        consent_to_processing: true,
        home_division_code: CODE.into(),
        ..Default::default()
    }
}

/// Refuses an `ecovol up` folder that holds something else.
pub fn check_folder(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && dir.read_dir()?.next().is_some() && !dir.join("node.toml").exists() {
        bail!("{} exists and is not an `ecovol up` folder: name another with --dir", dir.display());
    }
    Ok(())
}
