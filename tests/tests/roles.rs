//! Who may do what: every role against every kind of call, allowed where it should be and refused (with
//! PermissionDenied, audited) where it should not. MLPS-style separation: the operator manages accounts
//! but not the registry or the audit trail; the auditor reads the audit trail only.

use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::adult;
use ecovol_tests::{NodeSpec, TestNode};
use tonic::Code;

struct Cast {
    node: TestNode,
    team_manager: String,
    volunteer: String,
    /// A member of the manager's team, whose own account is `volunteer`.
    member: String,
    /// Not in any team.
    outsider: String,
}

async fn cast() -> Cast {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let mut staff = node.volunteers(&node.tokens.staff);
    let member = staff.register_volunteer(adult(1)).await.unwrap().into_inner().volunteer.unwrap().volunteer_number;
    let outsider = staff.register_volunteer(adult(2)).await.unwrap().into_inner().volunteer.unwrap().volunteer_number;
    let team = node
        .teams(&node.tokens.staff)
        .create_team(pb::CreateTeamRequest {
            name: "西湖护水队".into(),
            kind: pb::TeamKind::SocialOrganisation as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap()
        .team_id;
    node.teams(&node.tokens.staff)
        .add_team_member(pb::AddTeamMemberRequest {
            team_id: team.clone(),
            volunteer_number: member.clone(),
            role: pb::MemberRole::Member as i32,
        })
        .await
        .unwrap();
    let mut accounts = node.accounts(&node.tokens.operator);
    let team_manager = accounts
        .create_account(pb::CreateAccountRequest {
            name: "队长".into(),
            department: pb::Department::YouthLeague as i32,
            roles: vec![pb::Role::TeamManager as i32],
            team_id: team,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let volunteer = accounts
        .create_account(pb::CreateAccountRequest {
            name: "志愿者本人".into(),
            department: pb::Department::Other as i32,
            roles: vec![pb::Role::Volunteer as i32],
            volunteer_number: member.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    Cast { node, team_manager, volunteer, member, outsider }
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn each_role_is_allowed_and_refused_where_it_should_be() {
    let cast = cast().await;
    let node = &cast.node;
    let t = &node.tokens;
    let roles: [(&str, &str); 5] = [
        ("operator", &t.operator),
        ("staff", &t.staff),
        ("auditor", &t.auditor),
        ("team manager", &cast.team_manager),
        ("volunteer", &cast.volunteer),
    ];
    // (call, roles allowed), in the order of `roles`.
    let (mut denied_writes, mut denied_reads) = (0, 0);
    for (index, (role, token)) in roles.iter().enumerate() {
        let allowed = |row: [bool; 5]| if row[index] { Code::Ok } else { Code::PermissionDenied };
        let mut volunteers = node.volunteers(token);
        let mut check = |call: &str, row: [bool; 5], got: Code, write: bool| {
            assert_eq!(got, allowed(row), "{role} → {call}");
            if got == Code::PermissionDenied {
                if write {
                    denied_writes += 1;
                } else {
                    denied_reads += 1;
                }
            }
        };
        let got = code(volunteers.register_volunteer(adult(100 + index as u32)).await);
        check("RegisterVolunteer", [false, true, false, true, false], got, true);
        let got =
            code(volunteers.get_volunteer(pb::GetVolunteerRequest { volunteer_number: cast.member.clone() }).await);
        check("GetVolunteer(member)", [false, true, false, true, true], got, false);
        let got =
            code(volunteers.get_volunteer(pb::GetVolunteerRequest { volunteer_number: cast.outsider.clone() }).await);
        check("GetVolunteer(outsider)", [false, true, false, false, false], got, false);
        let got = code(volunteers.search_volunteers(pb::SearchVolunteersRequest::default()).await);
        check("SearchVolunteers", [false, true, false, true, true], got, false);
        let got = code(
            volunteers
                .update_volunteer(pb::UpdateVolunteerRequest {
                    volunteer_number: cast.outsider.clone(),
                    skills: Some(pb::SkillList { skills: vec![format!("技能{index}")] }),
                    reason: "role check".into(),
                    ..Default::default()
                })
                .await,
        );
        check("UpdateVolunteer", [false, true, false, false, false], got, true);
        let got = code(
            volunteers
                .reveal_identity_number(pb::RevealIdentityNumberRequest {
                    volunteer_number: cast.outsider.clone(),
                    reason: "role check".into(),
                })
                .await,
        );
        check("RevealIdentityNumber", [true, false, false, false, false], got, true);
        let got = code(
            node.accounts(token)
                .create_account(pb::CreateAccountRequest {
                    name: format!("new {index}"),
                    department: pb::Department::Education as i32,
                    roles: vec![pb::Role::Staff as i32],
                    ..Default::default()
                })
                .await,
        );
        check("CreateAccount", [true, false, false, false, false], got, true);
        let got = code(node.accounts(token).list_accounts(pb::ListAccountsRequest::default()).await);
        check("ListAccounts", [true, false, false, false, false], got, false);
        let got = code(node.audit(token).list_audit_entries(pb::ListAuditEntriesRequest::default()).await);
        check("ListAuditEntries", [false, false, true, false, false], got, false);
        let got = code(
            node.teams(token)
                .create_team(pb::CreateTeamRequest {
                    name: format!("队{index}"),
                    kind: pb::TeamKind::Other as i32,
                    ..Default::default()
                })
                .await,
        );
        check("CreateTeam", [false, true, false, false, false], got, true);
        let got = code(
            node.sites(token)
                .create_site(pb::CreateSiteRequest {
                    name: format!("站点{index}"),
                    kind: pb::SiteKind::VolunteerStation as i32,
                    address: "杭州市西湖区".into(),
                    ..Default::default()
                })
                .await,
        );
        check("CreateSite", [false, true, false, false, false], got, true);
        let got = code(node.node(token).get_node_info(pb::GetNodeInfoRequest {}).await);
        check("GetNodeInfo", [true, true, true, true, true], got, false);
        let got = code(node.accounts(token).who_am_i(pb::WhoAmIRequest {}).await);
        check("WhoAmI", [true, true, true, true, true], got, false);
    }
    // Every refused write and every refused read left a DENIED entry in the audit trail.
    let entries = node
        .audit(&t.auditor)
        .list_audit_entries(pb::ListAuditEntriesRequest { page_size: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let denied = entries.iter().filter(|entry| entry.outcome == pb::Outcome::Denied as i32).count();
    assert!(denied_reads > 0, "the matrix refuses some reads");
    assert_eq!(denied, denied_writes + denied_reads);
}

#[tokio::test]
async fn unknown_missing_and_revoked_credentials_are_unauthenticated() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let request = || pb::SearchVolunteersRequest::default();
    assert_eq!(code(node.anonymous_volunteers().search_volunteers(request()).await), Code::Unauthenticated);
    assert_eq!(code(node.volunteers("ecv_not-a-token").search_volunteers(request()).await), Code::Unauthenticated);
    // Revoke the civil-affairs staff account: its token stops working at once.
    let mut accounts = node.accounts(&node.tokens.operator);
    let listed = accounts.list_accounts(pb::ListAccountsRequest::default()).await.unwrap().into_inner().accounts;
    let civil = listed.iter().find(|a| a.department == pb::Department::CivilAffairs as i32).unwrap();
    assert_eq!(code(node.volunteers(&node.tokens.staff_civil_affairs).search_volunteers(request()).await), Code::Ok);
    accounts
        .revoke_account(pb::RevokeAccountRequest { account_id: civil.account_id.clone(), reason: "left".into() })
        .await
        .unwrap();
    assert_eq!(
        code(node.volunteers(&node.tokens.staff_civil_affairs).search_volunteers(request()).await),
        Code::Unauthenticated
    );
    // The operator cannot revoke themself (someone must be able to manage accounts).
    let me = accounts.who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().account.unwrap();
    let own = accounts.revoke_account(pb::RevokeAccountRequest { account_id: me.account_id, reason: "x".into() }).await;
    assert_eq!(code(own), Code::FailedPrecondition);
    // Separation of duties: operator and auditor roles are never combined with others.
    let combined = accounts
        .create_account(pb::CreateAccountRequest {
            name: "全能".into(),
            department: pb::Department::EcologyBureau as i32,
            roles: vec![pb::Role::Operator as i32, pb::Role::Auditor as i32],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(ecovol_tests::violated_fields(&combined), ["roles", "roles"]);
}
