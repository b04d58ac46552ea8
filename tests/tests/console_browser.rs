//! The web console in a real headless Chromium (issue 9): a local federation (province, two cities, four counties
//! over real mutual TLS) with synthetic office work, its console opened through WebDriver as office staff would:
//! log in with a token, read the province dashboard and check its charts and totals against
//! `StatsService.GetRegionStats`, drill down to a county, switch language, submit the register-volunteer form
//! with a bad identity number and see the field error, then a good one. Screenshots of every step are written to
//! `target/console-screenshots/` (paths printed). First-contentful-paint figures are printed, never asserted.
//!
//! Needs Debian's `chromium` and `chromedriver` (`scripts/install-browser`, which `scripts/test` runs): without
//! them the tests fail in CI (`CI=true`) and are skipped with a printed reason elsewhere.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use chrono::Datelike as _;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::stats_service_client::StatsServiceClient;
use ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient;
use ecovol_tests::browser::{Browser, Installation, keys, screenshot_dir};
use ecovol_tests::cluster::{Cluster, JIANGSU};
use ecovol_tests::federation_load::{load_county, volunteer};
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// How long the browser may take to show what a click or a submit leads to.
const PAGE: Duration = Duration::from_secs(20);
const DELIVERY: Duration = Duration::from_secs(60);

/// Chromium and chromedriver, or `None` (the test returns) with the reason printed; in CI a missing browser fails.
fn installation() -> Option<Installation> {
    match Installation::find() {
        Ok(installation) => Some(installation),
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("the browser test needs Chromium in CI: {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            None
        }
    }
}

/// Screenshots of one test, numbered in step order.
struct Shots {
    dir: PathBuf,
    step: u32,
}

impl Shots {
    fn new(test: &str) -> Shots {
        Shots { dir: screenshot_dir().join(test), step: 0 }
    }

    async fn take(&mut self, browser: &Browser, name: &str) {
        self.step += 1;
        let path = self.dir.join(format!("{:02}-{name}.png", self.step));
        browser.screenshot(&path).await.unwrap();
        let png = std::fs::read(&path).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is a PNG", path.display());
        println!("screenshot: {}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The WebDriver client against a tiny page of this test's own.

const HOME: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>client check</title></head>\
<body><h1 id=\"title\" data-value=\"42\">Hello 你好</h1>\
<form id=\"f\" method=\"get\" action=\"/echo\"><label for=\"name\">Name</label><input id=\"name\" name=\"name\">\
<label for=\"pet\">Pet</label><input id=\"pet\" name=\"pet\"><button id=\"go\" type=\"submit\">Go</button></form>\
<ul><li>one</li><li>two</li><li>three</li></ul><a id=\"again\" href=\"/\">again</a></body></html>";

async fn tiny_site(request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.uri().path() {
        "/" => HOME.to_string(),
        "/echo" => format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>echo</title></head><body><p id=\"echo\">{}</p>\
             <a id=\"home\" href=\"/\">home</a></body></html>",
            request.uri().query().unwrap_or_default().replace('<', "&lt;")
        ),
        _ => "<!doctype html><title>404</title>not here".into(),
    };
    let response =
        Response::builder().header("content-type", "text/html; charset=utf-8").body(Full::new(Bytes::from(body)));
    Ok(response.unwrap_or_default())
}

/// Serves `tiny_site` on a loopback port until the test ends.
async fn serve_tiny_site() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(tiny_site);
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webdriver_client_navigates_reads_types_submits_and_takes_screenshots() {
    let Some(installation) = installation() else { return };
    let site = serve_tiny_site().await;
    let browser = Browser::launch(&installation).await.unwrap();
    let mut shots = Shots::new("client");
    browser.goto(&format!("http://{site}/")).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "client check");
    assert_eq!(browser.url().await.unwrap(), format!("http://{site}/"));
    let title = browser.find("h1#title").await.unwrap();
    assert_eq!(title.text().await.unwrap(), "Hello 你好");
    assert_eq!(title.attribute("data-value").await.unwrap().as_deref(), Some("42"));
    assert_eq!(title.attribute("data-missing").await.unwrap(), None);
    assert_eq!(title.tag_name().await.unwrap(), "h1");
    assert!(title.is_displayed().await.unwrap());
    let items = browser.find_all("ul li").await.unwrap();
    let texts: Vec<String> = futures::future::try_join_all(items.iter().map(|item| item.text())).await.unwrap();
    assert_eq!(texts, ["one", "two", "three"]);
    assert!(browser.try_find("#nothing-here").await.unwrap().is_none(), "a missing element is None, not an error");
    assert!(browser.find("#nothing-here").await.is_err());
    let form = browser.find("form#f").await.unwrap();
    assert_eq!(form.find_all("input").await.unwrap().len(), 2, "search inside an element");

    // The keyboard: Tab from the page's start reaches the inputs, then the button, in document order.
    let mut focused = Vec::new();
    for _ in 0..3 {
        browser.press_key(keys::TAB).await.unwrap();
        focused.push(browser.active_element().await.unwrap().attribute("id").await.unwrap().unwrap_or_default());
    }
    assert_eq!(focused, ["name", "pet", "go"]);

    let name = browser.find("#name").await.unwrap();
    name.send_keys("wrong").await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("Ada 李").await.unwrap();
    assert_eq!(name.property("value").await.unwrap().as_deref(), Some("Ada 李"));
    browser.find("#pet").await.unwrap().send_keys("cat").await.unwrap();
    shots.take(&browser, "typed").await;
    name.submit().await.unwrap();
    let echo = browser.wait_for("#echo", PAGE).await.unwrap();
    assert_eq!(echo.text().await.unwrap(), "name=Ada+%E6%9D%8E&pet=cat");
    assert!(browser.url().await.unwrap().ends_with("/echo?name=Ada+%E6%9D%8E&pet=cat"));
    shots.take(&browser, "echo").await;

    // A click on a link navigates; Enter in an input submits its form.
    browser.find("a#home").await.unwrap().click().await.unwrap();
    browser.wait_for("h1#title", PAGE).await.unwrap();
    let pet = browser.find("#pet").await.unwrap();
    pet.send_keys(&format!("dog{}", keys::ENTER)).await.unwrap();
    assert_eq!(browser.wait_for("#echo", PAGE).await.unwrap().text().await.unwrap(), "name=&pet=dog");

    // Scripts return JSON, promises are awaited, elements go in as arguments.
    let value =
        browser.execute("return {sum: arguments[0] + 1, list: [1, 'a', null]};", vec![41.into()]).await.unwrap();
    assert_eq!(value, serde_json::json!({"sum": 42, "list": [1, "a", null]}));
    let fetched = browser.execute("return fetch('/echo?x=1').then(r => r.text());", vec![]).await.unwrap();
    assert!(fetched.as_str().unwrap().contains("x=1"), "{fetched}");
    let echo = browser.find("#echo").await.unwrap();
    let tag = browser.execute("return arguments[0].tagName;", vec![echo.as_arg()]).await.unwrap();
    assert_eq!(tag, "P");
    assert!(browser.execute("throw new Error('boom');", vec![]).await.is_err(), "a script error is an error");
    browser.quit().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// The console of a running federation.

const COUNTIES: [&str; 4] = ["320102", "320104", "320205", "320206"];

/// Hours of the last 75 days may be recorded; a city silent for a second is stale (the stale marker step).
const EXTRA_TOML: &str = "stale_after_ms = 1000\n[hours]\nwindow_tolerance_minutes = 10080\n";

/// A free loopback address for a console (bound and released: the node binds it again at once).
fn free_address() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// Gives `code` a console on a free port (its config gains a `[console]` section) and restarts it; returns the
/// console's base URL.
async fn open_console(cluster: &mut Cluster, code: &str) -> String {
    let address = free_address();
    let path = cluster.node(code).config_path.clone();
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(&format!("\n[console]\nlisten = \"{address}\"\n"));
    std::fs::write(&path, config).unwrap();
    cluster.restart(code).await.unwrap();
    format!("http://{address}")
}

/// `code`'s rolled-up statistics of `region` for the whole calendar year `year`, as the console asks for them.
async fn year_stats(cluster: &Cluster, code: &str, region: &str, year: i32) -> pb::GetRegionStatsResponse {
    let request = pb::GetRegionStatsRequest {
        region: region.into(),
        start_date: format!("{year}-01-01"),
        end_date: format!("{year}-12-31"),
    };
    StatsServiceClient::new(cluster.node(code).staff()).get_region_stats(request).await.unwrap().into_inner()
}

/// Whole minutes of hundredths of an hour, rounded down (docs/CONSOLE.md).
fn minutes(hours_x100: u64) -> u64 {
    hours_x100 * 60 / 100
}

/// The bars of `svg#chart-{chart}` as (key attribute's value → data-value), read in one script.
async fn bars(browser: &Browser, chart: &str, key: &str) -> BTreeMap<String, u64> {
    let script = "const [chart, key] = arguments; \
                  return Array.from(document.querySelectorAll(`svg#chart-${chart} rect[${key}][data-value]`)) \
                  .map(r => [r.getAttribute(key), r.getAttribute('data-value')]);";
    let pairs = browser.execute(script, vec![chart.into(), key.into()]).await.unwrap();
    pairs
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].as_str().unwrap().parse().unwrap()))
        .collect()
}

/// The `data-value` of the total `#total-{id}`.
async fn total(browser: &Browser, id: &str) -> u64 {
    let element = browser.find(&format!("#total-{id}")).await.unwrap();
    element.attribute("data-value").await.unwrap().unwrap().parse().unwrap()
}

/// The expected bars of the charts, computed here from the gRPC answer by the definitions of docs/CONSOLE.md.
struct Expected {
    minutes_by_month: BTreeMap<String, u64>,
    volunteers_by_month: BTreeMap<String, u64>,
    minutes_by_kind: BTreeMap<String, u64>,
    children: BTreeMap<String, u64>,
    stars: BTreeMap<String, u64>,
}

fn expected(stats: &pb::GetRegionStatsResponse, year: i32) -> Expected {
    let months: Vec<String> = (1..=12).map(|month| format!("{year}-{month:02}")).collect();
    let minutes_by_month = months
        .iter()
        .map(|month| {
            let x100 =
                stats.month_kinds.iter().filter(|cell| &cell.month == month).map(|cell| cell.confirmed_hours_x100);
            (month.clone(), minutes(x100.sum()))
        })
        .collect();
    let volunteers_by_month = months
        .iter()
        .map(|month| {
            let found = stats.months.iter().find(|stats| &stats.month == month);
            (month.clone(), found.map(|stats| stats.active_volunteers).unwrap_or(0))
        })
        .collect();
    let minutes_by_kind = (1..=5)
        .map(|kind| {
            let name = pb::ActivityKind::try_from(kind).unwrap().as_str_name();
            let key = name.trim_start_matches("ACTIVITY_KIND_").to_ascii_lowercase();
            let x100 =
                stats.month_kinds.iter().filter(|cell| cell.activity_kind == kind).map(|c| c.confirmed_hours_x100);
            (key, minutes(x100.sum()))
        })
        .collect();
    let children = stats
        .parts
        .iter()
        .filter(|part| !part.own)
        .map(|part| (part.code.clone(), minutes(part.totals.as_ref().unwrap().confirmed_hours_x100)))
        .collect();
    let distribution = &stats.totals.as_ref().unwrap().star_distribution;
    let stars = (1..=5u32)
        .map(|stars| {
            let found = distribution.iter().find(|count| count.stars == stars);
            (stars.to_string(), found.map(|count| count.volunteers).unwrap_or(0))
        })
        .collect();
    Expected { minutes_by_month, volunteers_by_month, minutes_by_kind, children, stars }
}

/// Checks the dashboard on screen against `stats`: totals, every chart's bars, one download per chart.
async fn assert_dashboard_matches(browser: &Browser, stats: &pb::GetRegionStatsResponse, year: i32) {
    let region = &stats.region;
    let totals = stats.totals.clone().unwrap();
    assert_eq!(total(browser, "confirmed-minutes").await, minutes(totals.confirmed_hours_x100), "{region}: minutes");
    assert_eq!(total(browser, "confirmed-hours-x100").await, totals.confirmed_hours_x100, "{region}: hours");
    assert_eq!(total(browser, "active-volunteers").await, totals.active_volunteer_months, "{region}: active");
    assert_eq!(total(browser, "records").await, totals.sign_ups_accepted, "{region}: records (accepted sign-ups)");
    assert_eq!(total(browser, "registered-volunteers").await, totals.registered_volunteers, "{region}");
    let expected = expected(stats, year);
    assert_eq!(bars(browser, "minutes-by-month", "data-month").await, expected.minutes_by_month, "{region}");
    assert_eq!(bars(browser, "volunteers-by-month", "data-month").await, expected.volunteers_by_month, "{region}");
    assert_eq!(bars(browser, "minutes-by-kind", "data-kind").await, expected.minutes_by_kind, "{region}");
    assert_eq!(bars(browser, "children", "data-code").await, expected.children, "{region}");
    assert_eq!(bars(browser, "stars", "data-stars").await, expected.stars, "{region}");
    let trainings: u64 = bars(browser, "trainings", "data-month").await.values().sum();
    assert_eq!(trainings, totals.trainings, "{region}: trainings by month add up to the year's trainings");
    // Every chart is an image with a name for screen readers and is followed by its download.
    let charts = browser.find_all("svg.chart[role=img][aria-labelledby]").await.unwrap();
    assert_eq!(charts.len(), 6, "{region}: six charts");
    let script = "return Array.from(document.querySelectorAll('svg.chart')).map(svg => { \
                    const box = svg.closest('section') || svg.parentElement; \
                    const link = box.querySelector('a.download'); return link ? link.getAttribute('href') : null; });";
    let downloads = browser.execute(script, vec![]).await.unwrap();
    for href in downloads.as_array().unwrap() {
        let href = href.as_str().unwrap_or_else(|| panic!("{region}: a chart without a download link"));
        assert!(href.contains(".csv?"), "{region}: {href}");
    }
}

/// first-contentful-paint of the current page in milliseconds, if the browser recorded one.
async fn first_contentful_paint(browser: &Browser) -> Option<f64> {
    let script = "const paint = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint'); \
                  return paint ? paint.startTime : null;";
    browser.execute(script, vec![]).await.unwrap().as_f64()
}

/// Logs in on the console's login page with `token`.
async fn log_in(browser: &Browser, console: &str, token: &str) {
    browser.goto(&format!("{console}/login")).await.unwrap();
    let input = browser.find("form#login input#token[name=token][type=password]").await.unwrap();
    input.send_keys(token).await.unwrap();
    browser.find("form#login button#login-submit[type=submit]").await.unwrap().click().await.unwrap();
    browser.wait_for("h1#region-title", PAGE).await.unwrap();
}

/// Reads `url`'s body through the page's own fetch (the session cookie goes along).
async fn fetch_text(browser: &Browser, url: &str) -> String {
    let script = "return fetch(arguments[0]).then(r => r.text());";
    browser.execute(script, vec![url.into()]).await.unwrap().as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_staff_use_the_console_in_chromium() {
    let Some(installation) = installation() else { return };
    let mut cluster = Cluster::start(&JIANGSU, EXTRA_TOML).await.unwrap();
    for (i, county) in COUNTIES.into_iter().enumerate() {
        load_county(cluster.node(county), 20261203 + i as u64, 1000 * i as u32, 6).await.unwrap();
    }
    let province_console = open_console(&mut cluster, "320000").await;
    let county_console = open_console(&mut cluster, "320102").await;
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let year = ecovol_node::wire::today_china().year();
    let browser = Browser::launch(&installation).await.unwrap();
    let mut shots = Shots::new("console");

    // No session: the console sends the visitor to the login page.
    browser.goto(&format!("{province_console}/region/320000")).await.unwrap();
    assert!(browser.url().await.unwrap().ends_with("/login"), "{}", browser.url().await.unwrap());
    let html_lang = browser.find("html").await.unwrap().attribute("lang").await.unwrap();
    assert_eq!(html_lang.as_deref(), Some("zh-CN"), "Chinese by default");
    shots.take(&browser, "login").await;

    // The keyboard reaches the token field, then the login button, in that order.
    let mut focused = Vec::new();
    for _ in 0..12 {
        browser.press_key(keys::TAB).await.unwrap();
        let id = browser.active_element().await.unwrap().attribute("id").await.unwrap().unwrap_or_default();
        focused.push(id);
    }
    let token_at = focused.iter().position(|id| id == "token").unwrap_or_else(|| panic!("Tab order: {focused:?}"));
    let submit_at = focused.iter().position(|id| id == "login-submit").unwrap_or_else(|| panic!("{focused:?}"));
    assert!(token_at < submit_at, "the token field comes before the login button: {focused:?}");

    // A wrong token: the form again, with the reason.
    let token = browser.find("#token").await.unwrap();
    token.send_keys("not-a-token").await.unwrap();
    browser.find("#login-submit").await.unwrap().click().await.unwrap();
    let error =
        browser.wait_for("form#login ~ p.form-error[role=alert], p.form-error[role=alert]", PAGE).await.unwrap();
    assert!(!error.text().await.unwrap().is_empty(), "the refusal says why");
    shots.take(&browser, "login-refused").await;

    // The province's staff token: the province dashboard.
    log_in(&browser, &province_console, &cluster.node("320000").tokens.staff).await;
    assert!(browser.url().await.unwrap().ends_with("/region/320000"), "{}", browser.url().await.unwrap());
    let title = browser.find("h1#region-title").await.unwrap();
    assert!(title.text().await.unwrap().contains("320000"), "{}", title.text().await.unwrap());
    let province_fcp = first_contentful_paint(&browser).await;
    let stats = year_stats(&cluster, "320000", "", year).await;
    assert!(stats.totals.as_ref().unwrap().confirmed_hours_x100 > 0, "the load confirmed hours");
    assert_dashboard_matches(&browser, &stats, year).await;
    let children: Vec<String> = futures::future::try_join_all(
        browser.find_all("table#children tr[data-code]").await.unwrap().iter().map(|row| row.attribute("data-code")),
    )
    .await
    .unwrap()
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(children, ["320100", "320200"], "one row per city");
    shots.take(&browser, "province-dashboard").await;

    // A download holds the chart's numbers with Chinese headers.
    let href = browser.find("svg#chart-children ~ * a.download, a.download[href*='children.csv']").await.unwrap();
    let csv = fetch_text(&browser, &href.attribute("href").await.unwrap().unwrap()).await;
    let expected_children = expected(&stats, year).children;
    for (code, value) in &expected_children {
        assert!(csv.contains(&format!("{code},{value}")), "CSV row of {code} = {value}: {csv}");
    }
    assert!(!csv.lines().next().unwrap().is_ascii(), "Chinese headers: {csv}");

    // Drill down: province → city → county, each page the province's roll-up of that region.
    browser.find("table#children tr[data-code='320100'] a.drill").await.unwrap().click().await.unwrap();
    browser.wait_for("h1#region-title[data-code='320100']", PAGE).await.unwrap();
    assert!(browser.url().await.unwrap().contains("/region/320100"));
    assert_dashboard_matches(&browser, &year_stats(&cluster, "320000", "320100", year).await, year).await;
    assert_eq!(browser.find_all("nav#breadcrumbs a").await.unwrap().len(), 2, "province › city");
    shots.take(&browser, "city-dashboard").await;
    browser.find("table#children tr[data-code='320102'] a.drill").await.unwrap().click().await.unwrap();
    browser.wait_for("h1#region-title[data-code='320102']", PAGE).await.unwrap();
    let county_stats = year_stats(&cluster, "320000", "320102", year).await;
    assert_dashboard_matches(&browser, &county_stats, year).await;
    let crumbs = browser.find_all("nav#breadcrumbs a").await.unwrap();
    assert_eq!(crumbs.len(), 3, "province › city › county");
    shots.take(&browser, "county-dashboard").await;
    crumbs[0].click().await.unwrap();
    browser.wait_for("h1#region-title[data-code='320000']", PAGE).await.unwrap();

    // English, and back.
    browser.find("a#lang-en").await.unwrap().click().await.unwrap();
    browser.wait_for("html[lang=en]", PAGE).await.unwrap();
    let text = browser.find("body").await.unwrap().text().await.unwrap();
    assert!(text.contains("Confirmed service (minutes)"), "English labels: {text}");
    assert_dashboard_matches(&browser, &stats, year).await;
    shots.take(&browser, "province-dashboard-en").await;
    browser.find("a#lang-zh").await.unwrap().click().await.unwrap();
    browser.wait_for("html[lang=zh-CN]", PAGE).await.unwrap();

    // The county's own console: register a volunteer, first with a bad identity number.
    log_in(&browser, &county_console, &cluster.node("320102").tokens.staff).await;
    let county_fcp = first_contentful_paint(&browser).await;
    shots.take(&browser, "county-home").await;
    browser.goto(&format!("{county_console}/office/volunteers/new")).await.unwrap();
    let person = volunteer("320102", 9000);
    let bad_id = {
        let mut id = person.identity_number.clone();
        let last = if id.ends_with('0') { '1' } else { '0' };
        id.pop();
        id.push(last);
        id
    };
    browser.find("input[name=name]").await.unwrap().send_keys(&person.name).await.unwrap();
    browser.find("input[name=id_number]").await.unwrap().send_keys(&bad_id).await.unwrap();
    browser.find("input[name=phone]").await.unwrap().send_keys(&person.phone).await.unwrap();
    let consent = browser.find("input[name=consent_to_processing]").await.unwrap();
    consent.click().await.unwrap();
    // Every input has its label.
    let unlabelled = browser
        .execute(
            "return Array.from(document.querySelectorAll('form input:not([type=hidden])')) \
             .filter(i => !document.querySelector(`label[for=\"${i.id}\"]`)).map(i => i.name);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, serde_json::json!([]), "inputs without a label");
    shots.take(&browser, "register-filled").await;
    browser.find("button[type=submit]#submit").await.unwrap().click().await.unwrap();
    let field_error = browser.wait_for("p.field-error#error-id_number[role=alert]", PAGE).await.unwrap();
    assert!(!field_error.text().await.unwrap().is_empty());
    let input = browser.find("input[name=id_number]").await.unwrap();
    assert_eq!(input.attribute("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert_eq!(input.attribute("aria-describedby").await.unwrap().as_deref(), Some("error-id_number"));
    assert_eq!(input.property("value").await.unwrap().as_deref(), Some(bad_id.as_str()), "the user's value is kept");
    let name_kept = browser.find("input[name=name]").await.unwrap().property("value").await.unwrap();
    assert_eq!(name_kept.as_deref(), Some(person.name.as_str()));
    let next_to_input = browser
        .execute(
            "const input = document.querySelector('input[name=id_number]'); \
             const error = document.getElementById('error-id_number'); \
             return input.parentElement.contains(error) || input.nextElementSibling === error;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(next_to_input, true, "the error stands next to the identity-number input");
    shots.take(&browser, "register-refused").await;

    // The good number: the volunteer list with the notice.
    let input = browser.find("input[name=id_number]").await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(&person.identity_number).await.unwrap();
    let consent = browser.find("input[name=consent_to_processing]").await.unwrap();
    if consent.property("checked").await.unwrap().as_deref() != Some("true") {
        consent.click().await.unwrap();
    }
    browser.find("button[type=submit]#submit").await.unwrap().click().await.unwrap();
    let notice = browser.wait_for("p.notice[role=status]", PAGE).await.unwrap();
    assert!(!notice.text().await.unwrap().is_empty());
    assert!(browser.url().await.unwrap().contains("/office/volunteers"), "{}", browser.url().await.unwrap());
    shots.take(&browser, "registered").await;
    let search = pb::SearchVolunteersRequest { phone: person.phone.clone(), ..Default::default() };
    let found = VolunteerServiceClient::new(cluster.node("320102").staff())
        .search_volunteers(search)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.volunteers.len(), 1, "the good submission registered the volunteer once, the refused one nothing");

    // A city that stops answering is marked stale on the province's dashboard.
    cluster.stop("320200").await.unwrap();
    log_in(&browser, &province_console, &cluster.node("320000").tokens.staff).await;
    let deadline = tokio::time::Instant::now() + PAGE;
    loop {
        browser.goto(&format!("{province_console}/region/320000?year={year}")).await.unwrap();
        if let Some(marker) = browser.try_find("table#children tr[data-code='320200'] span.stale").await.unwrap() {
            assert!(marker.is_displayed().await.unwrap(), "the stale marker is visible");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no stale marker for the stopped city");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(browser.try_find("table#children tr[data-code='320100'] span.stale").await.unwrap().is_none());
    shots.take(&browser, "stale-city").await;

    println!(
        "first-contentful-paint: province dashboard {} ms, county page {} ms",
        province_fcp.map_or("n/a".into(), |ms| format!("{ms:.0}")),
        county_fcp.map_or("n/a".into(), |ms| format!("{ms:.0}"))
    );
    browser.quit().await.unwrap();
    cluster.shutdown().await.unwrap();
}
