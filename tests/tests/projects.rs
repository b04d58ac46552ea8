//! Projects, the project library and sign-ups over real gRPC against a real node: the life of a project, every
//! refusal of the issue with its precise code, the library's filters, the audited demonstration selection,
//! capacity changes and waitlist promotion.

use chrono::{DateTime, Datelike, Duration, Utc};
use ecovol_node::wire::timestamp;
use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::{adult, identity_number};
use ecovol_tests::{Authed, Bearer, NodeSpec, TestNode, violated_fields};
use pb::project_service_client::ProjectServiceClient;
use pb::sign_up_service_client::SignUpServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;

/// A node with one team (and its manager), a second team, a site, and a few helpers.
struct Office {
    node: TestNode,
    team_id: String,
    other_team_id: String,
    site_id: String,
    manager: String,
    other_manager: String,
}

impl Office {
    async fn start() -> Office {
        let node = TestNode::start(NodeSpec::county("330106")).await.expect("node starts");
        let mut teams = node.teams(&node.tokens.staff);
        let mut team = async |name: &str| {
            teams
                .create_team(pb::CreateTeamRequest {
                    name: name.into(),
                    kind: pb::TeamKind::SocialOrganisation as i32,
                    ..Default::default()
                })
                .await
                .expect("team created")
                .into_inner()
                .team
                .expect("team")
                .team_id
        };
        let team_id = team("西湖环保志愿队").await;
        let other_team_id = team("滨江环保志愿队").await;
        let site_id = node
            .sites(&node.tokens.staff)
            .create_site(pb::CreateSiteRequest {
                name: "西湖生态环境教育馆".into(),
                kind: pb::SiteKind::EcoEducationVenue as i32,
                address: "杭州市西湖区".into(),
                ..Default::default()
            })
            .await
            .expect("site created")
            .into_inner()
            .site
            .expect("site")
            .site_id;
        let mut office =
            Office { node, team_id, other_team_id, site_id, manager: String::new(), other_manager: String::new() };
        office.manager = office.account(pb::Role::TeamManager, &office.team_id.clone(), "").await;
        office.other_manager = office.account(pb::Role::TeamManager, &office.other_team_id.clone(), "").await;
        office
    }

    /// A new account's token.
    async fn account(&self, role: pb::Role, team_id: &str, volunteer_number: &str) -> String {
        self.node
            .accounts(&self.node.tokens.operator)
            .create_account(pb::CreateAccountRequest {
                name: format!("{role:?} {team_id}{volunteer_number}"),
                department: pb::Department::EcologyBureau as i32,
                roles: vec![role as i32],
                team_id: team_id.into(),
                volunteer_number: volunteer_number.into(),
                ..Default::default()
            })
            .await
            .expect("account created")
            .into_inner()
            .token
    }

    fn projects(&self, token: &str) -> ProjectServiceClient<Authed> {
        ProjectServiceClient::new(InterceptedService::new(self.node.channel.clone(), Bearer::new(token)))
    }

    fn sign_ups(&self, token: &str) -> SignUpServiceClient<Authed> {
        SignUpServiceClient::new(InterceptedService::new(self.node.channel.clone(), Bearer::new(token)))
    }

    fn staff(&self) -> String {
        self.node.tokens.staff.clone()
    }

    /// A valid creation for the first team, a week from now, four hours long.
    fn draft(&self, title: &str) -> pb::CreateProjectRequest {
        let start = Utc::now() + Duration::days(7);
        pb::CreateProjectRequest {
            title: title.into(),
            description: "沿湖捡拾垃圾，宣传垃圾分类".into(),
            activity_kind: pb::ActivityKind::GreenLowCarbon as i32,
            organising_team_id: self.team_id.clone(),
            start_at: Some(timestamp(start)),
            end_at: Some(timestamp(start + Duration::hours(4))),
            capacity: 10,
            contact: "王老师 0571-00000000".into(),
            ..Default::default()
        }
    }

    async fn create(&self, token: &str, request: pb::CreateProjectRequest) -> pb::Project {
        self.projects(token).create_project(request).await.expect("project created").into_inner().project.unwrap()
    }

    async fn publish(&self, project_id: &str) -> pb::Project {
        self.projects(&self.staff())
            .publish_project(pb::PublishProjectRequest { project_id: project_id.into() })
            .await
            .expect("project published")
            .into_inner()
            .project
            .unwrap()
    }

    /// A published project made from `request`.
    async fn published(&self, request: pb::CreateProjectRequest) -> String {
        let project_id = self.create(&self.staff(), request).await.project_id;
        self.publish(&project_id).await;
        project_id
    }

    async fn get(&self, project_id: &str) -> pb::Project {
        self.projects(&self.staff())
            .get_project(pb::GetProjectRequest { project_id: project_id.into() })
            .await
            .expect("project read")
            .into_inner()
            .project
            .unwrap()
    }

    async fn register(&self, request: pb::RegisterVolunteerRequest) -> String {
        self.node
            .volunteers(&self.staff())
            .register_volunteer(request)
            .await
            .expect("volunteer registered")
            .into_inner()
            .volunteer
            .unwrap()
            .volunteer_number
    }

    async fn sign_up(&self, token: &str, project_id: &str, number: &str) -> Result<pb::SignUpResponse, tonic::Status> {
        self.sign_ups(token)
            .sign_up(pb::SignUpRequest {
                project_id: project_id.into(),
                volunteer_number: number.into(),
                idempotency_key: String::new(),
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

fn status_of(answer: &pb::SignUpResponse) -> (i32, u32) {
    let sign_up = answer.sign_up.clone().unwrap_or_default();
    (sign_up.status, sign_up.waitlist_position)
}

const ACCEPTED: i32 = pb::SignUpStatus::Accepted as i32;
const WAITLISTED: i32 = pb::SignUpStatus::Waitlisted as i32;

fn refused(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, words: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(words), "{:?} should say {words:?}", status.message());
}

#[tokio::test]
async fn a_project_is_drafted_edited_published_closed_and_then_final() {
    let office = Office::start().await;
    // The team's manager runs their own team's projects.
    let draft = office
        .create(&office.manager, pb::CreateProjectRequest { site_id: office.site_id.clone(), ..office.draft("净滩") })
        .await;
    assert_eq!(draft.project_id, "330106-P000001");
    assert_eq!(draft.status, pb::ProjectStatus::Draft as i32);
    assert_eq!((draft.version, draft.site_id.as_str()), (1, office.site_id.as_str()));

    let mut manager = office.projects(&office.manager);
    let edited = manager
        .update_project(pb::UpdateProjectRequest {
            project_id: draft.project_id.clone(),
            expected_version: 1,
            title: Some("西湖净滩".into()),
            site_id: Some(String::new()),
            skills_wanted: Some(pb::SkillList { skills: vec!["垃圾分类".into()] }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!((edited.title.as_str(), edited.site_id.as_str(), edited.version), ("西湖净滩", "", 2));
    assert_eq!(edited.skills_wanted, ["垃圾分类"]);
    let stale = manager
        .update_project(pb::UpdateProjectRequest {
            project_id: draft.project_id.clone(),
            expected_version: 1,
            title: Some("again".into()),
            ..Default::default()
        })
        .await;
    refused(stale, Code::FailedPrecondition, "expected version");
    // Moving the end before the start is refused, naming the field.
    let backwards = manager
        .update_project(pb::UpdateProjectRequest {
            project_id: draft.project_id.clone(),
            end_at: Some(timestamp(Utc::now())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&backwards), ["end_at"]);

    // A draft cannot be closed; volunteers do not see drafts.
    let close = |id: &str| pb::CloseProjectRequest { project_id: id.into() };
    refused(manager.close_project(close(&draft.project_id)).await, Code::FailedPrecondition, "draft");
    let number = office.register(adult(1)).await;
    let volunteer = office.account(pb::Role::Volunteer, "", &number).await;
    let hidden =
        office.projects(&volunteer).get_project(pb::GetProjectRequest { project_id: draft.project_id.clone() }).await;
    refused(hidden, Code::NotFound, &draft.project_id);

    let published = manager
        .publish_project(pb::PublishProjectRequest { project_id: draft.project_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(published.status, pb::ProjectStatus::Published as i32);
    assert!(published.published_at.is_some());
    let again = manager.publish_project(pb::PublishProjectRequest { project_id: draft.project_id.clone() }).await;
    refused(again, Code::FailedPrecondition, "only drafts are published");
    // Published projects are still edited.
    manager
        .update_project(pb::UpdateProjectRequest {
            project_id: draft.project_id.clone(),
            contact: Some("李老师".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let closed = manager.close_project(close(&draft.project_id)).await.unwrap().into_inner().project.unwrap();
    assert_eq!(closed.status, pb::ProjectStatus::Closed as i32);
    // Closed and cancelled are final.
    let edit_closed = manager
        .update_project(pb::UpdateProjectRequest {
            project_id: draft.project_id.clone(),
            title: Some("x".into()),
            ..Default::default()
        })
        .await;
    refused(edit_closed, Code::FailedPrecondition, "final");
    let cancel_closed = manager
        .cancel_project(pb::CancelProjectRequest { project_id: draft.project_id.clone(), reason: "雨天".into() })
        .await;
    refused(cancel_closed, Code::FailedPrecondition, "final");

    let other = office.create(&office.manager, office.draft("宣讲")).await;
    let no_reason =
        manager.cancel_project(pb::CancelProjectRequest { project_id: other.project_id.clone(), reason: " ".into() });
    assert_eq!(violated_fields(&no_reason.await.unwrap_err()), ["reason"]);
    let cancelled = manager
        .cancel_project(pb::CancelProjectRequest { project_id: other.project_id.clone(), reason: "台风".into() })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(cancelled.status, pb::ProjectStatus::Cancelled as i32);
    refused(
        manager.publish_project(pb::PublishProjectRequest { project_id: other.project_id }).await,
        Code::FailedPrecondition,
        "only drafts",
    );
}

#[tokio::test]
async fn bad_projects_are_refused_with_every_broken_field_at_once() {
    let office = Office::start().await;
    let mut staff = office.projects(&office.staff());
    let start = Utc::now() + Duration::days(3);
    let bad = pb::CreateProjectRequest {
        title: "题".repeat(101),
        description: "述".repeat(2001),
        activity_kind: 0,
        organising_team_id: "team/../x".into(),
        site_id: "a b".into(),
        start_at: Some(timestamp(start)),
        end_at: Some(timestamp(start)),
        capacity: 0,
        min_age: 101,
        skills_wanted: vec!["清理".into(), "清理".into()],
        ..Default::default()
    };
    let status = staff.create_project(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        [
            "title",
            "description",
            "activity_kind",
            "organising_team_id",
            "site_id",
            "end_at",
            "capacity",
            "min_age",
            "skills_wanted[1]"
        ]
    );
    let missing_times =
        pb::CreateProjectRequest { start_at: None, end_at: None, capacity: 100_001, ..office.draft("x") };
    assert_eq!(
        violated_fields(&staff.create_project(missing_times).await.unwrap_err()),
        ["start_at", "end_at", "capacity"]
    );
    // The largest allowed values pass.
    let edge =
        pb::CreateProjectRequest { title: "题".repeat(100), capacity: 100_000, min_age: 100, ..office.draft("") };
    staff.create_project(edge).await.unwrap();

    // A team or site that does not exist is NotFound.
    let unknown_team = pb::CreateProjectRequest { organising_team_id: "330106-T000099".into(), ..office.draft("x") };
    refused(staff.create_project(unknown_team).await, Code::NotFound, "team 330106-T000099");
    let unknown_site = pb::CreateProjectRequest { site_id: "330106-S000099".into(), ..office.draft("x") };
    refused(staff.create_project(unknown_site).await, Code::NotFound, "site 330106-S000099");
}

#[tokio::test]
async fn risky_projects_need_insurance_before_and_after_publishing() {
    let office = Office::start().await;
    let risky = office.create(&office.staff(), pb::CreateProjectRequest { risky: true, ..office.draft("溯溪") }).await;
    let mut staff = office.projects(&office.staff());
    let publish = pb::PublishProjectRequest { project_id: risky.project_id.clone() };
    refused(
        staff.publish_project(publish.clone()).await,
        Code::FailedPrecondition,
        "Regulations on Volunteer Service art. 17",
    );
    staff
        .update_project(pb::UpdateProjectRequest {
            project_id: risky.project_id.clone(),
            insured: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    staff.publish_project(publish).await.unwrap();
    // Dropping the insurance of a published risky project is refused too.
    let uninsure = staff
        .update_project(pb::UpdateProjectRequest {
            project_id: risky.project_id.clone(),
            insured: Some(false),
            ..Default::default()
        })
        .await;
    refused(uninsure, Code::FailedPrecondition, "art. 17");
    assert!(office.get(&risky.project_id).await.insured);
}

#[tokio::test]
async fn managers_run_only_their_own_teams_projects_and_marks_are_for_staff() {
    let office = Office::start().await;
    let foreign = pb::CreateProjectRequest { organising_team_id: office.other_team_id.clone(), ..office.draft("x") };
    refused(office.projects(&office.manager).create_project(foreign).await, Code::PermissionDenied, "manager");
    let project = office.create(&office.manager, office.draft("净滩")).await;
    let mut other = office.projects(&office.other_manager);
    let id = project.project_id.clone();
    refused(
        other.publish_project(pb::PublishProjectRequest { project_id: id.clone() }).await,
        Code::PermissionDenied,
        "",
    );
    refused(
        other.set_project_capacity(pb::SetProjectCapacityRequest { project_id: id.clone(), capacity: 5 }).await,
        Code::PermissionDenied,
        "",
    );
    refused(
        other.cancel_project(pb::CancelProjectRequest { project_id: id.clone(), reason: "x".into() }).await,
        Code::PermissionDenied,
        "",
    );
    let mark = pb::MarkProjectRequest { project_id: id.clone(), key_project: Some(true), ..Default::default() };
    refused(office.projects(&office.manager).mark_project(mark.clone()).await, Code::PermissionDenied, "staff");
    // Auditors have no business with projects.
    refused(
        office.projects(&office.node.tokens.auditor).get_project(pb::GetProjectRequest { project_id: id }).await,
        Code::PermissionDenied,
        "",
    );
}

#[tokio::test]
async fn demonstration_projects_are_selected_by_staff_with_a_reason_and_audited() {
    let office = Office::start().await;
    let mut staff = office.projects(&office.staff());
    let draft = office.create(&office.staff(), office.draft("净滩")).await;
    let select = |id: &str, reason: &str| pb::MarkProjectRequest {
        project_id: id.into(),
        demonstration: Some(true),
        reason: reason.into(),
        ..Default::default()
    };
    assert_eq!(violated_fields(&staff.mark_project(select(&draft.project_id, "")).await.unwrap_err()), ["reason"]);
    refused(staff.mark_project(select(&draft.project_id, "成效显著")).await, Code::FailedPrecondition, "published");
    office.publish(&draft.project_id).await;
    let marked = staff
        .mark_project(pb::MarkProjectRequest {
            key_project: Some(true),
            ..select(&draft.project_id, "连续三年成效显著")
        })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert!(marked.demonstration && marked.key_project && !marked.brand_project);
    assert_eq!(marked.demonstration_reason, "连续三年成效显著");

    let mut audit = office.node.audit(&office.node.tokens.auditor);
    let entries = audit.list_audit_entries(pb::ListAuditEntriesRequest::default()).await.unwrap().into_inner().entries;
    let marks: Vec<_> = entries.iter().filter(|entry| entry.operation == "ProjectService/MarkProject").collect();
    assert_eq!(marks.len(), 3, "refusals are audited too");
    let selected = marks.last().unwrap();
    assert_eq!(selected.outcome, pb::Outcome::Ok as i32);
    assert_eq!(selected.target, draft.project_id);
    assert!(selected.detail.contains("demonstration selected: 连续三年成效显著"), "{}", selected.detail);
    assert!(selected.account_name.contains("staff"));
}

#[tokio::test]
async fn the_library_filters_by_kind_team_site_time_marks_text_and_status_in_pages() {
    let office = Office::start().await;
    let staff = office.staff();
    let week = Utc::now() + Duration::days(7);
    let at =
        |start: DateTime<Utc>, hours: i64| (Some(timestamp(start)), Some(timestamp(start + Duration::hours(hours))));
    let (start_a, end_a) = at(week, 4);
    let (start_b, end_b) = at(week + Duration::days(10), 4);
    let a = office
        .published(pb::CreateProjectRequest {
            start_at: start_a,
            end_at: end_a,
            site_id: office.site_id.clone(),
            ..office.draft("西湖净滩")
        })
        .await;
    let b = office
        .published(pb::CreateProjectRequest {
            start_at: start_b,
            end_at: end_b,
            activity_kind: pb::ActivityKind::TheoryPromotion as i32,
            description: "走进社区宣讲生态文明".into(),
            ..office.draft("宣讲进社区")
        })
        .await;
    let c = office
        .published(pb::CreateProjectRequest {
            organising_team_id: office.other_team_id.clone(),
            activity_kind: pb::ActivityKind::SocialSupervision as i32,
            ..office.draft("河道监督")
        })
        .await;
    let draft = office.create(&staff, office.draft("草稿项目")).await.project_id;
    office.projects(&staff).close_project(pb::CloseProjectRequest { project_id: c.clone() }).await.unwrap();
    office
        .projects(&staff)
        .mark_project(pb::MarkProjectRequest { project_id: b.clone(), brand_project: Some(true), ..Default::default() })
        .await
        .unwrap();

    let number = office.register(adult(1)).await;
    let volunteer = office.account(pb::Role::Volunteer, "", &number).await;
    let search = async |token: &str, request: pb::SearchProjectsRequest| -> Vec<String> {
        let mut ids = Vec::new();
        let mut request = pb::SearchProjectsRequest { page_size: 1, ..request };
        loop {
            let page = office.projects(token).search_projects(request.clone()).await.unwrap().into_inner();
            ids.extend(page.projects.into_iter().map(|p| p.project_id));
            if page.next_page_token.is_empty() {
                return ids;
            }
            request.page_token = page.next_page_token;
        }
    };
    let all = pb::SearchProjectsRequest::default;
    // The library: published and past (closed) projects, for everyone, one per page here.
    assert_eq!(search(&volunteer, all()).await, [a.clone(), b.clone(), c.clone()]);
    let kind = pb::SearchProjectsRequest { activity_kind: pb::ActivityKind::TheoryPromotion as i32, ..all() };
    assert_eq!(search(&volunteer, kind).await, [b.as_str()]);
    let team = pb::SearchProjectsRequest { organising_team_id: office.other_team_id.clone(), ..all() };
    assert_eq!(search(&volunteer, team).await, [c.as_str()]);
    let site = pb::SearchProjectsRequest { site_id: office.site_id.clone(), ..all() };
    assert_eq!(search(&volunteer, site).await, [a.as_str()]);
    let (from, to) = at(week + Duration::days(9), 48);
    let time = pb::SearchProjectsRequest { time_from: from, time_to: to, ..all() };
    assert_eq!(search(&volunteer, time).await, [b.as_str()]);
    let brand = pb::SearchProjectsRequest { brand_project: true, ..all() };
    assert_eq!(search(&volunteer, brand).await, [b.as_str()]);
    let text = pb::SearchProjectsRequest { text: "生态文明".into(), ..all() };
    assert_eq!(search(&volunteer, text).await, [b.as_str()]);
    let closed = pb::SearchProjectsRequest { status: pb::ProjectStatus::Closed as i32, ..all() };
    assert_eq!(search(&volunteer, closed).await, [c.as_str()]);
    // Drafts: staff and their team's manager see them; volunteers and other managers do not.
    let drafts = || pb::SearchProjectsRequest { status: pb::ProjectStatus::Draft as i32, ..all() };
    assert_eq!(search(&staff, drafts()).await, [draft.as_str()]);
    assert_eq!(search(&office.manager, drafts()).await, [draft.as_str()]);
    assert!(search(&office.other_manager, drafts()).await.is_empty());
    assert!(search(&volunteer, drafts()).await.is_empty());
    // Bad filters are named.
    let bad = pb::SearchProjectsRequest { activity_kind: 99, time_from: to, time_to: from, ..all() };
    let status = office.projects(&staff).search_projects(bad).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["activity_kind", "time_to"]);
}

#[tokio::test]
async fn sign_ups_are_refused_with_a_clear_reason() {
    let office = Office::start().await;
    let staff = office.staff();
    let open = office.published(office.draft("净滩")).await;
    let adult_number = office.register(adult(1)).await;

    // Not open: a draft.
    let draft = office.create(&staff, office.draft("草稿")).await.project_id;
    refused(office.sign_up(&staff, &draft, &adult_number).await, Code::FailedPrecondition, "not open");
    // Closed because it started.
    let now = Utc::now();
    let started = office
        .published(pb::CreateProjectRequest {
            start_at: Some(timestamp(now - Duration::hours(1))),
            end_at: Some(timestamp(now + Duration::hours(1))),
            ..office.draft("进行中")
        })
        .await;
    refused(office.sign_up(&staff, &started, &adult_number).await, Code::FailedPrecondition, "closed when it started");
    // Unknown project or volunteer.
    refused(office.sign_up(&staff, "330106-P000099", &adult_number).await, Code::NotFound, "project");
    refused(office.sign_up(&staff, &open, "330106-00000099").await, Code::NotFound, "volunteer");
    // Bad input, all at once.
    let bad = office
        .sign_ups(&staff)
        .sign_up(pb::SignUpRequest {
            project_id: "p/1".into(),
            volunteer_number: String::new(),
            idempotency_key: "k".repeat(65),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["project_id", "volunteer_number", "idempotency_key"]);

    // Inactive.
    let leaving = office.register(adult(2)).await;
    office
        .node
        .volunteers(&staff)
        .deactivate_volunteer(pb::DeactivateVolunteerRequest {
            volunteer_number: leaving.clone(),
            reason: "搬家".into(),
        })
        .await
        .unwrap();
    refused(office.sign_up(&staff, &open, &leaving).await, Code::FailedPrecondition, "inactive");
    // Too young: adult(1) was born in 1960.
    let seniors = office.published(pb::CreateProjectRequest { min_age: 90, ..office.draft("长者") }).await;
    refused(office.sign_up(&staff, &seniors, &adult_number).await, Code::FailedPrecondition, "too young");
    // A minor (15, with a guardian's consent) may join an ordinary project, not a risky one.
    let minor = office
        .register(pb::RegisterVolunteerRequest {
            identity_number: identity_number("330106", &format!("{}0301", Utc::now().year() - 15), 7),
            guardian_consent: pb::GuardianConsent::Guardian as i32,
            ..adult(3)
        })
        .await;
    let risky = office.published(pb::CreateProjectRequest { risky: true, insured: true, ..office.draft("溯溪") }).await;
    refused(office.sign_up(&staff, &risky, &minor).await, Code::FailedPrecondition, "minor");
    assert_eq!(status_of(&office.sign_up(&staff, &open, &minor).await.unwrap()).0, ACCEPTED);
    // A 17-year-old living on their own income counts as an adult (Civil Code art. 18).
    let self_supporting = office
        .register(pb::RegisterVolunteerRequest {
            identity_number: identity_number("330106", &format!("{}0101", Utc::now().year() - 17), 9),
            self_supporting: true,
            ..adult(4)
        })
        .await;
    assert_eq!(status_of(&office.sign_up(&staff, &risky, &self_supporting).await.unwrap()).0, ACCEPTED);

    // Already holds a seat.
    office.sign_up(&staff, &open, &adult_number).await.unwrap();
    let twice = office.sign_up(&staff, &open, &adult_number).await;
    refused(twice, Code::AlreadyExists, "already holds a seat");
    // An accepted seat overlapping another accepted seat in time.
    let start = office.get(&open).await.start_at.unwrap();
    let overlapping = office
        .published(pb::CreateProjectRequest {
            start_at: Some(prost_types::Timestamp { seconds: start.seconds + 3600, ..start }),
            end_at: Some(prost_types::Timestamp { seconds: start.seconds + 8 * 3600, ..start }),
            ..office.draft("同一时段")
        })
        .await;
    refused(office.sign_up(&staff, &overlapping, &adult_number).await, Code::FailedPrecondition, "overlaps");
    // Right after it ends is fine: intervals that only touch do not overlap.
    let after = office
        .published(pb::CreateProjectRequest {
            start_at: Some(prost_types::Timestamp { seconds: start.seconds + 4 * 3600, ..start }),
            end_at: Some(prost_types::Timestamp { seconds: start.seconds + 6 * 3600, ..start }),
            ..office.draft("紧接着")
        })
        .await;
    assert_eq!(status_of(&office.sign_up(&staff, &after, &adult_number).await.unwrap()).0, ACCEPTED);
}

#[tokio::test]
async fn volunteers_sign_themselves_up_and_managers_sign_up_for_their_own_projects() {
    let office = Office::start().await;
    let open = office.published(office.draft("净滩")).await;
    let first = office.register(adult(1)).await;
    let second = office.register(adult(2)).await;
    let third = office.register(adult(3)).await;
    let own = office.account(pb::Role::Volunteer, "", &first).await;
    assert_eq!(status_of(&office.sign_up(&own, &open, &first).await.unwrap()).0, ACCEPTED);
    refused(office.sign_up(&own, &open, &second).await, Code::PermissionDenied, "that volunteer");
    refused(office.sign_up(&office.other_manager, &open, &second).await, Code::PermissionDenied, "");
    assert_eq!(status_of(&office.sign_up(&office.manager, &open, &second).await.unwrap()).0, ACCEPTED);
    refused(office.sign_up(&office.node.tokens.auditor, &open, &third).await, Code::PermissionDenied, "");

    // A volunteer lists their own sign-ups, not another's.
    let mine = office
        .sign_ups(&own)
        .list_sign_ups(pb::ListSignUpsRequest { volunteer_number: first.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .sign_ups;
    assert_eq!(mine.iter().map(|s| s.project_id.as_str()).collect::<Vec<_>>(), [open.as_str()]);
    let theirs = office
        .sign_ups(&own)
        .list_sign_ups(pb::ListSignUpsRequest { volunteer_number: second.clone(), ..Default::default() })
        .await;
    refused(theirs, Code::PermissionDenied, "");
    let project_list = office
        .sign_ups(&own)
        .list_sign_ups(pb::ListSignUpsRequest { project_id: open.clone(), ..Default::default() })
        .await;
    refused(project_list, Code::PermissionDenied, "");
    let neither = office.sign_ups(&own).list_sign_ups(pb::ListSignUpsRequest::default()).await.unwrap_err();
    assert_eq!(violated_fields(&neither), ["project_id"]);
}

#[tokio::test]
async fn cancellations_and_capacity_changes_move_the_waitlist_in_order() {
    let office = Office::start().await;
    let staff = office.staff();
    let project = office.published(pb::CreateProjectRequest { capacity: 2, ..office.draft("净滩") }).await;
    let mut numbers = Vec::new();
    for index in 0..7 {
        numbers.push(office.register(adult(index)).await);
    }
    let mut answers = Vec::new();
    for number in &numbers {
        answers.push(status_of(&office.sign_up(&staff, &project, number).await.unwrap()));
    }
    assert_eq!(
        answers,
        [
            (ACCEPTED, 0),
            (ACCEPTED, 0),
            (WAITLISTED, 1),
            (WAITLISTED, 2),
            (WAITLISTED, 3),
            (WAITLISTED, 4),
            (WAITLISTED, 5)
        ]
    );
    let mut sign_ups = office.sign_ups(&staff);
    let cancel =
        |number: &str| pb::CancelSignUpRequest { project_id: project.clone(), volunteer_number: number.into() };
    // A waitlisted volunteer leaves the line: no one is promoted, the line closes up.
    let left = sign_ups.cancel_sign_up(cancel(&numbers[3])).await.unwrap().into_inner();
    assert_eq!(left.promoted_volunteer_number, "");
    // An accepted seat is given up: the first in line moves up at once.
    let freed = sign_ups.cancel_sign_up(cancel(&numbers[0])).await.unwrap().into_inner();
    assert_eq!(freed.promoted_volunteer_number, numbers[2]);
    refused(sign_ups.cancel_sign_up(cancel(&numbers[0])).await, Code::FailedPrecondition, "already cancelled");
    let line = sign_ups
        .list_sign_ups(pb::ListSignUpsRequest { project_id: project.clone(), status: WAITLISTED, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .sign_ups;
    let line: Vec<(&str, u32)> = line.iter().map(|s| (s.volunteer_number.as_str(), s.waitlist_position)).collect();
    assert_eq!(line, [(numbers[4].as_str(), 1), (numbers[5].as_str(), 2), (numbers[6].as_str(), 3)]);

    // Capacity never goes below the seats taken; raising it promotes in order.
    let mut projects = office.projects(&staff);
    let capacity = |capacity: u32| pb::SetProjectCapacityRequest { project_id: project.clone(), capacity };
    refused(projects.set_project_capacity(capacity(1)).await, Code::FailedPrecondition, "cannot go below");
    let raised = projects.set_project_capacity(capacity(4)).await.unwrap().into_inner();
    assert_eq!(raised.promoted_volunteer_numbers, [numbers[4].clone(), numbers[5].clone()]);
    let counted = raised.project.unwrap();
    assert_eq!((counted.capacity, counted.accepted_count, counted.waitlisted_count), (4, 4, 1));
    let lowered = projects.set_project_capacity(capacity(4)).await.unwrap().into_inner();
    assert!(lowered.promoted_volunteer_numbers.is_empty());
    // A seat held by someone who re-joins after cancelling counts as a new arrival.
    let back = office.sign_up(&staff, &project, &numbers[0]).await.unwrap();
    assert_eq!(status_of(&back), (WAITLISTED, 2));
}

/// Runs `ecovol --node … --token … --output json <args>` in this process; the exit code and standard output.
async fn ecovol(office: &Office, token: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let address = format!("http://{}", office.node.address);
    let all =
        ["ecovol", "--node", &address, "--token", token, "--output", "json"].into_iter().chain(args.iter().copied());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = ecovol_node::cli::run_with(all.map(String::from), &mut out, &mut err).await;
    let text = String::from_utf8(out).expect("UTF-8 output");
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    assert!(code != 0 || !value.is_null(), "no JSON from {args:?}: {text} / {}", String::from_utf8_lossy(&err));
    (code, value)
}

#[tokio::test]
async fn the_command_line_runs_a_project_and_its_sign_ups() {
    let office = Office::start().await;
    let staff = office.staff();
    let start = (Utc::now() + Duration::days(7)).to_rfc3339();
    let end = (Utc::now() + Duration::days(7) + Duration::hours(3)).to_rfc3339();
    let (code, created) = ecovol(
        &office,
        &staff,
        &[
            "project",
            "create",
            "--title",
            "西湖净滩",
            "--kind",
            "green-low-carbon",
            "--team-id",
            &office.team_id,
            "--start",
            &start,
            "--end",
            &end,
            "--capacity",
            "1",
            "--skill",
            "垃圾分类",
        ],
    )
    .await;
    assert_eq!(code, 0);
    let project_id = created["project"]["project_id"].as_str().expect("project id").to_string();
    assert_eq!(created["project"]["kind"], "green-low-carbon");
    assert_eq!(created["project"]["status"], "draft");
    assert_eq!(ecovol(&office, &staff, &["project", "publish", &project_id]).await.1["project"]["status"], "published");
    let first = office.register(adult(1)).await;
    let second = office.register(adult(2)).await;
    let (_, accepted) =
        ecovol(&office, &staff, &["signup", "add", &project_id, &first, "--idempotency-key", "cli-1"]).await;
    assert_eq!(accepted["sign_up"]["status"], "accepted");
    let (_, waiting) = ecovol(&office, &staff, &["signup", "add", &project_id, &second]).await;
    assert_eq!(
        (waiting["sign_up"]["status"].as_str(), waiting["sign_up"]["waitlist_position"].as_u64()),
        (Some("waitlisted"), Some(1))
    );
    let (_, again) =
        ecovol(&office, &staff, &["signup", "add", &project_id, &first, "--idempotency-key", "cli-1"]).await;
    assert_eq!(again["already"], true);
    let (_, raised) = ecovol(&office, &staff, &["project", "capacity", &project_id, "2"]).await;
    assert_eq!(raised["promoted_volunteer_numbers"], serde_json::json!([second]));
    let (_, listed) =
        ecovol(&office, &staff, &["signup", "list", "--project", &project_id, "--status", "accepted"]).await;
    assert_eq!(listed["sign_ups"].as_array().map(Vec::len), Some(2));
    let (_, found) =
        ecovol(&office, &staff, &["project", "search", "--text", "净滩", "--kind", "green-low-carbon"]).await;
    assert_eq!(found["projects"][0]["project_id"], project_id.as_str());
    let (code, _) = ecovol(&office, &staff, &["project", "mark", &project_id, "--demonstration", "true"]).await;
    assert_eq!(code, 1, "a demonstration selection without a reason is refused");
    let (_, marked) =
        ecovol(&office, &staff, &["project", "mark", &project_id, "--demonstration", "true", "--reason", "群众参与广"])
            .await;
    assert_eq!(marked["project"]["demonstration"], true);
    let (_, cancelled) = ecovol(&office, &staff, &["signup", "cancel", &project_id, &first]).await;
    assert_eq!(cancelled["sign_up"]["status"], "cancelled");
}
