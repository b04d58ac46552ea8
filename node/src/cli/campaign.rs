//! `ecovol campaign …`: selection campaigns (honours, `CampaignService`, docs/CAMPAIGNS.md). A province or city
//! issues a campaign with quotas for its children; a city splits its quota among its counties; a county nominates
//! its volunteers; the city endorses or rejects; the issuer selects; the results become honours at the home
//! county (`ecovol profile`).
//!
//! Every answer of the node is the campaign as this node holds it, with the nominations that reached it; every
//! command prints it the same way as `campaign show`.

use chrono::NaiveDate;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::campaign_service_client::CampaignServiceClient;
use serde_json::Value;

use super::connection::ConnectionArgs;
use super::console::{Console, Record, optional};
use super::failure::Failure;

/// Campaign commands.
#[derive(Debug, clap::Subcommand)]
pub enum CampaignCommand {
    /// Issue a campaign here (a province or a city), with the number of nominations of each child region.
    Issue(IssueArgs),
    /// Split this city's quota of a received campaign among its counties and pass it down.
    Quotas(QuotasArgs),
    /// Nominate a volunteer of this county (eligibility is checked by the node).
    Nominate(NominateArgs),
    /// Endorse or reject a nomination from one of this city's counties; endorsed ones go up to the issuer.
    Review(ReviewArgs),
    /// Select nominations (the issuer only); the results travel down to the volunteers' home counties.
    Select(SelectArgs),
    /// Show a campaign: its fields, its quotas and the nominations this node holds.
    Show(CampaignIdArg),
    /// List the campaigns this node holds (issued here or received from above).
    List,
}

/// A campaign id.
#[derive(Debug, Clone, clap::Args)]
pub struct CampaignIdArg {
    /// The campaign id, e.g. 320000-CA0001.
    pub campaign_id: String,
}

/// The number of nominations of one region (`--quota 320100=2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub region: String,
    pub nominations: u32,
}

impl Quota {
    fn wire(&self) -> pb::CampaignQuota {
        pb::CampaignQuota { region: self.region.clone(), nominations: self.nominations }
    }
}

/// Parses `REGION=N`: a six-digit division code and a number of nominations. Whether the region is a child of
/// this node and the number in range is the node's to say.
fn quota(text: &str) -> Result<Quota, String> {
    let wanted = "REGION=N, e.g. 320100=2 (a six-digit division code and a number of nominations)";
    let (region, number) = text.split_once('=').ok_or_else(|| format!("not {wanted}"))?;
    let region = region.trim();
    if region.len() != 6 || !region.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("\"{region}\" is not a six-digit division code; write {wanted}"));
    }
    let nominations = number
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("\"{}\" is not a whole number; write {wanted}", number.trim()))?;
    Ok(Quota { region: region.to_string(), nominations })
}

/// Parses a calendar date `YYYY-MM-DD`.
fn date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|error| format!("not a date like 2026-06-05: {error}"))
}

/// Arguments of `campaign issue`.
#[derive(Debug, Clone, clap::Args)]
pub struct IssueArgs {
    /// Title, e.g. 第1届最美生态环境志愿者 (at most 200 characters).
    #[arg(long)]
    pub title: String,

    /// The series the campaign belongs to (letters, digits, - or _), e.g. outstanding-eco-volunteers; a volunteer
    /// selected in an earlier edition of the series is not eligible again.
    #[arg(long)]
    pub series: String,

    /// The edition within the series (1, 2, …).
    #[arg(long)]
    pub edition: u32,

    /// First day of the nomination window (YYYY-MM-DD).
    #[arg(long, value_parser = date, value_name = "DATE")]
    pub open: NaiveDate,

    /// Last day of the nomination window (YYYY-MM-DD, inclusive).
    #[arg(long, value_parser = date, value_name = "DATE")]
    pub close: NaiveDate,

    /// Publication date of the results (YYYY-MM-DD), usually 5 March, 5 June or 5 December.
    #[arg(long, value_parser = date, value_name = "DATE")]
    pub publication: NaiveDate,

    /// Eligibility: at least this many confirmed service hours (including hours served in other counties).
    #[arg(long, value_name = "H", default_value_t = 0)]
    pub min_hours: u32,

    /// The nominations of one child region, REGION=N (repeat for each child), e.g. --quota 320100=2.
    #[arg(long = "quota", value_name = "REGION=N", value_parser = quota, required = true)]
    pub quotas: Vec<Quota>,
}

/// Arguments of `campaign quotas`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuotasArgs {
    /// The campaign id, e.g. 320000-CA0001.
    pub campaign_id: String,

    /// The nominations of one county, REGION=N (repeat for each county); together at most this city's quota.
    #[arg(long = "quota", value_name = "REGION=N", value_parser = quota, required = true)]
    pub quotas: Vec<Quota>,
}

/// Arguments of `campaign nominate`.
#[derive(Debug, Clone, clap::Args)]
pub struct NominateArgs {
    /// The campaign id, e.g. 320000-CA0001.
    pub campaign_id: String,

    /// The volunteer number, e.g. 320102-00000042.
    pub volunteer: String,

    /// What the volunteer did, for the selection (at most 2000 characters; travels up only with consent).
    #[arg(long, default_value = "")]
    pub story: String,

    /// The volunteer consented to their name and story going up and being published (without it only the
    /// pseudonymous key and the figures leave this office).
    #[arg(long)]
    pub consent_to_publicity: bool,

    /// You attest the volunteer is not staff of the eco-environment system (the node refuses without it).
    #[arg(long)]
    pub not_eco_system_staff: bool,

    /// You attest the service was outside the volunteer's job duties (the node refuses without it).
    #[arg(long)]
    pub outside_job_duties: bool,
}

/// Arguments of `campaign review`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReviewArgs {
    /// The campaign id, e.g. 320000-CA0001.
    pub campaign_id: String,

    /// The nomination id, as `campaign show` lists it.
    pub nomination_id: String,

    /// Endorse the nomination: it goes up to the issuer.
    #[arg(long, required_unless_present = "reject", conflicts_with = "reject")]
    pub endorse: bool,

    /// Reject the nomination: it cannot be selected.
    #[arg(long)]
    pub reject: bool,

    /// Why (at most 500 characters; travels up with the review).
    #[arg(long, default_value = "")]
    pub comment: String,
}

/// Arguments of `campaign select`.
#[derive(Debug, Clone, clap::Args)]
pub struct SelectArgs {
    /// The campaign id, e.g. 320000-CA0001.
    pub campaign_id: String,

    /// The nominations selected (endorsed ones, or direct ones of this node's own children).
    #[arg(required = true, value_name = "NOMINATION")]
    pub nomination_ids: Vec<String>,
}

// ----- reaching the node -----

type Client = CampaignServiceClient<super::connection::Authenticated>;

async fn connect(args: &ConnectionArgs, console: &mut Console<'_>) -> Result<Client, Failure> {
    Ok(super::connection::Node::connect(args, console).await?.campaigns())
}

// ----- what is printed -----

/// The campaign's own fields as printed (its quotas are a table of their own).
pub fn campaign_record(campaign: &pb::Campaign) -> Record {
    Record::new()
        .field("campaign_id", campaign.campaign_id.clone())
        .field("title", campaign.title.clone())
        .field("series", campaign.series.clone())
        .field("edition", campaign.edition)
        .field("issuer", campaign.issuer.clone())
        .field("state", campaign.state.clone())
        .field("nominations_open", campaign.nominations_open.clone())
        .field("nominations_close", campaign.nominations_close.clone())
        .field("publication_date", campaign.publication_date.clone())
        .field("min_confirmed_hours", campaign.min_confirmed_hours)
}

/// The campaign with its quotas, as JSON.
fn campaign_json(campaign: &pb::Campaign) -> Value {
    let mut json = campaign_record(campaign).to_json();
    if let Value::Object(fields) = &mut json {
        let quotas: Vec<Value> = campaign.quotas.iter().map(|q| quota_record(q).to_json()).collect();
        fields.insert("quotas".into(), Value::Array(quotas));
    }
    json
}

fn quota_record(quota: &pb::CampaignQuota) -> Record {
    Record::new().field("region", quota.region.clone()).field("nominations", quota.nominations)
}

const QUOTA_COLUMNS: &[&str] = &["region", "nominations"];

/// Confirmed minutes as hours with two decimals (`12.50`).
fn hours_text(minutes: u64) -> String {
    let hours_x100 = minutes * 100 / 60;
    format!("{}.{:02}", hours_x100 / 100, hours_x100 % 100)
}

/// A nomination as JSON: every field, the name and story `null` where they did not travel.
fn nomination_record(nomination: &pb::Nomination) -> Record {
    Record::new()
        .field("nomination_id", nomination.nomination_id.clone())
        .field("home", nomination.home.clone())
        .field("status", nomination.status.clone())
        .field("confirmed_minutes", nomination.confirmed_minutes)
        .field("star", nomination.star)
        .field("consent_to_publicity", nomination.consent_to_publicity)
        .field("name", optional(&nomination.name))
        .field("story", optional(&nomination.story))
        .field("review_comment", optional(&nomination.review_comment))
        .field("volunteer_key", nomination.volunteer_key.clone())
        .field("volunteer_number", optional(&nomination.volunteer_number))
}

/// A nomination as a table row: hours rather than minutes, and why a name is missing.
fn nomination_row(nomination: &pb::Nomination) -> Record {
    let name = if !nomination.consent_to_publicity {
        Value::String("(no consent)".into())
    } else {
        optional(&nomination.name)
    };
    Record::new()
        .field("nomination_id", nomination.nomination_id.clone())
        .field("home", nomination.home.clone())
        .field("status", nomination.status.clone())
        .field("hours", hours_text(nomination.confirmed_minutes))
        .field("star", nomination.star)
        .field("name", name)
        .field("review_comment", optional(&nomination.review_comment))
}

const NOMINATION_COLUMNS: &[&str] = &["nomination_id", "home", "status", "hours", "star", "name", "review_comment"];

const LIST_COLUMNS: &[&str] =
    &["campaign_id", "title", "edition", "issuer", "state", "nominations_close", "publication_date"];

/// Prints a campaign answer: `{"campaign": {…, "quotas": […]}, "nominations": […]}` as JSON, else the campaign's
/// fields, its quotas and the nominations this node holds.
fn print_campaign(console: &mut Console<'_>, response: &pb::CampaignResponse) {
    let campaign = response.campaign.clone().unwrap_or_default();
    if console.is_json() {
        let nominations: Vec<Value> = response.nominations.iter().map(|n| nomination_record(n).to_json()).collect();
        console.json(&serde_json::json!({ "campaign": campaign_json(&campaign), "nominations": nominations }));
        return;
    }
    console.single("campaign", &campaign_record(&campaign));
    console.print("\nquotas (nominations per region):\n");
    let quotas: Vec<Record> = campaign.quotas.iter().map(quota_record).collect();
    console.list("quotas", &quotas, QUOTA_COLUMNS, "");
    console.print("\nnominations held here (names only with the volunteer's consent to publicity):\n");
    let rows: Vec<Record> = response.nominations.iter().map(nomination_row).collect();
    console.list("nominations", &rows, NOMINATION_COLUMNS, "");
}

/// What usually comes next, on standard error.
fn next_step(command: &str, campaign: &pb::Campaign) -> Option<String> {
    let id = &campaign.campaign_id;
    match command {
        "issue" => Some(format!(
            "next: each region named receives {id} from this node; a city splits its quota with `ecovol campaign \
             quotas {id} --quota COUNTY=N …`, a county nominates from {} to {}",
            campaign.nominations_open, campaign.nominations_close
        )),
        "quotas" => Some(format!(
            "next: the counties receive {id} and nominate with `ecovol campaign nominate {id} VOLUNTEER …` from {} to \
             {}",
            campaign.nominations_open, campaign.nominations_close
        )),
        "nominate" => Some(
            "next: the nomination goes up; the level above reviews it (or selects from it, if it issued the campaign)"
                .into(),
        ),
        "select" => Some(format!(
            "next: the results travel down to the home counties, where they show in `ecovol profile VOLUNTEER` \
             (publication: {})",
            campaign.publication_date
        )),
        _ => None,
    }
}

pub async fn run(
    command: CampaignCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let mut client = connect(connection, console).await?;
    let (verb, response) = match command {
        CampaignCommand::List => {
            let campaigns = client.list_campaigns(pb::ListCampaignsRequest {}).await?.into_inner().campaigns;
            if console.is_json() {
                let all: Vec<Value> = campaigns.iter().map(campaign_json).collect();
                console.json(&serde_json::json!({ "campaigns": all }));
            } else {
                let records: Vec<Record> = campaigns.iter().map(campaign_record).collect();
                console.list("campaigns", &records, LIST_COLUMNS, "");
            }
            return Ok(());
        }
        CampaignCommand::Issue(args) => {
            let request = pb::IssueCampaignRequest {
                title: args.title,
                series: args.series,
                edition: args.edition,
                nominations_open: args.open.to_string(),
                nominations_close: args.close.to_string(),
                publication_date: args.publication.to_string(),
                min_confirmed_hours: args.min_hours,
                quotas: args.quotas.iter().map(Quota::wire).collect(),
            };
            ("issue", client.issue_campaign(request).await?)
        }
        CampaignCommand::Quotas(args) => {
            let request = pb::SetQuotasRequest {
                campaign_id: args.campaign_id,
                quotas: args.quotas.iter().map(Quota::wire).collect(),
            };
            ("quotas", client.set_quotas(request).await?)
        }
        CampaignCommand::Nominate(args) => {
            let volunteer = args.volunteer.trim().to_string();
            let request = pb::NominateRequest {
                campaign_id: args.campaign_id,
                volunteer_number: volunteer.clone(),
                story: args.story,
                consent_to_publicity: args.consent_to_publicity,
                not_eco_system_staff: args.not_eco_system_staff,
                service_outside_job_duties: args.outside_job_duties,
            };
            let response = client.nominate(request).await?;
            // The answer holds every nomination of this node; the new one is the volunteer's.
            if let Some(nomination) = response.get_ref().nominations.iter().find(|n| n.volunteer_number == volunteer) {
                console.note(&format!("volunteer {volunteer} nominated as {}", nomination.nomination_id));
            }
            ("nominate", response)
        }
        CampaignCommand::Review(args) => {
            let request = pb::ReviewRequest {
                campaign_id: args.campaign_id,
                nomination_id: args.nomination_id,
                endorse: args.endorse,
                comment: args.comment,
            };
            ("review", client.review(request).await?)
        }
        CampaignCommand::Select(args) => {
            let request = pb::SelectRequest { campaign_id: args.campaign_id, nomination_ids: args.nomination_ids };
            ("select", client.select(request).await?)
        }
        CampaignCommand::Show(args) => {
            ("show", client.get_campaign(pb::CampaignRequest { campaign_id: args.campaign_id }).await?)
        }
    };
    let response = response.into_inner();
    print_campaign(console, &response);
    if let Some(next) = next_step(verb, &response.campaign.unwrap_or_default()) {
        console.note(&next);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use clap::error::ErrorKind;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<CampaignCommand, clap::Error> {
        let all = ["ecovol", "campaign"].into_iter().chain(args.iter().copied());
        Cli::try_parse_from(all).map(|cli| match cli.command {
            Command::Campaign(command) => command,
            other => panic!("not a campaign command: {other:?}"),
        })
    }

    fn kind(args: &[&str]) -> Option<ErrorKind> {
        parse(args).err().map(|error| error.kind())
    }

    #[test]
    fn quotas_read_region_equals_number() {
        let check = |text: &str, expected: Option<(&str, u32)>| {
            let got = quota(text).ok().map(|q| (q.region, q.nominations));
            assert_eq!(got, expected.map(|(region, n)| (region.to_string(), n)), "{text}");
        };
        check("320100=2", Some(("320100", 2)));
        check(" 320102 = 10 ", Some(("320102", 10)));
        check("320100", None);
        check("320100=", None);
        check("320100=two", None);
        check("320100=-1", None);
        check("32010=1", None);
        check("nanjing=1", None);
        check("=1", None);
    }

    #[test]
    fn issue_reads_dates_and_quotas() {
        let CampaignCommand::Issue(args) = parse(&[
            "issue",
            "--title",
            "第1届最美生态环境志愿者",
            "--series",
            "outstanding-eco-volunteers",
            "--edition",
            "1",
            "--open",
            "2026-03-01",
            "--close",
            "2026-04-30",
            "--publication",
            "2026-06-05",
            "--quota",
            "320100=2",
            "--quota",
            "320200=1",
        ])
        .unwrap() else {
            panic!("not issue")
        };
        assert_eq!(args.publication, NaiveDate::from_ymd_opt(2026, 6, 5).unwrap());
        assert_eq!(args.min_hours, 0);
        assert_eq!(args.quotas.iter().map(|q| q.nominations).sum::<u32>(), 3);
        let without_quota = ["issue", "--title", "t", "--series", "s", "--edition", "1"];
        let dates = ["--open", "2026-03-01", "--close", "2026-04-30", "--publication", "2026-06-05"];
        assert_eq!(kind(&[&without_quota[..], &dates[..]].concat()), Some(ErrorKind::MissingRequiredArgument));
        let bad_quota = [&without_quota[..], &dates[..], &["--quota", "320100:2"]].concat();
        assert_eq!(kind(&bad_quota), Some(ErrorKind::ValueValidation));
        let bad_date = [&without_quota[..], &["--open", "5 June", "--close", "2026-04-30"]].concat();
        assert_eq!(
            kind(&[&bad_date[..], &["--publication", "2026-06-05", "--quota", "320100=1"]].concat()),
            Some(ErrorKind::ValueValidation)
        );
    }

    #[test]
    fn review_takes_exactly_one_verdict_and_select_at_least_one_nomination() {
        let CampaignCommand::Review(args) =
            parse(&["review", "320000-CA0001", "320102-0123456789ab", "--reject"]).unwrap()
        else {
            panic!("not review")
        };
        assert!(args.reject && !args.endorse);
        assert_eq!(kind(&["review", "320000-CA0001", "N"]), Some(ErrorKind::MissingRequiredArgument));
        assert_eq!(kind(&["review", "320000-CA0001", "N", "--endorse", "--reject"]), Some(ErrorKind::ArgumentConflict));
        assert_eq!(kind(&["select", "320000-CA0001"]), Some(ErrorKind::MissingRequiredArgument));
        assert!(parse(&["select", "320000-CA0001", "a", "b"]).is_ok());
        assert!(parse(&["nominate", "320000-CA0001", "320102-00000001", "--not-eco-system-staff"]).is_ok());
    }

    #[test]
    fn a_nomination_without_consent_shows_why_it_has_no_name() {
        let nomination = pb::Nomination {
            nomination_id: "320104-0123456789ab".into(),
            home: "320104".into(),
            status: "rejected".into(),
            confirmed_minutes: 150,
            review_comment: "服务时长证明不足".into(),
            ..Default::default()
        };
        let row = nomination_row(&nomination);
        assert_eq!(row.get("name"), Some(&Value::String("(no consent)".into())));
        assert_eq!(row.get("hours"), Some(&Value::String("2.50".into())));
        assert_eq!(nomination_record(&nomination).get("name"), Some(&Value::Null));
    }
}
