//! `ecovol.v1.FederationService`: the federation port's handlers. The TLS layer has already checked that the
//! caller holds a certificate of the federation CA; here the certificate's node identity names the caller, and
//! `federation::apply` decides whether that node may say what it says (AUTH-1).

use std::sync::Arc;

use ecovol_coordinator::region::DivisionCode;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::federation_service_server::FederationService;
use tonic::{Request, Response, Status};

use super::status;
use crate::app::App;
use crate::federation::{apply, certs, link};

pub struct FederationApi {
    pub app: Arc<App>,
}

/// The calling node, from its client certificate; a node on the deny list (`federation.denied`, by code or by
/// certificate SHA-256) is refused.
fn calling_node<T>(app: &App, request: &Request<T>) -> Result<DivisionCode, Status> {
    let certificate = request
        .peer_certs()
        .and_then(|certs| certs.first().map(|cert| cert.to_vec()))
        .ok_or_else(|| Status::unauthenticated("the federation port needs a node certificate of the federation CA"))?;
    let code = certs::peer_identity(&certificate).map(|identity| identity.code).map_err(|error| {
        tracing::warn!(%error, "refused a federation call: the certificate names no node");
        Status::unauthenticated(format!("the certificate names no ecovol node: {error}"))
    })?;
    if let Some(section) = &app.config.federation
        && section.denies(code, &crate::crypto::certificate_sha256(&certificate))
    {
        tracing::warn!(node = %code, "refused a federation call: the node or its certificate is in federation.denied");
        return Err(Status::permission_denied(format!("node {code} is refused here (federation.denied)")));
    }
    Ok(code)
}

#[tonic::async_trait]
impl FederationService for FederationApi {
    async fn push(&self, request: Request<pb::PushRequest>) -> Result<Response<pb::PushResponse>, Status> {
        let child = calling_node(&self.app, &request)?;
        let answer = apply::push(&self.app, child, request.into_inner()).await.map_err(status)?;
        Ok(Response::new(answer))
    }

    async fn pull(&self, request: Request<pb::PullRequest>) -> Result<Response<pb::PullResponse>, Status> {
        let child = calling_node(&self.app, &request)?;
        let answer = apply::pull(&self.app, child, request.into_inner()).await.map_err(status)?;
        Ok(Response::new(answer))
    }

    async fn volunteer_minutes(
        &self,
        request: Request<pb::VolunteerMinutesRequest>,
    ) -> Result<Response<pb::VolunteerMinutesResponse>, Status> {
        let caller = calling_node(&self.app, &request)?;
        if !self.app.federation.accepts_child(caller) {
            return Err(Status::permission_denied(format!(
                "node {caller} is not a child of {}",
                self.app.federation.code
            )));
        }
        let key = request.into_inner().volunteer_key;
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(status(crate::error::DomainError::invalid("volunteer_key", "must be 32 hex characters")));
        }
        let answer = link::federation_minutes(&self.app, &key).await.map_err(status)?;
        Ok(Response::new(answer))
    }
}
