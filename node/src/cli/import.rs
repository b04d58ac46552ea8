//! `ecovol import volunteers|teams|hours FILE.csv|FILE.xlsx`: the spreadsheets the office keeps, into the node.
//!
//! 1. The header row is mapped to fields by Chinese and English synonyms (`--mapping field=header,…` overrides);
//!    the mapping is printed first, and `--dry-run` stops after checking every row locally.
//! 2. Rows are streamed (see `exchange::sheet`) and sent as they are read, `--concurrency` calls in flight:
//!    volunteers in `RegisterVolunteers` batches (one result per row), teams one call per row, hours in
//!    `RecordServiceBulk` batches of one project's rows.
//! 3. Every refused row goes to `FILE.errors.csv` beside the input: row, column, rule broken, and the server's
//!    field (the `google.rpc.BadRequest` field violation) when the node refused it.
//! 4. Importing the same file twice creates nothing twice: a volunteer whose identity number is registered already
//!    is counted as existing (the node refuses a second registration); a team whose credit code, or without one
//!    whose name, exists already is skipped; each hours row carries an idempotency key (its own column, or one
//!    derived from project, volunteer and times, as `ecovol hours record-bulk` does), so the node returns the
//!    first record instead of a second.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use ecovol_proto::v1 as pb;
use tokio::task::JoinSet;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::connection::{ConnectionArgs, Node};
use super::console::{Console, render_table};
use super::failure::Failure;
use crate::exchange::sheet::{SheetReader, SheetRow};
use crate::exchange::table::{Column, Format, Language, write_table};

/// What to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportKind {
    /// The register of volunteers (志愿者名册).
    Volunteers,
    /// Volunteer teams (志愿服务组织).
    Teams,
    /// Service hours (服务时长记录).
    Hours,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// What the file holds.
    #[arg(value_enum)]
    pub kind: ImportKind,

    /// The spreadsheet: .csv (UTF-8 or GBK) or .xlsx (the first sheet); the first row holds the headers.
    pub file: PathBuf,

    /// Which column fills which field, overriding the automatic mapping: `field=header,field=header`
    /// (e.g. `phone=联系方式,name=志愿者姓名`).
    #[arg(long, value_name = "FIELD=HEADER,...")]
    pub mapping: Option<String>,

    /// Show the mapping and check every row here, without sending anything; print the first errors.
    #[arg(long)]
    pub dry_run: bool,

    /// Rows per bulk call: hours per RecordServiceBulk (at most the node's `[hours] bulk_rows_max`), volunteers per
    /// RegisterVolunteers (at most 1,000).
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_rows: u32,

    /// Calls in flight at once.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
}

/// A field of an import and the headers that name it (compared without case, spaces, `_`, `-` or a `*`).
struct Field {
    key: &'static str,
    required: bool,
    synonyms: &'static [&'static str],
}

const VOLUNTEER_FIELDS: &[Field] = &[
    Field { key: "name", required: true, synonyms: &["姓名", "名字", "志愿者姓名", "name", "full name"] },
    Field {
        key: "identity_number",
        required: true,
        synonyms: &["身份证号", "身份证号码", "证件号码", "证件号", "公民身份号码", "identity number", "id number"],
    },
    Field {
        key: "phone",
        required: true,
        synonyms: &["手机号", "手机号码", "手机", "联系电话", "电话", "phone", "mobile"],
    },
    Field { key: "political_status", required: false, synonyms: &["政治面貌", "political status"] },
    Field { key: "skills", required: false, synonyms: &["技能", "专长", "服务技能", "特长", "skills"] },
    Field {
        key: "home_division_code",
        required: true,
        synonyms: &["所在地区划代码", "行政区划代码", "区划代码", "所在地", "home division code", "division code"],
    },
    Field {
        key: "consent_to_processing",
        required: true,
        synonyms: &["同意处理个人信息", "同意个人信息处理", "个人信息同意", "consent", "consent to processing"],
    },
    Field { key: "guardian_consent", required: false, synonyms: &["监护人同意", "guardian consent"] },
    Field { key: "self_supporting", required: false, synonyms: &["自食其力", "self supporting"] },
    Field {
        key: "consent_to_share",
        required: false,
        synonyms: &["同意共享", "同意向国家平台共享", "同意信息共享", "consent to sharing", "consent to share"],
    },
];

const TEAM_FIELDS: &[Field] = &[
    Field {
        key: "name", required: true, synonyms: &["组织名称", "队伍名称", "团队名称", "名称", "name", "team name"]
    },
    Field {
        key: "credit_code", required: false, synonyms: &["统一社会信用代码", "信用代码", "credit code"]
    },
    Field { key: "kind", required: true, synonyms: &["组织类型", "队伍类型", "类型", "kind", "type"] },
    Field { key: "hub", required: false, synonyms: &["枢纽型", "枢纽型组织", "hub"] },
    Field { key: "support", required: false, synonyms: &["支持型", "支持型组织", "support"] },
    Field {
        key: "parent_team_id", required: false, synonyms: &["上级组织编号", "所属联合会", "parent team id"]
    },
];

const HOURS_FIELDS: &[Field] = &[
    Field { key: "project_id", required: true, synonyms: &["项目编号", "项目id", "project id", "project"] },
    Field {
        key: "volunteer_number", required: true, synonyms: &["志愿者编号", "志愿者号", "volunteer number"]
    },
    Field {
        key: "start_time",
        required: true,
        synonyms: &["开始时间", "签到时间", "服务开始时间", "start time", "start"],
    },
    Field {
        key: "end_time", required: true, synonyms: &["结束时间", "签退时间", "服务结束时间", "end time", "end"]
    },
    Field { key: "content", required: true, synonyms: &["服务内容", "内容", "content"] },
    Field { key: "method", required: false, synonyms: &["记录方式", "method"] },
    Field { key: "walk_in", required: false, synonyms: &["现场登记", "walk in"] },
    Field {
        key: "idempotency_key", required: false, synonyms: &["幂等键", "记录键", "idempotency key", "row key"]
    },
];

fn fields_of(kind: ImportKind) -> &'static [Field] {
    match kind {
        ImportKind::Volunteers => VOLUNTEER_FIELDS,
        ImportKind::Teams => TEAM_FIELDS,
        ImportKind::Hours => HOURS_FIELDS,
    }
}

/// A header as compared: lowercase, without spaces, `_`, `-`, `*` or full-width parentheses' notes.
fn normalise(header: &str) -> String {
    let header = header.split(['(', '（']).next().unwrap_or(header);
    header.chars().filter(|c| !c.is_whitespace() && !"_-*".contains(*c)).flat_map(char::to_lowercase).collect()
}

/// Field key → column index. Every field found is mapped; an override names the header exactly (or normalised).
pub struct Mapping {
    columns: HashMap<&'static str, usize>,
}

impl Mapping {
    fn build(fields: &'static [Field], headers: &[String], overrides: Option<&str>) -> Result<Mapping, Failure> {
        let normalised: Vec<String> = headers.iter().map(|header| normalise(header)).collect();
        let mut columns = HashMap::new();
        for field in fields {
            let wanted: Vec<String> =
                std::iter::once(field.key).chain(field.synonyms.iter().copied()).map(normalise).collect();
            if let Some(index) = normalised.iter().position(|header| wanted.contains(header)) {
                columns.insert(field.key, index);
            }
        }
        for pair in overrides.unwrap_or_default().split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            let (key, header) = pair
                .split_once('=')
                .ok_or_else(|| Failure::Usage(format!("--mapping {pair:?}: write field=header")))?;
            let field = fields.iter().find(|field| field.key == key.trim()).ok_or_else(|| {
                let keys: Vec<&str> = fields.iter().map(|field| field.key).collect();
                Failure::Usage(format!("--mapping: no field {:?}; the fields are {}", key.trim(), keys.join(", ")))
            })?;
            let index = headers
                .iter()
                .position(|candidate| candidate == header.trim())
                .or_else(|| normalised.iter().position(|candidate| *candidate == normalise(header)))
                .ok_or_else(|| Failure::Usage(format!("--mapping: the file has no column {:?}", header.trim())))?;
            columns.insert(field.key, index);
        }
        Ok(Mapping { columns })
    }

    /// The cell of `field` in `row` (empty if unmapped or missing).
    fn get<'r>(&self, row: &'r SheetRow, field: &str) -> &'r str {
        self.columns.get(field).and_then(|index| row.cells.get(*index)).map(String::as_str).unwrap_or("")
    }
}

/// One refused row, as written to the error report.
#[derive(Debug, Clone)]
struct RowError {
    row: u64,
    column: String,
    rule: String,
    field: String,
}

/// The error report's columns.
const REPORT_COLUMNS: [Column; 4] = [
    Column::new("row", "行号", "Row"),
    Column::new("column", "列", "Column"),
    Column::new("rule", "错误原因", "Rule broken"),
    Column::new("field", "服务器字段", "Server field"),
];

/// Where the error report of `file` goes: `FILE.errors.csv` beside it.
pub fn report_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".errors.csv");
    file.with_file_name(name)
}

/// What an import did.
#[derive(Debug, Default)]
struct Tally {
    rows: u64,
    created: u64,
    existing: u64,
    errors: Vec<RowError>,
}

/// The context rows are checked and sent in.
struct Import {
    kind: ImportKind,
    mapping: Mapping,
    headers: Vec<String>,
}

impl Import {
    /// The header of the column that fills `field` (or the field's key if unmapped).
    fn column_of(&self, field: &str) -> String {
        self.mapping
            .columns
            .get(field)
            .and_then(|index| self.headers.get(*index))
            .cloned()
            .unwrap_or_else(|| field.into())
    }

    fn error(&self, row: u64, field: &str, rule: impl Into<String>, server_field: &str) -> RowError {
        RowError { row, column: self.column_of(field), rule: rule.into(), field: server_field.into() }
    }
}

/// Runs `ecovol import`.
pub async fn run(args: ImportArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let mut reader = SheetReader::open(&args.file).map_err(|error| Failure::Usage(error.to_string()))?;
    let fields = fields_of(args.kind);
    let mapping = Mapping::build(fields, reader.headers(), args.mapping.as_deref())?;
    let import = Import { kind: args.kind, mapping, headers: reader.headers().to_vec() };
    print_preview(&import, fields, console);
    let missing: Vec<&str> = fields
        .iter()
        .filter(|field| field.required && !import.mapping.columns.contains_key(field.key))
        .map(|f| f.key)
        .collect();
    if !missing.is_empty() {
        return Err(Failure::Usage(format!(
            "no column for the required field(s) {}: rename the header or add --mapping field=header",
            missing.join(", ")
        )));
    }
    let report = report_path(&args.file);
    if args.dry_run {
        let mut tally = Tally::default();
        while let Some(row) = next_row(&mut reader)? {
            tally.rows += 1;
            if let Err(error) = parse_row(&import, &row) {
                tally.errors.push(error);
            }
        }
        console.note(&format!("dry run: {} rows read, {} would be refused here", tally.rows, tally.errors.len()));
        print_first_errors(&tally.errors, console);
        return Ok(());
    }
    // A report of an earlier run would mislead once this one is done.
    let _ = std::fs::remove_file(&report);
    let node = Node::connect(connection, console).await?;
    let started = Instant::now();
    let mut progress = Progress::new();
    let tally = match args.kind {
        ImportKind::Hours => import_hours(&import, &node, &mut reader, &args, console, &mut progress).await?,
        ImportKind::Volunteers | ImportKind::Teams => {
            import_rows(&import, &node, &mut reader, &args, console, &mut progress).await?
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut errors = tally.errors;
    errors.sort_by_key(|error| error.row);
    if !errors.is_empty() {
        let rows: Vec<Vec<crate::exchange::table::Cell>> = errors
            .iter()
            .map(|error| {
                use crate::exchange::table::Cell;
                vec![
                    Cell::Integer(error.row as i64),
                    Cell::text(&error.column),
                    Cell::text(&error.rule),
                    Cell::text(&error.field),
                ]
            })
            .collect();
        write_table(&report, Format::Csv, &REPORT_COLUMNS, &rows, Language::Zh, "errors")
            .map_err(|error| Failure::Failed(error.to_string()))?;
    }
    let summary = format!(
        "{} rows read: {} created, {} already there, {} refused ({:.0} rows/s)",
        tally.rows,
        tally.created,
        tally.existing,
        errors.len(),
        tally.rows as f64 / seconds.max(0.001)
    );
    if console.is_json() {
        console.json(&serde_json::json!({
            "rows": tally.rows,
            "created": tally.created,
            "existing": tally.existing,
            "refused": errors.len(),
            "error_report": (!errors.is_empty()).then(|| report.display().to_string()),
        }));
    } else {
        console.print(&format!("{summary}\n"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        print_first_errors(&errors, console);
        Err(Failure::Failed(format!("{} rows were refused: see {}", errors.len(), report.display())))
    }
}

fn next_row(reader: &mut SheetReader) -> Result<Option<SheetRow>, Failure> {
    reader.next_row().map_err(|error| Failure::Failed(error.to_string()))
}

fn print_preview(import: &Import, fields: &[Field], console: &mut Console<'_>) {
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|field| {
            let column = import.mapping.columns.get(field.key).and_then(|index| import.headers.get(*index));
            vec![
                field.key.to_string(),
                column.cloned().unwrap_or_else(|| "-".into()),
                if field.required { "required" } else { "optional" }.to_string(),
            ]
        })
        .collect();
    console.note(&format!("column mapping ({:?}):", import.kind).to_lowercase());
    console.note(render_table(&["FIELD", "COLUMN", "NEED"], &rows).trim_end());
    let used: HashSet<usize> = import.mapping.columns.values().copied().collect();
    let ignored: Vec<&str> = import
        .headers
        .iter()
        .enumerate()
        .filter(|(index, header)| !used.contains(index) && !header.is_empty())
        .map(|(_, header)| header.as_str())
        .collect();
    if !ignored.is_empty() {
        console.note(&format!("ignored columns: {}", ignored.join(", ")));
    }
}

fn print_first_errors(errors: &[RowError], console: &mut Console<'_>) {
    for error in errors.iter().take(10) {
        let field = if error.field.is_empty() { String::new() } else { format!(" [{}]", error.field) };
        console.note(&format!("row {}, column {}: {}{field}", error.row, error.column, error.rule));
    }
    if errors.len() > 10 {
        console.note(&format!("… and {} more", errors.len() - 10));
    }
}

/// Progress on standard error: a line at most every two seconds.
struct Progress {
    last: Instant,
}

impl Progress {
    fn new() -> Progress {
        Progress { last: Instant::now() }
    }

    fn tick(&mut self, rows: u64, reader: &SheetReader, console: &mut Console<'_>) {
        if self.last.elapsed() >= Duration::from_secs(2) {
            self.last = Instant::now();
            console.note(&format!("… {rows} rows ({:.0}%)", reader.fraction_done() * 100.0));
        }
    }
}

/// A row checked here and ready to send.
enum Parsed {
    Volunteer { register: pb::RegisterVolunteerRequest, share: Option<bool> },
    Team(pb::CreateTeamRequest),
    Hours { project_id: String, row: pb::ServiceRow },
}

fn yes_no(text: &str) -> Option<bool> {
    match text.trim().to_lowercase().as_str() {
        "是" | "同意" | "有" | "yes" | "y" | "true" | "1" | "√" | "✓" => Some(true),
        "否" | "不同意" | "无" | "no" | "n" | "false" | "0" | "" => Some(false),
        _ => None,
    }
}

fn political_status(text: &str) -> Option<pb::PoliticalStatus> {
    match normalise(text).as_str() {
        "" => Some(pb::PoliticalStatus::Unspecified),
        "中共党员" | "党员" | "中共预备党员" | "partymember" => Some(pb::PoliticalStatus::PartyMember),
        "共青团员" | "团员" | "leaguemember" => Some(pb::PoliticalStatus::LeagueMember),
        "群众" | "masses" => Some(pb::PoliticalStatus::Masses),
        _ => None,
    }
}

fn guardian_consent(text: &str) -> Option<pb::GuardianConsent> {
    match normalise(text).as_str() {
        "" | "无" | "none" | "否" | "no" => Some(pb::GuardianConsent::Unspecified),
        "监护人" | "监护人同意" | "guardian" => Some(pb::GuardianConsent::Guardian),
        "父母" | "家长" | "父母同意" | "parent" => Some(pb::GuardianConsent::Parent),
        _ => None,
    }
}

fn team_kind(text: &str) -> Option<pb::TeamKind> {
    match normalise(text).as_str() {
        "机关" | "机关单位" | "agency" => Some(pb::TeamKind::Agency),
        "企业" | "enterprise" => Some(pb::TeamKind::Enterprise),
        "事业单位" | "publicinstitution" => Some(pb::TeamKind::PublicInstitution),
        "人民团体" | "peoplesorganisation" => Some(pb::TeamKind::PeoplesOrganisation),
        "社会组织" | "socialorganisation" => Some(pb::TeamKind::SocialOrganisation),
        "高校社团" | "高校" | "universityclub" => Some(pb::TeamKind::UniversityClub),
        "其他" | "other" => Some(pb::TeamKind::Other),
        _ => None,
    }
}

fn method(text: &str) -> Option<pb::RecordingMethod> {
    match normalise(text).as_str() {
        "" | "事后填报" | "时段" | "interval" => Some(pb::RecordingMethod::Interval),
        "签到签退" | "checkinout" => Some(pb::RecordingMethod::CheckInOut),
        _ => None,
    }
}

/// A time as the office writes it: `2026-03-05 09:30[:00]` or with `/`, in China time, or RFC 3339.
pub fn parse_time(text: &str) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time);
    }
    let text = text.replace('/', "-").replace('T', " ");
    let local = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(&text, format).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok().map(|date| date.and_time(chrono::NaiveTime::MIN))
        })?;
    crate::wire::china().from_local_datetime(&local).single()
}

fn wire_time(time: &DateTime<FixedOffset>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

/// Checks one row here; the first local problem is its error.
fn parse_row(import: &Import, row: &SheetRow) -> Result<Parsed, RowError> {
    let get = |field: &str| import.mapping.get(row, field);
    let refuse = |field: &str, rule: &str| import.error(row.number, field, rule, "");
    match import.kind {
        ImportKind::Volunteers => {
            let consent = yes_no(get("consent_to_processing"))
                .ok_or_else(|| refuse("consent_to_processing", "must be 是/否 (yes/no)"))?;
            let political = political_status(get("political_status"))
                .ok_or_else(|| refuse("political_status", "must be 中共党员, 共青团员 or 群众"))?;
            let guardian = guardian_consent(get("guardian_consent"))
                .ok_or_else(|| refuse("guardian_consent", "must be empty, 监护人 or 父母"))?;
            let self_supporting =
                yes_no(get("self_supporting")).ok_or_else(|| refuse("self_supporting", "must be 是/否 (yes/no)"))?;
            let share = if import.mapping.columns.contains_key("consent_to_share") {
                Some(
                    yes_no(get("consent_to_share"))
                        .ok_or_else(|| refuse("consent_to_share", "must be 是/否 (yes/no)"))?,
                )
            } else {
                None
            };
            let skills = get("skills")
                .split([';', '；', '、', ',', '，'])
                .map(str::trim)
                .filter(|skill| !skill.is_empty())
                .map(str::to_string)
                .collect();
            Ok(Parsed::Volunteer {
                register: pb::RegisterVolunteerRequest {
                    name: get("name").to_string(),
                    identity_number: get("identity_number").to_uppercase(),
                    phone: get("phone").to_string(),
                    skills,
                    political_status: political as i32,
                    consent_to_processing: consent,
                    guardian_consent: guardian as i32,
                    self_supporting,
                    home_division_code: get("home_division_code").to_string(),
                    ..Default::default()
                },
                share,
            })
        }
        ImportKind::Teams => {
            let kind = team_kind(get("kind")).ok_or_else(|| {
                refuse("kind", "must be one of 机关, 企业, 事业单位, 人民团体, 社会组织, 高校社团, 其他")
            })?;
            let hub = yes_no(get("hub")).ok_or_else(|| refuse("hub", "must be 是/否 (yes/no)"))?;
            let support = yes_no(get("support")).ok_or_else(|| refuse("support", "must be 是/否 (yes/no)"))?;
            let credit_code = get("credit_code").to_uppercase();
            Ok(Parsed::Team(pb::CreateTeamRequest {
                name: get("name").to_string(),
                registered: !credit_code.is_empty(),
                credit_code,
                kind: kind as i32,
                hub,
                support,
                parent_team_id: get("parent_team_id").to_string(),
            }))
        }
        ImportKind::Hours => {
            let project_id = get("project_id").to_string();
            if project_id.is_empty() {
                return Err(refuse("project_id", "is required"));
            }
            let start = parse_time(get("start_time"))
                .ok_or_else(|| refuse("start_time", "must be a time like 2026-03-05 09:30 (China time)"))?;
            let end = parse_time(get("end_time"))
                .ok_or_else(|| refuse("end_time", "must be a time like 2026-03-05 12:00 (China time)"))?;
            let method = method(get("method")).ok_or_else(|| refuse("method", "must be 签到签退 or 事后填报"))?;
            let walk_in = yes_no(get("walk_in")).ok_or_else(|| refuse("walk_in", "must be 是/否 (yes/no)"))?;
            let volunteer_number = get("volunteer_number").to_string();
            let key = match get("idempotency_key") {
                "" => super::hours::derived_key(&project_id, &volunteer_number, &start, &end),
                key => key.to_string(),
            };
            Ok(Parsed::Hours {
                project_id,
                row: pb::ServiceRow {
                    volunteer_number,
                    method: method as i32,
                    start_time: Some(wire_time(&start)),
                    end_time: Some(wire_time(&end)),
                    content: get("content").to_string(),
                    walk_in,
                    idempotency_key: key,
                },
            })
        }
    }
}

/// The server's field violations of `status`, as (field, description); empty if it carries none.
fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|violation| (violation.field, violation.description)).collect())
        .unwrap_or_default()
}

/// The row errors of a refused single-row call.
fn refused_row(import: &Import, row: u64, status: &Status) -> Vec<RowError> {
    let found = violations(status);
    if found.is_empty() {
        let field = match import.kind {
            ImportKind::Volunteers => "identity_number",
            ImportKind::Teams => "name",
            ImportKind::Hours => "project_id",
        };
        return vec![import.error(row, field, format!("{:?}: {}", status.code(), status.message()), "")];
    }
    found
        .into_iter()
        .map(|(field, description)| {
            let key = match field.as_str() {
                "registered" => "credit_code",
                other => other,
            };
            import.error(row, key, description, &field)
        })
        .collect()
}

/// What one volunteer or team call ended in.
enum RowOutcome {
    Created,
    Existing,
    Refused(Vec<RowError>),
}

/// Volunteers in `RegisterVolunteers` batches of `--batch-rows` rows, teams one call per row; `--concurrency`
/// calls in flight.
async fn import_rows(
    import: &Import,
    node: &Node,
    reader: &mut SheetReader,
    args: &ImportArgs,
    console: &mut Console<'_>,
    progress: &mut Progress,
) -> Result<Tally, Failure> {
    let mut tally = Tally::default();
    let (mut known_names, mut known_codes) = (HashSet::new(), HashSet::new());
    if import.kind == ImportKind::Teams {
        // Teams without a credit code have no unique key at the node: their names, as they are now, are the key.
        let mut token = String::new();
        loop {
            let page = node
                .teams()
                .list_teams(pb::ListTeamsRequest { page_size: 1000, page_token: token.clone(), ..Default::default() })
                .await?
                .into_inner();
            for team in page.teams {
                known_names.insert(team.name);
                if !team.credit_code.is_empty() {
                    known_codes.insert(team.credit_code);
                }
            }
            if page.next_page_token.is_empty() || page.next_page_token == token {
                break;
            }
            token = page.next_page_token;
        }
    }
    let mut in_flight: JoinSet<Vec<RowOutcome>> = JoinSet::new();
    let concurrency = args.concurrency as usize;
    let batch_rows = (args.batch_rows as usize).min(VOLUNTEER_BATCH_ROWS_MAX);
    let context = ErrorContext::of(import);
    let finish = |outcomes: Vec<RowOutcome>, tally: &mut Tally| {
        for outcome in outcomes {
            match outcome {
                RowOutcome::Created => tally.created += 1,
                RowOutcome::Existing => tally.existing += 1,
                RowOutcome::Refused(mut errors) => tally.errors.append(&mut errors),
            }
        }
    };
    let mut batch: Vec<VolunteerRow> = Vec::new();
    loop {
        let row = next_row(reader)?;
        let Some(row) = row else {
            if !batch.is_empty() {
                let rows = std::mem::take(&mut batch);
                in_flight.spawn(register_volunteers(node.volunteers(), node.exchange(), context.clone(), rows));
            }
            break;
        };
        tally.rows += 1;
        progress.tick(tally.rows, reader, console);
        let parsed = match parse_row(import, &row) {
            Ok(parsed) => parsed,
            Err(error) => {
                tally.errors.push(error);
                continue;
            }
        };
        let number = row.number;
        match parsed {
            Parsed::Volunteer { register, share } => {
                batch.push(VolunteerRow { number, register, share });
                if batch.len() >= batch_rows {
                    let rows = std::mem::take(&mut batch);
                    in_flight.spawn(register_volunteers(node.volunteers(), node.exchange(), context.clone(), rows));
                }
            }
            Parsed::Team(request) => {
                let exists = if request.credit_code.is_empty() {
                    !known_names.insert(request.name.clone())
                } else {
                    !known_codes.insert(request.credit_code.clone())
                };
                if exists {
                    tally.existing += 1;
                    continue;
                }
                let mut teams = node.teams();
                let errors_for = context.clone();
                in_flight.spawn(async move {
                    vec![match teams.create_team(request).await {
                        Ok(_) => RowOutcome::Created,
                        Err(status) if status.code() == Code::AlreadyExists => RowOutcome::Existing,
                        Err(status) => RowOutcome::Refused(errors_for.refused(number, &status)),
                    }]
                });
            }
            Parsed::Hours { .. } => {}
        }
        while in_flight.len() >= concurrency {
            if let Some(joined) = in_flight.join_next().await {
                finish(joined.map_err(|error| Failure::Failed(error.to_string()))?, &mut tally);
            }
        }
    }
    while let Some(joined) = in_flight.join_next().await {
        finish(joined.map_err(|error| Failure::Failed(error.to_string()))?, &mut tally);
    }
    Ok(tally)
}

/// Most volunteer rows per `RegisterVolunteers` call: the node's limit (`REGISTER_BULK_ROWS_MAX`).
const VOLUNTEER_BATCH_ROWS_MAX: usize = crate::registry::volunteer::REGISTER_BULK_ROWS_MAX;

/// A volunteer row waiting for its batch.
struct VolunteerRow {
    number: u64,
    register: pb::RegisterVolunteerRequest,
    share: Option<bool>,
}

/// Registers a batch of rows in one `RegisterVolunteers` call (one result per row), then records the sharing
/// consent of each row that has one. A node without the bulk call (older than the client) gets one
/// `RegisterVolunteer` call per row instead.
async fn register_volunteers(
    mut volunteers: ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient<
        super::connection::Authenticated,
    >,
    mut exchange: ecovol_proto::v1::exchange_service_client::ExchangeServiceClient<super::connection::Authenticated>,
    errors_for: ErrorContext,
    rows: Vec<VolunteerRow>,
) -> Vec<RowOutcome> {
    use pb::register_volunteer_result::Result as Row;
    let request = pb::RegisterVolunteersRequest { volunteers: rows.iter().map(|row| row.register.clone()).collect() };
    let results = match volunteers.register_volunteers(request).await {
        Ok(answer) => answer.into_inner().results,
        Err(status) if status.code() == Code::Unimplemented => {
            let mut outcomes = Vec::with_capacity(rows.len());
            for row in rows {
                let registered = match volunteers.register_volunteer(row.register).await {
                    Ok(answer) => answer.into_inner().volunteer.map(Row::Registered),
                    Err(status) if status.code() == Code::AlreadyExists => status
                        .get_details_resource_info()
                        .map(|info| Row::AlreadyRegistered(info.resource_name))
                        .filter(|row| !matches!(row, Row::AlreadyRegistered(number) if number.is_empty())),
                    Err(status) => {
                        outcomes.push(RowOutcome::Refused(errors_for.refused(row.number, &status)));
                        continue;
                    }
                };
                outcomes.push(volunteer_outcome(&mut exchange, &errors_for, row.number, row.share, registered).await);
            }
            return outcomes;
        }
        Err(status) => {
            return rows.iter().map(|row| RowOutcome::Refused(errors_for.refused(row.number, &status))).collect();
        }
    };
    if results.len() != rows.len() {
        let rule = format!("the node answered {} results for {} rows", results.len(), rows.len());
        return rows.iter().map(|row| RowOutcome::Refused(vec![errors_for.plain(row.number, &rule)])).collect();
    }
    let mut outcomes = Vec::with_capacity(rows.len());
    for (row, result) in rows.into_iter().zip(results) {
        outcomes.push(volunteer_outcome(&mut exchange, &errors_for, row.number, row.share, result.result).await);
    }
    outcomes
}

/// The outcome of one volunteer row from the node's answer for it; records the sharing consent of a registered
/// (or already registered) volunteer when the row has one.
async fn volunteer_outcome(
    exchange: &mut ecovol_proto::v1::exchange_service_client::ExchangeServiceClient<super::connection::Authenticated>,
    errors_for: &ErrorContext,
    number: u64,
    share: Option<bool>,
    result: Option<pb::register_volunteer_result::Result>,
) -> RowOutcome {
    use pb::register_volunteer_result::Result as Row;
    let (volunteer_number, created) = match result {
        Some(Row::Registered(volunteer)) => (volunteer.volunteer_number, true),
        Some(Row::AlreadyRegistered(number)) if !number.is_empty() => (number, false),
        Some(Row::Refused(refusal)) => {
            return RowOutcome::Refused(errors_for.refused(number, &refusal_status(refusal)));
        }
        _ => return RowOutcome::Refused(vec![errors_for.plain(number, "the node answered without a volunteer")]),
    };
    if let Some(consent) = share {
        let request = pb::SetExchangeConsentRequest {
            volunteer_number,
            consent,
            evidence: "spreadsheet import (同意共享 column)".into(),
        };
        if let Err(status) = exchange.set_exchange_consent(request).await {
            let mut error = errors_for.refused(number, &status);
            for row_error in &mut error {
                row_error.column = errors_for.share_column.clone();
            }
            return RowOutcome::Refused(error);
        }
    }
    if created { RowOutcome::Created } else { RowOutcome::Existing }
}

/// A refused row of a bulk answer as the status the single call would have given (field violations included), so
/// it is reported like one.
fn refusal_status(refusal: pb::RowRefusal) -> Status {
    let violations: Vec<tonic_types::FieldViolation> = refusal
        .violations
        .into_iter()
        .map(|violation| tonic_types::FieldViolation::new(violation.field, violation.description))
        .collect();
    let details = if violations.is_empty() {
        tonic_types::ErrorDetails::new()
    } else {
        tonic_types::ErrorDetails::with_bad_request(violations)
    };
    Status::with_error_details(Code::from_i32(refusal.code), refusal.message, details)
}

/// What a spawned call needs to describe its row's errors (the import itself is borrowed by the loop).
#[derive(Clone)]
struct ErrorContext {
    import: std::sync::Arc<Import>,
    share_column: String,
}

impl ErrorContext {
    fn of(import: &Import) -> ErrorContext {
        let copy = Import {
            kind: import.kind,
            mapping: Mapping { columns: import.mapping.columns.clone() },
            headers: import.headers.clone(),
        };
        let share_column = import.column_of("consent_to_share");
        ErrorContext { import: std::sync::Arc::new(copy), share_column }
    }

    fn refused(&self, row: u64, status: &Status) -> Vec<RowError> {
        refused_row(&self.import, row, status)
    }

    fn plain(&self, row: u64, rule: &str) -> RowError {
        self.import.error(row, "name", rule, "")
    }
}

/// A batch of hours rows of one project: (file row, row).
type Batch = Vec<(u64, pb::ServiceRow)>;

/// Hours: rows of one project in `RecordServiceBulk` batches; a batch refused for some rows is sent again
/// without them (the call is all-or-nothing).
async fn import_hours(
    import: &Import,
    node: &Node,
    reader: &mut SheetReader,
    args: &ImportArgs,
    console: &mut Console<'_>,
    progress: &mut Progress,
) -> Result<Tally, Failure> {
    let mut tally = Tally::default();
    let mut pending: BTreeMap<String, Batch> = BTreeMap::new();
    let mut in_flight: JoinSet<BatchOutcome> = JoinSet::new();
    let batch_rows = args.batch_rows as usize;
    let concurrency = args.concurrency as usize;
    let context = ErrorContext::of(import);
    let absorb = |outcome: BatchOutcome, tally: &mut Tally| {
        tally.created += outcome.created;
        tally.existing += outcome.replayed;
        tally.errors.extend(outcome.errors);
    };
    loop {
        let row = next_row(reader)?;
        let full = match &row {
            Some(row) => {
                tally.rows += 1;
                progress.tick(tally.rows, reader, console);
                match parse_row(import, row) {
                    Ok(Parsed::Hours { project_id, row: service_row }) => {
                        let batch = pending.entry(project_id.clone()).or_default();
                        batch.push((row.number, service_row));
                        (batch.len() >= batch_rows).then_some(project_id)
                    }
                    Ok(_) => None,
                    Err(error) => {
                        tally.errors.push(error);
                        None
                    }
                }
            }
            None => None,
        };
        let ready: Vec<(String, Batch)> = match (&row, full) {
            (None, _) => std::mem::take(&mut pending).into_iter().collect(),
            (Some(_), Some(project_id)) => pending.remove_entry(&project_id).into_iter().collect(),
            (Some(_), None) => Vec::new(),
        };
        for (project_id, batch) in ready {
            let client = node.service_records();
            in_flight.spawn(send_batch(client, context.clone(), project_id, batch));
            while in_flight.len() >= concurrency {
                if let Some(joined) = in_flight.join_next().await {
                    absorb(joined.map_err(|error| Failure::Failed(error.to_string()))?, &mut tally);
                }
            }
        }
        if row.is_none() {
            break;
        }
    }
    while let Some(joined) = in_flight.join_next().await {
        absorb(joined.map_err(|error| Failure::Failed(error.to_string()))?, &mut tally);
    }
    Ok(tally)
}

#[derive(Default)]
struct BatchOutcome {
    created: u64,
    replayed: u64,
    errors: Vec<RowError>,
}

type RecordsClient =
    ecovol_proto::v1::service_record_service_client::ServiceRecordServiceClient<super::connection::Authenticated>;

async fn send_batch(
    mut client: RecordsClient,
    context: ErrorContext,
    project_id: String,
    batch: Batch,
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    let mut batch = batch;
    // Twice at most: once with every row, once without the rows the node named.
    for attempt in 0..2 {
        if batch.is_empty() {
            break;
        }
        let request = pb::RecordServiceBulkRequest {
            project_id: project_id.clone(),
            rows: batch.iter().map(|(_, row)| row.clone()).collect(),
        };
        match client.record_service_bulk(request).await {
            Ok(response) => {
                let response = response.into_inner();
                outcome.replayed += u64::from(response.replayed_count);
                outcome.created += response.records.len() as u64 - u64::from(response.replayed_count);
                return outcome;
            }
            Err(status) => {
                let found = violations(&status);
                let by_row: Vec<(usize, String, String)> = found
                    .iter()
                    .filter_map(|(field, description)| {
                        let rest = field.strip_prefix("rows[")?;
                        let (index, tail) = rest.split_once(']')?;
                        let index: usize = index.parse().ok()?;
                        Some((index, tail.trim_start_matches('.').to_string(), description.clone()))
                    })
                    .filter(|(index, _, _)| *index < batch.len())
                    .collect();
                if attempt == 1 || by_row.is_empty() {
                    // Not about single rows (the project, the caller): every row of the batch is refused for it.
                    let rule = match found.first() {
                        Some((field, description)) => format!("{field}: {description}"),
                        None => format!("{:?}: {}", status.code(), status.message()),
                    };
                    for (row, _) in &batch {
                        outcome.errors.push(context.import.error(*row, "project_id", rule.clone(), ""));
                    }
                    return outcome;
                }
                let mut refused = HashSet::new();
                for (index, field, description) in by_row {
                    refused.insert(index);
                    let server_field = format!("rows[{index}].{field}");
                    outcome.errors.push(context.import.error(batch[index].0, &field, description, &server_field));
                }
                batch = batch
                    .into_iter()
                    .enumerate()
                    .filter(|(index, _)| !refused.contains(index))
                    .map(|(_, row)| row)
                    .collect();
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn chinese_and_english_headers_map_to_fields() {
        let mapping = Mapping::build(
            VOLUNTEER_FIELDS,
            &headers(&["序号", "姓名", "身份证号码", "Phone", "Home Division Code*"]),
            None,
        )
        .expect("maps");
        assert_eq!(mapping.columns.get("name"), Some(&1));
        assert_eq!(mapping.columns.get("identity_number"), Some(&2));
        assert_eq!(mapping.columns.get("phone"), Some(&3));
        assert_eq!(mapping.columns.get("home_division_code"), Some(&4));
        assert_eq!(mapping.columns.get("skills"), None);
    }

    #[test]
    fn an_override_wins_and_a_wrong_one_is_a_usage_error() {
        let names = headers(&["姓名", "联系方式"]);
        let mapping = Mapping::build(VOLUNTEER_FIELDS, &names, Some("phone=联系方式")).expect("maps");
        assert_eq!(mapping.columns.get("phone"), Some(&1));
        assert!(Mapping::build(VOLUNTEER_FIELDS, &names, Some("phone=微信")).is_err());
        assert!(Mapping::build(VOLUNTEER_FIELDS, &names, Some("wechat=联系方式")).is_err());
        assert!(Mapping::build(VOLUNTEER_FIELDS, &names, Some("phone")).is_err());
    }

    #[test]
    fn office_times_are_china_time() {
        let time = parse_time("2026/03/05 09:30").expect("parses");
        assert_eq!(time.to_utc().to_rfc3339(), "2026-03-05T01:30:00+00:00");
        assert!(parse_time("2026-03-05 09:30:15").is_some());
        assert!(parse_time("2026-03-05T09:30:00+08:00").is_some());
        assert!(parse_time("昨天").is_none());
    }

    #[test]
    fn the_report_sits_beside_the_input() {
        assert_eq!(report_path(Path::new("/tmp/名册.xlsx")), PathBuf::from("/tmp/名册.xlsx.errors.csv"));
    }
}
