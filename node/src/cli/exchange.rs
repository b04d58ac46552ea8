//! `ecovol exchange …`: the exchange with the national volunteer-service platform (docs/EXCHANGE.md).
//!
//! - `consent`: record or withdraw a volunteer's separate consent to sharing (PIPL art. 23).
//! - `export`: the items changed since a watermark, delivered through a `NationalPlatform` adapter (today the
//!   file drop: one file per kind and `manifest.json` in `--out DIR`); prints the new watermark.
//! - `import-records`: service records of another platform (JSON Lines, CSV or .xlsx), for mutual recognition;
//!   refused rows go to `FILE.errors.csv` as in `ecovol import`.
//! - `records`: a volunteer's recognised records.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use ecovol_proto::v1 as pb;
use serde_json::Value;

use super::connection::{ConnectionArgs, Node};
use super::console::{Console, Record, optional, timestamp};
use super::failure::Failure;
use super::import::{parse_time, report_path};
use crate::exchange::ExportCounts;
use crate::exchange::platform::{FileDrop, NationalPlatform};
use crate::exchange::sheet::SheetReader;
use crate::exchange::table::{Cell, Column, Format, Language, format_hours, write_table};
use crate::wire::from_timestamp;

/// Rows per import call.
const RECOGNITION_ROWS_PER_CALL: usize = 500;

#[derive(Debug, clap::Subcommand)]
pub enum ExchangeCommand {
    /// Record (--yes) or withdraw (--withdraw) a volunteer's consent to sharing with the national platform.
    Consent(ConsentArgs),
    /// Export what changed since a watermark for the national platform, into a new folder.
    Export(ExportArgs),
    /// Import service records of another platform for mutual recognition.
    ImportRecords(ImportRecordsArgs),
    /// A volunteer's service records recognised from other platforms.
    Records(RecordsArgs),
}

#[derive(Debug, clap::Args)]
pub struct ConsentArgs {
    /// The volunteer number.
    pub volunteer_number: String,
    /// The volunteer consents.
    #[arg(long, conflicts_with = "withdraw", required_unless_present = "withdraw")]
    pub yes: bool,
    /// The volunteer withdraws their consent: the next export tells the platform.
    #[arg(long)]
    pub withdraw: bool,
    /// How the consent was given or withdrawn (e.g. "signed form 2026-03-01").
    #[arg(long, value_name = "TEXT")]
    pub evidence: String,
}

/// Formats of the export files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExchangeFormat {
    /// JSON Lines, one object per item.
    Jsonl,
    /// CSV, UTF-8 with a byte-order mark, headers are the item keys.
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The watermark the previous export printed (RFC 3339); without it, everything.
    #[arg(long, value_name = "WATERMARK")]
    pub since: Option<String>,
    /// A new (or empty) folder for the files.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The file format.
    #[arg(long, value_enum, default_value_t = ExchangeFormat::Jsonl)]
    pub format: ExchangeFormat,
}

#[derive(Debug, clap::Args)]
pub struct ImportRecordsArgs {
    /// The platform the records come from (a-z, 0-9, '-'), e.g. `national` or `zj-volunteer`.
    #[arg(long, value_name = "NAME")]
    pub source: String,
    /// The records: .jsonl, .csv or .xlsx with the fields of docs/EXCHANGE.md.
    pub file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RecordsArgs {
    /// The volunteer number.
    pub volunteer_number: String,
}

/// Runs `ecovol exchange …`.
pub async fn run(
    command: ExchangeCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    match command {
        ExchangeCommand::Consent(args) => consent(args, connection, console).await,
        ExchangeCommand::Export(args) => export(args, connection, console).await,
        ExchangeCommand::ImportRecords(args) => import_records(args, connection, console).await,
        ExchangeCommand::Records(args) => records(args, connection, console).await,
    }
}

async fn consent(args: ConsentArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let request = pb::SetExchangeConsentRequest {
        volunteer_number: args.volunteer_number,
        consent: args.yes && !args.withdraw,
        evidence: args.evidence,
    };
    let response = node.exchange().set_exchange_consent(request).await?.into_inner();
    let record = Record::new()
        .field("volunteer_number", response.volunteer_number)
        .field("consent", response.consent)
        .field("changed", response.changed)
        .field("changed_at", timestamp(response.changed_at.as_ref()));
    console.single("consent", &record);
    Ok(())
}

fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

async fn export(args: ExportArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let since = match &args.since {
        None => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text.trim())
                .map_err(|error| Failure::Usage(format!("--since {text}: not an RFC 3339 watermark ({error})")))?
                .to_utc(),
        ),
    };
    let format = match args.format {
        ExchangeFormat::Jsonl => Format::Jsonl,
        ExchangeFormat::Csv => Format::Csv,
    };
    let mut platform = FileDrop::create(&args.out, format, since).map_err(|error| Failure::Usage(error.to_string()))?;
    let node = Node::connect(connection, console).await?;
    let request = pb::ExportExchangeRequest { since: since.map(crate::wire::timestamp), batch_items_max: 0 };
    let mut stream = node.exchange().export_exchange(request).await?.into_inner();
    let mut counts = ExportCounts::default();
    let mut watermark = None;
    while let Some(batch) = stream.message().await? {
        counts.volunteers += batch.volunteers.len();
        counts.teams += batch.teams.len();
        counts.projects += batch.projects.len();
        counts.service_records += batch.service_records.len();
        platform.deliver(&batch).map_err(|error| Failure::Failed(error.to_string()))?;
        if batch.last {
            watermark = batch.watermark.as_ref().and_then(from_timestamp);
        }
    }
    let watermark = watermark
        .ok_or_else(|| Failure::Failed("the export ended without its watermark: nothing was finished".into()))?;
    platform.finish(watermark, counts).map_err(|error| Failure::Failed(error.to_string()))?;
    if console.is_json() {
        console.json(&serde_json::json!({
            "watermark": iso(watermark),
            "folder": args.out.display().to_string(),
            "volunteers": counts.volunteers,
            "teams": counts.teams,
            "projects": counts.projects,
            "service_records": counts.service_records,
        }));
    } else {
        console.print(&format!("exported {counts} to {}\nwatermark: {}\n", args.out.display(), iso(watermark)));
    }
    Ok(())
}

/// The fields of a recognition import file, by key (JSON Lines keys, CSV headers).
const RECOGNITION_FIELDS: [&str; 10] = [
    "source_record_id",
    "id_number",
    "name",
    "organisation",
    "project_title",
    "activity_kind",
    "start_time",
    "end_time",
    "hours",
    "content",
];

/// Hours as an exact decimal with at most two places: "3.25" → 325.
pub fn parse_hours(text: &str) -> Option<u32> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || fraction.len() > 2 || !whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

/// One file row: its line or row number and its fields by key.
type FileRow = (u64, std::collections::HashMap<String, String>);

fn read_rows(path: &Path) -> Result<Vec<FileRow>, Failure> {
    let shown = path.display().to_string();
    if Format::of_path(path) == Some(Format::Jsonl) {
        let file = std::fs::File::open(path).map_err(|error| Failure::Usage(format!("{shown}: {error}")))?;
        let mut rows = Vec::new();
        for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|error| Failure::Failed(format!("{shown}: {error}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let number = index as u64 + 1;
            let object: serde_json::Map<String, Value> = serde_json::from_str(&line)
                .map_err(|error| Failure::Failed(format!("{shown}: line {number} is not a JSON object ({error})")))?;
            let fields = object
                .into_iter()
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (key, text)
                })
                .collect();
            rows.push((number, fields));
        }
        return Ok(rows);
    }
    let mut reader = SheetReader::open(path).map_err(|error| Failure::Usage(error.to_string()))?;
    let headers: Vec<String> = reader.headers().to_vec();
    let optional_fields = ["organisation", "project_title", "activity_kind"];
    let missing: Vec<&str> = RECOGNITION_FIELDS
        .into_iter()
        .filter(|field| !optional_fields.contains(field) && !headers.iter().any(|header| header == field))
        .collect();
    if !missing.is_empty() {
        return Err(Failure::Usage(format!("{shown}: no column {} (headers are the field keys)", missing.join(", "))));
    }
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row().map_err(|error| Failure::Failed(error.to_string()))? {
        let fields = headers.iter().cloned().zip(row.cells).collect();
        rows.push((row.number, fields));
    }
    Ok(rows)
}

async fn import_records(
    args: ImportRecordsArgs,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let rows = read_rows(&args.file)?;
    let report = report_path(&args.file);
    let _ = std::fs::remove_file(&report);
    let mut errors: Vec<Vec<Cell>> = Vec::new();
    let mut refuse = |row: u64, field: &str, rule: String| {
        errors.push(vec![Cell::Integer(row as i64), Cell::text(field), Cell::text(rule), Cell::text(field)]);
    };
    let mut parsed: Vec<(u64, pb::ExternalServiceRecord)> = Vec::new();
    for (number, fields) in rows {
        let get = |key: &str| fields.get(key).map(|value| value.trim().to_string()).unwrap_or_default();
        let start = parse_time(&get("start_time"));
        let end = parse_time(&get("end_time"));
        let hours = parse_hours(&get("hours"));
        match (start, end, hours) {
            (None, _, _) => refuse(number, "start_time", "must be an RFC 3339 time or 2026-03-05 09:30".into()),
            (_, None, _) => refuse(number, "end_time", "must be an RFC 3339 time or 2026-03-05 12:00".into()),
            (_, _, None) => refuse(number, "hours", "must be a decimal with at most two places, e.g. 3.25".into()),
            (Some(start), Some(end), Some(hours_x100)) => parsed.push((
                number,
                pb::ExternalServiceRecord {
                    source_record_id: get("source_record_id"),
                    id_number: get("id_number").to_uppercase(),
                    name: get("name"),
                    organisation: get("organisation"),
                    project_title: get("project_title"),
                    activity_kind: get("activity_kind"),
                    start_time: Some(crate::wire::timestamp(start.to_utc())),
                    end_time: Some(crate::wire::timestamp(end.to_utc())),
                    hours_x100,
                    content: get("content"),
                },
            )),
        }
    }
    let node = Node::connect(connection, console).await?;
    let (mut created, mut duplicates) = (0u32, 0u32);
    for chunk in parsed.chunks(RECOGNITION_ROWS_PER_CALL) {
        let request = pb::ImportRecognisedRecordsRequest {
            source: args.source.clone(),
            records: chunk.iter().map(|(_, record)| record.clone()).collect(),
        };
        let response = node.exchange().import_recognised_records(request).await?.into_inner();
        created += response.created_count;
        duplicates += response.duplicate_count;
        for result in response.results {
            let Some((number, _)) = chunk.get(result.index as usize) else { continue };
            for violation in result.violations {
                let field = if violation.field == "hours_x100" { "hours".to_string() } else { violation.field };
                errors.push(vec![
                    Cell::Integer(*number as i64),
                    Cell::text(&field),
                    Cell::text(violation.description),
                    Cell::text(&field),
                ]);
            }
        }
    }
    errors.sort_by_key(|row| match row.first() {
        Some(Cell::Integer(number)) => *number,
        _ => 0,
    });
    let refused_rows = {
        let mut numbers: Vec<String> = errors.iter().map(|row| row[0].display(Language::En)).collect();
        numbers.dedup();
        numbers.len()
    };
    if !errors.is_empty() {
        const COLUMNS: [Column; 4] = [
            Column::new("row", "行号", "Row"),
            Column::new("column", "列", "Column"),
            Column::new("rule", "错误原因", "Rule broken"),
            Column::new("field", "服务器字段", "Server field"),
        ];
        write_table(&report, Format::Csv, &COLUMNS, &errors, Language::Zh, "errors")
            .map_err(|error| Failure::Failed(error.to_string()))?;
    }
    if console.is_json() {
        console.json(&serde_json::json!({
            "created": created,
            "duplicates": duplicates,
            "refused": refused_rows,
            "error_report": (!errors.is_empty()).then(|| report.display().to_string()),
        }));
    } else {
        console.print(&format!("{created} recognised, {duplicates} already recognised, {refused_rows} refused\n"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::Failed(format!("{refused_rows} rows were refused: see {}", report.display())))
    }
}

async fn records(args: RecordsArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let request = pb::ListRecognisedRecordsRequest { volunteer_number: args.volunteer_number };
    let response = node.exchange().list_recognised_records(request).await?.into_inner();
    let records: Vec<Record> = response
        .records
        .iter()
        .map(|record| {
            Record::new()
                .field("recognised_id", record.recognised_id.clone())
                .field("volunteer_number", record.volunteer_number.clone())
                .field("organisation", optional(&record.organisation))
                .field("start_time", timestamp(record.start_time.as_ref()))
                .field("hours", format_hours(u64::from(record.hours_x100)))
                .field("content", record.content.clone())
        })
        .collect();
    console.list("records", &records, &["recognised_id", "start_time", "hours", "organisation", "content"], "");
    if !console.is_json() {
        console.note(&format!("total: {} h", format_hours(response.hours_x100_total)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_read_exactly() {
        for (text, hundredths) in
            [("3.25", Some(325)), ("3", Some(300)), ("0.5", Some(50)), ("1.005", None), ("-1", None)]
        {
            assert_eq!(parse_hours(text), hundredths, "{text}");
        }
        assert_eq!(parse_hours(""), None);
        assert_eq!(parse_hours(".5"), None);
    }

    #[test]
    fn every_recognition_field_is_documented_once() {
        let mut fields = RECOGNITION_FIELDS.to_vec();
        fields.dedup();
        assert_eq!(fields.len(), RECOGNITION_FIELDS.len());
    }
}
