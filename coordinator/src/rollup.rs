//! Roll-ups (ROL-1) as a state-based CRDT: per contributor and cell, the versioned figures with the highest
//! version win (model: garage `src/model/index_counter.rs`).
//!
//! Each node publishes, for itself (the origin) and each statistics cell, a [`Contribution`]: its own local
//! figures for that cell and a version that grows with every change. Contributions travel upward and may be
//! repeated, lost and reordered; a node keeps, per (origin, cell), only the highest version.
//!
//! Merge laws, for any states `a`, `b`, `c` (a state is a set of contributions; [`Rollup::merge_state`] is the
//! join, and [`Rollup::merge`] joins a one-contribution state):
//!
//! - commutative: `a ⊔ b = b ⊔ a`;
//! - associative: `(a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)`;
//! - idempotent: `a ⊔ a = a`.
//!
//! These hold provided that equal versions of one (origin, cell) carry equal figures — the origin never
//! publishes two different figures under one version (it bumps the version on every change, and persists it).
//! On a tie the existing contribution is kept. Consequently a region's [`total`](Rollup::total) at
//! quiescence is the sum over its origins of their latest figures, whatever the delivery order (ROL-1). The
//! proptests below check the laws and the totals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::region::DivisionCode;

/// One statistics cell: a month and an activity kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cell {
    /// The month, as `yyyymm` (e.g. `202611`).
    pub month: u32,
    /// The activity kind, 0..=5; 0 for figures that belong to no kind (e.g. volunteer registrations).
    pub kind: u8,
}

impl Cell {
    /// The cell of figures that are a snapshot rather than a monthly flow (current star holders).
    pub const SNAPSHOT: Cell = Cell { month: 0, kind: 0 };
}

/// The counters of the single-node `stats`, for one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Figures {
    /// Volunteers registered.
    pub new_volunteers: i64,
    /// Volunteers with confirmed hours.
    pub active_volunteers: i64,
    /// Projects published.
    pub projects_published: i64,
    /// Sign-ups accepted.
    pub sign_ups_accepted: i64,
    /// Confirmed service hours × 100.
    pub confirmed_hours_x100: i64,
    /// Trainings held.
    pub trainings: i64,
    /// Trainees of those trainings.
    pub trainees: i64,
    /// Sum of evaluation ratings.
    pub rating_sum: i64,
    /// Number of evaluation ratings.
    pub rating_count: i64,
    /// Teams registered.
    #[serde(default)]
    pub teams_registered: i64,
    /// Volunteers holding 1★ … 5★ now (index = star − 1); only in the snapshot cell [`Cell::SNAPSHOT`].
    #[serde(default)]
    pub star_holders: [i64; 5],
}

impl Figures {
    /// Field-wise sum (saturating, so a corrupt input cannot panic).
    pub fn add(&self, other: &Figures) -> Figures {
        Figures {
            new_volunteers: self.new_volunteers.saturating_add(other.new_volunteers),
            active_volunteers: self.active_volunteers.saturating_add(other.active_volunteers),
            projects_published: self.projects_published.saturating_add(other.projects_published),
            sign_ups_accepted: self.sign_ups_accepted.saturating_add(other.sign_ups_accepted),
            confirmed_hours_x100: self.confirmed_hours_x100.saturating_add(other.confirmed_hours_x100),
            trainings: self.trainings.saturating_add(other.trainings),
            trainees: self.trainees.saturating_add(other.trainees),
            rating_sum: self.rating_sum.saturating_add(other.rating_sum),
            rating_count: self.rating_count.saturating_add(other.rating_count),
            teams_registered: self.teams_registered.saturating_add(other.teams_registered),
            star_holders: std::array::from_fn(|i| self.star_holders[i].saturating_add(other.star_holders[i])),
        }
    }
}

/// One origin's figures for one cell, under a version that grows with every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Contribution {
    /// Grows with every change of `figures` at the origin; equal versions carry equal figures.
    pub version: u64,
    /// The origin's own local figures for the cell.
    pub figures: Figures,
}

/// A region's figures broken down by the direct children of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ByChild {
    /// The node's own local figures.
    pub own: Figures,
    /// Per direct child, the sum over the child's subtree. Children without contributions are absent.
    pub children: BTreeMap<DivisionCode, Figures>,
}

/// The roll-up state: per (origin, cell), the contribution with the highest version seen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rollup {
    contributions: BTreeMap<(DivisionCode, Cell), Contribution>,
}

impl Rollup {
    /// An empty roll-up.
    pub fn new() -> Rollup {
        Rollup::default()
    }

    /// Merges one contribution: kept if its version is higher than the stored one (or none is stored).
    /// Returns true if the state changed (the node then persists it and forwards it upward).
    pub fn merge(&mut self, origin: DivisionCode, cell: Cell, contribution: Contribution) -> bool {
        match self.contributions.get_mut(&(origin, cell)) {
            Some(existing) if existing.version >= contribution.version => false,
            Some(existing) => {
                *existing = contribution;
                true
            }
            None => {
                self.contributions.insert((origin, cell), contribution);
                true
            }
        }
    }

    /// Joins another state into this one (every contribution of `other` merged).
    pub fn merge_state(&mut self, other: &Rollup) {
        for ((origin, cell), contribution) in &other.contributions {
            self.merge(*origin, *cell, *contribution);
        }
    }

    /// The stored contribution of `origin` for `cell`.
    pub fn get(&self, origin: DivisionCode, cell: Cell) -> Option<&Contribution> {
        self.contributions.get(&(origin, cell))
    }

    /// Every stored contribution, ordered by origin then cell.
    pub fn contributions(&self) -> impl Iterator<Item = (DivisionCode, Cell, &Contribution)> {
        self.contributions.iter().map(|((o, c), contribution)| (*o, *c, contribution))
    }

    /// The figures of `region` for `cell`: the sum over origins inside the region (the region itself
    /// included). Linear in the number of stored origins × cells, independent of the number of records.
    pub fn total(&self, region: DivisionCode, cell: Cell) -> Figures {
        self.contributions
            .iter()
            .filter(|((origin, c), _)| *c == cell && region.contains(*origin))
            .fold(Figures::default(), |sum, (_, contribution)| sum.add(&contribution.figures))
    }

    /// The figures of `parent`'s region for `cell`, split into `parent`'s own figures and, per direct child,
    /// the sum over the child's subtree. Origins outside `parent` are left out.
    pub fn total_by_child(&self, parent: DivisionCode, cell: Cell) -> ByChild {
        let mut by_child = ByChild::default();
        for ((origin, c), contribution) in &self.contributions {
            if *c != cell {
                continue;
            }
            match parent.child_towards(*origin) {
                Some(child) if child == parent => by_child.own = by_child.own.add(&contribution.figures),
                Some(child) => {
                    let sum = by_child.children.entry(child).or_default();
                    *sum = sum.add(&contribution.figures);
                }
                None => {}
            }
        }
        by_child
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::region::code;

    const CELL: Cell = Cell { month: 202611, kind: 1 };

    fn hours(version: u64, confirmed_hours_x100: i64) -> Contribution {
        Contribution { version, figures: Figures { confirmed_hours_x100, ..Figures::default() } }
    }

    /// Merges `merges` (origin, version, hours) in order into an empty roll-up and compares the stored hours
    /// of each origin in `expected`.
    fn check(merges: &[(&str, u64, i64)], expected: &[(&str, Option<(u64, i64)>)]) {
        let mut rollup = Rollup::new();
        for (origin, version, h) in merges {
            rollup.merge(code(origin), CELL, hours(*version, *h));
        }
        for (origin, want) in expected {
            let got = rollup.get(code(origin), CELL).map(|c| (c.version, c.figures.confirmed_hours_x100));
            assert_eq!(got, *want, "{origin} after {merges:?}");
        }
    }

    #[test]
    fn merge_keeps_the_highest_version() {
        let k = "330106";
        // (merges (origin, version, hours), expected per origin (version, hours))
        type Case<'a> = (&'a [(&'a str, u64, i64)], &'a [(&'a str, Option<(u64, i64)>)]);
        let cases: &[Case] = &[
            (&[], &[(k, None)]),
            (&[(k, 1, 100)], &[(k, Some((1, 100)))]),
            (&[(k, 1, 100), (k, 2, 250)], &[(k, Some((2, 250)))]),
            (&[(k, 2, 250), (k, 1, 100)], &[(k, Some((2, 250)))]),
            (&[(k, 2, 250), (k, 2, 250)], &[(k, Some((2, 250)))]),
            (&[(k, 3, 0), ("330102", 1, 7)], &[(k, Some((3, 0))), ("330102", Some((1, 7)))]),
        ];
        for (merges, expected) in cases {
            check(merges, expected);
        }
    }

    #[test]
    fn merge_reports_change_and_keeps_existing_on_tie() {
        let mut rollup = Rollup::new();
        assert!(rollup.merge(code("330106"), CELL, hours(1, 100)));
        assert!(!rollup.merge(code("330106"), CELL, hours(1, 999)), "tie keeps the existing");
        assert_eq!(rollup.get(code("330106"), CELL), Some(&hours(1, 100)));
        assert!(!rollup.merge(code("330106"), CELL, hours(0, 5)));
        assert!(rollup.merge(code("330106"), CELL, hours(2, 5)));
    }

    #[test]
    fn totals_by_region_and_by_child() {
        let mut rollup = Rollup::new();
        let other_cell = Cell { month: 202610, kind: 1 };
        for (origin, h) in
            [("330000", 1), ("330100", 10), ("330106", 100), ("330102", 1_000), ("330206", 10_000), ("339001", 7)]
        {
            rollup.merge(code(origin), CELL, hours(1, h));
        }
        rollup.merge(code("330106"), other_cell, hours(1, 5));
        rollup.merge(code("320106"), CELL, hours(1, 3));
        let cases = [
            ("330000", 11_118),
            ("330100", 1_110),
            ("330106", 100),
            ("330200", 10_000),
            ("339000", 0),
            ("339001", 7),
            ("320000", 3),
        ];
        for (region, want) in cases {
            assert_eq!(rollup.total(code(region), CELL).confirmed_hours_x100, want, "{region}");
        }
        let by = rollup.total_by_child(code("330000"), CELL);
        assert_eq!(by.own.confirmed_hours_x100, 1);
        let children: Vec<(String, i64)> =
            by.children.iter().map(|(c, f)| (c.to_string(), f.confirmed_hours_x100)).collect();
        assert_eq!(children, [("330100".into(), 1_110), ("330200".into(), 10_000), ("339001".into(), 7)]);
        let sum = by.children.values().fold(by.own, |s, f| s.add(f));
        assert_eq!(sum, rollup.total(code("330000"), CELL), "ROL-1: own + children = total");
    }

    #[test]
    fn figures_add_every_field() {
        let a = Figures {
            new_volunteers: 1,
            active_volunteers: 2,
            projects_published: 3,
            sign_ups_accepted: 4,
            confirmed_hours_x100: 5,
            trainings: 6,
            trainees: 7,
            rating_sum: 8,
            rating_count: 9,
            teams_registered: 10,
            star_holders: [1, 2, 3, 4, 5],
        };
        let b = a.add(&a);
        assert_eq!(
            b,
            Figures {
                new_volunteers: 2,
                active_volunteers: 4,
                projects_published: 6,
                sign_ups_accepted: 8,
                confirmed_hours_x100: 10,
                trainings: 12,
                trainees: 14,
                rating_sum: 16,
                rating_count: 18,
                teams_registered: 20,
                star_holders: [2, 4, 6, 8, 10],
            }
        );
        assert_eq!(Figures { trainees: i64::MAX, ..a }.add(&a).trainees, i64::MAX);
    }

    const ORIGINS: [&str; 5] = ["330000", "330100", "330106", "330102", "330206"];

    /// The figures an origin publishes under a version: a function of (origin, cell, version), so equal
    /// versions carry equal figures as the laws require.
    fn figures_of(origin: usize, kind: u8, version: u64) -> Figures {
        let base = (origin as i64 + 1) * 1_000 + i64::from(kind) * 100 + version as i64;
        Figures { confirmed_hours_x100: base, rating_sum: base % 7, rating_count: 1, ..Figures::default() }
    }

    type Merge = (usize, u8, u64);

    fn merges() -> impl Strategy<Value = Vec<Merge>> {
        prop::collection::vec((0usize..ORIGINS.len(), 0u8..3, 0u64..6), 0..40)
    }

    fn state_of(merges: &[Merge]) -> Rollup {
        let mut rollup = Rollup::new();
        for (o, kind, version) in merges {
            let cell = Cell { month: 202611, kind: *kind };
            rollup.merge(
                code(ORIGINS[*o]),
                cell,
                Contribution { version: *version, figures: figures_of(*o, *kind, *version) },
            );
        }
        rollup
    }

    fn join(a: &Rollup, b: &Rollup) -> Rollup {
        let mut out = a.clone();
        out.merge_state(b);
        out
    }

    proptest! {
        #[test]
        fn merge_order_and_repeats_do_not_matter(ms in merges(), seed in any::<u64>(), dup in 0usize..10) {
            // Shuffle with a seeded LCG, and repeat some merges.
            let mut shuffled = ms.clone();
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let repeats: Vec<Merge> = shuffled.iter().take(dup).copied().collect();
            shuffled.extend(repeats);
            prop_assert_eq!(state_of(&ms), state_of(&shuffled));
        }

        #[test]
        fn join_is_commutative_associative_idempotent(a in merges(), b in merges(), c in merges()) {
            let (a, b, c) = (state_of(&a), state_of(&b), state_of(&c));
            prop_assert_eq!(join(&a, &b), join(&b, &a));
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
            prop_assert_eq!(join(&a, &a), a);
        }

        #[test]
        fn totals_are_sums_of_per_origin_maxima(ms in merges(), kind in 0u8..3) {
            let rollup = state_of(&ms);
            let cell = Cell { month: 202611, kind };
            for region in ["330000", "330100", "330200", "330106"] {
                let region = code(region);
                let mut expected = Figures::default();
                for (o, origin) in ORIGINS.iter().enumerate() {
                    let max = ms.iter().filter(|(mo, k, _)| *mo == o && *k == kind).map(|(_, _, v)| *v).max();
                    if let Some(v) = max && region.contains(code(origin)) {
                        expected = expected.add(&figures_of(o, kind, v));
                    }
                }
                prop_assert_eq!(rollup.total(region, cell), expected);
            }
            let by = rollup.total_by_child(code("330000"), cell);
            prop_assert_eq!(by.children.values().fold(by.own, |s, f| s.add(f)), rollup.total(code("330000"), cell));
        }
    }
}
