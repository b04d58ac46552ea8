//! The volunteer register over real gRPC against a real node on a temporary sled directory.

use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::{adult, identity_number};
use ecovol_tests::{NodeSpec, TestNode, violated_fields};
use tonic::Code;

async fn node() -> TestNode {
    TestNode::start(NodeSpec::county("330106")).await.expect("node starts")
}

#[tokio::test]
async fn a_registered_volunteer_gets_a_number_and_never_shows_the_identity_number() {
    let node = node().await;
    let mut client = node.volunteers(&node.tokens.staff);
    let registered = client.register_volunteer(adult(1)).await.unwrap().into_inner().volunteer.unwrap();
    assert_eq!(registered.volunteer_number, "330106-00000001");
    assert_eq!(registered.version, 1);
    assert_eq!(registered.phone, "13900000001");
    let fetched = client
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: registered.volunteer_number.clone() })
        .await
        .unwrap()
        .into_inner()
        .volunteer
        .unwrap();
    assert_eq!(fetched, registered);
    let shown = format!("{fetched:?}");
    assert!(!shown.contains(&adult(1).identity_number), "identity number leaked: {shown}");
    // Derived from the number: 17th digit even (sequence 000) → female; birth date from the number.
    assert_eq!(fetched.gender, pb::Gender::Female as i32);
    assert_eq!(fetched.birth_date, "1960-01-02");
}

#[tokio::test]
async fn registering_an_identity_number_twice_names_the_existing_volunteer() {
    let node = node().await;
    let mut client = node.volunteers(&node.tokens.staff);
    client.register_volunteer(adult(7)).await.unwrap();
    let again =
        pb::RegisterVolunteerRequest { name: "另一个名字".into(), phone: "13911112222".into(), ..adult(7) };
    let refused = client.register_volunteer(again).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert!(refused.message().contains("330106-00000001"), "{}", refused.message());
    // Nothing was created by the refusal.
    let all = client.search_volunteers(pb::SearchVolunteersRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.volunteers.len(), 1);
}

#[tokio::test]
async fn every_broken_rule_comes_back_as_a_field_violation_and_nothing_is_stored() {
    let node = node().await;
    let mut client = node.volunteers(&node.tokens.staff);
    let bad = pb::RegisterVolunteerRequest {
        name: "x".repeat(51),
        identity_number: "15000019970319128X".into(),
        phone: "23800138000".into(),
        political_status: 0,
        consent_to_processing: false,
        home_division_code: "99".into(),
        skills: vec!["a".into(), "a".into()],
        ..Default::default()
    };
    let refused = client.register_volunteer(bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        [
            "consent_to_processing",
            "home_division_code",
            "identity_number",
            "name",
            "phone",
            "political_status",
            "skills[1]"
        ]
    );
    let all = client.search_volunteers(pb::SearchVolunteersRequest::default()).await.unwrap().into_inner();
    assert!(all.volunteers.is_empty());
}

#[tokio::test]
async fn minors_and_residence_permits_follow_the_rules() {
    let node = node().await;
    let mut client = node.volunteers(&node.tokens.staff);
    // Born 2014: 12 years old, needs a parent's consent.
    let child =
        pb::RegisterVolunteerRequest { identity_number: identity_number("330106", "20140301", 22), ..adult(50) };
    let refused = client.register_volunteer(child.clone()).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["guardian_consent"]);
    let with_guardian =
        pb::RegisterVolunteerRequest { guardian_consent: pb::GuardianConsent::Guardian as i32, ..child.clone() };
    assert_eq!(violated_fields(&client.register_volunteer(with_guardian).await.unwrap_err()), ["guardian_consent"]);
    let with_parent = pb::RegisterVolunteerRequest { guardian_consent: pb::GuardianConsent::Parent as i32, ..child };
    client.register_volunteer(with_parent).await.unwrap();
    // A Hong Kong residence permit (810000) is accepted and marked.
    let permit = pb::RegisterVolunteerRequest { identity_number: "810000199408230021".into(), ..adult(51) };
    let volunteer = client.register_volunteer(permit).await.unwrap().into_inner().volunteer.unwrap();
    assert!(volunteer.residence_permit);
    assert_eq!(volunteer.gender, pb::Gender::Female as i32);
}

#[tokio::test]
async fn search_by_each_criterion_and_page_through_results() {
    let node = node().await;
    let mut client = node.volunteers(&node.tokens.staff);
    for index in 0..25 {
        let mut request = adult(100 + index);
        if index % 5 == 0 {
            request.skills = vec!["水质监测".into()];
        }
        client.register_volunteer(request).await.unwrap();
    }
    let search = |request: pb::SearchVolunteersRequest| {
        let mut client = client.clone();
        async move { client.search_volunteers(request).await.unwrap().into_inner() }
    };
    let by_skill = search(pb::SearchVolunteersRequest { skill: "水质监测".into(), ..Default::default() }).await;
    assert_eq!(by_skill.volunteers.len(), 5);
    let by_phone = search(pb::SearchVolunteersRequest { phone: "13900000107".into(), ..Default::default() }).await;
    assert_eq!(by_phone.volunteers.len(), 1);
    assert_eq!(by_phone.volunteers[0].name, "志愿者107");
    let by_name = search(pb::SearchVolunteersRequest { name_prefix: "志愿者11".into(), ..Default::default() }).await;
    assert_eq!(by_name.volunteers.len(), 10);
    let by_number =
        search(pb::SearchVolunteersRequest { volunteer_number: "330106-00000003".into(), ..Default::default() }).await;
    assert_eq!(by_number.volunteers.len(), 1);
    // Pages of 10 cover all 25 exactly once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = search(pb::SearchVolunteersRequest { page_size: 10, page_token: token, ..Default::default() }).await;
        seen.extend(page.volunteers.into_iter().map(|v| v.volunteer_number));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 25);
    seen.dedup();
    assert_eq!(seen.len(), 25);
    // A token from another query is refused, as is a negative page size.
    let wrong = client
        .search_volunteers(pb::SearchVolunteersRequest {
            skill: "水质监测".into(),
            page_token: "dm9sLzMzMDEwNi0wMDAwMDAwMQ".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&wrong), ["page_token"]);
    let negative = client
        .search_volunteers(pb::SearchVolunteersRequest { page_size: -1, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&negative), ["page_size"]);
}

#[tokio::test]
async fn updates_are_versioned_with_who_and_why_and_guarded_by_expected_version() {
    let node = node().await;
    let mut client = node.volunteers(&node.tokens.staff);
    let number = client.register_volunteer(adult(3)).await.unwrap().into_inner().volunteer.unwrap().volunteer_number;
    let updated = client
        .update_volunteer(pb::UpdateVolunteerRequest {
            volunteer_number: number.clone(),
            expected_version: 1,
            phone: Some("13712345678".into()),
            skills: Some(pb::SkillList { skills: vec!["急救".into()] }),
            reason: "volunteer changed phone".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .volunteer
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.phone, "13712345678");
    // The old phone no longer finds the volunteer; the new one does.
    let old = client
        .search_volunteers(pb::SearchVolunteersRequest { phone: "13900000003".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(old.into_inner().volunteers.is_empty());
    let new = client
        .search_volunteers(pb::SearchVolunteersRequest { phone: "13712345678".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(new.into_inner().volunteers.len(), 1);
    // A stale expected version is refused.
    let stale = client
        .update_volunteer(pb::UpdateVolunteerRequest {
            volunteer_number: number.clone(),
            expected_version: 1,
            name: Some("新名字".into()),
            reason: "typo".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    // An update without a reason is refused.
    let no_reason = client
        .update_volunteer(pb::UpdateVolunteerRequest {
            volunteer_number: number.clone(),
            name: Some("新名字".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_reason), ["reason"]);
    // Deactivate, then the history holds all three versions with reasons.
    client
        .deactivate_volunteer(pb::DeactivateVolunteerRequest {
            volunteer_number: number.clone(),
            reason: "moved away".into(),
        })
        .await
        .unwrap();
    let history = client
        .list_volunteer_versions(pb::ListVolunteerVersionsRequest {
            volunteer_number: number.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    let summary: Vec<(u32, String)> = history.iter().map(|v| (v.version, v.reason.clone())).collect();
    assert_eq!(summary, [(1, "registered".into()), (2, "volunteer changed phone".into()), (3, "moved away".into())]);
    assert_eq!(history[1].volunteer.as_ref().unwrap().phone, "13712345678");
    // Inactive volunteers are hidden from search unless asked for.
    let active = client.search_volunteers(pb::SearchVolunteersRequest::default()).await.unwrap().into_inner();
    assert!(active.volunteers.is_empty());
    let all = client
        .search_volunteers(pb::SearchVolunteersRequest { include_inactive: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.volunteers.len(), 1);
    let missing =
        client.get_volunteer(pb::GetVolunteerRequest { volunteer_number: "330106-99999999".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn only_the_operator_reveals_an_identity_number_and_it_is_audited() {
    let node = node().await;
    let number = node
        .volunteers(&node.tokens.staff)
        .register_volunteer(adult(9))
        .await
        .unwrap()
        .into_inner()
        .volunteer
        .unwrap()
        .volunteer_number;
    let ask = |token: &str, reason: &str| {
        let mut client = node.volunteers(token);
        let request = pb::RevealIdentityNumberRequest { volunteer_number: number.clone(), reason: reason.into() };
        async move { client.reveal_identity_number(request).await }
    };
    assert_eq!(ask(&node.tokens.staff, "curious").await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(ask(&node.tokens.auditor, "curious").await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(violated_fields(&ask(&node.tokens.operator, "").await.unwrap_err()), ["reason"]);
    let revealed = ask(&node.tokens.operator, "court order 2026-17").await.unwrap().into_inner();
    assert_eq!(revealed.identity_number, adult(9).identity_number);
    let entries = node
        .audit(&node.tokens.auditor)
        .list_audit_entries(pb::ListAuditEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let reveals: Vec<_> = entries.iter().filter(|e| e.operation == "VolunteerService/RevealIdentityNumber").collect();
    assert_eq!(reveals.len(), 4, "each attempt is audited");
    let granted = reveals.iter().find(|e| e.outcome == pb::Outcome::Ok as i32).unwrap();
    assert_eq!(granted.detail, "court order 2026-17");
    assert_eq!(granted.target, number);
    assert_eq!(reveals.iter().filter(|e| e.outcome == pb::Outcome::Denied as i32).count(), 2);
}
