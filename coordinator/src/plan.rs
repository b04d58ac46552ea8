//! Joint work plans (PLAN-1) as pure state machines: the issuer's plan and a receiving node's copy.
//!
//! The issuer's plan: `Draft → Countersigning → Issued → Closed`. In countersigning every participating
//! department signs or returns the plan; a return sends it back to `Draft` with the comment and clears the
//! signatures; the plan can be issued only once every participating department has signed. Edits happen only in
//! `Draft`. `Closed` is final.
//!
//! A receiving node's copy: `Received → Adopted → Closed`. A copy is adopted by the receiving node (which may then
//! add its own departments' tasks and pass the plan on to its own children); task progress is reported only on an
//! adopted copy; the issuer's closing closes every copy, adopted or not.
//!
//! Departments are named by text here (the node maps its own department type), so this crate stays free of the
//! node's types. A property test drives random command sequences through both machines and checks that no
//! sequence reaches an illegal state.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Where the issuer's plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    /// Being written; editable.
    Draft,
    /// Going round the participating departments for their signatures.
    Countersigning,
    /// Signed by all and sent to the children.
    Issued,
    /// Finished, with an evaluation; final.
    Closed,
}

/// Where a receiving node's copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyState {
    /// Delivered by the parent, not yet taken on here.
    Received,
    /// Taken on here (and passed on to this node's children).
    Adopted,
    /// The issuer closed the plan; final.
    Closed,
}

/// A command on the issuer's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanCommand {
    /// Change the plan's content (targets, tasks, departments): only in `Draft`.
    Edit,
    /// Send the draft round the participating departments.
    Submit,
    /// A participating department signs.
    Sign {
        /// The signing department.
        department: String,
    },
    /// A participating department returns the plan with a comment.
    Return {
        /// The returning department.
        department: String,
        /// What to change.
        comment: String,
    },
    /// Issue a fully countersigned plan to the children.
    Issue,
    /// Close an issued plan (with an evaluation).
    Close,
}

/// A command on a receiving node's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyCommand {
    /// Take the plan on here.
    Adopt,
    /// A task owner reports progress.
    ReportProgress,
    /// The issuer closed the plan.
    Close,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The command does not fit the plan's state.
    #[error("the plan is {state}: {action} is not possible now")]
    WrongState {
        /// The state the plan is in.
        state: String,
        /// What was asked.
        action: &'static str,
    },
    /// The department is not among the participants.
    #[error("department {0} does not take part in this plan")]
    NotParticipating(String),
    /// The department signed before.
    #[error("department {0} has signed already")]
    AlreadySigned(String),
    /// Nobody to countersign.
    #[error("a plan needs at least one participating department to countersign it")]
    NoParticipants,
    /// Signatures are missing.
    #[error("not every participating department has signed: {0:?} still to sign")]
    NotFullySigned(Vec<String>),
    /// A return without a comment.
    #[error("a return needs a comment saying what to change")]
    EmptyComment,
}

/// A comment a department gave when returning the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnComment {
    /// Who returned it.
    pub department: String,
    /// What to change.
    pub comment: String,
}

/// The issuer's plan, as far as its lifecycle goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanMachine {
    /// Where it stands.
    pub state: PlanState,
    /// The departments that countersign.
    pub participants: BTreeSet<String>,
    /// Those that signed in the current round.
    pub signed: BTreeSet<String>,
    /// Every return, oldest first.
    pub returns: Vec<ReturnComment>,
}

impl PlanMachine {
    /// A new draft with its participating departments.
    pub fn new(participants: impl IntoIterator<Item = String>) -> PlanMachine {
        PlanMachine {
            state: PlanState::Draft,
            participants: participants.into_iter().collect(),
            signed: BTreeSet::new(),
            returns: Vec::new(),
        }
    }

    fn wrong(&self, action: &'static str) -> PlanError {
        PlanError::WrongState { state: format!("{:?}", self.state).to_lowercase(), action }
    }

    /// Departments that have yet to sign.
    pub fn to_sign(&self) -> Vec<String> {
        self.participants.difference(&self.signed).cloned().collect()
    }

    /// Applies a command, or refuses it and changes nothing.
    pub fn apply(&mut self, command: &PlanCommand) -> Result<(), PlanError> {
        match (self.state, command) {
            (PlanState::Draft, PlanCommand::Edit) => Ok(()),
            (PlanState::Draft, PlanCommand::Submit) => {
                if self.participants.is_empty() {
                    return Err(PlanError::NoParticipants);
                }
                self.signed.clear();
                self.state = PlanState::Countersigning;
                Ok(())
            }
            (PlanState::Countersigning, PlanCommand::Sign { department }) => {
                if !self.participants.contains(department) {
                    return Err(PlanError::NotParticipating(department.clone()));
                }
                if !self.signed.insert(department.clone()) {
                    return Err(PlanError::AlreadySigned(department.clone()));
                }
                Ok(())
            }
            (PlanState::Countersigning, PlanCommand::Return { department, comment }) => {
                if !self.participants.contains(department) {
                    return Err(PlanError::NotParticipating(department.clone()));
                }
                if comment.trim().is_empty() {
                    return Err(PlanError::EmptyComment);
                }
                self.returns.push(ReturnComment { department: department.clone(), comment: comment.clone() });
                self.signed.clear();
                self.state = PlanState::Draft;
                Ok(())
            }
            (PlanState::Countersigning, PlanCommand::Issue) => {
                let missing = self.to_sign();
                if !missing.is_empty() {
                    return Err(PlanError::NotFullySigned(missing));
                }
                self.state = PlanState::Issued;
                Ok(())
            }
            (PlanState::Issued, PlanCommand::Close) => {
                self.state = PlanState::Closed;
                Ok(())
            }
            (_, PlanCommand::Edit) => Err(self.wrong("editing")),
            (_, PlanCommand::Submit) => Err(self.wrong("submitting for countersignature")),
            (_, PlanCommand::Sign { .. }) => Err(self.wrong("signing")),
            (_, PlanCommand::Return { .. }) => Err(self.wrong("returning")),
            (_, PlanCommand::Issue) => Err(self.wrong("issuing")),
            (_, PlanCommand::Close) => Err(self.wrong("closing")),
        }
    }

    /// The invariants every reachable state keeps (checked by the property test).
    pub fn check(&self) -> Result<(), String> {
        if !self.signed.is_subset(&self.participants) {
            return Err(format!("signatures {:?} from outside the participants", self.signed));
        }
        if self.state == PlanState::Draft && !self.signed.is_empty() {
            return Err("a draft carries signatures".into());
        }
        if matches!(self.state, PlanState::Issued | PlanState::Closed) && self.signed != self.participants {
            return Err("issued without every signature".into());
        }
        if self.state != PlanState::Draft && self.participants.is_empty() {
            return Err("past the draft without participants".into());
        }
        Ok(())
    }
}

/// A receiving node's copy of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyMachine {
    /// Where it stands.
    pub state: CopyState,
}

impl Default for CopyMachine {
    fn default() -> Self {
        CopyMachine { state: CopyState::Received }
    }
}

impl CopyMachine {
    /// Applies a command, or refuses it and changes nothing.
    pub fn apply(&mut self, command: CopyCommand) -> Result<(), PlanError> {
        let wrong =
            |state: CopyState, action| PlanError::WrongState { state: format!("{state:?}").to_lowercase(), action };
        match (self.state, command) {
            (CopyState::Received, CopyCommand::Adopt) => {
                self.state = CopyState::Adopted;
                Ok(())
            }
            (CopyState::Adopted, CopyCommand::ReportProgress) => Ok(()),
            (CopyState::Received | CopyState::Adopted, CopyCommand::Close) => {
                self.state = CopyState::Closed;
                Ok(())
            }
            (state, CopyCommand::Adopt) => Err(wrong(state, "adopting")),
            (state, CopyCommand::ReportProgress) => Err(wrong(state, "reporting progress")),
            (state, CopyCommand::Close) => Err(wrong(state, "closing")),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DEPARTMENTS: [&str; 4] = ["ecology_bureau", "civilization_office", "education", "youth_league"];

    fn command() -> impl Strategy<Value = PlanCommand> {
        let department = (0..DEPARTMENTS.len()).prop_map(|i| DEPARTMENTS[i].to_string());
        prop_oneof![
            Just(PlanCommand::Edit),
            Just(PlanCommand::Submit),
            department.clone().prop_map(|department| PlanCommand::Sign { department }),
            (department, prop_oneof![Just(String::new()), Just("补充培训目标".to_string())])
                .prop_map(|(department, comment)| PlanCommand::Return { department, comment }),
            Just(PlanCommand::Issue),
            Just(PlanCommand::Close),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// No sequence of commands reaches an illegal state, and a refused command changes nothing.
        #[test]
        fn no_command_sequence_reaches_an_illegal_state(
            participants in proptest::sample::subsequence(DEPARTMENTS.to_vec(), 0..=3),
            commands in proptest::collection::vec(command(), 0..40),
        ) {
            let mut plan = PlanMachine::new(participants.iter().map(|d| d.to_string()));
            let mut was_closed = false;
            for command in &commands {
                let before = plan.clone();
                match plan.apply(command) {
                    Ok(()) => {}
                    Err(_) => prop_assert_eq!(&plan, &before, "a refused command changed the plan"),
                }
                if let Err(problem) = plan.check() {
                    return Err(TestCaseError::fail(format!("{problem} after {command:?}")));
                }
                if was_closed {
                    prop_assert_eq!(plan.state, PlanState::Closed, "closed is final");
                }
                was_closed = plan.state == PlanState::Closed;
            }
        }

        #[test]
        fn a_copy_is_adopted_at_most_once_and_reports_only_when_adopted(
            commands in proptest::collection::vec(
                prop_oneof![Just(CopyCommand::Adopt), Just(CopyCommand::ReportProgress), Just(CopyCommand::Close)],
                0..20,
            ),
        ) {
            let mut copy = CopyMachine::default();
            let mut adoptions = 0;
            for command in commands {
                let before = copy;
                let result = copy.apply(command);
                if result.is_ok() && command == CopyCommand::Adopt {
                    adoptions += 1;
                }
                if command == CopyCommand::ReportProgress {
                    prop_assert_eq!(result.is_ok(), before.state == CopyState::Adopted);
                }
                if before.state == CopyState::Closed {
                    prop_assert_eq!(copy.state, CopyState::Closed);
                }
            }
            prop_assert!(adoptions <= 1);
        }
    }

    #[test]
    fn the_legal_path_and_a_return() {
        let mut plan = PlanMachine::new(["education".to_string(), "youth_league".to_string()]);
        plan.apply(&PlanCommand::Submit).unwrap();
        plan.apply(&PlanCommand::Sign { department: "education".into() }).unwrap();
        assert_eq!(plan.apply(&PlanCommand::Issue), Err(PlanError::NotFullySigned(vec!["youth_league".into()])));
        plan.apply(&PlanCommand::Return { department: "youth_league".into(), comment: "加上团队建设".into() }).unwrap();
        assert_eq!((plan.state, plan.signed.len(), plan.returns.len()), (PlanState::Draft, 0, 1));
        plan.apply(&PlanCommand::Edit).unwrap();
        plan.apply(&PlanCommand::Submit).unwrap();
        for department in ["education", "youth_league"] {
            plan.apply(&PlanCommand::Sign { department: department.into() }).unwrap();
        }
        assert!(matches!(
            plan.apply(&PlanCommand::Sign { department: "education".into() }),
            Err(PlanError::AlreadySigned(_))
        ));
        plan.apply(&PlanCommand::Issue).unwrap();
        assert!(matches!(plan.apply(&PlanCommand::Edit), Err(PlanError::WrongState { .. })));
        plan.apply(&PlanCommand::Close).unwrap();
        assert_eq!(plan.state, PlanState::Closed);
        assert!(plan.apply(&PlanCommand::Issue).is_err());
    }
}
