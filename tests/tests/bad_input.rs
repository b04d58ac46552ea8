//! Bad input gets a clear gRPC error, never a panic, and changes nothing already stored.

use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::adult;
use ecovol_tests::{NodeSpec, TestNode, violated_fields};
use tonic::Code;

async fn volunteer_count(node: &TestNode) -> usize {
    let request = pb::SearchVolunteersRequest { include_inactive: true, page_size: 1000, ..Default::default() };
    node.volunteers(&node.tokens.staff).search_volunteers(request).await.unwrap().into_inner().volunteers.len()
}

#[tokio::test]
async fn bad_requests_are_refused_clearly_and_change_nothing() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let mut client = node.volunteers(&node.tokens.staff);
    let kept = client.register_volunteer(adult(1)).await.unwrap().into_inner().volunteer.unwrap();

    // (what, request, expected code, expected violated fields)
    let cases: Vec<(&str, pb::RegisterVolunteerRequest, Code, Vec<&str>)> = vec![
        (
            "name too long",
            pb::RegisterVolunteerRequest { name: "名".repeat(51), ..adult(2) },
            Code::InvalidArgument,
            vec!["name"],
        ),
        (
            "control character",
            pb::RegisterVolunteerRequest { name: "a\u{7}b".into(), ..adult(2) },
            Code::InvalidArgument,
            vec!["name"],
        ),
        (
            "NUL in name",
            pb::RegisterVolunteerRequest { name: "a\0b".into(), ..adult(2) },
            Code::InvalidArgument,
            vec!["name", "name"],
        ),
        (
            "unknown enum",
            pb::RegisterVolunteerRequest { political_status: 99, ..adult(2) },
            Code::InvalidArgument,
            vec!["political_status"],
        ),
        (
            "unknown gender",
            pb::RegisterVolunteerRequest { gender: -4, ..adult(2) },
            Code::InvalidArgument,
            vec!["gender"],
        ),
        (
            "too many skills",
            pb::RegisterVolunteerRequest { skills: (0..1000).map(|i| i.to_string()).collect(), ..adult(2) },
            Code::InvalidArgument,
            vec!["skills"],
        ),
        (
            "birth date not a date",
            pb::RegisterVolunteerRequest { birth_date: "1960-02-30".into(), ..adult(2) },
            Code::InvalidArgument,
            vec!["birth_date"],
        ),
        (
            "future birth date",
            pb::RegisterVolunteerRequest {
                identity_number: ecovol_tests::fixtures::identity_number("330106", "20990101", 1),
                ..adult(2)
            },
            Code::InvalidArgument,
            vec!["identity_number"],
        ),
        (
            "15-digit old number",
            pb::RegisterVolunteerRequest { identity_number: "330106600101001".into(), ..adult(2) },
            Code::InvalidArgument,
            vec!["identity_number"],
        ),
        (
            "emoji phone",
            pb::RegisterVolunteerRequest { phone: "1380013800🙂".into(), ..adult(2) },
            Code::InvalidArgument,
            vec!["phone"],
        ),
        (
            "duplicate identity",
            pb::RegisterVolunteerRequest { phone: "13711112222".into(), ..adult(1) },
            Code::AlreadyExists,
            vec![],
        ),
    ];
    for (what, request, expected_code, expected_fields) in cases {
        let refused = client.register_volunteer(request).await.unwrap_err();
        assert_eq!(refused.code(), expected_code, "{what}: {}", refused.message());
        assert_eq!(violated_fields(&refused), expected_fields, "{what}");
        assert!(!refused.message().is_empty(), "{what}: a refusal says why");
    }
    // A request larger than office.message_bytes_max (4 MiB) is refused before it is decoded.
    let huge = client
        .register_volunteer(pb::RegisterVolunteerRequest { name: "x".repeat(5 << 20), ..adult(3) })
        .await
        .unwrap_err();
    assert!(matches!(huge.code(), Code::OutOfRange | Code::ResourceExhausted), "{huge:?}");
    // Malformed identifiers and page fields.
    let malformed = client
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: "../../etc/passwd".into() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&malformed), ["volunteer_number"]);
    let empty = client.get_volunteer(pb::GetVolunteerRequest::default()).await.unwrap_err();
    assert_eq!(violated_fields(&empty), ["volunteer_number"]);
    let token = client
        .search_volunteers(pb::SearchVolunteersRequest { page_token: "%%%".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&token), ["page_token"]);
    // A huge page size is lowered to the configured maximum, not refused.
    let clamped =
        client.search_volunteers(pb::SearchVolunteersRequest { page_size: i32::MAX, ..Default::default() }).await;
    assert_eq!(clamped.unwrap().into_inner().volunteers.len(), 1);
    // An update that breaks a rule changes nothing, not even the fields that were fine.
    let refused = client
        .update_volunteer(pb::UpdateVolunteerRequest {
            volunteer_number: kept.volunteer_number.clone(),
            name: Some("新名字".into()),
            phone: Some("not a phone".into()),
            reason: "mixed".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["phone"]);

    // Nothing was stored by any refusal, and the node still serves.
    assert_eq!(volunteer_count(&node).await, 1);
    let now = client
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: kept.volunteer_number.clone() })
        .await
        .unwrap()
        .into_inner()
        .volunteer
        .unwrap();
    assert_eq!(now, kept);
}
