//! `ecovol plan …`: joint work plans (`PlanService`, docs/PLANS.md). A plan is written in a TOML file
//! (`deploy/examples/plan.toml`), drafted, taken round the participating departments for their signatures, issued
//! to the offices below, adopted there with their own tasks and splits of the targets, reported on, followed and
//! closed with an evaluation.
//!
//! Department, area and metric names in the files are the command line's names (`civil-affairs`,
//! `team-building`, `new-volunteers`), so what `plan show` prints can be written back into a file. A file that
//! does not read is a usage mistake (exit 2) pointing at its line.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use ecovol_proto::v1 as pb;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::connection::ConnectionArgs;
use super::console::{Console, Record, name, optional, timestamp};
use super::failure::Failure;
use super::project::printed;
use super::vocabulary::{Department, department_name};

// ----- vocabulary of plans -----

/// The four areas of cooperation of the guidance, and others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CooperationArea {
    /// Cultivating and promoting projects.
    ProjectCultivation,
    /// Building volunteer teams.
    TeamBuilding,
    /// Managing the information platform.
    PlatformManagement,
    /// Incentives and recognition.
    Incentives,
    /// Anything else.
    Other,
}

impl CooperationArea {
    /// The value as sent on the wire.
    pub fn wire(self) -> i32 {
        let area = match self {
            CooperationArea::ProjectCultivation => pb::CooperationArea::ProjectCultivation,
            CooperationArea::TeamBuilding => pb::CooperationArea::TeamBuilding,
            CooperationArea::PlatformManagement => pb::CooperationArea::PlatformManagement,
            CooperationArea::Incentives => pb::CooperationArea::Incentives,
            CooperationArea::Other => pb::CooperationArea::Other,
        };
        area as i32
    }
}

/// A figure the federation measures, over the plan's whole months (the definitions of `ecovol stats region`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanMetric {
    /// Volunteers registered in the period.
    NewVolunteers,
    /// Confirmed service hours (whole hours).
    ConfirmedHours,
    /// Training sessions held.
    Trainings,
    /// People trained.
    Trainees,
    /// Projects published.
    ProjectsPublished,
    /// Teams registered by the end of the period.
    Teams,
    /// Each month's active volunteers, added up.
    ActiveVolunteerMonths,
    /// Sign-ups accepted.
    SignUps,
}

impl PlanMetric {
    /// The value as sent on the wire.
    pub fn wire(self) -> i32 {
        let metric = match self {
            PlanMetric::NewVolunteers => pb::PlanMetric::NewVolunteers,
            PlanMetric::ConfirmedHours => pb::PlanMetric::ConfirmedHours,
            PlanMetric::Trainings => pb::PlanMetric::Trainings,
            PlanMetric::Trainees => pb::PlanMetric::Trainees,
            PlanMetric::ProjectsPublished => pb::PlanMetric::ProjectsPublished,
            PlanMetric::Teams => pb::PlanMetric::Teams,
            PlanMetric::ActiveVolunteerMonths => pb::PlanMetric::ActiveVolunteerMonths,
            PlanMetric::SignUps => pb::PlanMetric::SignUps,
        };
        metric as i32
    }
}

/// The printed name of a `CooperationArea` value; `None` if unspecified.
pub fn area_name(value: i32) -> Option<String> {
    printed(value, pb::CooperationArea::try_from(value).ok().map(|v| v.as_str_name()), "COOPERATION_AREA_")
}

/// The printed name of a `PlanMetric` value; `None` if unspecified.
pub fn metric_name(value: i32) -> Option<String> {
    printed(value, pb::PlanMetric::try_from(value).ok().map(|v| v.as_str_name()), "PLAN_METRIC_")
}

/// The printed name of a `PlanState` value; `None` if unspecified.
pub fn state_name(value: i32) -> Option<String> {
    printed(value, pb::PlanState::try_from(value).ok().map(|v| v.as_str_name()), "PLAN_STATE_")
}

/// The printed name of a `TargetStatus` value; `None` if unspecified.
pub fn status_name(value: i32) -> Option<String> {
    printed(value, pb::TargetStatus::try_from(value).ok().map(|v| v.as_str_name()), "TARGET_STATUS_")
}

fn departments_json(values: &[i32]) -> Value {
    Value::Array(values.iter().map(|d| name(department_name(*d))).collect())
}

// ----- the files -----

/// A controlled vocabulary read from a file by its command-line name.
pub trait Vocabulary: clap::ValueEnum + Copy {
    /// What a value is, for the message about a name that is not one (`department`).
    const WHAT: &'static str;
}

impl Vocabulary for Department {
    const WHAT: &'static str = "department";
}

impl Vocabulary for CooperationArea {
    const WHAT: &'static str = "cooperation area";
}

impl Vocabulary for PlanMetric {
    const WHAT: &'static str = "metric";
}

/// A value of a vocabulary, written in a file as its command-line name (`"civil-affairs"`). Parsed by clap's own
/// table, so a file accepts exactly what the command line accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named<T>(pub T);

impl<'de, T: Vocabulary> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        T::from_str(&text, false).map(Named).map_err(|_| {
            let known: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
                .collect();
            D::Error::custom(format!("unknown {} \"{text}\": use one of {}", T::WHAT, known.join(", ")))
        })
    }
}

/// A calendar day, written `2026-06-30` (a TOML date) or `"2026-06-30"` (text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day(pub NaiveDate);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Day;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a date like 2026-06-30")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Day, E> {
                crate::wire::parse_date(text)
                    .map(Day)
                    .ok_or_else(|| E::custom(format!("\"{text}\" is not a date like 2026-06-30")))
            }

            // A TOML date arrives as toml's private date-time map.
            fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<Day, M::Error> {
                let value = toml::value::Datetime::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                match (value.date, value.time, value.offset) {
                    (Some(date), None, None) => {
                        NaiveDate::from_ymd_opt(i32::from(date.year), u32::from(date.month), u32::from(date.day))
                            .map(Day)
                            .ok_or_else(|| M::Error::custom(format!("{value} is not a day of the calendar")))
                    }
                    _ => Err(M::Error::custom(format!("{value} is not a date like 2026-06-30 (no time of day)"))),
                }
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// A division code (GB/T 2260), a key of `per_region`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Region(pub String);

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match ecovol_coordinator::region::DivisionCode::parse(&text) {
            Ok(_) => Ok(Region(text)),
            Err(error) => Err(D::Error::custom(format!("region \"{text}\": {error}"))),
        }
    }
}

/// A plan as an office writes it (`ecovol plan draft --file`); see `deploy/examples/plan.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// The plan's title.
    pub title: String,
    /// First day of the period (inclusive).
    pub period_start: Day,
    /// Last day of the period (inclusive).
    pub period_end: Day,
    /// The departments that write, issue and close the plan (the ecology bureau and its co-lead).
    pub lead_departments: Vec<Named<Department>>,
    /// The departments that countersign the plan.
    pub participating_departments: Vec<Named<Department>>,
    /// The areas of cooperation the plan covers.
    #[serde(default)]
    pub areas: Vec<Named<CooperationArea>>,
    /// Measured targets, each with its value per region.
    #[serde(default)]
    pub metrics: Vec<MetricEntry>,
    /// Tasks, each owned by one department.
    #[serde(default)]
    pub tasks: Vec<TaskEntry>,
}

/// `[[metrics]]`: a target measured by the federation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricEntry {
    /// Unique in the plan: 1–32 letters, digits, `_` or `-`.
    pub id: String,
    /// What is measured.
    pub metric: Named<PlanMetric>,
    /// The value to reach in each region: `{ "320100" = 10 }`.
    pub per_region: BTreeMap<Region, u64>,
}

/// `[[tasks]]`: something a department does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskEntry {
    /// Unique in the plan: 1–32 letters, digits, `_` or `-`.
    pub id: String,
    /// What is to be done.
    pub title: String,
    /// The department that does it and reports on it.
    pub owner: Named<Department>,
    /// When it is due.
    pub due: Day,
}

/// What an office adds when it adopts a plan (`ecovol plan adopt --file`): its own tasks, and targets of the plan
/// split among the offices below it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdoptionFile {
    /// This office's own tasks.
    #[serde(default)]
    pub tasks: Vec<TaskEntry>,
    /// Targets of the plan split among the offices below.
    #[serde(default)]
    pub splits: Vec<SplitEntry>,
}

/// `[[splits]]`: one target of the plan, split among the regions below this office.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitEntry {
    /// The `id` of a target of the plan.
    pub target: toml::Spanned<String>,
    /// The value each region below is to reach: `{ "320102" = 5 }`.
    pub per_region: BTreeMap<Region, u64>,
}

fn region_values(per_region: &BTreeMap<Region, u64>) -> Vec<pb::RegionValue> {
    per_region.iter().map(|(region, value)| pb::RegionValue { region: region.0.clone(), value: *value }).collect()
}

impl TaskEntry {
    fn wire(&self) -> pb::PlanTask {
        pb::PlanTask {
            task_id: self.id.clone(),
            title: self.title.clone(),
            owner: self.owner.0.wire(),
            due_date: self.due.0.to_string(),
            added_by: String::new(),
        }
    }
}

impl PlanFile {
    /// The `DraftPlan` request: a new plan (`plan_id` empty) or new content for a draft.
    pub fn request(&self, plan_id: String) -> pb::DraftPlanRequest {
        pb::DraftPlanRequest {
            plan_id,
            title: self.title.clone(),
            period_start: self.period_start.0.to_string(),
            period_end: self.period_end.0.to_string(),
            lead_departments: self.lead_departments.iter().map(|d| d.0.wire()).collect(),
            participating_departments: self.participating_departments.iter().map(|d| d.0.wire()).collect(),
            areas: self.areas.iter().map(|a| a.0.wire()).collect(),
            metrics: self
                .metrics
                .iter()
                .map(|m| pb::MetricTarget {
                    target_id: m.id.clone(),
                    metric: m.metric.0.wire(),
                    per_region: region_values(&m.per_region),
                })
                .collect(),
            tasks: self.tasks.iter().map(TaskEntry::wire).collect(),
        }
    }
}

/// A file's text, read whole; a file that cannot be read is a usage mistake.
fn read_text(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|error| Failure::Usage(format!("--file {}: {error}", path.display())))
}

/// A mistake at `span` of a file's `text`, as `file, line N: message` with the line itself.
fn located(path: &Path, text: &str, span: Option<Range<usize>>, message: &str) -> Failure {
    // toml puts a second line under some messages ("invalid date-time\nvalue is out of range").
    let message = message.trim_end().replace('\n', ": ");
    let Some(span) = span.filter(|span| span.start <= text.len()) else {
        return Failure::Usage(format!("{}: {message}", path.display()));
    };
    let before = text.get(..span.start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or_default();
    Failure::Usage(format!("{}, line {line}: {message}\n  {line} | {line_text}", path.display()))
}

/// Parses a plan or adoption file's `text`; a mistake names its line.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Failure> {
    toml::from_str(text).map_err(|error| located(path, text, error.span(), error.message()))
}

// ----- the command line -----

/// Plan commands.
#[derive(Debug, clap::Subcommand)]
pub enum PlanCommand {
    /// Write a new draft from a plan file (see deploy/examples/plan.toml), or replace a draft's content.
    Draft(DraftArgs),
    /// Send a draft round the participating departments for their signatures (lead departments).
    Submit(PlanIdArg),
    /// Sign the plan for your department (each participating department).
    Sign(PlanIdArg),
    /// Send the plan back to draft for your department, saying what to change.
    Return(ReturnArgs),
    /// Issue a plan every participating department signed; every office below receives it (lead departments).
    Issue(PlanIdArg),
    /// Take on a plan received from above, with this office's own tasks and targets split among the offices below.
    Adopt(AdoptArgs),
    /// Report progress on a task your department owns, at the office that added the task.
    Report(ReportArgs),
    /// Close an issued plan with an evaluation; every copy below is closed too (lead departments of the issuer).
    Close(CloseArgs),
    /// Show a plan with its progress per target and region, task reports, adoptions and compliance checks.
    Show(PlanIdArg),
    /// List the plans this office holds, newest first.
    List,
}

/// A plan id.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanIdArg {
    /// The plan id, e.g. 320000-PL0001.
    pub plan_id: String,
}

/// Arguments of `plan draft`.
#[derive(Debug, Clone, clap::Args)]
pub struct DraftArgs {
    /// The plan file (TOML): title, period, departments, areas, [[metrics]], [[tasks]].
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,

    /// Replace the content of this draft (e.g. after it was returned) instead of writing a new one.
    #[arg(long, value_name = "PLAN_ID")]
    pub plan_id: Option<String>,
}

/// Arguments of `plan return`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReturnArgs {
    /// The plan id, e.g. 320000-PL0001.
    pub plan_id: String,

    /// What the drafters should change (required).
    #[arg(long)]
    pub comment: String,
}

/// Arguments of `plan adopt`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdoptArgs {
    /// The plan id, e.g. 320000-PL0001.
    pub plan_id: String,

    /// An adoption file (TOML): this office's own [[tasks]] and [[splits]] of the plan's targets.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Arguments of `plan report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The plan id, e.g. 320000-PL0001.
    pub plan_id: String,

    /// The task's id in the plan.
    pub task_id: String,

    /// How far the task is done, 0 to 100.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub percent: u32,

    /// What was done, or what holds it up.
    #[arg(long, default_value = "")]
    pub note: String,
}

/// Arguments of `plan close`.
#[derive(Debug, Clone, clap::Args)]
pub struct CloseArgs {
    /// The plan id, e.g. 320000-PL0001.
    pub plan_id: String,

    /// How the plan went (required; every office below receives it).
    #[arg(long)]
    pub evaluation: String,
}

// ----- connecting -----

type Client = ecovol_proto::v1::plan_service_client::PlanServiceClient<super::connection::Authenticated>;

async fn connect(args: &ConnectionArgs, console: &mut Console<'_>) -> Result<Client, Failure> {
    Ok(super::connection::Node::connect(args, console).await?.plans())
}

// ----- what is printed -----

/// The plan's own fields as printed (its targets and tasks are tables of their own).
pub fn plan_record(plan: &pb::Plan) -> Record {
    let awaiting = (plan.state == pb::PlanState::Countersigning as i32).then(|| {
        let waiting: Vec<i32> =
            plan.participating_departments.iter().copied().filter(|d| !plan.signed.contains(d)).collect();
        departments_json(&waiting)
    });
    let returns: Vec<Value> = plan
        .returns
        .iter()
        .map(|r| json!(format!("{}: {}", department_name(r.department).unwrap_or_else(|| "-".into()), r.comment)))
        .collect();
    Record::new()
        .field("plan_id", plan.plan_id.clone())
        .field("title", plan.title.clone())
        .field("state", name(state_name(plan.state)))
        .field("period_start", plan.period_start.clone())
        .field("period_end", plan.period_end.clone())
        .field("issuer", plan.issuer.clone())
        .field("received_from", optional(&plan.received_from))
        .field("lead_departments", departments_json(&plan.lead_departments))
        .field("participating_departments", departments_json(&plan.participating_departments))
        .field("areas", Value::Array(plan.areas.iter().map(|a| name(area_name(*a))).collect()))
        .field("signed", departments_json(&plan.signed))
        .field("awaiting_signature", awaiting.unwrap_or(Value::Null))
        .field("returns", Value::Array(returns))
        .field("evaluation", optional(&plan.evaluation))
}

/// One row per target and region: what the plan asks for.
fn goal_records(plan: &pb::Plan) -> Vec<Record> {
    let mut records = Vec::new();
    for target in &plan.metrics {
        for value in &target.per_region {
            records.push(
                Record::new()
                    .field("target_id", target.target_id.clone())
                    .field("metric", name(metric_name(target.metric)))
                    .field("region", value.region.clone())
                    .field("target", value.value),
            );
        }
    }
    records
}

const GOAL_COLUMNS: &[&str] = &["target_id", "metric", "region", "target"];

fn task_records(plan: &pb::Plan) -> Vec<Record> {
    plan.tasks
        .iter()
        .map(|task| {
            Record::new()
                .field("task_id", task.task_id.clone())
                .field("title", task.title.clone())
                .field("owner", name(department_name(task.owner)))
                .field("due_date", task.due_date.clone())
                .field("added_by", optional(&task.added_by))
        })
        .collect()
}

const TASK_COLUMNS: &[&str] = &["task_id", "title", "owner", "due_date", "added_by"];

/// The plan as JSON: its fields, its targets as `{target_id, metric, per_region: {code: value}}`, its tasks.
pub fn plan_json(plan: &pb::Plan) -> Value {
    let mut json = plan_record(plan).to_json();
    let metrics: Vec<Value> = plan
        .metrics
        .iter()
        .map(|target| {
            let per_region: serde_json::Map<String, Value> =
                target.per_region.iter().map(|value| (value.region.clone(), json!(value.value))).collect();
            json!({
                "target_id": target.target_id,
                "metric": name(metric_name(target.metric)),
                "per_region": per_region,
            })
        })
        .collect();
    json["metrics"] = Value::Array(metrics);
    json["tasks"] = Value::Array(task_records(plan).iter().map(Record::to_json).collect());
    json
}

/// One row per target and region, with the measured figure; a target the node could not measure (no figures for
/// its region) still has its row, with the measurement left empty.
fn progress_records(plan: &pb::Plan, progress: &[pb::TargetProgress]) -> Vec<Record> {
    let mut records = Vec::new();
    for target in &plan.metrics {
        for value in &target.per_region {
            let measured = progress.iter().find(|p| p.target_id == target.target_id && p.region == value.region);
            let freshness = measured.and_then(|p| p.freshness.as_ref());
            records.push(
                Record::new()
                    .field("target_id", target.target_id.clone())
                    .field("metric", name(metric_name(target.metric)))
                    .field("region", value.region.clone())
                    .field("target", value.value)
                    .field("actual", measured.map_or(Value::Null, |p| json!(p.actual)))
                    .field("percent", measured.map_or(Value::Null, |p| json!(p.percent)))
                    .field("status", measured.map_or(Value::Null, |p| name(status_name(p.status))))
                    .field("last_contact", freshness.map_or(Value::Null, |f| timestamp(f.last_contact.as_ref())))
                    .field("stale", freshness.map_or(Value::Null, |f| json!(f.stale)))
                    .field("backlog", freshness.map_or(Value::Null, |f| json!(f.backlog))),
            );
        }
    }
    records
}

const PROGRESS_COLUMNS: &[&str] =
    &["target_id", "metric", "region", "target", "actual", "percent", "status", "last_contact", "stale"];

fn report_records(reports: &[pb::TaskProgress]) -> Vec<Record> {
    reports
        .iter()
        .map(|report| {
            Record::new()
                .field("task_id", report.task_id.clone())
                .field("title", report.title.clone())
                .field("region", report.region.clone())
                .field("owner", name(department_name(report.owner)))
                .field("percent", report.percent)
                .field("status", name(status_name(report.status)))
                .field("reported_at", timestamp(report.reported_at.as_ref()))
                .field("note", optional(&report.note))
        })
        .collect()
}

const REPORT_COLUMNS: &[&str] = &["task_id", "title", "region", "owner", "percent", "status", "reported_at", "note"];

fn adoption_records(adoptions: &[pb::Adoption]) -> Vec<Record> {
    adoptions
        .iter()
        .map(|a| Record::new().field("region", a.region.clone()).field("adopted_at", timestamp(a.adopted_at.as_ref())))
        .collect()
}

const ADOPTION_COLUMNS: &[&str] = &["region", "adopted_at"];

fn compliance_records(checks: &[pb::ComplianceCheck]) -> Vec<Record> {
    checks
        .iter()
        .map(|c| {
            Record::new()
                .field("rule", c.rule.clone())
                .field("satisfied", c.satisfied)
                .field("detail", optional(&c.detail))
        })
        .collect()
}

const COMPLIANCE_COLUMNS: &[&str] = &["rule", "satisfied", "detail"];

/// The whole answer as JSON (`--output json` of every command but `list`).
pub fn response_json(response: &pb::PlanResponse) -> Value {
    let plan = response.plan.clone().unwrap_or_default();
    let records = |records: Vec<Record>| Value::Array(records.iter().map(Record::to_json).collect());
    json!({
        "plan": plan_json(&plan),
        "targets": records(progress_records(&plan, &response.targets)),
        "tasks": records(report_records(&response.tasks)),
        "adoptions": records(adoption_records(&response.adoptions)),
        "compliance": records(compliance_records(&response.compliance)),
    })
}

/// What the status words of the progress table mean, for the people reading it.
const STATUS_LEGEND: &str = "(done: reached; on-track: not reached yet, in time; behind: past the configured share \
                             of the period and short of the pro-rata value;\n overdue: the period is over and the \
                             target not reached; stale: that region's figures may be out of date)\n";

/// Prints the plan: its fields, then its targets (with their measured progress when `progress` is given), then
/// its tasks.
fn print_plan(console: &mut Console<'_>, response: &pb::PlanResponse, progress: bool) {
    let plan = response.plan.clone().unwrap_or_default();
    console.single("plan", &plan_record(&plan));
    if progress {
        console.print(&format!(
            "\nprogress by target and region (measured from the federation's figures over the whole months from \
             {} to {}):\n",
            plan.period_start, plan.period_end
        ));
        console.list("targets", &progress_records(&plan, &response.targets), PROGRESS_COLUMNS, "");
        console.print(STATUS_LEGEND);
    } else {
        console.print("\ntargets:\n");
        console.list("targets", &goal_records(&plan), GOAL_COLUMNS, "");
    }
    console.print("\ntasks (each reported by its owner department at the office that added it):\n");
    console.list("tasks", &task_records(&plan), TASK_COLUMNS, "");
}

/// Prints `plan show`: the plan with progress, task reports, adoptions and compliance checks.
fn print_show(console: &mut Console<'_>, response: &pb::PlanResponse) {
    print_plan(console, response, true);
    console.print("\ntask reports (the latest per task and office):\n");
    console.list("task_reports", &report_records(&response.tasks), REPORT_COLUMNS, "");
    console.print("\nadopted by:\n");
    console.list("adoptions", &adoption_records(&response.adoptions), ADOPTION_COLUMNS, "");
    console.print("\ncompliance checks:\n");
    console.list("compliance_checks", &compliance_records(&response.compliance), COMPLIANCE_COLUMNS, "");
}

/// Notes about regions whose figures may be behind.
fn stale_notes(response: &pb::PlanResponse) -> Vec<String> {
    let mut regions = BTreeSet::new();
    for target in &response.targets {
        if target.freshness.as_ref().is_some_and(|f| f.stale) {
            regions.insert(target.region.clone());
        }
    }
    regions
        .into_iter()
        .map(|region| format!("note: {region} has not been in contact lately: its figures may be out of date"))
        .collect()
}

fn departments_text(values: &[i32]) -> String {
    values.iter().filter_map(|d| department_name(*d)).collect::<Vec<_>>().join(", ")
}

/// What happens next, in plain words, after `command` left the plan as it is in `response`.
fn next_step(command: &str, plan: &pb::Plan) -> Option<String> {
    let id = &plan.plan_id;
    let waiting: Vec<i32> =
        plan.participating_departments.iter().copied().filter(|d| !plan.signed.contains(d)).collect();
    match command {
        "draft" => Some(format!(
            "next: when the text is final, `ecovol plan submit {id}` sends it to the participating departments for their signatures"
        )),
        "submit" | "sign" if waiting.is_empty() => Some(format!(
            "every participating department has signed: a lead department may issue it (`ecovol plan issue {id}`)"
        )),
        "submit" | "sign" => Some(format!("waiting for the signatures of: {}", departments_text(&waiting))),
        "return" => Some(format!(
            "the plan is back in draft: change the file, run `ecovol plan draft --plan-id {id} --file …`, then submit it again"
        )),
        "issue" => Some("issued: each office directly below receives it at its next contact with this node".into()),
        "adopt" => Some("adopted: each office directly below receives it at its next contact with this node".into()),
        "report" => Some("reported: the report travels up to the office that issued the plan".into()),
        "close" => Some("closed: every copy below is closed with this evaluation".into()),
        _ => None,
    }
}

// ----- running -----

/// An adoption file as read: where it is and its text (to point at a line), and what it says.
struct Adoption {
    path: PathBuf,
    text: String,
    file: AdoptionFile,
}

/// A command with its files read and checked: whatever can be found wrong without the node is found first.
enum Call {
    Draft(pb::DraftPlanRequest),
    Submit(pb::PlanRequest),
    Sign(pb::PlanRequest),
    Return(pb::ReturnPlanRequest),
    Issue(pb::PlanRequest),
    Adopt(pb::PlanRequest, Option<Adoption>),
    Report(pb::ReportTaskRequest),
    Close(pb::ClosePlanRequest),
    Show(pb::PlanRequest),
    List,
}

impl Call {
    fn prepare(command: PlanCommand) -> Result<Call, Failure> {
        let plan = |plan_id: String| pb::PlanRequest { plan_id };
        Ok(match command {
            PlanCommand::Draft(args) => {
                let text = read_text(&args.file)?;
                Call::Draft(parse::<PlanFile>(&args.file, &text)?.request(args.plan_id.unwrap_or_default()))
            }
            PlanCommand::Submit(args) => Call::Submit(plan(args.plan_id)),
            PlanCommand::Sign(args) => Call::Sign(plan(args.plan_id)),
            PlanCommand::Return(args) => {
                Call::Return(pb::ReturnPlanRequest { plan_id: args.plan_id, comment: args.comment })
            }
            PlanCommand::Issue(args) => Call::Issue(plan(args.plan_id)),
            PlanCommand::Adopt(args) => {
                let adoption = match args.file {
                    None => None,
                    Some(path) => {
                        let text = read_text(&path)?;
                        let file = parse::<AdoptionFile>(&path, &text)?;
                        Some(Adoption { path, text, file })
                    }
                };
                Call::Adopt(plan(args.plan_id), adoption)
            }
            PlanCommand::Report(args) => Call::Report(pb::ReportTaskRequest {
                plan_id: args.plan_id,
                task_id: args.task_id,
                percent: args.percent,
                note: args.note,
            }),
            PlanCommand::Close(args) => {
                Call::Close(pb::ClosePlanRequest { plan_id: args.plan_id, evaluation: args.evaluation })
            }
            PlanCommand::Show(args) => Call::Show(plan(args.plan_id)),
            PlanCommand::List => Call::List,
        })
    }

    /// The command's word, as `next_step` knows it.
    fn verb(&self) -> &'static str {
        match self {
            Call::Draft(_) => "draft",
            Call::Submit(_) => "submit",
            Call::Sign(_) => "sign",
            Call::Return(_) => "return",
            Call::Issue(_) => "issue",
            Call::Adopt(..) => "adopt",
            Call::Report(_) => "report",
            Call::Close(_) => "close",
            Call::Show(_) => "show",
            Call::List => "list",
        }
    }
}

pub async fn run(command: PlanCommand, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let call = Call::prepare(command)?;
    let verb = call.verb();
    let mut client = connect(connection, console).await?;
    let response = match call {
        Call::List => {
            let plans = client.list_plans(pb::ListPlansRequest {}).await?.into_inner().plans;
            let records: Vec<Record> = plans.iter().map(list_record).collect();
            console.list("plans", &records, LIST_COLUMNS, "");
            return Ok(());
        }
        Call::Draft(request) => client.draft_plan(request).await?,
        Call::Submit(request) => client.submit_plan(request).await?,
        Call::Sign(request) => client.sign_plan(request).await?,
        Call::Return(request) => client.return_plan(request).await?,
        Call::Issue(request) => client.issue_plan(request).await?,
        Call::Adopt(request, None) => {
            client.adopt_plan(pb::AdoptPlanRequest { plan_id: request.plan_id, ..Default::default() }).await?
        }
        Call::Adopt(request, Some(adoption)) => {
            // A split names a target of the plan by id; its metric comes from the plan as received.
            let plan = client.get_plan(request).await?.into_inner().plan.unwrap_or_default();
            client.adopt_plan(adopt_request(&plan, &adoption.path, &adoption.text, &adoption.file)?).await?
        }
        Call::Report(request) => client.report_task(request).await?,
        Call::Close(request) => client.close_plan(request).await?,
        Call::Show(request) => client.get_plan(request).await?,
    }
    .into_inner();
    let show = verb == "show";
    if console.is_json() {
        console.json(&response_json(&response));
    } else if show {
        print_show(console, &response);
    } else {
        print_plan(console, &response, false);
    }
    if show {
        for note in stale_notes(&response) {
            console.note(&note);
        }
    }
    if let Some(next) = next_step(verb, &response.plan.unwrap_or_default()) {
        console.note(&next);
    }
    Ok(())
}

/// The `AdoptPlan` request of an adoption file: each split takes its metric from the plan's target it names.
fn adopt_request(
    plan: &pb::Plan,
    path: &Path,
    text: &str,
    file: &AdoptionFile,
) -> Result<pb::AdoptPlanRequest, Failure> {
    let mut splits = Vec::new();
    for split in &file.splits {
        let Some(target) = plan.metrics.iter().find(|m| &m.target_id == split.target.get_ref()) else {
            let known: Vec<&str> = plan.metrics.iter().map(|m| m.target_id.as_str()).collect();
            let message = format!(
                "plan {} has no target \"{}\" (its targets: {})",
                plan.plan_id,
                split.target.get_ref(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            );
            return Err(located(path, text, Some(split.target.span()), &message));
        };
        splits.push(pb::MetricTarget {
            target_id: target.target_id.clone(),
            metric: target.metric,
            per_region: region_values(&split.per_region),
        });
    }
    Ok(pb::AdoptPlanRequest {
        plan_id: plan.plan_id.clone(),
        tasks: file.tasks.iter().map(TaskEntry::wire).collect(),
        splits,
    })
}

fn list_record(plan: &pb::Plan) -> Record {
    Record::new()
        .field("plan_id", plan.plan_id.clone())
        .field("title", plan.title.clone())
        .field("state", name(state_name(plan.state)))
        .field("period_start", plan.period_start.clone())
        .field("period_end", plan.period_end.clone())
        .field("issuer", plan.issuer.clone())
        .field("received_from", optional(&plan.received_from))
}

const LIST_COLUMNS: &[&str] = &["plan_id", "title", "state", "period_start", "period_end", "issuer", "received_from"];

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    fn example() -> (PathBuf, String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/plan.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text)
    }

    fn usage(failure: Failure) -> String {
        match failure {
            Failure::Usage(message) => message,
            other => panic!("not a usage mistake: {other:?}"),
        }
    }

    #[test]
    fn the_example_plan_reads_into_a_complete_draft() {
        let (path, text) = example();
        let file: PlanFile = parse(&path, &text).unwrap();
        let request = file.request(String::new());
        assert!(request.title.contains("2026"));
        assert_eq!((request.period_start.as_str(), request.period_end.as_str()), ("2026-01-01", "2026-12-31"));
        assert_eq!(request.lead_departments[0], pb::Department::EcologyBureau as i32);
        assert!(request.lead_departments.len() == 2, "the ecology bureau and its co-lead");
        for lead in &request.lead_departments {
            assert!(request.participating_departments.contains(lead), "leads countersign too");
        }
        let areas: BTreeSet<i32> = request.areas.iter().copied().collect();
        assert_eq!(areas.len(), 4, "the four areas of cooperation");
        assert!(!areas.contains(&(pb::CooperationArea::Other as i32)));
        assert!(request.metrics.len() >= 3);
        for target in &request.metrics {
            let regions: Vec<&str> = target.per_region.iter().map(|v| v.region.as_str()).collect();
            assert_eq!(regions, ["320100", "320200"], "{}", target.target_id);
        }
        let owners: BTreeSet<i32> = request.tasks.iter().map(|t| t.owner).collect();
        assert!(owners.len() >= 4, "tasks for several departments");
        for task in &request.tasks {
            assert!(
                request.participating_departments.contains(&task.owner),
                "{} has a countersigning owner",
                task.task_id
            );
            assert!(task.due_date.starts_with("2026-"), "{}", task.task_id);
        }
    }

    #[test]
    fn dates_read_as_toml_dates_or_text() {
        let text = "title = \"t\"\nperiod_start = 2026-01-01\nperiod_end = \"2026-06-30\"\n\
                    lead_departments = [\"ecology-bureau\"]\nparticipating_departments = [\"civil-affairs\"]\n\
                    [[tasks]]\nid = \"a\"\ntitle = \"b\"\nowner = \"civil-affairs\"\ndue = 2026-03-01\n";
        let file: PlanFile = parse(Path::new("p.toml"), text).unwrap();
        assert_eq!(file.period_start.0.to_string(), "2026-01-01");
        assert_eq!(file.period_end.0.to_string(), "2026-06-30");
        assert_eq!(file.tasks[0].due.0.to_string(), "2026-03-01");
        let timed = text.replace("due = 2026-03-01", "due = 2026-03-01T09:00:00");
        assert!(usage(parse::<PlanFile>(Path::new("p.toml"), &timed).unwrap_err()).contains("line 10"));
        let bad = text.replace("\"2026-06-30\"", "\"2026-02-30\"");
        let message = usage(parse::<PlanFile>(Path::new("p.toml"), &bad).unwrap_err());
        assert!(message.starts_with("p.toml, line 3: \"2026-02-30\" is not a date"), "{message}");
    }

    #[test]
    fn mistakes_name_the_line() {
        let check = |text: &str, expected_line: usize, expected: &str| {
            let message = usage(parse::<PlanFile>(Path::new("plan.toml"), text).unwrap_err());
            assert!(message.starts_with(&format!("plan.toml, line {expected_line}: ")), "{message}");
            assert!(message.contains(expected), "{expected} not in {message}");
        };
        let head = "title = \"t\"\nperiod_start = 2026-01-01\nperiod_end = 2026-12-31\n";
        check(
            &format!("{head}lead_departments = [\"police\"]\nparticipating_departments = []\n"),
            4,
            "unknown department \"police\": use one of ecology-bureau, civilization-office",
        );
        check(
            &format!(
                "{head}lead_departments = []\nparticipating_departments = []\n[[metrics]]\nid = \"m\"\n\
                 metric = \"volunteers\"\nper_region = {{ \"320100\" = 1 }}\n"
            ),
            8,
            "unknown metric \"volunteers\"",
        );
        check(
            &format!(
                "{head}lead_departments = []\nparticipating_departments = []\n[[metrics]]\nid = \"m\"\n\
                 metric = \"teams\"\nper_region = {{ \"32010\" = 1 }}\n"
            ),
            9,
            "region \"32010\"",
        );
        check(&format!("{head}lead_departments = []\nparticipating_departments = []\ncolour = 1\n"), 6, "colour");
        check(&format!("{head}lead_departments = [\nparticipating_departments = []\n"), 5, "");
        let missing = usage(parse::<PlanFile>(Path::new("plan.toml"), head).unwrap_err());
        assert!(missing.contains("lead_departments"), "{missing}");
    }

    #[test]
    fn an_adoption_split_takes_its_metric_from_the_plan_and_an_unknown_target_names_its_line() {
        let text = "[[tasks]]\nid = \"nj\"\ntitle = \"t\"\nowner = \"ecology-bureau\"\ndue = 2026-09-30\n\n\
                    [[splits]]\ntarget = \"new-volunteers\"\nper_region = { \"320102\" = 5, \"320104\" = 7 }\n";
        let path = Path::new("adoption.toml");
        let file: AdoptionFile = parse(path, text).unwrap();
        let plan = pb::Plan {
            plan_id: "320000-PL0001".into(),
            metrics: vec![pb::MetricTarget {
                target_id: "new-volunteers".into(),
                metric: pb::PlanMetric::NewVolunteers as i32,
                per_region: vec![],
            }],
            ..Default::default()
        };
        let request = adopt_request(&plan, path, text, &file).unwrap();
        assert_eq!(request.splits[0].metric, pb::PlanMetric::NewVolunteers as i32);
        assert_eq!(request.splits[0].per_region.len(), 2);
        assert_eq!(request.tasks[0].due_date, "2026-09-30");
        let other = pb::Plan { metrics: vec![], ..plan };
        let message = usage(adopt_request(&other, path, text, &file).unwrap_err());
        assert!(message.starts_with("adoption.toml, line 8: plan 320000-PL0001 has no target"), "{message}");
    }

    #[test]
    fn printed_names_are_the_accepted_values() {
        for area in CooperationArea::value_variants() {
            assert_eq!(area_name(area.wire()).as_deref(), area.to_possible_value().as_ref().map(|v| v.get_name()));
        }
        for metric in PlanMetric::value_variants() {
            assert_eq!(
                metric_name(metric.wire()).as_deref(),
                metric.to_possible_value().as_ref().map(|v| v.get_name())
            );
        }
        assert_eq!(state_name(pb::PlanState::Countersigning as i32).as_deref(), Some("countersigning"));
        assert_eq!(status_name(pb::TargetStatus::OnTrack as i32).as_deref(), Some("on-track"));
        assert_eq!(status_name(0), None);
    }

    #[test]
    fn show_prints_every_target_row_even_one_without_figures() {
        let plan = pb::Plan {
            plan_id: "320000-PL0001".into(),
            title: "计划".into(),
            state: pb::PlanState::Countersigning as i32,
            participating_departments: vec![pb::Department::EcologyBureau as i32, pb::Department::CivilAffairs as i32],
            signed: vec![pb::Department::EcologyBureau as i32],
            metrics: vec![pb::MetricTarget {
                target_id: "nv".into(),
                metric: pb::PlanMetric::NewVolunteers as i32,
                per_region: vec![
                    pb::RegionValue { region: "320100".into(), value: 10 },
                    pb::RegionValue { region: "320200".into(), value: 20 },
                ],
            }],
            ..Default::default()
        };
        let response = pb::PlanResponse {
            plan: Some(plan),
            targets: vec![pb::TargetProgress {
                target_id: "nv".into(),
                metric: pb::PlanMetric::NewVolunteers as i32,
                region: "320100".into(),
                target: 10,
                actual: 12,
                percent: 120,
                status: pb::TargetStatus::Done as i32,
                freshness: Some(pb::Freshness { stale: true, ..Default::default() }),
            }],
            ..Default::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut console = Console::new(&mut out, &mut err, super::super::console::OutputFormat::Table);
        print_show(&mut console, &response);
        let out = String::from_utf8(out).unwrap();
        let row = |region: &str| -> Vec<String> {
            let line = out.lines().find(|l| l.starts_with("nv") && l.contains(region)).unwrap();
            line.split_whitespace().map(String::from).collect()
        };
        assert_eq!(row("320100"), ["nv", "new-volunteers", "320100", "10", "12", "120", "done", "-", "yes"]);
        assert_eq!(row("320200"), ["nv", "new-volunteers", "320200", "20", "-", "-", "-", "-", "-"]);
        assert!(out.contains("awaiting_signature:        civil-affairs"), "{out}");
        assert!(out.contains("(no task reports)") && out.contains("(no adoptions)"), "{out}");
        assert_eq!(stale_notes(&response).len(), 1);
        let json = response_json(&response);
        assert_eq!(json["targets"][1]["actual"], Value::Null);
        assert_eq!(json["plan"]["metrics"][0]["per_region"]["320200"], 20);
    }
}
