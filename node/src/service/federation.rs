//! `ecovol.v1.FederationService`: the federation port's handlers. The TLS layer has already checked that the
//! caller holds a certificate of the federation CA; here the certificate's node identity names the caller, and
//! `federation::apply` decides whether that node may say what it says (AUTH-1).
//!
//! A refused call (a certificate naming no node, a node on the deny list, a node that is not a child, a batch
//! speaking for another subtree, a malformed request) leaves an audit entry on this node: MLPS level 3 audits
//! security events, and the refusing node is the one that saw the attempt. Accepted calls stay unaudited: they
//! are replication bookkeeping, and each change they carry was audited where it was made.

use std::sync::Arc;

use ecovol_coordinator::region::DivisionCode;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::federation_service_server::FederationService;
use tonic::{Request, Response, Status};

use super::status;
use crate::app::App;
use crate::audit::AuditContext;
use crate::auth::{Caller, Department};
use crate::error::DomainError;
use crate::federation::{apply, certs, link};

pub struct FederationApi {
    pub app: Arc<App>,
}

/// The peer of a federation call as the TLS layer gave it: its certificate (DER) and the request id.
struct Peer {
    certificate: Option<Vec<u8>>,
    request_id: String,
}

impl Peer {
    fn of<T>(request: &Request<T>) -> Peer {
        let request_id = request
            .metadata()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(super::new_request_id);
        let certificate = request.peer_certs().and_then(|certs| certs.first().map(|cert| cert.to_vec()));
        Peer { certificate, request_id }
    }

    fn certificate_sha256(&self) -> String {
        self.certificate.as_deref().map(crate::crypto::certificate_sha256).unwrap_or_default()
    }

    /// The peer as the audit trail names it: `node/<code>` when its certificate names a node, else
    /// `certificate/<sha256>` (the SHA-256 a deny list would name).
    fn audit_caller(&self) -> Caller {
        let identity = self.certificate.as_deref().and_then(|der| certs::peer_identity(der).ok());
        let (account_id, name) = match identity {
            Some(identity) => (format!("node/{}", identity.code), format!("ecovol node {identity}")),
            None if self.certificate.is_some() => {
                (format!("certificate/{}", self.certificate_sha256()), "certificate naming no node".to_string())
            }
            None => ("certificate/none".to_string(), "no certificate".to_string()),
        };
        Caller {
            account_id,
            name,
            department: Department::System,
            roles: Vec::new(),
            team_id: None,
            volunteer_number: None,
            request_id: self.request_id.clone(),
        }
    }
}

/// The calling node, from its client certificate; a node on the deny list (`federation.denied`, by code or by
/// certificate SHA-256) is refused.
fn calling_node(app: &App, peer: &Peer) -> Result<DivisionCode, DomainError> {
    let certificate = peer.certificate.as_deref().ok_or_else(|| {
        DomainError::Unauthenticated("the federation port needs a node certificate of the federation CA".into())
    })?;
    let code = certs::peer_identity(certificate).map(|identity| identity.code).map_err(|error| {
        tracing::warn!(%error, "refused a federation call: the certificate names no node");
        DomainError::Unauthenticated(format!("the certificate names no ecovol node: {error}"))
    })?;
    if let Some(section) = &app.config.federation
        && section.denies(code, &peer.certificate_sha256())
    {
        tracing::warn!(node = %code, "refused a federation call: the node or its certificate is in federation.denied");
        return Err(DomainError::denied(format!("node {code} is refused here (federation.denied)")));
    }
    Ok(code)
}

/// A copy of a refusal worth an audit entry (who may call, what a node may say, what a request may hold); none
/// for faults of this node (unavailable store, internal errors), which are not the peer's doing.
fn refusal_copy(error: &DomainError) -> Option<DomainError> {
    match error {
        DomainError::Unauthenticated(message) => Some(DomainError::Unauthenticated(message.clone())),
        DomainError::PermissionDenied(message) => Some(DomainError::PermissionDenied(message.clone())),
        DomainError::Invalid(violations) => Some(DomainError::Invalid(violations.clone())),
        _ => None,
    }
}

impl FederationApi {
    /// The answer to a federation call; a refusal is audited on this node first (see the module comment).
    async fn answer<T>(
        &self,
        peer: &Peer,
        operation: &'static str,
        result: Result<T, DomainError>,
    ) -> Result<Response<T>, Status> {
        let error = match result {
            Ok(answer) => return Ok(Response::new(answer)),
            Err(error) => error,
        };
        if let Some(refusal) = refusal_copy(&error) {
            let caller = peer.audit_caller();
            let target = caller.account_id.clone();
            let context = AuditContext::new(&caller, operation, target);
            // The job fails with the refusal, so only its audit entry is written; any other error means the
            // entry could not be written.
            let written = self.app.committer.write(context, move |_| Err::<(), _>(refusal)).await;
            if let Err(failure @ (DomainError::Unavailable(_) | DomainError::Internal(_))) = written {
                tracing::error!(%failure, operation, "a refused federation call could not be audited");
            }
        }
        Err(status(error))
    }
}

#[tonic::async_trait]
impl FederationService for FederationApi {
    async fn push(&self, request: Request<pb::PushRequest>) -> Result<Response<pb::PushResponse>, Status> {
        let peer = Peer::of(&request);
        let result = match calling_node(&self.app, &peer) {
            Ok(child) => apply::push(&self.app, child, request.into_inner()).await,
            Err(error) => Err(error),
        };
        self.answer(&peer, "FederationService/Push", result).await
    }

    async fn pull(&self, request: Request<pb::PullRequest>) -> Result<Response<pb::PullResponse>, Status> {
        let peer = Peer::of(&request);
        let result = match calling_node(&self.app, &peer) {
            Ok(child) => apply::pull(&self.app, child, request.into_inner()).await,
            Err(error) => Err(error),
        };
        self.answer(&peer, "FederationService/Pull", result).await
    }

    async fn volunteer_minutes(
        &self,
        request: Request<pb::VolunteerMinutesRequest>,
    ) -> Result<Response<pb::VolunteerMinutesResponse>, Status> {
        let peer = Peer::of(&request);
        let result = match calling_node(&self.app, &peer) {
            Ok(caller) => self.volunteer_minutes_of(caller, request.into_inner()).await,
            Err(error) => Err(error),
        };
        self.answer(&peer, "FederationService/VolunteerMinutes", result).await
    }

    async fn check_positions(
        &self,
        request: Request<pb::CheckPositionsRequest>,
    ) -> Result<Response<pb::CheckPositionsResponse>, Status> {
        let peer = Peer::of(&request);
        let result = match calling_node(&self.app, &peer) {
            Ok(child) => apply::check_positions(&self.app, child, request.into_inner()).await,
            Err(error) => Err(error),
        };
        self.answer(&peer, "FederationService/CheckPositions", result).await
    }
}

impl FederationApi {
    /// A descendant's question about one volunteer key: only a child may ask (AUTH-1).
    async fn volunteer_minutes_of(
        &self,
        caller: DivisionCode,
        request: pb::VolunteerMinutesRequest,
    ) -> Result<pb::VolunteerMinutesResponse, DomainError> {
        if !self.app.federation.accepts_child(caller) {
            tracing::warn!(node = %caller, "refused a minutes question from a node that is not a child (AUTH-1)");
            return Err(DomainError::denied(format!("node {caller} is not a child of {}", self.app.federation.code)));
        }
        let key = request.volunteer_key;
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DomainError::invalid("volunteer_key", "must be 32 hex characters"));
        }
        link::federation_minutes(&self.app, &key).await
    }
}
