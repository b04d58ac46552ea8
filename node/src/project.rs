//! Projects and the project library: create (draft), edit, publish, close, cancel; the key / brand /
//! demonstration marks staff set; the searchable library of published and past projects.
//!
//! Rules (DOMAIN.md): the five kinds of activity of the guidance (part 三) are the controlled vocabulary; the
//! project library holds key projects, brand projects and regularly selected demonstration projects (part
//! 五(二)), and a demonstration selection is made by staff with a reason, audited; a project with physical risk must
//! have accident insurance before it is published (Regulations on Volunteer Service art. 17). Only drafts are
//! published; closed and cancelled projects are final.
//!
//! Keys: `proj/<project_id>` the record (`ProjectRecord`). Sign-ups live in `project::signup`.
//!
//! The federation's figures (`federation::outbox`, same write): a publication counts in its month and the
//! project's kind; an edit of the kind or the start moves it, and the seats held, to their new cells; closing or
//! cancelling a published project is told without changing any figure.

pub mod signup;

use chrono::{DateTime, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::federation::outbox::{self, Change, cell_at, kind_number};
use crate::page::{Page, PageRequest};
use crate::registry::{site, team};
use crate::store::{self, Store};
use crate::wire;

/// Longest title accepted, characters.
pub const TITLE_CHARS_MAX: usize = 100;
/// Longest description accepted, characters.
pub const DESCRIPTION_CHARS_MAX: usize = 2000;
/// Longest contact accepted, characters.
pub const CONTACT_CHARS_MAX: usize = 100;
/// Longest reason (cancellation, demonstration selection) accepted, characters.
pub const REASON_CHARS_MAX: usize = 500;
/// Longest search text accepted, characters.
pub const SEARCH_TEXT_CHARS_MAX: usize = 100;
/// Most seats on one project.
pub const CAPACITY_MAX: u32 = 100_000;
/// Highest minimum age a project may ask for, years.
pub const MIN_AGE_MAX: u32 = 100;
/// Most skills a project may ask for.
pub const SKILLS_WANTED_MAX: usize = 20;
/// Longest skill, characters.
pub const SKILL_CHARS_MAX: usize = 32;
/// Longest project, team or site id accepted, characters (`330106-P000007` is 14).
pub const ID_CHARS_MAX: usize = 32;

/// The art. 17 refusal, shared by publishing and editing a published project.
const UNINSURED_RISK: &str = "is risky and has no accident insurance: it cannot be published \
                              (Regulations on Volunteer Service art. 17)";
const KIND_REQUIRED: &str = "is required: theory promotion, publicity and education, social supervision, \
                             green low-carbon practice or international exchange (guidance part 三)";

/// The five kinds of activity of the guidance (part 三), the controlled vocabulary of projects and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// 1. Theory promotion (宣讲).
    TheoryPromotion,
    /// 2. Publicity, education and science popularisation.
    PublicityEducation,
    /// 3. Social supervision: volunteers report damage to the environment and violations.
    SocialSupervision,
    /// 4. Green low-carbon practice.
    GreenLowCarbon,
    /// 5. International exchange.
    InternationalExchange,
}

/// Where a project is in its life: draft → published → closed, or cancelled. Closed and cancelled are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Draft,
    Published,
    Closed,
    Cancelled,
}

impl ProjectStatus {
    pub fn label(self) -> &'static str {
        match self {
            ProjectStatus::Draft => "a draft",
            ProjectStatus::Published => "published",
            ProjectStatus::Closed => "closed",
            ProjectStatus::Cancelled => "cancelled",
        }
    }

    /// Closed and cancelled projects change no more.
    pub fn is_final(self) -> bool {
        matches!(self, ProjectStatus::Closed | ProjectStatus::Cancelled)
    }
}

/// The known activity kind of a wire value; `None` for unspecified or unknown values.
pub fn activity_kind(value: i32) -> Option<ActivityKind> {
    match pb::ActivityKind::try_from(value).ok()? {
        pb::ActivityKind::Unspecified => None,
        pb::ActivityKind::TheoryPromotion => Some(ActivityKind::TheoryPromotion),
        pb::ActivityKind::PublicityEducation => Some(ActivityKind::PublicityEducation),
        pb::ActivityKind::SocialSupervision => Some(ActivityKind::SocialSupervision),
        pb::ActivityKind::GreenLowCarbon => Some(ActivityKind::GreenLowCarbon),
        pb::ActivityKind::InternationalExchange => Some(ActivityKind::InternationalExchange),
    }
}

impl From<ActivityKind> for pb::ActivityKind {
    fn from(kind: ActivityKind) -> Self {
        match kind {
            ActivityKind::TheoryPromotion => pb::ActivityKind::TheoryPromotion,
            ActivityKind::PublicityEducation => pb::ActivityKind::PublicityEducation,
            ActivityKind::SocialSupervision => pb::ActivityKind::SocialSupervision,
            ActivityKind::GreenLowCarbon => pb::ActivityKind::GreenLowCarbon,
            ActivityKind::InternationalExchange => pb::ActivityKind::InternationalExchange,
        }
    }
}

fn project_status(value: i32) -> Option<ProjectStatus> {
    match pb::ProjectStatus::try_from(value).ok()? {
        pb::ProjectStatus::Unspecified => None,
        pb::ProjectStatus::Draft => Some(ProjectStatus::Draft),
        pb::ProjectStatus::Published => Some(ProjectStatus::Published),
        pb::ProjectStatus::Closed => Some(ProjectStatus::Closed),
        pb::ProjectStatus::Cancelled => Some(ProjectStatus::Cancelled),
    }
}

impl From<ProjectStatus> for pb::ProjectStatus {
    fn from(status: ProjectStatus) -> Self {
        match status {
            ProjectStatus::Draft => pb::ProjectStatus::Draft,
            ProjectStatus::Published => pb::ProjectStatus::Published,
            ProjectStatus::Closed => pb::ProjectStatus::Closed,
            ProjectStatus::Cancelled => pb::ProjectStatus::Cancelled,
        }
    }
}

/// A project as stored under `proj/<project_id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// `{node_code}-P{seq:06}`.
    pub project_id: String,
    pub title: String,
    pub description: String,
    pub activity_kind: ActivityKind,
    pub organising_team_id: String,
    pub site_id: Option<String>,
    pub start_at: DateTime<Utc>,
    /// Strictly after `start_at`.
    pub end_at: DateTime<Utc>,
    /// Seats; CAP-1: `accepted_count <= capacity` always.
    pub capacity: u32,
    /// Sign-ups holding a seat; kept in the same write as every sign-up change.
    pub accepted_count: u32,
    /// Sign-ups waiting for a seat; kept in the same write as every sign-up change.
    pub waitlisted_count: u32,
    /// Minimum age in whole years on the day the project starts (China time).
    pub min_age: u32,
    pub skills_wanted: Vec<String>,
    /// Physical risk: minors may not join (DOMAIN.md "Minors").
    pub risky: bool,
    /// Accident insurance is in place (Regulations on Volunteer Service art. 17).
    pub insured: bool,
    /// A key project of the library (guidance part 五(二)), marked by staff.
    pub key_project: bool,
    /// A brand project of the library, marked by staff.
    pub brand_project: bool,
    /// Selected by staff as a demonstration project.
    pub demonstration: bool,
    /// Why staff selected it as a demonstration project; empty unless `demonstration`.
    pub demonstration_reason: String,
    pub contact: String,
    pub status: ProjectStatus,
    /// Bumped by every change of the project's own fields; sign-up counters do not bump it.
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

impl ProjectRecord {
    /// True if the project's time `[start_at, end_at)` intersects `[start, end)`.
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.start_at < end && start < self.end_at
    }
}

/// The key of a project record.
pub fn project_key(project_id: &str) -> String {
    format!("proj/{project_id}")
}

/// Loads a project inside a write; NotFound if there is none.
pub fn load(txn: &Txn<'_>, project_id: &str) -> Result<ProjectRecord, DomainError> {
    txn.get_json(&project_key(project_id))?.ok_or_else(|| DomainError::not_found("project", project_id))
}

/// Stores a project record.
pub fn save(txn: &mut Txn<'_>, record: &ProjectRecord) {
    txn.put_json(project_key(&record.project_id), record);
}

/// Checks a node-assigned id (project, team, site): short ASCII letters, digits and '-', so it can sit in keys.
pub fn check_id(violations: &mut Violations, field: &str, id: &str, example: &str) {
    if id.is_empty() {
        violations.add(field, "is required");
    } else if id.len() > ID_CHARS_MAX || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        violations.add(field, format!("is not an id (like {example})"));
    }
}

fn check_project_id(violations: &mut Violations, project_id: &str) {
    check_id(violations, "project_id", project_id, "330106-P000007");
}

fn check_skills(violations: &mut Violations, field: &str, skills: &[String]) {
    if skills.len() > SKILLS_WANTED_MAX {
        violations.add(field, format!("at most {SKILLS_WANTED_MAX} skills, got {}", skills.len()));
        return;
    }
    for (index, skill) in skills.iter().enumerate() {
        violations.text(&format!("{field}[{index}]"), skill, SKILL_CHARS_MAX);
        if skills[..index].iter().any(|earlier| earlier.trim() == skill.trim()) {
            violations.add(format!("{field}[{index}]"), "is listed twice");
        }
    }
}

/// A wire timestamp, required; a violation of `field` if missing or out of range.
fn required_time(
    violations: &mut Violations,
    field: &str,
    time: Option<&prost_types::Timestamp>,
) -> Option<DateTime<Utc>> {
    match time {
        None => {
            violations.add(field, "is required");
            None
        }
        Some(time) => optional_time(violations, field, Some(time)),
    }
}

/// A wire timestamp, optional; a violation of `field` if out of range.
fn optional_time(
    violations: &mut Violations,
    field: &str,
    time: Option<&prost_types::Timestamp>,
) -> Option<DateTime<Utc>> {
    let time = time?;
    let parsed = wire::from_timestamp(time);
    if parsed.is_none() {
        violations.add(field, "is not a valid time");
    }
    parsed
}

fn check_capacity(violations: &mut Violations, capacity: u32) {
    if !(1..=CAPACITY_MAX).contains(&capacity) {
        violations.add("capacity", format!("must be between 1 and {CAPACITY_MAX}, got {capacity}"));
    }
}

fn check_min_age(violations: &mut Violations, min_age: u32) {
    if min_age > MIN_AGE_MAX {
        violations.add("min_age", format!("must be at most {MIN_AGE_MAX}, got {min_age}"));
    }
}

fn check_end_after_start(violations: &mut Violations, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) {
    if let (Some(start), Some(end)) = (start, end)
        && end <= start
    {
        violations.add("end_at", "must be after start_at");
    }
}

fn trimmed(skills: Vec<String>) -> Vec<String> {
    skills.into_iter().map(|skill| skill.trim().to_string()).collect()
}

/// Unwraps a field the validation has already proved present.
fn checked<T>(value: Option<T>) -> Result<T, DomainError> {
    value.ok_or_else(|| DomainError::Internal("validation passed with a missing field".into()))
}

/// A validated project creation.
#[derive(Debug, Clone)]
pub struct CreateProject {
    pub title: String,
    pub description: String,
    pub activity_kind: ActivityKind,
    pub organising_team_id: String,
    pub site_id: Option<String>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub capacity: u32,
    pub min_age: u32,
    pub skills_wanted: Vec<String>,
    pub risky: bool,
    pub insured: bool,
    pub contact: String,
}

impl TryFrom<pb::CreateProjectRequest> for CreateProject {
    type Error = DomainError;

    fn try_from(request: pb::CreateProjectRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        violations.text("title", &request.title, TITLE_CHARS_MAX);
        violations.optional_text("description", &request.description, DESCRIPTION_CHARS_MAX);
        let kind = activity_kind(request.activity_kind);
        if kind.is_none() {
            violations.add("activity_kind", KIND_REQUIRED);
        }
        check_id(&mut violations, "organising_team_id", &request.organising_team_id, "330106-T000007");
        if !request.site_id.is_empty() {
            check_id(&mut violations, "site_id", &request.site_id, "330106-S000003");
        }
        let start_at = required_time(&mut violations, "start_at", request.start_at.as_ref());
        let end_at = required_time(&mut violations, "end_at", request.end_at.as_ref());
        check_end_after_start(&mut violations, start_at, end_at);
        check_capacity(&mut violations, request.capacity);
        check_min_age(&mut violations, request.min_age);
        check_skills(&mut violations, "skills_wanted", &request.skills_wanted);
        violations.optional_text("contact", &request.contact, CONTACT_CHARS_MAX);
        violations.into_result()?;
        Ok(Self {
            title: request.title.trim().to_string(),
            description: request.description,
            activity_kind: checked(kind)?,
            organising_team_id: request.organising_team_id,
            site_id: (!request.site_id.is_empty()).then_some(request.site_id),
            start_at: checked(start_at)?,
            end_at: checked(end_at)?,
            capacity: request.capacity,
            min_age: request.min_age,
            skills_wanted: trimmed(request.skills_wanted),
            risky: request.risky,
            insured: request.insured,
            contact: request.contact.trim().to_string(),
        })
    }
}

/// A validated edit: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateProject {
    pub project_id: String,
    pub expected_version: Option<u32>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub activity_kind: Option<ActivityKind>,
    /// `Some(None)` removes the site.
    pub site_id: Option<Option<String>>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub min_age: Option<u32>,
    pub skills_wanted: Option<Vec<String>>,
    pub risky: Option<bool>,
    pub insured: Option<bool>,
    pub contact: Option<String>,
}

impl TryFrom<pb::UpdateProjectRequest> for UpdateProject {
    type Error = DomainError;

    fn try_from(request: pb::UpdateProjectRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_project_id(&mut violations, &request.project_id);
        if let Some(title) = &request.title {
            violations.text("title", title, TITLE_CHARS_MAX);
        }
        if let Some(description) = &request.description {
            violations.optional_text("description", description, DESCRIPTION_CHARS_MAX);
        }
        let kind = request.activity_kind.map(activity_kind);
        if kind == Some(None) {
            violations.add("activity_kind", KIND_REQUIRED);
        }
        if let Some(site_id) = request.site_id.as_deref().filter(|site| !site.is_empty()) {
            check_id(&mut violations, "site_id", site_id, "330106-S000003");
        }
        let start_at = optional_time(&mut violations, "start_at", request.start_at.as_ref());
        let end_at = optional_time(&mut violations, "end_at", request.end_at.as_ref());
        check_end_after_start(&mut violations, start_at, end_at);
        if let Some(min_age) = request.min_age {
            check_min_age(&mut violations, min_age);
        }
        if let Some(skills) = &request.skills_wanted {
            check_skills(&mut violations, "skills_wanted.skills", &skills.skills);
        }
        if let Some(contact) = &request.contact {
            violations.optional_text("contact", contact, CONTACT_CHARS_MAX);
        }
        violations.into_result()?;
        Ok(Self {
            project_id: request.project_id,
            expected_version: (request.expected_version != 0).then_some(request.expected_version),
            title: request.title.map(|title| title.trim().to_string()),
            description: request.description,
            activity_kind: kind.flatten(),
            site_id: request.site_id.map(|site| (!site.is_empty()).then_some(site)),
            start_at,
            end_at,
            min_age: request.min_age,
            skills_wanted: request.skills_wanted.map(|list| trimmed(list.skills)),
            risky: request.risky,
            insured: request.insured,
            contact: request.contact.map(|contact| contact.trim().to_string()),
        })
    }
}

/// A validated project id of a request naming only a project (publish, close, get).
#[derive(Debug, Clone)]
pub struct ProjectRef {
    pub project_id: String,
}

impl ProjectRef {
    fn parse(project_id: String) -> Result<Self, DomainError> {
        let mut violations = Violations::new();
        check_project_id(&mut violations, &project_id);
        violations.into_result()?;
        Ok(Self { project_id })
    }
}

impl TryFrom<pb::PublishProjectRequest> for ProjectRef {
    type Error = DomainError;

    fn try_from(request: pb::PublishProjectRequest) -> Result<Self, Self::Error> {
        Self::parse(request.project_id)
    }
}

impl TryFrom<pb::CloseProjectRequest> for ProjectRef {
    type Error = DomainError;

    fn try_from(request: pb::CloseProjectRequest) -> Result<Self, Self::Error> {
        Self::parse(request.project_id)
    }
}

impl TryFrom<pb::GetProjectRequest> for ProjectRef {
    type Error = DomainError;

    fn try_from(request: pb::GetProjectRequest) -> Result<Self, Self::Error> {
        Self::parse(request.project_id)
    }
}

/// A validated cancellation of a project.
#[derive(Debug, Clone)]
pub struct CancelProject {
    pub project_id: String,
    pub reason: String,
}

impl TryFrom<pb::CancelProjectRequest> for CancelProject {
    type Error = DomainError;

    fn try_from(request: pb::CancelProjectRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_project_id(&mut violations, &request.project_id);
        violations.text("reason", &request.reason, REASON_CHARS_MAX);
        violations.into_result()?;
        Ok(Self { project_id: request.project_id, reason: request.reason.trim().to_string() })
    }
}

/// A validated change of the library marks: `None` leaves a mark as it is.
#[derive(Debug, Clone, Default)]
pub struct MarkProject {
    pub project_id: String,
    pub key_project: Option<bool>,
    pub brand_project: Option<bool>,
    pub demonstration: Option<bool>,
    /// Required when selecting a demonstration project; may be empty otherwise.
    pub reason: String,
}

impl TryFrom<pb::MarkProjectRequest> for MarkProject {
    type Error = DomainError;

    fn try_from(request: pb::MarkProjectRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_project_id(&mut violations, &request.project_id);
        if request.demonstration == Some(true) {
            // Guidance part 五(二): demonstration projects are selected, and the selection says why.
            if request.reason.trim().is_empty() {
                violations.add("reason", "is required when selecting a demonstration project");
            }
        }
        violations.optional_text("reason", &request.reason, REASON_CHARS_MAX);
        if request.key_project.is_none() && request.brand_project.is_none() && request.demonstration.is_none() {
            violations.add("key_project", "no mark given: set key_project, brand_project or demonstration");
        }
        violations.into_result()?;
        Ok(Self {
            project_id: request.project_id,
            key_project: request.key_project,
            brand_project: request.brand_project,
            demonstration: request.demonstration,
            reason: request.reason.trim().to_string(),
        })
    }
}

/// A validated capacity change.
#[derive(Debug, Clone)]
pub struct SetProjectCapacity {
    pub project_id: String,
    pub capacity: u32,
}

impl TryFrom<pb::SetProjectCapacityRequest> for SetProjectCapacity {
    type Error = DomainError;

    fn try_from(request: pb::SetProjectCapacityRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_project_id(&mut violations, &request.project_id);
        check_capacity(&mut violations, request.capacity);
        violations.into_result()?;
        Ok(Self { project_id: request.project_id, capacity: request.capacity })
    }
}

/// Library search filters; every one given must match. Paging comes separately.
#[derive(Debug, Clone, Default)]
pub struct SearchProjects {
    pub activity_kind: Option<ActivityKind>,
    pub organising_team_id: Option<String>,
    pub site_id: Option<String>,
    pub time_from: Option<DateTime<Utc>>,
    pub time_to: Option<DateTime<Utc>>,
    pub key_project: bool,
    pub brand_project: bool,
    pub demonstration: bool,
    /// Lowercased; matched against the lowercased title and description.
    pub text: Option<String>,
    /// `None`: the library (published and closed).
    pub status: Option<ProjectStatus>,
}

impl TryFrom<&pb::SearchProjectsRequest> for SearchProjects {
    type Error = DomainError;

    fn try_from(request: &pb::SearchProjectsRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let kind = match pb::ActivityKind::try_from(request.activity_kind) {
            Ok(pb::ActivityKind::Unspecified) => None,
            Ok(_) => activity_kind(request.activity_kind),
            Err(_) => {
                violations.add("activity_kind", "is not a known activity kind");
                None
            }
        };
        if !request.organising_team_id.is_empty() {
            check_id(&mut violations, "organising_team_id", &request.organising_team_id, "330106-T000007");
        }
        if !request.site_id.is_empty() {
            check_id(&mut violations, "site_id", &request.site_id, "330106-S000003");
        }
        let time_from = optional_time(&mut violations, "time_from", request.time_from.as_ref());
        let time_to = optional_time(&mut violations, "time_to", request.time_to.as_ref());
        if let (Some(from), Some(to)) = (time_from, time_to)
            && to <= from
        {
            violations.add("time_to", "must be after time_from");
        }
        violations.optional_text("text", &request.text, SEARCH_TEXT_CHARS_MAX);
        let status = match pb::ProjectStatus::try_from(request.status) {
            Ok(pb::ProjectStatus::Unspecified) => None,
            Ok(_) => project_status(request.status),
            Err(_) => {
                violations.add("status", "is not a known project status");
                None
            }
        };
        violations.into_result()?;
        let non_empty = |text: &str| (!text.trim().is_empty()).then(|| text.trim().to_string());
        Ok(Self {
            activity_kind: kind,
            organising_team_id: non_empty(&request.organising_team_id),
            site_id: non_empty(&request.site_id),
            time_from,
            time_to,
            key_project: request.key_project,
            brand_project: request.brand_project,
            demonstration: request.demonstration,
            text: non_empty(&request.text).map(|text| text.to_lowercase()),
            status,
        })
    }
}

/// PermissionDenied unless the caller is staff or the manager of the organising team.
fn check_can_manage(caller: &Caller, team_id: &str, action: &str) -> Result<(), DomainError> {
    if caller.has(Role::Staff) || caller.manages_team(team_id) {
        return Ok(());
    }
    Err(DomainError::denied(format!(
        "{action} needs the role staff, or to be the manager of the organising team {team_id}"
    )))
}

/// True if the caller may see drafts of the organising team `team_id`.
fn sees_drafts_of(caller: &Caller, team_id: &str) -> bool {
    caller.has(Role::Staff) || caller.manages_team(team_id)
}

/// FailedPrecondition if the project is closed or cancelled.
fn check_not_final(project: &ProjectRecord) -> Result<(), DomainError> {
    if project.status.is_final() {
        return Err(DomainError::FailedPrecondition(format!(
            "project {} is {}: closed and cancelled projects are final",
            project.project_id,
            project.status.label()
        )));
    }
    Ok(())
}

fn check_site_exists(txn: &Txn<'_>, site_id: &str) -> Result<(), DomainError> {
    if txn.get(site::site_key(site_id).as_bytes())?.is_none() {
        return Err(DomainError::not_found("site", site_id));
    }
    Ok(())
}

fn check_insured_if_risky(project: &ProjectRecord) -> Result<(), DomainError> {
    if project.risky && !project.insured {
        return Err(DomainError::FailedPrecondition(format!("project {} {UNINSURED_RISK}", project.project_id)));
    }
    Ok(())
}

/// Loads a project and checks the caller may manage it; the audit entry names the project.
fn load_managed(
    txn: &mut Txn<'_>,
    caller: &Caller,
    project_id: &str,
    action: &str,
) -> Result<ProjectRecord, DomainError> {
    txn.target = project_id.to_string();
    let project = load(txn, project_id)?;
    check_can_manage(caller, &project.organising_team_id, action)?;
    Ok(project)
}

/// Stores a change of the project's own fields as its next version.
fn save_version(txn: &mut Txn<'_>, project: &mut ProjectRecord) {
    project.version += 1;
    project.updated_at = txn.now();
    save(txn, project);
}

/// Creates a draft project. Staff, or the manager of the organising team.
pub fn create(
    txn: &mut Txn<'_>,
    node_code: &str,
    caller: &Caller,
    command: CreateProject,
) -> Result<ProjectRecord, DomainError> {
    check_can_manage(caller, &command.organising_team_id, "creating a project")?;
    team::load(txn, &command.organising_team_id)?;
    if let Some(site_id) = &command.site_id {
        check_site_exists(txn, site_id)?;
    }
    let sequence = txn.next_seq("project")?;
    let project_id = format!("{node_code}-P{sequence:06}");
    txn.target = project_id.clone();
    let now = txn.now();
    let record = ProjectRecord {
        project_id,
        title: command.title,
        description: command.description,
        activity_kind: command.activity_kind,
        organising_team_id: command.organising_team_id,
        site_id: command.site_id,
        start_at: command.start_at,
        end_at: command.end_at,
        capacity: command.capacity,
        accepted_count: 0,
        waitlisted_count: 0,
        min_age: command.min_age,
        skills_wanted: command.skills_wanted,
        risky: command.risky,
        insured: command.insured,
        key_project: false,
        brand_project: false,
        demonstration: false,
        demonstration_reason: String::new(),
        contact: command.contact,
        status: ProjectStatus::Draft,
        version: 1,
        created_at: now,
        updated_at: now,
        published_at: None,
    };
    save(txn, &record);
    Ok(record)
}

/// Edits a draft or published project. Staff, or the manager of the organising team.
pub fn update(txn: &mut Txn<'_>, caller: &Caller, command: UpdateProject) -> Result<ProjectRecord, DomainError> {
    let mut project = load_managed(txn, caller, &command.project_id, "editing a project")?;
    check_not_final(&project)?;
    let before = project.clone();
    if let Some(expected) = command.expected_version
        && expected != project.version
    {
        return Err(DomainError::FailedPrecondition(format!(
            "project {} is at version {}, not the expected version {expected}: read it again",
            project.project_id, project.version
        )));
    }
    if let Some(title) = command.title {
        project.title = title;
    }
    if let Some(description) = command.description {
        project.description = description;
    }
    if let Some(kind) = command.activity_kind {
        project.activity_kind = kind;
    }
    if let Some(site_id) = command.site_id {
        if let Some(site_id) = &site_id {
            check_site_exists(txn, site_id)?;
        }
        project.site_id = site_id;
    }
    if let Some(start_at) = command.start_at {
        project.start_at = start_at;
    }
    if let Some(end_at) = command.end_at {
        project.end_at = end_at;
    }
    if project.end_at <= project.start_at {
        return Err(DomainError::invalid(
            if command.end_at.is_some() { "end_at" } else { "start_at" },
            format!("the project would end ({}) before it starts ({})", project.end_at, project.start_at),
        ));
    }
    if let Some(min_age) = command.min_age {
        project.min_age = min_age;
    }
    if let Some(skills) = command.skills_wanted {
        project.skills_wanted = skills;
    }
    if let Some(risky) = command.risky {
        project.risky = risky;
    }
    if let Some(insured) = command.insured {
        project.insured = insured;
    }
    if let Some(contact) = command.contact {
        project.contact = contact;
    }
    if project.status == ProjectStatus::Published {
        // A published project stays insured if it is risky (Regulations art. 17).
        check_insured_if_risky(&project)?;
    }
    save_version(txn, &mut project);
    record_moved_figures(txn, &before, &project)?;
    Ok(project)
}

/// The federation's figures of a project follow its kind and start: when an edit changes them, the publication
/// moves to the new kind's cell (stats: published month × kind) and the seats held move to the cell of the new
/// start month and kind (stats: sign-ups holding a seat, by the project's start). A move within one cell records
/// nothing.
fn record_moved_figures(txn: &mut Txn<'_>, before: &ProjectRecord, after: &ProjectRecord) -> Result<(), DomainError> {
    let kind_of = |project: &ProjectRecord| kind_number(project.activity_kind);
    if let Some(published_at) = after.published_at {
        let mut change = Change::new(pb::ChangeKind::ProjectPublished, after.project_id.clone());
        change.deltas.add(cell_at(published_at, kind_of(before)), |f| f.projects_published -= 1);
        change.deltas.add(cell_at(published_at, kind_of(after)), |f| f.projects_published += 1);
        if !change.deltas.is_empty() {
            outbox::record(txn, change)?;
        }
    }
    let mut change = Change::new(pb::ChangeKind::SignUpsCounted, after.project_id.clone());
    let (held_before, held_after) = (i64::from(before.accepted_count), i64::from(after.accepted_count));
    change.deltas.add(cell_at(before.start_at, kind_of(before)), |f| f.sign_ups_accepted -= held_before);
    change.deltas.add(cell_at(after.start_at, kind_of(after)), |f| f.sign_ups_accepted += held_after);
    if !change.deltas.is_empty() {
        outbox::record(txn, change)?;
    }
    Ok(())
}

/// Tells the federation that a published project ended (closed or cancelled). Its figures stay as they are: a
/// publication counts once, and the seats held stay counted (stats do not look at the project's status).
fn record_closed(txn: &mut Txn<'_>, project: &ProjectRecord) -> Result<(), DomainError> {
    if project.published_at.is_none() {
        // A draft was never told to the federation.
        return Ok(());
    }
    outbox::record(txn, Change::new(pb::ChangeKind::ProjectClosed, project.project_id.clone()))
}

/// Opens a draft for sign-ups. Staff, or the manager of the organising team.
pub fn publish(txn: &mut Txn<'_>, caller: &Caller, command: ProjectRef) -> Result<ProjectRecord, DomainError> {
    let mut project = load_managed(txn, caller, &command.project_id, "publishing a project")?;
    if project.status != ProjectStatus::Draft {
        return Err(DomainError::FailedPrecondition(format!(
            "project {} is {}: only drafts are published",
            project.project_id,
            project.status.label()
        )));
    }
    check_insured_if_risky(&project)?;
    let published_at = txn.now();
    project.status = ProjectStatus::Published;
    project.published_at = Some(published_at);
    save_version(txn, &mut project);
    let mut change = Change::new(pb::ChangeKind::ProjectPublished, project.project_id.clone());
    change.deltas.add(cell_at(published_at, kind_number(project.activity_kind)), |f| f.projects_published += 1);
    outbox::record(txn, change)?;
    Ok(project)
}

/// Ends a published project; final. Staff, or the manager of the organising team.
pub fn close(txn: &mut Txn<'_>, caller: &Caller, command: ProjectRef) -> Result<ProjectRecord, DomainError> {
    let mut project = load_managed(txn, caller, &command.project_id, "closing a project")?;
    check_not_final(&project)?;
    if project.status == ProjectStatus::Draft {
        return Err(DomainError::FailedPrecondition(format!(
            "project {} is a draft: only published projects are closed; cancel a draft instead",
            project.project_id
        )));
    }
    project.status = ProjectStatus::Closed;
    save_version(txn, &mut project);
    record_closed(txn, &project)?;
    Ok(project)
}

/// Calls off a draft or published project; final. Staff, or the manager of the organising team. Its sign-ups
/// stay as they are (the record is complete); the project's status tells that they are moot.
pub fn cancel(txn: &mut Txn<'_>, caller: &Caller, command: CancelProject) -> Result<ProjectRecord, DomainError> {
    let mut project = load_managed(txn, caller, &command.project_id, "cancelling a project")?;
    check_not_final(&project)?;
    txn.detail = format!("cancelled: {}", command.reason);
    project.status = ProjectStatus::Cancelled;
    save_version(txn, &mut project);
    record_closed(txn, &project)?;
    Ok(project)
}

/// Sets the library marks. Staff only; the audit entry carries the demonstration reason (guidance part 五(二)).
pub fn mark(txn: &mut Txn<'_>, caller: &Caller, command: MarkProject) -> Result<ProjectRecord, DomainError> {
    caller.require_any(&[Role::Staff], "marking a project")?;
    txn.target = command.project_id.clone();
    let mut project = load(txn, &command.project_id)?;
    if project.status == ProjectStatus::Cancelled {
        return Err(DomainError::FailedPrecondition(format!(
            "project {} is cancelled: it cannot be marked",
            project.project_id
        )));
    }
    let mut detail = Vec::new();
    if let Some(key_project) = command.key_project {
        project.key_project = key_project;
        detail.push(format!("key project: {key_project}"));
    }
    if let Some(brand_project) = command.brand_project {
        project.brand_project = brand_project;
        detail.push(format!("brand project: {brand_project}"));
    }
    match command.demonstration {
        Some(true) => {
            if !matches!(project.status, ProjectStatus::Published | ProjectStatus::Closed) {
                return Err(DomainError::FailedPrecondition(format!(
                    "project {} is {}: demonstration projects are selected from published and past projects",
                    project.project_id,
                    project.status.label()
                )));
            }
            project.demonstration = true;
            project.demonstration_reason = command.reason.clone();
            detail.push(format!("demonstration selected: {}", command.reason));
        }
        Some(false) => {
            project.demonstration = false;
            project.demonstration_reason.clear();
            detail.push(if command.reason.is_empty() {
                "demonstration withdrawn".to_string()
            } else {
                format!("demonstration withdrawn: {}", command.reason)
            });
        }
        None => {}
    }
    txn.detail = detail.join("; ");
    save_version(txn, &mut project);
    Ok(project)
}

/// The answer to a capacity change.
#[derive(Debug, Clone)]
pub struct CapacityChange {
    pub project: ProjectRecord,
    /// Volunteers moved from the waitlist to a seat, in waitlist order.
    pub promoted: Vec<String>,
}

/// Sets the capacity of a draft or published project. Raising it promotes from the waitlist at once, in order;
/// lowering it never goes below the seats accepted (CAP-1). Staff, or the manager of the organising team.
pub fn set_capacity(
    txn: &mut Txn<'_>,
    caller: &Caller,
    command: SetProjectCapacity,
) -> Result<CapacityChange, DomainError> {
    let mut project = load_managed(txn, caller, &command.project_id, "changing the capacity of a project")?;
    check_not_final(&project)?;
    if command.capacity < project.accepted_count {
        return Err(DomainError::FailedPrecondition(format!(
            "project {} has {} accepted sign-ups: its capacity cannot go below that (asked for {})",
            project.project_id, project.accepted_count, command.capacity
        )));
    }
    txn.detail = format!("capacity {} → {}", project.capacity, command.capacity);
    project.capacity = command.capacity;
    let free_seats = project.capacity - project.accepted_count;
    let promoted = signup::promote(txn, &mut project, free_seats)?;
    save_version(txn, &mut project);
    signup::record_accepted_change(txn, &project, promoted.len() as i64)?;
    Ok(CapacityChange { project, promoted })
}

/// Reads one project. Staff, team managers and volunteers; drafts only for staff and the organising team's
/// manager (others are told there is no such project).
pub fn get(store: &dyn Store, caller: &Caller, project_id: &str) -> Result<ProjectRecord, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "reading a project")?;
    let record: ProjectRecord = store::get_json(store, project_key(project_id).as_bytes())?
        .ok_or_else(|| DomainError::not_found("project", project_id))?;
    if record.status == ProjectStatus::Draft && !sees_drafts_of(caller, &record.organising_team_id) {
        return Err(DomainError::not_found("project", project_id));
    }
    Ok(record)
}

impl SearchProjects {
    fn matches(&self, caller: &Caller, record: &ProjectRecord) -> bool {
        let status_matches = match self.status {
            None => matches!(record.status, ProjectStatus::Published | ProjectStatus::Closed),
            Some(status) => record.status == status,
        };
        let visible = record.status != ProjectStatus::Draft || sees_drafts_of(caller, &record.organising_team_id);
        let text_matches = self.text.as_ref().is_none_or(|text| {
            record.title.to_lowercase().contains(text.as_str())
                || record.description.to_lowercase().contains(text.as_str())
        });
        status_matches
            && visible
            && self.activity_kind.is_none_or(|kind| kind == record.activity_kind)
            && self.organising_team_id.as_ref().is_none_or(|team| *team == record.organising_team_id)
            && self.site_id.as_ref().is_none_or(|site| record.site_id.as_ref() == Some(site))
            && self.time_from.is_none_or(|from| record.end_at > from)
            && self.time_to.is_none_or(|to| record.start_at < to)
            && (!self.key_project || record.key_project)
            && (!self.brand_project || record.brand_project)
            && (!self.demonstration || record.demonstration)
            && text_matches
    }
}

/// Searches the project library, in project id order (the order of creation).
pub fn search(
    store: &dyn Store,
    caller: &Caller,
    query: &SearchProjects,
    page: &PageRequest,
) -> Result<Page<ProjectRecord>, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "searching projects")?;
    crate::page::collect(store, "proj/", page, |key, value| {
        let record: ProjectRecord = store::decode(key, value)?;
        Ok(query.matches(caller, &record).then_some(record))
    })
}

impl ProjectRecord {
    /// The wire form.
    pub fn to_pb(&self) -> pb::Project {
        pb::Project {
            project_id: self.project_id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            activity_kind: pb::ActivityKind::from(self.activity_kind) as i32,
            organising_team_id: self.organising_team_id.clone(),
            site_id: self.site_id.clone().unwrap_or_default(),
            start_at: Some(wire::timestamp(self.start_at)),
            end_at: Some(wire::timestamp(self.end_at)),
            capacity: self.capacity,
            accepted_count: self.accepted_count,
            waitlisted_count: self.waitlisted_count,
            min_age: self.min_age,
            skills_wanted: self.skills_wanted.clone(),
            risky: self.risky,
            insured: self.insured,
            key_project: self.key_project,
            brand_project: self.brand_project,
            demonstration: self.demonstration,
            demonstration_reason: self.demonstration_reason.clone(),
            contact: self.contact.clone(),
            status: pb::ProjectStatus::from(self.status) as i32,
            version: self.version,
            created_at: Some(wire::timestamp(self.created_at)),
            updated_at: Some(wire::timestamp(self.updated_at)),
            published_at: wire::optional_timestamp(self.published_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::{check, violated_fields as fields};

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn create_request() -> pb::CreateProjectRequest {
        pb::CreateProjectRequest {
            title: "西湖净滩".into(),
            activity_kind: pb::ActivityKind::GreenLowCarbon as i32,
            organising_team_id: "330106-T000001".into(),
            start_at: at(1_800_000_000),
            end_at: at(1_800_014_400),
            capacity: 50,
            ..Default::default()
        }
    }

    #[test]
    fn project_creations_are_checked_field_by_field() {
        let cases: Vec<(pb::CreateProjectRequest, &[&str])> = vec![
            (create_request(), &[]),
            (pb::CreateProjectRequest { title: " ".into(), ..create_request() }, &["title"]),
            (pb::CreateProjectRequest { title: "题".repeat(100), ..create_request() }, &[]),
            (pb::CreateProjectRequest { title: "题".repeat(101), ..create_request() }, &["title"]),
            (pb::CreateProjectRequest { description: "述".repeat(2000), ..create_request() }, &[]),
            (pb::CreateProjectRequest { description: "述".repeat(2001), ..create_request() }, &["description"]),
            (pb::CreateProjectRequest { activity_kind: 0, ..create_request() }, &["activity_kind"]),
            (pb::CreateProjectRequest { activity_kind: 6, ..create_request() }, &["activity_kind"]),
            (
                pb::CreateProjectRequest { organising_team_id: String::new(), ..create_request() },
                &["organising_team_id"],
            ),
            (
                pb::CreateProjectRequest { organising_team_id: "team/x".into(), ..create_request() },
                &["organising_team_id"],
            ),
            (pb::CreateProjectRequest { site_id: "330106-S000001".into(), ..create_request() }, &[]),
            (pb::CreateProjectRequest { site_id: "a\0b".into(), ..create_request() }, &["site_id"]),
            (pb::CreateProjectRequest { start_at: None, ..create_request() }, &["start_at"]),
            (pb::CreateProjectRequest { end_at: at(1_800_000_000), ..create_request() }, &["end_at"]),
            (pb::CreateProjectRequest { end_at: at(1_799_999_999), ..create_request() }, &["end_at"]),
            (
                pb::CreateProjectRequest {
                    end_at: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: -1 }),
                    ..create_request()
                },
                &["end_at"],
            ),
            (pb::CreateProjectRequest { capacity: 0, ..create_request() }, &["capacity"]),
            (pb::CreateProjectRequest { capacity: CAPACITY_MAX, ..create_request() }, &[]),
            (pb::CreateProjectRequest { capacity: CAPACITY_MAX + 1, ..create_request() }, &["capacity"]),
            (pb::CreateProjectRequest { min_age: 100, ..create_request() }, &[]),
            (pb::CreateProjectRequest { min_age: 101, ..create_request() }, &["min_age"]),
            (
                pb::CreateProjectRequest { skills_wanted: vec!["急救".into(), " 急救".into()], ..create_request() },
                &["skills_wanted[1]"],
            ),
            (pb::CreateProjectRequest { contact: "电".repeat(101), ..create_request() }, &["contact"]),
            // A risky, uninsured draft is fine: the insurance is checked when it is published.
            (pb::CreateProjectRequest { risky: true, ..create_request() }, &[]),
            // Every broken rule at once.
            (
                pb::CreateProjectRequest {
                    title: String::new(),
                    activity_kind: 0,
                    start_at: None,
                    end_at: None,
                    capacity: 0,
                    ..create_request()
                },
                &["title", "activity_kind", "start_at", "end_at", "capacity"],
            ),
        ];
        for (request, expected) in cases {
            check::<CreateProject, _>(request, expected);
        }
    }

    fn update_request() -> pb::UpdateProjectRequest {
        pb::UpdateProjectRequest { project_id: "330106-P000001".into(), ..Default::default() }
    }

    #[test]
    fn project_updates_are_checked_field_by_field() {
        let cases: Vec<(pb::UpdateProjectRequest, &[&str])> = vec![
            (update_request(), &[]),
            (pb::UpdateProjectRequest { project_id: String::new(), ..update_request() }, &["project_id"]),
            (pb::UpdateProjectRequest { title: Some(String::new()), ..update_request() }, &["title"]),
            (pb::UpdateProjectRequest { activity_kind: Some(0), ..update_request() }, &["activity_kind"]),
            (pb::UpdateProjectRequest { site_id: Some(String::new()), ..update_request() }, &[]),
            (pb::UpdateProjectRequest { site_id: Some("x/y".into()), ..update_request() }, &["site_id"]),
            (pb::UpdateProjectRequest { start_at: at(10), end_at: at(5), ..update_request() }, &["end_at"]),
            (pb::UpdateProjectRequest { start_at: at(10), ..update_request() }, &[]),
            (pb::UpdateProjectRequest { min_age: Some(101), ..update_request() }, &["min_age"]),
            (
                pb::UpdateProjectRequest {
                    skills_wanted: Some(pb::SkillList { skills: vec![String::new()] }),
                    ..update_request()
                },
                &["skills_wanted.skills[0]"],
            ),
        ];
        for (request, expected) in cases {
            check::<UpdateProject, _>(request, expected);
        }
    }

    #[test]
    fn marks_capacities_cancellations_and_searches_are_checked() {
        let mark = |demonstration: Option<bool>, reason: &str| pb::MarkProjectRequest {
            project_id: "330106-P000001".into(),
            demonstration,
            reason: reason.into(),
            ..Default::default()
        };
        check::<MarkProject, _>(mark(Some(true), "成效显著"), &[]);
        check::<MarkProject, _>(mark(Some(true), " "), &["reason"]);
        check::<MarkProject, _>(mark(Some(false), ""), &[]);
        check::<MarkProject, _>(mark(None, ""), &["key_project"]);
        check::<MarkProject, _>(mark(Some(true), &"因".repeat(501)), &["reason"]);

        let capacity = |capacity: u32| pb::SetProjectCapacityRequest { project_id: "330106-P000001".into(), capacity };
        check::<SetProjectCapacity, _>(capacity(1), &[]);
        check::<SetProjectCapacity, _>(capacity(0), &["capacity"]);
        check::<SetProjectCapacity, _>(capacity(CAPACITY_MAX + 1), &["capacity"]);

        check::<CancelProject, _>(
            pb::CancelProjectRequest { project_id: "330106-P000001".into(), reason: "台风".into() },
            &[],
        );
        check::<CancelProject, _>(pb::CancelProjectRequest::default(), &["project_id", "reason"]);

        let search = |request: pb::SearchProjectsRequest| fields(SearchProjects::try_from(&request));
        assert!(search(pb::SearchProjectsRequest::default()).is_empty());
        assert_eq!(
            search(pb::SearchProjectsRequest {
                activity_kind: 9,
                organising_team_id: "a b".into(),
                time_from: at(10),
                time_to: at(10),
                status: 9,
                ..Default::default()
            }),
            ["activity_kind", "organising_team_id", "time_to", "status"]
        );
    }

    #[test]
    fn search_text_is_case_insensitive_and_time_ranges_intersect() -> Result<(), DomainError> {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let record = ProjectRecord {
            project_id: "330106-P000001".into(),
            title: "River Watch 河道监督".into(),
            description: String::new(),
            activity_kind: ActivityKind::SocialSupervision,
            organising_team_id: "330106-T000001".into(),
            site_id: None,
            start_at: start,
            end_at: start + chrono::Duration::hours(2),
            capacity: 1,
            accepted_count: 0,
            waitlisted_count: 0,
            min_age: 0,
            skills_wanted: Vec::new(),
            risky: false,
            insured: false,
            key_project: false,
            brand_project: false,
            demonstration: false,
            demonstration_reason: String::new(),
            contact: String::new(),
            status: ProjectStatus::Published,
            version: 1,
            created_at: start,
            updated_at: start,
            published_at: Some(start),
        };
        let volunteer = Caller {
            account_id: "acct-test".into(),
            name: "测试".into(),
            department: crate::auth::Department::EcologyBureau,
            roles: vec![Role::Volunteer],
            team_id: None,
            volunteer_number: Some("330106-00000001".into()),
            request_id: "test".into(),
        };
        let query = |request: pb::SearchProjectsRequest| SearchProjects::try_from(&request);
        let matches = |query: SearchProjects| query.matches(&volunteer, &record);
        assert!(matches(query(pb::SearchProjectsRequest { text: "river".into(), ..Default::default() })?));
        assert!(matches(query(pb::SearchProjectsRequest { text: "河道".into(), ..Default::default() })?));
        assert!(!matches(query(pb::SearchProjectsRequest { text: "净滩".into(), ..Default::default() })?));
        // [start, end) against [from, to): touching ends do not intersect.
        let window = |from: i64, to: i64| pb::SearchProjectsRequest {
            time_from: at(from),
            time_to: at(to),
            ..Default::default()
        };
        assert!(matches(query(window(1_799_999_000, 1_800_000_001))?));
        assert!(!matches(query(window(1_799_999_000, 1_800_000_000))?));
        assert!(!matches(query(window(1_800_007_200, 1_800_009_000))?));
        assert!(matches(query(window(1_800_007_199, 1_800_009_000))?));
        Ok(())
    }
}
