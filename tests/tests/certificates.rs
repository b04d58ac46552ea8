//! Service certificates over real gRPC against a real node: issue with real confirmed hours (masked identity
//! number, exact total, escaped page), verification, reading by role, and the refusals. Tampering with a stored
//! certificate is proven by the unit test `certificate::tests::a_changed_field_breaks_the_hash`.

use chrono::{Duration, Utc};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::certificate_service_client::CertificateServiceClient;
use ecovol_tests::fixtures::adult;
use ecovol_tests::scenario::{Cast, authed, china_date, served_cast};
use ecovol_tests::{Authed, Bearer, TestNode, violated_fields};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;

/// Hours configuration of the test node: a week's window tolerance, so intervals of two days ago lie within the
/// window of a project that started a moment ago (see tests/tests/hours.rs).
const HOURS_TOML: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";

async fn cast() -> Cast {
    served_cast(HOURS_TOML).await
}

fn certificates(node: &TestNode, token: &str) -> CertificateServiceClient<Authed> {
    CertificateServiceClient::new(authed(node, token))
}

fn issue_request(cast: &Cast, volunteer: &str) -> pb::IssueCertificateRequest {
    pb::IssueCertificateRequest {
        volunteer_number: volunteer.into(),
        start_date: china_date(cast.day - Duration::days(1)),
        end_date: china_date(Utc::now()),
    }
}

#[tokio::test]
async fn a_certificate_carries_the_confirmed_hours_and_verifies() {
    let cast = cast().await;
    let node = &cast.node;
    let issued = certificates(node, &node.tokens.staff).issue_certificate(issue_request(&cast, &cast.served)).await;
    let issued = issued.unwrap().into_inner();
    let certificate = issued.certificate.unwrap();
    assert!(certificate.certificate_number.starts_with("330106-C20"), "{}", certificate.certificate_number);
    assert_eq!(certificate.volunteer_number, cast.served);
    assert_eq!(certificate.volunteer_name, "志愿者1");
    assert_eq!(certificate.identity_document_type, pb::IdentityDocumentType::ResidentIdentityCard as i32);
    let identity = adult(1).identity_number;
    let masked = format!("{}********{}", &identity[..6], &identity[14..]);
    assert_eq!(certificate.masked_identity_number, masked);
    assert_eq!((certificate.total_hours_x100, certificate.total_hours.as_str()), (325, "3.25"));
    assert_eq!(certificate.lines.len(), 1, "only the confirmed record");
    assert_eq!(certificate.lines[0].project_title, "西溪湿地清洁");
    assert_eq!(certificate.issuer_code, "330106");
    assert_eq!(certificate.content_sha256.len(), 64);
    assert!(issued.html.contains(&masked) && !issued.html.contains(&identity));
    assert!(issued.html.contains("湿地垃圾清理 &lt;b&gt;"), "values are escaped");
    assert!(issued.html.contains("3.25"));

    // Any account verifies it; the summary matches.
    let number = certificate.certificate_number.clone();
    let verified = certificates(node, &node.tokens.auditor)
        .verify_certificate(pb::VerifyCertificateRequest { certificate_number: number.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(verified.valid);
    assert_eq!(verified.total_hours_x100, 325);
    assert_eq!(verified.content_sha256, certificate.content_sha256);

    // The volunteer reads their own; the auditor may not read it whole.
    let own = certificates(node, &cast.served_token)
        .get_certificate(pb::GetCertificateRequest { certificate_number: number.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.certificate.unwrap(), certificate);
    let denied = certificates(node, &node.tokens.auditor)
        .get_certificate(pb::GetCertificateRequest { certificate_number: number })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn certificates_are_refused_without_confirmed_hours_roles_or_valid_input() {
    let cast = cast().await;
    let node = &cast.node;
    let mut staff = certificates(node, &node.tokens.staff);
    let none = staff.issue_certificate(issue_request(&cast, &cast.unconfirmed)).await.unwrap_err();
    assert_eq!(none.code(), Code::FailedPrecondition, "{none:?}");
    // A period before the service: nothing to certify either.
    let mut early = issue_request(&cast, &cast.served);
    early.end_date = china_date(cast.day - Duration::days(1));
    assert_eq!(staff.issue_certificate(early).await.unwrap_err().code(), Code::FailedPrecondition);
    let denied = certificates(node, &cast.served_token).issue_certificate(issue_request(&cast, &cast.served)).await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    let bad = pb::IssueCertificateRequest {
        volunteer_number: "bad/number".into(),
        start_date: "2026-13-01".into(),
        end_date: String::new(),
    };
    let bad = staff.issue_certificate(bad).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["volunteer_number", "start_date", "end_date"]);
    let unknown = staff
        .verify_certificate(pb::VerifyCertificateRequest { certificate_number: "330106-C2026999999".into() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let anonymous = CertificateServiceClient::new(InterceptedService::new(node.channel.clone(), Bearer::none()))
        .verify_certificate(pb::VerifyCertificateRequest { certificate_number: "330106-C2026000001".into() })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

async fn ecovol_on(node: &TestNode, token: &str, args: &[&str]) -> (i32, String, String) {
    ecovol_tests::run_ecovol_on(node.address, token, args).await
}

#[tokio::test]
async fn the_command_line_issues_verifies_and_writes_the_page() {
    let cast = cast().await;
    let node = &cast.node;
    let page = node.dir.path().join("certificate.html");
    let page_arg = page.display().to_string();
    let request = issue_request(&cast, &cast.served);
    let (code, out, err) = ecovol_on(
        node,
        &node.tokens.staff,
        &[
            "--output",
            "json",
            "certificate",
            "issue",
            &cast.served,
            "--from",
            &request.start_date,
            "--to",
            &request.end_date,
            "--html",
            &page_arg,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(issued["certificate"]["total_hours"], "3.25");
    let number = issued["certificate"]["certificate_number"].as_str().unwrap().to_string();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("志愿服务证明") && html.contains(&number));
    let (code, out, err) = ecovol_on(node, &cast.served_token, &["certificate", "verify", &number]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid:") && out.contains("yes"), "{out}");
    let (code, _, err) = ecovol_on(node, &node.tokens.staff, &["certificate", "get", "330106-C2026999999"]).await;
    assert_eq!(code, 1, "{err}");
}
