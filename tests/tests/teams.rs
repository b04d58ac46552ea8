//! Teams, federations of teams and their members over real gRPC against a real node on a temporary sled directory.

use ecovol_node::validate::credit_check_char;
use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::adult;
use ecovol_tests::{Authed, NodeSpec, TestNode, violated_fields};
use pb::team_service_client::TeamServiceClient;
use tonic::Code;

async fn node() -> TestNode {
    TestNode::start(NodeSpec::county("330106")).await.expect("node starts")
}

/// A unified social credit code (GB 32100-2015) with the right check character after `first17`.
fn credit_code(first17: &str) -> String {
    let check = credit_check_char(first17).expect("17 characters of the GB 32100 alphabet");
    format!("{first17}{check}")
}

/// The same 17 characters with a wrong check character, as some pilot-era codes have; returns it and the right one.
fn pilot_credit_code(first17: &str) -> (String, char) {
    let right = credit_check_char(first17).expect("17 characters of the GB 32100 alphabet");
    let wrong = if right == '0' { '1' } else { '0' };
    (format!("{first17}{wrong}"), right)
}

fn named(name: &str, kind: pb::TeamKind) -> pb::CreateTeamRequest {
    pb::CreateTeamRequest { name: name.into(), kind: kind as i32, ..Default::default() }
}

async fn create(client: &mut TeamServiceClient<Authed>, request: pb::CreateTeamRequest) -> pb::Team {
    client.create_team(request).await.expect("team created").into_inner().team.expect("team in response")
}

async fn get(client: &mut TeamServiceClient<Authed>, team_id: &str) -> pb::Team {
    client
        .get_team(pb::GetTeamRequest { team_id: team_id.into() })
        .await
        .expect("team read")
        .into_inner()
        .team
        .expect("team in response")
}

/// Every team matching `request`, page after page; the ids in the order the pages gave them, and the page count.
async fn list_all(client: &mut TeamServiceClient<Authed>, request: pb::ListTeamsRequest) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let page = client
            .list_teams(pb::ListTeamsRequest { page_token: token, ..request.clone() })
            .await
            .expect("teams listed")
            .into_inner();
        pages += 1;
        ids.extend(page.teams.into_iter().map(|team| team.team_id));
        if page.next_page_token.is_empty() {
            return (ids, pages);
        }
        token = page.next_page_token;
    }
}

async fn register(node: &TestNode, index: u32) -> String {
    node.volunteers(&node.tokens.staff)
        .register_volunteer(adult(index))
        .await
        .expect("volunteer registered")
        .into_inner()
        .volunteer
        .expect("volunteer in response")
        .volunteer_number
}

fn add(team_id: &str, volunteer_number: &str, role: pb::MemberRole) -> pb::AddTeamMemberRequest {
    pb::AddTeamMemberRequest { team_id: team_id.into(), volunteer_number: volunteer_number.into(), role: role as i32 }
}

fn remove(team_id: &str, volunteer_number: &str) -> pb::RemoveTeamMemberRequest {
    pb::RemoveTeamMemberRequest { team_id: team_id.into(), volunteer_number: volunteer_number.into() }
}

fn members_of(team_id: &str, include_former: bool) -> pb::ListTeamMembersRequest {
    pb::ListTeamMembersRequest { team_id: team_id.into(), include_former, ..Default::default() }
}

/// The volunteer numbers a staff search by `team_id` finds.
async fn search_team(node: &TestNode, team_id: &str) -> Vec<String> {
    let found = node
        .volunteers(&node.tokens.staff)
        .search_volunteers(pb::SearchVolunteersRequest { team_id: team_id.into(), ..Default::default() })
        .await
        .expect("volunteers searched")
        .into_inner();
    found.volunteers.into_iter().map(|v| v.volunteer_number).collect()
}

#[tokio::test]
async fn registered_and_unregistered_teams_are_created_and_read_back() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let code = credit_code("91330106MA2H00000");
    let created = client
        .create_team(pb::CreateTeamRequest {
            registered: true,
            // Lowercase input is accepted and stored uppercase.
            credit_code: code.to_lowercase(),
            hub: true,
            ..named("西湖护水队", pb::TeamKind::SocialOrganisation)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.warnings.is_empty(), "{:?}", created.warnings);
    let registered = created.team.unwrap();
    assert_eq!(registered.team_id, "330106-T000001");
    assert_eq!(registered.name, "西湖护水队");
    assert!(registered.registered);
    assert_eq!(registered.credit_code, code);
    assert_eq!(registered.kind, pb::TeamKind::SocialOrganisation as i32);
    assert!(registered.hub && !registered.support);
    assert_eq!(registered.parent_team_id, "");
    assert_eq!(registered.version, 1);
    assert_eq!(registered.active_member_count, 0);
    assert!(registered.created_at.is_some());
    assert_eq!(get(&mut client, "330106-T000001").await, registered);

    let unregistered = create(
        &mut client,
        pb::CreateTeamRequest { support: true, ..named("  滨江社区队  ", pb::TeamKind::UniversityClub) },
    )
    .await;
    assert_eq!(unregistered.team_id, "330106-T000002");
    assert_eq!(unregistered.name, "滨江社区队", "the name is stored trimmed");
    assert!(!unregistered.registered);
    assert_eq!(unregistered.credit_code, "");
    assert!(unregistered.support && !unregistered.hub);
    assert_eq!(get(&mut client, "330106-T000002").await, unregistered);

    let missing = client.get_team(pb::GetTeamRequest { team_id: "330106-T000099".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn a_pilot_era_credit_code_failing_the_check_is_accepted_with_a_warning() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let (pilot, right) = pilot_credit_code("91330106MA2H00001");
    let created = client
        .create_team(pb::CreateTeamRequest {
            registered: true,
            credit_code: pilot.clone(),
            ..named("试点社团", pb::TeamKind::SocialOrganisation)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.warnings.len(), 1, "{:?}", created.warnings);
    let warning = &created.warnings[0];
    assert!(warning.contains("GB 32100"), "{warning}");
    assert!(warning.contains(&format!("expected check character {right}")), "{warning}");
    let team = created.team.unwrap();
    assert!(team.registered);
    assert_eq!(team.credit_code, pilot);
    assert_eq!(get(&mut client, &team.team_id).await.credit_code, pilot);
}

#[tokio::test]
async fn a_credit_code_registered_already_is_refused_naming_the_team_that_holds_it() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let code = credit_code("91330106MA2H00002");
    let first = create(
        &mut client,
        pb::CreateTeamRequest {
            registered: true,
            credit_code: code.clone(),
            ..named("甲队", pb::TeamKind::Enterprise)
        },
    )
    .await;
    // Same code, other case: still the same organisation.
    let refused = client
        .create_team(pb::CreateTeamRequest {
            registered: true,
            credit_code: code.to_lowercase(),
            ..named("乙队", pb::TeamKind::Enterprise)
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert!(refused.message().contains(&first.team_id), "{}", refused.message());
    // An update cannot take the code either.
    let other = create(&mut client, named("丙队", pb::TeamKind::Enterprise)).await;
    assert_eq!(other.team_id, "330106-T000002", "the refused creation consumed no id");
    let taken = client
        .update_team(pb::UpdateTeamRequest {
            team_id: other.team_id.clone(),
            registered: Some(true),
            credit_code: Some(code.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    let (all, _) = list_all(&mut client, pb::ListTeamsRequest::default()).await;
    assert_eq!(all, [first.team_id.clone(), other.team_id.clone()]);
    assert!(!get(&mut client, &other.team_id).await.registered);
}

#[tokio::test]
async fn every_broken_team_rule_comes_back_as_a_field_violation_and_nothing_is_stored() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let bad = pb::CreateTeamRequest {
        name: "队".repeat(101),
        registered: true,
        credit_code: "91330106MA2H0000".into(),
        kind: 0,
        parent_team_id: "not a team id!".into(),
        ..Default::default()
    };
    let refused = client.create_team(bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(fields, ["credit_code", "kind", "name", "parent_team_id"]);
    // A code without registration, and registration without a code, are each one violation.
    let code_unregistered =
        pb::CreateTeamRequest { credit_code: credit_code("91330106MA2H00003"), ..named("甲队", pb::TeamKind::Other) };
    assert_eq!(violated_fields(&client.create_team(code_unregistered).await.unwrap_err()), ["credit_code"]);
    let registered_without_code = pb::CreateTeamRequest { registered: true, ..named("甲队", pb::TeamKind::Other) };
    assert_eq!(violated_fields(&client.create_team(registered_without_code).await.unwrap_err()), ["credit_code"]);
    let blank_name = named("   ", pb::TeamKind::Other);
    assert_eq!(violated_fields(&client.create_team(blank_name).await.unwrap_err()), ["name"]);
    let (all, _) = list_all(&mut client, pb::ListTeamsRequest::default()).await;
    assert!(all.is_empty(), "{all:?}");
}

#[tokio::test]
async fn federations_of_teams_refuse_cycles_and_unknown_parents() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let a = create(&mut client, named("西湖联合会", pb::TeamKind::SocialOrganisation)).await.team_id;
    let b = create(
        &mut client,
        pb::CreateTeamRequest { parent_team_id: a.clone(), ..named("分会", pb::TeamKind::SocialOrganisation) },
    )
    .await
    .team_id;
    let c = create(
        &mut client,
        pb::CreateTeamRequest { parent_team_id: b.clone(), ..named("小队", pb::TeamKind::SocialOrganisation) },
    )
    .await
    .team_id;
    let set_parent = |team_id: &str, parent: &str| pb::UpdateTeamRequest {
        team_id: team_id.into(),
        parent_team_id: Some(parent.into()),
        ..Default::default()
    };

    // a under c would close the loop a ← b ← c ← a.
    let cycle = client.update_team(set_parent(&a, &c)).await.unwrap_err();
    assert_eq!(cycle.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&cycle), ["parent_team_id"]);
    let itself = client.update_team(set_parent(&b, &b)).await.unwrap_err();
    assert_eq!(violated_fields(&itself), ["parent_team_id"]);
    let unknown = client.update_team(set_parent(&a, "330106-T000099")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let unknown_on_create = client
        .create_team(pb::CreateTeamRequest {
            parent_team_id: "330106-T000099".into(),
            ..named("孤队", pb::TeamKind::Other)
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_on_create.code(), Code::NotFound);
    let a_now = get(&mut client, &a).await;
    assert_eq!((a_now.version, a_now.parent_team_id.as_str()), (1, ""), "refusals change nothing");

    // b leaves a's federation; then a may join c's (c ← a, b apart).
    let left = client.update_team(set_parent(&b, "")).await.unwrap().into_inner().team.unwrap();
    assert_eq!((left.version, left.parent_team_id.as_str()), (2, ""));
    let (under_a, _) =
        list_all(&mut client, pb::ListTeamsRequest { parent_team_id: a.clone(), ..Default::default() }).await;
    assert!(under_a.is_empty(), "{under_a:?}");
    let joined = client.update_team(set_parent(&a, &c)).await.unwrap().into_inner().team.unwrap();
    assert_eq!(joined.parent_team_id, c);
    let (under_c, _) =
        list_all(&mut client, pb::ListTeamsRequest { parent_team_id: c.clone(), ..Default::default() }).await;
    assert_eq!(under_c, [a]);
}

#[tokio::test]
async fn team_lists_filter_by_name_kind_and_federation_and_pages_cover_every_team_once() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let federation = create(&mut client, named("西湖联合会", pb::TeamKind::SocialOrganisation)).await.team_id;
    let member_team = |name: &str, kind: pb::TeamKind| pb::CreateTeamRequest {
        parent_team_id: federation.clone(),
        ..named(name, kind)
    };
    let west_one = create(&mut client, member_team("西湖一队", pb::TeamKind::SocialOrganisation)).await.team_id;
    let west_two = create(&mut client, member_team("西湖二队", pb::TeamKind::Enterprise)).await.team_id;
    let binjiang = create(&mut client, named("滨江队", pb::TeamKind::Agency)).await.team_id;
    let club = create(&mut client, named("西湖大学社团", pb::TeamKind::UniversityClub)).await.team_id;
    let xiaoshan = create(&mut client, named("萧山队", pb::TeamKind::UniversityClub)).await.team_id;
    let yuhang = create(&mut client, named("余杭队", pb::TeamKind::Other)).await.team_id;
    let mut every =
        vec![federation.clone(), west_one.clone(), west_two.clone(), binjiang, club.clone(), xiaoshan.clone(), yuhang];
    every.sort();

    // Pages of 3 cover all 7 exactly once.
    let (mut paged, pages) = list_all(&mut client, pb::ListTeamsRequest { page_size: 3, ..Default::default() }).await;
    assert_eq!(pages, 3);
    paged.sort();
    assert_eq!(paged, every);

    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let by_name = pb::ListTeamsRequest { name_prefix: "西湖".into(), page_size: 1, ..Default::default() };
    let (west_lake, pages) = list_all(&mut client, by_name.clone()).await;
    assert_eq!(pages, 4);
    assert_eq!(sorted(west_lake), sorted(vec![federation.clone(), west_one.clone(), west_two.clone(), club.clone()]));
    let by_kind = pb::ListTeamsRequest { kind: pb::TeamKind::UniversityClub as i32, ..Default::default() };
    assert_eq!(sorted(list_all(&mut client, by_kind.clone()).await.0), sorted(vec![club.clone(), xiaoshan]));
    let name_and_kind = pb::ListTeamsRequest { page_size: 0, kind: by_kind.kind, ..by_name.clone() };
    assert_eq!(list_all(&mut client, name_and_kind).await.0, [club]);
    let by_parent = pb::ListTeamsRequest { parent_team_id: federation.clone(), ..Default::default() };
    assert_eq!(sorted(list_all(&mut client, by_parent.clone()).await.0), sorted(vec![west_one, west_two.clone()]));
    let parent_and_kind = pb::ListTeamsRequest { kind: pb::TeamKind::Enterprise as i32, ..by_parent };
    assert_eq!(list_all(&mut client, parent_and_kind).await.0, [west_two]);
    let nobody = pb::ListTeamsRequest { name_prefix: "拱墅".into(), ..Default::default() };
    assert!(list_all(&mut client, nobody).await.0.is_empty());

    // A token of one list is refused by another; so are unknown kinds and negative page sizes.
    let first =
        client.list_teams(pb::ListTeamsRequest { page_size: 1, ..Default::default() }).await.unwrap().into_inner();
    assert!(!first.next_page_token.is_empty());
    let foreign =
        client.list_teams(pb::ListTeamsRequest { page_token: first.next_page_token, ..by_name }).await.unwrap_err();
    assert_eq!(violated_fields(&foreign), ["page_token"]);
    let unknown_kind = client.list_teams(pb::ListTeamsRequest { kind: 99, ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&unknown_kind), ["kind"]);
    let negative = client.list_teams(pb::ListTeamsRequest { page_size: -1, ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&negative), ["page_size"]);
}

#[tokio::test]
async fn a_team_update_bumps_the_version_and_keeps_what_it_does_not_name() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let code = credit_code("91330106MA2H00004");
    let before = create(
        &mut client,
        pb::CreateTeamRequest {
            registered: true,
            credit_code: code.clone(),
            ..named("西湖护水队", pb::TeamKind::SocialOrganisation)
        },
    )
    .await;
    let updated = client
        .update_team(pb::UpdateTeamRequest {
            team_id: before.team_id.clone(),
            name: Some("西湖护水联队".into()),
            kind: Some(pb::TeamKind::PeoplesOrganisation as i32),
            hub: Some(true),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(updated.warnings.is_empty());
    let after = updated.team.unwrap();
    assert_eq!(
        after,
        pb::Team {
            name: "西湖护水联队".into(),
            kind: pb::TeamKind::PeoplesOrganisation as i32,
            hub: true,
            version: 2,
            ..before.clone()
        }
    );
    assert_eq!(get(&mut client, &before.team_id).await, after);
    // The name index follows the new name.
    let by_old = pb::ListTeamsRequest { name_prefix: "西湖护水队".into(), ..Default::default() };
    assert!(list_all(&mut client, by_old).await.0.is_empty());
    let by_new = pb::ListTeamsRequest { name_prefix: "西湖护水联".into(), ..Default::default() };
    assert_eq!(list_all(&mut client, by_new).await.0, std::slice::from_ref(&before.team_id));

    // Leaving registration drops the code, which another organisation may then register.
    let unregistered = client
        .update_team(pb::UpdateTeamRequest {
            team_id: before.team_id.clone(),
            registered: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert_eq!((unregistered.version, unregistered.registered, unregistered.credit_code.as_str()), (3, false, ""));
    let next = create(
        &mut client,
        pb::CreateTeamRequest {
            registered: true, credit_code: code.clone(), ..named("新社团", pb::TeamKind::Other)
        },
    )
    .await;
    assert_eq!(next.credit_code, code);

    let missing = client
        .update_team(pb::UpdateTeamRequest { team_id: "330106-T000099".into(), hub: Some(false), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad_kind = client
        .update_team(pb::UpdateTeamRequest { team_id: before.team_id.clone(), kind: Some(0), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_kind), ["kind"]);
    assert_eq!(get(&mut client, &before.team_id).await.version, 3);
}

#[tokio::test]
async fn members_join_leave_and_rejoin_and_the_volunteer_search_follows() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let team_id = create(&mut client, named("西湖护水队", pb::TeamKind::SocialOrganisation)).await.team_id;
    let stays = register(&node, 1).await;
    let leaves = register(&node, 2).await;
    let never = register(&node, 3).await;

    let joined = client.add_team_member(add(&team_id, &stays, pb::MemberRole::Leader)).await.unwrap().into_inner();
    let joined = joined.member.unwrap();
    assert_eq!(joined.team_id, team_id);
    assert_eq!(joined.volunteer_number, stays);
    assert_eq!(joined.volunteer_name, "志愿者1");
    assert_eq!(joined.role, pb::MemberRole::Leader as i32);
    assert!(joined.joined_at.is_some());
    assert_eq!(joined.left_at, None);
    client.add_team_member(add(&team_id, &leaves, pb::MemberRole::Member)).await.unwrap();
    let twice = client.add_team_member(add(&team_id, &stays, pb::MemberRole::Member)).await.unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);
    let no_role = client.add_team_member(add(&team_id, &never, pb::MemberRole::Unspecified)).await.unwrap_err();
    assert_eq!(violated_fields(&no_role), ["role"]);
    let unknown = client.add_team_member(add(&team_id, "330106-00000099", pb::MemberRole::Member)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let listed = client.list_team_members(members_of(&team_id, false)).await.unwrap().into_inner().members;
    let summary: Vec<(&str, &str, i32)> =
        listed.iter().map(|m| (m.volunteer_number.as_str(), m.volunteer_name.as_str(), m.role)).collect();
    assert_eq!(
        summary,
        [
            (stays.as_str(), "志愿者1", pb::MemberRole::Leader as i32),
            (leaves.as_str(), "志愿者2", pb::MemberRole::Member as i32)
        ]
    );
    let team = get(&mut client, &team_id).await;
    assert_eq!((team.active_member_count, team.version), (2, 1), "membership is not a change of the team record");
    assert_eq!(search_team(&node, &team_id).await, [stays.clone(), leaves.clone()]);

    // Leaving keeps the membership with its leave date.
    let left = client.remove_team_member(remove(&team_id, &leaves)).await.unwrap().into_inner().member.unwrap();
    let left_at = left.left_at.expect("leave date set");
    assert_eq!(left.volunteer_name, "志愿者2");
    let current = client.list_team_members(members_of(&team_id, false)).await.unwrap().into_inner().members;
    assert_eq!(current.iter().map(|m| m.volunteer_number.as_str()).collect::<Vec<_>>(), [stays.as_str()]);
    let with_former = client.list_team_members(members_of(&team_id, true)).await.unwrap().into_inner().members;
    assert_eq!(with_former.len(), 2);
    let former = with_former.iter().find(|m| m.volunteer_number == leaves).expect("former member listed");
    assert_eq!(former.left_at, Some(left_at));
    assert_eq!(get(&mut client, &team_id).await.active_member_count, 1);
    // The volunteer search by team finds current members only.
    assert_eq!(search_team(&node, &team_id).await, std::slice::from_ref(&stays));
    let again = client.remove_team_member(remove(&team_id, &leaves)).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let never_member = client.remove_team_member(remove(&team_id, &never)).await.unwrap_err();
    assert_eq!(never_member.code(), Code::FailedPrecondition);
    let volunteer = node
        .volunteers(&node.tokens.staff)
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: leaves.clone() })
        .await
        .unwrap()
        .into_inner()
        .volunteer
        .unwrap();
    assert!(volunteer.team_ids.is_empty(), "{:?}", volunteer.team_ids);

    // Rejoining clears the leave date and counts the member again.
    let rejoined = client.add_team_member(add(&team_id, &leaves, pb::MemberRole::Backbone)).await.unwrap().into_inner();
    let rejoined = rejoined.member.unwrap();
    assert_eq!(rejoined.left_at, None);
    assert_eq!(rejoined.role, pb::MemberRole::Backbone as i32);
    assert!(rejoined.joined_at.unwrap().seconds >= left_at.seconds);
    assert_eq!(get(&mut client, &team_id).await.active_member_count, 2);
    let current = client.list_team_members(members_of(&team_id, false)).await.unwrap().into_inner().members;
    assert_eq!(current.len(), 2);
    assert_eq!(search_team(&node, &team_id).await, [stays, leaves.clone()]);
    let volunteer = node
        .volunteers(&node.tokens.staff)
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: leaves })
        .await
        .unwrap()
        .into_inner()
        .volunteer
        .unwrap();
    assert_eq!(volunteer.team_ids, [team_id]);
}

#[tokio::test]
async fn a_team_manager_works_on_its_own_team_and_sees_its_own_members_only() {
    let node = node().await;
    let mut staff = node.teams(&node.tokens.staff);
    let own = create(&mut staff, named("甲队", pb::TeamKind::SocialOrganisation)).await.team_id;
    let other = create(&mut staff, named("乙队", pb::TeamKind::SocialOrganisation)).await.team_id;
    let member = register(&node, 11).await;
    let outsider = register(&node, 12).await;
    let manager_token = node
        .accounts(&node.tokens.operator)
        .create_account(pb::CreateAccountRequest {
            name: "甲队队长".into(),
            department: pb::Department::EcologyBureau as i32,
            roles: vec![pb::Role::TeamManager as i32],
            team_id: own.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut manager = node.teams(&manager_token);
    let mut manager_volunteers = node.volunteers(&manager_token);

    let added = manager.add_team_member(add(&own, &member, pb::MemberRole::Member)).await.unwrap().into_inner();
    assert_eq!(added.member.unwrap().volunteer_number, member);
    let foreign = manager.add_team_member(add(&other, &outsider, pb::MemberRole::Member)).await.unwrap_err();
    assert_eq!(foreign.code(), Code::PermissionDenied);
    assert_eq!(get(&mut staff, &other).await.active_member_count, 0);

    let listed = manager.list_team_members(members_of(&own, false)).await.unwrap().into_inner().members;
    assert_eq!(listed.iter().map(|m| m.volunteer_number.as_str()).collect::<Vec<_>>(), [member.as_str()]);
    let foreign_list = manager.list_team_members(members_of(&other, false)).await.unwrap_err();
    assert_eq!(foreign_list.code(), Code::PermissionDenied);
    let foreign_update = manager
        .update_team(pb::UpdateTeamRequest { team_id: other.clone(), hub: Some(true), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(foreign_update.code(), Code::PermissionDenied);
    assert!(!get(&mut staff, &other).await.hub);

    // It may change its own team, not create teams; auditors and operators have no business with teams at all.
    let renamed = manager
        .update_team(pb::UpdateTeamRequest {
            team_id: own.clone(),
            name: Some("甲队（新）".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.version), ("甲队（新）", 2));
    let create_denied = manager.create_team(named("丙队", pb::TeamKind::Other)).await.unwrap_err();
    assert_eq!(create_denied.code(), Code::PermissionDenied);
    for token in [&node.tokens.auditor, &node.tokens.operator] {
        let denied = node.teams(token).get_team(pb::GetTeamRequest { team_id: own.clone() }).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }

    // The manager reads members of its team, not other volunteers.
    let read = manager_volunteers
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: member.clone() })
        .await
        .unwrap()
        .into_inner()
        .volunteer
        .unwrap();
    assert_eq!(read.name, "志愿者11");
    let hidden = manager_volunteers
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: outsider.clone() })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::PermissionDenied);
    let found = manager_volunteers
        .search_volunteers(pb::SearchVolunteersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .volunteers;
    assert_eq!(found.iter().map(|v| v.volunteer_number.as_str()).collect::<Vec<_>>(), [member.as_str()]);

    // Once the member leaves, the manager no longer sees them.
    manager.remove_team_member(remove(&own, &member)).await.unwrap();
    let gone =
        manager_volunteers.get_volunteer(pb::GetVolunteerRequest { volunteer_number: member }).await.unwrap_err();
    assert_eq!(gone.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn an_inactive_volunteer_cannot_join_a_team() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let team_id = create(&mut client, named("甲队", pb::TeamKind::Other)).await.team_id;
    let number = register(&node, 21).await;
    node.volunteers(&node.tokens.staff)
        .deactivate_volunteer(pb::DeactivateVolunteerRequest {
            volunteer_number: number.clone(),
            reason: "moved away".into(),
        })
        .await
        .unwrap();
    let refused = client.add_team_member(add(&team_id, &number, pb::MemberRole::Member)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.message(), format!("volunteer {number} is inactive"));
    let with_former = client.list_team_members(members_of(&team_id, true)).await.unwrap().into_inner().members;
    assert!(with_former.is_empty());
    assert_eq!(get(&mut client, &team_id).await.active_member_count, 0);
}

#[tokio::test]
async fn concurrent_joins_and_creations_keep_counts_and_codes_consistent() {
    let node = node().await;
    let mut client = node.teams(&node.tokens.staff);
    let team_id = create(&mut client, named("甲队", pb::TeamKind::Other)).await.team_id;
    let mut numbers = Vec::new();
    for index in 0..20 {
        numbers.push(register(&node, 100 + index).await);
    }
    let joins = numbers.iter().map(|number| {
        let mut client = client.clone();
        let request = add(&team_id, number, pb::MemberRole::Member);
        async move { client.add_team_member(request).await }
    });
    for joined in futures::future::join_all(joins).await {
        joined.unwrap();
    }
    assert_eq!(get(&mut client, &team_id).await.active_member_count, 20);
    let listed = client.list_team_members(members_of(&team_id, false)).await.unwrap().into_inner().members;
    assert_eq!(listed.len(), 20);
    assert_eq!(search_team(&node, &team_id).await, numbers);

    // Ten offices race to register the same organisation: exactly one wins.
    let code = credit_code("91330106MA2H00009");
    let creations = (0..10).map(|index| {
        let mut client = client.clone();
        let request = pb::CreateTeamRequest {
            registered: true,
            credit_code: code.clone(),
            ..named(&format!("竞争队{index}"), pb::TeamKind::Other)
        };
        async move { client.create_team(request).await }
    });
    let outcomes = futures::future::join_all(creations).await;
    let won = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let refused =
        outcomes.iter().filter(|outcome| matches!(outcome, Err(s) if s.code() == Code::AlreadyExists)).count();
    assert_eq!((won, refused), (1, 9));
    let (all, _) = list_all(&mut client, pb::ListTeamsRequest::default()).await;
    assert_eq!(all.len(), 2);
}
