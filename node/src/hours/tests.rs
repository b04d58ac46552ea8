//! Unit tests of service hours: request validation (table-driven), and the use-cases against a real store with
//! project and sign-up rows written directly under their contracted keys.

use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use super::*;
use crate::audit::AuditContext;
use crate::auth::Department;
use crate::commit::Committer;
use crate::page::PageLimits;
use crate::store::SledStore;

const PROJECT: &str = "330106-P000001";
const TEAM: &str = "330106-T000001";
const OTHER_TEAM: &str = "330106-T000002";
const VOLUNTEER: &str = "330106-00000001";
const SECOND_VOLUNTEER: &str = "330106-00000002";
const WALK_IN: &str = "330106-00000003";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn ts(text: &str) -> Option<prost_types::Timestamp> {
    Some(wire::timestamp(at(text)))
}

use crate::testing::{check, violated_fields as fields};

/// 10:00–12:00 China time on 5 June 2025, inside the project's window.
fn record_request() -> pb::RecordServiceRequest {
    pb::RecordServiceRequest {
        project_id: PROJECT.into(),
        volunteer_number: VOLUNTEER.into(),
        method: pb::RecordingMethod::CheckInOut as i32,
        start_time: ts("2025-06-05T10:00:00+08:00"),
        end_time: ts("2025-06-05T12:00:00+08:00"),
        content: "湿地垃圾清理".into(),
        walk_in: false,
        idempotency_key: "key-1".into(),
    }
}

fn row(volunteer_number: &str, start: &str, end: &str, key: &str) -> pb::ServiceRow {
    pb::ServiceRow {
        volunteer_number: volunteer_number.into(),
        method: pb::RecordingMethod::Interval as i32,
        start_time: ts(start),
        end_time: ts(end),
        content: "巡河".into(),
        walk_in: false,
        idempotency_key: key.into(),
    }
}

#[test]
fn record_requests_are_checked_field_by_field() {
    let cases: Vec<(pb::RecordServiceRequest, &[&str])> = vec![
        (record_request(), &[]),
        (pb::RecordServiceRequest { project_id: String::new(), ..record_request() }, &["project_id"]),
        (pb::RecordServiceRequest { project_id: "proj/../x".into(), ..record_request() }, &["project_id"]),
        (pb::RecordServiceRequest { volunteer_number: "1/2".into(), ..record_request() }, &["volunteer_number"]),
        (pb::RecordServiceRequest { method: 0, ..record_request() }, &["method"]),
        (pb::RecordServiceRequest { method: 9, ..record_request() }, &["method"]),
        (pb::RecordServiceRequest { start_time: None, ..record_request() }, &["start_time"]),
        (pb::RecordServiceRequest { end_time: None, ..record_request() }, &["end_time"]),
        // End not after start.
        (pb::RecordServiceRequest { end_time: ts("2025-06-05T10:00:00+08:00"), ..record_request() }, &["end_time"]),
        (pb::RecordServiceRequest { end_time: ts("2025-06-05T09:00:00+08:00"), ..record_request() }, &["end_time"]),
        (
            pb::RecordServiceRequest {
                start_time: Some(prost_types::Timestamp { seconds: 0, nanos: -1 }),
                ..record_request()
            },
            &["start_time"],
        ),
        (pb::RecordServiceRequest { start_time: ts("1999-12-31T23:00:00Z"), ..record_request() }, &["start_time"]),
        (pb::RecordServiceRequest { content: " ".into(), ..record_request() }, &["content"]),
        (pb::RecordServiceRequest { content: "字".repeat(501), ..record_request() }, &["content"]),
        (pb::RecordServiceRequest { content: "字".repeat(500), ..record_request() }, &[]),
        (pb::RecordServiceRequest { idempotency_key: String::new(), ..record_request() }, &["idempotency_key"]),
        (pb::RecordServiceRequest { idempotency_key: "k".repeat(65), ..record_request() }, &["idempotency_key"]),
        (pb::RecordServiceRequest { idempotency_key: "k".repeat(64), ..record_request() }, &[]),
        (pb::RecordServiceRequest { idempotency_key: "a/b".into(), ..record_request() }, &["idempotency_key"]),
        (pb::RecordServiceRequest { idempotency_key: "2025-06-05:row_1.a".into(), ..record_request() }, &[]),
        // Every broken rule at once.
        (
            pb::RecordServiceRequest {
                project_id: String::new(),
                volunteer_number: String::new(),
                method: 0,
                start_time: ts("2025-06-05T12:00:00+08:00"),
                end_time: ts("2025-06-05T11:00:00+08:00"),
                content: String::new(),
                walk_in: true,
                idempotency_key: String::new(),
            },
            &["project_id", "volunteer_number", "method", "end_time", "content", "idempotency_key"],
        ),
    ];
    for (request, expected) in cases {
        check::<RecordService, _>(request, expected);
    }
}

#[test]
fn roster_rows_are_named_by_their_place() {
    let good = row(VOLUNTEER, "2025-06-05T10:00:00+08:00", "2025-06-05T11:00:00+08:00", "r0");
    let bad_times = row(VOLUNTEER, "2025-06-05T11:00:00+08:00", "2025-06-05T11:00:00+08:00", "r1");
    let bad_all = pb::ServiceRow { method: 0, content: String::new(), ..row("x y", "", "", "") };
    let request = pb::RecordServiceBulkRequest {
        project_id: PROJECT.into(),
        rows: vec![good.clone(), bad_times, good.clone(), bad_all],
    };
    check::<RecordServiceBulk, _>(
        request,
        &[
            "rows[1].end_time",
            "rows[3].volunteer_number",
            "rows[3].method",
            "rows[3].start_time",
            "rows[3].end_time",
            "rows[3].content",
            "rows[3].idempotency_key",
        ],
    );
    check::<RecordServiceBulk, _>(pb::RecordServiceBulkRequest { project_id: PROJECT.into(), rows: vec![] }, &["rows"]);
    check::<RecordServiceBulk, _>(pb::RecordServiceBulkRequest { project_id: PROJECT.into(), rows: vec![good] }, &[]);
}

#[test]
fn follow_up_requests_are_checked_field_by_field() {
    let record_id = "330106-H00000001".to_string();
    let amend = || pb::AmendServiceRecordRequest {
        record_id: record_id.clone(),
        content: "更正内容".into(),
        reason: "志愿者反映".into(),
        ..Default::default()
    };
    let amends: Vec<(pb::AmendServiceRecordRequest, &[&str])> = vec![
        (amend(), &[]),
        (pb::AmendServiceRecordRequest { content: String::new(), ..amend() }, &["content"]),
        (
            pb::AmendServiceRecordRequest {
                content: String::new(),
                start_time: ts("2025-06-05T10:00:00+08:00"),
                end_time: ts("2025-06-05T11:00:00+08:00"),
                ..amend()
            },
            &[],
        ),
        (pb::AmendServiceRecordRequest { start_time: ts("2025-06-05T10:00:00+08:00"), ..amend() }, &["end_time"]),
        (
            pb::AmendServiceRecordRequest {
                start_time: ts("2025-06-05T10:00:00+08:00"),
                end_time: ts("2025-06-05T10:00:00+08:00"),
                ..amend()
            },
            &["end_time"],
        ),
        (pb::AmendServiceRecordRequest { reason: String::new(), ..amend() }, &["reason"]),
        (
            pb::AmendServiceRecordRequest { record_id: String::new(), reason: "x".repeat(501), ..amend() },
            &["record_id", "reason"],
        ),
    ];
    for (request, expected) in amends {
        check::<AmendServiceRecord, _>(request, expected);
    }
    let correction = || pb::RequestCorrectionRequest {
        record_id: record_id.clone(),
        reason: "实际服务到12点".into(),
        ..Default::default()
    };
    let corrections: Vec<(pb::RequestCorrectionRequest, &[&str])> = vec![
        (correction(), &[]),
        (pb::RequestCorrectionRequest { reason: String::new(), ..correction() }, &["reason"]),
        (
            pb::RequestCorrectionRequest { proposed_end_time: ts("2025-06-05T12:00:00+08:00"), ..correction() },
            &["proposed_start_time"],
        ),
        (
            pb::RequestCorrectionRequest {
                proposed_start_time: ts("2025-06-05T12:00:00+08:00"),
                proposed_end_time: ts("2025-06-05T11:00:00+08:00"),
                ..correction()
            },
            &["proposed_end_time"],
        ),
        (pb::RequestCorrectionRequest { proposed_content: "x".repeat(501), ..correction() }, &["proposed_content"]),
    ];
    for (request, expected) in corrections {
        check::<RequestCorrection, _>(request, expected);
    }
    check::<RevokeServiceRecord, _>(pb::RevokeServiceRecordRequest::default(), &["record_id", "reason"]);
    check::<RejectCorrection, _>(
        pb::RejectCorrectionRequest { record_id: record_id.clone(), reason: "核实无误".into() },
        &[],
    );
    check::<RecordTarget, _>(pb::ConfirmServiceRecordRequest { record_id: "a b".into() }, &["record_id"]);
    check::<RecordTarget, _>(pb::GetServiceRecordRequest { record_id: record_id.clone() }, &[]);
    let list: Vec<(pb::ListServiceRecordsRequest, &[&str])> = vec![
        (pb::ListServiceRecordsRequest::default(), &["project_id"]),
        (pb::ListServiceRecordsRequest { project_id: PROJECT.into(), ..Default::default() }, &[]),
        (pb::ListServiceRecordsRequest { volunteer_number: VOLUNTEER.into(), state: 2, ..Default::default() }, &[]),
        (
            pb::ListServiceRecordsRequest { volunteer_number: "x/y".into(), state: 7, ..Default::default() },
            &["volunteer_number", "state"],
        ),
    ];
    for (request, expected) in list {
        assert_eq!(fields(ListServiceRecords::try_from(&request)), expected, "{request:?}");
    }
}

// ----- use-cases against a real store -----

struct Node {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    committer: Committer,
    rules: HoursSection,
}

fn account(roles: &[Role], team_id: Option<&str>, volunteer_number: Option<&str>) -> Caller {
    Caller {
        account_id: format!("acct-{}", roles.first().map_or("none", |role| role.label())),
        name: "测试账号".into(),
        department: Department::EcologyBureau,
        roles: roles.to_vec(),
        team_id: team_id.map(Into::into),
        volunteer_number: volunteer_number.map(Into::into),
        request_id: "test".into(),
    }
}

fn staff() -> Caller {
    account(&[Role::Staff], None, None)
}

fn manager_of(team_id: &str) -> Caller {
    account(&[Role::TeamManager], Some(team_id), None)
}

fn volunteer_account(number: &str) -> Caller {
    account(&[Role::Volunteer], None, Some(number))
}

impl Node {
    /// A store holding one published project of `TEAM` (5 June 2025, 08:00–18:00 China time), two volunteers
    /// accepted on it and a third without a sign-up.
    async fn start(rules: HoursSection) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db"), 8 << 20)?);
        let committer = Committer::start(store.clone(), 64, 64);
        let node = Self { _dir: dir, store, committer, rules };
        node.put_project(PROJECT, TEAM, "published").await?;
        for number in [VOLUNTEER, SECOND_VOLUNTEER, WALK_IN] {
            node.put_volunteer(number).await?;
        }
        node.put_signup(PROJECT, VOLUNTEER, "accepted").await?;
        node.put_signup(PROJECT, SECOND_VOLUNTEER, "accepted").await?;
        Ok(node)
    }

    /// A volunteer row with the fields the federation reads (`outbox::minimised`), and their federation key, as a
    /// registration leaves them.
    async fn put_volunteer(&self, number: &'static str) -> Result<(), DomainError> {
        self.committer
            .write(AuditContext::new(&staff(), "fixture", ""), move |txn| {
                let record = serde_json::json!({
                    "volunteer_number": number,
                    "gender": "female",
                    "birth_date": "1990-01-01",
                    "home_division_code": "330106",
                    "status": "active",
                });
                txn.put_json(volunteer::record_key(number), &record);
                crate::federation::outbox::remember_volunteer_key(txn, number, &format!("identity of {number}"));
                Ok(())
            })
            .await
    }

    async fn put(&self, key: String, value: serde_json::Value) -> Result<(), DomainError> {
        self.committer
            .write(AuditContext::new(&staff(), "fixture", ""), move |txn| {
                txn.put_json(key, &value);
                Ok(())
            })
            .await
    }

    /// A project row as the projects module stores it (more fields than this module reads).
    async fn put_project(&self, project_id: &str, team_id: &str, status: &str) -> Result<(), DomainError> {
        self.put(
            project_key(project_id),
            serde_json::json!({
                "project_id": project_id,
                "title": "西溪湿地清洁",
                "organising_team_id": team_id,
                "start_at": "2025-06-05T00:00:00Z",
                "end_at": "2025-06-05T10:00:00Z",
                "status": status,
                "activity_kind": "green_low_carbon",
                "capacity": 50,
            }),
        )
        .await
    }

    async fn put_signup(&self, project_id: &str, number: &str, status: &str) -> Result<(), DomainError> {
        self.put(signup_key(project_id, number), serde_json::json!({ "status": status, "position": 0 })).await
    }

    async fn write<T: Send + 'static>(
        &self,
        caller: &Caller,
        use_case: impl FnOnce(&mut Txn<'_>, &Caller, &HoursSection) -> Result<T, DomainError> + Send + 'static,
    ) -> Result<T, DomainError> {
        let owned = caller.clone();
        let rules = self.rules.clone();
        self.committer.write(AuditContext::new(caller, "test", ""), move |txn| use_case(txn, &owned, &rules)).await
    }

    async fn record(&self, caller: &Caller, request: pb::RecordServiceRequest) -> Result<Recorded, DomainError> {
        let command = RecordService::try_from(request)?;
        self.write(caller, move |txn, caller, rules| record(txn, "330106", rules, caller, command)).await
    }

    async fn bulk(&self, caller: &Caller, rows: Vec<pb::ServiceRow>) -> Result<Vec<Recorded>, DomainError> {
        let command = RecordServiceBulk::try_from(pb::RecordServiceBulkRequest { project_id: PROJECT.into(), rows })?;
        self.write(caller, move |txn, caller, rules| record_bulk(txn, "330106", rules, caller, command)).await
    }

    async fn confirm(&self, caller: &Caller, record_id: &str) -> Result<ServiceRecord, DomainError> {
        let record_id = record_id.to_string();
        self.write(caller, move |txn, caller, _| confirm(txn, caller, &record_id)).await
    }

    async fn amend(
        &self,
        caller: &Caller,
        request: pb::AmendServiceRecordRequest,
    ) -> Result<ServiceRecord, DomainError> {
        let command = AmendServiceRecord::try_from(request)?;
        self.write(caller, move |txn, caller, rules| amend(txn, rules, caller, command)).await
    }

    async fn revoke(&self, caller: &Caller, record_id: &str) -> Result<ServiceRecord, DomainError> {
        let command = RevokeServiceRecord { record_id: record_id.into(), reason: "重复记录".into() };
        self.write(caller, move |txn, caller, _| revoke(txn, caller, command)).await
    }

    async fn request_correction(&self, caller: &Caller, record_id: &str) -> Result<ServiceRecord, DomainError> {
        let command = RequestCorrection::try_from(pb::RequestCorrectionRequest {
            record_id: record_id.into(),
            reason: "实际服务到12点半".into(),
            proposed_start_time: ts("2025-06-05T10:00:00+08:00"),
            proposed_end_time: ts("2025-06-05T12:30:00+08:00"),
            proposed_content: String::new(),
        })?;
        self.write(caller, move |txn, caller, _| request_correction(txn, caller, command)).await
    }

    async fn reject_correction(&self, caller: &Caller, record_id: &str) -> Result<ServiceRecord, DomainError> {
        let command = RejectCorrection { record_id: record_id.into(), reason: "签到表核实无误".into() };
        self.write(caller, move |txn, caller, _| reject_correction(txn, caller, command)).await
    }

    fn total(&self, number: &str) -> ConfirmedTotal {
        confirmed_total(&*self.store, number).unwrap_or_default()
    }

    fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let _ = self.store.scan(prefix.as_bytes(), None, &mut |key, _| {
            keys.push(String::from_utf8_lossy(key).into_owned());
            ControlFlow::Continue(())
        });
        keys
    }

    /// The sum over confirmed records, from the records themselves.
    fn summed(&self, number: &str) -> ConfirmedTotal {
        let mut total = ConfirmedTotal::default();
        let _ = self.store.scan(b"svc/", None, &mut |key, value| {
            if let Ok(record) = store::decode::<ServiceRecord>(key, value)
                && record.volunteer_number == number
                && record.state == RecordState::Confirmed
            {
                total.confirmed_minutes += u64::from(record.minutes_served);
                total.confirmed_hours_x100 += u64::from(record.hours_x100);
            }
            ControlFlow::Continue(())
        });
        total
    }
}

fn interval(request: pb::RecordServiceRequest, start: &str, end: &str, key: &str) -> pb::RecordServiceRequest {
    pb::RecordServiceRequest { start_time: ts(start), end_time: ts(end), idempotency_key: key.into(), ..request }
}

fn conflict<T: std::fmt::Debug>(result: Result<T, DomainError>) -> String {
    match result {
        Err(DomainError::FailedPrecondition(message)) => message,
        other => panic!("expected FailedPrecondition, got {other:?}"),
    }
}

#[tokio::test]
async fn a_recorded_interval_is_rounded_indexed_and_versioned() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    // 10:00–12:07:30 → 127.5 min → 135 at the quarter hour (half up).
    let request = interval(record_request(), "2025-06-05T10:00:00+08:00", "2025-06-05T12:07:30+08:00", "k1");
    let recorded = node.record(&manager_of(TEAM), request).await?;
    assert!(!recorded.replayed);
    let record = recorded.record;
    assert_eq!(record.record_id, "330106-H00000001");
    assert_eq!((record.minutes_served, record.hours_x100), (135, 225));
    assert_eq!(record.state, RecordState::Recorded);
    assert_eq!(record.organising_team_id, TEAM);
    assert_eq!(record.activity_kind, "green_low_carbon");
    assert!(!record.walk_in);
    assert_eq!(node.keys("svc_proj/"), [format!("svc_proj/{PROJECT}/330106-H00000001")]);
    let start_ms = at("2025-06-05T10:00:00+08:00").timestamp_millis();
    assert_eq!(node.keys("svc_vol/"), [format!("svc_vol/{VOLUNTEER}/{start_ms:016}/330106-H00000001")]);
    // Until it changes, the record is its own first version: one document stored, one version shown.
    assert!(node.keys("svc_v/").is_empty(), "{:?}", node.keys("svc_v/"));
    let (_, versions) = get(&*node.store, &staff(), "330106-H00000001")?;
    assert_eq!(versions.len(), 1);
    assert_eq!((versions[0].version, versions[0].action), (1, RecordAction::Recorded));
    assert_eq!((versions[0].minutes_served, versions[0].reason.as_str()), (135, "recorded"));
    assert_eq!(versions[0].changed_by, record.recorded_by);
    assert_eq!(node.keys("idem/svc/"), ["idem/svc/k1"]);
    // Recorded hours do not count yet.
    assert_eq!(node.total(VOLUNTEER), ConfirmedTotal::default());
    Ok(())
}

#[tokio::test]
async fn a_retry_returns_the_first_record_and_a_reused_key_is_refused() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    let first = node.record(&staff(), record_request()).await?;
    let again = node.record(&staff(), record_request()).await?;
    assert!(again.replayed);
    assert_eq!(again.record, first.record);
    // A retry of a record amended since still returns that record (not a second one).
    node.amend(
        &staff(),
        pb::AmendServiceRecordRequest {
            record_id: first.record.record_id.clone(),
            content: "更正".into(),
            reason: "笔误".into(),
            ..Default::default()
        },
    )
    .await?;
    let after_amend = node.record(&staff(), record_request()).await?;
    assert_eq!(after_amend.record.record_id, first.record.record_id);
    assert_eq!(after_amend.record.version, 2);
    // The same key with other times, or another volunteer.
    let moved = interval(record_request(), "2025-06-05T13:00:00+08:00", "2025-06-05T14:00:00+08:00", "key-1");
    assert_eq!(fields(node.record(&staff(), moved).await), ["idempotency_key"]);
    let other = pb::RecordServiceRequest { volunteer_number: SECOND_VOLUNTEER.into(), ..record_request() };
    assert_eq!(fields(node.record(&staff(), other).await), ["idempotency_key"]);
    assert_eq!(node.keys("svc/").len(), 1);
    Ok(())
}

#[tokio::test]
async fn times_in_the_future_or_outside_the_window_are_refused_together() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    let later = Utc::now() + Duration::days(2);
    let future = pb::RecordServiceRequest {
        start_time: Some(wire::timestamp(later)),
        end_time: Some(wire::timestamp(later + Duration::hours(1))),
        ..record_request()
    };
    // In the future, and (being in the future) after the project's end.
    assert_eq!(fields(node.record(&staff(), future).await), ["start_time", "end_time", "end_time"]);
    // The window is 08:00–18:00 with 60 minutes' tolerance: 07:00–19:00 passes, 06:59 and 19:01 do not.
    let edge = interval(record_request(), "2025-06-05T07:00:00+08:00", "2025-06-05T08:00:00+08:00", "edge-1");
    node.record(&staff(), edge).await?;
    let edge = interval(record_request(), "2025-06-05T18:00:00+08:00", "2025-06-05T19:00:00+08:00", "edge-2");
    node.record(&staff(), edge).await?;
    let early = interval(record_request(), "2025-06-05T06:30:00+08:00", "2025-06-05T07:00:00+08:00", "early");
    assert_eq!(fields(node.record(&staff(), early).await), ["start_time"]);
    let late = interval(record_request(), "2025-06-05T19:00:00+08:00", "2025-06-05T19:30:00+08:00", "late");
    assert_eq!(fields(node.record(&staff(), late).await), ["end_time"]);
    // Five minutes round to nothing at the quarter hour.
    let short = interval(record_request(), "2025-06-05T09:00:00+08:00", "2025-06-05T09:05:00+08:00", "short");
    assert_eq!(fields(node.record(&staff(), short).await), ["end_time"]);
    Ok(())
}

#[tokio::test]
async fn overlaps_with_the_volunteers_other_records_are_refused() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    let first = node.record(&staff(), record_request()).await?.record;
    for (start, end) in [
        ("2025-06-05T11:00:00+08:00", "2025-06-05T13:00:00+08:00"),
        ("2025-06-05T09:00:00+08:00", "2025-06-05T10:30:00+08:00"),
        ("2025-06-05T10:30:00+08:00", "2025-06-05T11:00:00+08:00"),
        ("2025-06-05T09:00:00+08:00", "2025-06-05T13:00:00+08:00"),
    ] {
        let message = conflict(node.record(&staff(), interval(record_request(), start, end, "overlap")).await);
        assert!(message.contains(&first.record_id), "{message}");
    }
    // Touching intervals do not overlap; another volunteer may serve at the same time.
    node.record(&staff(), interval(record_request(), "2025-06-05T12:00:00+08:00", "2025-06-05T13:00:00+08:00", "b"))
        .await?;
    node.record(&staff(), interval(record_request(), "2025-06-05T09:00:00+08:00", "2025-06-05T10:00:00+08:00", "c"))
        .await?;
    let other = pb::RecordServiceRequest {
        volunteer_number: SECOND_VOLUNTEER.into(),
        idempotency_key: "d".into(),
        ..record_request()
    };
    node.record(&staff(), other).await?;
    // A revoked record no longer blocks its interval.
    node.revoke(&staff(), &first.record_id).await?;
    node.record(&staff(), interval(record_request(), "2025-06-05T10:30:00+08:00", "2025-06-05T11:30:00+08:00", "e"))
        .await?;
    Ok(())
}

/// The volunteer index carries each record's end and revocation, so the time rules read the index alone; an
/// entry written by an older release (empty value) still counts, read through its record.
#[tokio::test]
async fn the_volunteer_index_carries_the_span_and_older_empty_entries_still_count() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    let first = node
        .record(&staff(), interval(record_request(), "2025-06-05T10:00:00+08:00", "2025-06-05T12:00:00+08:00", "a"))
        .await?
        .record;
    let start_ms = at("2025-06-05T10:00:00+08:00").timestamp_millis();
    let key = format!("svc_vol/{VOLUNTEER}/{start_ms:016}/{}", first.record_id);
    let entry = |node: &Node| -> serde_json::Value {
        serde_json::from_slice(&node.store.get(key.as_bytes()).unwrap().unwrap()).unwrap()
    };
    let end_ms = at("2025-06-05T12:00:00+08:00").timestamp_millis();
    assert_eq!(entry(&node), serde_json::json!({ "end_ms": end_ms, "revoked": false }));
    // As an older release wrote it: no value.
    let older = key.clone();
    node.committer
        .write(AuditContext::new(&staff(), "fixture", ""), move |txn| {
            txn.put(older, Vec::new());
            Ok(())
        })
        .await?;
    let overlapping = interval(record_request(), "2025-06-05T11:00:00+08:00", "2025-06-05T11:30:00+08:00", "b");
    let message = conflict(node.record(&staff(), overlapping.clone()).await);
    assert!(message.contains(&first.record_id), "{message}");
    // Revoking rewrites the entry; the interval is free again.
    node.revoke(&staff(), &first.record_id).await?;
    assert_eq!(entry(&node), serde_json::json!({ "end_ms": end_ms, "revoked": true }));
    node.record(&staff(), overlapping).await?;
    Ok(())
}

#[tokio::test]
async fn the_day_limit_counts_each_china_day_across_midnight() -> anyhow::Result<()> {
    let node =
        Node::start(HoursSection { day_hours_max: 3, window_tolerance_minutes: 7 * 24 * 60, ..Default::default() })
            .await?;
    // 22:00–01:00 China time: 2 h on 4 June and 1 h on 5 June.
    node.record(&staff(), interval(record_request(), "2025-06-04T22:00:00+08:00", "2025-06-05T01:00:00+08:00", "n"))
        .await?;
    // 2 more hours on 5 June make 3: allowed.
    node.record(&staff(), interval(record_request(), "2025-06-05T08:00:00+08:00", "2025-06-05T10:00:00+08:00", "m"))
        .await?;
    // One more quarter hour on 5 June is over the limit.
    let message = conflict(
        node.record(
            &staff(),
            interval(record_request(), "2025-06-05T11:00:00+08:00", "2025-06-05T11:15:00+08:00", "o"),
        )
        .await,
    );
    assert!(message.contains("2025-06-05") && message.contains("3 hours"), "{message}");
    // 4 June has 1 h left: 20:00–21:00 passes, 19:00–21:00 would not.
    let message = conflict(
        node.record(
            &staff(),
            interval(record_request(), "2025-06-04T19:00:00+08:00", "2025-06-04T20:30:00+08:00", "p"),
        )
        .await,
    );
    assert!(message.contains("2025-06-04"), "{message}");
    node.record(&staff(), interval(record_request(), "2025-06-04T20:00:00+08:00", "2025-06-04T21:00:00+08:00", "q"))
        .await?;
    // Another volunteer's day is their own.
    let other = pb::RecordServiceRequest {
        volunteer_number: SECOND_VOLUNTEER.into(),
        ..interval(record_request(), "2025-06-05T11:00:00+08:00", "2025-06-05T14:00:00+08:00", "r")
    };
    node.record(&staff(), other).await?;
    Ok(())
}

#[tokio::test]
async fn only_staff_and_the_organising_teams_manager_record_and_walk_ins_are_staffs() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    let denied = |result: Result<Recorded, DomainError>| matches!(result, Err(DomainError::PermissionDenied(_)));
    assert!(denied(node.record(&manager_of(OTHER_TEAM), record_request()).await));
    assert!(denied(node.record(&volunteer_account(VOLUNTEER), record_request()).await));
    assert!(denied(node.record(&account(&[Role::Auditor], None, None), record_request()).await));

    // No accepted sign-up: refused, unless staff record a walk-in, which is marked.
    let walk_in = pb::RecordServiceRequest { volunteer_number: WALK_IN.into(), ..record_request() };
    let message = conflict(node.record(&manager_of(TEAM), walk_in.clone()).await);
    assert!(message.contains("no accepted sign-up"), "{message}");
    let flagged = pb::RecordServiceRequest { walk_in: true, ..walk_in.clone() };
    assert!(denied(node.record(&manager_of(TEAM), flagged.clone()).await));
    let recorded = node.record(&staff(), flagged).await?.record;
    assert!(recorded.walk_in);
    // A waitlisted sign-up is not an accepted one.
    node.put_signup(PROJECT, SECOND_VOLUNTEER, "waitlisted").await?;
    let waitlisted = pb::RecordServiceRequest {
        volunteer_number: SECOND_VOLUNTEER.into(),
        idempotency_key: "w".into(),
        ..record_request()
    };
    conflict(node.record(&manager_of(TEAM), waitlisted).await);
    // An accepted volunteer recorded with walk_in set is not marked as a walk-in.
    let accepted = pb::RecordServiceRequest { walk_in: true, idempotency_key: "a".into(), ..record_request() };
    assert!(!node.record(&manager_of(TEAM), accepted).await?.record.walk_in);
    Ok(())
}

#[tokio::test]
async fn unknown_draft_and_cancelled_projects_and_unknown_volunteers_are_refused() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    let on = |project_id: &str| pb::RecordServiceRequest { project_id: project_id.into(), ..record_request() };
    assert!(matches!(
        node.record(&staff(), on("330106-P000099")).await,
        Err(DomainError::NotFound { kind: "project", .. })
    ));
    node.put_project("330106-P000002", TEAM, "draft").await?;
    node.put_project("330106-P000003", TEAM, "cancelled").await?;
    node.put_project("330106-P000004", TEAM, "closed").await?;
    assert!(conflict(node.record(&staff(), on("330106-P000002")).await).contains("draft"));
    assert!(conflict(node.record(&staff(), on("330106-P000003")).await).contains("cancelled"));
    node.put_signup("330106-P000004", VOLUNTEER, "accepted").await?;
    node.record(&staff(), on("330106-P000004")).await?;
    let unknown = pb::RecordServiceRequest {
        volunteer_number: "330106-00000099".into(),
        idempotency_key: "unknown".into(),
        ..record_request()
    };
    assert!(matches!(node.record(&staff(), unknown).await, Err(DomainError::NotFound { kind: "volunteer", .. })));
    Ok(())
}

#[tokio::test]
async fn a_roster_is_stored_whole_or_not_at_all() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    node.record(&staff(), record_request()).await?;
    let morning = |number: &str, key: &str| row(number, "2025-06-05T08:00:00+08:00", "2025-06-05T09:00:00+08:00", key);
    let rows = vec![
        morning(VOLUNTEER, "r0"),
        // Overlaps the record made above.
        row(VOLUNTEER, "2025-06-05T11:00:00+08:00", "2025-06-05T12:30:00+08:00", "r1"),
        // Overlaps row 0 of this roster.
        row(VOLUNTEER, "2025-06-05T08:30:00+08:00", "2025-06-05T09:30:00+08:00", "r2"),
        // No sign-up, no walk-in.
        morning(WALK_IN, "r3"),
        morning("330106-00000099", "r4"),
        // A key used twice in one roster.
        morning(SECOND_VOLUNTEER, "r0"),
        // The single record's key with other times.
        row(SECOND_VOLUNTEER, "2025-06-05T13:00:00+08:00", "2025-06-05T14:00:00+08:00", "key-1"),
        // In the future.
        pb::ServiceRow {
            start_time: Some(wire::timestamp(Utc::now() + Duration::hours(1))),
            end_time: Some(wire::timestamp(Utc::now() + Duration::hours(2))),
            ..morning(SECOND_VOLUNTEER, "r7")
        },
    ];
    let refused = fields(node.bulk(&staff(), rows).await);
    assert_eq!(
        refused,
        [
            "rows[1].start_time",
            "rows[2].start_time",
            "rows[3].volunteer_number",
            "rows[4].volunteer_number",
            "rows[5].idempotency_key",
            "rows[6].idempotency_key",
            "rows[7].start_time",
            "rows[7].end_time",
            "rows[7].end_time",
        ]
    );
    // Nothing of the roster was stored, and no id was used.
    assert_eq!(node.keys("svc/").len(), 1);
    assert_eq!(node.keys("idem/svc/").len(), 1);

    let rows = vec![
        morning(VOLUNTEER, "r0"),
        morning(SECOND_VOLUNTEER, "r1"),
        pb::ServiceRow { walk_in: true, ..morning(WALK_IN, "r2") },
        row(VOLUNTEER, "2025-06-05T13:00:00+08:00", "2025-06-05T14:00:00+08:00", "r3"),
    ];
    let recorded = node.bulk(&staff(), rows.clone()).await?;
    let ids: Vec<&str> = recorded.iter().map(|row| row.record.record_id.as_str()).collect();
    assert_eq!(ids, ["330106-H00000002", "330106-H00000003", "330106-H00000004", "330106-H00000005"]);
    assert!(recorded[2].record.walk_in);
    // The whole roster again: every row answered with its first record.
    let again = node.bulk(&staff(), rows).await?;
    assert!(again.iter().all(|row| row.replayed));
    assert_eq!(again.iter().map(|row| row.record.record_id.as_str()).collect::<Vec<_>>(), ids);
    assert_eq!(node.keys("svc/").len(), 5);
    // Too many rows for the configuration.
    let small = Node::start(HoursSection { bulk_rows_max: 1, ..Default::default() }).await?;
    let too_many = vec![morning(VOLUNTEER, "x0"), morning(SECOND_VOLUNTEER, "x1")];
    assert_eq!(fields(small.bulk(&staff(), too_many).await), ["rows"]);
    Ok(())
}

#[tokio::test]
async fn confirmation_corrections_amendments_and_revocation_keep_every_version_and_the_total() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    let record_id = node.record(&manager_of(TEAM), record_request()).await?.record.record_id;
    // Only the organising team's manager or staff confirm.
    assert!(matches!(node.confirm(&manager_of(OTHER_TEAM), &record_id).await, Err(DomainError::PermissionDenied(_))));
    assert!(matches!(
        node.confirm(&volunteer_account(VOLUNTEER), &record_id).await,
        Err(DomainError::PermissionDenied(_))
    ));
    let confirmed = node.confirm(&manager_of(TEAM), &record_id).await?;
    assert_eq!(confirmed.state, RecordState::Confirmed);
    assert_eq!(node.total(VOLUNTEER), ConfirmedTotal { confirmed_minutes: 120, confirmed_hours_x100: 200 });
    // Confirming again changes nothing (and does not count twice).
    assert_eq!(node.confirm(&staff(), &record_id).await?.version, confirmed.version);
    assert_eq!(node.total(VOLUNTEER).confirmed_minutes, 120);

    // The volunteer, through their own account only, reports an error.
    assert!(matches!(
        node.request_correction(&volunteer_account(SECOND_VOLUNTEER), &record_id).await,
        Err(DomainError::PermissionDenied(_))
    ));
    assert!(matches!(node.request_correction(&staff(), &record_id).await, Err(DomainError::PermissionDenied(_))));
    let requested = node.request_correction(&volunteer_account(VOLUNTEER), &record_id).await?;
    let correction = requested.correction_requested.clone().unwrap_or_else(|| panic!("no correction"));
    assert_eq!(correction.proposed_end_time, Some(at("2025-06-05T12:30:00+08:00")));
    conflict(node.request_correction(&volunteer_account(VOLUNTEER), &record_id).await);
    // The team rejects it: the record stands.
    let rejected = node.reject_correction(&manager_of(TEAM), &record_id).await?;
    assert!(rejected.correction_requested.is_none());
    conflict(node.reject_correction(&manager_of(TEAM), &record_id).await);

    // Asked again, the team amends: the confirmed record stays confirmed, certified by the amender.
    node.request_correction(&volunteer_account(VOLUNTEER), &record_id).await?;
    let amend = pb::AmendServiceRecordRequest {
        record_id: record_id.clone(),
        start_time: ts("2025-06-05T10:00:00+08:00"),
        end_time: ts("2025-06-05T12:30:00+08:00"),
        reason: "签到表核实：服务到12:30".into(),
        ..Default::default()
    };
    assert!(matches!(node.amend(&manager_of(OTHER_TEAM), amend.clone()).await, Err(DomainError::PermissionDenied(_))));
    let amended = node.amend(&staff(), amend).await?;
    assert_eq!(amended.state, RecordState::Confirmed);
    assert_eq!(amended.confirmed_by.as_deref(), Some(staff().account_id.as_str()));
    assert_eq!((amended.minutes_served, amended.hours_x100), (150, 250));
    assert!(amended.correction_requested.is_none());
    assert_eq!(node.total(VOLUNTEER), ConfirmedTotal { confirmed_minutes: 150, confirmed_hours_x100: 250 });
    // The index follows a moved start.
    let moved = pb::AmendServiceRecordRequest {
        record_id: record_id.clone(),
        start_time: ts("2025-06-05T10:15:00+08:00"),
        end_time: ts("2025-06-05T12:30:00+08:00"),
        reason: "开始时间更正".into(),
        ..Default::default()
    };
    // Amending an out-of-date version is refused: somebody else amended it meanwhile.
    let stale = pb::AmendServiceRecordRequest { expected_version: amended.version - 1, ..moved.clone() };
    conflict(node.amend(&manager_of(TEAM), stale).await);
    let current = pb::AmendServiceRecordRequest { expected_version: amended.version, ..moved };
    node.amend(&manager_of(TEAM), current).await?;
    let start_ms = at("2025-06-05T10:15:00+08:00").timestamp_millis();
    assert_eq!(
        node.keys(&format!("svc_vol/{VOLUNTEER}/")),
        [format!("svc_vol/{VOLUNTEER}/{start_ms:016}/{record_id}")]
    );
    // An amendment is checked like a recording (the record itself aside): not into the future.
    let future = pb::AmendServiceRecordRequest {
        record_id: record_id.clone(),
        start_time: ts("2025-06-05T10:00:00+08:00"),
        end_time: Some(wire::timestamp(Utc::now() + Duration::hours(1))),
        reason: "x".into(),
        ..Default::default()
    };
    assert_eq!(fields(node.amend(&staff(), future).await), ["end_time", "end_time"]);

    // Revoked: final, out of the total.
    let revoked = node.revoke(&manager_of(TEAM), &record_id).await?;
    assert_eq!(revoked.state, RecordState::Revoked);
    assert_eq!(node.total(VOLUNTEER), ConfirmedTotal::default());
    conflict(node.revoke(&staff(), &record_id).await);
    conflict(node.confirm(&staff(), &record_id).await);
    conflict(node.request_correction(&volunteer_account(VOLUNTEER), &record_id).await);

    // Every version, with who and why.
    let (record, versions) = get(&*node.store, &volunteer_account(VOLUNTEER), &record_id)?;
    assert_eq!(record.version, 8);
    let actions: Vec<RecordAction> = versions.iter().map(|version| version.action).collect();
    use RecordAction::*;
    assert_eq!(
        actions,
        [Recorded, Confirmed, CorrectionRequested, CorrectionRejected, CorrectionRequested, Amended, Amended, Revoked]
    );
    assert_eq!(versions.iter().map(|version| version.version).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    assert_eq!(versions[5].reason, "签到表核实：服务到12:30");
    assert_eq!(versions[5].minutes_served, 150);
    assert_eq!(versions[0].minutes_served, 120);
    // Readable by staff, the team's manager and the volunteer only.
    assert!(get(&*node.store, &manager_of(OTHER_TEAM), &record_id).is_err());
    assert!(get(&*node.store, &volunteer_account(SECOND_VOLUNTEER), &record_id).is_err());
    Ok(())
}

#[tokio::test]
async fn lists_filter_by_project_volunteer_and_state_and_respect_who_asks() -> anyhow::Result<()> {
    let node = Node::start(HoursSection::default()).await?;
    let a = node.record(&staff(), record_request()).await?.record.record_id;
    let second = pb::RecordServiceRequest {
        volunteer_number: SECOND_VOLUNTEER.into(),
        idempotency_key: "k2".into(),
        ..record_request()
    };
    node.record(&staff(), second).await?;
    node.confirm(&staff(), &a).await?;
    let page = PageRequest::parse(1, "", PageLimits { size_default: 50, size_max: 500 })?;
    let query = |project: Option<&str>, number: Option<&str>, state: Option<RecordState>| ListServiceRecords {
        project_id: project.map(Into::into),
        volunteer_number: number.map(Into::into),
        state,
    };
    let by_project = list(&*node.store, &staff(), &query(Some(PROJECT), None, None), &page)?;
    assert_eq!(by_project.items.len(), 1);
    assert!(!by_project.next_page_token.is_empty());
    let all = PageRequest::parse(0, "", PageLimits { size_default: 50, size_max: 500 })?;
    let confirmed = list(&*node.store, &staff(), &query(Some(PROJECT), None, Some(RecordState::Confirmed)), &all)?;
    assert_eq!(confirmed.items.iter().map(|r| r.record_id.as_str()).collect::<Vec<_>>(), [a.as_str()]);
    let mine = list(&*node.store, &volunteer_account(VOLUNTEER), &query(None, Some(VOLUNTEER), None), &all)?;
    assert_eq!(mine.items.len(), 1);
    assert!(list(&*node.store, &volunteer_account(VOLUNTEER), &query(Some(PROJECT), None, None), &all).is_err());
    assert!(
        list(&*node.store, &volunteer_account(VOLUNTEER), &query(None, Some(SECOND_VOLUNTEER), None), &all).is_err()
    );
    assert!(list(&*node.store, &manager_of(OTHER_TEAM), &query(Some(PROJECT), None, None), &all)?.items.is_empty());
    assert_eq!(list(&*node.store, &manager_of(TEAM), &query(Some(PROJECT), None, None), &all)?.items.len(), 2);
    Ok(())
}

// ----- the total's law -----

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    /// Record hour `slot` (0..24 on 5 June, China time) of volunteer `who` for `quarters` quarter hours.
    Record {
        who: usize,
        slot: u32,
        quarters: u32,
    },
    Confirm(usize),
    /// Amend the record to `quarters` quarter hours from its start.
    Amend(usize, u32),
    Revoke(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..2usize, 0..10u32, 1..5u32).prop_map(|(who, slot, quarters)| Step::Record { who, slot, quarters }),
        (0..8usize).prop_map(Step::Confirm),
        (0..8usize, 1..5u32).prop_map(|(index, quarters)| Step::Amend(index, quarters)),
        (0..8usize).prop_map(Step::Revoke),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the order of recordings, confirmations, amendments and revocations (refused ones included),
    /// `svc_total/<volunteer>` equals the sum over the volunteer's confirmed records: never double counted.
    #[test]
    fn the_confirmed_total_is_the_sum_over_confirmed_records(steps in proptest::collection::vec(step(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let rules = HoursSection { window_tolerance_minutes: 24 * 60, ..Default::default() };
            let node = Node::start(rules).await.map_err(|error| TestCaseError::fail(error.to_string()))?;
            let volunteers = [VOLUNTEER, SECOND_VOLUNTEER];
            let mut ids: Vec<String> = Vec::new();
            for (index, step) in steps.into_iter().enumerate() {
                let pick = |n: usize| (!ids.is_empty()).then(|| ids[n % ids.len()].clone());
                match step {
                    Step::Record { who, slot, quarters } => {
                        let start = at("2025-06-05T00:00:00+08:00") + Duration::hours(i64::from(slot));
                        let request = pb::RecordServiceRequest {
                            volunteer_number: volunteers[who].into(),
                            start_time: Some(wire::timestamp(start)),
                            end_time: Some(wire::timestamp(start + Duration::minutes(15 * i64::from(quarters)))),
                            idempotency_key: format!("p{index}"),
                            ..record_request()
                        };
                        if let Ok(recorded) = node.record(&staff(), request).await {
                            ids.push(recorded.record.record_id);
                        }
                    }
                    Step::Confirm(n) => if let Some(id) = pick(n) {
                        let _ = node.confirm(&staff(), &id).await;
                    },
                    Step::Amend(n, quarters) => if let Some(id) = pick(n) {
                        let record: Option<ServiceRecord> =
                            store::get_json(&*node.store, record_key(&id).as_bytes()).ok().flatten();
                        if let Some(record) = record {
                            let amend = pb::AmendServiceRecordRequest {
                                record_id: id,
                                start_time: Some(wire::timestamp(record.start_time)),
                                end_time: Some(wire::timestamp(
                                    record.start_time + Duration::minutes(15 * i64::from(quarters)),
                                )),
                                reason: "核实".into(),
                                ..Default::default()
                            };
                            let _ = node.amend(&staff(), amend).await;
                        }
                    },
                    Step::Revoke(n) => if let Some(id) = pick(n) {
                        let _ = node.revoke(&staff(), &id).await;
                    },
                }
                for number in volunteers {
                    prop_assert_eq!(node.total(number), node.summed(number));
                }
            }
            Ok(())
        })?;
    }
}

#[test]
fn the_hours_section_defaults_and_refuses_bad_values() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("node.toml");
    let load = |extra: &str| {
        std::fs::write(&path, format!("[node]\ncode = \"330106\"\nlevel = \"county\"\nname = \"西湖区\"\n{extra}"))?;
        crate::config::Config::load_with_env(Some(&path), std::iter::empty()).map_err(anyhow::Error::from)
    };
    let defaults = load("")?.hours;
    assert_eq!((defaults.rounding_minutes, defaults.window_tolerance_minutes, defaults.day_hours_max), (15, 60, 24));
    let error = load("[hours]\nrounding_minutes = 7\nday_hours_max = 25\nbulk_rows_max = 0\n")
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    for key in ["hours.rounding_minutes", "hours.day_hours_max", "hours.bulk_rows_max"] {
        assert!(error.contains(key), "{key} missing in {error}");
    }
    assert_eq!(load("[hours]\nrounding_minutes = 6\n")?.hours.rounding_minutes, 6);
    Ok(())
}
