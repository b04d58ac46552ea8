//! Teams and organisations, their federations, and their members.
//!
//! Rules (DOMAIN.md): the guidance (part 四) names teams from agencies, enterprises, public institutions, people's
//! organisations, social organisations and university clubs, hub-type and support-type organisations, and
//! federations of teams; a registered organisation carries a unified social credit code (GB 32100-2015), and some
//! pilot-era codes fail the check yet are legal: warn, do not reject. Team records are not personal data: staff,
//! team managers and volunteers may read any of them. A membership is kept with its leave date when the member
//! leaves (records are complete: keep the history, MCA Order 67).
//!
//! Keys: `team/<team_id>` the record; `team_cc/<credit code>` → team id (one team per code);
//! `team_nm/<name>\0<team_id>` and `team_par/<parent_team_id>/<team_id>` list indexes;
//! `team_mem/<team_id>/<volunteer_number>` the membership (the volunteer search relies on the key ending in the
//! volunteer number, and on the volunteer record's `team_ids` listing only current teams).
//!
//! A registered team counts for the federation in the month it was created (`federation::outbox`, same write).

use chrono::{DateTime, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::federation::outbox::{self, Change, cell_at};
use crate::page::{Page, PageRequest};
use crate::registry::volunteer::{self, VolunteerRecord, VolunteerStatus};
use crate::store::{self, Store};
use crate::validate::{CreditCodeCheck, check_credit_code};
use crate::wire;

/// Longest team name accepted, characters.
pub const NAME_CHARS_MAX: usize = 100;
/// Longest team id accepted, characters (`330106-T000007` is 14).
pub const TEAM_ID_CHARS_MAX: usize = 32;
/// Most federation levels walked above a team before the chain is refused as too deep (and a corrupt,
/// cyclic chain cannot loop forever).
pub const FEDERATION_DEPTH_MAX: usize = 64;

/// The kinds of team the guidance names (part 四).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamKind {
    Agency,
    Enterprise,
    PublicInstitution,
    PeoplesOrganisation,
    SocialOrganisation,
    UniversityClub,
    Other,
}

/// A member's role in a team: the guidance's tiered training distinguishes backbone members (part 五(五)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Leader,
    Backbone,
    Member,
}

/// The known team kind of a wire value; `None` for unspecified or unknown values.
fn team_kind(value: i32) -> Option<TeamKind> {
    match pb::TeamKind::try_from(value).ok()? {
        pb::TeamKind::Unspecified => None,
        pb::TeamKind::Agency => Some(TeamKind::Agency),
        pb::TeamKind::Enterprise => Some(TeamKind::Enterprise),
        pb::TeamKind::PublicInstitution => Some(TeamKind::PublicInstitution),
        pb::TeamKind::PeoplesOrganisation => Some(TeamKind::PeoplesOrganisation),
        pb::TeamKind::SocialOrganisation => Some(TeamKind::SocialOrganisation),
        pb::TeamKind::UniversityClub => Some(TeamKind::UniversityClub),
        pb::TeamKind::Other => Some(TeamKind::Other),
    }
}

impl From<TeamKind> for pb::TeamKind {
    fn from(kind: TeamKind) -> Self {
        match kind {
            TeamKind::Agency => pb::TeamKind::Agency,
            TeamKind::Enterprise => pb::TeamKind::Enterprise,
            TeamKind::PublicInstitution => pb::TeamKind::PublicInstitution,
            TeamKind::PeoplesOrganisation => pb::TeamKind::PeoplesOrganisation,
            TeamKind::SocialOrganisation => pb::TeamKind::SocialOrganisation,
            TeamKind::UniversityClub => pb::TeamKind::UniversityClub,
            TeamKind::Other => pb::TeamKind::Other,
        }
    }
}

/// The known member role of a wire value; `None` for unspecified or unknown values.
fn member_role(value: i32) -> Option<MemberRole> {
    match pb::MemberRole::try_from(value).ok()? {
        pb::MemberRole::Unspecified => None,
        pb::MemberRole::Leader => Some(MemberRole::Leader),
        pb::MemberRole::Backbone => Some(MemberRole::Backbone),
        pb::MemberRole::Member => Some(MemberRole::Member),
    }
}

impl From<MemberRole> for pb::MemberRole {
    fn from(role: MemberRole) -> Self {
        match role {
            MemberRole::Leader => pb::MemberRole::Leader,
            MemberRole::Backbone => pb::MemberRole::Backbone,
            MemberRole::Member => pb::MemberRole::Member,
        }
    }
}

const KIND_REQUIRED: &str = "is required: agency, enterprise, public institution, people's organisation, \
                             social organisation, university club or other (guidance part 四)";
const ROLE_REQUIRED: &str = "is required: leader, backbone or member";

/// A team as stored under `team/<team_id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeamRecord {
    pub team_id: String,
    pub name: String,
    /// The unified social credit code (GB 32100-2015), uppercase; present exactly when the team is a registered
    /// organisation.
    pub credit_code: Option<String>,
    pub kind: TeamKind,
    /// A hub-type organisation (guidance part 四).
    pub hub: bool,
    /// A support-type organisation (guidance part 四).
    pub support: bool,
    /// The federation of teams this team belongs to.
    pub parent_team_id: Option<String>,
    /// Bumped by every update of the team's own fields; membership changes do not bump it.
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Account that made this version.
    pub changed_by: String,
    /// Current members (memberships without a leave date).
    #[serde(default)]
    pub active_member_count: u32,
}

/// A membership as stored under `team_mem/<team_id>/<volunteer_number>`; kept after the member leaves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipRecord {
    pub team_id: String,
    pub volunteer_number: String,
    pub role: MemberRole,
    pub joined_at: DateTime<Utc>,
    /// Set when the member left; `None` while a member.
    pub left_at: Option<DateTime<Utc>>,
}

/// The key of a team record.
pub fn team_key(team_id: &str) -> String {
    format!("team/{team_id}")
}

fn credit_code_key(credit_code: &str) -> String {
    format!("team_cc/{credit_code}")
}

fn name_key(name: &str, team_id: &str) -> String {
    format!("team_nm/{name}\0{team_id}")
}

fn parent_key(parent_team_id: &str, team_id: &str) -> String {
    format!("team_par/{parent_team_id}/{team_id}")
}

/// The key of a membership. The volunteer search scans `team_mem/<team_id>/` and reads the volunteer number after
/// the last '/': keep that shape.
pub fn membership_key(team_id: &str, volunteer_number: &str) -> String {
    format!("team_mem/{team_id}/{volunteer_number}")
}

/// A unified social credit code as accepted (GB 32100-2015), with the warning to show when it fails the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditCode {
    /// 18 characters of the GB 32100 alphabet, uppercase.
    pub code: String,
    /// Set when the check character does not match.
    pub warning: Option<String>,
}

/// Checks a credit code; malformed codes become a violation of `field`.
fn parse_credit_code(violations: &mut Violations, field: &str, input: &str) -> Option<CreditCode> {
    // ASCII uppercasing keeps every character in place, so error positions match the input.
    let code = input.trim().to_ascii_uppercase();
    match check_credit_code(&code) {
        Ok(CreditCodeCheck::Valid) => Some(CreditCode { code, warning: None }),
        // GB 32100-2015: pilot-era codes failing the check are legal: warn, do not reject.
        Ok(CreditCodeCheck::CheckMismatch { expected }) => Some(CreditCode {
            code,
            warning: Some(format!(
                "credit code fails the GB 32100 check (expected check character {expected}): \
                 accepted as a pilot-era code"
            )),
        }),
        Err(error) => {
            violations.add(field, format!("is not a unified social credit code (GB 32100-2015): {error}"));
            None
        }
    }
}

/// Checks a team id: short, ASCII letters, digits and '-', so it can sit inside store keys.
fn check_team_id(violations: &mut Violations, field: &str, team_id: &str) {
    if team_id.is_empty() {
        violations.add(field, "is required");
    } else if team_id.len() > TEAM_ID_CHARS_MAX || !team_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        violations.add(field, "is not a team id (like 330106-T000007)");
    }
}

/// Adds the violations of the volunteer registry's own number check.
fn check_volunteer_number(violations: &mut Violations, number: &str) {
    if let Err(DomainError::Invalid(found)) = volunteer::parse_volunteer_number(number) {
        for violation in found {
            violations.add(violation.field, violation.description);
        }
    }
}

/// Unwraps a field the validation has already proved present.
fn checked<T>(value: Option<T>) -> Result<T, DomainError> {
    value.ok_or_else(|| DomainError::Internal("validation passed with a missing field".into()))
}

/// A validated team creation.
#[derive(Debug, Clone)]
pub struct CreateTeam {
    pub name: String,
    /// Present exactly when the team is a registered organisation.
    pub credit_code: Option<CreditCode>,
    pub kind: TeamKind,
    pub hub: bool,
    pub support: bool,
    pub parent_team_id: Option<String>,
}

impl TryFrom<pb::CreateTeamRequest> for CreateTeam {
    type Error = DomainError;

    fn try_from(request: pb::CreateTeamRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        violations.text("name", &request.name, NAME_CHARS_MAX);
        let code_given = !request.credit_code.trim().is_empty();
        let credit_code = match (request.registered, code_given) {
            (true, true) => parse_credit_code(&mut violations, "credit_code", &request.credit_code),
            (true, false) => {
                violations.add("credit_code", "is required for a registered organisation (GB 32100-2015)");
                None
            }
            (false, true) => {
                violations
                    .add("credit_code", "is given but registered is false: only registered organisations carry one");
                None
            }
            (false, false) => None,
        };
        let kind = team_kind(request.kind);
        if kind.is_none() {
            violations.add("kind", KIND_REQUIRED);
        }
        if !request.parent_team_id.is_empty() {
            check_team_id(&mut violations, "parent_team_id", &request.parent_team_id);
        }
        violations.into_result()?;
        Ok(Self {
            name: request.name.trim().to_string(),
            credit_code,
            kind: checked(kind)?,
            hub: request.hub,
            support: request.support,
            parent_team_id: (!request.parent_team_id.is_empty()).then_some(request.parent_team_id),
        })
    }
}

/// How an update changes a team's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationChange {
    /// No longer a registered organisation: the credit code is dropped.
    Unregister,
    /// A registered organisation with this code.
    Register(CreditCode),
    /// Registered, keeping the stored code (the team must have one).
    KeepRegistered,
    /// A new code for a team that is registered already.
    ReplaceCode(CreditCode),
}

/// A validated team update: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateTeam {
    pub team_id: String,
    pub name: Option<String>,
    pub kind: Option<TeamKind>,
    pub hub: Option<bool>,
    pub support: Option<bool>,
    /// `Some(None)` leaves the federation; `Some(Some(id))` joins (or moves to) federation `id`.
    pub parent_team_id: Option<Option<String>>,
    pub registration: Option<RegistrationChange>,
}

impl TryFrom<pb::UpdateTeamRequest> for UpdateTeam {
    type Error = DomainError;

    fn try_from(request: pb::UpdateTeamRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_team_id(&mut violations, "team_id", &request.team_id);
        if let Some(name) = &request.name {
            violations.text("name", name, NAME_CHARS_MAX);
        }
        let kind = request.kind.map(team_kind);
        if kind == Some(None) {
            violations.add("kind", KIND_REQUIRED);
        }
        let parent_team_id = match request.parent_team_id {
            // "" leaves the federation of teams.
            Some(parent) if parent.is_empty() => Some(None),
            Some(parent) => {
                check_team_id(&mut violations, "parent_team_id", &parent);
                if parent == request.team_id {
                    violations.add("parent_team_id", "is the team itself: a federation cannot contain itself");
                }
                Some(Some(parent))
            }
            None => None,
        };
        let code = request.credit_code.as_deref().map(str::trim);
        let registration = match (request.registered, code) {
            (None, None) => None,
            (Some(false), None | Some("")) => Some(RegistrationChange::Unregister),
            (Some(false), Some(_)) => {
                violations
                    .add("credit_code", "is given but registered is false: only registered organisations carry one");
                None
            }
            (Some(true), None) => Some(RegistrationChange::KeepRegistered),
            (_, Some("")) => {
                violations.add(
                    "credit_code",
                    "is empty: a registered organisation keeps its code; set registered to false to drop it",
                );
                None
            }
            (Some(true), Some(code)) => {
                parse_credit_code(&mut violations, "credit_code", code).map(RegistrationChange::Register)
            }
            (None, Some(code)) => {
                parse_credit_code(&mut violations, "credit_code", code).map(RegistrationChange::ReplaceCode)
            }
        };
        violations.into_result()?;
        Ok(Self {
            team_id: request.team_id,
            name: request.name.map(|name| name.trim().to_string()),
            kind: kind.flatten(),
            hub: request.hub,
            support: request.support,
            parent_team_id,
            registration,
        })
    }
}

/// A validated read of one team.
#[derive(Debug, Clone)]
pub struct GetTeam {
    pub team_id: String,
}

impl TryFrom<pb::GetTeamRequest> for GetTeam {
    type Error = DomainError;

    fn try_from(request: pb::GetTeamRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_team_id(&mut violations, "team_id", &request.team_id);
        violations.into_result()?;
        Ok(Self { team_id: request.team_id })
    }
}

/// Team list filters; every one given must match. Paging comes separately.
#[derive(Debug, Clone, Default)]
pub struct ListTeams {
    pub name_prefix: Option<String>,
    pub kind: Option<TeamKind>,
    pub parent_team_id: Option<String>,
}

impl TryFrom<&pb::ListTeamsRequest> for ListTeams {
    type Error = DomainError;

    fn try_from(request: &pb::ListTeamsRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        violations.optional_text("name_prefix", &request.name_prefix, NAME_CHARS_MAX);
        let kind = match pb::TeamKind::try_from(request.kind) {
            Ok(pb::TeamKind::Unspecified) => None,
            Ok(_) => team_kind(request.kind),
            Err(_) => {
                violations.add("kind", "is not a known team kind");
                None
            }
        };
        if !request.parent_team_id.is_empty() {
            check_team_id(&mut violations, "parent_team_id", &request.parent_team_id);
        }
        violations.into_result()?;
        let name_prefix = request.name_prefix.trim();
        Ok(Self {
            name_prefix: (!name_prefix.is_empty()).then(|| name_prefix.to_string()),
            kind,
            parent_team_id: (!request.parent_team_id.is_empty()).then(|| request.parent_team_id.clone()),
        })
    }
}

/// A validated request to add a member.
#[derive(Debug, Clone)]
pub struct AddTeamMember {
    pub team_id: String,
    pub volunteer_number: String,
    pub role: MemberRole,
}

impl TryFrom<pb::AddTeamMemberRequest> for AddTeamMember {
    type Error = DomainError;

    fn try_from(request: pb::AddTeamMemberRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_team_id(&mut violations, "team_id", &request.team_id);
        check_volunteer_number(&mut violations, &request.volunteer_number);
        let role = member_role(request.role);
        if role.is_none() {
            violations.add("role", ROLE_REQUIRED);
        }
        violations.into_result()?;
        Ok(Self { team_id: request.team_id, volunteer_number: request.volunteer_number, role: checked(role)? })
    }
}

/// A validated request to remove a member.
#[derive(Debug, Clone)]
pub struct RemoveTeamMember {
    pub team_id: String,
    pub volunteer_number: String,
}

impl TryFrom<pb::RemoveTeamMemberRequest> for RemoveTeamMember {
    type Error = DomainError;

    fn try_from(request: pb::RemoveTeamMemberRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_team_id(&mut violations, "team_id", &request.team_id);
        check_volunteer_number(&mut violations, &request.volunteer_number);
        violations.into_result()?;
        Ok(Self { team_id: request.team_id, volunteer_number: request.volunteer_number })
    }
}

/// A validated member list query. Paging comes separately.
#[derive(Debug, Clone)]
pub struct ListTeamMembers {
    pub team_id: String,
    pub include_former: bool,
}

impl TryFrom<&pb::ListTeamMembersRequest> for ListTeamMembers {
    type Error = DomainError;

    fn try_from(request: &pb::ListTeamMembersRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_team_id(&mut violations, "team_id", &request.team_id);
        violations.into_result()?;
        Ok(Self { team_id: request.team_id.clone(), include_former: request.include_former })
    }
}

/// A created or updated team, with what is worth a look (e.g. a credit code failing the GB 32100 check).
#[derive(Debug, Clone)]
pub struct TeamChange {
    pub team: TeamRecord,
    pub warnings: Vec<String>,
}

/// A membership with the member's current name, as a list shows it.
#[derive(Debug, Clone)]
pub struct TeamMember {
    pub membership: MembershipRecord,
    pub volunteer_name: String,
}

/// Loads a team inside a write.
pub fn load(txn: &Txn<'_>, team_id: &str) -> Result<TeamRecord, DomainError> {
    txn.get_json(&team_key(team_id))?.ok_or_else(|| DomainError::not_found("team", team_id))
}

/// PermissionDenied unless the caller is staff or the manager of `team_id`.
fn check_can_manage(caller: &Caller, team_id: &str, action: &str) -> Result<(), DomainError> {
    if caller.has(Role::Staff) || caller.manages_team(team_id) {
        return Ok(());
    }
    Err(DomainError::denied(format!("{action} of team {team_id} needs the role staff, or to be that team's manager")))
}

/// Checks that `parent_team_id` exists and that joining it keeps the federations a tree: the walk up from the
/// parent must not reach `team_id` (a cycle) and must end within `FEDERATION_DEPTH_MAX` steps.
fn check_federation(txn: &Txn<'_>, team_id: Option<&str>, parent_team_id: &str) -> Result<(), DomainError> {
    let parent = load(txn, parent_team_id)?;
    let mut next = parent.parent_team_id;
    let mut current = parent.team_id;
    for _ in 0..FEDERATION_DEPTH_MAX {
        if Some(current.as_str()) == team_id {
            return Err(DomainError::invalid(
                "parent_team_id",
                format!(
                    "team {parent_team_id} belongs to team {current}'s federation: a federation cannot contain itself"
                ),
            ));
        }
        let Some(above) = next else {
            return Ok(());
        };
        // A missing ancestor ends the chain: there is nothing above it to loop through.
        let Some(record) = txn.get_json::<TeamRecord>(&team_key(&above))? else {
            return Ok(());
        };
        current = record.team_id;
        next = record.parent_team_id;
    }
    Err(DomainError::invalid(
        "parent_team_id",
        format!("team {parent_team_id} is nested more than {FEDERATION_DEPTH_MAX} federations deep"),
    ))
}

/// Refuses a credit code registered to a team other than `team_id`.
fn check_credit_code_free(txn: &mut Txn<'_>, credit_code: &str, team_id: Option<&str>) -> Result<(), DomainError> {
    if let Some(owner) = txn.get(credit_code_key(credit_code).as_bytes())? {
        let owner = String::from_utf8_lossy(&owner).into_owned();
        if Some(owner.as_str()) != team_id {
            // GB 32100-2015: a credit code identifies one organisation.
            return Err(DomainError::AlreadyExists {
                message: format!("credit code {credit_code} is already registered as team {owner}"),
                existing: owner,
            });
        }
    }
    Ok(())
}

/// Keeps the list and credit-code indexes in step: removes `old`'s entries that `new` no longer has, adds `new`'s.
fn write_indexes(txn: &mut Txn<'_>, old: Option<&TeamRecord>, new: &TeamRecord) {
    let id = &new.team_id;
    if let Some(old) = old {
        if old.name != new.name {
            txn.delete(name_key(&old.name, id));
        }
        if let Some(parent) = &old.parent_team_id
            && old.parent_team_id != new.parent_team_id
        {
            txn.delete(parent_key(parent, id));
        }
        if let Some(code) = &old.credit_code
            && old.credit_code != new.credit_code
        {
            txn.delete(credit_code_key(code));
        }
    }
    txn.put(name_key(&new.name, id), Vec::new());
    if let Some(parent) = &new.parent_team_id {
        txn.put(parent_key(parent, id), Vec::new());
    }
    if let Some(code) = &new.credit_code {
        txn.put(credit_code_key(code), id.clone());
    }
}

/// Creates a team. Staff only.
pub fn create(
    txn: &mut Txn<'_>,
    node_code: &str,
    caller: &Caller,
    command: CreateTeam,
) -> Result<TeamChange, DomainError> {
    caller.require_any(&[Role::Staff], "creating a team")?;
    if let Some(parent) = &command.parent_team_id {
        // A new team has no members of its own federation yet, so only existence and depth can fail here.
        check_federation(txn, None, parent)?;
    }
    if let Some(code) = &command.credit_code
        && let Err(error) = check_credit_code_free(txn, &code.code, None)
    {
        if let DomainError::AlreadyExists { existing, .. } = &error {
            txn.target = existing.clone();
        }
        return Err(error);
    }
    let sequence = txn.next_seq("team")?;
    let team_id = format!("{node_code}-T{sequence:06}");
    txn.target = team_id.clone();
    let now = txn.now();
    let warnings = command.credit_code.as_ref().and_then(|code| code.warning.clone()).into_iter().collect();
    let record = TeamRecord {
        team_id: team_id.clone(),
        name: command.name,
        credit_code: command.credit_code.map(|code| code.code),
        kind: command.kind,
        hub: command.hub,
        support: command.support,
        parent_team_id: command.parent_team_id,
        version: 1,
        created_at: now,
        updated_at: now,
        changed_by: caller.account_id.clone(),
        active_member_count: 0,
    };
    write_indexes(txn, None, &record);
    txn.put_json(team_key(&team_id), &record);
    // The federation counts teams by the month they were registered (stats: `created_at`).
    let mut change = Change::new(pb::ChangeKind::TeamRegistered, team_id);
    change.deltas.add(cell_at(record.created_at, 0), |f| f.teams_registered += 1);
    outbox::record(txn, change)?;
    Ok(TeamChange { team: record, warnings })
}

/// Updates a team's own fields as a new version. Staff, or the manager of that team.
pub fn update(txn: &mut Txn<'_>, caller: &Caller, command: UpdateTeam) -> Result<TeamChange, DomainError> {
    check_can_manage(caller, &command.team_id, "updating")?;
    let old = load(txn, &command.team_id)?;
    let mut new = old.clone();
    let mut warnings = Vec::new();
    if let Some(name) = command.name {
        new.name = name;
    }
    if let Some(kind) = command.kind {
        new.kind = kind;
    }
    if let Some(hub) = command.hub {
        new.hub = hub;
    }
    if let Some(support) = command.support {
        new.support = support;
    }
    if let Some(parent) = command.parent_team_id {
        if let Some(parent) = &parent
            && old.parent_team_id.as_ref() != Some(parent)
        {
            check_federation(txn, Some(&old.team_id), parent)?;
        }
        new.parent_team_id = parent;
    }
    match command.registration {
        None => {}
        Some(RegistrationChange::Unregister) => new.credit_code = None,
        Some(RegistrationChange::KeepRegistered) if old.credit_code.is_none() => {
            return Err(DomainError::invalid(
                "credit_code",
                "is required for a registered organisation and the team has none (GB 32100-2015)",
            ));
        }
        Some(RegistrationChange::KeepRegistered) => {}
        Some(RegistrationChange::ReplaceCode(_)) if old.credit_code.is_none() => {
            return Err(DomainError::invalid(
                "credit_code",
                "is given but the team is not registered: set registered to true as well",
            ));
        }
        Some(RegistrationChange::Register(code) | RegistrationChange::ReplaceCode(code)) => {
            check_credit_code_free(txn, &code.code, Some(&old.team_id))?;
            warnings.extend(code.warning);
            new.credit_code = Some(code.code);
        }
    }
    new.version = old.version + 1;
    new.updated_at = txn.now();
    new.changed_by = caller.account_id.clone();
    write_indexes(txn, Some(&old), &new);
    txn.put_json(team_key(&new.team_id), &new);
    Ok(TeamChange { team: new, warnings })
}

/// Reads one team. Team records are not personal data: staff, team managers and volunteers may read any.
pub fn get(store: &dyn Store, caller: &Caller, team_id: &str) -> Result<TeamRecord, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "reading a team")?;
    store::get_json(store, team_key(team_id).as_bytes())?.ok_or_else(|| DomainError::not_found("team", team_id))
}

/// Lists teams matching `query`, through the most selective index: federation, then name prefix, then all teams.
pub fn list(
    store: &dyn Store,
    caller: &Caller,
    query: &ListTeams,
    page: &PageRequest,
) -> Result<Page<TeamRecord>, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "listing teams")?;
    let (prefix, indexed) = if let Some(parent) = &query.parent_team_id {
        (format!("team_par/{parent}/"), true)
    } else if let Some(name) = &query.name_prefix {
        (format!("team_nm/{name}"), true)
    } else {
        ("team/".to_string(), false)
    };
    crate::page::collect(store, &prefix, page, |key, value| {
        let record: TeamRecord = if indexed {
            // Index keys end in the team id, after '/' or NUL.
            let text = String::from_utf8_lossy(key);
            let team_id = text.rsplit(['/', '\0']).next().unwrap_or_default();
            match store::get_json(store, team_key(team_id).as_bytes())? {
                Some(record) => record,
                None => return Ok(None),
            }
        } else {
            store::decode(key, value)?
        };
        let matches = query.name_prefix.as_ref().is_none_or(|name| record.name.starts_with(name.as_str()))
            && query.kind.is_none_or(|kind| kind == record.kind)
            && query.parent_team_id.as_ref().is_none_or(|parent| record.parent_team_id.as_ref() == Some(parent));
        Ok(matches.then_some(record))
    })
}

/// Adds a volunteer to a team, or takes a former member back. Staff, or the manager of that team.
pub fn add_member(txn: &mut Txn<'_>, caller: &Caller, command: AddTeamMember) -> Result<TeamMember, DomainError> {
    check_can_manage(caller, &command.team_id, "adding members")?;
    txn.detail = format!("volunteer {}", command.volunteer_number);
    let mut team = load(txn, &command.team_id)?;
    let mut member = volunteer::load(txn, &command.volunteer_number)?;
    if member.status != VolunteerStatus::Active {
        return Err(DomainError::FailedPrecondition(format!("volunteer {} is inactive", command.volunteer_number)));
    }
    let key = membership_key(&command.team_id, &command.volunteer_number);
    if let Some(existing) = txn.get_json::<MembershipRecord>(&key)?
        && existing.left_at.is_none()
    {
        return Err(DomainError::AlreadyExists {
            message: format!("volunteer {} is already a member of team {}", command.volunteer_number, command.team_id),
            existing: command.volunteer_number,
        });
    }
    // A former member rejoins with a new join date; the leave date is cleared.
    let membership = MembershipRecord {
        team_id: command.team_id.clone(),
        volunteer_number: command.volunteer_number.clone(),
        role: command.role,
        joined_at: txn.now(),
        left_at: None,
    };
    txn.put_json(key, &membership);
    team.active_member_count = team.active_member_count.saturating_add(1);
    txn.put_json(team_key(&team.team_id), &team);
    write_team_ids(txn, &mut member, |team_ids| {
        if !team_ids.contains(&command.team_id) {
            team_ids.push(command.team_id.clone());
        }
    });
    Ok(TeamMember { membership, volunteer_name: member.name })
}

/// Ends a membership: the leave date is set and the membership kept. Staff, or the manager of that team.
pub fn remove_member(txn: &mut Txn<'_>, caller: &Caller, command: RemoveTeamMember) -> Result<TeamMember, DomainError> {
    check_can_manage(caller, &command.team_id, "removing members")?;
    txn.detail = format!("volunteer {}", command.volunteer_number);
    let mut team = load(txn, &command.team_id)?;
    let key = membership_key(&command.team_id, &command.volunteer_number);
    let mut membership = match txn.get_json::<MembershipRecord>(&key)? {
        Some(membership) if membership.left_at.is_none() => membership,
        _ => {
            return Err(DomainError::FailedPrecondition(format!(
                "volunteer {} is not a current member of team {}",
                command.volunteer_number, command.team_id
            )));
        }
    };
    let mut member = volunteer::load(txn, &command.volunteer_number)?;
    // MCA Order 67: records are complete; the membership stays, with its leave date.
    membership.left_at = Some(txn.now());
    txn.put_json(key, &membership);
    team.active_member_count = team.active_member_count.saturating_sub(1);
    txn.put_json(team_key(&team.team_id), &team);
    write_team_ids(txn, &mut member, |team_ids| team_ids.retain(|id| *id != command.team_id));
    Ok(TeamMember { membership, volunteer_name: member.name })
}

/// Changes a volunteer's current-team list in place. Membership is not a change of the volunteer's personal
/// record, so no new version is made (the version history stays the history of what the volunteer declared).
fn write_team_ids(txn: &mut Txn<'_>, record: &mut VolunteerRecord, change: impl FnOnce(&mut Vec<String>)) {
    change(&mut record.team_ids);
    txn.put_json(volunteer::record_key(&record.volunteer_number), &*record);
}

/// Lists a team's members (and, if asked, its former members). Staff, or the manager of that team.
pub fn members(
    store: &dyn Store,
    caller: &Caller,
    query: &ListTeamMembers,
    page: &PageRequest,
) -> Result<Page<TeamMember>, DomainError> {
    check_can_manage(caller, &query.team_id, "listing the members")?;
    if store.get(team_key(&query.team_id).as_bytes())?.is_none() {
        return Err(DomainError::not_found("team", query.team_id.clone()));
    }
    let prefix = format!("team_mem/{}/", query.team_id);
    crate::page::collect(store, &prefix, page, |key, value| {
        let membership: MembershipRecord = store::decode(key, value)?;
        if membership.left_at.is_some() && !query.include_former {
            return Ok(None);
        }
        let volunteer_name =
            store::get_json::<VolunteerRecord>(store, volunteer::record_key(&membership.volunteer_number).as_bytes())?
                .map(|record| record.name)
                .unwrap_or_default();
        Ok(Some(TeamMember { membership, volunteer_name }))
    })
}

impl TeamRecord {
    /// The wire form.
    pub fn to_pb(&self) -> pb::Team {
        pb::Team {
            team_id: self.team_id.clone(),
            name: self.name.clone(),
            registered: self.credit_code.is_some(),
            credit_code: self.credit_code.clone().unwrap_or_default(),
            kind: pb::TeamKind::from(self.kind) as i32,
            hub: self.hub,
            support: self.support,
            parent_team_id: self.parent_team_id.clone().unwrap_or_default(),
            version: self.version,
            created_at: Some(wire::timestamp(self.created_at)),
            active_member_count: self.active_member_count,
        }
    }
}

impl TeamMember {
    /// The wire form.
    pub fn to_pb(&self) -> pb::TeamMember {
        pb::TeamMember {
            team_id: self.membership.team_id.clone(),
            volunteer_number: self.membership.volunteer_number.clone(),
            volunteer_name: self.volunteer_name.clone(),
            role: pb::MemberRole::from(self.membership.role) as i32,
            joined_at: Some(wire::timestamp(self.membership.joined_at)),
            left_at: wire::optional_timestamp(self.membership.left_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;
    use std::sync::Arc;

    use chrono::NaiveDate;

    use super::*;
    use crate::audit::AuditContext;
    use crate::auth::Department;
    use crate::commit::Committer;
    use crate::crypto::NodeKeys;
    use crate::page::PageLimits;
    use crate::registry::volunteer::{RegisterVolunteer, SearchVolunteers};
    use crate::store::SledStore;

    // A code whose check character matches, the same with a wrong check character, and a third valid one.
    const VALID_CODE: &str = "91350100M000100Y43";
    const PILOT_CODE: &str = "91350100M000100Y44";
    const OTHER_CODE: &str = "91110000600037341L";

    use crate::testing::{check, violated_fields as fields};

    fn create_request() -> pb::CreateTeamRequest {
        pb::CreateTeamRequest {
            name: "西湖环保志愿队".into(),
            kind: pb::TeamKind::SocialOrganisation as i32,
            ..Default::default()
        }
    }

    #[test]
    fn team_creations_are_checked_field_by_field() {
        let cases: Vec<(pb::CreateTeamRequest, &[&str])> = vec![
            (create_request(), &[]),
            (pb::CreateTeamRequest { registered: true, credit_code: VALID_CODE.into(), ..create_request() }, &[]),
            // Lowercase is accepted (and stored uppercase).
            (
                pb::CreateTeamRequest { registered: true, credit_code: VALID_CODE.to_lowercase(), ..create_request() },
                &[],
            ),
            // GB 32100-2015: a pilot-era code failing the check is accepted (with a warning).
            (pb::CreateTeamRequest { registered: true, credit_code: PILOT_CODE.into(), ..create_request() }, &[]),
            (pb::CreateTeamRequest { registered: true, ..create_request() }, &["credit_code"]),
            (
                pb::CreateTeamRequest {
                    registered: true,
                    credit_code: "91350100I000100Y43".into(),
                    ..create_request()
                },
                &["credit_code"],
            ),
            (
                pb::CreateTeamRequest { registered: true, credit_code: "91350100M000100Y4".into(), ..create_request() },
                &["credit_code"],
            ),
            (pb::CreateTeamRequest { credit_code: VALID_CODE.into(), ..create_request() }, &["credit_code"]),
            (pb::CreateTeamRequest { name: "  ".into(), ..create_request() }, &["name"]),
            (pb::CreateTeamRequest { name: "队".repeat(101), ..create_request() }, &["name"]),
            (pb::CreateTeamRequest { name: "队".repeat(100), ..create_request() }, &[]),
            (pb::CreateTeamRequest { name: "a\0b".into(), ..create_request() }, &["name"]),
            (pb::CreateTeamRequest { kind: 0, ..create_request() }, &["kind"]),
            (pb::CreateTeamRequest { kind: 99, ..create_request() }, &["kind"]),
            (pb::CreateTeamRequest { parent_team_id: "330106-T000001".into(), ..create_request() }, &[]),
            (pb::CreateTeamRequest { parent_team_id: "team/../x".into(), ..create_request() }, &["parent_team_id"]),
            // Every broken rule at once.
            (
                pb::CreateTeamRequest {
                    name: String::new(),
                    registered: true,
                    credit_code: String::new(),
                    kind: 0,
                    parent_team_id: "x/y".into(),
                    ..Default::default()
                },
                &["name", "credit_code", "kind", "parent_team_id"],
            ),
        ];
        for (request, expected) in cases {
            check::<CreateTeam, _>(request, expected);
        }
    }

    #[test]
    fn credit_codes_are_uppercased_and_pilot_codes_warn() -> Result<(), DomainError> {
        let lower = CreateTeam::try_from(pb::CreateTeamRequest {
            registered: true,
            credit_code: format!(" {} ", VALID_CODE.to_lowercase()),
            ..create_request()
        })?;
        assert_eq!(lower.credit_code, Some(CreditCode { code: VALID_CODE.into(), warning: None }));
        let pilot = CreateTeam::try_from(pb::CreateTeamRequest {
            registered: true,
            credit_code: PILOT_CODE.into(),
            ..create_request()
        })?;
        assert_eq!(
            pilot.credit_code.and_then(|code| code.warning).as_deref(),
            Some(
                "credit code fails the GB 32100 check (expected check character 3): \
                 accepted as a pilot-era code"
            )
        );
        Ok(())
    }

    fn update_request() -> pb::UpdateTeamRequest {
        pb::UpdateTeamRequest { team_id: "330106-T000002".into(), ..Default::default() }
    }

    #[test]
    fn team_updates_are_checked_field_by_field() {
        let cases: Vec<(pb::UpdateTeamRequest, &[&str])> = vec![
            (update_request(), &[]),
            (pb::UpdateTeamRequest { team_id: String::new(), ..update_request() }, &["team_id"]),
            (pb::UpdateTeamRequest { name: Some(String::new()), ..update_request() }, &["name"]),
            (pb::UpdateTeamRequest { kind: Some(0), ..update_request() }, &["kind"]),
            (pb::UpdateTeamRequest { kind: Some(pb::TeamKind::UniversityClub as i32), ..update_request() }, &[]),
            (pb::UpdateTeamRequest { parent_team_id: Some(String::new()), ..update_request() }, &[]),
            (
                pb::UpdateTeamRequest { parent_team_id: Some("330106-T000002".into()), ..update_request() },
                &["parent_team_id"],
            ),
            (pb::UpdateTeamRequest { parent_team_id: Some("a b".into()), ..update_request() }, &["parent_team_id"]),
            (
                pb::UpdateTeamRequest {
                    registered: Some(true),
                    credit_code: Some(VALID_CODE.into()),
                    ..update_request()
                },
                &[],
            ),
            (pb::UpdateTeamRequest { registered: Some(true), ..update_request() }, &[]),
            (
                pb::UpdateTeamRequest { registered: Some(true), credit_code: Some(String::new()), ..update_request() },
                &["credit_code"],
            ),
            (
                pb::UpdateTeamRequest {
                    registered: Some(false),
                    credit_code: Some(VALID_CODE.into()),
                    ..update_request()
                },
                &["credit_code"],
            ),
            (pb::UpdateTeamRequest { registered: Some(false), ..update_request() }, &[]),
            (
                pb::UpdateTeamRequest { credit_code: Some("91350100O000100Y43".into()), ..update_request() },
                &["credit_code"],
            ),
            (pb::UpdateTeamRequest { credit_code: Some(String::new()), ..update_request() }, &["credit_code"]),
            (
                pb::UpdateTeamRequest {
                    team_id: String::new(),
                    name: Some("x".repeat(101)),
                    kind: Some(42),
                    parent_team_id: Some("../".into()),
                    registered: Some(true),
                    credit_code: Some("short".into()),
                    ..Default::default()
                },
                &["team_id", "name", "kind", "parent_team_id", "credit_code"],
            ),
        ];
        for (request, expected) in cases {
            check::<UpdateTeam, _>(request, expected);
        }
    }

    #[test]
    fn update_registration_changes_are_told_apart() -> Result<(), DomainError> {
        let parse = |registered: Option<bool>, code: Option<&str>| {
            UpdateTeam::try_from(pb::UpdateTeamRequest {
                registered,
                credit_code: code.map(Into::into),
                ..update_request()
            })
            .map(|update| update.registration)
        };
        let valid = CreditCode { code: VALID_CODE.into(), warning: None };
        assert_eq!(parse(None, None)?, None);
        assert_eq!(parse(Some(false), None)?, Some(RegistrationChange::Unregister));
        assert_eq!(parse(Some(false), Some(""))?, Some(RegistrationChange::Unregister));
        assert_eq!(parse(Some(true), None)?, Some(RegistrationChange::KeepRegistered));
        assert_eq!(parse(Some(true), Some(VALID_CODE))?, Some(RegistrationChange::Register(valid.clone())));
        assert_eq!(parse(None, Some(VALID_CODE))?, Some(RegistrationChange::ReplaceCode(valid)));
        Ok(())
    }

    #[test]
    fn list_and_member_requests_are_checked() {
        let list: Vec<(pb::ListTeamsRequest, &[&str])> = vec![
            (pb::ListTeamsRequest::default(), &[]),
            (
                pb::ListTeamsRequest {
                    kind: pb::TeamKind::Agency as i32,
                    name_prefix: "西湖".into(),
                    parent_team_id: "330106-T000001".into(),
                    ..Default::default()
                },
                &[],
            ),
            (pb::ListTeamsRequest { kind: 8, ..Default::default() }, &["kind"]),
            (
                pb::ListTeamsRequest {
                    name_prefix: "x".repeat(101),
                    parent_team_id: "a/b".into(),
                    ..Default::default()
                },
                &["name_prefix", "parent_team_id"],
            ),
        ];
        for (request, expected) in list {
            assert_eq!(fields(ListTeams::try_from(&request)), expected, "{request:?}");
        }
        let add = |team: &str, number: &str, role: pb::MemberRole| pb::AddTeamMemberRequest {
            team_id: team.into(),
            volunteer_number: number.into(),
            role: role as i32,
        };
        let adds: Vec<(pb::AddTeamMemberRequest, &[&str])> = vec![
            (add("330106-T000001", "330106-00000001", pb::MemberRole::Member), &[]),
            (add("330106-T000001", "330106-00000001", pb::MemberRole::Unspecified), &["role"]),
            (add("", "", pb::MemberRole::Leader), &["team_id", "volunteer_number"]),
            (add("330106-T000001", "330106/1", pb::MemberRole::Backbone), &["volunteer_number"]),
        ];
        for (request, expected) in adds {
            check::<AddTeamMember, _>(request, expected);
        }
        check::<RemoveTeamMember, _>(
            pb::RemoveTeamMemberRequest {
                team_id: "330106-T000001".into(),
                volunteer_number: "330106-00000001".into(),
            },
            &[],
        );
        check::<RemoveTeamMember, _>(pb::RemoveTeamMemberRequest::default(), &["team_id", "volunteer_number"]);
        check::<GetTeam, _>(pb::GetTeamRequest::default(), &["team_id"]);
        check::<GetTeam, _>(pb::GetTeamRequest { team_id: "330106-T000001".into() }, &[]);
        assert_eq!(
            fields(ListTeamMembers::try_from(&pb::ListTeamMembersRequest {
                team_id: "x".repeat(33),
                ..Default::default()
            })),
            ["team_id"]
        );
    }

    // ----- use-cases against a real store -----

    struct Node {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        committer: Committer,
        keys: Arc<NodeKeys>,
    }

    impl Node {
        fn start() -> anyhow::Result<Self> {
            let dir = tempfile::tempdir()?;
            let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db"), 8 << 20)?);
            let committer = Committer::start(store.clone(), 64, 64);
            Ok(Self { _dir: dir, store, committer, keys: Arc::new(NodeKeys::from_bytes(&[7u8; 32])) })
        }

        async fn write<T: Send + 'static>(
            &self,
            caller: &Caller,
            use_case: impl FnOnce(&mut Txn<'_>, &Caller) -> Result<T, DomainError> + Send + 'static,
        ) -> Result<T, DomainError> {
            let owned = caller.clone();
            self.committer.write(AuditContext::new(caller, "test", ""), move |txn| use_case(txn, &owned)).await
        }

        async fn create(&self, caller: &Caller, request: pb::CreateTeamRequest) -> Result<TeamChange, DomainError> {
            let command = CreateTeam::try_from(request)?;
            self.write(caller, move |txn, caller| create(txn, "330106", caller, command)).await
        }

        async fn update(&self, caller: &Caller, request: pb::UpdateTeamRequest) -> Result<TeamChange, DomainError> {
            let command = UpdateTeam::try_from(request)?;
            self.write(caller, move |txn, caller| update(txn, caller, command)).await
        }

        async fn register(&self, identity_number: &str) -> Result<String, DomainError> {
            let command = RegisterVolunteer::parse(
                pb::RegisterVolunteerRequest {
                    name: "测试甲".into(),
                    identity_number: identity_number.into(),
                    phone: "13800138000".into(),
                    political_status: pb::PoliticalStatus::Masses as i32,
                    consent_to_processing: true,
                    home_division_code: "330106".into(),
                    ..Default::default()
                },
                NaiveDate::from_ymd_opt(2026, 11, 28).unwrap_or_default(),
            )?;
            let keys = self.keys.clone();
            self.write(&staff(), move |txn, caller| volunteer::register(txn, &keys, "330106", caller, command))
                .await
                .map(|record| record.volunteer_number)
        }

        async fn add(&self, caller: &Caller, team_id: &str, volunteer_number: &str) -> Result<TeamMember, DomainError> {
            let command = AddTeamMember::try_from(pb::AddTeamMemberRequest {
                team_id: team_id.into(),
                volunteer_number: volunteer_number.into(),
                role: pb::MemberRole::Member as i32,
            })?;
            self.write(caller, move |txn, caller| add_member(txn, caller, command)).await
        }

        async fn remove(
            &self,
            caller: &Caller,
            team_id: &str,
            volunteer_number: &str,
        ) -> Result<TeamMember, DomainError> {
            let command = RemoveTeamMember::try_from(pb::RemoveTeamMemberRequest {
                team_id: team_id.into(),
                volunteer_number: volunteer_number.into(),
            })?;
            self.write(caller, move |txn, caller| remove_member(txn, caller, command)).await
        }

        fn volunteer(&self, number: &str) -> anyhow::Result<VolunteerRecord> {
            store::get_json(&*self.store, volunteer::record_key(number).as_bytes())?
                .ok_or_else(|| anyhow::anyhow!("volunteer {number} missing"))
        }

        fn team(&self, team_id: &str) -> Result<TeamRecord, DomainError> {
            get(&*self.store, &staff(), team_id)
        }
    }

    fn account(roles: &[Role], team_id: Option<&str>) -> Caller {
        Caller {
            account_id: "acct-test".into(),
            name: "测试账号".into(),
            department: Department::EcologyBureau,
            roles: roles.to_vec(),
            team_id: team_id.map(Into::into),
            volunteer_number: None,
            request_id: "test".into(),
        }
    }

    fn staff() -> Caller {
        account(&[Role::Staff], None)
    }

    fn manager_of(team_id: &str) -> Caller {
        account(&[Role::TeamManager], Some(team_id))
    }

    fn named(name: &str) -> pb::CreateTeamRequest {
        pb::CreateTeamRequest { name: name.into(), ..create_request() }
    }

    fn with_parent(name: &str, parent: &str) -> pb::CreateTeamRequest {
        pb::CreateTeamRequest { parent_team_id: parent.into(), ..named(name) }
    }

    fn set_parent(team_id: &str, parent: &str) -> pb::UpdateTeamRequest {
        pb::UpdateTeamRequest { team_id: team_id.into(), parent_team_id: Some(parent.into()), ..Default::default() }
    }

    fn page(size: usize, token: &str) -> Result<PageRequest, DomainError> {
        PageRequest::parse(size as i32, token, PageLimits { size_default: 50, size_max: 500 })
    }

    #[tokio::test]
    async fn create_assigns_ids_keeps_codes_unique_and_warns() -> anyhow::Result<()> {
        let node = Node::start()?;
        let first = node
            .create(
                &staff(),
                pb::CreateTeamRequest { registered: true, credit_code: VALID_CODE.to_lowercase(), ..named("甲队") },
            )
            .await?;
        assert_eq!(first.team.team_id, "330106-T000001");
        assert_eq!(first.team.credit_code.as_deref(), Some(VALID_CODE));
        assert!(first.warnings.is_empty());
        assert!(first.team.to_pb().registered);

        let pilot = node
            .create(
                &staff(),
                pb::CreateTeamRequest { registered: true, credit_code: PILOT_CODE.into(), ..named("乙队") },
            )
            .await?;
        assert_eq!(pilot.team.team_id, "330106-T000002");
        assert_eq!(pilot.warnings.len(), 1);

        let duplicate = node
            .create(
                &staff(),
                pb::CreateTeamRequest { registered: true, credit_code: VALID_CODE.into(), ..named("丙队") },
            )
            .await;
        assert!(
            matches!(&duplicate, Err(DomainError::AlreadyExists { existing, .. }) if existing == "330106-T000001"),
            "{duplicate:?}"
        );

        // Only staff create teams; the refusal is audited and consumes no id.
        let denied = node.create(&manager_of("330106-T000001"), named("丁队")).await;
        assert!(matches!(denied, Err(DomainError::PermissionDenied(_))));
        let missing_parent = node.create(&staff(), with_parent("戊队", "330106-T000099")).await;
        assert!(matches!(missing_parent, Err(DomainError::NotFound { kind: "team", .. })));
        let next = node.create(&staff(), named("己队")).await?;
        assert_eq!(next.team.team_id, "330106-T000003");

        // MLPS: refusals are audited too, with the team they named.
        let mut outcomes = Vec::new();
        node.store.scan(b"audit/e/", None, &mut |key, value| {
            if let Ok(entry) = store::decode::<crate::audit::AuditEntry>(key, value) {
                outcomes.push((entry.outcome, entry.target));
            }
            ControlFlow::Continue(())
        })?;
        use crate::audit::Outcome;
        assert!(outcomes.contains(&(Outcome::Denied, String::new())));
        assert!(outcomes.contains(&(Outcome::Conflict, "330106-T000001".into())));
        assert!(outcomes.contains(&(Outcome::Ok, "330106-T000003".into())));
        Ok(())
    }

    #[tokio::test]
    async fn federations_refuse_cycles_and_keep_the_parent_index() -> anyhow::Result<()> {
        let node = Node::start()?;
        let a = node.create(&staff(), named("联合会")).await?.team.team_id;
        let b = node.create(&staff(), with_parent("分会", &a)).await?.team.team_id;
        let c = node.create(&staff(), with_parent("小队", &b)).await?.team.team_id;

        // a → c would close the loop a ← b ← c.
        let cycle = node.update(&staff(), set_parent(&a, &c)).await;
        assert_eq!(fields(cycle), ["parent_team_id"]);
        let unknown = node.update(&staff(), set_parent(&a, "330106-T000099")).await;
        assert!(matches!(unknown, Err(DomainError::NotFound { .. })));
        assert_eq!(node.team(&a)?.version, 1);

        let listed = list(
            &*node.store,
            &staff(),
            &ListTeams { parent_team_id: Some(a.clone()), ..Default::default() },
            &page(10, "")?,
        )?;
        assert_eq!(listed.items.iter().map(|t| &t.team_id).collect::<Vec<_>>(), [&b]);

        // b leaves the federation: the index follows, the version moves on.
        let left = node.update(&staff(), set_parent(&b, "")).await?;
        assert_eq!(left.team.parent_team_id, None);
        assert_eq!(left.team.version, 2);
        let listed = list(
            &*node.store,
            &staff(),
            &ListTeams { parent_team_id: Some(a.clone()), ..Default::default() },
            &page(10, "")?,
        )?;
        assert!(listed.items.is_empty());

        // Now a may join c's federation (c ← b, a apart).
        let joined = node.update(&staff(), set_parent(&a, &c)).await?;
        assert_eq!(joined.team.parent_team_id.as_deref(), Some(c.as_str()));
        Ok(())
    }

    #[tokio::test]
    async fn updates_keep_the_credit_code_index_consistent() -> anyhow::Result<()> {
        let node = Node::start()?;
        let a = node
            .create(
                &staff(),
                pb::CreateTeamRequest { registered: true, credit_code: VALID_CODE.into(), ..named("甲队") },
            )
            .await?
            .team
            .team_id;
        let b = node.create(&staff(), named("乙队")).await?.team.team_id;
        let register = |team_id: &str, code: &str| pb::UpdateTeamRequest {
            team_id: team_id.into(),
            registered: Some(true),
            credit_code: Some(code.into()),
            ..Default::default()
        };

        let taken = node.update(&staff(), register(&b, VALID_CODE)).await;
        assert!(matches!(&taken, Err(DomainError::AlreadyExists { existing, .. }) if *existing == a));
        // A code only for a registered team, and registered needs a code.
        let replace_unregistered = node
            .update(
                &staff(),
                pb::UpdateTeamRequest {
                    team_id: b.clone(),
                    credit_code: Some(OTHER_CODE.into()),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(fields(replace_unregistered), ["credit_code"]);
        let keep_without_code = node
            .update(
                &staff(),
                pb::UpdateTeamRequest { team_id: b.clone(), registered: Some(true), ..Default::default() },
            )
            .await;
        assert_eq!(fields(keep_without_code), ["credit_code"]);

        // a moves to another code: its old code is free again.
        let moved = node
            .update(
                &staff(),
                pb::UpdateTeamRequest {
                    team_id: a.clone(),
                    credit_code: Some(PILOT_CODE.into()),
                    ..Default::default()
                },
            )
            .await?;
        assert_eq!(moved.warnings.len(), 1);
        let b_registered = node.update(&staff(), register(&b, VALID_CODE)).await?;
        assert_eq!(b_registered.team.credit_code.as_deref(), Some(VALID_CODE));

        // a leaves registration: its code is free.
        let unregistered = node
            .update(
                &staff(),
                pb::UpdateTeamRequest { team_id: a.clone(), registered: Some(false), ..Default::default() },
            )
            .await?;
        assert_eq!(unregistered.team.credit_code, None);
        node.create(
            &staff(),
            pb::CreateTeamRequest { registered: true, credit_code: PILOT_CODE.into(), ..named("丙队") },
        )
        .await?;
        Ok(())
    }

    #[tokio::test]
    async fn managers_act_on_their_own_team_only() -> anyhow::Result<()> {
        let node = Node::start()?;
        let own = node.create(&staff(), named("甲队")).await?.team.team_id;
        let other = node.create(&staff(), named("乙队")).await?.team.team_id;
        let volunteer_number = node.register("11010519491231002X").await?;
        let manager = manager_of(&own);

        let renamed = node
            .update(
                &manager,
                pb::UpdateTeamRequest {
                    team_id: own.clone(), name: Some("甲队（新）".into()), ..Default::default()
                },
            )
            .await?;
        assert_eq!(renamed.team.name, "甲队（新）");
        let foreign_update = node
            .update(&manager, pb::UpdateTeamRequest { team_id: other.clone(), hub: Some(true), ..Default::default() })
            .await;
        assert!(matches!(foreign_update, Err(DomainError::PermissionDenied(_))));
        assert!(matches!(node.add(&manager, &other, &volunteer_number).await, Err(DomainError::PermissionDenied(_))));
        node.add(&manager, &own, &volunteer_number).await?;
        let query = |team_id: &str| ListTeamMembers { team_id: team_id.into(), include_former: false };
        assert_eq!(members(&*node.store, &manager, &query(&own), &page(10, "")?)?.items.len(), 1);
        assert!(matches!(
            members(&*node.store, &manager, &query(&other), &page(10, "")?),
            Err(DomainError::PermissionDenied(_))
        ));
        assert!(matches!(
            node.remove(&manager, &other, &volunteer_number).await,
            Err(DomainError::PermissionDenied(_))
        ));
        // Team records are readable by volunteers; auditors have no business here.
        let volunteer = account(&[Role::Volunteer], None);
        assert_eq!(get(&*node.store, &volunteer, &other)?.team_id, other);
        let auditor = account(&[Role::Auditor], None);
        assert!(matches!(get(&*node.store, &auditor, &other), Err(DomainError::PermissionDenied(_))));
        Ok(())
    }

    #[tokio::test]
    async fn members_join_leave_and_rejoin_with_team_ids_kept_in_step() -> anyhow::Result<()> {
        let node = Node::start()?;
        let team_id = node.create(&staff(), named("甲队")).await?.team.team_id;
        let number = node.register("440308199901101512").await?;
        let registered_version = node.volunteer(&number)?.version;

        let joined = node.add(&staff(), &team_id, &number).await?;
        assert_eq!(joined.volunteer_name, "测试甲");
        assert_eq!(joined.membership.left_at, None);
        assert_eq!(node.volunteer(&number)?.team_ids, std::slice::from_ref(&team_id));
        // Membership is not a change of the volunteer's personal record.
        assert_eq!(node.volunteer(&number)?.version, registered_version);
        assert_eq!(node.team(&team_id)?.active_member_count, 1);
        assert!(matches!(node.add(&staff(), &team_id, &number).await, Err(DomainError::AlreadyExists { .. })));

        // The volunteer search by team finds current members through `team_mem/<team>/`.
        let search = |team: &str| -> Result<usize, DomainError> {
            volunteer::search(
                &*node.store,
                &node.keys,
                &staff(),
                SearchVolunteers { team_id: Some(team.into()), ..Default::default() },
                &page(10, "")?,
            )
            .map(|found| found.items.len())
        };
        assert_eq!(search(&team_id)?, 1);

        let left = node.remove(&staff(), &team_id, &number).await?;
        assert!(left.membership.left_at.is_some());
        assert!(node.volunteer(&number)?.team_ids.is_empty());
        assert_eq!(node.team(&team_id)?.active_member_count, 0);
        assert_eq!(search(&team_id)?, 0);
        assert!(matches!(node.remove(&staff(), &team_id, &number).await, Err(DomainError::FailedPrecondition(_))));

        // The former membership is kept, and listed when asked for.
        let list_members = |include_former: bool| -> Result<usize, DomainError> {
            members(
                &*node.store,
                &staff(),
                &ListTeamMembers { team_id: team_id.clone(), include_former },
                &page(10, "")?,
            )
            .map(|found| found.items.len())
        };
        assert_eq!(list_members(false)?, 0);
        assert_eq!(list_members(true)?, 1);

        let rejoined = node.add(&staff(), &team_id, &number).await?;
        assert_eq!(rejoined.membership.left_at, None);
        assert!(Some(rejoined.membership.joined_at) >= left.membership.left_at);
        assert_eq!(node.volunteer(&number)?.team_ids, std::slice::from_ref(&team_id));
        assert_eq!(node.team(&team_id)?.active_member_count, 1);
        assert_eq!(node.team(&team_id)?.version, 1);
        assert_eq!(list_members(false)?, 1);
        Ok(())
    }

    #[tokio::test]
    async fn unknown_and_inactive_volunteers_cannot_join() -> anyhow::Result<()> {
        let node = Node::start()?;
        let team_id = node.create(&staff(), named("甲队")).await?.team.team_id;
        assert!(matches!(
            node.add(&staff(), &team_id, "330106-00000099").await,
            Err(DomainError::NotFound { kind: "volunteer", .. })
        ));
        assert!(matches!(
            node.add(&staff(), "330106-T000099", "330106-00000099").await,
            Err(DomainError::NotFound { kind: "team", .. })
        ));
        let number = node.register("11010519491231002X").await?;
        let deactivated = number.clone();
        node.write(&staff(), move |txn, caller| volunteer::deactivate(txn, caller, &deactivated, "moved away".into()))
            .await?;
        let refused = node.add(&staff(), &team_id, &number).await;
        assert!(
            matches!(&refused, Err(DomainError::FailedPrecondition(message)) if *message == format!("volunteer {number} is inactive")),
            "{refused:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn team_lists_filter_and_page() -> anyhow::Result<()> {
        let node = Node::start()?;
        for name in ["西湖一队", "西湖二队", "西湖三队", "滨江队"] {
            node.create(&staff(), named(name)).await?;
        }
        node.create(
            &staff(),
            pb::CreateTeamRequest { kind: pb::TeamKind::UniversityClub as i32, ..named("西湖大学社团") },
        )
        .await?;
        let collect = |query: ListTeams, size: usize| -> anyhow::Result<Vec<String>> {
            let mut names = Vec::new();
            let mut token = String::new();
            loop {
                let found = list(&*node.store, &staff(), &query, &page(size, &token)?)?;
                names.extend(found.items.into_iter().map(|team| team.name));
                if found.next_page_token.is_empty() {
                    return Ok(names);
                }
                token = found.next_page_token;
            }
        };
        assert_eq!(collect(ListTeams::default(), 2)?.len(), 5);
        let west_lake = ListTeams { name_prefix: Some("西湖".into()), ..Default::default() };
        assert_eq!(collect(west_lake.clone(), 1)?.len(), 4);
        assert_eq!(collect(ListTeams { kind: Some(TeamKind::UniversityClub), ..west_lake }, 1)?, ["西湖大学社团"]);
        // A token of one list is refused by another.
        let first = list(&*node.store, &staff(), &ListTeams::default(), &page(1, "")?)?;
        let foreign = list(
            &*node.store,
            &staff(),
            &ListTeams { name_prefix: Some("西湖".into()), ..Default::default() },
            &page(1, &first.next_page_token)?,
        );
        assert_eq!(fields(foreign), ["page_token"]);
        Ok(())
    }
}
