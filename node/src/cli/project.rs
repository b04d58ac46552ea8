//! `ecovol project …`: projects and the project library (`ProjectService`).

use chrono::{DateTime, FixedOffset};
use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node, PageArgs, pages};
use super::console::{Console, Record, name, optional, timestamp};
use super::failure::Failure;

/// The five kinds of activity of the guidance (part 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ActivityKind {
    /// Theory promotion.
    TheoryPromotion,
    /// Publicity, education and science popularisation.
    PublicityEducation,
    /// Social supervision: reporting damage to the environment.
    SocialSupervision,
    /// Green low-carbon practice.
    GreenLowCarbon,
    /// International exchange.
    InternationalExchange,
}

impl ActivityKind {
    /// The value as sent on the wire.
    pub fn wire(self) -> i32 {
        let kind = match self {
            ActivityKind::TheoryPromotion => pb::ActivityKind::TheoryPromotion,
            ActivityKind::PublicityEducation => pb::ActivityKind::PublicityEducation,
            ActivityKind::SocialSupervision => pb::ActivityKind::SocialSupervision,
            ActivityKind::GreenLowCarbon => pb::ActivityKind::GreenLowCarbon,
            ActivityKind::InternationalExchange => pb::ActivityKind::InternationalExchange,
        };
        kind as i32
    }
}

/// A project's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProjectStatus {
    Draft,
    Published,
    Closed,
    Cancelled,
}

impl ProjectStatus {
    /// The value as sent on the wire.
    pub fn wire(self) -> i32 {
        let status = match self {
            ProjectStatus::Draft => pb::ProjectStatus::Draft,
            ProjectStatus::Published => pb::ProjectStatus::Published,
            ProjectStatus::Closed => pb::ProjectStatus::Closed,
            ProjectStatus::Cancelled => pb::ProjectStatus::Cancelled,
        };
        status as i32
    }
}

/// The printed name of a wire enum's proto name without `prefix` (`ACTIVITY_KIND_GREEN_LOW_CARBON` →
/// `green-low-carbon`), the same spelling the command line accepts; `None` for the unspecified value.
pub fn printed(value: i32, proto_name: Option<&str>, prefix: &str) -> Option<String> {
    match proto_name {
        None => Some(format!("unknown-{value}")),
        Some(name) => {
            let rest = name.strip_prefix(prefix).unwrap_or(name);
            (rest != "UNSPECIFIED").then(|| rest.to_ascii_lowercase().replace('_', "-"))
        }
    }
}

fn kind_name(value: i32) -> Option<String> {
    printed(value, pb::ActivityKind::try_from(value).ok().map(|kind| kind.as_str_name()), "ACTIVITY_KIND_")
}

fn status_name(value: i32) -> Option<String> {
    printed(value, pb::ProjectStatus::try_from(value).ok().map(|status| status.as_str_name()), "PROJECT_STATUS_")
}

/// Parses an RFC 3339 time (`2026-12-05T09:00:00+08:00`).
fn time(text: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(text)
        .map_err(|error| format!("not an RFC 3339 time like 2026-12-05T09:00:00+08:00: {error}"))
}

fn wire_time(time: DateTime<FixedOffset>) -> prost_types::Timestamp {
    crate::wire::timestamp(time.to_utc())
}

/// Project commands.
#[derive(Debug, clap::Subcommand)]
pub enum ProjectCommand {
    /// Create a draft project.
    Create(CreateArgs),
    /// Show one project.
    Get(ProjectIdArg),
    /// Search the project library (published and past projects unless --status is given).
    Search(SearchArgs),
    /// Change a draft or published project.
    Update(UpdateArgs),
    /// Open a draft for sign-ups.
    Publish(ProjectIdArg),
    /// End a published project (final).
    Close(ProjectIdArg),
    /// Call off a project (final).
    Cancel(CancelArgs),
    /// Set the key / brand / demonstration marks (staff only).
    Mark(MarkArgs),
    /// Change the number of seats; raising it promotes from the waitlist at once.
    Capacity(CapacityArgs),
}

/// A project id.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectIdArg {
    /// The project id, e.g. 330106-P000007.
    pub project_id: String,
}

/// Arguments of `project create`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// Title (at most 100 characters).
    #[arg(long)]
    pub title: String,

    /// Description (at most 2000 characters).
    #[arg(long, default_value = "")]
    pub description: String,

    /// Kind of activity (guidance part 3).
    #[arg(long, value_enum)]
    pub kind: ActivityKind,

    /// The organising team.
    #[arg(long, value_name = "TEAM_ID")]
    pub team_id: String,

    /// The service site.
    #[arg(long, value_name = "SITE_ID")]
    pub site_id: Option<String>,

    /// Start time, RFC 3339 (e.g. 2026-12-05T09:00:00+08:00).
    #[arg(long, value_parser = time)]
    pub start: DateTime<FixedOffset>,

    /// End time, RFC 3339, after the start.
    #[arg(long, value_parser = time)]
    pub end: DateTime<FixedOffset>,

    /// Seats (1 to 100000).
    #[arg(long)]
    pub capacity: u32,

    /// Minimum age in whole years on the day the project starts.
    #[arg(long, default_value_t = 0)]
    pub min_age: u32,

    /// A skill wanted (repeat for more).
    #[arg(long = "skill", value_name = "SKILL")]
    pub skills: Vec<String>,

    /// The project carries physical risk (minors may not join; needs --insured to be published).
    #[arg(long)]
    pub risky: bool,

    /// Accident insurance is in place (Regulations on Volunteer Service art. 17).
    #[arg(long)]
    pub insured: bool,

    /// Who to contact about the project.
    #[arg(long, default_value = "")]
    pub contact: String,
}

/// Arguments of `project search`.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// Only this kind of activity.
    #[arg(long, value_enum)]
    pub kind: Option<ActivityKind>,

    /// Only projects of this organising team.
    #[arg(long, value_name = "TEAM_ID")]
    pub team_id: Option<String>,

    /// Only projects at this site.
    #[arg(long, value_name = "SITE_ID")]
    pub site_id: Option<String>,

    /// Only projects still running at or after this time (RFC 3339).
    #[arg(long, value_parser = time)]
    pub from: Option<DateTime<FixedOffset>>,

    /// Only projects starting before this time (RFC 3339).
    #[arg(long, value_parser = time)]
    pub to: Option<DateTime<FixedOffset>>,

    /// Only key projects.
    #[arg(long)]
    pub key_project: bool,

    /// Only brand projects.
    #[arg(long)]
    pub brand_project: bool,

    /// Only demonstration projects.
    #[arg(long)]
    pub demonstration: bool,

    /// Words in the title or description.
    #[arg(long)]
    pub text: Option<String>,

    /// Only projects in this state.
    #[arg(long, value_enum)]
    pub status: Option<ProjectStatus>,

    #[command(flatten)]
    pub page: PageArgs,
}

/// The changes of `project update`; at least one is required.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = true)]
pub struct ProjectChanges {
    /// New title.
    #[arg(long)]
    pub title: Option<String>,

    /// New description.
    #[arg(long)]
    pub description: Option<String>,

    /// New kind of activity.
    #[arg(long, value_enum)]
    pub kind: Option<ActivityKind>,

    /// New service site.
    #[arg(long, value_name = "SITE_ID", conflicts_with = "no_site")]
    pub site_id: Option<String>,

    /// Remove the service site.
    #[arg(long)]
    pub no_site: bool,

    /// New start time (RFC 3339).
    #[arg(long, value_parser = time)]
    pub start: Option<DateTime<FixedOffset>>,

    /// New end time (RFC 3339).
    #[arg(long, value_parser = time)]
    pub end: Option<DateTime<FixedOffset>>,

    /// New minimum age.
    #[arg(long)]
    pub min_age: Option<u32>,

    /// Replace the skills wanted (repeat for more).
    #[arg(long = "skill", value_name = "SKILL")]
    pub skills: Vec<String>,

    /// Whether the project carries physical risk.
    #[arg(long, value_name = "true|false")]
    pub risky: Option<bool>,

    /// Whether accident insurance is in place.
    #[arg(long, value_name = "true|false")]
    pub insured: Option<bool>,

    /// New contact.
    #[arg(long)]
    pub contact: Option<String>,
}

/// Arguments of `project update`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// The project id, e.g. 330106-P000007.
    pub project_id: String,

    /// Refuse the change unless the project is at this version.
    #[arg(long)]
    pub expected_version: Option<u32>,

    #[command(flatten)]
    pub changes: ProjectChanges,
}

/// Arguments of `project cancel`.
#[derive(Debug, Clone, clap::Args)]
pub struct CancelArgs {
    /// The project id, e.g. 330106-P000007.
    pub project_id: String,

    /// Why the project is called off (written to the audit trail).
    #[arg(long)]
    pub reason: String,
}

/// Arguments of `project mark`.
#[derive(Debug, Clone, clap::Args)]
pub struct MarkArgs {
    /// The project id, e.g. 330106-P000007.
    pub project_id: String,

    /// Whether it is a key project.
    #[arg(long, value_name = "true|false")]
    pub key_project: Option<bool>,

    /// Whether it is a brand project.
    #[arg(long, value_name = "true|false")]
    pub brand_project: Option<bool>,

    /// Select (true) or withdraw (false) it as a demonstration project.
    #[arg(long, value_name = "true|false")]
    pub demonstration: Option<bool>,

    /// Why (required to select a demonstration project; written to the audit trail).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// Arguments of `project capacity`.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// The project id, e.g. 330106-P000007.
    pub project_id: String,

    /// The new number of seats (never below the seats accepted).
    pub capacity: u32,
}

/// A project as printed.
pub fn record(project: &pb::Project) -> Record {
    Record::new()
        .field("project_id", project.project_id.clone())
        .field("title", project.title.clone())
        .field("kind", name(kind_name(project.activity_kind)))
        .field("status", name(status_name(project.status)))
        .field("organising_team_id", project.organising_team_id.clone())
        .field("site_id", optional(&project.site_id))
        .field("start_at", timestamp(project.start_at.as_ref()))
        .field("end_at", timestamp(project.end_at.as_ref()))
        .field("capacity", project.capacity)
        .field("accepted_count", project.accepted_count)
        .field("waitlisted_count", project.waitlisted_count)
        .field("min_age", project.min_age)
        .field("skills_wanted", project.skills_wanted.join(", "))
        .field("risky", project.risky)
        .field("insured", project.insured)
        .field("key_project", project.key_project)
        .field("brand_project", project.brand_project)
        .field("demonstration", project.demonstration)
        .field("demonstration_reason", optional(&project.demonstration_reason))
        .field("contact", optional(&project.contact))
        .field("description", optional(&project.description))
        .field("version", project.version)
        .field("published_at", timestamp(project.published_at.as_ref()))
}

const LIST_COLUMNS: &[&str] =
    &["project_id", "title", "kind", "status", "start_at", "capacity", "accepted_count", "waitlisted_count"];

pub async fn run(
    command: ProjectCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let mut client = node.projects();
    let project = match command {
        ProjectCommand::Create(args) => {
            client
                .create_project(pb::CreateProjectRequest {
                    title: args.title,
                    description: args.description,
                    activity_kind: args.kind.wire(),
                    organising_team_id: args.team_id,
                    site_id: args.site_id.unwrap_or_default(),
                    start_at: Some(wire_time(args.start)),
                    end_at: Some(wire_time(args.end)),
                    capacity: args.capacity,
                    min_age: args.min_age,
                    skills_wanted: args.skills,
                    risky: args.risky,
                    insured: args.insured,
                    contact: args.contact,
                })
                .await?
                .into_inner()
                .project
        }
        ProjectCommand::Get(args) => {
            client.get_project(pb::GetProjectRequest { project_id: args.project_id }).await?.into_inner().project
        }
        ProjectCommand::Search(args) => {
            let (projects, next) = pages(args.page.all, args.page.start(), |page_token| {
                let mut client = client.clone();
                let request = pb::SearchProjectsRequest {
                    activity_kind: args.kind.map_or(0, ActivityKind::wire),
                    organising_team_id: args.team_id.clone().unwrap_or_default(),
                    site_id: args.site_id.clone().unwrap_or_default(),
                    time_from: args.from.map(wire_time),
                    time_to: args.to.map(wire_time),
                    key_project: args.key_project,
                    brand_project: args.brand_project,
                    demonstration: args.demonstration,
                    text: args.text.clone().unwrap_or_default(),
                    status: args.status.map_or(0, ProjectStatus::wire),
                    page_size: args.page.size(),
                    page_token,
                };
                async move {
                    let response = client.search_projects(request).await?.into_inner();
                    Ok((response.projects, response.next_page_token))
                }
            })
            .await?;
            let records: Vec<Record> = projects.iter().map(record).collect();
            console.list("projects", &records, LIST_COLUMNS, &next);
            return Ok(());
        }
        ProjectCommand::Update(args) => {
            let changes = args.changes;
            let site_id = if changes.no_site { Some(String::new()) } else { changes.site_id };
            client
                .update_project(pb::UpdateProjectRequest {
                    project_id: args.project_id,
                    expected_version: args.expected_version.unwrap_or(0),
                    title: changes.title,
                    description: changes.description,
                    activity_kind: changes.kind.map(ActivityKind::wire),
                    site_id,
                    start_at: changes.start.map(wire_time),
                    end_at: changes.end.map(wire_time),
                    min_age: changes.min_age,
                    skills_wanted: (!changes.skills.is_empty()).then_some(pb::SkillList { skills: changes.skills }),
                    risky: changes.risky,
                    insured: changes.insured,
                    contact: changes.contact,
                })
                .await?
                .into_inner()
                .project
        }
        ProjectCommand::Publish(args) => {
            client
                .publish_project(pb::PublishProjectRequest { project_id: args.project_id })
                .await?
                .into_inner()
                .project
        }
        ProjectCommand::Close(args) => {
            client.close_project(pb::CloseProjectRequest { project_id: args.project_id }).await?.into_inner().project
        }
        ProjectCommand::Cancel(args) => {
            client
                .cancel_project(pb::CancelProjectRequest { project_id: args.project_id, reason: args.reason })
                .await?
                .into_inner()
                .project
        }
        ProjectCommand::Mark(args) => {
            client
                .mark_project(pb::MarkProjectRequest {
                    project_id: args.project_id,
                    key_project: args.key_project,
                    brand_project: args.brand_project,
                    demonstration: args.demonstration,
                    reason: args.reason,
                })
                .await?
                .into_inner()
                .project
        }
        ProjectCommand::Capacity(args) => {
            let response = client
                .set_project_capacity(pb::SetProjectCapacityRequest {
                    project_id: args.project_id,
                    capacity: args.capacity,
                })
                .await?
                .into_inner();
            let project = record(&response.project.unwrap_or_default());
            if console.is_json() {
                console.json(&serde_json::json!({
                    "project": project.to_json(),
                    "promoted_volunteer_numbers": response.promoted_volunteer_numbers,
                }));
            } else {
                console.single("project", &project);
                if !response.promoted_volunteer_numbers.is_empty() {
                    console.note(&format!(
                        "promoted from the waitlist: {}",
                        response.promoted_volunteer_numbers.join(", ")
                    ));
                }
            }
            return Ok(());
        }
    };
    console.single("project", &record(&project.unwrap_or_default()));
    Ok(())
}
