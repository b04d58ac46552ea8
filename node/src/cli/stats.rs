//! `ecovol stats`: the node's statistics (`StatsService`) as a month × activity-kind table with totals.

use chrono::NaiveDate;
use ecovol_proto::v1 as pb;
use serde_json::json;

use super::connection::{ConnectionArgs, Node};
use super::console::{Console, Record, render_table};
use super::failure::Failure;
use super::project::printed;

/// Arguments of `ecovol stats`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// First day of the range (YYYY-MM-DD, China time), inclusive.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub from: NaiveDate,

    /// Last day of the range (YYYY-MM-DD, China time), inclusive; at most five years after --from.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub to: NaiveDate,
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

/// Runs `ecovol stats`.
pub async fn run(args: StatsArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let request = pb::GetStatsRequest { start_date: args.from.to_string(), end_date: args.to.to_string() };
    let answer = node.stats().get_stats(request).await?.into_inner();
    let totals = answer.totals.clone().unwrap_or_default();
    let stars: serde_json::Map<String, serde_json::Value> =
        totals.star_distribution.iter().map(|count| (count.stars.to_string(), json!(count.volunteers))).collect();
    let average = if totals.rating_count == 0 {
        String::from("-")
    } else {
        // Two decimals, rounded half up, from the exact sum and count.
        let x100 = (totals.rating_sum * 200 + totals.rating_count) / (2 * totals.rating_count);
        hours(x100)
    };
    let totals_record = Record::new()
        .field("registered_volunteers", totals.registered_volunteers)
        .field("newly_registered_volunteers", totals.newly_registered_volunteers)
        .field("active_volunteers", totals.active_volunteers)
        .field("teams", totals.teams)
        .field("projects_published", totals.projects_published)
        .field("sign_ups_accepted", totals.sign_ups_accepted)
        .field("confirmed_hours", hours(totals.confirmed_hours_x100))
        .field("trainings", totals.trainings)
        .field("trainees", totals.trainees)
        .field("average_rating", average)
        .field("rating_count", totals.rating_count)
        .field("star_distribution", serde_json::Value::Object(stars));
    let kind_rows: Vec<Record> = answer
        .month_kinds
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
        .collect();
    let month_rows: Vec<Record> = answer
        .months
        .iter()
        .map(|row| {
            Record::new()
                .field("month", row.month.clone())
                .field("newly_registered_volunteers", row.newly_registered_volunteers)
                .field("active_volunteers", row.active_volunteers)
                .field("trainings", row.trainings)
                .field("trainees", row.trainees)
        })
        .collect();
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
    let table = |records: &[Record], columns: &[&str]| {
        let headers: Vec<String> = columns.iter().map(|column| column.to_ascii_uppercase()).collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|record| {
                columns
                    .iter()
                    .map(|column| match record.get(column) {
                        Some(serde_json::Value::String(text)) => text.clone(),
                        Some(other) => other.to_string(),
                        None => "-".into(),
                    })
                    .collect()
            })
            .collect();
        render_table(&headers, &rows)
    };
    if kind_rows.is_empty() {
        console.print("(no activity by kind in this range)\n");
    } else {
        console.print(&table(
            &kind_rows,
            &["month", "kind", "projects_published", "sign_ups_accepted", "confirmed_hours", "active_volunteers"],
        ));
    }
    console.print("\n");
    if !month_rows.is_empty() {
        console.print(&table(
            &month_rows,
            &["month", "newly_registered_volunteers", "active_volunteers", "trainings", "trainees"],
        ));
        console.print("\n");
    }
    console.print(&super::console::render_record(&totals_record));
    Ok(())
}
