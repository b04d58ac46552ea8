//! The office's registry: volunteers, teams and organisations, service sites. Each submodule holds the domain
//! types, their validating conversions from the wire, the stored records and the use-cases.

pub mod site;
pub mod team;
pub mod volunteer;
