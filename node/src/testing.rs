//! Support shared by the unit tests of every module (compiled for tests only).

use crate::error::DomainError;

/// The fields that broke a rule: empty if `result` is `Ok`; panics on any error other than InvalidArgument.
pub fn violated_fields<T>(result: Result<T, DomainError>) -> Vec<String> {
    match result {
        Ok(_) => Vec::new(),
        Err(DomainError::Invalid(violations)) => violations.into_iter().map(|v| v.field).collect(),
        Err(other) => panic!("unexpected {other}"),
    }
}

/// Converts `request` into the command `C` and compares the fields that broke a rule (the table-driven check of
/// every validating `TryFrom`).
pub fn check<C, R>(request: R, expected_fields: &[&str])
where
    R: std::fmt::Debug + Clone,
    C: TryFrom<R, Error = DomainError>,
{
    assert_eq!(violated_fields(C::try_from(request.clone())), expected_fields, "request {request:?}");
}
