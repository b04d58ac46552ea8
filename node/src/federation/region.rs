//! Statistics of a region of this node's territory, from the roll-up (ROL-1), with freshness per part.
//!
//! The roll-up holds, per origin and cell (China calendar month × activity kind), the origin's own figures
//! (`roll/<origin>/<yyyymm>/<kind>`, see `outbox`). A region's answer sums the cells of the origins inside it:
//! its cost grows with origins × months × kinds, never with the number of records. Cells are whole months, so a
//! region answer covers whole months: the range is widened to the first day of its first month and the last day
//! of its last month, and the answer says so.
//!
//! Distinct counts cannot be summed across months or nodes: `active_volunteer_months` adds each node's distinct
//! active volunteers of each month. The single-node `GetStats` gives the exact distinct count over a range.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::rollup::{Cell, Contribution, Figures};
use ecovol_proto::v1 as pb;

use super::apply::Router;
use super::outbox::parse_contribution_key;
use super::{Federation, OriginRecord};
use crate::app::App;
use crate::auth::{Caller, Role};
use crate::error::DomainError;
use crate::stats::StatsRange;
use crate::store::{self, Store};
use crate::wire;

/// Sums of the cells of one part of a region over the range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartSums {
    /// Per cell in the range (month ≠ 0).
    pub cells: BTreeMap<Cell, Figures>,
    /// New volunteers and teams of every month up to the end of the range.
    pub registered_volunteers: i64,
    pub teams: i64,
    /// The snapshot cell (current star holders).
    pub snapshot: Figures,
}

impl PartSums {
    fn add(&mut self, cell: Cell, figures: &Figures, first: u32, last: u32) {
        if cell == Cell::SNAPSHOT {
            self.snapshot = self.snapshot.add(figures);
            return;
        }
        if cell.month <= last {
            self.registered_volunteers += figures.new_volunteers;
            self.teams += figures.teams_registered;
        }
        if (first..=last).contains(&cell.month) {
            let sum = self.cells.entry(cell).or_default();
            *sum = sum.add(figures);
        }
    }

    fn merge(&mut self, other: &PartSums) {
        for (cell, figures) in &other.cells {
            let sum = self.cells.entry(*cell).or_default();
            *sum = sum.add(figures);
        }
        self.registered_volunteers += other.registered_volunteers;
        self.teams += other.teams;
        self.snapshot = self.snapshot.add(&other.snapshot);
    }

    /// The totals over the range.
    pub fn totals(&self) -> pb::RegionTotals {
        let flow = self.cells.values().fold(Figures::default(), |sum, f| sum.add(f));
        // Monthly flows live in kind-0 cells (volunteers, trainings, ratings, month-level active) and per-kind
        // cells (projects, sign-ups, hours, per-kind active): the month-level active count is in kind 0.
        let active_months: i64 =
            self.cells.iter().filter(|(cell, _)| cell.kind == 0).map(|(_, f)| f.active_volunteers).sum();
        let count = |value: i64| value.max(0) as u64;
        pb::RegionTotals {
            registered_volunteers: count(self.registered_volunteers),
            newly_registered_volunteers: count(flow.new_volunteers),
            active_volunteer_months: count(active_months),
            teams: count(self.teams),
            projects_published: count(flow.projects_published),
            sign_ups_accepted: count(flow.sign_ups_accepted),
            confirmed_hours_x100: count(flow.confirmed_hours_x100),
            trainings: count(flow.trainings),
            trainees: count(flow.trainees),
            rating_sum: count(flow.rating_sum),
            rating_count: count(flow.rating_count),
            star_distribution: self
                .snapshot
                .star_holders
                .iter()
                .enumerate()
                .filter(|(_, holders)| **holders > 0)
                .map(|(index, holders)| pb::StarCount { stars: index as u32 + 1, volunteers: count(*holders) })
                .collect(),
        }
    }
}

fn yyyymm(date: NaiveDate) -> u32 {
    date.year().max(0) as u32 * 100 + date.month()
}

fn month_bounds(range: StatsRange) -> (NaiveDate, NaiveDate) {
    let first = range.start_date.with_day(1).unwrap_or(range.start_date);
    let next_month = if range.end_date.month() == 12 {
        NaiveDate::from_ymd_opt(range.end_date.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(range.end_date.year(), range.end_date.month() + 1, 1)
    };
    let last = next_month.and_then(|d| d.pred_opt()).unwrap_or(range.end_date);
    (first, last)
}

/// Every stored contribution (this node's and its descendants').
pub fn contributions(store: &dyn Store) -> Result<Vec<(DivisionCode, Cell, Contribution)>, DomainError> {
    let mut found = Vec::new();
    let mut failure = None;
    store.scan(b"roll/", None, &mut |key, value| {
        if let Some((origin, cell)) = parse_contribution_key(key) {
            match store::decode::<Contribution>(key, value) {
                Ok(contribution) => found.push((origin, cell, contribution)),
                Err(error) => {
                    failure = Some(error);
                    return std::ops::ControlFlow::Break(());
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(found),
    }
}

/// The rolled-up statistics of a region: staff and auditors.
pub fn get(
    app: &App,
    caller: &Caller,
    request: pb::GetRegionStatsRequest,
) -> Result<pb::GetRegionStatsResponse, DomainError> {
    caller.require_any(&[Role::Staff, Role::Auditor], "reading statistics")?;
    answer(&*app.store, &Router::of(app), app.federation.children_status(), request)
}

/// The answer of [`get`] from the store, this node's routing and its children's freshness. What it reads is
/// `roll/…` (origins × months × kinds) and `fed/origin/…` (one per origin), never anything that grows with
/// records (unit test `a_region_answer_reads_the_same_keys_at_ten_times_the_records`).
fn answer(
    store: &dyn Store,
    router: &Router,
    children: Vec<ecovol_coordinator::completeness::ChildStatus>,
    request: pb::GetRegionStatsRequest,
) -> Result<pb::GetRegionStatsResponse, DomainError> {
    let own = router.code;
    let region = if request.region.trim().is_empty() {
        own
    } else {
        let region = DivisionCode::parse(request.region.trim())
            .map_err(|error| DomainError::invalid("region", error.to_string()))?;
        if region != own && router.route(region).is_none() {
            return Err(DomainError::invalid("region", format!("{region} is not inside the territory of {own}")));
        }
        region
    };
    let range =
        StatsRange::try_from(pb::GetStatsRequest { start_date: request.start_date, end_date: request.end_date })?;
    let (first_day, last_day) = month_bounds(range);
    let (first, last) = (yyyymm(first_day), yyyymm(last_day));

    // Parts: the region's own node, and each direct child of the region (through this node's routing when the
    // region is this node, so explicitly listed children count as children).
    let part_of = |origin: DivisionCode| -> Option<DivisionCode> {
        if origin == region {
            return Some(region);
        }
        if region == own { router.route(origin) } else { region.child_towards(origin).filter(|c| *c != region) }
    };
    let mut parts: BTreeMap<DivisionCode, PartSums> = BTreeMap::new();
    let mut newest: BTreeMap<DivisionCode, Option<chrono::DateTime<chrono::Utc>>> = BTreeMap::new();
    for (origin, cell, contribution) in contributions(store)? {
        if let Some(part) = part_of(origin) {
            parts.entry(part).or_default().add(cell, &contribution.figures, first, last);
            newest.entry(part).or_default();
        }
    }
    store::scan_json_keyed::<OriginRecord>(store, "fed/origin/", |key, record| {
        if let Some(part) = DivisionCode::parse(key).ok().and_then(part_of)
            && let Some(slot) = newest.get_mut(&part)
            && record.newest_entry > *slot
        {
            *slot = record.newest_entry;
        }
    })?;
    let status: BTreeMap<DivisionCode, ecovol_coordinator::completeness::ChildStatus> =
        children.into_iter().map(|child| (child.child, child)).collect();
    let freshness = |part: DivisionCode| -> Option<pb::Freshness> {
        if part == own {
            return None;
        }
        let through = router.route(part)?;
        let child = status.get(&through);
        Some(pb::Freshness {
            last_contact: child.and_then(|c| c.last_contact_ms).map(|ms| wire::timestamp(Federation::time_of(ms))),
            stale: child.is_none_or(|c| c.stale),
            backlog: child.map(|c| c.reported_backlog).unwrap_or(0),
            newest_entry: newest.get(&part).copied().flatten().map(wire::timestamp),
        })
    };
    let mut whole = PartSums::default();
    let mut answer_parts = Vec::new();
    let own_part = parts.remove(&region).unwrap_or_default();
    whole.merge(&own_part);
    answer_parts.push(pb::RegionPart {
        code: region.to_string(),
        level: level(region) as i32,
        own: true,
        totals: Some(own_part.totals()),
        freshness: freshness(region),
    });
    // Children of this node that never sent figures are shown too (stale, empty), not silently missing.
    if region == own {
        for child in status.keys() {
            parts.entry(*child).or_default();
        }
    }
    for (code, sums) in &parts {
        whole.merge(sums);
        answer_parts.push(pb::RegionPart {
            code: code.to_string(),
            level: level(*code) as i32,
            own: false,
            totals: Some(sums.totals()),
            freshness: freshness(*code),
        });
    }
    Ok(pb::GetRegionStatsResponse {
        region: region.to_string(),
        level: level(region) as i32,
        start_date: first_day.to_string(),
        end_date: last_day.to_string(),
        totals: Some(whole.totals()),
        parts: answer_parts,
        months: months(&whole),
        month_kinds: month_kinds(&whole),
        as_of: Some(wire::timestamp(chrono::Utc::now())),
    })
}

fn level(code: DivisionCode) -> pb::Level {
    match super::level_of(code) {
        crate::config::Level::Province => pb::Level::Province,
        crate::config::Level::City => pb::Level::City,
        crate::config::Level::County => pb::Level::County,
    }
}

fn label(month: u32) -> String {
    format!("{:04}-{:02}", month / 100, month % 100)
}

fn months(sums: &PartSums) -> Vec<pb::MonthStats> {
    let count = |value: i64| value.max(0) as u64;
    sums.cells
        .iter()
        .filter(|(cell, f)| cell.kind == 0 && **f != Figures::default())
        .map(|(cell, f)| pb::MonthStats {
            month: label(cell.month),
            newly_registered_volunteers: count(f.new_volunteers),
            active_volunteers: count(f.active_volunteers),
            trainings: count(f.trainings),
            trainees: count(f.trainees),
        })
        .collect()
}

fn month_kinds(sums: &PartSums) -> Vec<pb::MonthKindStats> {
    let count = |value: i64| value.max(0) as u64;
    sums.cells
        .iter()
        .filter(|(cell, f)| cell.kind != 0 && **f != Figures::default())
        .map(|(cell, f)| pb::MonthKindStats {
            month: label(cell.month),
            activity_kind: i32::from(cell.kind),
            projects_published: count(f.projects_published),
            sign_ups_accepted: count(f.sign_ups_accepted),
            confirmed_hours_x100: count(f.confirmed_hours_x100),
            active_volunteers: count(f.active_volunteers),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;
    use std::sync::atomic::{AtomicU64, Ordering};

    use ecovol_coordinator::rollup::Figures;

    use super::*;
    use crate::federation::outbox::contribution_key;
    use crate::stars::CertifyingLevel;
    use crate::store::{SledStore, StoreError, Visit, Write};

    /// A store that counts the entries a caller is handed (scanned or got).
    struct Counting {
        inner: SledStore,
        read: AtomicU64,
    }

    impl Store for Counting {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.read.fetch_add(1, Ordering::Relaxed);
            self.inner.get(key)
        }
        fn scan(&self, prefix: &[u8], start_after: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), StoreError> {
            self.inner.scan(prefix, start_after, &mut |key, value| {
                self.read.fetch_add(1, Ordering::Relaxed);
                visit(key, value)
            })
        }
        fn scan_rev(&self, prefix: &[u8], before: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), StoreError> {
            self.inner.scan_rev(prefix, before, &mut |key, value| {
                self.read.fetch_add(1, Ordering::Relaxed);
                visit(key, value)
            })
        }
        fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
            self.inner.apply(writes)
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.inner.flush()
        }
        fn size_on_disk(&self) -> Result<u64, StoreError> {
            self.inner.size_on_disk()
        }
    }

    fn code(text: &str) -> DivisionCode {
        DivisionCode::parse(text).unwrap()
    }

    /// Adds `records` confirmed records of county 330101 as a province holds them after the roll-up (the
    /// contributions of their cells rewritten, each volunteer's minutes) plus what a node keeps per record that
    /// a region answer must never read (`svc/…`, `roll_act/…`, outbox entries).
    fn add_records(store: &dyn Store, from: u64, records: u64) {
        let county = code("330101");
        let mut writes: Vec<Write> = Vec::new();
        for index in from..from + records {
            let cell = Cell { month: 202601 + (index % 12) as u32, kind: 1 + (index % 5) as u8 };
            let contribution = Contribution {
                version: index + 1,
                figures: Figures { confirmed_hours_x100: 100 * (index as i64 + 1), ..Figures::default() },
            };
            writes
                .push((contribution_key(county, cell).into_bytes(), Some(serde_json::to_vec(&contribution).unwrap())));
            writes.push((format!("svc/{index:012}").into_bytes(), Some(vec![b'x'; 200])));
            writes
                .push((format!("roll_act/{}/{}/{index:012}", cell.month, cell.kind).into_bytes(), Some(b"1".to_vec())));
            writes.push((format!("out/330101/{index:020}").into_bytes(), Some(vec![b'e'; 120])));
            writes.push((format!("fedvol_sum/{:032}", index % 1_000).into_bytes(), Some(b"{}".to_vec())));
            if writes.len() >= 5_000 {
                store.apply(&writes).unwrap();
                writes.clear();
            }
        }
        writes.push((super::super::origin_key(county).into_bytes(), Some(br#"{"applied_seq":1}"#.to_vec())));
        store.apply(&writes).unwrap();
    }

    #[test]
    fn a_region_answer_reads_the_same_keys_at_ten_times_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Counting { inner: SledStore::open(dir.path(), 16 << 20).unwrap(), read: AtomicU64::new(0) };
        let router = Router::standalone(code("330000"), CertifyingLevel::Province);
        let request = pb::GetRegionStatsRequest {
            region: String::new(),
            start_date: "2026-01-01".into(),
            end_date: "2026-12-31".into(),
        };
        let mut read = Vec::new();
        let mut hours = Vec::new();
        for (from, records) in [(0, 2_000), (2_000, 18_000)] {
            add_records(&store, from, records);
            store.read.store(0, Ordering::Relaxed);
            let answer = answer(&store, &router, Vec::new(), request.clone()).unwrap();
            read.push(store.read.load(Ordering::Relaxed));
            hours.push(answer.totals.unwrap_or_default().confirmed_hours_x100);
        }
        assert!(hours[1] > hours[0], "the answer follows the records: {hours:?}");
        assert_eq!(read[0], read[1], "entries read at 2,000 and 20,000 records");
        // 12 months × 5 kinds of one origin, and the origin's position.
        assert!(read[1] <= 12 * 5 + 1, "read {} entries", read[1]);
        // Nothing else under `roll` is taken for a contribution.
        let mut other = 0;
        store
            .inner
            .scan(b"roll/", None, &mut |_, _| {
                other += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(other, 12 * 5);
    }
}
