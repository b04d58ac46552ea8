//! `ecovol evaluation …`, `ecovol training …` and `ecovol profile`: ratings and project outcomes, training
//! sessions and attendance, and a volunteer's recognition (hours, ratings, trainings, star and star events)
//! (`RecognitionService`).

use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node, PageArgs, pages};
use super::console::{Console, Record, timestamp};
use super::failure::Failure;

/// Evaluation commands.
#[derive(Debug, clap::Subcommand)]
pub enum EvaluationCommand {
    /// Rate a volunteer's service on a project, 1 to 5 (the organising team's manager, or staff). Rating again
    /// replaces the evaluation as its next version.
    Rate(RateArgs),
    /// Record a project's outcome (staff; the project must be published or closed and past its end).
    Outcome(OutcomeArgs),
    /// Show a project's outcome and the evaluations of its volunteers.
    Show(ProjectIdArg),
}

/// Arguments of `evaluation rate`.
#[derive(Debug, Clone, clap::Args)]
pub struct RateArgs {
    /// The project, e.g. 330106-P000007.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project_id: String,
    /// The volunteer number, e.g. 330106-00000042.
    #[arg(long, value_name = "NUMBER")]
    pub volunteer: String,
    /// 1 (poor) to 5 (excellent).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub rating: u32,
    /// At most 500 characters.
    #[arg(long, default_value = "")]
    pub comment: String,
}

/// Arguments of `evaluation outcome`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutcomeArgs {
    /// The project, e.g. 330106-P000007.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project_id: String,
    /// How many volunteers took part.
    #[arg(long)]
    pub participants: u32,
    /// How many people the project reached.
    #[arg(long)]
    pub people_reached: u64,
    /// 1 (poor) to 5 (excellent).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub score: u32,
    /// What the project achieved (at most 2000 characters).
    #[arg(long)]
    pub summary: String,
}

/// A project id.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectIdArg {
    /// The project id, e.g. 330106-P000007.
    pub project_id: String,
}

/// Training commands.
#[derive(Debug, clap::Subcommand)]
pub enum TrainingCommand {
    /// Create a training session (staff).
    Create(CreateTrainingArgs),
    /// Add volunteers to a session's attendance list (staff).
    Attend(AttendanceArgs),
    /// Remove volunteers from a session's attendance list (staff).
    Unattend(AttendanceArgs),
    /// Show a session with its attendance list.
    Get(TrainingIdArg),
    /// List sessions.
    List(ListTrainingsArgs),
}

/// The tier of a training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tier {
    /// Pre-job basic training.
    PreJobBasic,
    /// Project skills.
    ProjectSkills,
    /// Backbone (team leader) management.
    BackboneManagement,
}

/// Who a training is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Audience {
    /// Volunteer-service workers of the offices.
    VolunteerWorkers,
    /// Heads of volunteer organisations.
    OrganisationHeads,
    /// Volunteers.
    Volunteers,
}

/// Arguments of `training create`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateTrainingArgs {
    /// The session's title (at most 200 characters).
    #[arg(long)]
    pub title: String,
    /// The tier of the training.
    #[arg(long, value_enum)]
    pub tier: Tier,
    /// Who it is for; repeat or separate with commas.
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    pub audience: Vec<Audience>,
    /// The day it is held, YYYY-MM-DD.
    #[arg(long)]
    pub date: String,
    /// The organising department or organisation.
    #[arg(long)]
    pub organiser: String,
}

/// Arguments of `training attend` and `training unattend`.
#[derive(Debug, Clone, clap::Args)]
pub struct AttendanceArgs {
    /// The session id, e.g. 330106-TR000001.
    pub training_id: String,
    /// Volunteer numbers.
    #[arg(required = true)]
    pub volunteers: Vec<String>,
}

/// A session id.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainingIdArg {
    /// The session id, e.g. 330106-TR000001.
    pub training_id: String,
}

/// Arguments of `training list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListTrainingsArgs {
    /// Paging.
    #[command(flatten)]
    pub page: PageArgs,
}

/// Arguments of `profile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// The volunteer number, e.g. 330106-00000042.
    pub volunteer: String,
    /// How many of the latest evaluations to show (at most 100).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub evaluations: u32,
}

fn tier_name(value: i32) -> &'static str {
    match pb::TrainingTier::try_from(value) {
        Ok(pb::TrainingTier::PreJobBasic) => "pre-job-basic",
        Ok(pb::TrainingTier::ProjectSkills) => "project-skills",
        Ok(pb::TrainingTier::BackboneManagement) => "backbone-management",
        _ => "unspecified",
    }
}

fn audience_name(value: i32) -> &'static str {
    match pb::TrainingAudience::try_from(value) {
        Ok(pb::TrainingAudience::VolunteerWorkers) => "volunteer-workers",
        Ok(pb::TrainingAudience::OrganisationHeads) => "organisation-heads",
        Ok(pb::TrainingAudience::Volunteers) => "volunteers",
        _ => "unspecified",
    }
}

fn level_name(value: i32) -> &'static str {
    match pb::CertifyingLevel::try_from(value) {
        Ok(pb::CertifyingLevel::County) => "county",
        Ok(pb::CertifyingLevel::City) => "city",
        Ok(pb::CertifyingLevel::Province) => "province",
        _ => "unspecified",
    }
}

fn evaluation(evaluation: &pb::Evaluation) -> Record {
    Record::new()
        .field("project_id", evaluation.project_id.clone())
        .field("volunteer_number", evaluation.volunteer_number.clone())
        .field("rating", evaluation.rating)
        .field("comment", evaluation.comment.clone())
        .field("version", evaluation.version)
        .field("rated_by", evaluation.rated_by.clone())
        .field("rated_at", timestamp(evaluation.rated_at.as_ref()))
}

fn outcome(outcome: &pb::ProjectOutcome) -> Record {
    Record::new()
        .field("project_id", outcome.project_id.clone())
        .field("participants", outcome.participants)
        .field("people_reached", outcome.people_reached)
        .field("score", outcome.score)
        .field("summary", outcome.summary.clone())
        .field("version", outcome.version)
        .field("recorded_by", outcome.recorded_by.clone())
        .field("recorded_at", timestamp(outcome.recorded_at.as_ref()))
}

fn training(training: &pb::Training) -> Record {
    let audiences: Vec<&str> = training.audiences.iter().map(|value| audience_name(*value)).collect();
    Record::new()
        .field("training_id", training.training_id.clone())
        .field("title", training.title.clone())
        .field("tier", tier_name(training.tier))
        .field("audiences", audiences.join(","))
        .field("date", training.date.clone())
        .field("organiser", training.organiser.clone())
        .field("attendee_count", training.attendee_count)
}

fn star_event(event: &pb::StarEvent) -> Record {
    let direction = if event.direction == pb::StarDirection::Lost as i32 { "lost" } else { "reached" };
    Record::new()
        .field("seq", event.seq)
        .field("star", event.star)
        .field("direction", direction)
        .field("at", timestamp(event.at.as_ref()))
        .field("total_minutes", event.total_minutes)
        .field("certified", event.certified)
        .field("certifying_level", level_name(event.certifying_level))
}

const EVALUATION_COLUMNS: &[&str] = &["project_id", "volunteer_number", "rating", "version", "rated_at", "comment"];
const TRAINING_COLUMNS: &[&str] = &["training_id", "date", "tier", "audiences", "attendee_count", "title"];
const CERTIFICATION_COLUMNS: &[&str] = &["star", "certified_by", "level", "certified_at"];
const HONOUR_COLUMNS: &[&str] = &["campaign_id", "title", "edition", "awarded_by", "publication_date"];

const STAR_COLUMNS: &[&str] = &["seq", "star", "direction", "at", "total_minutes", "certified", "certifying_level"];

fn hours_text(hours_x100: u64) -> String {
    format!("{}.{:02}", hours_x100 / 100, hours_x100 % 100)
}

pub async fn run_evaluation(
    command: EvaluationCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let mut client = node.recognition();
    match command {
        EvaluationCommand::Rate(args) => {
            let response = client
                .rate_volunteer(pb::RateVolunteerRequest {
                    project_id: args.project_id,
                    volunteer_number: args.volunteer,
                    rating: args.rating,
                    comment: args.comment,
                })
                .await?
                .into_inner();
            console.single("evaluation", &evaluation(&response.evaluation.unwrap_or_default()));
        }
        EvaluationCommand::Outcome(args) => {
            let response = client
                .record_project_outcome(pb::RecordProjectOutcomeRequest {
                    project_id: args.project_id,
                    participants: args.participants,
                    people_reached: args.people_reached,
                    score: args.score,
                    summary: args.summary,
                })
                .await?
                .into_inner();
            console.single("outcome", &outcome(&response.outcome.unwrap_or_default()));
        }
        EvaluationCommand::Show(args) => {
            let response = client
                .get_project_outcome(pb::GetProjectOutcomeRequest { project_id: args.project_id })
                .await?
                .into_inner();
            let evaluations: Vec<Record> = response.evaluations.iter().map(evaluation).collect();
            if console.is_json() {
                let evaluations: Vec<serde_json::Value> = evaluations.iter().map(Record::to_json).collect();
                let shown = response.outcome.as_ref().map(|found| outcome(found).to_json());
                console.json(&serde_json::json!({ "outcome": shown, "evaluations": evaluations }));
            } else {
                match &response.outcome {
                    Some(found) => console.single("outcome", &outcome(found)),
                    None => console.note("no outcome recorded yet"),
                }
                console.print("\n");
                console.list("evaluations", &evaluations, EVALUATION_COLUMNS, "");
            }
        }
    }
    Ok(())
}

pub async fn run_training(
    command: TrainingCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let mut client = node.recognition();
    match command {
        TrainingCommand::Create(args) => {
            let tier = match args.tier {
                Tier::PreJobBasic => pb::TrainingTier::PreJobBasic,
                Tier::ProjectSkills => pb::TrainingTier::ProjectSkills,
                Tier::BackboneManagement => pb::TrainingTier::BackboneManagement,
            };
            let audiences = args
                .audience
                .iter()
                .map(|audience| match audience {
                    Audience::VolunteerWorkers => pb::TrainingAudience::VolunteerWorkers as i32,
                    Audience::OrganisationHeads => pb::TrainingAudience::OrganisationHeads as i32,
                    Audience::Volunteers => pb::TrainingAudience::Volunteers as i32,
                })
                .collect();
            let response = client
                .create_training(pb::CreateTrainingRequest {
                    title: args.title,
                    tier: tier as i32,
                    audiences,
                    date: args.date,
                    organiser: args.organiser,
                })
                .await?
                .into_inner();
            console.single("training", &training(&response.training.unwrap_or_default()));
        }
        TrainingCommand::Attend(args) => {
            let response = client
                .add_training_attendance(pb::AddTrainingAttendanceRequest {
                    training_id: args.training_id,
                    volunteer_numbers: args.volunteers,
                })
                .await?
                .into_inner();
            console.single("training", &training(&response.training.unwrap_or_default()));
        }
        TrainingCommand::Unattend(args) => {
            let response = client
                .remove_training_attendance(pb::RemoveTrainingAttendanceRequest {
                    training_id: args.training_id,
                    volunteer_numbers: args.volunteers,
                })
                .await?
                .into_inner();
            console.single("training", &training(&response.training.unwrap_or_default()));
        }
        TrainingCommand::Get(args) => {
            let response =
                client.get_training(pb::GetTrainingRequest { training_id: args.training_id }).await?.into_inner();
            let shown = training(&response.training.unwrap_or_default())
                .field("attendees", response.attendee_volunteer_numbers.join(","));
            console.single("training", &shown);
        }
        TrainingCommand::List(args) => {
            let (trainings, next) = pages(args.page.all, args.page.start(), |page_token| {
                let mut client = client.clone();
                let request = pb::ListTrainingsRequest { page_size: args.page.size(), page_token };
                async move {
                    let response = client.list_trainings(request).await?.into_inner();
                    Ok((response.trainings, response.next_page_token))
                }
            })
            .await?;
            let records: Vec<Record> = trainings.iter().map(training).collect();
            console.list("trainings", &records, TRAINING_COLUMNS, &next);
        }
    }
    Ok(())
}

pub async fn run_profile(
    args: ProfileArgs,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let profile = node
        .recognition()
        .get_volunteer_profile(pb::GetVolunteerProfileRequest {
            volunteer_number: args.volunteer,
            evaluations_max: args.evaluations,
        })
        .await?
        .into_inner();
    let summary = Record::new()
        .field("volunteer_number", profile.volunteer_number.clone())
        .field("confirmed_minutes", profile.confirmed_minutes)
        .field("confirmed_hours", hours_text(profile.confirmed_hours_x100))
        .field("confirmed_records", profile.confirmed_record_count)
        .field("minutes_served_elsewhere", profile.elsewhere_minutes)
        .field("rating_average", profile.rating_average.clone())
        .field("rating_count", profile.rating_count)
        .field("rating_sum", profile.rating_sum)
        .field("star", profile.star)
        .field("star_reached_at", timestamp(profile.star_reached_at.as_ref()));
    let evaluations: Vec<Record> = profile.evaluations.iter().map(evaluation).collect();
    let trainings: Vec<Record> = profile.trainings.iter().map(training).collect();
    let stars: Vec<Record> = profile.star_events.iter().map(star_event).collect();
    let certifications: Vec<Record> = profile
        .certifications
        .iter()
        .map(|c| {
            let level = match pb::Level::try_from(c.level).unwrap_or_default() {
                pb::Level::Province => "province",
                pb::Level::City => "city",
                pb::Level::County => "county",
                pb::Level::Unspecified => "",
            };
            Record::new()
                .field("star", c.star)
                .field("certified_by", c.certified_by.clone())
                .field("level", level)
                .field("certified_at", timestamp(c.certified_at.as_ref()))
        })
        .collect();
    let honours: Vec<Record> = profile
        .honours
        .iter()
        .map(|h| {
            Record::new()
                .field("campaign_id", h.campaign_id.clone())
                .field("title", h.title.clone())
                .field("series", h.series.clone())
                .field("edition", h.edition)
                .field("awarded_by", h.awarded_by.clone())
                .field("publication_date", h.publication_date.clone())
                .field("recorded_at", timestamp(h.recorded_at.as_ref()))
        })
        .collect();
    if console.is_json() {
        let all = |records: &[Record]| records.iter().map(Record::to_json).collect::<Vec<_>>();
        console.json(&serde_json::json!({
            "profile": summary.to_json(),
            "evaluations": all(&evaluations),
            "trainings": all(&trainings),
            "star_events": all(&stars),
            "certifications": all(&certifications),
            "honours": all(&honours),
        }));
    } else {
        console.single("profile", &summary);
        for (key, records, columns) in [
            ("evaluations", &evaluations, EVALUATION_COLUMNS),
            ("trainings", &trainings, TRAINING_COLUMNS),
            ("star_events", &stars, STAR_COLUMNS),
            ("certifications_from_above", &certifications, CERTIFICATION_COLUMNS),
            ("honours", &honours, HONOUR_COLUMNS),
        ] {
            console.print("\n");
            console.list(key, records, columns, "");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use clap::error::ErrorKind;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("ecovol").chain(args.iter().copied())).map(|cli| cli.command)
    }

    fn kind(args: &[&str]) -> Option<ErrorKind> {
        parse(args).err().map(|error| error.kind())
    }

    #[test]
    fn recognition_commands_parse_and_refuse_out_of_range_values() {
        let rate = ["evaluation", "rate", "--project-id", "330106-P000001", "--volunteer", "330106-00000001"];
        assert!(parse(&[&rate[..], &["--rating", "5"]].concat()).is_ok());
        assert_eq!(kind(&[&rate[..], &["--rating", "6"]].concat()), Some(ErrorKind::ValueValidation));
        let Command::Training(TrainingCommand::Create(args)) = parse(&[
            "training",
            "create",
            "--title",
            "岗前培训",
            "--tier",
            "pre-job-basic",
            "--audience",
            "volunteers,organisation-heads",
            "--date",
            "2026-03-05",
            "--organiser",
            "西湖区生态环境局",
        ])
        .unwrap() else {
            panic!("not training create")
        };
        assert_eq!(args.audience, [Audience::Volunteers, Audience::OrganisationHeads]);
        assert_eq!(kind(&["training", "attend", "330106-TR000001"]), Some(ErrorKind::MissingRequiredArgument));
        assert!(parse(&["profile", "330106-00000001"]).is_ok());
        assert_eq!(kind(&["profile", "330106-00000001", "--evaluations", "0"]), Some(ErrorKind::ValueValidation));
    }
}
