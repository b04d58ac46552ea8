//! Refused reads in the audit trail: a tower layer on the office port that writes a `denied` entry when a read
//! (a get, list, search or verify) is answered `PermissionDenied`, as a refused write is.
//!
//! Writes are audited by the committer, in the batch of the write; a read changes nothing, so its handler has no
//! audit entry to write and, before this layer, a department reading what it may not left no trace. MLPS level 3
//! counts failed access as a security event. The layer learns who called from `service::caller`, which records
//! the authenticated caller in a task-local slot that the layer opens around each call, and learns the answer
//! from the response's `grpc-status` (a refusal is "trailers only", so its status is in the headers). The entry is
//! durable before the refusal is answered, like a refused write's.
//!
//! Only the methods of `READS` are audited here: every other office method either writes (and is audited by the
//! committer already) or cannot be refused for permission. Calls the web console makes in-process do not pass
//! this layer.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::http;

use crate::app::App;
use crate::audit::AuditContext;
use crate::auth::Caller;
use crate::error::DomainError;

/// The office methods that only read, as `Service/Method` (the audit trail's operation names). A unit test
/// checks each against the descriptor set.
const READS: &[&str] = &[
    "AccountService/ListAccounts",
    "AccountService/WhoAmI",
    "AuditService/ListAuditEntries",
    "CampaignService/GetCampaign",
    "CampaignService/ListCampaigns",
    "CertificateService/GetCertificate",
    "CertificateService/VerifyCertificate",
    "ExchangeService/ListRecognisedRecords",
    "ServiceRecordService/GetServiceRecord",
    "ServiceRecordService/ListServiceRecords",
    "NodeService/GetNodeInfo",
    "NodeService/GetFederationStatus",
    "PlanService/GetPlan",
    "PlanService/ListPlans",
    "ProjectService/GetProject",
    "ProjectService/SearchProjects",
    "SignUpService/ListSignUps",
    "RecognitionService/GetProjectOutcome",
    "RecognitionService/GetTraining",
    "RecognitionService/ListTrainings",
    "RecognitionService/GetVolunteerProfile",
    "RecognitionService/GetFederationMinutes",
    "SiteService/GetSite",
    "SiteService/ListSites",
    "StatsService/GetStats",
    "StatsService/GetRegionStats",
    "SupervisionService/GetReport",
    "SupervisionService/ListReports",
    "TeamService/GetTeam",
    "TeamService/ListTeams",
    "TeamService/ListTeamMembers",
    "VolunteerService/GetVolunteer",
    "VolunteerService/SearchVolunteers",
    "VolunteerService/ListVolunteerVersions",
];

tokio::task_local! {
    /// The caller `service::caller` authenticated for the call the layer is running, if any.
    static CALLER: RefCell<Option<Caller>>;
}

/// Records the authenticated caller of the current call for this layer (a no-op outside it).
pub(crate) fn note_caller(caller: &Caller) {
    let _ = CALLER.try_with(|slot| *slot.borrow_mut() = Some(caller.clone()));
}

/// `/ecovol.v1.VolunteerService/GetVolunteer` → `VolunteerService/GetVolunteer` if that method only reads.
fn read_operation(path: &str) -> Option<&'static str> {
    let operation = path.strip_prefix("/ecovol.v1.")?;
    READS.iter().copied().find(|read| *read == operation)
}

/// Decodes a `grpc-message` header (percent-encoded UTF-8, gRPC over HTTP/2 spec).
fn grpc_message(headers: &http::HeaderMap) -> String {
    let raw = headers.get("grpc-message").map(|value| value.as_bytes()).unwrap_or_default();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        let decoded = (raw[index] == b'%')
            .then(|| raw.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                bytes.push(byte);
                index += 3;
            }
            None => {
                bytes.push(raw[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Writes the `denied` entry of a refused read; a failure to write it is logged (the refusal stands).
async fn audit_refusal(app: &App, caller: Caller, operation: &'static str, message: String) {
    let context = AuditContext::new(&caller, operation, "");
    // The job fails with the refusal, so only its audit entry is written; any other error means the entry could
    // not be written.
    let refusal = DomainError::PermissionDenied(message);
    let written = app.committer.write(context, move |_| Err::<(), _>(refusal)).await;
    if let Err(failure @ (DomainError::Unavailable(_) | DomainError::Internal(_))) = written {
        tracing::error!(%failure, operation, "a refused read could not be audited");
    }
}

/// Tower layer for the office server: audits reads refused with `PermissionDenied` (see the module comment).
#[derive(Clone)]
pub struct ReadRefusalAuditLayer {
    app: Arc<App>,
}

impl ReadRefusalAuditLayer {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

impl<S> tower::Layer<S> for ReadRefusalAuditLayer {
    type Service = ReadRefusalAudit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReadRefusalAudit { inner, app: self.app.clone() }
    }
}

/// See [`ReadRefusalAuditLayer`].
#[derive(Clone)]
pub struct ReadRefusalAudit<S> {
    inner: S,
    app: Arc<App>,
}

impl<S, B, R> tower::Service<http::Request<B>> for ReadRefusalAudit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send,
    R: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(operation) = read_operation(request.uri().path()) else {
            return Box::pin(self.inner.call(request));
        };
        let answer = self.inner.call(request);
        let app = self.app.clone();
        Box::pin(CALLER.scope(RefCell::new(None), async move {
            let result = answer.await;
            let refused = matches!(&result, Ok(response)
                if response.headers().get("grpc-status").is_some_and(|code| code.as_bytes() == b"7"));
            if refused && let Some(caller) = CALLER.with(|slot| slot.borrow_mut().take()) {
                let message = result.as_ref().map(|response| grpc_message(response.headers())).unwrap_or_default();
                audit_refusal(&app, caller, operation, message).await;
            }
            result
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_is_a_method_of_the_office_api() {
        use prost::Message as _;
        let set = prost_types::FileDescriptorSet::decode(ecovol_proto::FILE_DESCRIPTOR_SET).unwrap();
        let methods: Vec<String> = set
            .file
            .iter()
            .filter(|file| file.package() == "ecovol.v1")
            .flat_map(|file| file.service.iter())
            .flat_map(|service| {
                service.method.iter().map(move |method| format!("{}/{}", service.name(), method.name()))
            })
            .collect();
        for read in READS {
            assert!(methods.iter().any(|method| method == read), "{read} is not a method of ecovol.v1");
        }
        assert_eq!(read_operation("/ecovol.v1.VolunteerService/GetVolunteer"), Some("VolunteerService/GetVolunteer"));
        assert_eq!(read_operation("/ecovol.v1.VolunteerService/RegisterVolunteer"), None);
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-message", http::HeaderValue::from_static("team%20T1%3A%20%E5%9B%A2%25"));
        assert_eq!(grpc_message(&headers), "team T1: 团%");
    }
}
