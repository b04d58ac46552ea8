//! The proof of the outbox hooks: after any mix of real use-cases, the deltas each use-case recorded add up, in
//! this node's own contributions (`roll/<own code>/…`), to exactly what the single-node statistics
//! (`stats::aggregate(stats::collect(store))`) give for every month and activity kind, and the snapshot cell's star
//! holders are the star distribution.
//!
//! A seeded mix runs on a real `App` in a temporary folder: registrations, updates and deactivations of volunteers;
//! teams; projects created, published, edited (kind and start moved while seats are held), closed and cancelled;
//! sign-ups, cancellations, capacity changes and waitlist promotions; hours recorded (alone, in rosters, retried),
//! confirmed, amended (across months) and revoked, several per volunteer and month; trainings with attendance added
//! and removed; evaluations and re-evaluations. Refusals are part of the mix (a refused write changes nothing);
//! faults are not. The check runs every few steps and at the end, and names the seed that broke it;
//! `ECOVOL_CONSISTENCY_SEED=<n>` replays one seed alone.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::rollup::{Cell, Contribution, Figures};
use ecovol_proto::v1 as pb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::app::App;
use crate::audit::AuditContext;
use crate::auth::{Caller, Department, Role};
use crate::commit::Txn;
use crate::config::Config;
use crate::error::DomainError;
use crate::evaluation::{self, RateVolunteer};
use crate::federation::outbox;
use crate::hours::{self, AmendServiceRecord, RecordService, RecordServiceBulk, RevokeServiceRecord, ServiceRow};
use crate::project::signup::{self, CancelSignUp, SignUp};
use crate::project::{self, CancelProject, CreateProject, ProjectRef, SetProjectCapacity, UpdateProject};
use crate::registry::team::{self, CreateTeam};
use crate::registry::volunteer::{self, RegisterVolunteer, UpdateVolunteer};
use crate::stats::{self, StatsRange};
use crate::store::{self, Store};
use crate::training::{self, Attendance, CreateTraining, TrainingAudience, TrainingTier};
use crate::validate::identity_check_char;
use crate::wire;

/// Seeds run by default; each is a fresh node.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=10;
/// Random steps per seed after the initial set-up.
const STEPS: usize = 160;
/// The consistency check runs after every this many steps (and at the end).
const CHECK_EVERY: usize = 20;
/// A low star scale, so that stars are reached and lost within a short mix.
const STARS_TOML: &str = "[stars]\nthresholds_hours = [3, 8, 15, 25, 40]\n\
                          certifying_levels = [\"county\", \"county\", \"city\", \"city\", \"province\"]\n";

/// The five activity kinds, in guidance order.
const KINDS: [pb::ActivityKind; 5] = [
    pb::ActivityKind::TheoryPromotion,
    pb::ActivityKind::PublicityEducation,
    pb::ActivityKind::SocialSupervision,
    pb::ActivityKind::GreenLowCarbon,
    pb::ActivityKind::InternationalExchange,
];

fn staff() -> Caller {
    Caller {
        account_id: "acct-consistency".into(),
        name: "一致性测试".into(),
        department: Department::EcologyBureau,
        roles: vec![Role::Staff],
        team_id: None,
        volunteer_number: None,
        request_id: "consistency".into(),
    }
}

/// 00:00 China time on `day` of the month `offset` months from this one (China calendar).
fn china_day(offset: i32, day: u32) -> DateTime<Utc> {
    let today = wire::today_china();
    let index = today.year() * 12 + today.month0() as i32 + offset;
    let date = NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, day).unwrap();
    china_midnight(date)
}

fn china_midnight(date: NaiveDate) -> DateTime<Utc> {
    wire::china().from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap()).single().unwrap().with_timezone(&Utc)
}

/// A project in the past, which takes hours (as walk-ins: its sign-ups closed when it started).
#[derive(Debug, Clone)]
struct PastProject {
    project_id: String,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
}

/// What the mix has made so far, to pick the targets of later steps.
#[derive(Default)]
struct World {
    volunteers: Vec<String>,
    teams: Vec<String>,
    past_projects: Vec<PastProject>,
    future_projects: Vec<String>,
    /// Sign-ups made (project, volunteer), whatever became of them.
    sign_ups: Vec<(String, String)>,
    /// Service records with the past project they belong to.
    records: Vec<(String, usize)>,
    /// Trainings with their attendees as this mix believes them to be.
    trainings: Vec<(String, BTreeSet<String>)>,
    last_recording: Option<RecordService>,
    next_identity: u32,
    next_key: u64,
    /// Successful steps per kind of step, to show the mix did what it says.
    done: BTreeMap<&'static str, u32>,
}

/// A node opened from a config file in a temporary folder, as `ecovol serve` opens one.
struct Node {
    app: Arc<App>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn open() -> anyhow::Result<Node> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("node.key"), hex::encode([42u8; 32]))?;
        Node::reopen(dir).await
    }

    /// Opens the node in `dir` (made by `open`) again.
    async fn reopen(dir: tempfile::TempDir) -> anyhow::Result<Node> {
        let text = format!(
            "[node]\ncode = \"330106\"\nlevel = \"county\"\nname = \"西湖区生态环境局\"\n\
             [store]\npath = \"data\"\nkey_file = \"node.key\"\n{STARS_TOML}"
        );
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text)?;
        let config = Config::load_with_env(Some(&path), std::iter::empty())?;
        let app = App::open(config)?;
        crate::stars::install_rule(&app).await?;
        Ok(Node { app, _dir: dir })
    }

    async fn write<T: Send + 'static>(
        &self,
        use_case: impl FnOnce(&mut Txn<'_>, &App, &Caller) -> Result<T, DomainError> + Send + 'static,
    ) -> Result<T, DomainError> {
        let app = self.app.clone();
        let caller = staff();
        let context = AuditContext::new(&caller, "Consistency/Step", "");
        self.app.committer.write(context, move |txn| use_case(txn, &app, &caller)).await
    }
}

/// Refusals are part of the mix (a refused write keeps nothing); faults (a hook that cannot record, a broken
/// invariant) fail the test.
fn kept<T>(result: Result<T, DomainError>) -> anyhow::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error @ (DomainError::Internal(_) | DomainError::Unavailable(_))) => anyhow::bail!("fault: {error}"),
        Err(_) => Ok(None),
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() { None } else { Some(&items[rng.random_range(0..items.len())]) }
}

fn note(world: &mut World, step: &'static str, succeeded: bool) {
    if succeeded {
        *world.done.entry(step).or_default() += 1;
    }
}

// ----- the steps -----

async fn register_volunteer(node: &Node, world: &mut World) -> anyhow::Result<()> {
    let index = world.next_identity;
    world.next_identity += 1;
    let first17 = format!("330106{:04}0315{:03}", 1970 + index / 1000, index % 1000);
    let check = identity_check_char(&first17).unwrap();
    let command = RegisterVolunteer::parse(
        pb::RegisterVolunteerRequest {
            name: format!("志愿者{index}"),
            identity_number: format!("{first17}{check}"),
            phone: format!("138{:08}", index),
            political_status: pb::PoliticalStatus::Masses as i32,
            consent_to_processing: true,
            home_division_code: "330106".into(),
            ..Default::default()
        },
        wire::today_china(),
    )?;
    let registered = kept(
        node.write(move |txn, app, caller| volunteer::register(txn, &app.keys, app.node_code(), caller, command)).await,
    )?;
    note(world, "volunteer registered", registered.is_some());
    world.volunteers.extend(registered.map(|record| record.volunteer_number));
    Ok(())
}

async fn update_volunteer(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some(number) = pick(rng, &world.volunteers).cloned() else { return Ok(()) };
    let command = UpdateVolunteer {
        volunteer_number: number,
        name: Some(format!("更名{}", rng.random_range(0..1000))),
        reason: "更正姓名".into(),
        ..Default::default()
    };
    let today = wire::today_china();
    let updated =
        kept(node.write(move |txn, app, caller| volunteer::update(txn, &app.keys, caller, command, today)).await)?;
    note(world, "volunteer updated", updated.is_some());
    Ok(())
}

async fn deactivate_volunteer(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some(number) = pick(rng, &world.volunteers).cloned() else { return Ok(()) };
    let deactivated = kept(
        node.write(move |txn, _, caller| volunteer::deactivate(txn, caller, &number, "本人申请退出".into())).await,
    )?;
    note(world, "volunteer deactivated", deactivated.is_some());
    Ok(())
}

async fn create_team(node: &Node, world: &mut World) -> anyhow::Result<()> {
    let command = CreateTeam::try_from(pb::CreateTeamRequest {
        name: format!("西湖环保志愿队{}", world.teams.len() + 1),
        kind: pb::TeamKind::SocialOrganisation as i32,
        ..Default::default()
    })?;
    let created = kept(node.write(move |txn, app, caller| team::create(txn, app.node_code(), caller, command)).await)?;
    note(world, "team registered", created.is_some());
    world.teams.extend(created.map(|change| change.team.team_id));
    Ok(())
}

/// Creates a project of a random team and kind over `[start_at, end_at)`, and publishes it unless `draft`.
async fn create_project(
    node: &Node,
    world: &mut World,
    rng: &mut StdRng,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    capacity: u32,
    draft: bool,
) -> anyhow::Result<Option<String>> {
    let Some(team_id) = pick(rng, &world.teams).cloned() else { return Ok(None) };
    let command = CreateProject::try_from(pb::CreateProjectRequest {
        title: "西溪湿地净滩".into(),
        activity_kind: KINDS[rng.random_range(0..KINDS.len())] as i32,
        organising_team_id: team_id,
        start_at: Some(wire::timestamp(start_at)),
        end_at: Some(wire::timestamp(end_at)),
        capacity,
        ..Default::default()
    })?;
    let Some(created) =
        kept(node.write(move |txn, app, caller| project::create(txn, app.node_code(), caller, command)).await)?
    else {
        return Ok(None);
    };
    let project_id = created.project_id;
    if draft {
        return Ok(Some(project_id));
    }
    let publish = ProjectRef { project_id: project_id.clone() };
    let published = kept(node.write(move |txn, _, caller| project::publish(txn, caller, publish)).await)?;
    note(world, "project published", published.is_some());
    Ok(published.map(|_| project_id))
}

/// A published project two to fourteen months ago, twenty days long (so its records fall in two months).
async fn create_past_project(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let start_at = china_day(-rng.random_range(2..=14), rng.random_range(1..=28)) + Duration::hours(8);
    let end_at = start_at + Duration::days(20);
    if let Some(project_id) = create_project(node, world, rng, start_at, end_at, 50, false).await? {
        world.past_projects.push(PastProject { project_id, start_at, end_at });
    }
    Ok(())
}

/// A published project one to fourteen months ahead, with few seats (so waitlists form).
async fn create_future_project(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let start_at = china_day(rng.random_range(1..=14), rng.random_range(1..=28)) + Duration::hours(9);
    let capacity = rng.random_range(1..=3);
    if let Some(project_id) =
        create_project(node, world, rng, start_at, start_at + Duration::hours(4), capacity, false).await?
    {
        world.future_projects.push(project_id);
    }
    Ok(())
}

/// A draft, cancelled before it was ever published.
async fn cancel_a_draft(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let start_at = china_day(rng.random_range(1..=3), 10);
    let Some(project_id) = create_project(node, world, rng, start_at, start_at + Duration::hours(2), 5, true).await?
    else {
        return Ok(());
    };
    let command = CancelProject { project_id, reason: "天气原因".into() };
    let cancelled = kept(node.write(move |txn, _, caller| project::cancel(txn, caller, command)).await)?;
    note(world, "draft cancelled", cancelled.is_some());
    Ok(())
}

/// Edits a project's kind; a future project's start moves to another month too, with the seats it holds.
async fn edit_project(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let kind = Some(project::activity_kind(KINDS[rng.random_range(0..KINDS.len())] as i32).unwrap());
    let command = if rng.random_bool(0.5) {
        let Some(project_id) = pick(rng, &world.future_projects).cloned() else { return Ok(()) };
        let start_at = china_day(rng.random_range(1..=14), rng.random_range(1..=28)) + Duration::hours(14);
        UpdateProject {
            project_id,
            activity_kind: kind,
            start_at: Some(start_at),
            end_at: Some(start_at + Duration::hours(3)),
            ..Default::default()
        }
    } else {
        let Some(past) = pick(rng, &world.past_projects) else { return Ok(()) };
        UpdateProject { project_id: past.project_id.clone(), activity_kind: kind, ..Default::default() }
    };
    let edited = kept(node.write(move |txn, _, caller| project::update(txn, caller, command)).await)?;
    note(world, "project edited", edited.is_some());
    Ok(())
}

async fn close_project(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some(past) = pick(rng, &world.past_projects) else { return Ok(()) };
    let command = ProjectRef { project_id: past.project_id.clone() };
    let closed = kept(node.write(move |txn, _, caller| project::close(txn, caller, command)).await)?;
    note(world, "project closed", closed.is_some());
    Ok(())
}

async fn cancel_project(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some(project_id) = pick(rng, &world.future_projects).cloned() else { return Ok(()) };
    let command = CancelProject { project_id, reason: "场地不可用".into() };
    let cancelled = kept(node.write(move |txn, _, caller| project::cancel(txn, caller, command)).await)?;
    note(world, "published project cancelled", cancelled.is_some());
    Ok(())
}

async fn sign_up(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let (Some(project_id), Some(number)) =
        (pick(rng, &world.future_projects).cloned(), pick(rng, &world.volunteers).cloned())
    else {
        return Ok(());
    };
    let command = SignUp { project_id: project_id.clone(), volunteer_number: number.clone(), idempotency_key: None };
    let answer = kept(node.write(move |txn, _, caller| signup::sign_up(txn, caller, command)).await)?;
    note(world, "signed up", answer.is_some());
    if answer.is_some() {
        world.sign_ups.push((project_id, number));
    }
    Ok(())
}

async fn cancel_sign_up(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    // Mostly a sign-up that was made (it may have been cancelled since); now and then any pair.
    let known = if rng.random_bool(0.8) { pick(rng, &world.sign_ups).cloned() } else { None };
    let (Some(project_id), Some(number)) = (match known {
        Some((project_id, number)) => (Some(project_id), Some(number)),
        None => (pick(rng, &world.future_projects).cloned(), pick(rng, &world.volunteers).cloned()),
    }) else {
        return Ok(());
    };
    let command = CancelSignUp { project_id, volunteer_number: number };
    let answer = kept(node.write(move |txn, _, caller| signup::cancel(txn, caller, command)).await)?;
    note(world, "sign-up cancelled", answer.is_some());
    if answer.is_some_and(|answer| answer.promoted.is_some()) {
        note(world, "promoted on a cancellation", true);
    }
    Ok(())
}

async fn set_capacity(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some(project_id) = pick(rng, &world.future_projects).cloned() else { return Ok(()) };
    let command = SetProjectCapacity { project_id, capacity: rng.random_range(1..=4) };
    let answer = kept(node.write(move |txn, _, caller| project::set_capacity(txn, caller, command)).await)?;
    note(world, "capacity set", answer.is_some());
    if answer.is_some_and(|answer| !answer.promoted.is_empty()) {
        note(world, "promoted on a capacity change", true);
    }
    Ok(())
}

/// A random interval inside the project's window (give or take nothing), 20 minutes to 10 hours long.
fn interval_in(rng: &mut StdRng, project: &PastProject) -> (DateTime<Utc>, DateTime<Utc>) {
    let window_minutes = (project.end_at - project.start_at).num_minutes();
    let start = project.start_at + Duration::minutes(rng.random_range(0..window_minutes / 5) * 5);
    let end = (start + Duration::minutes(rng.random_range(20..=600))).min(project.end_at);
    (start, end)
}

fn service_row(world: &mut World, rng: &mut StdRng, project: &PastProject, number: String) -> ServiceRow {
    let (start_time, end_time) = interval_in(rng, project);
    world.next_key += 1;
    ServiceRow {
        volunteer_number: number,
        method: hours::RecordingMethod::Interval,
        start_time,
        end_time,
        content: "巡河护绿".into(),
        walk_in: true,
        idempotency_key: format!("mix-{}", world.next_key),
    }
}

async fn record_hours(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let command = match (&world.last_recording, rng.random_bool(0.1)) {
        // A retry of the last recording: the first record comes back, nothing is counted twice.
        (Some(last), true) => last.clone(),
        _ => {
            let Some(index) = (!world.past_projects.is_empty()).then(|| rng.random_range(0..world.past_projects.len()))
            else {
                return Ok(());
            };
            let Some(number) = pick(rng, &world.volunteers).cloned() else { return Ok(()) };
            let project = world.past_projects[index].clone();
            RecordService { project_id: project.project_id.clone(), row: service_row(world, rng, &project, number) }
        }
    };
    world.last_recording = Some(command.clone());
    let project_index = world.past_projects.iter().position(|project| project.project_id == command.project_id);
    let recorded = kept(
        node.write(move |txn, app, caller| hours::record(txn, app.node_code(), &app.config.hours, caller, command))
            .await,
    )?;
    note(world, "hours recorded", recorded.as_ref().is_some_and(|recorded| !recorded.replayed));
    note(world, "hours retried", recorded.as_ref().is_some_and(|recorded| recorded.replayed));
    if let (Some(recorded), Some(index)) = (recorded, project_index)
        && !recorded.replayed
    {
        world.records.push((recorded.record.record_id, index));
    }
    Ok(())
}

async fn record_roster(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some(index) = (!world.past_projects.is_empty()).then(|| rng.random_range(0..world.past_projects.len())) else {
        return Ok(());
    };
    let project = world.past_projects[index].clone();
    let mut numbers: Vec<String> = (0..rng.random_range(2..=4))
        .filter_map(|_| pick(rng, &world.volunteers).cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    numbers.truncate(4);
    let rows: Vec<ServiceRow> = numbers.into_iter().map(|number| service_row(world, rng, &project, number)).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let command = RecordServiceBulk { project_id: project.project_id.clone(), rows };
    let recorded = kept(
        node.write(move |txn, app, caller| {
            hours::record_bulk(txn, app.node_code(), &app.config.hours, caller, command)
        })
        .await,
    )?;
    note(world, "roster recorded", recorded.is_some());
    for row in recorded.into_iter().flatten() {
        world.records.push((row.record.record_id, index));
    }
    Ok(())
}

async fn confirm_hours(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some((record_id, _)) = pick(rng, &world.records).cloned() else { return Ok(()) };
    let confirmed = kept(node.write(move |txn, _, caller| hours::confirm(txn, caller, &record_id)).await)?;
    note(world, "hours confirmed", confirmed.is_some());
    Ok(())
}

async fn amend_hours(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some((record_id, index)) = pick(rng, &world.records).cloned() else { return Ok(()) };
    let project = world.past_projects[index].clone();
    let (times, content) = if rng.random_bool(0.2) {
        (None, Some("更正服务内容".to_string()))
    } else {
        (Some(interval_in(rng, &project)), None)
    };
    let command =
        AmendServiceRecord { record_id, expected_version: None, times, content, reason: "核实更正".into() };
    let amended =
        kept(node.write(move |txn, app, caller| hours::amend(txn, &app.config.hours, caller, command)).await)?;
    note(world, "hours amended", amended.is_some_and(|record| record.state == hours::RecordState::Confirmed));
    Ok(())
}

async fn revoke_hours(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some((record_id, _)) = pick(rng, &world.records).cloned() else { return Ok(()) };
    let command = RevokeServiceRecord { record_id, reason: "重复登记".into() };
    let revoked = kept(node.write(move |txn, _, caller| hours::revoke(txn, caller, command)).await)?;
    note(world, "hours revoked", revoked.is_some());
    Ok(())
}

async fn rate(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some((record_id, _)) = pick(rng, &world.records).cloned() else { return Ok(()) };
    let record: Option<hours::ServiceRecord> =
        store::get_json(&*node.app.store, hours::record_key(&record_id).as_bytes())?;
    let Some(record) = record else { return Ok(()) };
    let command = RateVolunteer {
        project_id: record.project_id,
        volunteer_number: record.volunteer_number,
        rating: rng.random_range(1..=5),
        comment: "认真负责".into(),
    };
    let rated = kept(node.write(move |txn, _, caller| evaluation::rate(txn, caller, command)).await)?;
    note(world, "evaluated", rated.as_ref().is_some_and(|evaluation| evaluation.version == 1));
    note(world, "re-evaluated", rated.as_ref().is_some_and(|evaluation| evaluation.version > 1));
    Ok(())
}

async fn create_training(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let date =
        china_day(rng.random_range(-12..=3), rng.random_range(1..=28)).with_timezone(&wire::china()).date_naive();
    let command = CreateTraining {
        title: "岗前基础培训".into(),
        tier: TrainingTier::PreJobBasic,
        audiences: vec![TrainingAudience::Volunteers],
        date,
        organiser: "西湖区生态环境局".into(),
    };
    let created =
        kept(node.write(move |txn, app, caller| training::create(txn, app.node_code(), caller, command)).await)?;
    note(world, "training held", created.is_some());
    world.trainings.extend(created.map(|training| (training.training_id, BTreeSet::new())));
    Ok(())
}

async fn add_attendance(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some(index) = (!world.trainings.is_empty()).then(|| rng.random_range(0..world.trainings.len())) else {
        return Ok(());
    };
    let numbers: BTreeSet<String> =
        (0..rng.random_range(1..=4)).filter_map(|_| pick(rng, &world.volunteers).cloned()).collect();
    if numbers.is_empty() {
        return Ok(());
    }
    let command = Attendance {
        training_id: world.trainings[index].0.clone(),
        volunteer_numbers: numbers.iter().cloned().collect(),
    };
    let added = kept(node.write(move |txn, _, caller| training::add_attendance(txn, caller, command)).await)?;
    note(world, "attendance added", added.is_some());
    if added.is_some() {
        world.trainings[index].1.extend(numbers);
    }
    Ok(())
}

async fn remove_attendance(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let Some(index) = (!world.trainings.is_empty()).then(|| rng.random_range(0..world.trainings.len())) else {
        return Ok(());
    };
    let attendees: Vec<String> = world.trainings[index].1.iter().cloned().collect();
    let mut numbers: BTreeSet<String> =
        (0..rng.random_range(1..=2)).filter_map(|_| pick(rng, &attendees).cloned()).collect();
    if rng.random_bool(0.1) {
        // One who did not attend: the whole change is refused.
        numbers.extend(pick(rng, &world.volunteers).cloned());
    }
    if numbers.is_empty() {
        return Ok(());
    }
    let command = Attendance {
        training_id: world.trainings[index].0.clone(),
        volunteer_numbers: numbers.iter().cloned().collect(),
    };
    let removed = kept(node.write(move |txn, _, caller| training::remove_attendance(txn, caller, command)).await)?;
    note(world, "attendance removed", removed.is_some());
    if removed.is_some() {
        world.trainings[index].1.retain(|number| !numbers.contains(number));
    }
    Ok(())
}

// ----- the check -----

fn cell_of((year, month): (i32, u32), kind: u8) -> Cell {
    Cell { month: year.max(0) as u32 * 100 + month, kind }
}

/// The China calendar month `yyyymm` as a statistics range.
fn month_range(yyyymm: u32) -> StatsRange {
    let start_date = NaiveDate::from_ymd_opt((yyyymm / 100) as i32, yyyymm % 100, 1).unwrap();
    let next = next_month(yyyymm);
    let next_start = NaiveDate::from_ymd_opt((next / 100) as i32, next % 100, 1).unwrap();
    StatsRange { start_date, end_date: next_start.pred_opt().unwrap() }
}

fn next_month(yyyymm: u32) -> u32 {
    if yyyymm % 100 == 12 { (yyyymm / 100 + 1) * 100 + 1 } else { yyyymm + 1 }
}

fn previous_month(yyyymm: u32) -> u32 {
    if yyyymm % 100 == 1 { (yyyymm / 100 - 1) * 100 + 12 } else { yyyymm - 1 }
}

/// This node's own contributions, summed per cell (one key per cell; every key must be this node's).
fn own_contributions(store: &dyn Store, own: DivisionCode) -> anyhow::Result<BTreeMap<Cell, Figures>> {
    let mut contributions: BTreeMap<Cell, Figures> = BTreeMap::new();
    let mut failure = None;
    store.scan(b"roll/", None, &mut |key, value| {
        let parsed = outbox::parse_contribution_key(key)
            .ok_or_else(|| anyhow::anyhow!("{} is not a contribution key", String::from_utf8_lossy(key)))
            .and_then(|(origin, cell)| {
                anyhow::ensure!(origin == own, "a contribution of {origin} on node {own}");
                Ok((cell, store::decode::<Contribution>(key, value)?))
            });
        match parsed {
            Ok((cell, contribution)) => {
                let sum = contributions.entry(cell).or_default();
                *sum = sum.add(&contribution.figures);
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    match failure {
        Some(error) => Err(error),
        None => Ok(contributions),
    }
}

/// What the statistics give, per cell: month figures in kind 0, month × kind figures in kinds 1–5, and the figures
/// the statistics give only as range totals (ratings given, teams registered) from one range per month over
/// `months`.
fn statistics_by_cell(facts: &stats::Facts, months: &BTreeSet<u32>) -> BTreeMap<Cell, Figures> {
    let wide = StatsRange {
        start_date: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
        end_date: NaiveDate::from_ymd_opt(2099, 12, 31).unwrap(),
    };
    let all = stats::aggregate(facts, wide);
    let mut expected: BTreeMap<Cell, Figures> = BTreeMap::new();
    for (month, figures) in &all.months {
        let cell = expected.entry(cell_of(*month, 0)).or_default();
        cell.new_volunteers = figures.newly_registered_volunteers as i64;
        cell.active_volunteers = figures.active_volunteers as i64;
        cell.trainings = figures.trainings as i64;
        cell.trainees = figures.trainees as i64;
    }
    for ((month, kind), figures) in &all.month_kinds {
        let cell = expected.entry(cell_of(*month, kind.0)).or_default();
        cell.projects_published = figures.projects_published as i64;
        cell.sign_ups_accepted = figures.sign_ups_accepted as i64;
        cell.confirmed_hours_x100 = figures.confirmed_hours_x100 as i64;
        cell.active_volunteers = figures.active_volunteers as i64;
    }
    let (Some(first), Some(last)) = (months.first(), months.last()) else { return expected };
    let mut teams_before = stats::aggregate(facts, month_range(previous_month(*first))).totals.teams;
    let mut month = *first;
    while month <= *last {
        let totals = stats::aggregate(facts, month_range(month)).totals;
        let cell = expected.entry(Cell { month, kind: 0 }).or_default();
        cell.rating_sum = totals.rating_sum as i64;
        cell.rating_count = totals.rating_count as i64;
        cell.teams_registered = (totals.teams - teams_before) as i64;
        teams_before = totals.teams;
        month = next_month(month);
    }
    expected
}

fn without_zeros(cells: BTreeMap<Cell, Figures>) -> BTreeMap<Cell, Figures> {
    cells.into_iter().filter(|(_, figures)| *figures != Figures::default()).collect()
}

/// THE RULE: own contributions equal the statistics, cell by cell; totals from the cells equal the range totals;
/// the snapshot's star holders equal the star distribution.
fn check_consistency(node: &Node) -> anyhow::Result<()> {
    let store = &*node.app.store;
    let own = node.app.committer.outbox().origin();
    let mut recorded = own_contributions(store, own)?;
    let snapshot = recorded.remove(&Cell::SNAPSHOT).unwrap_or_default();
    let facts = stats::collect(store)?;
    let this_month = outbox::cell_at(Utc::now(), 0).month;
    let months: BTreeSet<u32> = recorded.keys().map(|cell| cell.month).chain([this_month]).collect();
    let expected = without_zeros(statistics_by_cell(&facts, &months));
    let recorded = without_zeros(recorded);
    if recorded != expected {
        let cells: BTreeSet<&Cell> = recorded.keys().chain(expected.keys()).collect();
        let differences: Vec<String> = cells
            .into_iter()
            .filter(|cell| recorded.get(cell) != expected.get(cell))
            .map(|cell| {
                format!(
                    "cell {}/{}:\n  recorded   {:?}\n  statistics {:?}",
                    cell.month,
                    cell.kind,
                    recorded.get(cell),
                    expected.get(cell)
                )
            })
            .collect();
        anyhow::bail!("own contributions differ from the statistics:\n{}", differences.join("\n"));
    }
    // Totals over the range, from the cells.
    let wide = StatsRange {
        start_date: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
        end_date: NaiveDate::from_ymd_opt(2099, 12, 31).unwrap(),
    };
    let totals = stats::aggregate(&facts, wide).totals;
    let sum = recorded.values().fold(Figures::default(), |sum, figures| sum.add(figures));
    anyhow::ensure!(sum.new_volunteers == totals.registered_volunteers as i64, "registered volunteers");
    anyhow::ensure!(sum.teams_registered == totals.teams as i64, "teams");
    anyhow::ensure!(sum.rating_sum == totals.rating_sum as i64, "rating sum");
    anyhow::ensure!(sum.rating_count == totals.rating_count as i64, "rating count");
    anyhow::ensure!(sum.projects_published == totals.projects_published as i64, "projects published");
    anyhow::ensure!(sum.sign_ups_accepted == totals.sign_ups_accepted as i64, "sign-ups accepted");
    anyhow::ensure!(sum.confirmed_hours_x100 == totals.confirmed_hours_x100 as i64, "confirmed hours");
    anyhow::ensure!(sum.trainings == totals.trainings as i64 && sum.trainees == totals.trainees as i64, "trainings");
    // The snapshot cell holds the star holders and nothing else.
    let mut holders = [0i64; 5];
    for (star, volunteers) in &totals.star_distribution {
        let slot = (*star as usize).checked_sub(1).filter(|slot| *slot < 5);
        holders[slot.ok_or_else(|| anyhow::anyhow!("star {star} is off the five-star scale"))?] = *volunteers as i64;
    }
    anyhow::ensure!(
        snapshot == Figures { star_holders: holders, ..Figures::default() },
        "snapshot {snapshot:?} differs from the star distribution {:?}",
        totals.star_distribution
    );
    Ok(())
}

// ----- the mix -----

/// Runs one seed: set-up, then `STEPS` random steps with a check every `CHECK_EVERY`; answers what was done.
async fn run(seed: u64) -> anyhow::Result<BTreeMap<&'static str, u32>> {
    let node = Node::open().await?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut world = World::default();
    for _ in 0..8 {
        register_volunteer(&node, &mut world).await?;
    }
    for _ in 0..3 {
        create_team(&node, &mut world).await?;
    }
    for _ in 0..5 {
        create_past_project(&node, &mut world, &mut rng).await?;
        create_future_project(&node, &mut world, &mut rng).await?;
    }
    create_training(&node, &mut world, &mut rng).await?;
    check_consistency(&node).map_err(|error| error.context("after the set-up"))?;
    for step in 1..=STEPS {
        random_step(&node, &mut world, &mut rng).await?;
        if step % CHECK_EVERY == 0 || step == STEPS {
            check_consistency(&node).map_err(|error| error.context(format!("after step {step}")))?;
        }
    }
    node.app.committer.stop().await;
    Ok(world.done)
}

/// One step of the mix, chosen by `rng`.
async fn random_step(node: &Node, world: &mut World, rng: &mut StdRng) -> anyhow::Result<()> {
    let (node, world, rng) = (node, world, rng);
    match rng.random_range(0..100) {
        0..=2 => register_volunteer(node, world).await?,
        3..=4 => update_volunteer(node, world, rng).await?,
        5 => deactivate_volunteer(node, world, rng).await?,
        6 => create_team(node, world).await?,
        7..=8 => create_past_project(node, world, rng).await?,
        9..=10 => create_future_project(node, world, rng).await?,
        11 => cancel_a_draft(node, world, rng).await?,
        12..=15 => edit_project(node, world, rng).await?,
        16 => close_project(node, world, rng).await?,
        17 => cancel_project(node, world, rng).await?,
        18..=29 => sign_up(node, world, rng).await?,
        30..=36 => cancel_sign_up(node, world, rng).await?,
        37..=40 => set_capacity(node, world, rng).await?,
        41..=54 => record_hours(node, world, rng).await?,
        55..=57 => record_roster(node, world, rng).await?,
        58..=71 => confirm_hours(node, world, rng).await?,
        72..=78 => amend_hours(node, world, rng).await?,
        79..=81 => revoke_hours(node, world, rng).await?,
        82..=87 => rate(node, world, rng).await?,
        88..=89 => create_training(node, world, rng).await?,
        90..=95 => add_attendance(node, world, rng).await?,
        _ => remove_attendance(node, world, rng).await?,
    }
    Ok(())
}

/// The seeds to run: `ECOVOL_CONSISTENCY_SEED` alone if set, else `SEEDS`.
fn seeds() -> Vec<u64> {
    match std::env::var("ECOVOL_CONSISTENCY_SEED").ok().and_then(|text| text.parse().ok()) {
        Some(seed) => vec![seed],
        None => SEEDS.collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_contributions_equal_the_statistics_after_any_mix_of_use_cases() {
    let mut done: BTreeMap<&'static str, u32> = BTreeMap::new();
    for seed in seeds() {
        match run(seed).await {
            Ok(steps) => {
                for (step, count) in steps {
                    *done.entry(step).or_default() += count;
                }
            }
            Err(error) => panic!("seed {seed} (replay with ECOVOL_CONSISTENCY_SEED={seed}): {error:#}"),
        }
    }
    // The mix really exercised every hook (summed over the seeds).
    for step in [
        "volunteer registered",
        "volunteer updated",
        "volunteer deactivated",
        "team registered",
        "project published",
        "project edited",
        "project closed",
        "signed up",
        "sign-up cancelled",
        "promoted on a cancellation",
        "capacity set",
        "promoted on a capacity change",
        "published project cancelled",
        "draft cancelled",
        "hours recorded",
        "hours retried",
        "roster recorded",
        "hours confirmed",
        "hours amended",
        "hours revoked",
        "evaluated",
        "re-evaluated",
        "training held",
        "attendance added",
        "attendance removed",
    ] {
        if seeds().len() > 1 {
            assert!(done.get(step).copied().unwrap_or(0) > 0, "no seed did {step:?}: {done:?}");
        }
    }
}

/// One pinned seed on its own: the same mix on every run, whatever `ECOVOL_CONSISTENCY_SEED` says.
#[tokio::test]
async fn a_pinned_seed_keeps_own_contributions_equal_to_the_statistics() {
    if let Err(error) = run(20_260_601).await {
        panic!("pinned seed: {error:#}");
    }
}

/// Schema 1 → 2: a store whose records were made before the federation existed (no keys, no figures) is
/// migrated at start-up to exactly the figures the hooks would have kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_before_the_federation_is_migrated_to_the_same_figures() {
    let node = Node::open().await.unwrap();
    let mut rng = StdRng::seed_from_u64(20_261_202);
    let mut world = World::default();
    for _ in 0..8 {
        register_volunteer(&node, &mut world).await.unwrap();
    }
    create_team(&node, &mut world).await.unwrap();
    for _ in 0..4 {
        create_past_project(&node, &mut world, &mut rng).await.unwrap();
        create_future_project(&node, &mut world, &mut rng).await.unwrap();
    }
    create_training(&node, &mut world, &mut rng).await.unwrap();
    for _ in 0..120 {
        random_step(&node, &mut world, &mut rng).await.unwrap();
    }
    check_consistency(&node).unwrap();
    // Make it a store of schema 1: nothing the federation keeps.
    let store = node.app.store.clone();
    let mut stripped = Vec::new();
    for prefix in ["roll/", "roll_act/", "fedkey/", "fedvol/", "out/", "star_else/"] {
        store
            .scan(prefix.as_bytes(), None, &mut |key, _| {
                stripped.push((key.to_vec(), None));
                ControlFlow::Continue(())
            })
            .unwrap();
    }
    assert!(stripped.len() > 20, "the mix made federation keys and figures: {}", stripped.len());
    stripped.push((b"meta/schema_version".to_vec(), Some(b"1".to_vec())));
    node.app.committer.stop().await;
    store.apply(&stripped).unwrap();
    store.flush().unwrap();
    drop(store);
    let Node { app, _dir: dir } = node;
    drop(app);
    let migrated = Node::reopen(dir).await.unwrap();
    check_consistency(&migrated).unwrap();
    let version = migrated.app.store.get(b"meta/schema_version").unwrap().unwrap();
    assert_eq!(version, crate::app::SCHEMA_VERSION.to_string().into_bytes());
    let mut keys = 0;
    migrated
        .app
        .store
        .scan(b"fedkey/", None, &mut |_, _| {
            keys += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(keys, world_volunteers(&migrated), "every volunteer has a federation key again");
    migrated.app.committer.stop().await;
}

fn world_volunteers(node: &Node) -> usize {
    let mut count = 0;
    node.app
        .store
        .scan(b"vol/", None, &mut |_, _| {
            count += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    count
}
