//! `ecovol export volunteers|teams|projects|hours|stats|plans --format xlsx|csv --out FILE`: rosters, hours,
//! statistics and plan progress as the office's spreadsheets, with Chinese headers (`--lang en` for English).
//!
//! Everything is read through the office API with the caller's own rights (a team manager exports their team's
//! members, staff the whole register), page by page; identity numbers never appear (they leave the node only in
//! the audited national-platform export, `ecovol exchange export`). The tables are built by the `*_table` and
//! `*_row` functions below from the wire messages, so a web console can offer the same downloads.

use std::path::PathBuf;

use chrono::Datelike;
use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node};
use super::console::Console;
use super::failure::Failure;
use crate::exchange::table::{Cell, Column, Format, Language, TableWriter};
use crate::wire::from_timestamp;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportKind {
    /// The register of volunteers (志愿者名册).
    Volunteers,
    /// Teams (志愿服务组织).
    Teams,
    /// Projects (志愿服务项目).
    Projects,
    /// Service records of every project (服务时长记录).
    Hours,
    /// This node's statistics by month and activity kind (统计).
    Stats,
    /// Plan progress per target and region (工作计划进度).
    Plans,
}

/// The spreadsheet format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SheetFormat {
    /// An Excel workbook.
    Xlsx,
    /// CSV, UTF-8 with a byte-order mark (opens in Excel with Chinese intact).
    Csv,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// What to export.
    #[arg(value_enum)]
    pub kind: ExportKind,

    /// The file format.
    #[arg(long, value_enum, default_value_t = SheetFormat::Xlsx)]
    pub format: SheetFormat,

    /// The file to write (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// The language of headers and values.
    #[arg(long, value_enum, default_value_t = Language::Zh)]
    pub lang: Language,

    /// Stats: the first day (YYYY-MM-DD; default: 1 January of this year, China time).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,

    /// Stats: the last day (YYYY-MM-DD; default: today, China time).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
}

/// Items asked for per page.
const PAGE_SIZE: i32 = 500;

/// Runs `ecovol export`.
pub async fn run(args: ExportArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let format = match args.format {
        SheetFormat::Xlsx => Format::Xlsx,
        SheetFormat::Csv => Format::Csv,
    };
    let lang = args.lang;
    let (columns, sheet): (&[Column], &str) = match args.kind {
        ExportKind::Volunteers => (&VOLUNTEER_COLUMNS, "volunteers"),
        ExportKind::Teams => (&TEAM_COLUMNS, "teams"),
        ExportKind::Projects => (&PROJECT_COLUMNS, "projects"),
        ExportKind::Hours => (&HOURS_COLUMNS, "hours"),
        ExportKind::Stats => (&STATS_COLUMNS, "stats"),
        ExportKind::Plans => (&PLAN_COLUMNS, "plans"),
    };
    let table_error = |error: crate::exchange::table::TableError| Failure::Failed(error.to_string());
    let mut writer = TableWriter::create(&args.out, format, columns, lang, sheet).map_err(table_error)?;
    match args.kind {
        ExportKind::Volunteers => {
            let mut token = String::new();
            loop {
                let request = pb::SearchVolunteersRequest {
                    include_inactive: true,
                    page_size: PAGE_SIZE,
                    page_token: token.clone(),
                    ..Default::default()
                };
                let page = node.volunteers().search_volunteers(request).await?.into_inner();
                for volunteer in &page.volunteers {
                    writer.write_row(&volunteer_row(volunteer, lang)).map_err(table_error)?;
                }
                if !next(&mut token, page.next_page_token)? {
                    break;
                }
            }
        }
        ExportKind::Teams => {
            let mut token = String::new();
            loop {
                let request =
                    pb::ListTeamsRequest { page_size: PAGE_SIZE, page_token: token.clone(), ..Default::default() };
                let page = node.teams().list_teams(request).await?.into_inner();
                for team in &page.teams {
                    writer.write_row(&team_row(team, lang)).map_err(table_error)?;
                }
                if !next(&mut token, page.next_page_token)? {
                    break;
                }
            }
        }
        ExportKind::Projects | ExportKind::Hours => {
            let projects = all_projects(&node).await?;
            for project in &projects {
                if args.kind == ExportKind::Projects {
                    writer.write_row(&project_row(project, lang)).map_err(table_error)?;
                    continue;
                }
                let mut token = String::new();
                loop {
                    let request = pb::ListServiceRecordsRequest {
                        project_id: project.project_id.clone(),
                        page_size: PAGE_SIZE,
                        page_token: token.clone(),
                        ..Default::default()
                    };
                    let page = node.service_records().list_service_records(request).await?.into_inner();
                    for record in &page.records {
                        writer.write_row(&hours_row(record, lang)).map_err(table_error)?;
                    }
                    if !next(&mut token, page.next_page_token)? {
                        break;
                    }
                }
            }
        }
        ExportKind::Stats => {
            let today = crate::wire::today_china();
            let year_start = today.with_ordinal(1).unwrap_or(today);
            let request = pb::GetStatsRequest {
                start_date: args.from.clone().unwrap_or_else(|| year_start.to_string()),
                end_date: args.to.clone().unwrap_or_else(|| today.to_string()),
            };
            let stats = node.stats().get_stats(request).await?.into_inner();
            for row in stats_rows(&stats, lang) {
                writer.write_row(&row).map_err(table_error)?;
            }
        }
        ExportKind::Plans => {
            let plans = node.plans().list_plans(pb::ListPlansRequest {}).await?.into_inner().plans;
            for plan in plans {
                let request = pb::PlanRequest { plan_id: plan.plan_id.clone() };
                let progress = node.plans().get_plan(request).await?.into_inner();
                for row in plan_rows(&plan, &progress, lang) {
                    writer.write_row(&row).map_err(table_error)?;
                }
            }
        }
    }
    let rows = writer.rows_written();
    let path = writer.finish().map_err(table_error)?;
    if console.is_json() {
        console.json(&serde_json::json!({ "file": path.display().to_string(), "rows": rows }));
    } else {
        console.print(&format!("{rows} rows written to {}\n", path.display()));
    }
    Ok(())
}

/// Moves `token` to the next page; false on the last page.
fn next(token: &mut String, next_page_token: String) -> Result<bool, Failure> {
    if next_page_token.is_empty() {
        return Ok(false);
    }
    if next_page_token == *token {
        return Err(Failure::Failed(format!("the node returned the same page token twice ({next_page_token})")));
    }
    *token = next_page_token;
    Ok(true)
}

async fn all_projects(node: &Node) -> Result<Vec<pb::Project>, Failure> {
    let mut projects = Vec::new();
    let mut token = String::new();
    loop {
        let request =
            pb::SearchProjectsRequest { page_size: PAGE_SIZE, page_token: token.clone(), ..Default::default() };
        let page = node.projects().search_projects(request).await?.into_inner();
        projects.extend(page.projects);
        if !next(&mut token, page.next_page_token)? {
            return Ok(projects);
        }
    }
}

/// A wire enum's value in the export's language: Chinese from `zh` (by the English name), else the English name
/// (the proto name without its prefix, lowercase).
fn label(proto_name: Option<&str>, prefix: &str, zh: &[(&str, &str)], lang: Language) -> Cell {
    let Some(english) = proto_name.map(|name| name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase()) else {
        return Cell::Empty;
    };
    if english == "unspecified" {
        return Cell::Empty;
    }
    match lang {
        Language::Zh => Cell::text(zh.iter().find(|(en, _)| *en == english).map(|(_, zh)| *zh).unwrap_or(&english)),
        Language::En => Cell::text(english),
    }
}

const GENDER_ZH: &[(&str, &str)] = &[("male", "男"), ("female", "女")];
const POLITICAL_ZH: &[(&str, &str)] =
    &[("party_member", "中共党员"), ("league_member", "共青团员"), ("masses", "群众")];
const VOLUNTEER_STATUS_ZH: &[(&str, &str)] = &[("active", "在册"), ("inactive", "注销")];
const TEAM_KIND_ZH: &[(&str, &str)] = &[
    ("agency", "机关"),
    ("enterprise", "企业"),
    ("public_institution", "事业单位"),
    ("peoples_organisation", "人民团体"),
    ("social_organisation", "社会组织"),
    ("university_club", "高校社团"),
    ("other", "其他"),
];
const ACTIVITY_ZH: &[(&str, &str)] = &[
    ("theory_promotion", "理论宣讲"),
    ("publicity_education", "宣传教育与科普"),
    ("social_supervision", "社会监督"),
    ("green_low_carbon", "绿色低碳实践"),
    ("international_exchange", "国际交流"),
];
const PROJECT_STATUS_ZH: &[(&str, &str)] =
    &[("draft", "草稿"), ("published", "已发布"), ("closed", "已结束"), ("cancelled", "已取消")];
const RECORD_STATE_ZH: &[(&str, &str)] = &[("recorded", "待确认"), ("confirmed", "已确认"), ("revoked", "已撤销")];
const TARGET_STATUS_ZH: &[(&str, &str)] =
    &[("on_track", "进度正常"), ("behind", "滞后"), ("overdue", "逾期"), ("done", "已完成")];

fn time(value: Option<&prost_types::Timestamp>) -> Cell {
    Cell::time(value.and_then(from_timestamp))
}

fn date(text: &str) -> Cell {
    crate::wire::parse_date(text).map(Cell::Date).unwrap_or_else(|| Cell::text(text))
}

pub const VOLUNTEER_COLUMNS: [Column; 11] = [
    Column::new("volunteer_number", "志愿者编号", "Volunteer number"),
    Column::new("name", "姓名", "Name"),
    Column::new("phone", "手机号", "Phone"),
    Column::new("gender", "性别", "Gender"),
    Column::new("birth_date", "出生日期", "Birth date"),
    Column::new("political_status", "政治面貌", "Political status"),
    Column::new("skills", "技能", "Skills"),
    Column::new("home_division_code", "所在地区划代码", "Home division code"),
    Column::new("status", "状态", "Status"),
    Column::new("team_ids", "所属队伍", "Teams"),
    Column::new("registered_at", "注册时间", "Registered at"),
];

pub fn volunteer_row(volunteer: &pb::Volunteer, lang: Language) -> Vec<Cell> {
    vec![
        Cell::text(&volunteer.volunteer_number),
        Cell::text(&volunteer.name),
        Cell::text(&volunteer.phone),
        label(pb::Gender::try_from(volunteer.gender).ok().map(|v| v.as_str_name()), "GENDER_", GENDER_ZH, lang),
        date(&volunteer.birth_date),
        label(
            pb::PoliticalStatus::try_from(volunteer.political_status).ok().map(|v| v.as_str_name()),
            "POLITICAL_STATUS_",
            POLITICAL_ZH,
            lang,
        ),
        Cell::text(volunteer.skills.join(";")),
        Cell::text(&volunteer.home_division_code),
        label(
            pb::VolunteerStatus::try_from(volunteer.status).ok().map(|v| v.as_str_name()),
            "VOLUNTEER_STATUS_",
            VOLUNTEER_STATUS_ZH,
            lang,
        ),
        Cell::text(volunteer.team_ids.join(";")),
        time(volunteer.registered_at.as_ref()),
    ]
}

pub const TEAM_COLUMNS: [Column; 9] = [
    Column::new("team_id", "组织编号", "Team id"),
    Column::new("name", "组织名称", "Name"),
    Column::new("credit_code", "统一社会信用代码", "Credit code"),
    Column::new("kind", "组织类型", "Kind"),
    Column::new("hub", "枢纽型", "Hub"),
    Column::new("support", "支持型", "Support"),
    Column::new("parent_team_id", "上级组织编号", "Parent team id"),
    Column::new("active_member_count", "成员人数", "Members"),
    Column::new("created_at", "成立时间", "Created at"),
];

pub fn team_row(team: &pb::Team, lang: Language) -> Vec<Cell> {
    vec![
        Cell::text(&team.team_id),
        Cell::text(&team.name),
        Cell::text(&team.credit_code),
        label(pb::TeamKind::try_from(team.kind).ok().map(|v| v.as_str_name()), "TEAM_KIND_", TEAM_KIND_ZH, lang),
        Cell::Bool(team.hub),
        Cell::Bool(team.support),
        Cell::text(&team.parent_team_id),
        Cell::Integer(i64::from(team.active_member_count)),
        time(team.created_at.as_ref()),
    ]
}

pub const PROJECT_COLUMNS: [Column; 11] = [
    Column::new("project_id", "项目编号", "Project id"),
    Column::new("title", "项目名称", "Title"),
    Column::new("activity_kind", "活动类别", "Activity kind"),
    Column::new("organising_team_id", "组织编号", "Organising team id"),
    Column::new("start_at", "开始时间", "Starts at"),
    Column::new("end_at", "结束时间", "Ends at"),
    Column::new("capacity", "招募人数", "Capacity"),
    Column::new("accepted_count", "已录取", "Accepted"),
    Column::new("waitlisted_count", "候补", "Waitlisted"),
    Column::new("status", "状态", "Status"),
    Column::new("contact", "联系方式", "Contact"),
];

pub fn project_row(project: &pb::Project, lang: Language) -> Vec<Cell> {
    vec![
        Cell::text(&project.project_id),
        Cell::text(&project.title),
        label(
            pb::ActivityKind::try_from(project.activity_kind).ok().map(|v| v.as_str_name()),
            "ACTIVITY_KIND_",
            ACTIVITY_ZH,
            lang,
        ),
        Cell::text(&project.organising_team_id),
        time(project.start_at.as_ref()),
        time(project.end_at.as_ref()),
        Cell::Integer(i64::from(project.capacity)),
        Cell::Integer(i64::from(project.accepted_count)),
        Cell::Integer(i64::from(project.waitlisted_count)),
        label(
            pb::ProjectStatus::try_from(project.status).ok().map(|v| v.as_str_name()),
            "PROJECT_STATUS_",
            PROJECT_STATUS_ZH,
            lang,
        ),
        Cell::text(&project.contact),
    ]
}

pub const HOURS_COLUMNS: [Column; 11] = [
    Column::new("record_id", "记录编号", "Record id"),
    Column::new("project_id", "项目编号", "Project id"),
    Column::new("volunteer_number", "志愿者编号", "Volunteer number"),
    Column::new("start_time", "开始时间", "Start time"),
    Column::new("end_time", "结束时间", "End time"),
    Column::new("hours", "服务时长（小时）", "Hours"),
    Column::new("content", "服务内容", "Content"),
    Column::new("state", "状态", "State"),
    Column::new("walk_in", "现场登记", "Walk-in"),
    Column::new("recorded_by", "记录人", "Recorded by"),
    Column::new("confirmed_at", "确认时间", "Confirmed at"),
];

pub fn hours_row(record: &pb::ServiceRecord, lang: Language) -> Vec<Cell> {
    vec![
        Cell::text(&record.record_id),
        Cell::text(&record.project_id),
        Cell::text(&record.volunteer_number),
        time(record.start_time.as_ref()),
        time(record.end_time.as_ref()),
        Cell::Hours(u64::from(record.hours_x100)),
        Cell::text(&record.content),
        label(
            pb::ServiceRecordState::try_from(record.state).ok().map(|v| v.as_str_name()),
            "SERVICE_RECORD_STATE_",
            RECORD_STATE_ZH,
            lang,
        ),
        Cell::Bool(record.walk_in),
        Cell::text(&record.recorded_by),
        time(record.confirmed_at.as_ref()),
    ]
}

pub const STATS_COLUMNS: [Column; 6] = [
    Column::new("month", "月份", "Month"),
    Column::new("activity_kind", "活动类别", "Activity kind"),
    Column::new("projects_published", "发布项目数", "Projects published"),
    Column::new("sign_ups_accepted", "录取报名数", "Sign-ups accepted"),
    Column::new("confirmed_hours", "确认服务时长（小时）", "Confirmed hours"),
    Column::new("active_volunteers", "活跃志愿者", "Active volunteers"),
];

/// One row per month and activity kind, then a total row.
pub fn stats_rows(stats: &pb::GetStatsResponse, lang: Language) -> Vec<Vec<Cell>> {
    let count = |value: u64| Cell::Integer(i64::try_from(value).unwrap_or(i64::MAX));
    let mut rows: Vec<Vec<Cell>> = stats
        .month_kinds
        .iter()
        .map(|cell| {
            vec![
                Cell::text(&cell.month),
                label(
                    pb::ActivityKind::try_from(cell.activity_kind).ok().map(|v| v.as_str_name()),
                    "ACTIVITY_KIND_",
                    ACTIVITY_ZH,
                    lang,
                ),
                count(cell.projects_published),
                count(cell.sign_ups_accepted),
                Cell::Hours(cell.confirmed_hours_x100),
                count(cell.active_volunteers),
            ]
        })
        .collect();
    if let Some(totals) = &stats.totals {
        rows.push(vec![
            Cell::text(match lang {
                Language::Zh => "合计",
                Language::En => "total",
            }),
            Cell::Empty,
            count(totals.projects_published),
            count(totals.sign_ups_accepted),
            Cell::Hours(totals.confirmed_hours_x100),
            count(totals.active_volunteers),
        ]);
    }
    rows
}

pub const PLAN_COLUMNS: [Column; 9] = [
    Column::new("plan_id", "计划编号", "Plan id"),
    Column::new("title", "计划名称", "Title"),
    Column::new("target_id", "指标编号", "Target id"),
    Column::new("metric", "指标", "Metric"),
    Column::new("region", "地区", "Region"),
    Column::new("target", "目标值", "Target"),
    Column::new("actual", "完成值", "Actual"),
    Column::new("percent", "完成率（%）", "Percent"),
    Column::new("status", "状态", "Status"),
];

/// One row per target and region of a plan's progress.
pub fn plan_rows(plan: &pb::Plan, progress: &pb::PlanResponse, lang: Language) -> Vec<Vec<Cell>> {
    progress
        .targets
        .iter()
        .map(|target| {
            vec![
                Cell::text(&plan.plan_id),
                Cell::text(&plan.title),
                Cell::text(&target.target_id),
                label(pb::PlanMetric::try_from(target.metric).ok().map(|v| v.as_str_name()), "PLAN_METRIC_", &[], lang),
                Cell::text(&target.region),
                Cell::Integer(i64::try_from(target.target).unwrap_or(i64::MAX)),
                Cell::Integer(i64::try_from(target.actual).unwrap_or(i64::MAX)),
                Cell::Integer(i64::from(target.percent)),
                label(
                    pb::TargetStatus::try_from(target.status).ok().map(|v| v.as_str_name()),
                    "TARGET_STATUS_",
                    TARGET_STATUS_ZH,
                    lang,
                ),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_are_chinese_by_default() {
        let name = Some("TEAM_KIND_SOCIAL_ORGANISATION");
        assert_eq!(label(name, "TEAM_KIND_", TEAM_KIND_ZH, Language::Zh), Cell::text("社会组织"));
        assert_eq!(label(name, "TEAM_KIND_", TEAM_KIND_ZH, Language::En), Cell::text("social_organisation"));
        assert_eq!(label(Some("TEAM_KIND_UNSPECIFIED"), "TEAM_KIND_", TEAM_KIND_ZH, Language::Zh), Cell::Empty);
    }

    #[test]
    fn every_row_fills_every_column() {
        let lang = Language::Zh;
        assert_eq!(volunteer_row(&pb::Volunteer::default(), lang).len(), VOLUNTEER_COLUMNS.len());
        assert_eq!(team_row(&pb::Team::default(), lang).len(), TEAM_COLUMNS.len());
        assert_eq!(project_row(&pb::Project::default(), lang).len(), PROJECT_COLUMNS.len());
        assert_eq!(hours_row(&pb::ServiceRecord::default(), lang).len(), HOURS_COLUMNS.len());
        let stats = pb::GetStatsResponse { totals: Some(Default::default()), ..Default::default() };
        assert!(stats_rows(&stats, lang).iter().all(|row| row.len() == STATS_COLUMNS.len()));
        let progress = pb::PlanResponse { targets: vec![Default::default()], ..Default::default() };
        assert!(plan_rows(&pb::Plan::default(), &progress, lang).iter().all(|row| row.len() == PLAN_COLUMNS.len()));
    }
}
