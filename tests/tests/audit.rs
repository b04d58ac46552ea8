//! The audit trail: every change and every refused change leaves an entry with time, account, department,
//! operation, target, outcome and request id; entries are listed by time range and account, in order; only
//! auditors read them and nothing edits or deletes them.

use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::adult;
use ecovol_tests::{NodeSpec, TestNode};
use tonic::Code;

async fn entries(node: &TestNode, request: pb::ListAuditEntriesRequest) -> Vec<pb::AuditEntry> {
    let mut all = Vec::new();
    let mut request = request;
    loop {
        let page = node.audit(&node.tokens.auditor).list_audit_entries(request.clone()).await.unwrap().into_inner();
        all.extend(page.entries);
        if page.next_page_token.is_empty() {
            return all;
        }
        request.page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn changes_and_refusals_are_recorded_with_who_what_and_outcome() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let mut staff = node.volunteers(&node.tokens.staff);
    let mut request = tonic::Request::new(adult(1));
    request.metadata_mut().insert("x-request-id", "office-42".parse().unwrap());
    let number = staff.register_volunteer(request).await.unwrap().into_inner().volunteer.unwrap().volunteer_number;
    let _ = staff.register_volunteer(adult(1)).await.unwrap_err(); // duplicate → conflict
    let _ = staff.register_volunteer(pb::RegisterVolunteerRequest { phone: "1".into(), ..adult(2) }).await.unwrap_err(); // invalid
    let _ = node.volunteers(&node.tokens.auditor).register_volunteer(adult(3)).await.unwrap_err(); // denied
    let _ = staff.get_volunteer(pb::GetVolunteerRequest { volunteer_number: number.clone() }).await.unwrap(); // a read: not audited

    let all = entries(&node, pb::ListAuditEntriesRequest::default()).await;
    let registrations: Vec<_> =
        all.iter().filter(|entry| entry.operation == "VolunteerService/RegisterVolunteer").collect();
    let outcomes: Vec<i32> = registrations.iter().map(|entry| entry.outcome).collect();
    assert_eq!(
        outcomes,
        [pb::Outcome::Ok as i32, pb::Outcome::Conflict as i32, pb::Outcome::Invalid as i32, pb::Outcome::Denied as i32]
    );
    let first = registrations[0];
    assert_eq!(first.target, number);
    assert_eq!(first.request_id, "office-42");
    assert_eq!(first.department, pb::Department::EcologyBureau as i32);
    assert!(first.account_name.contains("staff"));
    assert!(first.time.is_some());
    assert!(registrations[1].detail.contains(&number), "the conflict names the existing volunteer");
    // Offline bootstrap of the four accounts is audited too, and sequences are gap-free from 1.
    let sequences: Vec<u64> = all.iter().map(|entry| entry.sequence).collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    assert_eq!(all.iter().filter(|entry| entry.operation == "AccountService/CreateAccount").count(), 4);
}

#[tokio::test]
async fn entries_are_listed_by_time_range_and_account_with_pages() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let mut staff = node.volunteers(&node.tokens.staff);
    for index in 0..5 {
        staff.register_volunteer(adult(index)).await.unwrap();
    }
    let middle = entries(&node, pb::ListAuditEntriesRequest::default()).await.last().unwrap().time.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for index in 5..12 {
        staff.register_volunteer(adult(index)).await.unwrap();
    }
    let after_middle = |entry: &pb::AuditEntry| {
        let time = entry.time.unwrap();
        (time.seconds, time.nanos) > (middle.seconds, middle.nanos)
    };
    let later = entries(
        &node,
        pb::ListAuditEntriesRequest {
            start_time: Some(prost_types::Timestamp { seconds: middle.seconds, nanos: middle.nanos + 1_000_000 }),
            page_size: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(later.len(), 7, "the seven later registrations, over three pages");
    assert!(later.iter().all(after_middle));
    let earlier = entries(&node, pb::ListAuditEntriesRequest { end_time: Some(middle), ..Default::default() }).await;
    assert_eq!(earlier.len(), 4 + 4, "four bootstrap accounts and four registrations before the last one");
    // By account: the staff account's entries only.
    let staff_id = node.accounts(&node.tokens.staff).who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    let staff_id = staff_id.account.unwrap().account_id;
    let by_staff = entries(
        &node,
        pb::ListAuditEntriesRequest { account_id: staff_id.clone(), page_size: 5, ..Default::default() },
    )
    .await;
    assert_eq!(by_staff.len(), 12);
    assert!(by_staff.iter().all(|entry| entry.account_id == staff_id));
    // A range with end before start, and a timestamp with absurd nanos, are refused.
    let mut audit = node.audit(&node.tokens.auditor);
    let backwards = audit
        .list_audit_entries(pb::ListAuditEntriesRequest {
            start_time: Some(prost_types::Timestamp { seconds: 2000, nanos: 0 }),
            end_time: Some(prost_types::Timestamp { seconds: 1000, nanos: 0 }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(ecovol_tests::violated_fields(&backwards), ["end_time"]);
    let absurd = audit
        .list_audit_entries(pb::ListAuditEntriesRequest {
            start_time: Some(prost_types::Timestamp { seconds: 0, nanos: -5 }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(ecovol_tests::violated_fields(&absurd), ["start_time"]);
}

#[tokio::test]
async fn only_auditors_read_the_trail() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    for token in [&node.tokens.operator, &node.tokens.staff] {
        let refused = node.audit(token).list_audit_entries(pb::ListAuditEntriesRequest::default()).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
    }
}
