//! The web console over HTTP (no browser): sessions, CSRF, languages, the province dashboard against
//! `StatsService.GetRegionStats`, CSV downloads against the charts, drill-down, the stale marker, and the county
//! office's forms (register a volunteer with a bad and a good identity number, publish a project, record and confirm
//! hours) with what the API refuses shown on the page. Real nodes, real federation over mutual TLS, real sled.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Datelike as _, Utc};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::service_record_service_client::ServiceRecordServiceClient;
use ecovol_proto::v1::stats_service_client::StatsServiceClient;
use ecovol_tests::cluster::Cluster;
use ecovol_tests::federation_load::{load_county, volunteer};
use ecovol_tests::{NodeSpec, TestNode, scenario};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn cookies(&self) -> Vec<&str> {
        self.headers.iter().filter(|(key, _)| key.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.as_str()).collect()
    }
}

/// A browser without a browser: a cookie jar and HTTP/1.1 requests over a fresh TCP connection each.
struct Client {
    address: String,
    cookies: BTreeMap<String, String>,
}

impl Client {
    fn new(address: &str) -> Client {
        Client { address: address.to_string(), cookies: BTreeMap::new() }
    }

    async fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Answer {
        let body: String =
            form.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
        let cookie: String = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.address);
        if !cookie.is_empty() {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        if method == "POST" {
            request.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let mut stream = connect(&self.address).await;
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
            .collect();
        let answer = Answer { status, headers, body: body.to_string() };
        for cookie in answer.cookies() {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        answer
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, &[]).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send("POST", path, form).await
    }

    async fn log_in(&mut self, token: &str) {
        let answer = self.post("/login", &[("token", token)]).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.header("location"), Some("/"));
    }
}

/// Connects to the console, waiting while the node opens its store (the console binds its port after that).
async fn connect(address: &str) -> tokio::net::TcpStream {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::net::TcpStream::connect(address).await {
            Ok(stream) => return stream,
            Err(error) if tokio::time::Instant::now() > deadline => panic!("console {address}: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The value of `attribute` in the first tag of `html` that contains `marker`.
fn attribute_of(html: &str, marker: &str, attribute: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let from = tag.find(&format!("{attribute}=\""))? + attribute.len() + 2;
    Some(tag[from..from + tag[from..].find('"')?].to_string())
}

fn total(html: &str, id: &str) -> u64 {
    attribute_of(html, &format!("id=\"total-{id}\""), "data-value")
        .unwrap_or_else(|| panic!("#total-{id}"))
        .parse()
        .unwrap()
}

/// The bars of `svg#chart-{chart}` as (value of `key` → data-value).
fn bars(html: &str, chart: &str, key: &str) -> BTreeMap<String, u64> {
    let start = html.find(&format!("id=\"chart-{chart}\"")).unwrap_or_else(|| panic!("chart {chart}"));
    let svg = &html[start..start + html[start..].find("</svg>").unwrap()];
    let mut found = BTreeMap::new();
    for piece in svg.split("<rect").skip(1) {
        let tag = &piece[..piece.find('>').unwrap()];
        let value = |name: &str| {
            let from = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[from..from + tag[from..].find('"')?].to_string())
        };
        if let (Some(k), Some(v)) = (value(key), value("data-value")) {
            found.insert(k, v.parse().unwrap());
        }
    }
    found
}

/// The rows of a CSV download after its header (which must not be ASCII: Chinese headers).
fn csv_rows(answer: &Answer) -> (String, BTreeMap<String, u64>) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.header("content-type").unwrap().starts_with("text/csv"));
    let text = answer.body.trim_start_matches('\u{feff}');
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let rows = lines
        .map(|line| {
            let (key, value) = line.rsplit_once(',').unwrap();
            (key.trim_matches('"').to_string(), value.parse().unwrap())
        })
        .collect();
    (header, rows)
}

fn minutes(hours_x100: u64) -> u64 {
    hours_x100 * 60 / 100
}

async fn year_stats(cluster: &Cluster, region: &str, year: i32) -> pb::GetRegionStatsResponse {
    let request = pb::GetRegionStatsRequest {
        region: region.into(),
        start_date: format!("{year}-01-01"),
        end_date: format!("{year}-12-31"),
    };
    StatsServiceClient::new(cluster.node("320000").staff()).get_region_stats(request).await.unwrap().into_inner()
}

/// The dashboard page of `region` matches the API: totals, each month, each kind, each child.
fn check_dashboard(html: &str, stats: &pb::GetRegionStatsResponse, year: i32) {
    let region = &stats.region;
    let totals = stats.totals.clone().unwrap_or_default();
    assert!(html.contains(&format!("id=\"region-title\" data-code=\"{region}\"")), "{region}: title");
    assert_eq!(total(html, "confirmed-minutes"), minutes(totals.confirmed_hours_x100), "{region}");
    assert_eq!(total(html, "confirmed-hours-x100"), totals.confirmed_hours_x100, "{region}");
    assert_eq!(total(html, "active-volunteers"), totals.active_volunteer_months, "{region}");
    assert_eq!(total(html, "records"), totals.sign_ups_accepted, "{region}");
    assert_eq!(total(html, "registered-volunteers"), totals.registered_volunteers, "{region}");
    assert_eq!(total(html, "trainings"), totals.trainings, "{region}");
    let by_month = bars(html, "minutes-by-month", "data-month");
    assert_eq!(by_month.len(), 12);
    for (month, value) in &by_month {
        let x100 = stats.month_kinds.iter().filter(|cell| &cell.month == month).map(|cell| cell.confirmed_hours_x100);
        assert_eq!(*value, minutes(x100.sum()), "{region} {month}");
        assert!(month.starts_with(&year.to_string()));
    }
    for (month, value) in bars(html, "volunteers-by-month", "data-month") {
        let found = stats.months.iter().find(|stats| stats.month == month).map(|stats| stats.active_volunteers);
        assert_eq!(value, found.unwrap_or(0), "{region} {month}");
    }
    let by_kind = bars(html, "minutes-by-kind", "data-kind");
    assert_eq!(by_kind.len(), 5);
    for kind in 1..=5 {
        let key = pb::ActivityKind::try_from(kind)
            .unwrap()
            .as_str_name()
            .trim_start_matches("ACTIVITY_KIND_")
            .to_ascii_lowercase();
        let x100 =
            stats.month_kinds.iter().filter(|cell| cell.activity_kind == kind).map(|cell| cell.confirmed_hours_x100);
        assert_eq!(by_kind[&key], minutes(x100.sum()), "{region} {key}");
    }
    let children: BTreeMap<String, u64> = stats
        .parts
        .iter()
        .filter(|part| !part.own)
        .map(|part| (part.code.clone(), minutes(part.totals.clone().unwrap_or_default().confirmed_hours_x100)))
        .collect();
    assert_eq!(bars(html, "children", "data-code"), children, "{region}: children");
    for code in children.keys() {
        assert!(html.contains(&format!("<tr data-code=\"{code}\">")), "{region}: row of {code}");
        assert!(
            html.contains(&format!("class=\"drill\" href=\"/region/{code}?year={year}\"")),
            "{region}: drill {code}"
        );
    }
    let stars: u64 = bars(html, "stars", "data-stars").values().sum();
    assert_eq!(stars, totals.star_distribution.iter().map(|count| count.volunteers).sum::<u64>());
    let trainings: u64 = bars(html, "trainings", "data-month").values().sum();
    assert_eq!(trainings, totals.trainings, "{region}: trainings by month");
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 6);
    assert_eq!(html.matches("<a class=\"download\"").count(), 6);
}

/// A free loopback address (bound and released; the node binds it again at once).
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn province_dashboard_matches_the_stats_api_and_drills_down() {
    let topology = [
        ("320000", "province", None),
        ("320100", "city", Some("320000")),
        ("320200", "city", Some("320000")),
        ("320102", "county", Some("320100")),
        ("320205", "county", Some("320200")),
    ];
    let mut cluster = Cluster::start(&topology, "stale_after_ms = 1500\n").await.unwrap();
    load_county(cluster.node("320102"), 7, 0, 6).await.unwrap();
    load_county(cluster.node("320205"), 8, 100, 4).await.unwrap();
    cluster.wait_delivered(Duration::from_secs(60)).await.unwrap();
    // The province gets a console.
    let address = free_address();
    cluster.stop("320000").await.unwrap();
    let path = cluster.node("320000").config_path.clone();
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(&format!("\n[console]\nlisten = \"{address}\"\n"));
    std::fs::write(&path, config).unwrap();
    cluster.start_again("320000").await.unwrap();
    let year = ecovol_node::wire::today_china().year();
    let mut web = Client::new(&address);

    // No session: to the login page; a bad token: the form again with an alert.
    let answer = web.get(&format!("/region/320000?year={year}")).await;
    assert_eq!((answer.status, answer.header("location")), (303, Some("/login")));
    let login = web.get("/login").await;
    assert!(
        login.body.contains("<form id=\"login\"")
            && login.body.contains("id=\"token\" name=\"token\" type=\"password\"")
    );
    assert!(login.body.contains("<html lang=\"zh-CN\">"), "Chinese by default");
    let refused = web.post("/login", &[("token", "not-a-token")]).await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("class=\"form-error\" role=\"alert\""));
    assert!(refused.cookies().iter().all(|cookie| !cookie.starts_with("ecovol_session=")));

    // A good token: a session cookie, then the node's own region.
    let staff = cluster.node("320000").tokens.staff.clone();
    let answer = web.post("/login", &[("token", &staff)]).await;
    assert_eq!((answer.status, answer.header("location")), (303, Some("/")));
    let cookie = answer.cookies().into_iter().find(|c| c.starts_with("ecovol_session=")).unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
    let answer = web.get("/").await;
    assert_eq!((answer.status, answer.header("location")), (303, Some("/region/320000")));

    // The province's dashboard is GetRegionStats, and every CSV is its chart.
    let page = web.get(&format!("/region/320000?year={year}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("content-security-policy"), Some("default-src 'self'"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let stats = year_stats(&cluster, "320000", year).await;
    assert!(stats.totals.clone().unwrap_or_default().confirmed_hours_x100 > 0, "the load confirmed some hours");
    check_dashboard(&page.body, &stats, year);
    assert!(page.body.contains("<nav id=\"breadcrumbs\""));
    for (chart, key) in [
        ("minutes-by-month", "data-month"),
        ("volunteers-by-month", "data-month"),
        ("minutes-by-kind", "data-kind"),
        ("children", "data-code"),
        ("stars", "data-stars"),
    ] {
        let csv = web.get(&format!("/region/320000/{chart}.csv?year={year}")).await;
        let (header, rows) = csv_rows(&csv);
        assert!(!header.is_ascii(), "Chinese headers: {header}");
        let chart_values: Vec<u64> = bars(&page.body, chart, key).into_values().collect();
        let mut csv_values: Vec<u64> = rows.into_values().collect();
        let mut sorted_chart = chart_values.clone();
        sorted_chart.sort();
        csv_values.sort();
        assert_eq!(csv_values, sorted_chart, "{chart}: the CSV holds the chart's numbers");
    }
    let (_, children) = csv_rows(&web.get(&format!("/region/320000/children.csv?year={year}")).await);
    assert_eq!(children, bars(&page.body, "children", "data-code"));
    let (_, months) = csv_rows(&web.get(&format!("/region/320000/minutes-by-month.csv?year={year}")).await);
    assert_eq!(months, bars(&page.body, "minutes-by-month", "data-month"));

    // English: the switch sets a cookie that later pages keep; the CSV headers follow.
    let english = web.get(&format!("/region/320000?year={year}&lang=en")).await;
    assert!(english.body.contains("<html lang=\"en\">"));
    assert!(english.cookies().iter().any(|cookie| cookie.starts_with("ecovol_lang=en")));
    assert!(english.body.contains("id=\"lang-zh\"") && english.body.contains("id=\"lang-en\""));
    let again = web.get(&format!("/region/320000?year={year}")).await;
    assert!(again.body.contains("<html lang=\"en\">"), "the language cookie is kept");
    let (header, _) = csv_rows(&web.get(&format!("/region/320000/stars.csv?year={year}")).await);
    assert!(header.is_ascii(), "English headers: {header}");
    let chinese = web.get(&format!("/region/320000?year={year}&lang=zh")).await;
    assert!(chinese.body.contains("<html lang=\"zh-CN\">"));

    // Drill-down to a city and a county: the province's roll-up of each.
    for region in ["320100", "320102"] {
        let page = web.get(&format!("/region/{region}?year={year}")).await;
        assert_eq!(page.status, 200, "{region}: {}", page.body);
        check_dashboard(&page.body, &year_stats(&cluster, region, year).await, year);
        assert!(page.body.contains("href=\"/region/320000?year="), "{region}: breadcrumbs back up to the province");
    }
    // Outside the territory: 404 with the reason.
    let outside = web.get("/region/330000").await;
    assert_eq!(outside.status, 404);
    assert!(outside.body.contains("330000"), "{}", outside.body);

    // A stopped city is marked stale on the province's dashboard.
    cluster.stop("320200").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = web.get(&format!("/region/320000?year={year}")).await;
        let row = page
            .body
            .find("<tr data-code=\"320200\">")
            .map(|at| &page.body[at..at + page.body[at..].find("</tr>").unwrap()]);
        if row.is_some_and(|row| row.contains("<span class=\"stale\"")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no stale marker for the stopped city");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Logging out ends the session.
    let page = web.get(&format!("/region/320000?year={year}")).await;
    let csrf = attribute_of(&page.body, "name=\"csrf\"", "value").unwrap();
    let answer = web.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((answer.status, answer.header("location")), (303, Some("/login")));
    web.cookies
        .insert("ecovol_session".into(), cookie.split(';').next().unwrap()["ecovol_session=".len()..].to_string());
    let answer = web.get("/region/320000").await;
    assert_eq!((answer.status, answer.header("location")), (303, Some("/login")), "the old cookie no longer works");
    cluster.shutdown().await.unwrap();
}

/// A county node with a console on a free port.
async fn county_with_console(extra: &str) -> (TestNode, String) {
    let address = free_address();
    let mut spec = NodeSpec::county("330106");
    spec.extra_toml = format!("[console]\nlisten = \"{address}\"\n{extra}");
    (TestNode::start(spec).await.unwrap(), address)
}

fn csrf_of(page: &Answer) -> String {
    attribute_of(&page.body, "name=\"csrf\"", "value").expect("a CSRF field")
}

fn local(time: chrono::DateTime<Utc>) -> String {
    time.with_timezone(&ecovol_node::wire::china()).format("%Y-%m-%dT%H:%M").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn county_office_forms_show_the_api_refusals_and_write_through_it() {
    let (node, address) = county_with_console("").await;
    let mut web = Client::new(&address);
    web.log_in(&node.tokens.staff).await;
    let home = web.get("/").await;
    assert_eq!(home.header("location"), Some("/region/330106"));
    let dashboard = web.get("/region/330106").await;
    assert!(dashboard.body.contains("href=\"/office/volunteers\""), "a county's nav shows the office pages");

    // A POST without the session's CSRF token is refused and stores nothing.
    let person = volunteer("330106", 1);
    let form = |id_number: &str| {
        vec![
            ("name", person.name.clone()),
            ("id_number", id_number.to_string()),
            ("phone", person.phone.clone()),
            ("home_division_code", person.home_division_code.clone()),
            ("political_status", person.political_status.to_string()),
            ("consent_to_processing", "on".to_string()),
        ]
    };
    let pairs = |form: &[(&'static str, String)], csrf: &str| -> Vec<(&'static str, String)> {
        let mut all = form.to_vec();
        all.push(("csrf", csrf.to_string()));
        all
    };
    let as_refs = |pairs: &[(&'static str, String)]| -> Vec<(&'static str, String)> { pairs.to_vec() };
    let post = async |web: &mut Client, path: &str, pairs: Vec<(&'static str, String)>| {
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        web.post(path, &refs).await
    };
    let answer = post(&mut web, "/office/volunteers/new", as_refs(&form(&person.identity_number))).await;
    assert_eq!(answer.status, 403, "no CSRF token");
    let answer =
        post(&mut web, "/office/volunteers/new", pairs(&form(&person.identity_number), "0".repeat(64).as_str())).await;
    assert_eq!(answer.status, 403, "a wrong CSRF token");

    // A bad identity number: the form again, the server's error next to `id_number`, nothing stored.
    let page = web.get("/office/volunteers/new").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"home_division_code\" name=\"home_division_code\" type=\"text\" value=\"330106\""));
    for input in ["name", "id_number", "phone", "home_division_code", "political_status", "consent_to_processing"] {
        assert!(page.body.contains(&format!("<label for=\"{input}\">")), "label of {input}");
    }
    let csrf = csrf_of(&page);
    let mut bad = person.identity_number.clone();
    let last = if bad.ends_with('0') { '1' } else { '0' };
    bad.pop();
    bad.push(last);
    let answer = post(&mut web, "/office/volunteers/new", pairs(&form(&bad), &csrf)).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(answer.body.contains("<p class=\"field-error\" id=\"error-id_number\" role=\"alert\">"), "{}", answer.body);
    let input = &answer.body[answer.body.find("name=\"id_number\"").unwrap()..];
    let input = &input[..input.find('>').unwrap()];
    assert!(
        input.contains("aria-invalid=\"true\"") && input.contains("aria-describedby=\"error-id_number\""),
        "{input}"
    );
    assert!(input.contains(&format!("value=\"{bad}\"")), "the user's value is kept: {input}");
    let search = |phone: String| pb::SearchVolunteersRequest { phone, ..Default::default() };
    let found = node.volunteers(&node.tokens.staff).search_volunteers(search(person.phone.clone())).await.unwrap();
    assert!(found.into_inner().volunteers.is_empty(), "a refused registration stores nothing");

    // The good number: 303 to the list, with the notice and the new volunteer.
    let answer = post(&mut web, "/office/volunteers/new", pairs(&form(&person.identity_number), &csrf)).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let location = answer.header("location").unwrap().to_string();
    assert!(location.starts_with("/office/volunteers?notice=registered"), "{location}");
    let list = web.get(&location).await;
    assert!(list.body.contains("<p class=\"notice\" role=\"status\">"));
    let found = node.volunteers(&node.tokens.staff).search_volunteers(search(person.phone.clone())).await.unwrap();
    let number = found.into_inner().volunteers[0].volunteer_number.clone();
    assert!(list.body.contains(&format!("data-volunteer=\"{number}\"")));

    // An auditor may read but the API refuses the forms' actions: 403.
    let mut auditor = Client::new(&address);
    auditor.log_in(&node.tokens.auditor).await;
    let page = auditor.get("/office/volunteers/new").await;
    let other = volunteer("330106", 2);
    let refused = post(
        &mut auditor,
        "/office/volunteers/new",
        vec![
            ("name", other.name.clone()),
            ("id_number", other.identity_number.clone()),
            ("phone", other.phone.clone()),
            ("home_division_code", other.home_division_code.clone()),
            ("political_status", other.political_status.to_string()),
            ("consent_to_processing", "on".into()),
            ("csrf", csrf_of(&page)),
        ],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("role=\"alert\""));

    // Publish a project through the console, record hours on it, and confirm them.
    let team = scenario::team(&node, "护河队").await;
    let now = Utc::now();
    let page = web.get("/office/projects/new").await;
    let answer = post(
        &mut web,
        "/office/projects/new",
        vec![
            ("title", "河道清理".into()),
            ("activity_kind", "4".into()),
            ("organising_team_id", team.clone()),
            ("start_at", local(now - chrono::Duration::days(3))),
            ("end_at", local(now - chrono::Duration::hours(1))),
            ("capacity", "20".into()),
            ("csrf", csrf_of(&page)),
        ],
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let location = answer.header("location").unwrap().to_string();
    let project_id = location.split("id=").nth(1).unwrap().to_string();
    let projects = web.get(&location).await;
    assert!(projects.body.contains(&format!("data-project=\"{project_id}\"")), "{}", projects.body);
    assert!(projects.body.contains("<td class=\"number seats\">20</td>"));

    let page = web.get("/office/hours/new").await;
    let key = attribute_of(&page.body, "name=\"idempotency_key\"", "value").unwrap();
    let start = now - chrono::Duration::days(2);
    let hours_form = |csrf: String, end: chrono::DateTime<Utc>| {
        vec![
            ("project_id", project_id.clone()),
            ("volunteer_number", number.clone()),
            ("method", "interval".into()),
            ("start_time", local(start)),
            ("end_time", local(end)),
            ("content", "清理河道垃圾".into()),
            ("walk_in", "on".into()),
            ("idempotency_key", key.clone()),
            ("csrf", csrf),
        ]
    };
    // An end before the start: the server's error next to `end_time`.
    let answer =
        post(&mut web, "/office/hours/new", hours_form(csrf_of(&page), start - chrono::Duration::hours(1))).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(answer.body.contains("id=\"error-end_time\""), "{}", answer.body);
    let answer =
        post(&mut web, "/office/hours/new", hours_form(csrf_of(&page), start + chrono::Duration::hours(2))).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let location = answer.header("location").unwrap().to_string();
    let record_id = location.split("id=").nth(1).unwrap().to_string();
    let list = web.get(&location).await;
    assert!(list.body.contains(&format!("action=\"/office/hours/{record_id}/confirm\"")), "{}", list.body);
    let answer = post(&mut web, &format!("/office/hours/{record_id}/confirm"), vec![("csrf", csrf_of(&list))]).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let mut records = ServiceRecordServiceClient::new(scenario::authed(&node, &node.tokens.staff));
    let record = records
        .get_service_record(pb::GetServiceRecordRequest { record_id: record_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(record.state, pb::ServiceRecordState::Confirmed as i32);
    assert_eq!(record.hours_x100, 200);
    let list = web.get("/office/hours").await;
    assert!(!list.body.contains(&format!("data-record=\"{record_id}\"")), "a confirmed record waits no more");
    // Confirming an unknown record: 404 from the API.
    let answer = post(&mut web, "/office/hours/330106-H99999999/confirm", vec![("csrf", csrf_of(&list))]).await;
    assert_eq!(answer.status, 404, "{}", answer.body);

    // The other office pages answer.
    for page in ["/office/teams", "/office/trainings", "/office/certificates", "/office/volunteers", "/office/projects"]
    {
        let answer = web.get(page).await;
        assert_eq!(answer.status, 200, "{page}: {}", answer.body);
    }
    assert_eq!(web.get("/assets/console.css").await.status, 200);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn sessions_expire_after_their_ttl() {
    let (node, address) = county_with_console("session_ttl_s = 1\n").await;
    let mut web = Client::new(&address);
    web.log_in(&node.tokens.staff).await;
    assert_eq!(web.get("/region/330106").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answer = web.get("/region/330106").await;
    assert_eq!((answer.status, answer.header("location")), (303, Some("/login")), "an expired session logs in again");
    node.stop().await.unwrap();
}
