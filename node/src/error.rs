//! The node's domain error: what went wrong, in terms the office understands. Mapped to `tonic::Status` in one
//! place only (`service::status`).

/// One broken rule on one field of a request (`google.rpc.BadRequest.FieldViolation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field, in proto field names (`identity_number`, `skills[2]`).
    pub field: String,
    /// The rule broken, lowercase, no trailing period.
    pub description: String,
}

/// At most this many violations are listed for one request; the rest are counted. A 4 MiB request can hold
/// four million bad list elements, and listing each (in the message and in `BadRequest`) once made an answer of
/// hundreds of megabytes that never arrived (docs/BAD_INPUT.md).
pub const VIOLATIONS_LISTED_MAX: usize = 100;

/// Collects every broken rule of a request, so the caller sees all of them at once, not only the first
/// (up to `VIOLATIONS_LISTED_MAX`; a last violation says how many more there were).
#[derive(Debug, Default, Clone)]
pub struct Violations(Vec<FieldViolation>, usize);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` breaks `description`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.0.len() < VIOLATIONS_LISTED_MAX {
            self.0.push(FieldViolation { field: field.into(), description: description.into() });
        } else {
            self.1 += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` if nothing was recorded, else `DomainError::Invalid` with every violation.
    pub fn into_result(mut self) -> Result<(), DomainError> {
        if self.1 > 0
            && let Some(last) = self.0.last().map(|violation| violation.field.clone())
        {
            self.0.push(FieldViolation {
                field: last,
                description: format!("and {} more broken rules, not listed", self.1),
            });
        }
        if self.0.is_empty() { Ok(()) } else { Err(DomainError::Invalid(self.0)) }
    }

    /// Checks a required free-text field: trimmed non-empty, at most `chars_max` characters, no control characters.
    pub fn text(&mut self, field: &str, value: &str, chars_max: usize) {
        if value.trim().is_empty() {
            self.add(field, "is required");
        } else {
            self.optional_text(field, value, chars_max);
        }
    }

    /// Checks an optional free-text field: at most `chars_max` characters, no control characters but newlines.
    pub fn optional_text(&mut self, field: &str, value: &str, chars_max: usize) {
        let chars = value.chars().count();
        if chars > chars_max {
            self.add(field, format!("must be at most {chars_max} characters, got {chars}"));
        }
        if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            self.add(field, "must not contain control characters");
        }
    }
}

/// Everything a use-case can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request breaks validation rules; every broken rule is listed.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// No credentials, or credentials the node does not know.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but its role may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The named record does not exist on this node.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// A record with the same identity exists already; `existing` names it.
    #[error("{message}")]
    AlreadyExists { message: String, existing: String },
    /// The record is not in a state that allows this (e.g. a stale expected version, an inactive volunteer).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The store cannot take writes now (disk full, read-only, failed flush); reads still work.
    #[error("{0}")]
    Unavailable(String),
    /// A fault inside the node (a corrupt record, a broken invariant). Logged where it is handled.
    #[error("{0}")]
    Internal(String),
}

impl DomainError {
    /// A single field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        DomainError::Invalid(vec![FieldViolation { field: field.into(), description: description.into() }])
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        DomainError::NotFound { kind, id: id.into() }
    }

    pub fn denied(message: impl Into<String>) -> Self {
        DomainError::PermissionDenied(message.into())
    }
}

fn describe(violations: &[FieldViolation]) -> String {
    violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
}

impl From<crate::store::StoreError> for DomainError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Unavailable(message) => DomainError::Unavailable(message),
            other => DomainError::Internal(other.to_string()),
        }
    }
}
