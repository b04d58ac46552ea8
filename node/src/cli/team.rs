//! `ecovol team …`: volunteer teams and organisations and their members (`TeamService`).

use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node, PageArgs, pages};
use super::console::{Console, Record, name, optional, timestamp};
use super::failure::Failure;
use super::vocabulary::{MemberRole, TeamKind, member_role_name, team_kind_name};

/// Team commands.
#[derive(Debug, clap::Subcommand)]
pub enum TeamCommand {
    /// Create a team.
    Create(CreateArgs),
    /// Show one team.
    Get(TeamIdArg),
    /// List teams.
    List(ListArgs),
    /// Change a team.
    Update(UpdateArgs),
    /// Add a volunteer to a team.
    AddMember(AddMemberArgs),
    /// A member leaves the team (the membership is kept with its leave date).
    RemoveMember(MemberArgs),
    /// List a team's members.
    Members(MembersArgs),
}

/// A team id.
#[derive(Debug, Clone, clap::Args)]
pub struct TeamIdArg {
    /// The team id, e.g. 330106-T000007.
    pub team_id: String,
}

/// Arguments of `team create`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// Name of the team.
    #[arg(long)]
    pub name: String,

    /// Kind of organisation behind the team.
    #[arg(long, value_enum)]
    pub kind: TeamKind,

    /// The team is a registered organisation (needs --credit-code).
    #[arg(long, requires = "credit_code")]
    pub registered: bool,

    /// Unified social credit code (GB 32100) of a registered organisation.
    #[arg(long, value_name = "CODE", requires = "registered")]
    pub credit_code: Option<String>,

    /// A hub-type organisation.
    #[arg(long)]
    pub hub: bool,

    /// A support-type organisation.
    #[arg(long)]
    pub support: bool,

    /// The federation of teams this team belongs to.
    #[arg(long, value_name = "TEAM_ID")]
    pub parent_team_id: Option<String>,
}

/// Arguments of `team list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Names starting with this.
    #[arg(long)]
    pub name_prefix: Option<String>,

    /// Only teams of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<TeamKind>,

    /// Only teams in this federation of teams.
    #[arg(long, value_name = "TEAM_ID")]
    pub parent_team_id: Option<String>,

    #[command(flatten)]
    pub page: PageArgs,
}

/// The changes of `team update`; at least one is required.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = true)]
pub struct TeamChanges {
    /// New name.
    #[arg(long)]
    pub name: Option<String>,

    /// New kind.
    #[arg(long, value_enum)]
    pub kind: Option<TeamKind>,

    /// Whether the team is a hub-type organisation.
    #[arg(long, value_name = "true|false")]
    pub hub: Option<bool>,

    /// Whether the team is a support-type organisation.
    #[arg(long, value_name = "true|false")]
    pub support: Option<bool>,

    /// Join this federation of teams.
    #[arg(long, value_name = "TEAM_ID", conflicts_with = "leave_federation")]
    pub parent_team_id: Option<String>,

    /// Leave the federation of teams.
    #[arg(long)]
    pub leave_federation: bool,

    /// Whether the team is a registered organisation.
    #[arg(long, value_name = "true|false")]
    pub registered: Option<bool>,

    /// New unified social credit code.
    #[arg(long, value_name = "CODE")]
    pub credit_code: Option<String>,
}

/// Arguments of `team update`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// The team id, e.g. 330106-T000007.
    pub team_id: String,

    #[command(flatten)]
    pub changes: TeamChanges,
}

/// A team and a volunteer.
#[derive(Debug, Clone, clap::Args)]
pub struct MemberArgs {
    /// The team id, e.g. 330106-T000007.
    pub team_id: String,

    /// The volunteer number, e.g. 330106-00000042.
    pub volunteer_number: String,
}

/// Arguments of `team add-member`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddMemberArgs {
    #[command(flatten)]
    pub member: MemberArgs,

    /// The member's role in the team.
    #[arg(long, value_enum)]
    pub role: MemberRole,
}

/// Arguments of `team members`.
#[derive(Debug, Clone, clap::Args)]
pub struct MembersArgs {
    /// The team id, e.g. 330106-T000007.
    pub team_id: String,

    /// Also members who have left.
    #[arg(long)]
    pub include_former: bool,

    #[command(flatten)]
    pub page: PageArgs,
}

/// A team as printed.
pub fn record(team: &pb::Team) -> Record {
    Record::new()
        .field("team_id", team.team_id.clone())
        .field("name", team.name.clone())
        .field("kind", name(team_kind_name(team.kind)))
        .field("registered", team.registered)
        .field("credit_code", optional(&team.credit_code))
        .field("hub", team.hub)
        .field("support", team.support)
        .field("parent_team_id", optional(&team.parent_team_id))
        .field("active_member_count", team.active_member_count)
        .field("version", team.version)
        .field("created_at", timestamp(team.created_at.as_ref()))
}

/// A membership as printed.
pub fn member_record(member: &pb::TeamMember) -> Record {
    Record::new()
        .field("team_id", member.team_id.clone())
        .field("volunteer_number", member.volunteer_number.clone())
        .field("volunteer_name", member.volunteer_name.clone())
        .field("role", name(member_role_name(member.role)))
        .field("joined_at", timestamp(member.joined_at.as_ref()))
        .field("left_at", timestamp(member.left_at.as_ref()))
}

const LIST_COLUMNS: &[&str] =
    &["team_id", "name", "kind", "registered", "credit_code", "parent_team_id", "active_member_count"];

const MEMBER_COLUMNS: &[&str] = &["volunteer_number", "volunteer_name", "role", "joined_at", "left_at"];

/// Prints a team with the warnings the node attached.
fn print_team(console: &mut Console<'_>, team: Option<pb::Team>, warnings: &[String]) {
    let team = record(&team.unwrap_or_default());
    if console.is_json() {
        console.json(&serde_json::json!({ "team": team.to_json(), "warnings": warnings }));
    } else {
        console.single("team", &team);
    }
    console.warnings(warnings);
}

pub async fn run(command: TeamCommand, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let mut client = node.teams();
    match command {
        TeamCommand::Create(args) => {
            let response = client
                .create_team(pb::CreateTeamRequest {
                    name: args.name,
                    registered: args.registered,
                    credit_code: args.credit_code.unwrap_or_default(),
                    kind: args.kind.wire(),
                    hub: args.hub,
                    support: args.support,
                    parent_team_id: args.parent_team_id.unwrap_or_default(),
                })
                .await?
                .into_inner();
            print_team(console, response.team, &response.warnings);
        }
        TeamCommand::Get(args) => {
            let response = client.get_team(pb::GetTeamRequest { team_id: args.team_id }).await?.into_inner();
            console.single("team", &record(&response.team.unwrap_or_default()));
        }
        TeamCommand::List(args) => {
            let (teams, next) = pages(args.page.all, args.page.start(), |page_token| {
                let mut client = client.clone();
                let request = pb::ListTeamsRequest {
                    name_prefix: args.name_prefix.clone().unwrap_or_default(),
                    kind: args.kind.map_or(0, TeamKind::wire),
                    parent_team_id: args.parent_team_id.clone().unwrap_or_default(),
                    page_size: args.page.size(),
                    page_token,
                };
                async move {
                    let response = client.list_teams(request).await?.into_inner();
                    Ok((response.teams, response.next_page_token))
                }
            })
            .await?;
            let records: Vec<Record> = teams.iter().map(record).collect();
            console.list("teams", &records, LIST_COLUMNS, &next);
        }
        TeamCommand::Update(args) => {
            let changes = args.changes;
            let parent_team_id = if changes.leave_federation { Some(String::new()) } else { changes.parent_team_id };
            let response = client
                .update_team(pb::UpdateTeamRequest {
                    team_id: args.team_id,
                    name: changes.name,
                    kind: changes.kind.map(TeamKind::wire),
                    hub: changes.hub,
                    support: changes.support,
                    parent_team_id,
                    registered: changes.registered,
                    credit_code: changes.credit_code,
                })
                .await?
                .into_inner();
            print_team(console, response.team, &response.warnings);
        }
        TeamCommand::AddMember(args) => {
            let response = client
                .add_team_member(pb::AddTeamMemberRequest {
                    team_id: args.member.team_id,
                    volunteer_number: args.member.volunteer_number,
                    role: args.role.wire(),
                })
                .await?
                .into_inner();
            console.single("member", &member_record(&response.member.unwrap_or_default()));
        }
        TeamCommand::RemoveMember(args) => {
            let response = client
                .remove_team_member(pb::RemoveTeamMemberRequest {
                    team_id: args.team_id,
                    volunteer_number: args.volunteer_number,
                })
                .await?
                .into_inner();
            console.single("member", &member_record(&response.member.unwrap_or_default()));
        }
        TeamCommand::Members(args) => {
            let (members, next) = pages(args.page.all, args.page.start(), |page_token| {
                let mut client = client.clone();
                let request = pb::ListTeamMembersRequest {
                    team_id: args.team_id.clone(),
                    include_former: args.include_former,
                    page_size: args.page.size(),
                    page_token,
                };
                async move {
                    let response = client.list_team_members(request).await?.into_inner();
                    Ok((response.members, response.next_page_token))
                }
            })
            .await?;
            let records: Vec<Record> = members.iter().map(member_record).collect();
            console.list("members", &records, MEMBER_COLUMNS, &next);
        }
    }
    Ok(())
}
