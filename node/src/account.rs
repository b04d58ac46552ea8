//! Department accounts: created, listed and revoked by the operator — over gRPC on a running node, or directly on
//! the store of a stopped node (how the first operator account comes to exist).

use std::sync::Arc;

use ecovol_proto::v1 as pb;

use crate::audit::AuditContext;
use crate::auth::{self, Account, Caller, Department, Role};
use crate::commit::{Committer, Txn};
use crate::config::Config;
use crate::crypto;
use crate::error::{DomainError, Violations};
use crate::page::{Page, PageRequest};
use crate::store::{self, SledStore, Store};
use crate::wire;

/// A validated request for a new account.
#[derive(Debug, Clone)]
pub struct CreateAccount {
    pub name: String,
    pub department: Department,
    pub roles: Vec<Role>,
    pub team_id: Option<String>,
    pub volunteer_number: Option<String>,
    pub client_cert_sha256: Option<String>,
}

pub fn department_from_pb(value: i32) -> Option<Department> {
    Some(match pb::Department::try_from(value).ok()? {
        pb::Department::Unspecified => return None,
        pb::Department::EcologyBureau => Department::EcologyBureau,
        pb::Department::CivilizationOffice => Department::CivilizationOffice,
        pb::Department::SocialWork => Department::SocialWork,
        pb::Department::CivilAffairs => Department::CivilAffairs,
        pb::Department::Education => Department::Education,
        pb::Department::YouthLeague => Department::YouthLeague,
        pb::Department::WomensFederation => Department::WomensFederation,
        pb::Department::Other => Department::Other,
    })
}

pub fn department_to_pb(department: Department) -> pb::Department {
    match department {
        Department::EcologyBureau => pb::Department::EcologyBureau,
        Department::CivilizationOffice => pb::Department::CivilizationOffice,
        Department::SocialWork => pb::Department::SocialWork,
        Department::CivilAffairs => pb::Department::CivilAffairs,
        Department::Education => pb::Department::Education,
        Department::YouthLeague => pb::Department::YouthLeague,
        Department::WomensFederation => pb::Department::WomensFederation,
        Department::Other => pb::Department::Other,
        Department::System => pb::Department::Unspecified,
    }
}

pub fn role_from_pb(value: i32) -> Option<Role> {
    Some(match pb::Role::try_from(value).ok()? {
        pb::Role::Unspecified => return None,
        pb::Role::Operator => Role::Operator,
        pb::Role::Staff => Role::Staff,
        pb::Role::TeamManager => Role::TeamManager,
        pb::Role::Volunteer => Role::Volunteer,
        pb::Role::Auditor => Role::Auditor,
    })
}

pub fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Operator => pb::Role::Operator,
        Role::Staff => pb::Role::Staff,
        Role::TeamManager => pb::Role::TeamManager,
        Role::Volunteer => pb::Role::Volunteer,
        Role::Auditor => pb::Role::Auditor,
    }
}

impl TryFrom<pb::CreateAccountRequest> for CreateAccount {
    type Error = DomainError;

    fn try_from(request: pb::CreateAccountRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        violations.text("name", &request.name, 100);
        let department = department_from_pb(request.department);
        if department.is_none() {
            violations.add("department", "is required: one of the departments of the guidance, or other");
        }
        let mut roles = Vec::new();
        for (index, value) in request.roles.iter().enumerate() {
            match role_from_pb(*value) {
                Some(role) if roles.contains(&role) => violations.add(format!("roles[{index}]"), "is listed twice"),
                Some(role) => roles.push(role),
                None => violations.add(format!("roles[{index}]"), "is not a known role"),
            }
        }
        if request.roles.is_empty() {
            violations.add("roles", "at least one role is required");
        }
        // MLPS: the administrator and the auditor are separate people; neither also works the registry.
        if roles.contains(&Role::Operator) && roles.len() > 1 {
            violations.add("roles", "the operator role cannot be combined with other roles (separation of duties)");
        }
        if roles.contains(&Role::Auditor) && roles.len() > 1 {
            violations.add("roles", "the auditor role cannot be combined with other roles (separation of duties)");
        }
        let team_id = (!request.team_id.is_empty()).then(|| request.team_id.clone());
        if roles.contains(&Role::TeamManager) != team_id.is_some() {
            violations.add("team_id", "is required with the team manager role, and only with it");
        }
        violations.optional_text("team_id", &request.team_id, 32);
        let volunteer_number = (!request.volunteer_number.is_empty()).then(|| request.volunteer_number.clone());
        if roles.contains(&Role::Volunteer) != volunteer_number.is_some() {
            violations.add("volunteer_number", "is required with the volunteer role, and only with it");
        }
        violations.optional_text("volunteer_number", &request.volunteer_number, 32);
        let certificate = request.client_cert_sha256.to_ascii_lowercase();
        if !certificate.is_empty() && (certificate.len() != 64 || hex::decode(&certificate).is_err()) {
            violations.add("client_cert_sha256", "must be 64 hex characters (SHA-256 of the DER certificate)");
        }
        violations.into_result()?;
        Ok(Self {
            name: request.name.trim().to_string(),
            department: department.unwrap_or(Department::Other),
            roles,
            team_id,
            volunteer_number,
            client_cert_sha256: (!certificate.is_empty()).then_some(certificate),
        })
    }
}

/// Creates an account; returns it with its token (shown once). `caller` is None only for the offline bootstrap.
pub fn create(
    txn: &mut Txn<'_>,
    caller: Option<&Caller>,
    command: CreateAccount,
) -> Result<(Account, String), DomainError> {
    if let Some(caller) = caller {
        caller.require_any(&[Role::Operator], "creating an account")?;
    }
    if let Some(team) = &command.team_id
        && txn.get(format!("team/{team}").as_bytes())?.is_none()
    {
        return Err(DomainError::not_found("team", team.clone()));
    }
    if let Some(number) = &command.volunteer_number
        && txn.get(format!("vol/{number}").as_bytes())?.is_none()
    {
        return Err(DomainError::not_found("volunteer", number.clone()));
    }
    if let Some(certificate) = &command.client_cert_sha256
        && let Some(existing) = txn.get(auth::certificate_index_key(certificate).as_bytes())?
    {
        let existing = String::from_utf8_lossy(&existing).into_owned();
        return Err(DomainError::AlreadyExists {
            message: format!("this client certificate already belongs to account {existing}"),
            existing,
        });
    }
    let sequence = txn.next_seq("account")?;
    let account_id = format!("acct-{sequence:06}");
    txn.target = account_id.clone();
    let token = crypto::new_token();
    let account = Account {
        account_id: account_id.clone(),
        name: command.name,
        department: command.department,
        roles: command.roles,
        team_id: command.team_id,
        volunteer_number: command.volunteer_number,
        token_sha256: crypto::token_hash(&token),
        client_cert_sha256: command.client_cert_sha256,
        created_at: txn.now(),
        revoked_at: None,
    };
    txn.put(auth::token_index_key(&account.token_sha256), account_id.clone());
    if let Some(certificate) = &account.client_cert_sha256 {
        txn.put(auth::certificate_index_key(certificate), account_id.clone());
    }
    txn.put_json(auth::account_key(&account_id), &account);
    Ok((account, token))
}

/// Revokes an account: its token and certificate stop working at once. The record stays, for the audit trail.
pub fn revoke(
    txn: &mut Txn<'_>,
    caller: Option<&Caller>,
    account_id: &str,
    reason: String,
) -> Result<Account, DomainError> {
    if let Some(caller) = caller {
        caller.require_any(&[Role::Operator], "revoking an account")?;
        if caller.account_id == account_id {
            return Err(DomainError::FailedPrecondition("an operator cannot revoke their own account".into()));
        }
    }
    txn.detail = reason;
    let mut account: Account =
        txn.get_json(&auth::account_key(account_id))?.ok_or_else(|| DomainError::not_found("account", account_id))?;
    if account.revoked_at.is_some() {
        return Err(DomainError::FailedPrecondition(format!("account {account_id} is already revoked")));
    }
    account.revoked_at = Some(txn.now());
    txn.delete(auth::token_index_key(&account.token_sha256));
    if let Some(certificate) = &account.client_cert_sha256 {
        txn.delete(auth::certificate_index_key(certificate));
    }
    txn.put_json(auth::account_key(account_id), &account);
    Ok(account)
}

/// Lists accounts in id order. `caller` is None only offline.
pub fn list(
    store: &dyn Store,
    caller: Option<&Caller>,
    include_revoked: bool,
    page: &PageRequest,
) -> Result<Page<Account>, DomainError> {
    if let Some(caller) = caller {
        caller.require_any(&[Role::Operator], "listing accounts")?;
    }
    crate::page::collect(store, auth::ACCOUNT_PREFIX, page, |key, value| {
        let account = store::decode::<Account>(key, value)?;
        Ok((include_revoked || account.revoked_at.is_none()).then_some(account))
    })
}

pub fn to_pb(account: &Account) -> pb::Account {
    pb::Account {
        account_id: account.account_id.clone(),
        name: account.name.clone(),
        department: department_to_pb(account.department) as i32,
        roles: account.roles.iter().map(|role| role_to_pb(*role) as i32).collect(),
        team_id: account.team_id.clone().unwrap_or_default(),
        volunteer_number: account.volunteer_number.clone().unwrap_or_default(),
        client_cert_sha256: account.client_cert_sha256.clone().unwrap_or_default(),
        created_at: Some(wire::timestamp(account.created_at)),
        revoked_at: wire::optional_timestamp(account.revoked_at),
    }
}

/// Account management on the store of a stopped node (sled allows one process at a time: if the node is running,
/// opening fails with a message saying so, and the operator uses the gRPC API instead).
pub mod offline {
    use super::*;

    /// The operator working at the console of a stopped node, for the audit trail.
    fn console(request_id: &str) -> Caller {
        let mut caller = Caller::system(request_id);
        caller.account_id = "console".into();
        caller.name = "operator at the node console".into();
        caller
    }

    async fn with_store<T: Send + 'static>(
        config: &Config,
        operation: &'static str,
        target: String,
        job: impl FnOnce(&mut Txn<'_>) -> Result<T, DomainError> + Send + 'static,
    ) -> Result<T, DomainError> {
        let store: Arc<dyn Store> =
            Arc::new(SledStore::open(&config.store.path, config.store.cache_capacity_mb << 20)?);
        let committer = Committer::start(store, 16, 16);
        let context = AuditContext::new(&console("offline"), operation, target);
        let result = committer.write(context, job).await;
        committer.stop().await;
        result
    }

    /// Creates an account on a stopped node; returns it with its token.
    pub async fn create(config: &Config, command: CreateAccount) -> Result<(Account, String), DomainError> {
        with_store(config, "AccountService/CreateAccount", String::new(), move |txn| super::create(txn, None, command))
            .await
    }

    /// Revokes an account on a stopped node.
    pub async fn revoke(config: &Config, account_id: String, reason: String) -> Result<Account, DomainError> {
        let target = account_id.clone();
        with_store(config, "AccountService/RevokeAccount", target, move |txn| {
            super::revoke(txn, None, &account_id, reason)
        })
        .await
    }

    /// Lists every account of a stopped node.
    pub fn list(config: &Config, include_revoked: bool) -> Result<Vec<Account>, DomainError> {
        let store = SledStore::open(&config.store.path, config.store.cache_capacity_mb << 20)?;
        let page = PageRequest { size: usize::MAX, after: None };
        Ok(super::list(&store, None, include_revoked, &page)?.items)
    }
}
