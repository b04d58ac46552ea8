//! `ecovol stats`: the node's statistics (`StatsService`) as a month × activity-kind table with totals, and
//! `ecovol stats region`: the rolled-up statistics of a region, broken down by its parts, with how fresh each is.

use chrono::NaiveDate;
use ecovol_proto::v1 as pb;
use serde_json::json;

use super::connection::{ConnectionArgs, Node};
use super::console::{Console, Record, render_record, render_table, timestamp};
use super::failure::Failure;
use super::project::printed;
use super::vocabulary::level_name;

/// Arguments of `ecovol stats`: the node's own statistics over a range, or a subcommand.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct StatsArgs {
    #[command(subcommand)]
    pub command: Option<StatsCommand>,

    /// First day of the range (YYYY-MM-DD, China time), inclusive.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date, required = true)]
    pub from: Option<NaiveDate>,

    /// Last day of the range (YYYY-MM-DD, China time), inclusive; at most five years after --from.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date, required = true)]
    pub to: Option<NaiveDate>,
}

/// Statistics beyond this node's own.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StatsCommand {
    /// Rolled-up statistics of a region of this node's territory (staff, auditors): totals, one line per part
    /// (the region's own office and each area directly below it, with how fresh its figures are), and months.
    Region(RegionArgs),
}

/// Arguments of `ecovol stats region`.
#[derive(Debug, Clone, clap::Args)]
pub struct RegionArgs {
    /// Division code of the region: this node's own (the default), a child's, or any place below it.
    #[arg(long, value_name = "CODE")]
    pub region: Option<String>,

    /// First day of the range (YYYY-MM-DD, China time); regions are counted in whole months, so the range starts
    /// on the first day of this day's month.
    #[arg(long, visible_alias = "from", value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub start: NaiveDate,

    /// Last day of the range (YYYY-MM-DD, China time); the range ends on the last day of this day's month.
    #[arg(long, visible_alias = "to", value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub end: NaiveDate,
}

/// A `YYYY-MM-DD` date on the command line.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    crate::wire::parse_date(text).ok_or_else(|| format!("`{text}` is not a date YYYY-MM-DD"))
}

/// Hundredths of an hour as text: 1225 → "12.25".
pub fn hours(hours_x100: u64) -> String {
    format!("{}.{:02}", hours_x100 / 100, hours_x100 % 100)
}

fn kind_name(value: i32) -> String {
    printed(value, pb::ActivityKind::try_from(value).ok().map(|kind| kind.as_str_name()), "ACTIVITY_KIND_")
        .unwrap_or_else(|| "-".into())
}

/// The average of exact ratings as text with two decimals, rounded half up ("-" without ratings).
fn average_rating(rating_sum: u64, rating_count: u64) -> String {
    if rating_count == 0 {
        return String::from("-");
    }
    hours((rating_sum * 200 + rating_count) / (2 * rating_count))
}

fn star_distribution(stars: &[pb::StarCount]) -> serde_json::Value {
    let stars: serde_json::Map<String, serde_json::Value> =
        stars.iter().map(|count| (count.stars.to_string(), json!(count.volunteers))).collect();
    serde_json::Value::Object(stars)
}

fn month_records(months: &[pb::MonthStats]) -> Vec<Record> {
    months
        .iter()
        .map(|row| {
            Record::new()
                .field("month", row.month.clone())
                .field("newly_registered_volunteers", row.newly_registered_volunteers)
                .field("active_volunteers", row.active_volunteers)
                .field("trainings", row.trainings)
                .field("trainees", row.trainees)
        })
        .collect()
}

fn month_kind_records(month_kinds: &[pb::MonthKindStats]) -> Vec<Record> {
    month_kinds
        .iter()
        .map(|row| {
            Record::new()
                .field("month", row.month.clone())
                .field("kind", kind_name(row.activity_kind))
                .field("projects_published", row.projects_published)
                .field("sign_ups_accepted", row.sign_ups_accepted)
                .field("confirmed_hours", hours(row.confirmed_hours_x100))
                .field("active_volunteers", row.active_volunteers)
        })
        .collect()
}

/// `records` as a table of `columns` (field names, upper-cased as headers).
fn records_table(records: &[Record], columns: &[&str]) -> String {
    let headers: Vec<String> = columns.iter().map(|column| column.to_ascii_uppercase()).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            columns
                .iter()
                .map(|column| match record.get(column) {
                    Some(serde_json::Value::String(text)) => text.clone(),
                    Some(serde_json::Value::Null) | None => "-".into(),
                    Some(serde_json::Value::Bool(flag)) => if *flag { "yes" } else { "no" }.into(),
                    Some(other) => other.to_string(),
                })
                .collect()
        })
        .collect();
    render_table(&headers, &rows)
}

const MONTH_COLUMNS: [&str; 5] = ["month", "newly_registered_volunteers", "active_volunteers", "trainings", "trainees"];
const MONTH_KIND_COLUMNS: [&str; 6] =
    ["month", "kind", "projects_published", "sign_ups_accepted", "confirmed_hours", "active_volunteers"];

/// The month × kind table, then the month table (nothing for an empty range).
fn render_months(month_kinds: &[Record], months: &[Record]) -> String {
    let mut text = String::new();
    if month_kinds.is_empty() {
        text.push_str("(no activity by kind in this range)\n");
    } else {
        text.push_str(&records_table(month_kinds, &MONTH_KIND_COLUMNS));
    }
    text.push('\n');
    if !months.is_empty() {
        text.push_str(&records_table(months, &MONTH_COLUMNS));
        text.push('\n');
    }
    text
}

/// A node's totals as `ecovol stats` prints them.
pub fn stats_totals_record(totals: &pb::StatsTotals) -> Record {
    Record::new()
        .field("registered_volunteers", totals.registered_volunteers)
        .field("newly_registered_volunteers", totals.newly_registered_volunteers)
        .field("active_volunteers", totals.active_volunteers)
        .field("teams", totals.teams)
        .field("projects_published", totals.projects_published)
        .field("sign_ups_accepted", totals.sign_ups_accepted)
        .field("confirmed_hours", hours(totals.confirmed_hours_x100))
        .field("trainings", totals.trainings)
        .field("trainees", totals.trainees)
        .field("average_rating", average_rating(totals.rating_sum, totals.rating_count))
        .field("rating_count", totals.rating_count)
        .field("star_distribution", star_distribution(&totals.star_distribution))
}

/// Runs `ecovol stats` (or `ecovol stats region`).
pub async fn run(args: StatsArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    if let Some(StatsCommand::Region(region)) = args.command {
        return run_region(region, connection, console).await;
    }
    let (Some(from), Some(to)) = (args.from, args.to) else {
        return Err(Failure::Usage("give the range with --from YYYY-MM-DD --to YYYY-MM-DD".into()));
    };
    let node = Node::connect(connection, console).await?;
    let request = pb::GetStatsRequest { start_date: from.to_string(), end_date: to.to_string() };
    let answer = node.stats().get_stats(request).await?.into_inner();
    let totals = answer.totals.clone().unwrap_or_default();
    let totals_record = stats_totals_record(&totals);
    let kind_rows = month_kind_records(&answer.month_kinds);
    let month_rows = month_records(&answer.months);
    if console.is_json() {
        console.json(&json!({
            "start_date": answer.start_date,
            "end_date": answer.end_date,
            "months": month_rows.iter().map(Record::to_json).collect::<Vec<_>>(),
            "month_kinds": kind_rows.iter().map(Record::to_json).collect::<Vec<_>>(),
            "totals": totals_record.to_json(),
        }));
        return Ok(());
    }
    console.print(&format!("statistics {} to {}\n\n", answer.start_date, answer.end_date));
    console.print(&render_months(&kind_rows, &month_rows));
    console.print(&render_record(&totals_record));
    Ok(())
}

// ----- stats region -----

/// A region's totals as printed (the same names as `ecovol stats`, except `active_volunteer_months`).
pub fn region_totals_record(totals: &pb::RegionTotals) -> Record {
    Record::new()
        .field("registered_volunteers", totals.registered_volunteers)
        .field("newly_registered_volunteers", totals.newly_registered_volunteers)
        .field("active_volunteer_months", totals.active_volunteer_months)
        .field("teams", totals.teams)
        .field("projects_published", totals.projects_published)
        .field("sign_ups_accepted", totals.sign_ups_accepted)
        .field("confirmed_hours", hours(totals.confirmed_hours_x100))
        .field("trainings", totals.trainings)
        .field("trainees", totals.trainees)
        .field("average_rating", average_rating(totals.rating_sum, totals.rating_count))
        .field("rating_count", totals.rating_count)
        .field("star_distribution", star_distribution(&totals.star_distribution))
}

fn freshness_json(freshness: Option<&pb::Freshness>) -> serde_json::Value {
    match freshness {
        None => serde_json::Value::Null,
        Some(freshness) => json!({
            "last_contact": timestamp(freshness.last_contact.as_ref()),
            "stale": freshness.stale,
            "backlog": freshness.backlog,
            "newest_entry": timestamp(freshness.newest_entry.as_ref()),
        }),
    }
}

/// A wire timestamp as the tables show times: China Standard Time, to the second ("-" when unset).
pub fn china_time(time: Option<&prost_types::Timestamp>) -> serde_json::Value {
    match time.and_then(crate::wire::from_timestamp) {
        Some(time) => {
            json!(time.with_timezone(&crate::wire::china()).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
        None => serde_json::Value::Null,
    }
}

/// One line of the parts table: `name` gives a place's name when the caller knows it.
fn part_record(part: &pb::RegionPart, name: Option<&str>) -> Record {
    let totals = part.totals.clone().unwrap_or_default();
    let freshness = part.freshness.as_ref();
    let mut record = Record::new().field("code", part.code.clone());
    if let Some(name) = name {
        record = record.field("name", name.to_string());
    }
    record
        .field("level", super::console::name(level_name(part.level)))
        .field("part", if part.own { "own" } else { "child" })
        .field("volunteers", totals.registered_volunteers)
        .field("hours", hours(totals.confirmed_hours_x100))
        .field("projects", totals.projects_published)
        .field("sign_ups", totals.sign_ups_accepted)
        .field("last_contact", freshness.map_or(serde_json::Value::Null, |f| china_time(f.last_contact.as_ref())))
        .field("stale", freshness.map_or(serde_json::Value::Null, |f| json!(f.stale)))
        .field("backlog", freshness.map_or(serde_json::Value::Null, |f| json!(f.backlog)))
}

/// The answer of `GetRegionStats` as the JSON `ecovol stats region --output json` prints.
pub fn region_json(answer: &pb::GetRegionStatsResponse) -> serde_json::Value {
    let parts: Vec<serde_json::Value> = answer
        .parts
        .iter()
        .map(|part| {
            json!({
                "code": part.code,
                "level": super::console::name(level_name(part.level)),
                "own": part.own,
                "totals": region_totals_record(&part.totals.clone().unwrap_or_default()).to_json(),
                "freshness": freshness_json(part.freshness.as_ref()),
            })
        })
        .collect();
    json!({
        "region": answer.region,
        "level": super::console::name(level_name(answer.level)),
        "start_date": answer.start_date,
        "end_date": answer.end_date,
        "as_of": timestamp(answer.as_of.as_ref()),
        "totals": region_totals_record(&answer.totals.clone().unwrap_or_default()).to_json(),
        "parts": parts,
        "months": month_records(&answer.months).iter().map(Record::to_json).collect::<Vec<_>>(),
        "month_kinds": month_kind_records(&answer.month_kinds).iter().map(Record::to_json).collect::<Vec<_>>(),
    })
}

/// The parts of a region as a table; `name` adds a NAME column for the places it knows.
pub fn render_parts(answer: &pb::GetRegionStatsResponse, name: &dyn Fn(&str) -> Option<String>) -> String {
    let named = answer.parts.iter().any(|part| name(&part.code).is_some());
    let records: Vec<Record> = answer
        .parts
        .iter()
        .map(|part| part_record(part, named.then(|| name(&part.code).unwrap_or_default()).as_deref()))
        .collect();
    let mut columns = vec!["code"];
    if named {
        columns.push("name");
    }
    columns.extend([
        "level",
        "part",
        "volunteers",
        "hours",
        "projects",
        "sign_ups",
        "last_contact",
        "stale",
        "backlog",
    ]);
    records_table(&records, &columns)
}

/// The whole answer as text: heading, totals, parts, months.
pub fn render_region(answer: &pb::GetRegionStatsResponse, name: &dyn Fn(&str) -> Option<String>) -> String {
    let level = level_name(answer.level).unwrap_or_else(|| "-".into());
    let place = name(&answer.region).map(|name| format!(" {name}")).unwrap_or_default();
    let mut text = format!(
        "statistics of region {}{place} ({level}), {} to {}\n\n",
        answer.region, answer.start_date, answer.end_date
    );
    text.push_str(&render_record(&region_totals_record(&answer.totals.clone().unwrap_or_default())));
    text.push_str("(active_volunteer_months: each month's active volunteers of each office, added up)\n\n");
    text.push_str("by part (own: the region's own office; child: a whole area directly below it):\n");
    text.push_str(&render_parts(answer, name));
    text.push('\n');
    text.push_str(&render_months(&month_kind_records(&answer.month_kinds), &month_records(&answer.months)));
    text
}

/// Plain-language warnings about parts whose figures may be behind.
pub fn freshness_notes(answer: &pb::GetRegionStatsResponse) -> Vec<String> {
    let mut notes = Vec::new();
    for part in &answer.parts {
        let Some(freshness) = &part.freshness else { continue };
        if freshness.stale {
            let since = match china_time(freshness.last_contact.as_ref()) {
                serde_json::Value::String(time) => format!("since {time}"),
                _ => "ever".to_string(),
            };
            notes.push(format!("note: {} has not been in contact {since}: its figures may be out of date", part.code));
        }
        if freshness.backlog > 0 {
            notes.push(format!(
                "note: at its last contact {} reported {} changes not yet passed up: its figures may be catching up",
                part.code, freshness.backlog
            ));
        }
    }
    notes
}

async fn run_region(args: RegionArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let request = pb::GetRegionStatsRequest {
        region: args.region.unwrap_or_default(),
        start_date: args.start.to_string(),
        end_date: args.end.to_string(),
    };
    let answer = node.stats().get_region_stats(request).await?.into_inner();
    if answer.start_date != args.start.to_string() || answer.end_date != args.end.to_string() {
        console.note(&format!(
            "note: regions are counted in whole months: the range is {} to {}",
            answer.start_date, answer.end_date
        ));
    }
    for note in freshness_notes(&answer) {
        console.note(&note);
    }
    if console.is_json() {
        console.json(&region_json(&answer));
    } else {
        console.print(&render_region(&answer, &|_| None));
    }
    Ok(())
}
