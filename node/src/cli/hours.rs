//! `ecovol hours …`: service hours (`ServiceRecordService`): record, record a roster, confirm, corrections,
//! amend, revoke, show and list.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};
use ecovol_proto::v1 as pb;
use serde::Deserialize;

use super::connection::{ConnectionArgs, Node, PageArgs, pages};
use super::console::{Console, Record, optional, timestamp};
use super::failure::Failure;

/// Service-hours commands.
#[derive(Debug, clap::Subcommand)]
pub enum HoursCommand {
    /// Record one volunteer's service on a project (the organising team's manager, or staff).
    Record(RecordArgs),
    /// Record a roster for one project from a JSON file: every row or none.
    Bulk(BulkArgs),
    /// Confirm a record: only confirmed hours count.
    Confirm(RecordIdArg),
    /// As the volunteer: report an error in your own record.
    RequestCorrection(RequestCorrectionArgs),
    /// Close a correction request, the record standing as it is.
    RejectCorrection(ReasonArgs),
    /// Change a record's times or content (a new version is kept).
    Amend(AmendArgs),
    /// Withdraw a record (final).
    Revoke(ReasonArgs),
    /// Show one record with every version.
    Get(RecordIdArg),
    /// List records of a project or of a volunteer.
    List(ListArgs),
}

/// How the interval was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Check-in and check-out times taken on site.
    CheckInOut,
    /// A start–end interval reported afterwards.
    Interval,
}

impl Method {
    fn wire(self) -> i32 {
        match self {
            Method::CheckInOut => pb::RecordingMethod::CheckInOut as i32,
            Method::Interval => pb::RecordingMethod::Interval as i32,
        }
    }
}

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum State {
    /// Recorded, not yet confirmed.
    Recorded,
    /// Confirmed: the hours count.
    Confirmed,
    /// Withdrawn.
    Revoked,
}

impl State {
    fn wire(self) -> i32 {
        match self {
            State::Recorded => pb::ServiceRecordState::Recorded as i32,
            State::Confirmed => pb::ServiceRecordState::Confirmed as i32,
            State::Revoked => pb::ServiceRecordState::Revoked as i32,
        }
    }
}

/// A record id.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordIdArg {
    /// The record id, e.g. 330106-H00000042.
    pub record_id: String,
}

/// Arguments of `hours record`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    /// The project served on.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project_id: String,

    /// The volunteer number, e.g. 330106-00000042.
    #[arg(long, value_name = "NUMBER")]
    pub volunteer: String,

    /// Start of the service (RFC 3339, e.g. 2025-06-05T09:00:00+08:00); travel not included.
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339)]
    pub start: DateTime<FixedOffset>,

    /// End of the service (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339)]
    pub end: DateTime<FixedOffset>,

    /// What was done, for whom (at most 500 characters).
    #[arg(long)]
    pub content: String,

    /// How the times were taken.
    #[arg(long, value_enum, default_value_t = Method::CheckInOut)]
    pub method: Method,

    /// Staff only: the volunteer served without an accepted sign-up.
    #[arg(long)]
    pub walk_in: bool,

    /// Retry key; by default derived from project, volunteer and times, so running the same command again
    /// returns the first record.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

/// Arguments of `hours bulk`.
#[derive(Debug, Clone, clap::Args)]
pub struct BulkArgs {
    /// The project served on.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project_id: String,

    /// JSON file: an array of rows {"volunteer_number", "start_time", "end_time", "content", and optionally
    /// "method" ("check-in-out" or "interval"), "walk_in", "idempotency_key"}; times in RFC 3339.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
}

/// Arguments of `hours request-correction`.
#[derive(Debug, Clone, clap::Args)]
pub struct RequestCorrectionArgs {
    /// The record id, e.g. 330106-H00000042.
    pub record_id: String,

    /// What is wrong (at most 500 characters).
    #[arg(long)]
    pub reason: String,

    /// The start you believe right (RFC 3339); give --proposed-end with it.
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339, requires = "proposed_end")]
    pub proposed_start: Option<DateTime<FixedOffset>>,

    /// The end you believe right (RFC 3339); give --proposed-start with it.
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339, requires = "proposed_start")]
    pub proposed_end: Option<DateTime<FixedOffset>>,

    /// The content you believe right.
    #[arg(long)]
    pub proposed_content: Option<String>,
}

/// A record and a reason.
#[derive(Debug, Clone, clap::Args)]
pub struct ReasonArgs {
    /// The record id, e.g. 330106-H00000042.
    pub record_id: String,

    /// Why (at most 500 characters); kept with the version.
    #[arg(long)]
    pub reason: String,
}

/// Arguments of `hours amend`; new times, new content, or both.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["start", "content"])))]
pub struct AmendArgs {
    /// The record id, e.g. 330106-H00000042.
    pub record_id: String,

    /// Why (at most 500 characters); kept with the version.
    #[arg(long)]
    pub reason: String,

    /// New start (RFC 3339); give --end with it.
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339, requires = "end")]
    pub start: Option<DateTime<FixedOffset>>,

    /// New end (RFC 3339); give --start with it.
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339, requires = "start")]
    pub end: Option<DateTime<FixedOffset>>,

    /// New content.
    #[arg(long)]
    pub content: Option<String>,

    /// Refuse unless the record is still at this version (see `hours get`): nobody else amended it meanwhile.
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u32>,
}

/// Arguments of `hours list`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).multiple(true).args(["project_id", "volunteer"])))]
pub struct ListArgs {
    /// Records of this project.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project_id: Option<String>,

    /// Records of this volunteer.
    #[arg(long, value_name = "NUMBER")]
    pub volunteer: Option<String>,

    /// Only records in this state.
    #[arg(long, value_enum)]
    pub state: Option<State>,

    #[command(flatten)]
    pub page: PageArgs,
}

/// One row of a roster file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterRow {
    volunteer_number: String,
    start_time: DateTime<FixedOffset>,
    end_time: DateTime<FixedOffset>,
    content: String,
    #[serde(default)]
    method: Option<Method>,
    #[serde(default)]
    walk_in: bool,
    #[serde(default)]
    idempotency_key: Option<String>,
}

fn wire_time(time: &DateTime<FixedOffset>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

/// A retry key derived from what identifies a row, so the same command run twice returns the first record.
pub fn derived_key(
    project_id: &str,
    volunteer: &str,
    start: &DateTime<FixedOffset>,
    end: &DateTime<FixedOffset>,
) -> String {
    let text = format!("{project_id}\n{volunteer}\n{}\n{}", start.timestamp_millis(), end.timestamp_millis());
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    format!("cli-{}", &hex::encode(digest.as_ref())[..40])
}

fn state_name(value: i32) -> &'static str {
    match pb::ServiceRecordState::try_from(value) {
        Ok(pb::ServiceRecordState::Recorded) => "recorded",
        Ok(pb::ServiceRecordState::Confirmed) => "confirmed",
        Ok(pb::ServiceRecordState::Revoked) => "revoked",
        _ => "unspecified",
    }
}

fn method_name(value: i32) -> &'static str {
    match pb::RecordingMethod::try_from(value) {
        Ok(pb::RecordingMethod::CheckInOut) => "check-in-out",
        Ok(pb::RecordingMethod::Interval) => "interval",
        _ => "unspecified",
    }
}

fn action_name(value: i32) -> &'static str {
    match pb::ServiceRecordAction::try_from(value) {
        Ok(pb::ServiceRecordAction::Recorded) => "recorded",
        Ok(pb::ServiceRecordAction::Confirmed) => "confirmed",
        Ok(pb::ServiceRecordAction::CorrectionRequested) => "correction-requested",
        Ok(pb::ServiceRecordAction::CorrectionRejected) => "correction-rejected",
        Ok(pb::ServiceRecordAction::Amended) => "amended",
        Ok(pb::ServiceRecordAction::Revoked) => "revoked",
        _ => "unspecified",
    }
}

/// Hundredths of an hour as a decimal text ("2.25"), exactly.
fn hours_text(hours_x100: u32) -> String {
    format!("{}.{:02}", hours_x100 / 100, hours_x100 % 100)
}

/// A record as printed.
pub fn record(record: &pb::ServiceRecord) -> Record {
    Record::new()
        .field("record_id", record.record_id.clone())
        .field("project_id", record.project_id.clone())
        .field("volunteer_number", record.volunteer_number.clone())
        .field("state", state_name(record.state))
        .field("start_time", timestamp(record.start_time.as_ref()))
        .field("end_time", timestamp(record.end_time.as_ref()))
        .field("minutes_served", record.minutes_served)
        .field("hours", hours_text(record.hours_x100))
        .field("method", method_name(record.method))
        .field("content", record.content.clone())
        .field("walk_in", record.walk_in)
        .field("correction_requested", record.correction_requested)
        .field("correction_reason", optional(&record.correction.as_ref().map(|c| c.reason.clone()).unwrap_or_default()))
        .field("organising_team_id", record.organising_team_id.clone())
        .field("activity_kind", record.activity_kind.clone())
        .field("version", record.version)
        .field("recorded_by", record.recorded_by.clone())
        .field("recorded_at", timestamp(record.recorded_at.as_ref()))
        .field("confirmed_by", optional(&record.confirmed_by))
        .field("confirmed_at", timestamp(record.confirmed_at.as_ref()))
        .field("revoke_reason", optional(&record.revoke_reason))
}

/// A version as printed.
pub fn version_record(version: &pb::ServiceRecordVersion) -> Record {
    Record::new()
        .field("version", version.version)
        .field("action", action_name(version.action))
        .field("state", state_name(version.state))
        .field("start_time", timestamp(version.start_time.as_ref()))
        .field("end_time", timestamp(version.end_time.as_ref()))
        .field("hours", hours_text(version.hours_x100))
        .field("changed_by", version.changed_by.clone())
        .field("changed_at", timestamp(version.changed_at.as_ref()))
        .field("reason", version.reason.clone())
}

const LIST_COLUMNS: &[&str] =
    &["record_id", "volunteer_number", "project_id", "state", "start_time", "end_time", "hours", "walk_in"];

const VERSION_COLUMNS: &[&str] =
    &["version", "action", "state", "start_time", "end_time", "hours", "changed_by", "reason"];

fn read_roster(path: &PathBuf) -> Result<Vec<RosterRow>, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|error| Failure::Usage(format!("--file {}: {error}", path.display())))?;
    serde_json::from_str(&text).map_err(|error| {
        Failure::Usage(format!("--file {}: not a roster (a JSON array of rows): {error}", path.display()))
    })
}

pub async fn run(command: HoursCommand, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    // A roster file is read before connecting, so a mistake in it is a usage error.
    let roster = match &command {
        HoursCommand::Bulk(args) => read_roster(&args.file)?,
        _ => Vec::new(),
    };
    let node = Node::connect(connection, console).await?;
    let mut client = node.service_records();
    match command {
        HoursCommand::Record(args) => {
            let idempotency_key = args
                .idempotency_key
                .unwrap_or_else(|| derived_key(&args.project_id, &args.volunteer, &args.start, &args.end));
            let response = client
                .record_service(pb::RecordServiceRequest {
                    project_id: args.project_id,
                    volunteer_number: args.volunteer,
                    method: args.method.wire(),
                    start_time: Some(wire_time(&args.start)),
                    end_time: Some(wire_time(&args.end)),
                    content: args.content,
                    walk_in: args.walk_in,
                    idempotency_key,
                })
                .await?
                .into_inner();
            if response.replayed {
                console.note("note: this record was made before with the same idempotency key; nothing new was stored");
            }
            console.single("record", &record(&response.record.unwrap_or_default()));
        }
        HoursCommand::Bulk(args) => {
            let rows = roster
                .into_iter()
                .map(|row| pb::ServiceRow {
                    idempotency_key: row.idempotency_key.clone().unwrap_or_else(|| {
                        derived_key(&args.project_id, &row.volunteer_number, &row.start_time, &row.end_time)
                    }),
                    volunteer_number: row.volunteer_number,
                    method: row.method.unwrap_or(Method::CheckInOut).wire(),
                    start_time: Some(wire_time(&row.start_time)),
                    end_time: Some(wire_time(&row.end_time)),
                    content: row.content,
                    walk_in: row.walk_in,
                })
                .collect();
            let response = client
                .record_service_bulk(pb::RecordServiceBulkRequest { project_id: args.project_id, rows })
                .await?
                .into_inner();
            if response.replayed_count > 0 {
                console.note(&format!(
                    "note: {} rows were recorded before and returned as they were",
                    response.replayed_count
                ));
            }
            let records: Vec<Record> = response.records.iter().map(record).collect();
            console.list("records", &records, LIST_COLUMNS, "");
        }
        HoursCommand::Confirm(args) => {
            let response = client
                .confirm_service_record(pb::ConfirmServiceRecordRequest { record_id: args.record_id })
                .await?
                .into_inner();
            console.single("record", &record(&response.record.unwrap_or_default()));
        }
        HoursCommand::RequestCorrection(args) => {
            let response = client
                .request_correction(pb::RequestCorrectionRequest {
                    record_id: args.record_id,
                    reason: args.reason,
                    proposed_start_time: args.proposed_start.as_ref().map(wire_time),
                    proposed_end_time: args.proposed_end.as_ref().map(wire_time),
                    proposed_content: args.proposed_content.unwrap_or_default(),
                })
                .await?
                .into_inner();
            console.single("record", &record(&response.record.unwrap_or_default()));
        }
        HoursCommand::RejectCorrection(args) => {
            let response = client
                .reject_correction(pb::RejectCorrectionRequest { record_id: args.record_id, reason: args.reason })
                .await?
                .into_inner();
            console.single("record", &record(&response.record.unwrap_or_default()));
        }
        HoursCommand::Amend(args) => {
            let response = client
                .amend_service_record(pb::AmendServiceRecordRequest {
                    record_id: args.record_id,
                    start_time: args.start.as_ref().map(wire_time),
                    end_time: args.end.as_ref().map(wire_time),
                    content: args.content.unwrap_or_default(),
                    reason: args.reason,
                    expected_version: args.expected_version.unwrap_or(0),
                })
                .await?
                .into_inner();
            console.single("record", &record(&response.record.unwrap_or_default()));
        }
        HoursCommand::Revoke(args) => {
            let response = client
                .revoke_service_record(pb::RevokeServiceRecordRequest {
                    record_id: args.record_id,
                    reason: args.reason,
                })
                .await?
                .into_inner();
            console.single("record", &record(&response.record.unwrap_or_default()));
        }
        HoursCommand::Get(args) => {
            let response = client
                .get_service_record(pb::GetServiceRecordRequest { record_id: args.record_id })
                .await?
                .into_inner();
            let shown = record(&response.record.unwrap_or_default());
            let versions: Vec<Record> = response.versions.iter().map(version_record).collect();
            if console.is_json() {
                let versions: Vec<serde_json::Value> = versions.iter().map(Record::to_json).collect();
                console.json(&serde_json::json!({ "record": shown.to_json(), "versions": versions }));
            } else {
                console.single("record", &shown);
                console.print("\n");
                console.list("versions", &versions, VERSION_COLUMNS, "");
            }
        }
        HoursCommand::List(args) => {
            let (records, next) = pages(args.page.all, args.page.start(), |page_token| {
                let mut client = client.clone();
                let request = pb::ListServiceRecordsRequest {
                    project_id: args.project_id.clone().unwrap_or_default(),
                    volunteer_number: args.volunteer.clone().unwrap_or_default(),
                    state: args.state.map_or(0, State::wire),
                    page_size: args.page.size(),
                    page_token,
                };
                async move {
                    let response = client.list_service_records(request).await?.into_inner();
                    Ok((response.records, response.next_page_token))
                }
            })
            .await?;
            let records: Vec<Record> = records.iter().map(record).collect();
            console.list("records", &records, LIST_COLUMNS, &next);
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

    fn parse(args: &[&str]) -> Result<HoursCommand, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("ecovol").chain(args.iter().copied()))?;
        match cli.command {
            Command::Hours(command) => Ok(command),
            other => panic!("not hours: {other:?}"),
        }
    }

    fn kind(args: &[&str]) -> Option<ErrorKind> {
        parse(args).err().map(|error| error.kind())
    }

    #[test]
    fn hours_record_reads_times_and_derives_a_stable_key() {
        let command = parse(&[
            "hours",
            "record",
            "--project-id",
            "330106-P000001",
            "--volunteer",
            "330106-00000001",
            "--start",
            "2025-06-05T09:00:00+08:00",
            "--end",
            "2025-06-05T11:00:00+08:00",
            "--content",
            "巡河",
            "--walk-in",
        ])
        .unwrap();
        let HoursCommand::Record(args) = command else { panic!("not record") };
        assert!(args.walk_in);
        assert_eq!(args.method, Method::CheckInOut);
        let key = derived_key(&args.project_id, &args.volunteer, &args.start, &args.end);
        assert_eq!(key, derived_key(&args.project_id, &args.volunteer, &args.start, &args.end));
        assert!(key.len() <= 64 && key.starts_with("cli-"));
        assert_ne!(key, derived_key(&args.project_id, "330106-00000002", &args.start, &args.end));
        assert_eq!(
            kind(&[
                "hours",
                "record",
                "--project-id",
                "p",
                "--volunteer",
                "v",
                "--start",
                "9am",
                "--end",
                "x",
                "--content",
                "c"
            ]),
            Some(ErrorKind::ValueValidation)
        );
    }

    #[test]
    fn hours_amend_and_list_need_something_to_work_on() {
        assert_eq!(
            kind(&["hours", "amend", "330106-H00000001", "--reason", "x"]),
            Some(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&["hours", "amend", "330106-H00000001", "--reason", "x", "--start", "2025-06-05T09:00:00+08:00"]),
            Some(ErrorKind::MissingRequiredArgument)
        );
        assert!(parse(&["hours", "amend", "330106-H00000001", "--reason", "x", "--content", "y"]).is_ok());
        assert_eq!(kind(&["hours", "list"]), Some(ErrorKind::MissingRequiredArgument));
        let HoursCommand::List(args) =
            parse(&["hours", "list", "--volunteer", "330106-00000001", "--state", "confirmed"]).unwrap()
        else {
            panic!("not list")
        };
        assert_eq!(args.state, Some(State::Confirmed));
    }

    #[test]
    fn roster_rows_read_from_json() {
        let rows: Vec<RosterRow> = serde_json::from_str(
            r#"[{"volunteer_number":"330106-00000001","start_time":"2025-06-05T09:00:00+08:00",
                 "end_time":"2025-06-05T10:00:00+08:00","content":"巡河","method":"interval"}]"#,
        )
        .unwrap();
        assert_eq!(rows[0].method, Some(Method::Interval));
        assert!(!rows[0].walk_in);
        assert!(serde_json::from_str::<Vec<RosterRow>>(r#"[{"volunteer":"x"}]"#).is_err());
        assert_eq!(hours_text(225), "2.25");
        assert_eq!(hours_text(8), "0.08");
    }
}
