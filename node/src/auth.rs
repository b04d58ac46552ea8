//! Who is calling: department accounts, their roles, and authentication by bearer token or client certificate.
//!
//! MLPS level 3 asks for unique accounts, least privilege and separate administrator / auditor roles: the operator
//! manages accounts but cannot touch the registry or the audit trail; the auditor reads the audit trail only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::store::{self, Store};

/// The departments named by the guidance (see `ecovol.v1.Department`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Department {
    EcologyBureau,
    CivilizationOffice,
    SocialWork,
    CivilAffairs,
    Education,
    YouthLeague,
    WomensFederation,
    Other,
    /// The node itself (retention sweeps and other housekeeping); never an account.
    System,
}

/// What an account may do (see `ecovol.v1.Role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Operator,
    Staff,
    TeamManager,
    Volunteer,
    Auditor,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Staff => "staff",
            Role::TeamManager => "team manager",
            Role::Volunteer => "volunteer",
            Role::Auditor => "auditor",
        }
    }
}

/// An account as stored under `acct/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub account_id: String,
    pub name: String,
    pub department: Department,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub volunteer_number: Option<String>,
    /// SHA-256 (hex) of the bearer token; the token itself is never stored.
    pub token_sha256: String,
    #[serde(default)]
    pub client_cert_sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub name: String,
    pub department: Department,
    pub roles: Vec<Role>,
    /// For team managers: the one team they manage.
    pub team_id: Option<String>,
    /// For volunteers: their own volunteer number.
    pub volunteer_number: Option<String>,
    /// The caller's `x-request-id`, or one the node made; written to the audit trail.
    pub request_id: String,
}

impl Caller {
    /// The node acting on its own behalf (housekeeping), for the audit trail.
    pub fn system(request_id: impl Into<String>) -> Self {
        Caller {
            account_id: "system".into(),
            name: "ecovol".into(),
            department: Department::System,
            roles: Vec::new(),
            team_id: None,
            volunteer_number: None,
            request_id: request_id.into(),
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// PermissionDenied unless the caller holds one of `roles`; `action` names what was attempted.
    pub fn require_any(&self, roles: &[Role], action: &str) -> Result<(), DomainError> {
        if roles.iter().any(|role| self.has(*role)) {
            return Ok(());
        }
        let needed: Vec<&str> = roles.iter().map(|role| role.label()).collect();
        Err(DomainError::denied(format!("{action} needs the role {}", needed.join(" or "))))
    }

    /// True if the caller is the manager of `team_id`.
    pub fn manages_team(&self, team_id: &str) -> bool {
        self.has(Role::TeamManager) && self.team_id.as_deref() == Some(team_id)
    }

    /// True if the caller is the volunteer `volunteer_number`.
    pub fn is_volunteer(&self, volunteer_number: &str) -> bool {
        self.has(Role::Volunteer) && self.volunteer_number.as_deref() == Some(volunteer_number)
    }
}

pub const ACCOUNT_PREFIX: &str = "acct/";

pub fn account_key(account_id: &str) -> String {
    format!("{ACCOUNT_PREFIX}{account_id}")
}

pub fn token_index_key(token_sha256: &str) -> String {
    format!("acct_tok/{token_sha256}")
}

pub fn certificate_index_key(cert_sha256: &str) -> String {
    format!("acct_cert/{cert_sha256}")
}

/// A caller the node authenticated itself (the web console's session), carried as a request extension into the
/// gRPC service implementations called in-process. Only this crate can make one, and the network cannot put a Rust
/// value into a request's extensions, so a remote client can never claim it.
#[derive(Debug, Clone)]
pub struct Authenticated(pub(crate) Caller);

impl Authenticated {
    pub(crate) fn new(caller: Caller) -> Self {
        Authenticated(caller)
    }
}

/// The caller of an account by its id (a console session's account, read again on every request so a revoked
/// account is refused at once).
pub fn authenticate_account(store: &dyn Store, account_id: &str, request_id: String) -> Result<Caller, DomainError> {
    caller_of(store, account_id, request_id, || DomainError::Unauthenticated("unknown or revoked account".into()))
}

/// The caller of a stored account that is not revoked; `unknown` otherwise.
fn caller_of(
    store: &dyn Store,
    account_id: &str,
    request_id: String,
    unknown: impl Fn() -> DomainError,
) -> Result<Caller, DomainError> {
    let account: Account = store::get_json(store, account_key(account_id).as_bytes())?.ok_or_else(&unknown)?;
    if account.revoked_at.is_some() {
        return Err(unknown());
    }
    Ok(Caller {
        account_id: account.account_id,
        name: account.name,
        department: account.department,
        roles: account.roles,
        team_id: account.team_id,
        volunteer_number: account.volunteer_number,
        request_id,
    })
}

/// Finds the account for a bearer token (preferred) or a verified client certificate.
pub fn authenticate(
    store: &dyn Store,
    bearer_token: Option<&str>,
    client_cert_der: Option<&[u8]>,
    request_id: String,
) -> Result<Caller, DomainError> {
    let index_key = match (bearer_token, client_cert_der) {
        (Some(token), _) => token_index_key(&crate::crypto::token_hash(token)),
        (None, Some(der)) => certificate_index_key(&crate::crypto::certificate_sha256(der)),
        (None, None) => {
            return Err(DomainError::Unauthenticated(
                "no credentials: send `authorization: Bearer <token>` or a client certificate".into(),
            ));
        }
    };
    let unknown = || DomainError::Unauthenticated("unknown or revoked credentials".into());
    let account_id = store.get(index_key.as_bytes())?.ok_or_else(unknown)?;
    let account_id = String::from_utf8(account_id).map_err(|_| unknown())?;
    caller_of(store, &account_id, request_id, unknown)
}
