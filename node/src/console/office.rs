//! The county office's pages (`/office/…`): lists of volunteers, teams, projects, hours to confirm, trainings, and
//! printable service certificates; and the forms of the common actions (register a volunteer, publish a project,
//! record hours, confirm). Each page is one or a few in-process calls of the gRPC services as the session's
//! account: what the API refuses, the page shows (field errors next to their inputs, 403 and 404 as pages).

use chrono::{NaiveDateTime, TimeZone as _};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::certificate_service_server::CertificateService as _;
use ecovol_proto::v1::project_service_server::ProjectService as _;
use ecovol_proto::v1::recognition_service_server::RecognitionService as _;
use ecovol_proto::v1::service_record_service_server::ServiceRecordService as _;
use ecovol_proto::v1::team_service_server::TeamService as _;
use ecovol_proto::v1::volunteer_service_server::VolunteerService as _;
use hyper::{Method, StatusCode};

use super::Visit;
use super::page::{self, Form, Reply, escape};
use crate::service::certificate::CertificateApi;
use crate::service::hours::ServiceRecordApi;
use crate::service::project::ProjectApi;
use crate::service::recognition::RecognitionApi;
use crate::service::team::TeamApi;
use crate::service::volunteer::VolunteerApi;

/// Rows a list page asks for (the node's `limits.page_size_max` may lower it).
const LIST_ROWS: i32 = 200;
/// Projects whose unconfirmed records the hours page gathers.
const HOURS_PROJECTS_MAX: i32 = 100;

/// `/office/{rest}`.
pub async fn route(visit: &Visit<'_>, rest: &str) -> Reply {
    let get = visit.request.method == Method::GET;
    let post = visit.request.method == Method::POST;
    match rest {
        "volunteers" if get => volunteers(visit).await,
        "volunteers/new" if get => {
            // Most volunteers live in the county that registers them; "masses" is the commonest status.
            let mut form = Form::default();
            form.values.push(("home_division_code".into(), visit.app.node_code().to_string()));
            form.values.push(("political_status".into(), "3".into()));
            volunteer_form(visit, &form, StatusCode::OK)
        }
        "volunteers/new" if post => register_volunteer(visit).await,
        "teams" if get => teams(visit).await,
        "projects" if get => projects(visit).await,
        "projects/new" if get => project_form(visit, &Form::default(), StatusCode::OK),
        "projects/new" if post => publish_project(visit).await,
        "hours" if get => hours(visit).await,
        "hours/new" if get => {
            let mut form = Form::default();
            form.values.push(("idempotency_key".into(), idempotency_key()));
            form.values.push(("method".into(), "interval".into()));
            hours_form(visit, &form, StatusCode::OK)
        }
        "hours/new" if post => record_hours(visit).await,
        "trainings" if get => trainings(visit).await,
        "certificates" if get => certificates(visit, &Form::default(), None, StatusCode::OK),
        "certificates" if post => issue_certificate(visit).await,
        _ if post && rest.starts_with("hours/") && rest.ends_with("/confirm") => {
            confirm_hours(visit, &rest["hours/".len()..rest.len() - "/confirm".len()]).await
        }
        _ => page::error(
            visit.lang(),
            StatusCode::NOT_FOUND,
            &format!("{}: /office/{rest}", visit.lang().t("error.404")),
        ),
    }
}

/// A page of the office with `title` as its heading.
fn office_page(visit: &Visit<'_>, title: &str, body: &str, status: StatusCode) -> Reply {
    let main = format!("<h1>{}</h1>{}{body}", escape(title), page::notice(visit));
    page::html(status, page::layout(visit, title, &main))
}

/// A table with column headers (keys) and rows of already escaped cells; `empty` (a key) when there are none.
fn table(visit: &Visit<'_>, id: &str, columns: &[&str], rows: &[String], empty: &str) -> String {
    let lang = visit.lang();
    if rows.is_empty() {
        return format!("<p id=\"{id}-empty\">{}</p>", escape(lang.t(empty)));
    }
    let mut text = format!("<table id=\"{id}\"><thead><tr>");
    for column in columns {
        text.push_str(&format!("<th scope=\"col\">{}</th>", escape(lang.t(column))));
    }
    text.push_str("</tr></thead><tbody>");
    for row in rows {
        text.push_str(row);
    }
    text.push_str("</tbody></table>");
    text
}

fn china_time(timestamp: Option<&prost_types::Timestamp>) -> String {
    timestamp
        .and_then(crate::wire::from_timestamp)
        .map(|time| time.with_timezone(&crate::wire::china()).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A `datetime-local` value (China time) as a wire timestamp; None if it is not one (the API then says what is
/// missing).
fn parse_local_time(text: &str) -> Option<prost_types::Timestamp> {
    let text = text.trim();
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    let time = crate::wire::china().from_local_datetime(&parsed).single()?;
    Some(crate::wire::timestamp(time.with_timezone(&chrono::Utc)))
}

fn list(text: &str) -> Vec<String> {
    text.split([',', '，', '、']).map(str::trim).filter(|item| !item.is_empty()).map(str::to_string).collect()
}

fn idempotency_key() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 12];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    format!("console-{}", hex::encode(bytes))
}

/// The form's values as the user sent them (never the CSRF token).
fn submitted(visit: &Visit<'_>) -> Form {
    Form { values: visit.request.form.iter().filter(|(key, _)| key != "csrf").cloned().collect(), ..Form::default() }
}

fn form_start(visit: &Visit<'_>, id: &str, action: &str) -> String {
    format!(
        "<form class=\"office\" id=\"{id}\" method=\"post\" action=\"{action}\" novalidate>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><p>{}</p>",
        escape(&visit.csrf),
        escape(visit.lang().t("form.required_note"))
    )
}

/// After a refusal: the form again, or the refusal as a page when it is not about the form's fields (a role that
/// may not, an unknown record).
fn refused(
    visit: &Visit<'_>,
    status: &tonic::Status,
    mut form: Form,
    inputs: &[(&str, &str)],
    render: impl Fn(&Visit<'_>, &Form, StatusCode) -> Reply,
) -> Reply {
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => {
            form.refused(status, inputs);
            render(visit, &form, StatusCode::UNPROCESSABLE_ENTITY)
        }
        _ => page::status_page(visit.lang(), status),
    }
}

async fn volunteers(visit: &Visit<'_>) -> Reply {
    let lang = visit.lang();
    let api = VolunteerApi { app: visit.app.clone() };
    let request = pb::SearchVolunteersRequest { page_size: LIST_ROWS, ..Default::default() };
    let found = match api.search_volunteers(visit.call(request)).await {
        Ok(found) => found.into_inner(),
        Err(status) => return page::status_page(lang, &status),
    };
    let rows: Vec<String> = found
        .volunteers
        .iter()
        .map(|volunteer| {
            let gender = match pb::Gender::try_from(volunteer.gender) {
                Ok(pb::Gender::Male) => "♂",
                Ok(pb::Gender::Female) => "♀",
                _ => "",
            };
            format!(
                "<tr data-volunteer=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{gender}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&volunteer.volunteer_number),
                escape(&volunteer.volunteer_number),
                escape(&volunteer.name),
                escape(&volunteer.birth_date),
                escape(&volunteer.phone),
                escape(&volunteer.team_ids.join(", ")),
            )
        })
        .collect();
    let body = format!(
        "<p><a id=\"new-volunteer\" href=\"/office/volunteers/new\">{}</a></p>{}",
        escape(lang.t("volunteers.new")),
        table(
            visit,
            "volunteers",
            &["col.volunteer_number", "col.name", "col.gender", "col.birth_date", "col.phone", "col.teams"],
            &rows,
            "volunteers.none"
        )
    );
    office_page(visit, lang.t("volunteers.title"), &body, StatusCode::OK)
}

/// Request field → input name of the registration form (the identity number's input is `id_number`).
const VOLUNTEER_INPUTS: &[(&str, &str)] = &[
    ("name", "name"),
    ("identity_number", "id_number"),
    ("phone", "phone"),
    ("home_division_code", "home_division_code"),
    ("skills", "skills"),
    ("consent_to_processing", "consent_to_processing"),
    ("self_supporting", "self_supporting"),
    ("political_status", "political_status"),
    ("guardian_consent", "guardian_consent"),
];

fn volunteer_form(visit: &Visit<'_>, form: &Form, status: StatusCode) -> Reply {
    let lang = visit.lang();
    let statuses: Vec<(&str, String)> =
        [("1", "political.party_member"), ("2", "political.league_member"), ("3", "political.masses")]
            .into_iter()
            .map(|(value, key)| (value, lang.t(key).to_string()))
            .collect();
    let guardians: Vec<(&str, String)> = [("0", "guardian.none"), ("1", "guardian.guardian"), ("2", "guardian.parent")]
        .into_iter()
        .map(|(value, key)| (value, lang.t(key).to_string()))
        .collect();
    let body = format!(
        "{}{}{}{}{}{}{}{}{}{}{}<button type=\"submit\" id=\"submit\">{}</button></form>",
        form.alert(lang),
        form_start(visit, "volunteer-form", "/office/volunteers/new"),
        form.input(lang, "name", "text", true),
        form.input(lang, "id_number", "text", true),
        form.input(lang, "phone", "tel", true),
        form.input(lang, "home_division_code", "text", true),
        form.select(lang, "political_status", &statuses, true),
        form.input(lang, "skills", "text", false),
        form.checkbox(lang, "consent_to_processing"),
        form.select(lang, "guardian_consent", &guardians, false),
        form.checkbox(lang, "self_supporting"),
        escape(lang.t("submit.register")),
    );
    office_page(visit, lang.t("volunteers.new"), &body, status)
}

async fn register_volunteer(visit: &Visit<'_>) -> Reply {
    let form = submitted(visit);
    let field = |name: &str| form.value(name).trim().to_string();
    let request = pb::RegisterVolunteerRequest {
        name: field("name"),
        identity_number: field("id_number"),
        phone: field("phone"),
        skills: list(form.value("skills")),
        consent_to_processing: !form.value("consent_to_processing").is_empty(),
        self_supporting: !form.value("self_supporting").is_empty(),
        home_division_code: field("home_division_code"),
        political_status: field("political_status").parse().unwrap_or(0),
        guardian_consent: field("guardian_consent").parse().unwrap_or(0),
        ..Default::default()
    };
    let api = VolunteerApi { app: visit.app.clone() };
    match api.register_volunteer(visit.call(request)).await {
        Ok(answer) => {
            let number = answer.into_inner().volunteer.map(|v| v.volunteer_number).unwrap_or_default();
            page::redirect(&format!("/office/volunteers?notice=registered&id={}", page::encode(&number)))
        }
        Err(status) => refused(visit, &status, form, VOLUNTEER_INPUTS, volunteer_form),
    }
}

async fn teams(visit: &Visit<'_>) -> Reply {
    let lang = visit.lang();
    let api = TeamApi { app: visit.app.clone() };
    let found =
        match api.list_teams(visit.call(pb::ListTeamsRequest { page_size: LIST_ROWS, ..Default::default() })).await {
            Ok(found) => found.into_inner(),
            Err(status) => return page::status_page(lang, &status),
        };
    let rows: Vec<String> = found
        .teams
        .iter()
        .map(|team| {
            format!(
                "<tr data-team=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td class=\"number\">{}</td></tr>",
                escape(&team.team_id),
                escape(&team.team_id),
                escape(&team.name),
                team.active_member_count
            )
        })
        .collect();
    let body = table(visit, "teams", &["col.team_id", "col.name", "col.members"], &rows, "teams.none");
    office_page(visit, lang.t("teams.title"), &body, StatusCode::OK)
}

async fn projects(visit: &Visit<'_>) -> Reply {
    let lang = visit.lang();
    let api = ProjectApi { app: visit.app.clone() };
    let request = pb::SearchProjectsRequest { page_size: LIST_ROWS, ..Default::default() };
    let found = match api.search_projects(visit.call(request)).await {
        Ok(found) => found.into_inner(),
        Err(status) => return page::status_page(lang, &status),
    };
    let rows: Vec<String> = found
        .projects
        .iter()
        .map(|project| {
            format!(
                "<tr data-project=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"number seats\">{}</td><td class=\"number taken\">{}</td><td class=\"number waitlist\">{}</td></tr>",
                escape(&project.project_id),
                escape(&project.project_id),
                escape(&project.title),
                china_time(project.start_at.as_ref()),
                china_time(project.end_at.as_ref()),
                project.capacity,
                project.accepted_count,
                project.waitlisted_count,
            )
        })
        .collect();
    let body = format!(
        "<p><a id=\"new-project\" href=\"/office/projects/new\">{}</a></p>{}",
        escape(lang.t("projects.new")),
        table(
            visit,
            "projects",
            &["col.project_id", "col.title", "col.start", "col.end", "col.seats", "col.taken", "col.waitlist"],
            &rows,
            "projects.none"
        )
    );
    office_page(visit, lang.t("projects.title"), &body, StatusCode::OK)
}

const PROJECT_INPUTS: &[(&str, &str)] = &[
    ("title", "title"),
    ("description", "description"),
    ("activity_kind", "activity_kind"),
    ("organising_team_id", "organising_team_id"),
    ("site_id", "site_id"),
    ("start_at", "start_at"),
    ("end_at", "end_at"),
    ("capacity", "capacity"),
    ("min_age", "min_age"),
    ("skills_wanted", "skills_wanted"),
    ("risky", "risky"),
    ("insured", "insured"),
    ("contact", "contact"),
];

fn project_form(visit: &Visit<'_>, form: &Form, status: StatusCode) -> Reply {
    let lang = visit.lang();
    let kinds: Vec<(&str, String)> = [
        ("1", "kind.theory_promotion"),
        ("2", "kind.publicity_education"),
        ("3", "kind.social_supervision"),
        ("4", "kind.green_low_carbon"),
        ("5", "kind.international_exchange"),
    ]
    .into_iter()
    .map(|(value, key)| (value, lang.t(key).to_string()))
    .collect();
    let body = format!(
        "{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}<button type=\"submit\" id=\"submit\">{}</button></form>",
        form.alert(lang),
        form_start(visit, "project-form", "/office/projects/new"),
        form.input(lang, "title", "text", true),
        form.textarea(lang, "description", false),
        form.select(lang, "activity_kind", &kinds, true),
        form.input(lang, "organising_team_id", "text", true),
        form.input(lang, "site_id", "text", false),
        form.input(lang, "start_at", "datetime-local", true),
        form.input(lang, "end_at", "datetime-local", true),
        form.input(lang, "capacity", "number", true),
        form.input(lang, "min_age", "number", false),
        form.input(lang, "skills_wanted", "text", false),
        form.checkbox(lang, "risky"),
        form.checkbox(lang, "insured"),
        form.input(lang, "contact", "text", false),
        escape(lang.t("submit.publish")),
    );
    office_page(visit, lang.t("projects.new"), &body, status)
}

/// Creates the project and publishes it (two calls of the API; a refused publication leaves the draft, named in
/// the form's alert).
async fn publish_project(visit: &Visit<'_>) -> Reply {
    let form = submitted(visit);
    let field = |name: &str| form.value(name).trim().to_string();
    let request = pb::CreateProjectRequest {
        title: field("title"),
        description: field("description"),
        activity_kind: field("activity_kind").parse().unwrap_or(0),
        organising_team_id: field("organising_team_id"),
        site_id: field("site_id"),
        start_at: parse_local_time(form.value("start_at")),
        end_at: parse_local_time(form.value("end_at")),
        capacity: field("capacity").parse().unwrap_or(0),
        min_age: field("min_age").parse().unwrap_or(0),
        skills_wanted: list(form.value("skills_wanted")),
        risky: !form.value("risky").is_empty(),
        insured: !form.value("insured").is_empty(),
        contact: field("contact"),
    };
    let api = ProjectApi { app: visit.app.clone() };
    let project = match api.create_project(visit.call(request)).await {
        Ok(answer) => answer.into_inner().project.unwrap_or_default(),
        Err(status) => return refused(visit, &status, form, PROJECT_INPUTS, project_form),
    };
    let publish = pb::PublishProjectRequest { project_id: project.project_id.clone() };
    match api.publish_project(visit.call(publish)).await {
        Ok(_) => page::redirect(&format!("/office/projects?notice=published&id={}", page::encode(&project.project_id))),
        Err(status) => {
            let status = tonic::Status::new(status.code(), format!("{}: {}", project.project_id, status.message()));
            refused(visit, &status, form, &[], project_form)
        }
    }
}

async fn hours(visit: &Visit<'_>) -> Reply {
    let lang = visit.lang();
    let projects = ProjectApi { app: visit.app.clone() };
    let records = ServiceRecordApi { app: visit.app.clone() };
    let request = pb::SearchProjectsRequest { page_size: HOURS_PROJECTS_MAX, ..Default::default() };
    let found = match projects.search_projects(visit.call(request)).await {
        Ok(found) => found.into_inner(),
        Err(status) => return page::status_page(lang, &status),
    };
    let mut rows = Vec::new();
    for project in &found.projects {
        let request = pb::ListServiceRecordsRequest {
            project_id: project.project_id.clone(),
            state: pb::ServiceRecordState::Recorded as i32,
            page_size: LIST_ROWS,
            ..Default::default()
        };
        let listed = match records.list_service_records(visit.call(request)).await {
            Ok(listed) => listed.into_inner(),
            Err(status) => return page::status_page(lang, &status),
        };
        for record in listed.records {
            rows.push(format!(
                "<tr data-record=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td class=\"number\">{}.{:02}</td><td>{}</td>\
                 <td><form method=\"post\" action=\"/office/hours/{}/confirm\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\" class=\"confirm\" aria-label=\"{} {}\">{}</button></form></td></tr>",
                escape(&record.record_id),
                escape(&record.record_id),
                escape(&record.project_id),
                escape(&record.volunteer_number),
                china_time(record.start_time.as_ref()),
                record.hours_x100 / 100,
                record.hours_x100 % 100,
                escape(&record.content),
                escape(&record.record_id),
                escape(&visit.csrf),
                escape(lang.t("confirm")),
                escape(&record.record_id),
                escape(lang.t("confirm")),
            ));
        }
    }
    let body = format!(
        "<p><a id=\"new-hours\" href=\"/office/hours/new\">{}</a></p>{}",
        escape(lang.t("hours.new")),
        table(
            visit,
            "hours",
            &[
                "col.record_id",
                "col.project_id",
                "col.volunteer_number",
                "col.start",
                "col.hours",
                "col.content",
                "col.action"
            ],
            &rows,
            "hours.none"
        )
    );
    office_page(visit, lang.t("hours.title"), &body, StatusCode::OK)
}

const HOURS_INPUTS: &[(&str, &str)] = &[
    ("project_id", "project_id"),
    ("volunteer_number", "volunteer_number"),
    ("method", "method"),
    ("start_time", "start_time"),
    ("end_time", "end_time"),
    ("content", "content"),
    ("walk_in", "walk_in"),
];

fn hours_form(visit: &Visit<'_>, form: &Form, status: StatusCode) -> Reply {
    let lang = visit.lang();
    let methods = [
        ("interval", lang.t("method.interval").to_string()),
        ("check_in_out", lang.t("method.check_in_out").to_string()),
    ];
    let body = format!(
        "{}{}<input type=\"hidden\" name=\"idempotency_key\" value=\"{}\">{}{}{}{}{}{}{}<button type=\"submit\" id=\"submit\">{}</button></form>",
        form.alert(lang),
        form_start(visit, "hours-form", "/office/hours/new"),
        escape(form.value("idempotency_key")),
        form.input(lang, "project_id", "text", true),
        form.input(lang, "volunteer_number", "text", true),
        form.select(lang, "method", &methods, true),
        form.input(lang, "start_time", "datetime-local", true),
        form.input(lang, "end_time", "datetime-local", true),
        form.textarea(lang, "content", true),
        form.checkbox(lang, "walk_in"),
        escape(lang.t("submit.record")),
    );
    office_page(visit, lang.t("hours.new"), &body, status)
}

async fn record_hours(visit: &Visit<'_>) -> Reply {
    let form = submitted(visit);
    let field = |name: &str| form.value(name).trim().to_string();
    let method = match form.value("method") {
        "check_in_out" => pb::RecordingMethod::CheckInOut,
        _ => pb::RecordingMethod::Interval,
    };
    let request = pb::RecordServiceRequest {
        project_id: field("project_id"),
        volunteer_number: field("volunteer_number"),
        method: method as i32,
        start_time: parse_local_time(form.value("start_time")),
        end_time: parse_local_time(form.value("end_time")),
        content: field("content"),
        walk_in: !form.value("walk_in").is_empty(),
        idempotency_key: field("idempotency_key"),
    };
    let api = ServiceRecordApi { app: visit.app.clone() };
    match api.record_service(visit.call(request)).await {
        Ok(answer) => {
            let id = answer.into_inner().record.map(|record| record.record_id).unwrap_or_default();
            page::redirect(&format!("/office/hours?notice=recorded&id={}", page::encode(&id)))
        }
        Err(status) => refused(visit, &status, form, HOURS_INPUTS, hours_form),
    }
}

async fn confirm_hours(visit: &Visit<'_>, record_id: &str) -> Reply {
    let api = ServiceRecordApi { app: visit.app.clone() };
    let request = pb::ConfirmServiceRecordRequest { record_id: record_id.to_string() };
    match api.confirm_service_record(visit.call(request)).await {
        Ok(_) => page::redirect(&format!("/office/hours?notice=confirmed&id={}", page::encode(record_id))),
        Err(status) => page::status_page(visit.lang(), &status),
    }
}

async fn trainings(visit: &Visit<'_>) -> Reply {
    let lang = visit.lang();
    let api = RecognitionApi { app: visit.app.clone() };
    let found = match api
        .list_trainings(visit.call(pb::ListTrainingsRequest { page_size: LIST_ROWS, page_token: String::new() }))
        .await
    {
        Ok(found) => found.into_inner(),
        Err(status) => return page::status_page(lang, &status),
    };
    let rows: Vec<String> = found
        .trainings
        .iter()
        .map(|training| {
            format!(
                "<tr data-training=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td class=\"number\">{}</td></tr>",
                escape(&training.training_id),
                escape(&training.date),
                escape(&training.title),
                escape(&training.organiser),
                training.attendee_count
            )
        })
        .collect();
    let body = table(
        visit,
        "trainings",
        &["col.date", "col.title", "col.organiser", "col.attendees"],
        &rows,
        "trainings.none",
    );
    office_page(visit, lang.t("trainings.title"), &body, StatusCode::OK)
}

const CERTIFICATE_INPUTS: &[(&str, &str)] =
    &[("volunteer_number", "volunteer_number"), ("start_date", "start_date"), ("end_date", "end_date")];

fn certificates(visit: &Visit<'_>, form: &Form, certificate: Option<&pb::Certificate>, status: StatusCode) -> Reply {
    let lang = visit.lang();
    let mut body = format!(
        "<p class=\"no-print\">{}</p>{}{}{}{}{}<button type=\"submit\" id=\"submit\">{}</button></form>",
        escape(lang.t("certificates.hint")),
        form.alert(lang),
        form_start(visit, "certificate-form", "/office/certificates"),
        form.input(lang, "volunteer_number", "text", true),
        form.input(lang, "start_date", "date", true),
        form.input(lang, "end_date", "date", true),
        escape(lang.t("submit.issue")),
    );
    if let Some(certificate) = certificate {
        body.push_str(&format!(
            "<article class=\"certificate\" id=\"certificate\" data-number=\"{}\"><h2>{}</h2><dl>\
             <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{} ({})</dd><dt>{}</dt><dd>{} – {}</dd>\
             <dt>{}</dt><dd id=\"certificate-total\" data-value=\"{}\">{}</dd><dt>{}</dt><dd>{} ({})</dd><dt>{}</dt><dd>{}</dd></dl>",
            escape(&certificate.certificate_number),
            escape(lang.t("certificates.title")),
            escape(lang.t("certificate.number")),
            escape(&certificate.certificate_number),
            escape(lang.t("col.name")),
            escape(&certificate.volunteer_name),
            escape(&certificate.volunteer_number),
            escape(lang.t("certificate.period")),
            escape(&certificate.period_start_date),
            escape(&certificate.period_end_date),
            escape(lang.t("certificate.total")),
            certificate.total_hours_x100,
            escape(&certificate.total_hours),
            escape(lang.t("certificate.issuer")),
            escape(&certificate.issuer_name),
            escape(&certificate.issuer_code),
            escape(lang.t("certificate.issued")),
            escape(&certificate.issue_date),
        ));
        let rows: Vec<String> = certificate
            .lines
            .iter()
            .map(|line| {
                format!(
                    "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"number\">{}.{:02}</td><td>{}</td></tr>",
                    china_time(line.start_time.as_ref()),
                    escape(&line.project_title),
                    line.hours_x100 / 100,
                    line.hours_x100 % 100,
                    escape(&line.content)
                )
            })
            .collect();
        body.push_str(&table(
            visit,
            "certificate-lines",
            &["col.start", "col.title", "col.hours", "col.content"],
            &rows,
            "hours.none",
        ));
        body.push_str("</article>");
    }
    office_page(visit, lang.t("certificates.title"), &body, status)
}

async fn issue_certificate(visit: &Visit<'_>) -> Reply {
    let form = submitted(visit);
    let field = |name: &str| form.value(name).trim().to_string();
    let request = pb::IssueCertificateRequest {
        volunteer_number: field("volunteer_number"),
        start_date: field("start_date"),
        end_date: field("end_date"),
    };
    let api = CertificateApi { app: visit.app.clone() };
    match api.issue_certificate(visit.call(request)).await {
        Ok(answer) => {
            let certificate = answer.into_inner().certificate;
            certificates(visit, &form, certificate.as_ref(), StatusCode::OK)
        }
        Err(status) => refused(visit, &status, form, CERTIFICATE_INPUTS, |visit, form, status| {
            certificates(visit, form, None, status)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_are_china_time() {
        let time = parse_local_time("2026-03-01T09:30").map(|t| t.seconds);
        assert_eq!(time, Some(chrono::DateTime::parse_from_rfc3339("2026-03-01T01:30:00Z").unwrap().timestamp()));
        assert!(parse_local_time("2026-03-01").is_none());
        assert!(parse_local_time("").is_none());
    }

    #[test]
    fn lists_split_on_chinese_and_latin_commas() {
        assert_eq!(list("急救, 摄影，讲解、 "), vec!["急救", "摄影", "讲解"]);
    }
}
