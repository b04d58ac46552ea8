//! The gRPC services: thin handlers that authenticate, decode and validate, call the domain, and map the result.
//! The only module that names `tonic::Status`; `status` is the one place a `DomainError` becomes one.

pub mod account;
pub mod audit;
pub mod campaign;
pub mod certificate;
pub mod exchange;
pub mod federation;
pub mod hours;
pub mod node;
pub mod plan;
pub mod project;
pub mod read_refusal;
pub mod recognition;
pub mod signup;
pub mod site;
pub mod stats;
pub mod supervision;
pub mod team;
pub mod volunteer;

use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::app::App;
use crate::auth::{self, Caller};
use crate::error::DomainError;
use crate::page::PageRequest;

/// Maps a domain error to a gRPC status: InvalidArgument carries `google.rpc.BadRequest` field violations.
pub fn status(error: DomainError) -> Status {
    match error {
        DomainError::Invalid(violations) => {
            let message = error_message(&violations);
            let mut details = ErrorDetails::new();
            for violation in &violations {
                details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
            }
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        DomainError::Unauthenticated(message) => Status::unauthenticated(message),
        DomainError::PermissionDenied(message) => Status::permission_denied(message),
        error @ DomainError::NotFound { .. } => Status::not_found(error.to_string()),
        DomainError::AlreadyExists { message, existing } => {
            let mut details = ErrorDetails::new();
            details.set_resource_info("record", existing, "", message.clone());
            Status::with_error_details(Code::AlreadyExists, message, details)
        }
        DomainError::FailedPrecondition(message) => Status::failed_precondition(message),
        DomainError::Unavailable(message) => Status::unavailable(message),
        DomainError::Internal(message) => {
            tracing::error!(%message, "internal error");
            Status::internal(message)
        }
    }
}

fn error_message(violations: &[crate::error::FieldViolation]) -> String {
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    format!("invalid request: {} field(s) break a rule: {}", violations.len(), fields.join(", "))
}

/// Authenticates the caller of `request`: `authorization: Bearer <token>`, else a verified client certificate.
pub fn caller<T>(app: &App, request: &Request<T>) -> Result<Caller, Status> {
    // The web console calls the services in-process for a session it authenticated (`auth::Authenticated`).
    if let Some(auth::Authenticated(caller)) = request.extensions().get::<auth::Authenticated>() {
        return Ok(caller.clone());
    }
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let token = match request.metadata().get("authorization") {
        Some(value) => {
            let text = value.to_str().map_err(|_| Status::unauthenticated("authorization header is not text"))?;
            let token = text
                .strip_prefix("Bearer ")
                .or_else(|| text.strip_prefix("bearer "))
                .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
            Some(token.trim().to_string())
        }
        None => None,
    };
    let certificate = request.peer_certs().and_then(|certs| certs.first().map(|cert| cert.to_vec()));
    let caller =
        auth::authenticate(&*app.store, token.as_deref(), certificate.as_deref(), request_id).map_err(|error| {
            tracing::warn!(reason = %error, "refused unauthenticated call");
            status(error)
        })?;
    // Who called, for the audit entry of a refused read (`read_refusal`).
    read_refusal::note_caller(&caller);
    Ok(caller)
}

fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("req-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Parses page fields against the node's limits.
pub fn page(app: &App, page_size: i32, page_token: &str) -> Result<PageRequest, Status> {
    PageRequest::parse(page_size, page_token, app.config.page_limits()).map_err(status)
}
