//! What `ecovol up` prints once the federation has converged: the province's rolled-up statistics with each
//! city's breakdown by county, a cross-check against the counties' own statistics, mutual recognition of the
//! mobile people's hours, and how to reach every node from the command line (as tables, or as one JSON value).

use std::fmt::Write as _;

use ecovol_proto::v1 as pb;
use serde_json::json;

use super::cluster::{LocalFederation, PROVINCE, Place};
use super::data::{self, Loaded, Recognition};
use super::{DemoNode, Timings};
use crate::cli::console::render_table;
use crate::cli::stats::{hours, region_json, render_parts, render_region, stats_totals_record};
use crate::config::Level;

/// Everything `up` prints.
pub struct Summary {
    pub folder: String,
    pub loaded: Loaded,
    /// True when this run loaded the data (false: an earlier run did).
    pub loaded_now: bool,
    pub timings: Timings,
    /// The province's `GetRegionStats` over the loaded months.
    pub province: pb::GetRegionStatsResponse,
    /// Each city's `GetRegionStats` of itself.
    pub cities: Vec<pb::GetRegionStatsResponse>,
    /// Each county's own `GetStats` (from its records, not the roll-up).
    pub counties: Vec<(Place, pb::GetStatsResponse)>,
    pub recognition: Vec<Recognition>,
    pub nodes: Vec<DemoNode>,
}

/// Asks the nodes for what the summary shows.
pub async fn gather(
    federation: &LocalFederation,
    loaded: &Loaded,
    loaded_now: bool,
    timings: Timings,
) -> anyhow::Result<Summary> {
    let (start, end) = (loaded.start_date, loaded.end_date);
    let province = federation.province().region_stats("", start, end).await?;
    let mut cities = Vec::new();
    for city in federation.at_level(Level::City) {
        cities.push(city.region_stats("", start, end).await?);
    }
    let mut counties = Vec::new();
    for county in federation.at_level(Level::County) {
        counties.push((county.place, county.stats(start, end).await?));
    }
    Ok(Summary {
        folder: federation.dir.display().to_string(),
        loaded: loaded.clone(),
        loaded_now,
        timings,
        province,
        cities,
        counties,
        recognition: data::recognition(federation, loaded).await?,
        nodes: federation.nodes.clone(),
    })
}

/// The short name of a demo place.
fn place_name(code: &str) -> Option<String> {
    super::PLACES.iter().find(|place| place.code == code).map(|place| place.short_name.to_string())
}

fn seconds(duration: std::time::Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// The counties' own figures added up, in the province's terms where they are comparable.
fn counties_sum(counties: &[(Place, pb::GetStatsResponse)]) -> pb::StatsTotals {
    let mut sum = pb::StatsTotals::default();
    for (_, stats) in counties {
        let totals = stats.totals.clone().unwrap_or_default();
        sum.registered_volunteers += totals.registered_volunteers;
        sum.newly_registered_volunteers += totals.newly_registered_volunteers;
        sum.teams += totals.teams;
        sum.projects_published += totals.projects_published;
        sum.sign_ups_accepted += totals.sign_ups_accepted;
        sum.confirmed_hours_x100 += totals.confirmed_hours_x100;
        sum.trainings += totals.trainings;
        sum.trainees += totals.trainees;
        sum.rating_sum += totals.rating_sum;
        sum.rating_count += totals.rating_count;
    }
    sum
}

/// The differences between the province's totals and the counties' own figures (empty when they agree).
pub fn differences(summary: &Summary) -> Vec<String> {
    let province = summary.province.totals.clone().unwrap_or_default();
    let counties = counties_sum(&summary.counties);
    let pairs = [
        ("volunteers", province.registered_volunteers, counties.registered_volunteers),
        ("teams", province.teams, counties.teams),
        ("projects", province.projects_published, counties.projects_published),
        ("sign-ups", province.sign_ups_accepted, counties.sign_ups_accepted),
        ("hours x100", province.confirmed_hours_x100, counties.confirmed_hours_x100),
        ("trainings", province.trainings, counties.trainings),
        ("trainees", province.trainees, counties.trainees),
        ("ratings", province.rating_count, counties.rating_count),
    ];
    pairs
        .into_iter()
        .filter(|(_, province, counties)| province != counties)
        .map(|(what, province, counties)| format!("{what}: province {province}, counties {counties}"))
        .collect()
}

/// The summary as tables and plain sentences.
pub fn text(summary: &Summary) -> String {
    let mut text = String::new();
    let province = summary.nodes.iter().find(|node| node.place.code == PROVINCE);
    let _ = writeln!(
        text,
        "ecovol up: a federation of {} nodes on this machine, in {}",
        summary.nodes.len(),
        summary.folder
    );
    let mut timing = format!("  started in {}", seconds(summary.timings.start));
    match summary.timings.load {
        Some(load) => {
            let _ = write!(
                timing,
                "; loaded synthetic data (seed {}, {} volunteers per county) in {}",
                summary.loaded.seed,
                summary.loaded.volunteers_per_county,
                seconds(load)
            );
        }
        None => {
            let _ = write!(
                timing,
                "; data loaded by an earlier run ({} volunteers per county)",
                summary.loaded.volunteers_per_county
            );
        }
    }
    if let Some(convergence) = summary.timings.convergence {
        let _ = write!(timing, "; the province held every county's figures {} later", seconds(convergence));
    }
    let _ = writeln!(text, "{timing}\n");

    let names = |code: &str| place_name(code);
    let _ = writeln!(text, "── the province's rolled-up statistics (GetRegionStats on {PROVINCE} 江苏省) ──");
    text.push_str(&render_region(&summary.province, &names));
    for city in &summary.cities {
        let _ = writeln!(
            text,
            "── {} {} by county (GetRegionStats on the city) ──",
            city.region,
            place_name(&city.region).unwrap_or_default()
        );
        text.push_str(&render_parts(city, &names));
        text.push('\n');
    }
    let counties = counties_sum(&summary.counties);
    let differences = differences(summary);
    if differences.is_empty() {
        let _ = writeln!(
            text,
            "check: the four counties' own statistics (GetStats on each county) add up to the province's totals: \
             {} volunteers, {} teams, {} projects, {} sign-ups, {} hours\n",
            counties.registered_volunteers,
            counties.teams,
            counties.projects_published,
            counties.sign_ups_accepted,
            hours(counties.confirmed_hours_x100)
        );
    } else {
        let _ = writeln!(
            text,
            "check FAILED: the province's totals differ from the counties' own statistics: {}\n",
            differences.join("; ")
        );
    }

    if !summary.recognition.is_empty() {
        let _ = writeln!(
            text,
            "── mutual recognition: people registered in two counties; each county counts the hours served in the \
             other ──"
        );
        let mut rows = Vec::new();
        for person in &summary.recognition {
            for (index, county) in person.counties.iter().enumerate() {
                rows.push(vec![
                    if index == 0 { person.name.clone() } else { String::new() },
                    format!("{} {}", county.code, place_name(&county.code).unwrap_or_default()),
                    county.volunteer_number.clone(),
                    hours(county.confirmed_minutes * 100 / 60),
                    hours(county.elsewhere_minutes * 100 / 60),
                ]);
            }
        }
        text.push_str(&render_table(&["NAME", "COUNTY", "VOLUNTEER", "HOURS_HERE", "HOURS_ELSEWHERE"], &rows));
        text.push('\n');
    }

    let _ = writeln!(text, "── the nodes (every role's token is in {}/<code>/tokens.txt) ──", summary.folder);
    let rows: Vec<Vec<String>> = summary
        .nodes
        .iter()
        .map(|node| {
            vec![
                node.place.code.to_string(),
                node.place.short_name.to_string(),
                level_label(node.place.level()).to_string(),
                node.office_url(),
                node.federation.map_or_else(|| "-".into(), |address| address.to_string()),
                node.console.map_or_else(|| "-".into(), |address| format!("http://{address}")),
                node.tokens.staff.clone(),
            ]
        })
        .collect();
    text.push_str(&render_table(&["CODE", "NAME", "LEVEL", "OFFICE", "FEDERATION", "CONSOLE", "STAFF_TOKEN"], &rows));
    text.push('\n');
    if let Some(address) = province.and_then(|province| province.console)
        && let Some(province) = province
    {
        let _ = writeln!(
            text,
            "web console (docs/CONSOLE.md): open http://{address}/ in a browser and log in with the staff token {}",
            province.tokens.staff
        );
        let _ = writeln!(text, "  (each node's console is in the CONSOLE column, with its own STAFF_TOKEN)\n");
    }

    let (start, end) = (summary.loaded.start_date, summary.loaded.end_date);
    let command = |node: &DemoNode| format!("ecovol --node {} --token {}", node.office_url(), node.tokens.staff);
    let city = summary.nodes.iter().find(|node| node.place.level() == Level::City);
    let county = summary.nodes.iter().find(|node| node.place.level() == Level::County);
    let _ = writeln!(text, "try (any node works the same way; `cargo install --path node` puts ecovol on your PATH):");
    if let Some(province) = province {
        let _ = writeln!(text, "  {} stats region --start {start} --end {end}", command(province));
    }
    if let Some(city) = city {
        let child = summary.nodes.iter().find(|node| node.place.parent == Some(city.place.code));
        if let Some(child) = child {
            let _ = writeln!(
                text,
                "  {} stats region --region {} --start {start} --end {end}",
                command(city),
                child.place.code
            );
        }
        let _ = writeln!(text, "  {} node federation", command(city));
    }
    if let Some(county) = county {
        let _ = writeln!(text, "  {} stats --from {start} --to {end}", command(county));
        let _ = writeln!(text, "  {} volunteer search --page-size 5", command(county));
        let mobile = summary.recognition.iter().find_map(|person| {
            person.counties.iter().find(|seen| seen.code == county.place.code).map(|seen| seen.volunteer_number.clone())
        });
        if let Some(number) = mobile {
            let _ = writeln!(text, "  {} profile {number}", command(county));
        }
        let _ = writeln!(
            text,
            "  ecovol --node {} --token {} audit list --page-size 5",
            county.office_url(),
            county.tokens.auditor
        );
    }
    text
}

fn level_label(level: Level) -> &'static str {
    match level {
        Level::Province => "province",
        Level::City => "city",
        Level::County => "county",
    }
}

/// The summary as one JSON value: the province's and cities' answers as `ecovol stats region --output json`
/// prints them, each county's own totals as `ecovol stats --output json` does, the nodes and the timings.
pub fn json(summary: &Summary) -> serde_json::Value {
    let millis = |duration: Option<std::time::Duration>| duration.map(|d| d.as_millis() as u64);
    let counties: Vec<serde_json::Value> = summary
        .counties
        .iter()
        .map(|(place, stats)| {
            json!({
                "code": place.code,
                "name": place.short_name,
                "totals": stats_totals_record(&stats.totals.clone().unwrap_or_default()).to_json(),
            })
        })
        .collect();
    let recognition: Vec<serde_json::Value> = summary
        .recognition
        .iter()
        .map(|person| {
            json!({
                "name": person.name,
                "complete": person.complete(),
                "registrations": person.counties.iter().map(|county| json!({
                    "code": county.code,
                    "volunteer_number": county.volunteer_number,
                    "confirmed_minutes": county.confirmed_minutes,
                    "elsewhere_minutes": county.elsewhere_minutes,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let nodes: Vec<serde_json::Value> = summary
        .nodes
        .iter()
        .map(|node| {
            json!({
                "code": node.place.code,
                "name": node.place.short_name,
                "office_name": node.place.office_name,
                "level": level_label(node.place.level()),
                "parent": node.place.parent,
                "office": node.office_url(),
                "federation": node.federation.map(|address| address.to_string()),
                "console": node.console.map(|address| format!("http://{address}")),
                "folder": node.folder.display().to_string(),
                "tokens": {
                    "operator": node.tokens.operator,
                    "staff": node.tokens.staff,
                    "auditor": node.tokens.auditor,
                },
            })
        })
        .collect();
    json!({
        "folder": summary.folder,
        "loaded_now": summary.loaded_now,
        "seed": summary.loaded.seed,
        "volunteers_per_county": summary.loaded.volunteers_per_county,
        "start_date": summary.loaded.start_date.to_string(),
        "end_date": summary.loaded.end_date.to_string(),
        "timings_ms": {
            "start": summary.timings.start.as_millis() as u64,
            "load": millis(summary.timings.load),
            "convergence": millis(summary.timings.convergence),
        },
        "converged": summary.timings.convergence.is_some(),
        "differences": differences(summary),
        "province": region_json(&summary.province),
        "cities": summary.cities.iter().map(region_json).collect::<Vec<_>>(),
        "counties": counties,
        "mutual_recognition": recognition,
        "nodes": nodes,
    })
}
