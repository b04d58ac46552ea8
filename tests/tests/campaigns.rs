//! Selection campaigns (honours) from issue to results on seven real nodes: quotas per child and per county,
//! eligibility, nominations with and without the volunteer's consent to publicity, review by the cities,
//! selection at the province, honours recorded at the home county, no second selection in a later edition.

use std::time::Duration;

use chrono::Duration as Span;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::campaign_service_client::CampaignServiceClient;
use ecovol_proto::v1::recognition_service_client::RecognitionServiceClient;
use ecovol_tests::cluster::{Cluster, ClusterNode, JIANGSU};
use ecovol_tests::federation_load::load_county;
use ecovol_tests::needles_found_under;
use tonic::Code;

const DELIVERY: Duration = Duration::from_secs(60);
const HOURS_WINDOW: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";

fn campaigns(node: &ClusterNode) -> CampaignServiceClient<ecovol_tests::Authed> {
    CampaignServiceClient::new(node.staff())
}

fn quota(region: &str, nominations: u32) -> pb::CampaignQuota {
    pb::CampaignQuota { region: region.into(), nominations }
}

async fn eventually_held(node: &ClusterNode, id: &str) -> pb::Campaign {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let listed = campaigns(node).list_campaigns(pb::ListCampaignsRequest {}).await.unwrap().into_inner();
        if let Some(campaign) = listed.campaigns.into_iter().find(|c| c.campaign_id == id) {
            return campaign;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} never received {id}", node.code);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A volunteer of `node` with at least (`at_least`) or less than (`!at_least`) an hour of confirmed service.
async fn volunteer_with_hours(node: &ClusterNode, numbers: &[String], at_least: bool) -> String {
    for number in numbers {
        let profile = RecognitionServiceClient::new(node.staff())
            .get_volunteer_profile(pb::GetVolunteerProfileRequest {
                volunteer_number: number.clone(),
                evaluations_max: 1,
            })
            .await
            .unwrap()
            .into_inner();
        if (profile.confirmed_minutes >= 60) == at_least {
            return number.clone();
        }
    }
    panic!("no volunteer of {} with{} an hour of service", node.code, if at_least { "" } else { "out" });
}

fn nominate(campaign: &str, volunteer: &str, consent: bool) -> pb::NominateRequest {
    pb::NominateRequest {
        campaign_id: campaign.into(),
        volunteer_number: volunteer.into(),
        story: "长期坚持河道巡护，带动社区垃圾分类".into(),
        consent_to_publicity: consent,
        not_eco_system_staff: true,
        service_outside_job_duties: true,
    }
}

fn issue_request(edition: u32) -> pb::IssueCampaignRequest {
    let today = ecovol_node::wire::today_china();
    pb::IssueCampaignRequest {
        title: format!("第{edition}届最美生态环境志愿者"),
        series: "outstanding-eco-volunteers".into(),
        edition,
        nominations_open: today.to_string(),
        nominations_close: (today + Span::days(10)).to_string(),
        publication_date: (today + Span::days(30)).to_string(),
        min_confirmed_hours: 1,
        quotas: vec![quota("320100", 2), quota("320200", 1)],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_from_issue_to_honours_with_quotas_eligibility_and_consent() {
    let cluster = Cluster::start(&JIANGSU, HOURS_WINDOW).await.unwrap();
    let mut numbers = std::collections::BTreeMap::new();
    for (i, county) in ["320102", "320104", "320205", "320206"].into_iter().enumerate() {
        let loaded = load_county(cluster.node(county), 40 + i as u64, 1000 * i as u32, 10).await.unwrap();
        numbers.insert(county, loaded.volunteers);
    }
    let numbers_of = |county: &str| -> Vec<String> { numbers[county].iter().map(|(n, _)| n.clone()).collect() };
    let province = cluster.node("320000");
    let issued = campaigns(province).issue_campaign(issue_request(1)).await.unwrap().into_inner().campaign.unwrap();
    let id = issued.campaign_id.clone();
    assert_eq!((id.as_str(), issued.state.as_str()), ("320000-CA0001", "issued"));

    // The cities split their quotas among their counties and pass the campaign down.
    for (city, quotas) in
        [("320100", vec![quota("320102", 1), quota("320104", 1)]), ("320200", vec![quota("320205", 1)])]
    {
        let node = cluster.node(city);
        eventually_held(node, &id).await;
        let too_many = pb::SetQuotasRequest { campaign_id: id.clone(), quotas: vec![quota(&quotas[0].region, 9)] };
        assert_eq!(campaigns(node).set_quotas(too_many).await.unwrap_err().code(), Code::InvalidArgument);
        campaigns(node).set_quotas(pb::SetQuotasRequest { campaign_id: id.clone(), quotas }).await.unwrap();
    }
    for county in ["320102", "320104", "320205", "320206"] {
        eventually_held(cluster.node(county), &id).await;
    }

    // Nominations: eligibility, attestations, quotas.
    let xuanwu = cluster.node("320102");
    let short = volunteer_with_hours(xuanwu, &numbers_of("320102"), false).await;
    let refused = campaigns(xuanwu).nominate(nominate(&id, &short, true)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "under an hour: {refused:?}");
    let a = volunteer_with_hours(xuanwu, &numbers_of("320102"), true).await;
    let staff_member = pb::NominateRequest {
        not_eco_system_staff: false,
        service_outside_job_duties: false,
        ..nominate(&id, &a, true)
    };
    let refused = campaigns(xuanwu).nominate(staff_member).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields = ecovol_tests::violated_fields(&refused);
    assert_eq!(fields, ["not_eco_system_staff", "service_outside_job_duties"]);
    campaigns(xuanwu).nominate(nominate(&id, &a, true)).await.unwrap();
    let other = numbers_of("320102").into_iter().find(|n| *n != a).unwrap();
    let over = campaigns(xuanwu).nominate(nominate(&id, &other, true)).await.unwrap_err();
    assert_eq!(over.code(), Code::FailedPrecondition, "quota of one used: {over:?}");
    let qinhuai = cluster.node("320104");
    let b = volunteer_with_hours(qinhuai, &numbers_of("320104"), true).await;
    campaigns(qinhuai).nominate(nominate(&id, &b, false)).await.unwrap();
    let xishan = cluster.node("320205");
    let c = volunteer_with_hours(xishan, &numbers_of("320205"), true).await;
    campaigns(xishan).nominate(nominate(&id, &c, true)).await.unwrap();
    let huishan = cluster.node("320206");
    let d = volunteer_with_hours(huishan, &numbers_of("320206"), true).await;
    let no_quota = campaigns(huishan).nominate(nominate(&id, &d, true)).await.unwrap_err();
    assert_eq!(no_quota.code(), Code::FailedPrecondition, "Wuxi gave Huishan no nominations");

    // The cities review what their counties sent.
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let nanjing = cluster.node("320100");
    let held =
        campaigns(nanjing).get_campaign(pb::CampaignRequest { campaign_id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(held.nominations.len(), 2);
    let id_of = |nominations: &[pb::Nomination], home: &str| {
        nominations.iter().find(|n| n.home == home).map(|n| n.nomination_id.clone()).unwrap()
    };
    let (nomination_a, nomination_b) = (id_of(&held.nominations, "320102"), id_of(&held.nominations, "320104"));
    let review = |nomination: &str, endorse: bool| pb::ReviewRequest {
        campaign_id: id.clone(),
        nomination_id: nomination.into(),
        endorse,
        comment: if endorse { "推荐".into() } else { "服务时长证明不足".into() },
    };
    campaigns(nanjing).review(review(&nomination_a, true)).await.unwrap();
    campaigns(nanjing).review(review(&nomination_b, false)).await.unwrap();
    assert_eq!(
        campaigns(nanjing).review(review(&nomination_b, true)).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let wuxi = cluster.node("320200");
    let held =
        campaigns(wuxi).get_campaign(pb::CampaignRequest { campaign_id: id.clone() }).await.unwrap().into_inner();
    let nomination_c = id_of(&held.nominations, "320205");
    campaigns(wuxi).review(review(&nomination_c, true)).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();

    // The province sees the reviewed nominations; names travel only with consent.
    let at_province =
        campaigns(province).get_campaign(pb::CampaignRequest { campaign_id: id.clone() }).await.unwrap().into_inner();
    let status: Vec<(String, String, bool)> =
        at_province.nominations.iter().map(|n| (n.home.clone(), n.status.clone(), !n.name.is_empty())).collect();
    let expected = [("320102", "endorsed", true), ("320104", "rejected", false), ("320205", "endorsed", true)];
    let expected: Vec<(String, String, bool)> =
        expected.iter().map(|(home, status, named)| (home.to_string(), status.to_string(), *named)).collect();
    assert_eq!(status, expected);
    assert!(at_province.nominations.iter().all(|n| n.volunteer_number.is_empty() && n.volunteer_key.len() == 32));
    let b_request = &numbers["320104"].iter().find(|(n, _)| *n == b).unwrap().1;
    let found = needles_found_under(&province.dir, &[b_request.name.as_bytes(), b_request.identity_number.as_bytes()]);
    assert!(found.is_empty(), "without consent the name stays at home: {found:?}");

    // Selection: a rejected nomination cannot be selected; the others become honours at home.
    let select = |ids: Vec<String>| pb::SelectRequest { campaign_id: id.clone(), nomination_ids: ids };
    assert_eq!(
        campaigns(province).select(select(vec![nomination_b.clone()])).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    assert_eq!(
        campaigns(nanjing).select(select(vec![nomination_a.clone()])).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    campaigns(province).select(select(vec![nomination_a.clone(), nomination_c.clone()])).await.unwrap();
    for (node, volunteer) in [(xuanwu, &a), (xishan, &c)] {
        let deadline = tokio::time::Instant::now() + DELIVERY;
        loop {
            let profile = RecognitionServiceClient::new(node.staff())
                .get_volunteer_profile(pb::GetVolunteerProfileRequest {
                    volunteer_number: volunteer.clone(),
                    evaluations_max: 1,
                })
                .await
                .unwrap()
                .into_inner();
            if let Some(honour) = profile.honours.first() {
                assert_eq!(
                    (honour.campaign_id.as_str(), honour.awarded_by.as_str(), honour.edition),
                    (id.as_str(), "320000", 1)
                );
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{}: no honour for {volunteer}", node.code);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let b_profile = RecognitionServiceClient::new(qinhuai.staff())
        .get_volunteer_profile(pb::GetVolunteerProfileRequest { volunteer_number: b.clone(), evaluations_max: 1 })
        .await
        .unwrap()
        .into_inner();
    assert!(b_profile.honours.is_empty());

    // The next edition: a volunteer selected before is not eligible again.
    let second = campaigns(province).issue_campaign(issue_request(2)).await.unwrap().into_inner().campaign.unwrap();
    eventually_held(nanjing, &second.campaign_id).await;
    campaigns(nanjing)
        .set_quotas(pb::SetQuotasRequest { campaign_id: second.campaign_id.clone(), quotas: vec![quota("320102", 2)] })
        .await
        .unwrap();
    eventually_held(xuanwu, &second.campaign_id).await;
    let again = campaigns(xuanwu).nominate(nominate(&second.campaign_id, &a, true)).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("earlier edition"), "{}", again.message());
    // A county cannot issue a campaign.
    assert_eq!(campaigns(xuanwu).issue_campaign(issue_request(3)).await.unwrap_err().code(), Code::FailedPrecondition);
    cluster.shutdown().await.unwrap();
}
