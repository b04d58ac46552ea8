//! Why a command failed, in plain language, and the exit code that goes with it: 1 when the node (or the store of
//! a stopped node) refused or the call failed, 2 for a usage or configuration mistake.

use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::error::DomainError;

/// Exit code: the command did what was asked.
pub const EXIT_OK: i32 = 0;
/// Exit code: the node refused, the call failed, or the node could not be reached.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: the command line or a configuration file is wrong.
pub const EXIT_USAGE: i32 = 2;

/// Why a command did not complete.
#[derive(Debug)]
pub enum Failure {
    /// A usage or configuration mistake found before calling anything.
    Usage(String),
    /// The node answered with an error.
    Refused(Status),
    /// The node could not be reached at all.
    Unreachable { node: String, detail: String },
    /// Working on a stopped node's store failed.
    Offline(DomainError),
    /// Anything else that went wrong locally (a file, the server).
    Failed(String),
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure::Refused(status)
    }
}

impl From<DomainError> for Failure {
    fn from(error: DomainError) -> Self {
        Failure::Offline(error)
    }
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }

    /// The text printed on standard error (possibly several lines, no trailing newline).
    pub fn describe(&self) -> String {
        match self {
            Failure::Usage(message) => format!("error: {message}"),
            Failure::Refused(status) => describe_status(status),
            Failure::Unreachable { node, detail } if detail.contains("certificate") => format!(
                "cannot reach the node at {node} securely: {detail}; check --ca (the CA that signed the node's \
                 certificate) and --domain (the name in the certificate)"
            ),
            Failure::Unreachable { node, detail } => {
                format!("cannot reach the node at {node}: {detail}; is it running? (ecovol serve --config …)")
            }
            Failure::Offline(error) => describe_domain_error(error),
            Failure::Failed(message) => format!("failed: {message}"),
        }
    }
}

/// What a gRPC code means to someone at the counter, and whether the node refused or something failed.
fn explain(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::InvalidArgument => "refused: invalid request",
        Code::NotFound => "refused: not found",
        Code::AlreadyExists => "refused: already exists",
        Code::PermissionDenied => "refused: this account may not do that",
        Code::Unauthenticated => "refused: not signed in",
        Code::FailedPrecondition => "refused: not possible in the record's current state",
        Code::OutOfRange => "refused: out of range",
        Code::ResourceExhausted => "refused: too much at once",
        Code::Aborted => "failed: aborted by a concurrent change; try again",
        Code::Unavailable => "failed: the node is unavailable",
        Code::DeadlineExceeded => "failed: the node did not answer in time",
        Code::Cancelled => "failed: cancelled",
        Code::Unimplemented => "failed: the node does not offer this call (an older release?)",
        Code::Internal => "failed: internal error in the node",
        Code::DataLoss => "failed: data loss in the node",
        Code::Unknown => "failed: unknown error",
    }
}

/// A hint where the fix is usually on the caller's side.
fn hint(status: &Status) -> Option<&'static str> {
    match status.code() {
        Code::Unauthenticated => Some("pass a token with --token or set ECOVOL_TOKEN"),
        Code::PermissionDenied => Some("check the account's roles with `ecovol account whoami`"),
        // Plain HTTP/2 spoken to a TLS port ends before the node sees a request: as a protocol error, or as a
        // transport error when the node hangs up on the unexpected bytes.
        Code::Internal if status.message().contains("h2 protocol error") => {
            Some("if the node serves TLS, use --node https://… with --ca")
        }
        Code::Unknown if status.message().contains("transport error") => {
            Some("the connection broke: if the node serves TLS, use --node https://… with --ca")
        }
        _ => None,
    }
}

/// `summary: message`, without repeating the message's own opening when it says the same.
fn headline(summary: &str, message: &str) -> String {
    let message = message.trim();
    let said = summary.split_once(": ").map_or(summary, |(_, said)| said);
    if message.is_empty() {
        summary.to_string()
    } else if message.to_ascii_lowercase().starts_with(&said.to_ascii_lowercase()) {
        format!("{}{}", summary, &message[said.len()..])
    } else {
        format!("{summary}: {message}")
    }
}

/// Describes a failed call: the code in plain language and the message; for an invalid request every field
/// violation (`google.rpc.BadRequest`), one per line; for an existing record, the record it names.
pub fn describe_status(status: &Status) -> String {
    let mut text = headline(explain(status.code()), status.message());
    let details = status.get_error_details();
    if let Some(bad_request) = details.bad_request() {
        for violation in &bad_request.field_violations {
            text.push_str(&format!("\n  - {}: {}", violation.field, violation.description));
        }
    }
    if let Some(resource) = details.resource_info()
        && !resource.resource_name.is_empty()
        && !status.message().contains(&resource.resource_name)
    {
        text.push_str(&format!("\n  existing: {}", resource.resource_name));
    }
    if let Some(hint) = hint(status) {
        text.push_str(&format!("\n  ({hint})"));
    }
    text
}

/// Describes a refusal from working on a stopped node's store, in the same words as a refused call.
pub fn describe_domain_error(error: &DomainError) -> String {
    match error {
        DomainError::Invalid(violations) => {
            let mut text = explain(Code::InvalidArgument).to_string();
            for violation in violations {
                text.push_str(&format!("\n  - {}: {}", violation.field, violation.description));
            }
            text
        }
        DomainError::Unauthenticated(message) => headline(explain(Code::Unauthenticated), message),
        DomainError::PermissionDenied(message) => headline(explain(Code::PermissionDenied), message),
        DomainError::NotFound { .. } => headline(explain(Code::NotFound), &error.to_string()),
        DomainError::AlreadyExists { message, .. } => headline(explain(Code::AlreadyExists), message),
        DomainError::FailedPrecondition(message) => headline(explain(Code::FailedPrecondition), message),
        DomainError::Unavailable(message) => headline("failed: the store is unavailable", message),
        DomainError::Internal(message) => format!("failed: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;
    use crate::error::FieldViolation;

    #[test]
    fn invalid_argument_lists_every_field_violation() {
        let mut details = ErrorDetails::with_bad_request_violation(
            "identity_number",
            "check character is 'X' but the GB 11643 checksum gives '2'",
        );
        details.add_bad_request_violation("phone", "must be 11 digits starting with 1");
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "invalid request: 2 field(s) break a rule: identity_number, phone",
            details,
        );
        assert_eq!(
            describe_status(&status),
            "refused: invalid request: 2 field(s) break a rule: identity_number, phone\n\
             \x20 - identity_number: check character is 'X' but the GB 11643 checksum gives '2'\n\
             \x20 - phone: must be 11 digits starting with 1"
        );
        assert_eq!(Failure::from(status).exit_code(), EXIT_FAILED);
    }

    #[test]
    fn already_exists_names_the_existing_record() {
        let mut details = ErrorDetails::new();
        details.set_resource_info("record", "330106-00000001", "", "registered already");
        let status =
            Status::with_error_details(Code::AlreadyExists, "this identity number is registered already", details);
        assert_eq!(
            describe_status(&status),
            "refused: already exists: this identity number is registered already\n\
             \x20 existing: 330106-00000001"
        );
        let named = Status::already_exists("volunteer 330106-00000001 holds this identity number");
        assert_eq!(
            describe_status(&named),
            "refused: already exists: volunteer 330106-00000001 holds this identity number"
        );
    }

    #[test]
    fn other_codes_are_described_with_a_hint_where_useful() {
        assert_eq!(
            describe_status(&Status::not_found("volunteer 330106-00000009 not found")),
            "refused: not found: volunteer 330106-00000009 not found"
        );
        assert_eq!(
            describe_status(&Status::unauthenticated("unknown or revoked credentials")),
            "refused: not signed in: unknown or revoked credentials\n\
             \x20 (pass a token with --token or set ECOVOL_TOKEN)"
        );
        assert_eq!(describe_status(&Status::unavailable("")), "failed: the node is unavailable");
    }

    #[test]
    fn an_unreachable_node_is_told_apart_from_a_certificate_problem() {
        let down = Failure::Unreachable {
            node: "http://127.0.0.1:7070".into(),
            detail: "transport error: tcp connect error: Connection refused (os error 111)".into(),
        };
        assert_eq!(
            down.describe(),
            "cannot reach the node at http://127.0.0.1:7070: transport error: tcp connect error: Connection \
             refused (os error 111); is it running? (ecovol serve --config …)"
        );
        let untrusted = Failure::Unreachable {
            node: "https://127.0.0.1:7070".into(),
            detail: "transport error: invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(untrusted.describe().contains("check --ca"));
        assert_eq!(untrusted.exit_code(), EXIT_FAILED);
    }

    #[test]
    fn offline_refusals_read_like_refused_calls() {
        let error = DomainError::Invalid(vec![FieldViolation {
            field: "roles".into(),
            description: "at least one role is required".into(),
        }]);
        assert_eq!(describe_domain_error(&error), "refused: invalid request\n  - roles: at least one role is required");
        assert_eq!(Failure::from(error).exit_code(), EXIT_FAILED);
        assert_eq!(Failure::Usage("bad".into()).exit_code(), EXIT_USAGE);
    }
}
