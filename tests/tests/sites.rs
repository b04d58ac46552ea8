//! Service sites over real gRPC against a real node on a temporary sled directory.

use ecovol_proto::v1 as pb;
use ecovol_tests::{Authed, NodeSpec, TestNode, violated_fields};
use pb::site_service_client::SiteServiceClient;
use tonic::Code;

async fn node() -> TestNode {
    TestNode::start(NodeSpec::county("330106")).await.expect("node starts")
}

fn point(latitude: f64, longitude: f64) -> Option<pb::GeoPoint> {
    Some(pb::GeoPoint { latitude, longitude })
}

fn site(name: &str, kind: pb::SiteKind) -> pb::CreateSiteRequest {
    pb::CreateSiteRequest {
        name: name.into(),
        kind: kind as i32,
        address: "杭州市西湖区天目山路518号".into(),
        ..Default::default()
    }
}

async fn create(client: &mut SiteServiceClient<Authed>, request: pb::CreateSiteRequest) -> pb::Site {
    client.create_site(request).await.expect("site created").into_inner().site.expect("site in response")
}

async fn get(client: &mut SiteServiceClient<Authed>, site_id: &str) -> pb::Site {
    client
        .get_site(pb::GetSiteRequest { site_id: site_id.into() })
        .await
        .expect("site read")
        .into_inner()
        .site
        .expect("site in response")
}

/// Every site matching `request`, page after page: the ids in page order, and the number of pages.
async fn list_all(client: &mut SiteServiceClient<Authed>, request: pb::ListSitesRequest) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let page = client
            .list_sites(pb::ListSitesRequest { page_token: token, ..request.clone() })
            .await
            .expect("sites listed")
            .into_inner();
        pages += 1;
        ids.extend(page.sites.into_iter().map(|site| site.site_id));
        if page.next_page_token.is_empty() {
            return (ids, pages);
        }
        token = page.next_page_token;
    }
}

fn update(site_id: &str) -> pb::UpdateSiteRequest {
    pb::UpdateSiteRequest { site_id: site_id.into(), ..Default::default() }
}

#[tokio::test]
async fn a_site_is_created_with_its_coordinates_and_read_back() {
    let node = node().await;
    let mut client = node.sites(&node.tokens.staff);
    let created = create(
        &mut client,
        pb::CreateSiteRequest {
            location: point(30.2741, 120.0653),
            opening_notes: "周二至周日 9:00-17:00\n节假日照常开放".into(),
            ..site("西溪湿地宣教中心", pb::SiteKind::EcoEducationVenue)
        },
    )
    .await;
    assert_eq!(created.site_id, "330106-S000001");
    assert_eq!(created.name, "西溪湿地宣教中心");
    assert_eq!(created.kind, pb::SiteKind::EcoEducationVenue as i32);
    assert_eq!(created.address, "杭州市西湖区天目山路518号");
    assert_eq!(created.location, point(30.2741, 120.0653));
    assert_eq!(created.opening_notes, "周二至周日 9:00-17:00\n节假日照常开放");
    assert_eq!(created.version, 1);
    assert!(created.created_at.is_some());
    assert_eq!(get(&mut client, &created.site_id).await, created);

    // Without coordinates, and at the very edges of the WGS-84 ranges.
    let no_location = create(&mut client, site("文明实践站", pb::SiteKind::CivilizationPracticeCentre)).await;
    assert_eq!(no_location.site_id, "330106-S000002");
    assert_eq!(no_location.location, None);
    let edge = create(
        &mut client,
        pb::CreateSiteRequest { location: point(-90.0, 180.0), ..site("极点", pb::SiteKind::Other) },
    )
    .await;
    assert_eq!(edge.location, point(-90.0, 180.0));

    // Unknown and malformed ids are told apart; auditors have no business with sites.
    let missing = client.get_site(pb::GetSiteRequest { site_id: "330106-S000099".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad_id = client.get_site(pb::GetSiteRequest { site_id: "../site".into() }).await.unwrap_err();
    assert_eq!(violated_fields(&bad_id), ["site_id"]);
    let auditor = node
        .sites(&node.tokens.auditor)
        .get_site(pb::GetSiteRequest { site_id: created.site_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(auditor.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn coordinates_out_of_range_or_not_finite_are_field_violations_and_nothing_is_stored() {
    let node = node().await;
    let mut client = node.sites(&node.tokens.staff);
    let refused = |location: Option<pb::GeoPoint>| {
        let mut client = client.clone();
        async move {
            let request = pb::CreateSiteRequest { location, ..site("湿地", pb::SiteKind::NatureReserve) };
            let status = client.create_site(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            violated_fields(&status)
        }
    };
    assert_eq!(refused(point(91.0, 120.0)).await, ["location.latitude"]);
    assert_eq!(refused(point(-90.5, 120.0)).await, ["location.latitude"]);
    assert_eq!(refused(point(30.0, 180.01)).await, ["location.longitude"]);
    assert_eq!(refused(point(f64::NAN, 120.0)).await, ["location.latitude"]);
    assert_eq!(refused(point(30.0, f64::INFINITY)).await, ["location.longitude"]);
    assert_eq!(refused(point(f64::NAN, f64::NEG_INFINITY)).await, ["location.latitude", "location.longitude"]);
    // Every broken rule at once.
    let everything = client
        .create_site(pb::CreateSiteRequest {
            name: String::new(),
            kind: 0,
            address: "路".repeat(201),
            location: point(100.0, 200.0),
            opening_notes: "bell\u{7}".into(),
        })
        .await
        .unwrap_err();
    let mut fields = violated_fields(&everything);
    fields.sort();
    assert_eq!(fields, ["address", "kind", "location.latitude", "location.longitude", "name", "opening_notes"]);
    assert!(list_all(&mut client, pb::ListSitesRequest::default()).await.0.is_empty());
}

#[tokio::test]
async fn an_update_bumps_the_version_and_can_move_or_clear_the_location() {
    let node = node().await;
    let mut client = node.sites(&node.tokens.staff);
    let before = create(
        &mut client,
        pb::CreateSiteRequest { location: point(30.27, 120.06), ..site("西溪湿地", pb::SiteKind::NatureReserve) },
    )
    .await;
    let renamed = client
        .update_site(pb::UpdateSiteRequest {
            name: Some("西溪国家湿地公园".into()),
            kind: Some(pb::SiteKind::StudyBase as i32),
            ..update(&before.site_id)
        })
        .await
        .unwrap()
        .into_inner()
        .site
        .unwrap();
    assert_eq!(
        renamed,
        pb::Site {
            name: "西溪国家湿地公园".into(),
            kind: pb::SiteKind::StudyBase as i32,
            version: 2,
            ..before.clone()
        }
    );
    assert_eq!(get(&mut client, &before.site_id).await, renamed);
    let by_old_name = pb::ListSitesRequest { name_prefix: "西溪湿地".into(), ..Default::default() };
    assert!(list_all(&mut client, by_old_name).await.0.is_empty());

    let moved = client
        .update_site(pb::UpdateSiteRequest { location: point(30.28, 120.07), ..update(&before.site_id) })
        .await
        .unwrap()
        .into_inner()
        .site
        .unwrap();
    assert_eq!((moved.version, moved.location), (3, point(30.28, 120.07)));

    // Out of range, or both a location and clear_location: refused, nothing changes.
    let out_of_range = client
        .update_site(pb::UpdateSiteRequest { location: point(91.0, 120.0), ..update(&before.site_id) })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&out_of_range), ["location.latitude"]);
    let both = client
        .update_site(pb::UpdateSiteRequest {
            location: point(30.0, 120.0),
            clear_location: true,
            ..update(&before.site_id)
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&both), ["clear_location"]);
    assert_eq!(get(&mut client, &before.site_id).await, moved);

    let cleared = client
        .update_site(pb::UpdateSiteRequest { clear_location: true, ..update(&before.site_id) })
        .await
        .unwrap()
        .into_inner()
        .site
        .unwrap();
    assert_eq!((cleared.version, cleared.location), (4, None));
    assert_eq!(cleared.name, "西溪国家湿地公园");
    assert_eq!(get(&mut client, &before.site_id).await.location, None);

    let missing = client
        .update_site(pb::UpdateSiteRequest { name: Some("无".into()), ..update("330106-S000099") })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn sites_list_by_kind_and_name_and_pages_cover_every_site_once() {
    let node = node().await;
    let mut client = node.sites(&node.tokens.staff);
    let mut reserves = Vec::new();
    let mut every = Vec::new();
    for index in 0..7 {
        let kind = if index % 3 == 0 { pb::SiteKind::NatureReserve } else { pb::SiteKind::VolunteerStation };
        let name = if index < 4 { format!("西湖站点{index}") } else { format!("滨江站点{index}") };
        let created = create(&mut client, site(&name, kind)).await;
        if kind == pb::SiteKind::NatureReserve {
            reserves.push(created.site_id.clone());
        }
        every.push(created.site_id);
    }
    let (paged, pages) = list_all(&mut client, pb::ListSitesRequest { page_size: 2, ..Default::default() }).await;
    assert_eq!(pages, 4);
    assert_eq!(paged, every);

    let by_kind = pb::ListSitesRequest { kind: pb::SiteKind::NatureReserve as i32, page_size: 1, ..Default::default() };
    assert_eq!(list_all(&mut client, by_kind).await.0, reserves);
    let by_name = pb::ListSitesRequest { name_prefix: "西湖".into(), ..Default::default() };
    assert_eq!(list_all(&mut client, by_name.clone()).await.0, every[..4]);
    let name_and_kind = pb::ListSitesRequest { kind: pb::SiteKind::NatureReserve as i32, ..by_name };
    assert_eq!(list_all(&mut client, name_and_kind).await.0, [every[0].clone(), every[3].clone()]);
    let none = pb::ListSitesRequest { kind: pb::SiteKind::ScienceBase as i32, ..Default::default() };
    assert!(list_all(&mut client, none).await.0.is_empty());
    let unknown_kind = client.list_sites(pb::ListSitesRequest { kind: 42, ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&unknown_kind), ["kind"]);
}

#[tokio::test]
async fn only_staff_create_or_change_sites() {
    let node = node().await;
    for token in [&node.tokens.auditor, &node.tokens.operator] {
        let denied = node.sites(token).create_site(site("湿地", pb::SiteKind::NatureReserve)).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{}", denied.message());
    }
    let mut staff = node.sites(&node.tokens.staff);
    assert!(list_all(&mut staff, pb::ListSitesRequest::default()).await.0.is_empty(), "refusals create nothing");
    let created = create(&mut staff, site("湿地", pb::SiteKind::NatureReserve)).await;
    assert_eq!(created.site_id, "330106-S000001", "refusals consume no id");
    for token in [&node.tokens.auditor, &node.tokens.operator] {
        let denied = node
            .sites(token)
            .update_site(pb::UpdateSiteRequest { name: Some("改名".into()), ..update(&created.site_id) })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    assert_eq!(get(&mut staff, &created.site_id).await, created);
    let anonymous = node.sites("not-a-token").list_sites(pb::ListSitesRequest::default()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}
