//! The controlled vocabularies of the wire contract as command-line values (`--department ecology-bureau`) and back
//! as printed names.
//!
//! One spelling both ways: the name a command prints for a wire value (`POLITICAL_STATUS_PARTY_MEMBER` →
//! `party-member`) is the value the same command line accepts, so output can be fed back as input.

use ecovol_proto::v1 as pb;

/// Declares a `clap::ValueEnum` whose variants mirror a generated wire enum of the same variant names.
macro_rules! wire_enum {
    (
        $(#[$outer:meta])*
        $name:ident => $wire:ty {
            $( $(#[$inner:meta])* $variant:ident ),+ $(,)?
        }
    ) => {
        $(#[$outer])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
        pub enum $name {
            $( $(#[$inner])* $variant ),+
        }

        impl From<$name> for $wire {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => <$wire>::$variant ),+
                }
            }
        }

        impl $name {
            /// The value as sent on the wire.
            pub fn wire(self) -> i32 {
                <$wire>::from(self) as i32
            }
        }
    };
}

wire_enum! {
    /// The departments named by the national guidance.
    Department => pb::Department {
        /// Ecology and environment bureau (lead department).
        EcologyBureau,
        /// Civilization office (co-lead before the 2023 reform).
        CivilizationOffice,
        /// Social work department (co-lead in many regions since the 2023 reform).
        SocialWork,
        /// Civil affairs.
        CivilAffairs,
        /// Education.
        Education,
        /// Communist Youth League.
        YouthLeague,
        /// Women's federation.
        WomensFederation,
        /// Any other department.
        Other,
    }
}

wire_enum! {
    /// What an account may do (separation of duties, MLPS level 3).
    Role => pb::Role {
        /// Accounts and configuration; never the registry or the audit trail.
        Operator,
        /// The registry and projects of the office.
        Staff,
        /// One team only (needs --team-id).
        TeamManager,
        /// One volunteer's own record (needs --volunteer-number).
        Volunteer,
        /// Read-only access to the audit trail.
        Auditor,
    }
}

wire_enum! {
    /// Gender, as derived from the identity number.
    Gender => pb::Gender {
        Male,
        Female,
    }
}

wire_enum! {
    /// Political status of a volunteer.
    PoliticalStatus => pb::PoliticalStatus {
        /// Member of the Communist Party of China.
        PartyMember,
        /// Member of the Communist Youth League.
        LeagueMember,
        /// The masses (neither).
        Masses,
    }
}

wire_enum! {
    /// Who consented for a minor (PIPL art. 31: under 14, a parent).
    GuardianConsent => pb::GuardianConsent {
        /// A guardian consented.
        Guardian,
        /// A parent consented.
        Parent,
    }
}

wire_enum! {
    /// The kinds of team the guidance names (part 4).
    TeamKind => pb::TeamKind {
        Agency,
        Enterprise,
        PublicInstitution,
        PeoplesOrganisation,
        SocialOrganisation,
        UniversityClub,
        Other,
    }
}

wire_enum! {
    /// A member's role in a team.
    MemberRole => pb::MemberRole {
        Leader,
        Backbone,
        Member,
    }
}

wire_enum! {
    /// The kinds of service site the guidance names (part 5(3)).
    SiteKind => pb::SiteKind {
        CivilizationPracticeCentre,
        EcoEducationVenue,
        OpenFacility,
        StudyBase,
        EducationBase,
        ScienceBase,
        NatureReserve,
        VolunteerStation,
        Other,
    }
}

/// The printed name of a wire enum value: its proto name without `prefix`, lowercase, `_` → `-`. `None` for the
/// unspecified value; a value this build does not know prints as `unknown-N` rather than vanishing.
fn printed_name(value: i32, proto_name: Option<&str>, prefix: &str) -> Option<String> {
    match proto_name {
        None => Some(format!("unknown-{value}")),
        Some(name) => {
            let rest = name.strip_prefix(prefix).unwrap_or(name);
            (rest != "UNSPECIFIED").then(|| rest.to_ascii_lowercase().replace('_', "-"))
        }
    }
}

/// Defines `pub fn $function(value: i32) -> Option<String>` printing a wire enum value.
macro_rules! name_of {
    ($function:ident, $wire:ty, $prefix:literal) => {
        #[doc = concat!("The printed name of a `", stringify!($wire), "` value; `None` if unspecified.")]
        pub fn $function(value: i32) -> Option<String> {
            printed_name(value, <$wire>::try_from(value).ok().map(|known| known.as_str_name()), $prefix)
        }
    };
}

name_of!(department_name, pb::Department, "DEPARTMENT_");
name_of!(role_name, pb::Role, "ROLE_");
name_of!(gender_name, pb::Gender, "GENDER_");
name_of!(political_status_name, pb::PoliticalStatus, "POLITICAL_STATUS_");
name_of!(guardian_consent_name, pb::GuardianConsent, "GUARDIAN_CONSENT_");
name_of!(volunteer_status_name, pb::VolunteerStatus, "VOLUNTEER_STATUS_");
name_of!(team_kind_name, pb::TeamKind, "TEAM_KIND_");
name_of!(member_role_name, pb::MemberRole, "MEMBER_ROLE_");
name_of!(site_kind_name, pb::SiteKind, "SITE_KIND_");
name_of!(level_name, pb::Level, "LEVEL_");
name_of!(outcome_name, pb::Outcome, "OUTCOME_");

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    /// Every accepted command-line value prints back under the same name.
    fn check_round_trip<T: ValueEnum + Copy>(wire: impl Fn(T) -> i32, name: fn(i32) -> Option<String>) {
        for variant in T::value_variants() {
            let accepted = variant.to_possible_value().map(|value| value.get_name().to_string());
            assert_eq!(name(wire(*variant)), accepted);
        }
    }

    #[test]
    fn printed_names_are_the_accepted_values() {
        check_round_trip(Department::wire, department_name);
        check_round_trip(Role::wire, role_name);
        check_round_trip(Gender::wire, gender_name);
        check_round_trip(PoliticalStatus::wire, political_status_name);
        check_round_trip(GuardianConsent::wire, guardian_consent_name);
        check_round_trip(TeamKind::wire, team_kind_name);
        check_round_trip(MemberRole::wire, member_role_name);
        check_round_trip(SiteKind::wire, site_kind_name);
    }

    #[test]
    fn unspecified_and_unknown_values() {
        assert_eq!(political_status_name(0), None);
        assert_eq!(political_status_name(3).as_deref(), Some("masses"));
        assert_eq!(gender_name(2).as_deref(), Some("female"));
        assert_eq!(level_name(3).as_deref(), Some("county"));
        assert_eq!(outcome_name(99).as_deref(), Some("unknown-99"));
    }
}
