//! Joint work plans across departments and levels (docs/PLANS.md, PLAN-1).
//!
//! A plan belongs to the node that writes it. Its lifecycle is `ecovol_coordinator::plan::PlanMachine` (issuer)
//! and `CopyMachine` (a receiving node); every transition runs in one committer job and is audited with the
//! account and department that made it.
//!
//! Delivery downward uses the federation's pull mechanism: when a child pulls, the parent adds every plan it
//! passes down (issued here, or adopted here) that the child has not received yet, and every closing the child
//! has not heard of, to the child's messages, with a marker per (plan, child) in the same write: a child receives
//! each plan once, also a child that was offline at issue time or joined later (PLAN-1). Adoptions and task reports
//! travel up as outbox entries, exactly once like every entry.
//!
//! Progress: a metric target is measured from the roll-up of its region over the plan's period (the same figures
//! as `GetRegionStats`), with the region's freshness; a task is reported by its owner department.
//!
//! Keys: `plan/<id>` → the plan (protobuf `Plan`), `plan_m/<id>` → its machine (JSON), `plan_open/<id>` → this
//! node passes it down, `plan_dlv/<id>/<child>` and `plan_cls/<id>/<child>` → delivered and closing delivered,
//! `plan_adopt/<id>/<code>` → adoption time, `plan_task/<id>/<code>/<task>` → the latest task report (JSON).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use ecovol_coordinator::plan::{CopyCommand, CopyMachine, CopyState, PlanCommand, PlanMachine, PlanState};
use ecovol_coordinator::region::DivisionCode;
use ecovol_proto::v1 as pb;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::account::{department_from_pb, department_to_pb};
use crate::app::App;
use crate::auth::{Caller, Department, Role};
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::federation::outbox::{self, Change};
use crate::store::{self, Store};
use crate::wire;

/// Plans longer than this are refused (five years).
pub const PERIOD_DAYS_MAX: i64 = 5 * 366;
/// Targets and tasks per plan.
pub const ITEMS_MAX: usize = 200;

/// Where a plan stands on this node: the issuer's machine, or a copy's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Machine {
    Issuer(PlanMachine),
    Copy(CopyMachine),
}

impl Machine {
    pub fn state(&self) -> pb::PlanState {
        match self {
            Machine::Issuer(m) => match m.state {
                PlanState::Draft => pb::PlanState::Draft,
                PlanState::Countersigning => pb::PlanState::Countersigning,
                PlanState::Issued => pb::PlanState::Issued,
                PlanState::Closed => pb::PlanState::Closed,
            },
            Machine::Copy(c) => match c.state {
                CopyState::Received => pb::PlanState::Received,
                CopyState::Adopted => pb::PlanState::Adopted,
                CopyState::Closed => pb::PlanState::Closed,
            },
        }
    }

    /// True when this node passes the plan down to its children.
    pub fn passes_down(&self) -> bool {
        matches!(self.state(), pb::PlanState::Issued | pb::PlanState::Adopted | pb::PlanState::Closed)
    }
}

/// A task report, as kept by every node on the way up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub title: String,
    pub owner: Department,
    pub percent: u32,
    pub note: String,
    pub reported_at: DateTime<Utc>,
}

fn plan_key(id: &str) -> String {
    format!("plan/{id}")
}

fn machine_key(id: &str) -> String {
    format!("plan_m/{id}")
}

/// A department as plans name it (and the command line): `civil-affairs`.
fn department_id(department: Department) -> String {
    kebab(&format!("{department:?}"))
}

/// `CivilAffairs` → `civil-affairs`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_uppercase() && index > 0 {
            out.push('-');
        }
        out.extend(c.to_lowercase());
    }
    out
}

// ----- validation -----

fn departments(violations: &mut Violations, field: &str, values: &[i32]) -> Vec<Department> {
    let mut found = Vec::new();
    for (index, value) in values.iter().enumerate() {
        match department_from_pb(*value) {
            Some(department) if !found.contains(&department) => found.push(department),
            Some(_) => violations.add(format!("{field}[{index}]"), "is listed twice"),
            None => violations.add(format!("{field}[{index}]"), "is not a department"),
        }
    }
    found
}

fn item_id_ok(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_tasks(violations: &mut Violations, field: &str, tasks: &[pb::PlanTask], added_by: &str) -> Vec<pb::PlanTask> {
    let mut ids = BTreeSet::new();
    let mut checked = Vec::new();
    for (index, task) in tasks.iter().enumerate() {
        let at = |name: &str| format!("{field}[{index}].{name}");
        if !item_id_ok(&task.task_id) {
            violations.add(at("task_id"), "must be 1–32 letters, digits, _ or -");
        } else if !ids.insert(task.task_id.clone()) {
            violations.add(at("task_id"), "is used twice");
        }
        violations.text(&at("title"), &task.title, 200);
        if department_from_pb(task.owner).is_none() {
            violations.add(at("owner"), "must be a department");
        }
        if wire::parse_date(&task.due_date).is_none() {
            violations.add(at("due_date"), "must be a date YYYY-MM-DD");
        }
        checked.push(pb::PlanTask { added_by: added_by.to_string(), ..task.clone() });
    }
    checked
}

fn check_metrics(violations: &mut Violations, field: &str, metrics: &[pb::MetricTarget], territory: DivisionCode) {
    let mut ids = BTreeSet::new();
    for (index, target) in metrics.iter().enumerate() {
        let at = |name: &str| format!("{field}[{index}].{name}");
        if !item_id_ok(&target.target_id) {
            violations.add(at("target_id"), "must be 1–32 letters, digits, _ or -");
        } else if !ids.insert(target.target_id.clone()) {
            violations.add(at("target_id"), "is used twice");
        }
        if matches!(pb::PlanMetric::try_from(target.metric), Err(_) | Ok(pb::PlanMetric::Unspecified)) {
            violations.add(at("metric"), "must be a measured figure");
        }
        if target.per_region.is_empty() {
            violations.add(at("per_region"), "name at least one region with its value");
        }
        let mut regions = BTreeSet::new();
        for (r, value) in target.per_region.iter().enumerate() {
            match DivisionCode::parse(&value.region) {
                Ok(code) if !territory.contains(code) && code != territory => violations
                    .add(format!("{field}[{index}].per_region[{r}].region"), format!("{code} is outside {territory}")),
                Ok(code) if !regions.insert(code) => {
                    violations.add(format!("{field}[{index}].per_region[{r}].region"), "is listed twice")
                }
                Ok(_) => {}
                Err(error) => violations.add(format!("{field}[{index}].per_region[{r}].region"), error.to_string()),
            }
        }
    }
}

/// A validated draft: the plan's content (state fields unset).
fn check_draft(request: &pb::DraftPlanRequest, issuer: DivisionCode) -> Result<pb::Plan, DomainError> {
    let mut violations = Violations::new();
    violations.text("title", &request.title, 200);
    let start = wire::parse_date(&request.period_start);
    let end = wire::parse_date(&request.period_end);
    if start.is_none() {
        violations.add("period_start", "must be a date YYYY-MM-DD");
    }
    if end.is_none() {
        violations.add("period_end", "must be a date YYYY-MM-DD");
    }
    if let (Some(start), Some(end)) = (start, end) {
        if end < start {
            violations.add("period_end", "must not be before period_start");
        } else if (end - start).num_days() > PERIOD_DAYS_MAX {
            violations.add("period_end", "a plan covers at most five years");
        }
    }
    let leads = departments(&mut violations, "lead_departments", &request.lead_departments);
    if !leads.contains(&Department::EcologyBureau) {
        violations.add("lead_departments", "the ecology bureau leads every plan (with its co-lead)");
    }
    let participants = departments(&mut violations, "participating_departments", &request.participating_departments);
    if participants.is_empty() {
        violations.add("participating_departments", "name the departments that countersign the plan");
    }
    for (index, area) in request.areas.iter().enumerate() {
        if matches!(pb::CooperationArea::try_from(*area), Err(_) | Ok(pb::CooperationArea::Unspecified)) {
            violations.add(format!("areas[{index}]"), "is not a cooperation area");
        }
    }
    if request.metrics.len() + request.tasks.len() > ITEMS_MAX {
        violations.add("metrics", format!("a plan holds at most {ITEMS_MAX} targets and tasks"));
    }
    if request.metrics.is_empty() && request.tasks.is_empty() {
        violations.add("metrics", "a plan needs at least one target or task");
    }
    check_metrics(&mut violations, "metrics", &request.metrics, issuer);
    let tasks = check_tasks(&mut violations, "tasks", &request.tasks, &issuer.to_string());
    violations.into_result()?;
    Ok(pb::Plan {
        title: request.title.trim().to_string(),
        period_start: request.period_start.clone(),
        period_end: request.period_end.clone(),
        issuer: issuer.to_string(),
        lead_departments: leads.iter().map(|d| department_to_pb(*d) as i32).collect(),
        participating_departments: participants.iter().map(|d| department_to_pb(*d) as i32).collect(),
        areas: request.areas.clone(),
        metrics: request.metrics.clone(),
        tasks,
        ..pb::Plan::default()
    })
}

// ----- reading and writing -----

fn load(txn: &Txn<'_>, id: &str) -> Result<(pb::Plan, Machine), DomainError> {
    let plan = match txn.get(plan_key(id).as_bytes())? {
        Some(bytes) => pb::Plan::decode(bytes.as_slice())
            .map_err(|error| DomainError::Internal(format!("{}: {error}", plan_key(id))))?,
        None => return Err(DomainError::not_found("plan", id)),
    };
    let machine = txn.get_json::<Machine>(&machine_key(id))?.ok_or_else(|| DomainError::not_found("plan", id))?;
    Ok((plan, machine))
}

fn save(txn: &mut Txn<'_>, plan: &pb::Plan, machine: &Machine) {
    txn.put(plan_key(&plan.plan_id), plan.encode_to_vec());
    txn.put_json(machine_key(&plan.plan_id), machine);
    if machine.passes_down() {
        txn.put(format!("plan_open/{}", plan.plan_id), Vec::new());
    }
}

fn refused(error: ecovol_coordinator::plan::PlanError) -> DomainError {
    DomainError::FailedPrecondition(error.to_string())
}

fn staff(caller: &Caller, action: &str) -> Result<(), DomainError> {
    caller.require_any(&[Role::Staff], action)
}

/// A new draft, or new content for a draft. Staff of a lead department.
pub fn draft(txn: &mut Txn<'_>, caller: &Caller, request: pb::DraftPlanRequest) -> Result<pb::Plan, DomainError> {
    staff(caller, "drafting a plan")?;
    let issuer = txn.outbox().origin();
    let mut plan = check_draft(&request, issuer)?;
    let leads: Vec<Department> = plan.lead_departments.iter().filter_map(|d| department_from_pb(*d)).collect();
    if !leads.contains(&caller.department) {
        return Err(DomainError::denied("only staff of a lead department draft the plan"));
    }
    let participants = plan.participating_departments.iter().filter_map(|d| department_from_pb(*d)).map(department_id);
    let machine = if request.plan_id.is_empty() {
        plan.plan_id = format!("{issuer}-PL{:04}", txn.next_seq("plan")?);
        PlanMachine::new(participants)
    } else {
        let (_, machine) = load(txn, &request.plan_id)?;
        let Machine::Issuer(mut machine) = machine else {
            return Err(DomainError::FailedPrecondition("a received plan is adopted, not redrafted".into()));
        };
        machine.apply(&PlanCommand::Edit).map_err(refused)?;
        machine.participants = participants.collect();
        plan.plan_id = request.plan_id.clone();
        machine
    };
    txn.target = plan.plan_id.clone();
    let machine = Machine::Issuer(machine);
    plan.state = machine.state() as i32;
    save(txn, &plan, &machine);
    Ok(present(plan, &machine))
}

/// The issuer's lifecycle commands (submit, sign, return, issue).
pub fn command(
    txn: &mut Txn<'_>,
    caller: &Caller,
    id: &str,
    command: PlanCommandKind,
) -> Result<pb::Plan, DomainError> {
    staff(caller, "working on a plan")?;
    let (plan, machine) = load(txn, id)?;
    let Machine::Issuer(mut machine) = machine else {
        return Err(DomainError::FailedPrecondition(format!(
            "plan {id} was received from {}: adopt it here",
            plan.received_from
        )));
    };
    let department = department_id(caller.department);
    let command = match command {
        PlanCommandKind::Submit => PlanCommand::Submit,
        PlanCommandKind::Sign => PlanCommand::Sign { department },
        PlanCommandKind::Return(comment) => PlanCommand::Return { department, comment },
        PlanCommandKind::Issue => PlanCommand::Issue,
    };
    if matches!(command, PlanCommand::Submit | PlanCommand::Issue) {
        let leads: Vec<Department> = plan.lead_departments.iter().filter_map(|d| department_from_pb(*d)).collect();
        if !leads.contains(&caller.department) {
            return Err(DomainError::denied("only staff of a lead department submit or issue the plan"));
        }
    }
    machine.apply(&command).map_err(refused)?;
    txn.detail = format!("{command:?}");
    let machine = Machine::Issuer(machine);
    save(txn, &plan, &machine);
    Ok(present(plan, &machine))
}

/// What `command` does.
#[derive(Debug, Clone)]
pub enum PlanCommandKind {
    Submit,
    Sign,
    Return(String),
    Issue,
}

/// Adopts a received plan here, with this office's own tasks and its targets split among its children.
pub fn adopt(txn: &mut Txn<'_>, caller: &Caller, request: pb::AdoptPlanRequest) -> Result<pb::Plan, DomainError> {
    staff(caller, "adopting a plan")?;
    let (mut plan, machine) = load(txn, &request.plan_id)?;
    let Machine::Copy(mut copy) = machine else {
        return Err(DomainError::FailedPrecondition("this node wrote the plan: it is issued, not adopted".into()));
    };
    let here = txn.outbox().origin();
    let mut violations = Violations::new();
    let tasks = check_tasks(&mut violations, "tasks", &request.tasks, &here.to_string());
    check_metrics(&mut violations, "splits", &request.splits, here);
    for (index, split) in request.splits.iter().enumerate() {
        if !plan.metrics.iter().any(|m| m.target_id == split.target_id) {
            violations.add(format!("splits[{index}].target_id"), "names no target of the plan");
        }
    }
    for (index, task) in tasks.iter().enumerate() {
        if plan.tasks.iter().any(|t| t.task_id == task.task_id) {
            violations.add(format!("tasks[{index}].task_id"), "the plan has a task with this id");
        }
    }
    violations.into_result()?;
    copy.apply(CopyCommand::Adopt).map_err(refused)?;
    plan.tasks.extend(tasks);
    for split in &request.splits {
        if let Some(target) = plan.metrics.iter_mut().find(|m| m.target_id == split.target_id) {
            target.per_region.extend(split.per_region.iter().cloned());
        }
    }
    let machine = Machine::Copy(copy);
    plan.state = machine.state() as i32;
    save(txn, &plan, &machine);
    let now = txn.now();
    txn.put_json(format!("plan_adopt/{}/{here}", plan.plan_id), &now);
    let mut change = Change::new(pb::ChangeKind::PlanAdopted, plan.plan_id.clone());
    change.plan_report = Some(pb::PlanReport { plan_id: plan.plan_id.clone(), ..Default::default() });
    outbox::record(txn, change)?;
    Ok(present(plan, &machine))
}

/// The owner department reports a task's progress; it travels up to the issuer.
pub fn report_task(
    txn: &mut Txn<'_>,
    caller: &Caller,
    request: pb::ReportTaskRequest,
) -> Result<pb::Plan, DomainError> {
    staff(caller, "reporting on a plan's task")?;
    let (plan, machine) = load(txn, &request.plan_id)?;
    match &machine {
        Machine::Copy(copy) => {
            let mut copy = *copy;
            copy.apply(CopyCommand::ReportProgress).map_err(refused)?;
        }
        Machine::Issuer(m) if m.state == PlanState::Issued => {}
        Machine::Issuer(_) => {
            return Err(DomainError::FailedPrecondition("tasks are reported on an issued plan".into()));
        }
    }
    let here = txn.outbox().origin().to_string();
    let Some(task) = plan.tasks.iter().find(|t| t.task_id == request.task_id) else {
        return Err(DomainError::invalid("task_id", "names no task of the plan"));
    };
    if task.added_by != here {
        return Err(DomainError::FailedPrecondition(format!(
            "task {} was added by {}: it is reported there",
            task.task_id, task.added_by
        )));
    }
    let owner = department_from_pb(task.owner).unwrap_or(Department::Other);
    if owner != caller.department {
        return Err(DomainError::denied(format!(
            "the task belongs to {}; its staff report on it",
            department_id(owner)
        )));
    }
    if request.percent > 100 {
        return Err(DomainError::invalid("percent", "must be 0–100"));
    }
    let mut violations = Violations::new();
    violations.optional_text("note", &request.note, 500);
    violations.into_result()?;
    let report = TaskReport {
        title: task.title.clone(),
        owner,
        percent: request.percent,
        note: request.note.clone(),
        reported_at: txn.now(),
    };
    txn.put_json(format!("plan_task/{}/{here}/{}", plan.plan_id, task.task_id), &report);
    let mut change = Change::new(pb::ChangeKind::PlanTaskReported, plan.plan_id.clone());
    change.plan_report = Some(pb::PlanReport {
        plan_id: plan.plan_id.clone(),
        task_id: task.task_id.clone(),
        task_title: task.title.clone(),
        percent: request.percent,
        note: request.note.clone(),
        owner: task.owner,
    });
    outbox::record(txn, change)?;
    Ok(present(plan, &machine))
}

/// Closes an issued plan with its evaluation (the issuer's lead departments).
pub fn close(txn: &mut Txn<'_>, caller: &Caller, request: pb::ClosePlanRequest) -> Result<pb::Plan, DomainError> {
    staff(caller, "closing a plan")?;
    let (mut plan, machine) = load(txn, &request.plan_id)?;
    let Machine::Issuer(mut machine) = machine else {
        return Err(DomainError::FailedPrecondition(format!("only the issuer ({}) closes the plan", plan.issuer)));
    };
    let leads: Vec<Department> = plan.lead_departments.iter().filter_map(|d| department_from_pb(*d)).collect();
    if !leads.contains(&caller.department) {
        return Err(DomainError::denied("only staff of a lead department close the plan"));
    }
    let mut violations = Violations::new();
    violations.text("evaluation", &request.evaluation, 2000);
    violations.into_result()?;
    machine.apply(&PlanCommand::Close).map_err(refused)?;
    plan.evaluation = request.evaluation.trim().to_string();
    let machine = Machine::Issuer(machine);
    save(txn, &plan, &machine);
    Ok(present(plan, &machine))
}

fn present(mut plan: pb::Plan, machine: &Machine) -> pb::Plan {
    plan.state = machine.state() as i32;
    if let Machine::Issuer(m) = machine {
        let by_id: BTreeMap<String, Department> = [
            Department::EcologyBureau,
            Department::CivilizationOffice,
            Department::SocialWork,
            Department::CivilAffairs,
            Department::Education,
            Department::YouthLeague,
            Department::WomensFederation,
            Department::Other,
        ]
        .into_iter()
        .map(|d| (department_id(d), d))
        .collect();
        plan.signed = m.signed.iter().filter_map(|d| by_id.get(d)).map(|d| department_to_pb(*d) as i32).collect();
        plan.returns = m
            .returns
            .iter()
            .map(|r| pb::ReturnComment {
                department: by_id.get(&r.department).map(|d| department_to_pb(*d) as i32).unwrap_or(0),
                comment: r.comment.clone(),
            })
            .collect();
    }
    plan
}

// ----- federation: down and up -----

/// At a parent, when `child` pulls: the plans and closings it has not received yet, marked delivered in `txn`.
pub fn deliveries(txn: &mut Txn<'_>, child: DivisionCode) -> Result<Vec<pb::DownMessage>, DomainError> {
    let mut open = Vec::new();
    txn.store().scan(b"plan_open/", None, &mut |key, _| {
        open.push(String::from_utf8_lossy(&key[b"plan_open/".len()..]).into_owned());
        std::ops::ControlFlow::Continue(())
    })?;
    let mut messages = Vec::new();
    for id in open {
        let (plan, machine) = load(txn, &id)?;
        if !machine.passes_down() {
            continue;
        }
        let delivered = format!("plan_dlv/{id}/{child}");
        let closed = machine.state() == pb::PlanState::Closed;
        if txn.get(delivered.as_bytes())?.is_none() {
            if closed {
                continue;
            }
            txn.put(delivered, Vec::new());
            let copy =
                pb::Plan { state: pb::PlanState::Received as i32, signed: vec![], returns: vec![], ..plan.clone() };
            messages.push(pb::DownMessage { target: child.to_string(), plan: Some(copy), ..Default::default() });
        } else if closed {
            let closing = format!("plan_cls/{id}/{child}");
            if txn.get(closing.as_bytes())?.is_none() {
                txn.put(closing, Vec::new());
                messages.push(pb::DownMessage {
                    target: child.to_string(),
                    closed_plan_id: id.clone(),
                    closing_evaluation: plan.evaluation.clone(),
                    ..Default::default()
                });
            }
        }
    }
    Ok(messages)
}

/// At a child: a plan or a closing from the parent. A plan already held is not received twice (PLAN-1).
pub fn receive(txn: &mut Txn<'_>, from: &str, message: &pb::DownMessage) -> Result<(), DomainError> {
    if let Some(plan) = &message.plan {
        if plan.plan_id.is_empty() || txn.get(plan_key(&plan.plan_id).as_bytes())?.is_some() {
            return Ok(());
        }
        let plan = pb::Plan { received_from: from.to_string(), ..plan.clone() };
        save(txn, &plan, &Machine::Copy(CopyMachine::default()));
        tracing::info!(plan = %plan.plan_id, from, "received a joint work plan");
    }
    if !message.closed_plan_id.is_empty() {
        let id = &message.closed_plan_id;
        if let Ok((mut plan, Machine::Copy(mut copy))) = load(txn, id)
            && copy.state != CopyState::Closed
        {
            copy.apply(CopyCommand::Close).map_err(refused)?;
            plan.evaluation = message.closing_evaluation.clone();
            save(txn, &plan, &Machine::Copy(copy));
        }
    }
    Ok(())
}

/// At a parent applying a child's entry: keeps adoptions and task reports of its subtree.
pub fn apply_report(txn: &mut Txn<'_>, origin: DivisionCode, entry: &pb::UpEntry) -> Result<(), DomainError> {
    let Some(report) = &entry.plan_report else { return Ok(()) };
    let at = entry.committed_at.as_ref().and_then(wire::from_timestamp).unwrap_or_else(|| txn.now());
    match pb::ChangeKind::try_from(entry.kind) {
        Ok(pb::ChangeKind::PlanAdopted) => txn.put_json(format!("plan_adopt/{}/{origin}", report.plan_id), &at),
        Ok(pb::ChangeKind::PlanTaskReported) => {
            let task = TaskReport {
                title: report.task_title.clone(),
                owner: department_from_pb(report.owner).unwrap_or(Department::Other),
                percent: report.percent.min(100),
                note: report.note.clone(),
                reported_at: at,
            };
            txn.put_json(format!("plan_task/{}/{origin}/{}", report.plan_id, report.task_id), &task);
        }
        _ => {}
    }
    Ok(())
}

// ----- progress -----

fn metric_value(metric: pb::PlanMetric, totals: &pb::RegionTotals) -> u64 {
    match metric {
        pb::PlanMetric::NewVolunteers => totals.newly_registered_volunteers,
        pb::PlanMetric::ConfirmedHours => totals.confirmed_hours_x100 / 100,
        pb::PlanMetric::Trainings => totals.trainings,
        pb::PlanMetric::Trainees => totals.trainees,
        pb::PlanMetric::ProjectsPublished => totals.projects_published,
        pb::PlanMetric::Teams => totals.teams,
        pb::PlanMetric::ActiveVolunteerMonths => totals.active_volunteer_months,
        pb::PlanMetric::SignUps => totals.sign_ups_accepted,
        pb::PlanMetric::Unspecified => 0,
    }
}

/// On track, behind, overdue or done, from the share of the period elapsed.
pub fn status_of(
    target: u64,
    actual: u64,
    start: NaiveDate,
    end: NaiveDate,
    today: NaiveDate,
    behind_after: f64,
) -> pb::TargetStatus {
    if actual >= target {
        return pb::TargetStatus::Done;
    }
    if today > end {
        return pb::TargetStatus::Overdue;
    }
    let days = (end - start).num_days() + 1;
    let elapsed = ((today - start).num_days() + 1).clamp(0, days) as f64 / days as f64;
    if elapsed >= behind_after && (actual as f64) < target as f64 * elapsed {
        pb::TargetStatus::Behind
    } else {
        pb::TargetStatus::OnTrack
    }
}

/// The plan with its progress, adoptions, task reports and compliance checks (staff and auditors).
pub fn get(app: &App, caller: &Caller, id: &str) -> Result<pb::PlanResponse, DomainError> {
    caller.require_any(&[Role::Staff, Role::Auditor], "reading a plan")?;
    let store = &*app.store;
    let plan = match store.get(plan_key(id).as_bytes())? {
        Some(bytes) => pb::Plan::decode(bytes.as_slice()).map_err(|error| DomainError::Internal(error.to_string()))?,
        None => return Err(DomainError::not_found("plan", id)),
    };
    let machine: Machine =
        store::get_json(store, machine_key(id).as_bytes())?.ok_or_else(|| DomainError::not_found("plan", id))?;
    let plan = present(plan, &machine);
    let (Some(start), Some(end)) = (wire::parse_date(&plan.period_start), wire::parse_date(&plan.period_end)) else {
        return Err(DomainError::Internal(format!("plan {id} has no valid period")));
    };
    let today = wire::today_china();
    let behind_after = app.config.plans.behind_after_fraction;
    let mut targets = Vec::new();
    // One roll-up answer per region, however many targets name it.
    let mut answers: BTreeMap<String, Option<pb::GetRegionStatsResponse>> = BTreeMap::new();
    for target in &plan.metrics {
        let metric = pb::PlanMetric::try_from(target.metric).unwrap_or_default();
        for value in &target.per_region {
            let answer = answers.entry(value.region.clone()).or_insert_with(|| {
                let request = pb::GetRegionStatsRequest {
                    region: value.region.clone(),
                    start_date: plan.period_start.clone(),
                    end_date: plan.period_end.clone(),
                };
                crate::federation::region::get(app, caller, request).ok()
            });
            let Some(stats) = answer.clone() else { continue };
            let totals = stats.totals.unwrap_or_default();
            let actual = metric_value(metric, &totals);
            let freshness = stats.parts.first().and_then(|part| part.freshness);
            targets.push(pb::TargetProgress {
                target_id: target.target_id.clone(),
                metric: metric as i32,
                region: value.region.clone(),
                target: value.value,
                actual,
                percent: actual.saturating_mul(100).checked_div(value.value).map_or(100, |p| p.min(999) as u32),
                status: status_of(value.value, actual, start, end, today, behind_after) as i32,
                freshness,
            });
        }
    }
    let mut tasks = Vec::new();
    store::scan_json_keyed::<TaskReport>(store, &format!("plan_task/{id}/"), |key, report| {
        let (region, task_id) = key.split_once('/').unwrap_or((key, ""));
        let due = plan.tasks.iter().find(|t| t.task_id == task_id).and_then(|t| wire::parse_date(&t.due_date));
        let status = if report.percent >= 100 {
            pb::TargetStatus::Done
        } else if due.is_some_and(|due| today > due) {
            pb::TargetStatus::Overdue
        } else {
            pb::TargetStatus::OnTrack
        };
        tasks.push(pb::TaskProgress {
            task_id: task_id.to_string(),
            title: report.title,
            region: region.to_string(),
            owner: department_to_pb(report.owner) as i32,
            percent: report.percent,
            note: report.note,
            reported_at: Some(wire::timestamp(report.reported_at)),
            status: status as i32,
        });
    })?;
    // Tasks nobody reported on yet, past their due date, are overdue too.
    for task in &plan.tasks {
        if !tasks.iter().any(|t| t.task_id == task.task_id)
            && wire::parse_date(&task.due_date).is_some_and(|due| today > due)
        {
            tasks.push(pb::TaskProgress {
                task_id: task.task_id.clone(),
                title: task.title.clone(),
                region: task.added_by.clone(),
                owner: task.owner,
                status: pb::TargetStatus::Overdue as i32,
                ..Default::default()
            });
        }
    }
    let mut adoptions = Vec::new();
    store::scan_json_keyed::<DateTime<Utc>>(store, &format!("plan_adopt/{id}/"), |key, at| {
        adoptions.push(pb::Adoption { region: key.to_string(), adopted_at: Some(wire::timestamp(at)) })
    })?;
    let compliance = compliance(app, start, end)?;
    Ok(pb::PlanResponse { plan: Some(plan), targets, tasks, adoptions, compliance })
}

#[derive(Deserialize)]
struct TrainingView {
    date: NaiveDate,
    audiences: Vec<crate::training::TrainingAudience>,
}

/// Built-in checks shown with a plan: a province holds, each year of the period, at least one training for each
/// of volunteer workers, organisation heads and volunteers (DOMAIN.md).
fn compliance(app: &App, start: NaiveDate, end: NaiveDate) -> Result<Vec<pb::ComplianceCheck>, DomainError> {
    use crate::training::TrainingAudience as A;
    use chrono::Datelike;
    if app.config.node.level != crate::config::Level::Province {
        return Ok(Vec::new());
    }
    let mut held: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    store::scan_json::<TrainingView>(&*app.store, "train/", |training| {
        for audience in training.audiences {
            held.entry(training.date.year()).or_default().insert(kebab(&format!("{audience:?}")));
        }
    })?;
    let needed = [A::VolunteerWorkers, A::OrganisationHeads, A::Volunteers].map(|a| kebab(&format!("{a:?}")));
    let today = wire::today_china();
    let mut checks = Vec::new();
    for year in start.year()..=end.year().min(today.year()) {
        let have = held.get(&year).cloned().unwrap_or_default();
        let missing: Vec<&String> = needed.iter().filter(|a| !have.contains(*a)).collect();
        checks.push(pb::ComplianceCheck {
            rule: format!("{year}: the province trains volunteer workers, organisation heads and volunteers"),
            satisfied: missing.is_empty(),
            detail: if missing.is_empty() {
                "trainings held for all three audiences".into()
            } else {
                format!("no training yet for {}", missing.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", "))
            },
        });
    }
    Ok(checks)
}

/// Every plan held here, newest first (staff and auditors).
pub fn list(store: &dyn Store, caller: &Caller) -> Result<Vec<pb::Plan>, DomainError> {
    caller.require_any(&[Role::Staff, Role::Auditor], "listing plans")?;
    let mut plans = Vec::new();
    let mut failure = None;
    store.scan(b"plan/", None, &mut |key, value| {
        match pb::Plan::decode(value) {
            Ok(plan) => plans.push(plan),
            Err(error) => failure = Some(format!("{}: {error}", String::from_utf8_lossy(key))),
        }
        std::ops::ControlFlow::Continue(())
    })?;
    if let Some(failure) = failure {
        return Err(DomainError::Internal(failure));
    }
    let mut presented = Vec::new();
    for plan in plans {
        let machine: Option<Machine> = store::get_json(store, machine_key(&plan.plan_id).as_bytes())?;
        if let Some(machine) = machine {
            presented.push(present(plan, &machine));
        }
    }
    presented.reverse();
    Ok(presented)
}

/// True if `child` has a plan or a closing waiting (a cheap read before a write is queued).
pub fn has_deliveries(store: &dyn Store, child: DivisionCode) -> Result<bool, DomainError> {
    let mut open = Vec::new();
    store.scan(b"plan_open/", None, &mut |key, _| {
        open.push(String::from_utf8_lossy(&key[b"plan_open/".len()..]).into_owned());
        std::ops::ControlFlow::Continue(())
    })?;
    for id in open {
        let Some(machine) = store::get_json::<Machine>(store, machine_key(&id).as_bytes())? else { continue };
        if !machine.passes_down() {
            continue;
        }
        let delivered = store.get(format!("plan_dlv/{id}/{child}").as_bytes())?.is_some();
        let closed = machine.state() == pb::PlanState::Closed;
        if (!delivered && !closed)
            || (delivered && closed && store.get(format!("plan_cls/{id}/{child}").as_bytes())?.is_none())
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_behind_only_past_the_configured_share_of_the_period() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        assert_eq!(status_of(100, 10, start, end, day(3, 1), 0.5), pb::TargetStatus::OnTrack, "early in the year");
        assert_eq!(status_of(100, 10, start, end, day(8, 1), 0.5), pb::TargetStatus::Behind, "58% of the year, 10%");
        assert_eq!(status_of(100, 70, start, end, day(8, 1), 0.5), pb::TargetStatus::OnTrack);
        assert_eq!(status_of(100, 100, start, end, day(2, 1), 0.5), pb::TargetStatus::Done);
        let after = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        assert_eq!(status_of(100, 99, start, end, after, 0.5), pb::TargetStatus::Overdue);
    }
}
