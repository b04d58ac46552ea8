//! `ecovol certificate …`: service certificates (`CertificateService`): issue, verify, get; the printable page can
//! be written to a file.

use std::path::PathBuf;

use chrono::NaiveDate;
use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node};
use super::console::{Console, Record, timestamp};
use super::failure::Failure;
use super::stats::parse_date;

/// Certificate commands.
#[derive(Debug, clap::Subcommand)]
pub enum CertificateCommand {
    /// Issue a certificate of a volunteer's confirmed hours in a period (staff).
    Issue(IssueArgs),
    /// Check that a certificate exists and is intact (any account).
    Verify(NumberArg),
    /// Show a certificate (staff, or the volunteer it certifies).
    Get(GetArgs),
}

/// Arguments of `certificate issue`.
#[derive(Debug, Clone, clap::Args)]
pub struct IssueArgs {
    /// The volunteer number, e.g. 330106-00000042.
    pub volunteer: String,

    /// First day of the period (YYYY-MM-DD, China time), inclusive.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub from: NaiveDate,

    /// Last day of the period (YYYY-MM-DD, China time), inclusive.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub to: NaiveDate,

    /// Also write the printable HTML page to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// A certificate number.
#[derive(Debug, Clone, clap::Args)]
pub struct NumberArg {
    /// The certificate number, e.g. 330106-C2026000001.
    pub number: String,
}

/// Arguments of `certificate get`.
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// The certificate number, e.g. 330106-C2026000001.
    pub number: String,

    /// Also write the printable HTML page to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

fn certificate_record(certificate: &pb::Certificate) -> Record {
    let lines: Vec<serde_json::Value> = certificate
        .lines
        .iter()
        .map(|line| {
            Record::new()
                .field("record_id", line.record_id.clone())
                .field("project_id", line.project_id.clone())
                .field("project_title", line.project_title.clone())
                .field("start_time", timestamp(line.start_time.as_ref()))
                .field("end_time", timestamp(line.end_time.as_ref()))
                .field("hours", super::stats::hours(u64::from(line.hours_x100)))
                .field("content", line.content.clone())
                .to_json()
        })
        .collect();
    let document = match pb::IdentityDocumentType::try_from(certificate.identity_document_type) {
        Ok(pb::IdentityDocumentType::ResidencePermit) => "residence-permit",
        Ok(pb::IdentityDocumentType::ResidentIdentityCard) => "resident-identity-card",
        _ => "-",
    };
    Record::new()
        .field("certificate_number", certificate.certificate_number.clone())
        .field("volunteer_number", certificate.volunteer_number.clone())
        .field("volunteer_name", certificate.volunteer_name.clone())
        .field("identity_document", document)
        .field("identity_number", certificate.masked_identity_number.clone())
        .field("period", format!("{} to {}", certificate.period_start_date, certificate.period_end_date))
        .field("total_hours", certificate.total_hours.clone())
        .field("issuer", format!("{} ({})", certificate.issuer_name, certificate.issuer_code))
        .field("issue_date", certificate.issue_date.clone())
        .field("content_sha256", certificate.content_sha256.clone())
        .field("lines", serde_json::Value::Array(lines))
}

fn write_html(path: Option<PathBuf>, html: &str, console: &mut Console<'_>) -> Result<(), Failure> {
    if let Some(path) = path {
        std::fs::write(&path, html).map_err(|error| Failure::Failed(format!("--html {}: {error}", path.display())))?;
        console.note(&format!("printable page written to {}", path.display()));
    }
    Ok(())
}

/// Runs a certificate command.
pub async fn run(
    command: CertificateCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let mut client = node.certificates();
    match command {
        CertificateCommand::Issue(args) => {
            let answer = client
                .issue_certificate(pb::IssueCertificateRequest {
                    volunteer_number: args.volunteer,
                    start_date: args.from.to_string(),
                    end_date: args.to.to_string(),
                })
                .await?
                .into_inner();
            let certificate = answer.certificate.unwrap_or_default();
            console.single("certificate", &certificate_record(&certificate));
            write_html(args.html, &answer.html, console)
        }
        CertificateCommand::Get(args) => {
            let answer = client
                .get_certificate(pb::GetCertificateRequest { certificate_number: args.number })
                .await?
                .into_inner();
            let certificate = answer.certificate.unwrap_or_default();
            console.single("certificate", &certificate_record(&certificate));
            write_html(args.html, &answer.html, console)
        }
        CertificateCommand::Verify(args) => {
            let answer = client
                .verify_certificate(pb::VerifyCertificateRequest { certificate_number: args.number })
                .await?
                .into_inner();
            let record = Record::new()
                .field("valid", answer.valid)
                .field("certificate_number", answer.certificate_number)
                .field("volunteer_number", answer.volunteer_number)
                .field("volunteer_name", answer.volunteer_name)
                .field("period", format!("{} to {}", answer.period_start_date, answer.period_end_date))
                .field("total_hours", super::stats::hours(answer.total_hours_x100))
                .field("issuer", answer.issuer_name)
                .field("issued_at", timestamp(answer.issued_at.as_ref()))
                .field("content_sha256", answer.content_sha256);
            console.single("verification", &record);
            if answer.valid {
                Ok(())
            } else {
                Err(Failure::Failed("the certificate's content does not match its hash: it was altered".into()))
            }
        }
    }
}
