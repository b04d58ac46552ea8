//! Reaching a running node: one channel per invocation, TLS when the node is `https://`, and the metadata every
//! call carries (`authorization: Bearer <token>`, a fresh `x-request-id` that the node writes to its audit trail).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use ecovol_proto::v1::{
    account_service_client::AccountServiceClient, audit_service_client::AuditServiceClient,
    node_service_client::NodeServiceClient, site_service_client::SiteServiceClient,
    team_service_client::TeamServiceClient, volunteer_service_client::VolunteerServiceClient,
};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use super::console::Console;
use super::failure::Failure;

/// How long to wait for the TCP (and TLS) connection before giving up.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long one call may take before it is abandoned.
const CALL_TIMEOUT_MS: u64 = 60_000;

/// Where the node is and how to authenticate to it (global options of every client command).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct ConnectionArgs {
    /// Address of the node's office API.
    #[arg(long, global = true, env = "ECOVOL_NODE", default_value = "http://127.0.0.1:7070", value_name = "URL")]
    pub node: String,

    /// Bearer token of your account (shown once when the account was created).
    #[arg(long, global = true, env = "ECOVOL_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// CA certificate (PEM) to trust for an https:// node, e.g. the office's own CA.
    #[arg(long, global = true, env = "ECOVOL_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// TLS server name to expect in the node's certificate, if it differs from the host in --node.
    #[arg(long, global = true, value_name = "NAME")]
    pub domain: Option<String>,

    /// Client certificate (PEM) to sign in with instead of a token, on an https:// node whose operator bound
    /// its SHA-256 to your account. Needs --key.
    #[arg(long, global = true, env = "ECOVOL_CERT", value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of --cert.
    #[arg(long, global = true, env = "ECOVOL_KEY", value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
}

/// Adds the caller's credentials and a request id to every call.
#[derive(Clone)]
pub struct Credentials {
    authorization: Option<AsciiMetadataValue>,
}

impl Credentials {
    /// Checks the token can travel as a header.
    pub fn new(token: Option<&str>) -> Result<Self, Failure> {
        let authorization = token
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(|token| {
                MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| Failure::Usage("--token holds characters a token never has (copy it again)".into()))
            })
            .transpose()?;
        Ok(Self { authorization })
    }
}

/// A request id the node writes to the audit trail, so one call can be traced from the terminal to the record.
pub fn new_request_id() -> String {
    format!("cli-{:016x}", rand::random::<u64>())
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(authorization) = &self.authorization {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        let request_id =
            MetadataValue::try_from(new_request_id()).map_err(|_| Status::internal("request id is not ASCII"))?;
        request.metadata_mut().insert("x-request-id", request_id);
        Ok(request)
    }
}

pub type Authenticated = InterceptedService<Channel, Credentials>;

/// The clients of one invocation, sharing one channel.
pub struct Node {
    channel: Channel,
    credentials: Credentials,
}

impl Node {
    /// Connects to the node named by `args`; a node that cannot be reached is reported in plain words.
    pub async fn connect(args: &ConnectionArgs, console: &mut Console<'_>) -> Result<Self, Failure> {
        let credentials = Credentials::new(args.token.as_deref())?;
        let mut endpoint = Endpoint::from_shared(args.node.clone())
            .map_err(|error| {
                Failure::Usage(format!("--node {} is not a URL like http://127.0.0.1:7070 ({error})", args.node))
            })?
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(CALL_TIMEOUT_MS));
        let https = args.node.to_ascii_lowercase().starts_with("https://");
        if https {
            let ca = args.ca.as_ref().ok_or_else(|| {
                Failure::Usage(format!(
                    "--node {} uses TLS: give the CA certificate that signed the node's certificate with --ca FILE \
                     (or ECOVOL_CA)",
                    args.node
                ))
            })?;
            let pem = std::fs::read(ca).map_err(|error| Failure::Usage(format!("--ca {}: {error}", ca.display())))?;
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            if let Some(domain) = &args.domain {
                tls = tls.domain_name(domain.clone());
            }
            if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
                let read = |flag: &str, path: &PathBuf| {
                    std::fs::read(path).map_err(|error| Failure::Usage(format!("--{flag} {}: {error}", path.display())))
                };
                tls = tls.identity(tonic::transport::Identity::from_pem(read("cert", cert)?, read("key", key)?));
            }
            endpoint =
                endpoint.tls_config(tls).map_err(|error| Failure::Usage(format!("TLS settings: {}", chain(&error))))?;
        } else {
            if args.ca.is_some() {
                console.note(&format!(
                    "note: --ca is ignored: {} is not https://, the connection is not encrypted",
                    args.node
                ));
            }
            if args.domain.is_some() {
                console.note("note: --domain is ignored without https://");
            }
            if args.cert.is_some() {
                return Err(Failure::Usage("--cert signs in over TLS only: use --node https://… with --ca".into()));
            }
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| Failure::Unreachable { node: args.node.clone(), detail: chain(&error) })?;
        Ok(Self { channel, credentials })
    }

    fn authenticated(&self) -> Authenticated {
        InterceptedService::new(self.channel.clone(), self.credentials.clone())
    }

    pub fn accounts(&self) -> AccountServiceClient<Authenticated> {
        AccountServiceClient::new(self.authenticated())
    }

    pub fn volunteers(&self) -> VolunteerServiceClient<Authenticated> {
        VolunteerServiceClient::new(self.authenticated())
    }

    pub fn teams(&self) -> TeamServiceClient<Authenticated> {
        TeamServiceClient::new(self.authenticated())
    }

    pub fn sites(&self) -> SiteServiceClient<Authenticated> {
        SiteServiceClient::new(self.authenticated())
    }

    pub fn audit(&self) -> AuditServiceClient<Authenticated> {
        AuditServiceClient::new(self.authenticated())
    }

    pub fn node(&self) -> NodeServiceClient<Authenticated> {
        NodeServiceClient::new(self.authenticated())
    }

    pub fn projects(&self) -> ecovol_proto::v1::project_service_client::ProjectServiceClient<Authenticated> {
        ecovol_proto::v1::project_service_client::ProjectServiceClient::new(self.authenticated())
    }

    pub fn sign_ups(&self) -> ecovol_proto::v1::sign_up_service_client::SignUpServiceClient<Authenticated> {
        ecovol_proto::v1::sign_up_service_client::SignUpServiceClient::new(self.authenticated())
    }

    pub fn service_records(
        &self,
    ) -> ecovol_proto::v1::service_record_service_client::ServiceRecordServiceClient<Authenticated> {
        ecovol_proto::v1::service_record_service_client::ServiceRecordServiceClient::new(self.authenticated())
    }

    pub fn stats(&self) -> ecovol_proto::v1::stats_service_client::StatsServiceClient<Authenticated> {
        ecovol_proto::v1::stats_service_client::StatsServiceClient::new(self.authenticated())
    }

    pub fn certificates(
        &self,
    ) -> ecovol_proto::v1::certificate_service_client::CertificateServiceClient<Authenticated> {
        ecovol_proto::v1::certificate_service_client::CertificateServiceClient::new(self.authenticated())
    }

    pub fn supervision(&self) -> ecovol_proto::v1::supervision_service_client::SupervisionServiceClient<Authenticated> {
        ecovol_proto::v1::supervision_service_client::SupervisionServiceClient::new(self.authenticated())
    }

    pub fn recognition(&self) -> ecovol_proto::v1::recognition_service_client::RecognitionServiceClient<Authenticated> {
        ecovol_proto::v1::recognition_service_client::RecognitionServiceClient::new(self.authenticated())
    }

    pub fn plans(&self) -> ecovol_proto::v1::plan_service_client::PlanServiceClient<Authenticated> {
        ecovol_proto::v1::plan_service_client::PlanServiceClient::new(self.authenticated())
    }

    pub fn campaigns(&self) -> ecovol_proto::v1::campaign_service_client::CampaignServiceClient<Authenticated> {
        ecovol_proto::v1::campaign_service_client::CampaignServiceClient::new(self.authenticated())
    }

    pub fn exchange(&self) -> ecovol_proto::v1::exchange_service_client::ExchangeServiceClient<Authenticated> {
        ecovol_proto::v1::exchange_service_client::ExchangeServiceClient::new(self.authenticated())
    }
}

/// An error with its causes, `outer: inner: root` (tonic's own message is often just "transport error").
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Page options shared by the list commands.
#[derive(Debug, Clone, clap::Args)]
pub struct PageArgs {
    /// Items per page (the node caps it at its configured maximum).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub page_size: Option<i32>,

    /// Continue from this token (printed after a page that has more).
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,

    /// Fetch every page, not only the first.
    #[arg(long)]
    pub all: bool,
}

impl PageArgs {
    /// The page size to ask for (0: the node's default).
    pub fn size(&self) -> i32 {
        self.page_size.unwrap_or(0)
    }

    /// The token of the first page to fetch.
    pub fn start(&self) -> String {
        self.page_token.clone().unwrap_or_default()
    }
}

/// Fetches one page, or with `all` every page in turn, starting at `page_token`; returns the items and the token
/// of the page after the last one fetched (empty once exhausted).
///
/// `fetch` makes the call for one page token. Its future owns what it needs (a cloned client, the request): a
/// future borrowing from the closure would not be `Send`, and the command's future must be, to be spawned.
pub async fn pages<T, Call>(
    all: bool,
    page_token: String,
    mut fetch: impl FnMut(String) -> Call,
) -> Result<(Vec<T>, String), Failure>
where
    Call: Future<Output = Result<(Vec<T>, String), Status>>,
{
    let mut items = Vec::new();
    let mut token = page_token;
    loop {
        let (mut page, next) = fetch(token.clone()).await?;
        items.append(&mut page);
        if !all || next.is_empty() {
            return Ok((items, next));
        }
        if next == token {
            return Err(Failure::Failed(format!("the node returned the same page token twice ({next}); stopping")));
        }
        token = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_carries_the_token_and_a_fresh_request_id() {
        let mut credentials = Credentials::new(Some("secret-token")).unwrap();
        let first = credentials.call(Request::new(())).unwrap();
        let second = credentials.call(Request::new(())).unwrap();
        assert_eq!(first.metadata().get("authorization").unwrap(), "Bearer secret-token");
        let id = |request: &Request<()>| request.metadata().get("x-request-id").unwrap().to_str().unwrap().to_string();
        assert!(id(&first).starts_with("cli-") && id(&first).len() == 20);
        assert_ne!(id(&first), id(&second));
    }

    #[test]
    fn without_a_token_no_authorization_is_sent() {
        let mut credentials = Credentials::new(None).unwrap();
        let request = credentials.call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(Credentials::new(Some("bad\ntoken")).is_err());
    }

    #[tokio::test]
    async fn all_pages_are_followed_until_the_token_is_empty() {
        let mut calls = 0;
        let (items, next) = pages(true, String::new(), |token: String| {
            calls += 1;
            async move {
                Ok(match token.as_str() {
                    "" => (vec![1, 2], "a".to_string()),
                    "a" => (vec![3], "b".to_string()),
                    _ => (vec![4], String::new()),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(items, vec![1, 2, 3, 4]);
        assert!(next.is_empty());
        assert_eq!(calls, 3);
        let (items, next) =
            pages(false, String::new(), |_token: String| async { Ok((vec![1], "a".to_string())) }).await.unwrap();
        assert_eq!((items, next.as_str()), (vec![1], "a"));
    }
}
