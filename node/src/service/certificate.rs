//! `ecovol.v1.CertificateService`: service certificates (definitions in `crate::certificate`).

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::certificate_service_server::CertificateService;
use tonic::{Request, Response, Status};

use super::{caller, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::certificate::{self, IssueCertificate};

/// The certificate service: issue, read and verify.
pub struct CertificateApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl CertificateService for CertificateApi {
    async fn issue_certificate(
        &self,
        request: Request<pb::IssueCertificateRequest>,
    ) -> Result<Response<pb::IssueCertificateResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "CertificateService/IssueCertificate", &request.volunteer_number);
        let command = IssueCertificate::try_from(request);
        let app = self.app.clone();
        let stored = self
            .app
            .committer
            .write(context, move |txn| certificate::issue(txn, &app.config.node, &app.keys, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::IssueCertificateResponse {
            certificate: Some(pb::Certificate::from(&stored)),
            html: certificate::render_html(&stored),
        }))
    }

    async fn get_certificate(
        &self,
        request: Request<pb::GetCertificateRequest>,
    ) -> Result<Response<pb::GetCertificateResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let number = certificate::parse_certificate_number(&request.into_inner().certificate_number).map_err(status)?;
        let stored = certificate::get(&*self.app.store, &caller, &number).map_err(status)?;
        Ok(Response::new(pb::GetCertificateResponse {
            certificate: Some(pb::Certificate::from(&stored)),
            html: certificate::render_html(&stored),
        }))
    }

    async fn verify_certificate(
        &self,
        request: Request<pb::VerifyCertificateRequest>,
    ) -> Result<Response<pb::VerifyCertificateResponse>, Status> {
        let _caller = caller(&self.app, &request)?;
        let number = certificate::parse_certificate_number(&request.into_inner().certificate_number).map_err(status)?;
        let stored = certificate::verify(&*self.app.store, &number).map_err(status)?;
        if !stored.is_intact() {
            tracing::warn!(certificate = %number, "certificate content does not match its hash");
        }
        Ok(Response::new(pb::VerifyCertificateResponse::from(&stored)))
    }
}
