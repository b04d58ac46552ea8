//! `ecovol volunteer …`: the office's register of volunteers (`VolunteerService`).
//!
//! The identity number goes to the node once, at registration, and comes back only through the audited
//! `reveal`; everything else names a volunteer by the volunteer number the node assigned.

use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node, PageArgs, pages};
use super::console::{Console, Record, name, optional, timestamp};
use super::failure::Failure;
use super::vocabulary::{
    Gender, GuardianConsent, PoliticalStatus, gender_name, guardian_consent_name, political_status_name,
    volunteer_status_name,
};

/// Volunteer commands.
#[derive(Debug, clap::Subcommand)]
pub enum VolunteerCommand {
    /// Register a volunteer (needs the volunteer's consent to processing of personal information).
    Register(RegisterArgs),
    /// Show one volunteer.
    Get(NumberArg),
    /// Search volunteers by name prefix, phone, number, skill or team.
    Search(SearchArgs),
    /// Change a volunteer's record; every change is kept as a new version with its reason.
    Update(UpdateArgs),
    /// Mark a volunteer inactive (the record and its history stay).
    Deactivate(ReasonArgs),
    /// Show every version of a volunteer's record, with who changed it and why.
    History(NumberArg),
    /// Show a volunteer's identity number (operator only; written to the audit trail with the reason).
    Reveal(ReasonArgs),
}

/// A volunteer number.
#[derive(Debug, Clone, clap::Args)]
pub struct NumberArg {
    /// The volunteer number, e.g. 330106-00000042.
    pub number: String,
}

/// A volunteer number and the reason for acting on it.
#[derive(Debug, Clone, clap::Args)]
pub struct ReasonArgs {
    /// The volunteer number, e.g. 330106-00000042.
    pub number: String,

    /// Why (kept with the record and in the audit trail).
    #[arg(long)]
    pub reason: String,
}

/// Arguments of `volunteer register`.
#[derive(Debug, Clone, clap::Args)]
pub struct RegisterArgs {
    /// Full name as on the identity card.
    #[arg(long)]
    pub name: String,

    /// Resident identity number (GB 11643) or HK/Macao/Taiwan residence-permit number; never shown again.
    #[arg(long, value_name = "NUMBER")]
    pub identity_number: String,

    /// Mainland mobile number (11 digits starting with 1).
    #[arg(long)]
    pub phone: String,

    /// Gender; optional, checked against the identity number when given.
    #[arg(long, value_enum)]
    pub gender: Option<Gender>,

    /// Birth date (YYYY-MM-DD); optional, checked against the identity number when given.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub birth_date: Option<String>,

    /// A skill; repeat for several.
    #[arg(long = "skill", value_name = "SKILL")]
    pub skills: Vec<String>,

    /// Political status.
    #[arg(long, value_enum)]
    pub political_status: PoliticalStatus,

    /// The volunteer consents to the processing of their personal information (PIPL art. 13); required.
    #[arg(long)]
    pub consent: bool,

    /// For a minor: who consented (under 14, a parent: PIPL art. 31).
    #[arg(long, value_enum)]
    pub guardian_consent: Option<GuardianConsent>,

    /// A 16- or 17-year-old living on their own income, counted as an adult (Civil Code art. 18).
    #[arg(long)]
    pub self_supporting: bool,

    /// GB/T 2260 division code of the volunteer's home county, e.g. 330106.
    #[arg(long, value_name = "CODE")]
    pub home_division_code: String,
}

/// Arguments of `volunteer search`.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// Names starting with this.
    #[arg(long)]
    pub name_prefix: Option<String>,

    /// This exact mobile number.
    #[arg(long)]
    pub phone: Option<String>,

    /// This volunteer number.
    #[arg(long)]
    pub number: Option<String>,

    /// Volunteers with this skill.
    #[arg(long)]
    pub skill: Option<String>,

    /// Current members of this team.
    #[arg(long, value_name = "TEAM_ID")]
    pub team_id: Option<String>,

    /// Also inactive volunteers.
    #[arg(long)]
    pub include_inactive: bool,

    #[command(flatten)]
    pub page: PageArgs,
}

/// The changes of `volunteer update`; at least one is required.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = true)]
pub struct VolunteerChanges {
    /// New name.
    #[arg(long)]
    pub name: Option<String>,

    /// New mobile number.
    #[arg(long)]
    pub phone: Option<String>,

    /// Replace the skills with these; repeat for several.
    #[arg(long = "skill", value_name = "SKILL", conflicts_with = "clear_skills")]
    pub skills: Vec<String>,

    /// Remove every skill.
    #[arg(long)]
    pub clear_skills: bool,

    /// New political status.
    #[arg(long, value_enum)]
    pub political_status: Option<PoliticalStatus>,

    /// Who consented for a minor.
    #[arg(long, value_enum)]
    pub guardian_consent: Option<GuardianConsent>,

    /// Whether a 16- or 17-year-old lives on their own income.
    #[arg(long, value_name = "true|false")]
    pub self_supporting: Option<bool>,

    /// New home division code.
    #[arg(long, value_name = "CODE")]
    pub home_division_code: Option<String>,
}

/// Arguments of `volunteer update`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// The volunteer number, e.g. 330106-00000042.
    pub number: String,

    /// Why the record changes (kept with the new version).
    #[arg(long)]
    pub reason: String,

    /// Refuse the update unless the record is still at this version (see `volunteer get`).
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u32>,

    #[command(flatten)]
    pub changes: VolunteerChanges,
}

/// A volunteer as printed.
pub fn record(volunteer: &pb::Volunteer) -> Record {
    Record::new()
        .field("volunteer_number", volunteer.volunteer_number.clone())
        .field("name", volunteer.name.clone())
        .field("phone", optional(&volunteer.phone))
        .field("gender", name(gender_name(volunteer.gender)))
        .field("birth_date", optional(&volunteer.birth_date))
        .field("skills", volunteer.skills.clone())
        .field("political_status", name(political_status_name(volunteer.political_status)))
        .field("guardian_consent", name(guardian_consent_name(volunteer.guardian_consent)))
        .field("self_supporting", volunteer.self_supporting)
        .field("home_division_code", optional(&volunteer.home_division_code))
        .field("residence_permit", volunteer.residence_permit)
        .field("status", name(volunteer_status_name(volunteer.status)))
        .field("team_ids", volunteer.team_ids.clone())
        .field("version", volunteer.version)
        .field("registered_at", timestamp(volunteer.registered_at.as_ref()))
        .field("updated_at", timestamp(volunteer.updated_at.as_ref()))
}

/// A version of a volunteer's record as JSON: the record as it was, and who changed it, when and why.
fn version_json(version: &pb::VolunteerVersion) -> serde_json::Value {
    serde_json::json!({
        "version": version.version,
        "volunteer": record(&version.volunteer.clone().unwrap_or_default()).to_json(),
        "changed_by_account_id": version.changed_by_account_id,
        "changed_at": timestamp(version.changed_at.as_ref()),
        "reason": version.reason,
    })
}

/// A version of a volunteer's record as one table row.
fn version_row(version: &pb::VolunteerVersion) -> Record {
    let volunteer = version.volunteer.clone().unwrap_or_default();
    Record::new()
        .field("version", version.version)
        .field("changed_at", timestamp(version.changed_at.as_ref()))
        .field("changed_by", version.changed_by_account_id.clone())
        .field("reason", optional(&version.reason))
        .field("name", volunteer.name)
        .field("phone", optional(&volunteer.phone))
        .field("status", name(volunteer_status_name(volunteer.status)))
}

const HISTORY_COLUMNS: &[&str] = &["version", "changed_at", "changed_by", "reason", "name", "phone", "status"];

const LIST_COLUMNS: &[&str] =
    &["volunteer_number", "name", "phone", "gender", "birth_date", "skills", "status", "team_ids"];

pub async fn run(
    command: VolunteerCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let mut client = node.volunteers();
    match command {
        VolunteerCommand::Register(args) => {
            let request = pb::RegisterVolunteerRequest {
                name: args.name,
                identity_number: args.identity_number,
                phone: args.phone,
                gender: args.gender.map_or(0, Gender::wire),
                birth_date: args.birth_date.unwrap_or_default(),
                skills: args.skills,
                political_status: args.political_status.wire(),
                consent_to_processing: args.consent,
                guardian_consent: args.guardian_consent.map_or(0, GuardianConsent::wire),
                self_supporting: args.self_supporting,
                home_division_code: args.home_division_code,
            };
            let response = client.register_volunteer(request).await?.into_inner();
            console.single("volunteer", &record(&response.volunteer.unwrap_or_default()));
        }
        VolunteerCommand::Get(args) => {
            let response =
                client.get_volunteer(pb::GetVolunteerRequest { volunteer_number: args.number }).await?.into_inner();
            console.single("volunteer", &record(&response.volunteer.unwrap_or_default()));
        }
        VolunteerCommand::Search(args) => {
            let (volunteers, next) = pages(args.page.all, args.page.start(), |page_token| {
                let mut client = client.clone();
                let request = pb::SearchVolunteersRequest {
                    name_prefix: args.name_prefix.clone().unwrap_or_default(),
                    phone: args.phone.clone().unwrap_or_default(),
                    volunteer_number: args.number.clone().unwrap_or_default(),
                    skill: args.skill.clone().unwrap_or_default(),
                    team_id: args.team_id.clone().unwrap_or_default(),
                    include_inactive: args.include_inactive,
                    page_size: args.page.size(),
                    page_token,
                };
                async move {
                    let response = client.search_volunteers(request).await?.into_inner();
                    Ok((response.volunteers, response.next_page_token))
                }
            })
            .await?;
            let records: Vec<Record> = volunteers.iter().map(record).collect();
            console.list("volunteers", &records, LIST_COLUMNS, &next);
        }
        VolunteerCommand::Update(args) => {
            let changes = args.changes;
            let replace_skills = changes.clear_skills || !changes.skills.is_empty();
            let skills = replace_skills.then_some(pb::SkillList { skills: changes.skills });
            let request = pb::UpdateVolunteerRequest {
                volunteer_number: args.number,
                expected_version: args.expected_version.unwrap_or(0),
                name: changes.name,
                phone: changes.phone,
                skills,
                political_status: changes.political_status.map(PoliticalStatus::wire),
                guardian_consent: changes.guardian_consent.map(GuardianConsent::wire),
                self_supporting: changes.self_supporting,
                home_division_code: changes.home_division_code,
                reason: args.reason,
            };
            let response = client.update_volunteer(request).await?.into_inner();
            console.single("volunteer", &record(&response.volunteer.unwrap_or_default()));
        }
        VolunteerCommand::Deactivate(args) => {
            let response = client
                .deactivate_volunteer(pb::DeactivateVolunteerRequest {
                    volunteer_number: args.number,
                    reason: args.reason,
                })
                .await?
                .into_inner();
            console.single("volunteer", &record(&response.volunteer.unwrap_or_default()));
        }
        VolunteerCommand::History(args) => {
            // One volunteer's versions are few: always every page.
            let (versions, _) = pages(true, String::new(), |page_token| {
                let mut client = client.clone();
                let request = pb::ListVolunteerVersionsRequest {
                    volunteer_number: args.number.clone(),
                    page_size: 0,
                    page_token,
                };
                async move {
                    let response = client.list_volunteer_versions(request).await?.into_inner();
                    Ok((response.versions, response.next_page_token))
                }
            })
            .await?;
            if console.is_json() {
                let versions: Vec<_> = versions.iter().map(version_json).collect();
                console.json(&serde_json::json!({ "versions": versions, "next_page_token": "" }));
            } else {
                let rows: Vec<Record> = versions.iter().map(version_row).collect();
                console.list("versions", &rows, HISTORY_COLUMNS, "");
            }
        }
        VolunteerCommand::Reveal(args) => {
            let response = client
                .reveal_identity_number(pb::RevealIdentityNumberRequest {
                    volunteer_number: args.number.clone(),
                    reason: args.reason,
                })
                .await?
                .into_inner();
            if console.is_json() {
                console.json(&serde_json::json!({ "identity_number": response.identity_number }));
            } else {
                console.single(
                    "identity_number",
                    &Record::new()
                        .field("volunteer_number", args.number)
                        .field("identity_number", response.identity_number),
                );
            }
            console
                .note("this reveal is written to the audit trail with your reason; do not copy the number elsewhere");
        }
    }
    Ok(())
}
