//! `ecovol supervision …`: social supervision reports (`SupervisionService`): submit, advance, get, list.

use chrono::{DateTime, FixedOffset};
use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node, PageArgs, pages};
use super::console::{Console, Record, optional, timestamp};
use super::failure::Failure;
use super::project::printed;

/// Supervision-report commands.
#[derive(Debug, clap::Subcommand)]
pub enum SupervisionCommand {
    /// Submit a report of damage to the environment (the volunteer, or staff on their behalf).
    Submit(SubmitArgs),
    /// Move a report forward: referred, then closed (staff).
    Advance(AdvanceArgs),
    /// Show one report (staff, or its reporter).
    Get(ReportIdArg),
    /// List reports (staff).
    List(ListArgs),
}

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Category {
    /// Water pollution.
    Water,
    /// Air pollution.
    Air,
    /// Soil pollution.
    Soil,
    /// Noise.
    Noise,
    /// Solid waste.
    SolidWaste,
    /// Ecological damage.
    EcologicalDamage,
    /// Anything else.
    Other,
}

impl Category {
    fn wire(self) -> i32 {
        (match self {
            Category::Water => pb::ReportCategory::Water,
            Category::Air => pb::ReportCategory::Air,
            Category::Soil => pb::ReportCategory::Soil,
            Category::Noise => pb::ReportCategory::Noise,
            Category::SolidWaste => pb::ReportCategory::SolidWaste,
            Category::EcologicalDamage => pb::ReportCategory::EcologicalDamage,
            Category::Other => pb::ReportCategory::Other,
        }) as i32
    }
}

/// Where a report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    /// Registered by the bureau.
    Received,
    /// Referred to the competent department.
    Referred,
    /// Handled.
    Closed,
}

impl Status {
    fn wire(self) -> i32 {
        (match self {
            Status::Received => pb::ReportStatus::Received,
            Status::Referred => pb::ReportStatus::Referred,
            Status::Closed => pb::ReportStatus::Closed,
        }) as i32
    }
}

/// Arguments of `supervision submit`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// The reporting volunteer's number.
    #[arg(long, value_name = "NUMBER")]
    pub reporter: String,

    /// Where it was seen (at most 200 characters).
    #[arg(long)]
    pub place: String,

    /// When it was seen (RFC 3339, e.g. 2026-06-05T09:00:00+08:00); not in the future.
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339)]
    pub occurred_at: DateTime<FixedOffset>,

    /// What was seen (at most 2000 characters).
    #[arg(long)]
    pub description: String,

    /// What it is about.
    #[arg(long, value_enum)]
    pub category: Category,
}

/// Arguments of `supervision advance`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdvanceArgs {
    /// The report id, e.g. 330106-R000042.
    pub report_id: String,

    /// The next status.
    #[arg(long, value_enum)]
    pub status: Status,

    /// What was done (required).
    #[arg(long)]
    pub note: String,
}

/// A report id.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportIdArg {
    /// The report id, e.g. 330106-R000042.
    pub report_id: String,
}

/// Arguments of `supervision list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only reports in this status.
    #[arg(long, value_enum)]
    pub status: Option<Status>,

    #[command(flatten)]
    pub page: PageArgs,
}

fn report_record(report: &pb::SupervisionReport) -> Record {
    let category = printed(
        report.category,
        pb::ReportCategory::try_from(report.category).ok().map(|c| c.as_str_name()),
        "REPORT_CATEGORY_",
    );
    let status = printed(
        report.status,
        pb::ReportStatus::try_from(report.status).ok().map(|s| s.as_str_name()),
        "REPORT_STATUS_",
    );
    Record::new()
        .field("report_id", report.report_id.clone())
        .field("status", status.unwrap_or_default())
        .field("category", category.unwrap_or_default())
        .field("place", report.place.clone())
        .field("occurred_at", timestamp(report.occurred_at.as_ref()))
        .field("description", report.description.clone())
        .field("submitted_at", timestamp(report.submitted_at.as_ref()))
        .field("reporter", optional(&report.reporter_volunteer_number))
        .field("reporter_name", optional(&report.reporter_name))
        .field(
            "history",
            serde_json::Value::Array(
                report
                    .history
                    .iter()
                    .map(|event| {
                        let status = printed(
                            event.status,
                            pb::ReportStatus::try_from(event.status).ok().map(|s| s.as_str_name()),
                            "REPORT_STATUS_",
                        );
                        Record::new()
                            .field("status", status.unwrap_or_default())
                            .field("note", event.note.clone())
                            .field("changed_by", event.changed_by.clone())
                            .field("changed_at", timestamp(event.changed_at.as_ref()))
                            .to_json()
                    })
                    .collect(),
            ),
        )
}

/// Runs a supervision command.
pub async fn run(
    command: SupervisionCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let mut client = node.supervision();
    match command {
        SupervisionCommand::Submit(args) => {
            let occurred_at = args.occurred_at.to_utc();
            let request = pb::SubmitReportRequest {
                place: args.place,
                occurred_at: Some(crate::wire::timestamp(occurred_at)),
                description: args.description,
                category: args.category.wire(),
                reporter_volunteer_number: args.reporter,
            };
            let report = client.submit_report(request).await?.into_inner().report.unwrap_or_default();
            console.single("report", &report_record(&report));
        }
        SupervisionCommand::Advance(args) => {
            let request =
                pb::AdvanceReportRequest { report_id: args.report_id, status: args.status.wire(), note: args.note };
            let report = client.advance_report(request).await?.into_inner().report.unwrap_or_default();
            console.single("report", &report_record(&report));
        }
        SupervisionCommand::Get(args) => {
            let report =
                client.get_report(pb::GetReportRequest { report_id: args.report_id }).await?.into_inner().report;
            console.single("report", &report_record(&report.unwrap_or_default()));
        }
        SupervisionCommand::List(args) => {
            let status = args.status.map(Status::wire).unwrap_or_default();
            let (reports, next) = pages(args.page.all, args.page.start(), |page_token| {
                let mut client = client.clone();
                let request = pb::ListReportsRequest { status, page_size: args.page.size(), page_token };
                async move {
                    let response = client.list_reports(request).await?.into_inner();
                    Ok((response.reports, response.next_page_token))
                }
            })
            .await?;
            let records: Vec<Record> = reports.iter().map(report_record).collect();
            console.list(
                "reports",
                &records,
                &["report_id", "status", "category", "place", "occurred_at", "reporter"],
                &next,
            );
        }
    }
    Ok(())
}
