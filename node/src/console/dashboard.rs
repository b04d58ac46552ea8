//! The region dashboard (`/region/{code}`) and its CSV downloads: the rolled-up figures of this node's territory
//! as `StatsService.GetRegionStats` answers them, as totals, charts, a table per child with its freshness, and the
//! progress of joint work plans. A chart and its CSV are drawn from the same rows.

use chrono::Datelike as _;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::plan_service_server::PlanService as _;
use ecovol_proto::v1::stats_service_server::StatsService as _;
use hyper::StatusCode;

use super::Visit;
use super::chart::{self, Bar};
use super::i18n::Lang;
use super::page::{self, Reply, escape};
use crate::service::plan::PlanApi;
use crate::service::stats::StatsApi;

/// The charts of a dashboard, in page order: (id, title key).
pub const CHARTS: [(&str, &str); 6] = [
    ("minutes-by-month", "chart.minutes_by_month"),
    ("volunteers-by-month", "chart.volunteers_by_month"),
    ("minutes-by-kind", "chart.minutes_by_kind"),
    ("children", "chart.children"),
    ("stars", "chart.stars"),
    ("trainings", "chart.trainings"),
];

/// Hundredths of an hour as whole minutes (rounded down).
pub fn minutes(hours_x100: u64) -> u64 {
    hours_x100 * 60 / 100
}

/// `/region/{code}` or `/region/{code}/{chart}.csv`.
pub async fn region(visit: &Visit<'_>, rest: &str) -> Reply {
    let lang = visit.lang();
    let (code, download) = match rest.split_once('/') {
        Some((code, file)) => (code, Some(file)),
        None => (rest, None),
    };
    let this_year = crate::wire::today_china().year();
    let year = visit
        .request
        .query("year")
        .and_then(|text| text.parse::<i32>().ok())
        .filter(|year| (2000..=this_year + 1).contains(year))
        .unwrap_or(this_year);
    let api = StatsApi { app: visit.app.clone() };
    let request = pb::GetRegionStatsRequest {
        region: code.to_string(),
        start_date: format!("{year}-01-01"),
        end_date: format!("{year}-12-31"),
    };
    let answer = match api.get_region_stats(visit.call(request)).await {
        Ok(answer) => answer.into_inner(),
        // The region is not a code, or not inside this node's territory.
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            return page::error(lang, StatusCode::NOT_FOUND, &format!("{code}: {}", status.message()));
        }
        Err(status) => return page::status_page(lang, &status),
    };
    let charts = charts(lang, &answer, year);
    if let Some(file) = download {
        let Some(chart) = file.strip_suffix(".csv").and_then(|id| charts.iter().find(|chart| chart.id == id)) else {
            return page::error(lang, StatusCode::NOT_FOUND, &format!("{}: {file}", lang.t("error.404")));
        };
        return page::csv(&format!("{}-{}-{year}.csv", answer.region, chart.id), chart.csv());
    }
    let plans = plan_progress(visit).await;
    let main = render(visit, &answer, year, &charts, &plans);
    let title = format!("{} {}", region_name(visit, &answer.region), year);
    page::html(StatusCode::OK, page::layout(visit, &title, &main))
}

/// One chart's figures: its bars and the same figures as table rows.
pub struct ChartData {
    pub id: &'static str,
    pub title: &'static str,
    pub columns: [&'static str; 2],
    pub bars: Vec<Bar>,
}

impl ChartData {
    /// The chart's table as CSV: a header row in the page's language, one row per bar.
    pub fn csv(&self) -> String {
        let mut text = format!("{},{}\r\n", csv_cell(self.columns[0]), csv_cell(self.columns[1]));
        for bar in &self.bars {
            text.push_str(&format!("{},{}\r\n", csv_cell(&bar.label), bar.value));
        }
        text
    }

    fn table(&self) -> String {
        let mut text = format!(
            "<table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"number\">{}</th></tr></thead><tbody>",
            escape(self.columns[0]),
            escape(self.columns[1])
        );
        for bar in &self.bars {
            text.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td class=\"number\">{}</td></tr>",
                escape(&bar.label),
                bar.value
            ));
        }
        text.push_str("</tbody></table>");
        text
    }
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// The activity kind's key (`green_low_carbon`).
fn kind_key(kind: i32) -> String {
    pb::ActivityKind::try_from(kind)
        .map(|kind| kind.as_str_name().trim_start_matches("ACTIVITY_KIND_").to_ascii_lowercase())
        .unwrap_or_else(|_| "unspecified".into())
}

fn level_key(level: i32) -> &'static str {
    match pb::Level::try_from(level) {
        Ok(pb::Level::Province) => "level.province",
        Ok(pb::Level::City) => "level.city",
        _ => "level.county",
    }
}

/// The six charts of `answer` for `year`.
pub fn charts(lang: Lang, answer: &pb::GetRegionStatsResponse, year: i32) -> Vec<ChartData> {
    let months: Vec<String> = (1..=12).map(|month| format!("{year}-{month:02}")).collect();
    let month_bars = |attribute: &'static str, value: &dyn Fn(&str) -> u64| -> Vec<Bar> {
        months
            .iter()
            .map(|month| Bar { label: month.clone(), key: (attribute, month.clone()), value: value(month) })
            .collect()
    };
    let month_stats = |month: &str| answer.months.iter().find(|stats| stats.month == month);
    let minutes_by_month = month_bars("data-month", &|month| {
        minutes(
            answer.month_kinds.iter().filter(|cell| cell.month == month).map(|cell| cell.confirmed_hours_x100).sum(),
        )
    });
    let volunteers_by_month =
        month_bars("data-month", &|month| month_stats(month).map(|stats| stats.active_volunteers).unwrap_or(0));
    let by_kind: Vec<Bar> = (1..=5)
        .map(|kind| {
            let key = kind_key(kind);
            let x100 =
                answer.month_kinds.iter().filter(|cell| cell.activity_kind == kind).map(|c| c.confirmed_hours_x100);
            Bar {
                label: lang.t(&format!("kind.{key}")).to_string(),
                key: ("data-kind", key),
                value: minutes(x100.sum()),
            }
        })
        .collect();
    let mut children: Vec<Bar> = answer
        .parts
        .iter()
        .filter(|part| !part.own)
        .map(|part| Bar {
            label: part.code.clone(),
            key: ("data-code", part.code.clone()),
            value: minutes(part.totals.as_ref().map(|totals| totals.confirmed_hours_x100).unwrap_or(0)),
        })
        .collect();
    children.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.label.cmp(&b.label)));
    let distribution = answer.totals.as_ref().map(|totals| totals.star_distribution.as_slice()).unwrap_or(&[]);
    let stars: Vec<Bar> = (1..=5u32)
        .map(|stars| Bar {
            label: "★".repeat(stars as usize),
            key: ("data-stars", stars.to_string()),
            value: distribution.iter().find(|count| count.stars == stars).map(|count| count.volunteers).unwrap_or(0),
        })
        .collect();
    let mut trainings = month_bars("data-month", &|month| month_stats(month).map(|stats| stats.trainings).unwrap_or(0));
    // Guidance 五(五): at least one training a year.
    trainings.push(Bar {
        label: lang.t("required.yearly").to_string(),
        key: ("data-requirement", "yearly".into()),
        value: 1,
    });
    // Column headings of each chart's table, in the order of `CHARTS`.
    let columns = [
        ("col.month", "col.minutes"),
        ("col.month", "col.volunteers"),
        ("col.kind", "col.minutes"),
        ("col.code", "col.minutes"),
        ("col.stars", "col.count"),
        ("col.month", "col.trainings"),
    ];
    let bars = [minutes_by_month, volunteers_by_month, by_kind, children, stars, trainings];
    CHARTS
        .into_iter()
        .zip(columns)
        .zip(bars)
        .map(|(((id, title), (first, second)), bars)| ChartData {
            id,
            title: lang.t(title),
            columns: [lang.t(first), lang.t(second)],
            bars,
        })
        .collect()
}

fn region_name(visit: &Visit<'_>, code: &str) -> String {
    if code == visit.app.node_code() { format!("{} ({code})", visit.app.config.node.name) } else { code.to_string() }
}

/// The codes from this node down to `region`: this node, then the province, city and county prefixes of `region`
/// inside this node's territory.
pub fn breadcrumb_codes(own: &str, region: &str) -> Vec<String> {
    let mut codes = vec![own.to_string()];
    if !region.is_ascii() || region.len() != 6 {
        return codes;
    }
    // "320000" → "32", "320100" → "3201": what every code of the territory starts with.
    let territory = own.trim_end_matches("00");
    for candidate in [format!("{}0000", &region[..2]), format!("{}00", &region[..4]), region.to_string()] {
        if candidate.starts_with(territory) && !codes.contains(&candidate) {
            codes.push(candidate);
        }
    }
    codes
}

fn render(
    visit: &Visit<'_>,
    answer: &pb::GetRegionStatsResponse,
    year: i32,
    charts: &[ChartData],
    plans: &[(String, pb::TargetProgress)],
) -> String {
    let lang = visit.lang();
    let own = visit.app.node_code();
    let mut main = String::new();
    // Breadcrumbs back up to this node.
    main.push_str(&format!("<nav id=\"breadcrumbs\" aria-label=\"{}\"><ol>", escape(lang.t("breadcrumbs"))));
    let crumbs = breadcrumb_codes(own, &answer.region);
    for (index, code) in crumbs.iter().enumerate() {
        let label = region_name(visit, code);
        if index + 1 == crumbs.len() {
            main.push_str(&format!(
                "<li><a href=\"/region/{code}?year={year}\" aria-current=\"page\">{}</a></li>",
                escape(&label)
            ));
        } else {
            main.push_str(&format!("<li><a href=\"/region/{code}?year={year}\">{}</a></li>", escape(&label)));
        }
    }
    main.push_str("</ol></nav>");
    main.push_str(&format!(
        "<h1 id=\"region-title\" data-code=\"{}\">{} · {} · {year}</h1>",
        escape(&answer.region),
        escape(&region_name(visit, &answer.region)),
        escape(lang.t(level_key(answer.level)))
    ));
    main.push_str(&format!(
        "<form class=\"year\" method=\"get\" action=\"/region/{}\"><label for=\"year\">{}</label> \
         <input id=\"year\" name=\"year\" type=\"number\" min=\"2000\" max=\"2100\" value=\"{year}\"> \
         <button type=\"submit\">{}</button></form>",
        escape(&answer.region),
        escape(lang.t("year")),
        escape(lang.t("show"))
    ));

    // Totals: each value carries its raw figure.
    let totals = answer.totals.clone().unwrap_or_default();
    let rating = if totals.rating_count == 0 {
        "–".to_string()
    } else {
        format!("{:.2}", totals.rating_sum as f64 / totals.rating_count as f64)
    };
    let figures: [(&str, &str, u64, String); 11] = [
        ("confirmed-minutes", "total.confirmed_minutes", minutes(totals.confirmed_hours_x100), String::new()),
        (
            "confirmed-hours-x100",
            "total.confirmed_hours",
            totals.confirmed_hours_x100,
            format!("{}.{:02}", totals.confirmed_hours_x100 / 100, totals.confirmed_hours_x100 % 100),
        ),
        ("active-volunteers", "total.active_volunteers", totals.active_volunteer_months, String::new()),
        ("records", "total.records", totals.sign_ups_accepted, String::new()),
        ("registered-volunteers", "total.registered_volunteers", totals.registered_volunteers, String::new()),
        ("newly-registered-volunteers", "total.newly_registered", totals.newly_registered_volunteers, String::new()),
        ("teams", "total.teams", totals.teams, String::new()),
        ("projects-published", "total.projects_published", totals.projects_published, String::new()),
        ("trainings", "total.trainings", totals.trainings, String::new()),
        ("trainees", "total.trainees", totals.trainees, String::new()),
        ("rating-count", "total.rating", totals.rating_count, rating),
    ];
    main.push_str(&format!(
        "<h2 id=\"totals-title\">{}</h2><dl id=\"totals\" aria-labelledby=\"totals-title\">",
        escape(lang.t("totals"))
    ));
    for (id, key, value, shown) in figures {
        let shown = if shown.is_empty() { value.to_string() } else { shown };
        main.push_str(&format!(
            "<div><dt>{}</dt><dd id=\"total-{id}\" data-value=\"{value}\">{}</dd></div>",
            escape(lang.t(key)),
            escape(&shown)
        ));
    }
    main.push_str("</dl>");

    // Charts, each followed by its download and its table.
    for chart in charts {
        main.push_str(&format!(
            "<section class=\"chart-box\" aria-labelledby=\"chart-{}-heading\"><h2 id=\"chart-{}-heading\">{}</h2>",
            chart.id,
            chart.id,
            escape(chart.title)
        ));
        main.push_str(&chart::bar_chart(chart.id, chart.title, &chart.bars, lang.t("chart.empty")));
        main.push_str(&format!(
            "<p><a class=\"download\" href=\"/region/{}/{}.csv?year={year}&amp;lang={}\" download>{}</a></p>\
             <details><summary>{}</summary>{}</details></section>",
            escape(&answer.region),
            chart.id,
            lang.code(),
            escape(lang.t("download")),
            escape(lang.t("chart.table")),
            chart.table()
        ));
    }

    // One row per direct child, with its freshness.
    main.push_str(&format!("<h2 id=\"children-title\">{}</h2>", escape(lang.t("children.title"))));
    main.push_str(&format!(
        "<table id=\"children\" aria-labelledby=\"children-title\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\" class=\"number\">{}</th><th scope=\"col\" class=\"number\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\" class=\"number\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        escape(lang.t("col.code")),
        escape(lang.t("col.level")),
        escape(lang.t("col.minutes")),
        escape(lang.t("col.volunteers")),
        escape(lang.t("col.freshness")),
        escape(lang.t("col.backlog")),
        escape(lang.t("col.drill")),
    ));
    for part in &answer.parts {
        let totals = part.totals.clone().unwrap_or_default();
        let freshness = part.freshness.unwrap_or_default();
        let (row, drill) = if part.own {
            (
                format!(
                    "<tr class=\"own\"><th scope=\"row\">{} ({})</th>",
                    escape(lang.t("own.figures")),
                    escape(&part.code)
                ),
                String::new(),
            )
        } else {
            (
                format!("<tr data-code=\"{}\"><th scope=\"row\">{}</th>", escape(&part.code), escape(&part.code)),
                format!(
                    "<a class=\"drill\" href=\"/region/{}?year={year}\">{} {}</a>",
                    escape(&part.code),
                    escape(lang.t("col.drill")),
                    escape(&part.code)
                ),
            )
        };
        let contact = if part.own {
            "–".to_string()
        } else {
            freshness
                .last_contact
                .as_ref()
                .and_then(crate::wire::from_timestamp)
                .map(|time| time.with_timezone(&crate::wire::china()).format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|| lang.t("never").to_string())
        };
        let stale = if !part.own && freshness.stale {
            format!("<span class=\"stale\" role=\"status\">{}</span>", escape(lang.t("stale")))
        } else {
            String::new()
        };
        main.push_str(&format!(
            "{row}<td>{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"freshness\">{}{stale}</td>\
             <td class=\"number\">{}</td><td>{drill}</td></tr>",
            escape(lang.t(level_key(part.level))),
            minutes(totals.confirmed_hours_x100),
            totals.active_volunteer_months,
            escape(&contact),
            freshness.backlog,
        ));
    }
    main.push_str("</tbody></table>");
    if answer.parts.iter().all(|part| part.own) {
        main.push_str(&format!("<p>{}</p>", escape(lang.t("children.none"))));
    }

    if !plans.is_empty() {
        main.push_str(&format!(
            "<h2 id=\"plans-title\">{}</h2><table id=\"plan-progress\" aria-labelledby=\"plans-title\"><thead><tr>\
             <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\" class=\"number\">{}</th>\
             <th scope=\"col\" class=\"number\">{}</th><th scope=\"col\" class=\"number\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            escape(lang.t("plans.title")),
            escape(lang.t("col.plan")),
            escape(lang.t("col.target")),
            escape(lang.t("col.region")),
            escape(lang.t("col.target_value")),
            escape(lang.t("col.actual")),
            escape(lang.t("col.percent")),
            escape(lang.t("col.status")),
        ));
        for (plan, target) in plans {
            let metric = pb::PlanMetric::try_from(target.metric)
                .map(|metric| metric.as_str_name().trim_start_matches("PLAN_METRIC_").to_ascii_lowercase())
                .unwrap_or_default();
            let status = pb::TargetStatus::try_from(target.status)
                .map(|status| status.as_str_name().trim_start_matches("TARGET_STATUS_").to_ascii_lowercase())
                .unwrap_or_default();
            main.push_str(&format!(
                "<tr data-plan=\"{}\" data-target=\"{}\" data-region=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{}</td>\
                 <td class=\"number\">{}</td><td class=\"number\" data-value=\"{}\">{}</td><td class=\"number\">{}%</td><td>{}</td></tr>",
                escape(plan),
                escape(&target.target_id),
                escape(&target.region),
                escape(plan),
                escape(&metric),
                escape(&target.region),
                target.target,
                target.actual,
                target.actual,
                target.percent,
                escape(&status),
            ));
        }
        main.push_str("</tbody></table>");
    }
    main
}

/// Every target of every joint work plan this node holds, per region (empty if the caller may not read plans).
async fn plan_progress(visit: &Visit<'_>) -> Vec<(String, pb::TargetProgress)> {
    let api = PlanApi { app: visit.app.clone() };
    let Ok(list) = api.list_plans(visit.call(pb::ListPlansRequest {})).await else { return Vec::new() };
    let mut rows = Vec::new();
    for plan in list.into_inner().plans {
        if let Ok(answer) = api.get_plan(visit.call(pb::PlanRequest { plan_id: plan.plan_id.clone() })).await {
            for target in answer.into_inner().targets {
                rows.push((plan.plan_id.clone(), target));
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breadcrumbs_run_from_this_node_down_to_the_region() {
        assert_eq!(breadcrumb_codes("320000", "320000"), vec!["320000"]);
        assert_eq!(breadcrumb_codes("320000", "320100"), vec!["320000", "320100"]);
        assert_eq!(breadcrumb_codes("320000", "320102"), vec!["320000", "320100", "320102"]);
        assert_eq!(breadcrumb_codes("320100", "320102"), vec!["320100", "320102"]);
        assert_eq!(breadcrumb_codes("320102", "320102"), vec!["320102"]);
    }

    #[test]
    fn csv_rows_are_the_chart_bars() {
        let chart = ChartData {
            id: "stars",
            title: "t",
            columns: ["星级", "人数"],
            bars: vec![
                Bar { label: "★".into(), key: ("data-stars", "1".into()), value: 3 },
                Bar { label: "a,b".into(), key: ("data-stars", "2".into()), value: 0 },
            ],
        };
        assert_eq!(chart.csv(), "星级,人数\r\n★,3\r\n\"a,b\",0\r\n");
    }

    #[test]
    fn every_month_and_kind_gets_a_bar_and_minutes_round_down() {
        let answer = pb::GetRegionStatsResponse {
            region: "320000".into(),
            month_kinds: vec![
                pb::MonthKindStats {
                    month: "2026-03".into(),
                    activity_kind: 4,
                    confirmed_hours_x100: 150,
                    ..Default::default()
                },
                pb::MonthKindStats {
                    month: "2026-03".into(),
                    activity_kind: 1,
                    confirmed_hours_x100: 101,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let charts = charts(Lang::En, &answer, 2026);
        assert_eq!(charts.len(), 6);
        assert_eq!(charts[0].bars.len(), 12);
        assert_eq!(charts[0].bars[2].key, ("data-month", "2026-03".to_string()));
        assert_eq!(charts[0].bars[2].value, minutes(251));
        assert_eq!(
            charts[2].bars.iter().map(|bar| bar.key.1.as_str()).collect::<Vec<_>>(),
            [
                "theory_promotion",
                "publicity_education",
                "social_supervision",
                "green_low_carbon",
                "international_exchange"
            ]
        );
        assert_eq!(charts[2].bars[3].value, 90);
        assert_eq!(charts[5].bars.last().map(|bar| bar.key.0), Some("data-requirement"));
        assert_eq!(minutes(101), 60);
    }
}
