//! `ecovol signup …`: sign-ups to projects, the waitlist and cancellations (`SignUpService`).

use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node, PageArgs, pages};
use super::console::{Console, Record, name, timestamp};
use super::failure::Failure;
use super::project::printed;

/// Where a sign-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignUpStatus {
    Accepted,
    Waitlisted,
    Cancelled,
}

impl SignUpStatus {
    /// The value as sent on the wire.
    pub fn wire(self) -> i32 {
        let status = match self {
            SignUpStatus::Accepted => pb::SignUpStatus::Accepted,
            SignUpStatus::Waitlisted => pb::SignUpStatus::Waitlisted,
            SignUpStatus::Cancelled => pb::SignUpStatus::Cancelled,
        };
        status as i32
    }
}

fn status_name(value: i32) -> Option<String> {
    printed(value, pb::SignUpStatus::try_from(value).ok().map(|status| status.as_str_name()), "SIGN_UP_STATUS_")
}

/// Sign-up commands.
#[derive(Debug, clap::Subcommand)]
pub enum SignupCommand {
    /// Sign a volunteer up: a seat while seats remain, else a place on the waitlist.
    Add(AddArgs),
    /// Cancel a sign-up; a freed seat goes to the first on the waitlist at once.
    Cancel(SignUpArgs),
    /// List a project's sign-ups (--project) or a volunteer's (--volunteer).
    List(ListArgs),
}

/// A project and a volunteer.
#[derive(Debug, Clone, clap::Args)]
pub struct SignUpArgs {
    /// The project id, e.g. 330106-P000007.
    pub project_id: String,

    /// The volunteer number, e.g. 330106-00000042.
    pub volunteer_number: String,
}

/// Arguments of `signup add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub sign_up: SignUpArgs,

    /// A key naming this request: repeating the command with the same key returns the first answer.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

/// Arguments of `signup list`.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "owner", required = true, multiple = false, args = ["project", "volunteer"])]
pub struct ListArgs {
    /// The project's sign-ups (waitlisted ones in waitlist order).
    #[arg(long, value_name = "PROJECT_ID")]
    pub project: Option<String>,

    /// The volunteer's sign-ups.
    #[arg(long, value_name = "VOLUNTEER_NUMBER")]
    pub volunteer: Option<String>,

    /// Only sign-ups in this state.
    #[arg(long, value_enum)]
    pub status: Option<SignUpStatus>,

    #[command(flatten)]
    pub page: PageArgs,
}

/// A sign-up as printed.
pub fn record(sign_up: &pb::SignUp) -> Record {
    Record::new()
        .field("project_id", sign_up.project_id.clone())
        .field("volunteer_number", sign_up.volunteer_number.clone())
        .field("status", name(status_name(sign_up.status)))
        .field("waitlist_position", sign_up.waitlist_position)
        .field("created_at", timestamp(sign_up.created_at.as_ref()))
        .field("updated_at", timestamp(sign_up.updated_at.as_ref()))
}

const LIST_COLUMNS: &[&str] = &["project_id", "volunteer_number", "status", "waitlist_position", "created_at"];

pub async fn run(
    command: SignupCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let mut client = node.sign_ups();
    match command {
        SignupCommand::Add(args) => {
            let response = client
                .sign_up(pb::SignUpRequest {
                    project_id: args.sign_up.project_id,
                    volunteer_number: args.sign_up.volunteer_number,
                    idempotency_key: args.idempotency_key.unwrap_or_default(),
                })
                .await?
                .into_inner();
            let sign_up = record(&response.sign_up.unwrap_or_default());
            if console.is_json() {
                console.json(&serde_json::json!({ "sign_up": sign_up.to_json(), "already": response.already }));
            } else {
                console.single("sign_up", &sign_up);
                if response.already {
                    console.note("note: a repeated request: this is the first answer");
                }
            }
        }
        SignupCommand::Cancel(args) => {
            let response = client
                .cancel_sign_up(pb::CancelSignUpRequest {
                    project_id: args.project_id,
                    volunteer_number: args.volunteer_number,
                })
                .await?
                .into_inner();
            let sign_up = record(&response.sign_up.unwrap_or_default());
            if console.is_json() {
                console.json(&serde_json::json!({
                    "sign_up": sign_up.to_json(),
                    "promoted_volunteer_number": response.promoted_volunteer_number,
                }));
            } else {
                console.single("sign_up", &sign_up);
                if !response.promoted_volunteer_number.is_empty() {
                    console.note(&format!("promoted from the waitlist: {}", response.promoted_volunteer_number));
                }
            }
        }
        SignupCommand::List(args) => {
            let (sign_ups, next) = pages(args.page.all, args.page.start(), |page_token| {
                let mut client = client.clone();
                let request = pb::ListSignUpsRequest {
                    project_id: args.project.clone().unwrap_or_default(),
                    volunteer_number: args.volunteer.clone().unwrap_or_default(),
                    status: args.status.map_or(0, SignUpStatus::wire),
                    page_size: args.page.size(),
                    page_token,
                };
                async move {
                    let response = client.list_sign_ups(request).await?.into_inner();
                    Ok((response.sign_ups, response.next_page_token))
                }
            })
            .await?;
            let records: Vec<Record> = sign_ups.iter().map(record).collect();
            console.list("sign_ups", &records, LIST_COLUMNS, &next);
        }
    }
    Ok(())
}
