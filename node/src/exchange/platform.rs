//! The adapter to the national volunteer-service platform. The platform's endpoint is changing (a new coordination
//! platform under the social work department replaces the old MCA site, DOMAIN.md), so the export speaks to a
//! `NationalPlatform`, and the transport is one implementation of it: today `FileDrop`, which writes the documented
//! files (docs/EXCHANGE.md) into a folder for the office to upload; an HTTP client can be added beside it once the
//! new platform publishes its interface, without touching the export.
//!
//! The unified data items are named here once, as table columns (`VOLUNTEER_ITEMS`, …): the stable key is the
//! field name in JSON Lines and in the CSV header, the Chinese name is the standard's data item.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ecovol_proto::v1 as pb;

use super::ExportCounts;
use super::table::{Cell, Column, Format, Language, TableError, TableWriter};
use crate::wire::from_timestamp;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// One batch of items for the platform (as the node streams them).
pub type ExchangeBatch = pb::ExportExchangeResponse;

/// A transport to the national platform.
pub trait NationalPlatform {
    /// Delivers one batch. Items carry stable ids: delivering an item again replaces it at the platform.
    fn deliver(&mut self, batch: &ExchangeBatch) -> Result<(), PlatformError>;

    /// Called once after the last batch, with the watermark to pass as `since` next time.
    fn finish(&mut self, watermark: DateTime<Utc>, counts: ExportCounts) -> Result<(), PlatformError>;
}

/// 志愿者 (volunteer) items.
pub const VOLUNTEER_ITEMS: [Column; 15] = [
    Column::new("volunteer_number", "志愿者编号", "Volunteer number"),
    Column::new("consent", "同意共享", "Consent to sharing"),
    Column::new("name", "姓名", "Name"),
    Column::new("id_type", "证件类型", "ID type"),
    Column::new("id_number", "证件号码", "ID number"),
    Column::new("gender", "性别", "Gender"),
    Column::new("birth_date", "出生日期", "Birth date"),
    Column::new("political_status", "政治面貌", "Political status"),
    Column::new("phone", "联系电话", "Phone"),
    Column::new("home_division_code", "所在地行政区划代码", "Home division code"),
    Column::new("skills", "服务技能", "Skills"),
    Column::new("registered_by_division_code", "注册机构区划代码", "Registered by (division code)"),
    Column::new("registered_at", "注册时间", "Registered at"),
    Column::new("status", "状态", "Status"),
    Column::new("changed_at", "变更时间", "Changed at"),
];

/// 志愿服务组织 (team) items.
pub const TEAM_ITEMS: [Column; 11] = [
    Column::new("team_id", "组织编号", "Team id"),
    Column::new("name", "组织名称", "Name"),
    Column::new("credit_code", "统一社会信用代码", "Unified social credit code"),
    Column::new("kind", "组织类型", "Kind"),
    Column::new("hub", "枢纽型组织", "Hub-type"),
    Column::new("support", "支持型组织", "Support-type"),
    Column::new("parent_team_id", "上级组织编号", "Parent team id"),
    Column::new("member_count", "成员人数", "Members"),
    Column::new("division_code", "所在地行政区划代码", "Division code"),
    Column::new("created_at", "成立时间", "Created at"),
    Column::new("changed_at", "变更时间", "Changed at"),
];

/// 志愿服务项目 (project) items.
pub const PROJECT_ITEMS: [Column; 12] = [
    Column::new("project_id", "项目编号", "Project id"),
    Column::new("title", "项目名称", "Title"),
    Column::new("activity_kind", "服务类别", "Activity kind"),
    Column::new("organising_team_id", "发布组织编号", "Organising team id"),
    Column::new("start_at", "开始时间", "Starts at"),
    Column::new("end_at", "结束时间", "Ends at"),
    Column::new("site_id", "服务地点", "Site id"),
    Column::new("capacity", "招募人数", "Capacity"),
    Column::new("status", "项目状态", "Status"),
    Column::new("contact", "联系方式", "Contact"),
    Column::new("division_code", "所在地行政区划代码", "Division code"),
    Column::new("changed_at", "变更时间", "Changed at"),
];

/// 志愿服务记录 (service record) items.
pub const SERVICE_RECORD_ITEMS: [Column; 15] = [
    Column::new("record_id", "服务记录编号", "Record id"),
    Column::new("volunteer_number", "志愿者编号", "Volunteer number"),
    Column::new("project_id", "项目编号", "Project id"),
    Column::new("organising_team_id", "组织编号", "Organising team id"),
    Column::new("activity_kind", "服务类别", "Activity kind"),
    Column::new("start_time", "服务开始时间", "Start time"),
    Column::new("end_time", "服务结束时间", "End time"),
    Column::new("hours", "服务时长（小时）", "Hours"),
    Column::new("content", "服务内容", "Content"),
    Column::new("state", "记录状态", "State"),
    Column::new("recorded_by", "记录人", "Recorded by"),
    Column::new("confirmed_by", "确认人", "Confirmed by"),
    Column::new("confirmed_at", "确认时间", "Confirmed at"),
    Column::new("division_code", "所在地行政区划代码", "Division code"),
    Column::new("changed_at", "变更时间", "Changed at"),
];

fn time(value: Option<&prost_types::Timestamp>) -> Cell {
    Cell::time(value.and_then(from_timestamp))
}

pub fn volunteer_row(item: &pb::ExchangeVolunteer) -> Vec<Cell> {
    vec![
        Cell::text(&item.volunteer_number),
        Cell::Bool(item.consent),
        Cell::text(&item.name),
        Cell::text(&item.id_type),
        Cell::text(&item.id_number),
        Cell::text(&item.gender),
        Cell::text(&item.birth_date),
        Cell::text(&item.political_status),
        Cell::text(&item.phone),
        Cell::text(&item.home_division_code),
        Cell::text(item.skills.join(";")),
        Cell::text(&item.registered_by_division_code),
        time(item.registered_at.as_ref()),
        Cell::text(&item.status),
        time(item.changed_at.as_ref()),
    ]
}

pub fn team_row(item: &pb::ExchangeTeam) -> Vec<Cell> {
    vec![
        Cell::text(&item.team_id),
        Cell::text(&item.name),
        Cell::text(&item.credit_code),
        Cell::text(&item.kind),
        Cell::Bool(item.hub),
        Cell::Bool(item.support),
        Cell::text(&item.parent_team_id),
        Cell::Integer(i64::from(item.member_count)),
        Cell::text(&item.division_code),
        time(item.created_at.as_ref()),
        time(item.changed_at.as_ref()),
    ]
}

pub fn project_row(item: &pb::ExchangeProject) -> Vec<Cell> {
    vec![
        Cell::text(&item.project_id),
        Cell::text(&item.title),
        Cell::text(&item.activity_kind),
        Cell::text(&item.organising_team_id),
        time(item.start_at.as_ref()),
        time(item.end_at.as_ref()),
        Cell::text(&item.site_id),
        Cell::Integer(i64::from(item.capacity)),
        Cell::text(&item.status),
        Cell::text(&item.contact),
        Cell::text(&item.division_code),
        time(item.changed_at.as_ref()),
    ]
}

pub fn service_record_row(item: &pb::ExchangeServiceRecord) -> Vec<Cell> {
    vec![
        Cell::text(&item.record_id),
        Cell::text(&item.volunteer_number),
        Cell::text(&item.project_id),
        Cell::text(&item.organising_team_id),
        Cell::text(&item.activity_kind),
        time(item.start_time.as_ref()),
        time(item.end_time.as_ref()),
        Cell::Hours(u64::from(item.hours_x100)),
        Cell::text(&item.content),
        Cell::text(&item.state),
        Cell::text(&item.recorded_by),
        Cell::text(&item.confirmed_by),
        time(item.confirmed_at.as_ref()),
        Cell::text(&item.division_code),
        time(item.changed_at.as_ref()),
    ]
}

/// The file names of one export, per kind.
pub const FILE_STEMS: [&str; 4] = ["volunteers", "teams", "projects", "service_records"];

/// The file adapter: one file per kind in a folder (`volunteers.jsonl`, …, or `.csv`), and `manifest.json` with
/// the window, the counts and the watermark, written last: a folder without a manifest is an export that did not
/// finish and must not be uploaded.
pub struct FileDrop {
    dir: PathBuf,
    format: Format,
    since: Option<DateTime<Utc>>,
    writers: [Option<TableWriter>; 4],
}

impl FileDrop {
    /// Creates `dir` if needed; refuses a folder that holds a previous export's manifest (files are never mixed).
    pub fn create(dir: &Path, format: Format, since: Option<DateTime<Utc>>) -> Result<FileDrop, PlatformError> {
        let io = |source| PlatformError::Io { path: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        if dir.join("manifest.json").exists() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "holds the files of an earlier export (manifest.json): choose a new folder for each export",
            )));
        }
        let format = if format == Format::Xlsx { Format::Csv } else { format };
        let columns: [&[Column]; 4] = [&VOLUNTEER_ITEMS, &TEAM_ITEMS, &PROJECT_ITEMS, &SERVICE_RECORD_ITEMS];
        let mut writers: [Option<TableWriter>; 4] = Default::default();
        for ((writer, stem), columns) in writers.iter_mut().zip(FILE_STEMS).zip(columns) {
            let path = dir.join(format!("{stem}.{}", format.extension()));
            // The CSV header is the items' stable keys, as in JSON Lines: the files are for a machine.
            let keyed: Vec<Column> =
                columns.iter().map(|column| Column::new(column.key, column.key, column.key)).collect();
            *writer = Some(TableWriter::create(&path, format, &keyed, Language::En, stem)?);
        }
        Ok(FileDrop { dir: dir.to_path_buf(), format, since, writers })
    }

    fn write(&mut self, index: usize, row: Vec<Cell>) -> Result<(), PlatformError> {
        if let Some(writer) = &mut self.writers[index] {
            writer.write_row(&row)?;
        }
        Ok(())
    }
}

impl NationalPlatform for FileDrop {
    fn deliver(&mut self, batch: &ExchangeBatch) -> Result<(), PlatformError> {
        for item in &batch.volunteers {
            self.write(0, volunteer_row(item))?;
        }
        for item in &batch.teams {
            self.write(1, team_row(item))?;
        }
        for item in &batch.projects {
            self.write(2, project_row(item))?;
        }
        for item in &batch.service_records {
            self.write(3, service_record_row(item))?;
        }
        Ok(())
    }

    fn finish(&mut self, watermark: DateTime<Utc>, counts: ExportCounts) -> Result<(), PlatformError> {
        let mut files = Vec::new();
        for writer in self.writers.iter_mut().filter_map(Option::take) {
            let path = writer.finish()?;
            files.push(path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default());
        }
        let iso = |time: DateTime<Utc>| time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let manifest = serde_json::json!({
            "format": self.format.extension(),
            "since": self.since.map(iso),
            "watermark": iso(watermark),
            "counts": {
                "volunteers": counts.volunteers,
                "teams": counts.teams,
                "projects": counts.projects,
                "service_records": counts.service_records,
            },
            "files": files,
        });
        let path = self.dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
        std::fs::write(&path, text + "\n")
            .map_err(|source| PlatformError::Io { path: path.display().to_string(), source })
    }
}
