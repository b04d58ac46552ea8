//! Recording changes that matter above this node, in the same write as the change (data flow step 1).
//!
//! A use-case that changes something the federation counts calls [`record`] inside its committer job with a
//! [`Change`]: what happened, the minimised volunteer if one is concerned, and the change of this node's own
//! figures per statistics cell ([`Deltas`]). `record`
//! - adds the deltas to this node's own contributions (`roll/<own code>/<yyyymm>/<kind>`, versioned, so the
//!   roll-up CRDT of `ecovol_coordinator::rollup` can merge them anywhere without double counting), and
//! - when the node has a parent, appends an outbox entry `out/<origin>/<seq:020>` (a protobuf `UpEntry`) carrying
//!   the change and the new contributions of the touched cells.
//!
//! Both land in the job's atomic batch, so a change is never acknowledged without its entry, and an entry never
//! exists without its change. When the outbox holds `federation.backlog_entries_max` unacknowledged entries the
//! write is refused (Unavailable, with the reason): nothing is ever dropped.
//!
//! Keys:
//! - `roll/<origin>/<yyyymm:06>/<kind>` → `Contribution` (JSON): own and, on a parent, every descendant's;
//! - `roll_act/<yyyymm:06>/<kind>/<volunteer>` → confirmed records of the volunteer in the cell (the distinct
//!   active-volunteer counts are kept from their 0 ↔ 1 transitions);
//! - `out/<origin>/<seq:020>` → `UpEntry` (protobuf);
//! - `fedkey/<volunteer>` → the volunteer's federation key; `fedvol/<key>` → the local volunteer number.
//!
//! **Epochs.** An origin's sequence numbers carry its *epoch* in their high 32 bits ([`epoch_of`]): a node starts
//! in epoch 0 (1, 2, 3, …, as before epochs existed), and starts a new epoch when it was restored from a backup or
//! its parent lost entries it had acknowledged (`backfill::resync`). The first entry of an epoch
//! ([`starts_epoch`]) opens a whole re-announcement of the origin's state; a parent drops everything it held of
//! that origin and takes the announcement as the new truth (`apply`). Comparing positions as plain numbers
//! compares (epoch, index), so the coordinator's windows need no change.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Datelike, Utc};
use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::rollup::{Cell, Contribution, Figures};
use ecovol_proto::v1 as pb;
use prost::Message as _;
use ring::hmac;

use crate::commit::Txn;
use crate::error::DomainError;
use crate::project::ActivityKind;
use crate::store::StoreError;
use crate::wire;

/// This node's outbox: who it is, whether it has a parent, and what the uplink must send.
///
/// Shared by the committer (which records entries) and the uplink (which sends them). `appended` is advanced only
/// after the batch holding the entries was flushed, so the uplink never reads an entry that might vanish.
pub struct Outbox {
    origin: DivisionCode,
    linked: bool,
    backlog_max: u64,
    volunteer_key: hmac::Key,
    appended: Mutex<BTreeMap<DivisionCode, u64>>,
    acked: Mutex<BTreeMap<DivisionCode, u64>>,
    /// Per origin, a position up to which entries were withdrawn from the outbox (superseded by a new epoch):
    /// the uplink treats them as acknowledged.
    withdrawn: Mutex<BTreeMap<DivisionCode, u64>>,
    alarm: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Outbox {
    /// The outbox of a node. `linked`: the node has a parent, so changes are queued for it.
    /// `volunteer_key`: the federation-wide secret of volunteer keys.
    pub fn new(origin: DivisionCode, linked: bool, backlog_max: u64, volunteer_key: &[u8]) -> Outbox {
        Outbox {
            origin,
            linked,
            backlog_max,
            volunteer_key: hmac::Key::new(hmac::HMAC_SHA256, volunteer_key),
            appended: Mutex::new(BTreeMap::new()),
            acked: Mutex::new(BTreeMap::new()),
            withdrawn: Mutex::new(BTreeMap::new()),
            alarm: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// A node without a parent and with a key of its own (tests, stand-alone offices).
    pub fn standalone(origin: DivisionCode) -> Outbox {
        Outbox::new(origin, false, u64::MAX, format!("ecovol stand-alone {origin}").as_bytes())
    }

    pub fn origin(&self) -> DivisionCode {
        self.origin
    }

    /// True when changes are queued for a parent.
    pub fn linked(&self) -> bool {
        self.linked
    }

    /// The federation key of an identity number: the same on every node sharing the key file, and not reversible
    /// without it (HMAC-SHA-256, first 16 bytes, hex).
    pub fn volunteer_key(&self, identity_number: &str) -> String {
        let tag = hmac::sign(&self.volunteer_key, format!("ecovol volunteer v1\0{identity_number}").as_bytes());
        hex::encode(&tag.as_ref()[..16])
    }

    /// Called by the committer once entries are durable.
    pub(crate) fn appended(&self, entries: &[(DivisionCode, u64)]) {
        if entries.is_empty() {
            return;
        }
        if let Ok(mut appended) = self.appended.lock() {
            for (origin, seq) in entries {
                let position = appended.entry(*origin).or_insert(0);
                *position = (*position).max(*seq);
            }
        }
        self.wake.notify_one();
    }

    /// The highest durable seq per origin recorded since start (the uplink merges it with what it restored).
    pub fn appended_positions(&self) -> BTreeMap<DivisionCode, u64> {
        self.appended.lock().map(|appended| appended.clone()).unwrap_or_default()
    }

    /// The uplink records the parent's acknowledged positions (restored or new).
    pub fn set_acked(&self, acked: &BTreeMap<DivisionCode, u64>) {
        if let Ok(mut mine) = self.acked.lock() {
            mine.clone_from(acked);
        }
    }

    /// Entries durable in the outbox and not yet acknowledged by the parent, exact at the moment of the call: an
    /// office change counts here from the moment it was acknowledged to the office.
    pub fn pending(&self) -> u64 {
        let (Ok(appended), Ok(acked), Ok(withdrawn)) = (self.appended.lock(), self.acked.lock(), self.withdrawn.lock())
        else {
            return 0;
        };
        appended
            .iter()
            .map(|(origin, seq)| {
                let done = acked.get(origin).copied().unwrap_or(0).max(withdrawn.get(origin).copied().unwrap_or(0));
                seq.saturating_sub(done)
            })
            .sum()
    }

    /// Called once a write that deleted `origin`'s entries up to `seq` from the outbox is durable (they were
    /// superseded by a new epoch): the uplink skips them, and they no longer count as pending.
    pub(crate) fn withdraw(&self, origin: DivisionCode, seq: u64) {
        if let Ok(mut withdrawn) = self.withdrawn.lock() {
            let position = withdrawn.entry(origin).or_insert(0);
            *position = (*position).max(seq);
        }
        self.wake.notify_one();
    }

    /// Positions up to which entries were withdrawn, per origin (see [`withdraw`](Outbox::withdraw)).
    pub fn withdrawn_positions(&self) -> BTreeMap<DivisionCode, u64> {
        self.withdrawn.lock().map(|withdrawn| withdrawn.clone()).unwrap_or_default()
    }

    /// Resolves when new entries were appended (or at once if that happened since the last call).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Raises or ends the alarm from the entries not yet acknowledged (the uplink calls it on every round).
    pub fn refresh_alarm(&self) {
        let backlog = self.pending();
        let alarm = backlog >= self.backlog_max;
        let was = self.alarm.swap(alarm, Ordering::Relaxed);
        if alarm && !was {
            tracing::error!(
                backlog,
                backlog_max = self.backlog_max,
                "ALARM: the uplink backlog reached federation.backlog_entries_max; new changes are refused until \
                 the parent takes entries again (nothing is dropped)"
            );
        } else if was && !alarm {
            tracing::warn!(backlog, "uplink backlog below federation.backlog_entries_max again: changes accepted");
        }
    }

    pub fn backlog_max(&self) -> u64 {
        self.backlog_max
    }

    pub fn alarm(&self) -> bool {
        self.alarm.load(Ordering::Relaxed)
    }

    /// Refuses a new entry while the backlog is at its cap.
    pub(crate) fn check_room(&self) -> Result<(), DomainError> {
        if self.linked && self.alarm() {
            return Err(DomainError::Unavailable(format!(
                "the node holds {} changes its parent has not yet taken (federation.backlog_entries_max = {}): \
                 new changes are refused until the link to the parent works again",
                self.pending(),
                self.backlog_max
            )));
        }
        Ok(())
    }
}

/// Bits of a sequence number below the epoch.
pub const EPOCH_SHIFT: u32 = 32;
/// Epochs chosen from the clock count seconds from 2020-01-01T00:00:00Z, so a later restore gets a higher epoch.
const EPOCH_CLOCK_START: i64 = 1_577_836_800;

/// The epoch of a sequence number (0 for nodes that never started a new one).
pub fn epoch_of(seq: u64) -> u64 {
    seq >> EPOCH_SHIFT
}

/// The position just before the first entry of `epoch`.
pub fn epoch_base(epoch: u64) -> u64 {
    epoch << EPOCH_SHIFT
}

/// True for the first entry of an epoch above 0: it opens a re-announcement of the origin's whole state.
pub fn starts_epoch(seq: u64) -> bool {
    epoch_of(seq) > 0 && seq & ((1u64 << EPOCH_SHIFT) - 1) == 1
}

/// The epoch a node starts when its outbox sequence stands at `current`: above the current one, and at least the
/// seconds since 2020 (so two restores from the same backup, a second or more apart, never share an epoch).
pub fn next_epoch(current: u64, now: DateTime<Utc>) -> u64 {
    let clock = (now.timestamp() - EPOCH_CLOCK_START).max(0) as u64;
    (epoch_of(current) + 1).max(clock).min(u64::from(u32::MAX))
}

/// Changes of this node's own figures, per cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deltas(BTreeMap<Cell, Figures>);

impl Deltas {
    pub fn new() -> Deltas {
        Deltas::default()
    }

    /// Changes the figures of `cell` by `change` (applied to a zero `Figures`, so write `f.x += 1` or `-= 1`).
    pub fn add(&mut self, cell: Cell, change: impl FnOnce(&mut Figures)) -> &mut Deltas {
        let mut delta = Figures::default();
        change(&mut delta);
        let sum = self.0.entry(cell).or_default();
        *sum = sum.add(&delta);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(|figures| *figures == Figures::default())
    }

    pub fn cells(&self) -> impl Iterator<Item = (&Cell, &Figures)> {
        self.0.iter()
    }
}

/// The cell of an instant's China calendar month and an activity kind (0 for none).
pub fn cell_at(time: DateTime<Utc>, kind: u8) -> Cell {
    let local = time.with_timezone(&wire::china());
    Cell { month: local.year().max(0) as u32 * 100 + local.month(), kind }
}

/// The cell number of an activity kind (1–5, guidance order).
pub fn kind_number(kind: ActivityKind) -> u8 {
    pb::ActivityKind::from(kind) as i32 as u8
}

/// A change that matters above this node.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: pb::ChangeKind,
    /// The local id of the thing changed; never personal data.
    pub subject: String,
    pub volunteer: Option<pb::MinimisedVolunteer>,
    pub minutes_delta: i64,
    pub star: u32,
    pub deltas: Deltas,
    /// Plan adoptions and task reports.
    pub plan_report: Option<pb::PlanReport>,
    /// Campaign nominations and reviews.
    pub nomination: Option<pb::Nomination>,
}

impl Change {
    pub fn new(kind: pb::ChangeKind, subject: impl Into<String>) -> Change {
        Change {
            kind,
            subject: subject.into(),
            volunteer: None,
            minutes_delta: 0,
            star: 0,
            deltas: Deltas::new(),
            plan_report: None,
            nomination: None,
        }
    }
}

/// The key of an origin's contribution to a cell.
pub fn contribution_key(origin: DivisionCode, cell: Cell) -> String {
    format!("roll/{origin}/{:06}/{}", cell.month, cell.kind)
}

/// Parses a `roll/…` key back into its origin and cell.
pub fn parse_contribution_key(key: &[u8]) -> Option<(DivisionCode, Cell)> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix("roll/")?;
    let mut parts = text.split('/');
    let origin = DivisionCode::parse(parts.next()?).ok()?;
    let month = parts.next()?.parse().ok()?;
    let kind = parts.next()?.parse().ok()?;
    Some((origin, Cell { month, kind }))
}

/// The key of an outbox entry.
pub fn entry_key(origin: DivisionCode, seq: u64) -> String {
    format!("out/{origin}/{seq:020}")
}

/// The prefix of an origin's outbox entries.
pub fn entry_prefix(origin: DivisionCode) -> String {
    format!("out/{origin}/")
}

/// Records `change` in the job's write: own contributions updated, and an outbox entry when linked.
pub fn record(txn: &mut Txn<'_>, change: Change) -> Result<(), DomainError> {
    let outbox = txn.outbox();
    let origin = outbox.origin();
    let linked = outbox.linked();
    if linked {
        outbox.check_room()?;
    }
    let mut contributions = Vec::new();
    for (cell, delta) in change.deltas.cells() {
        if *delta == Figures::default() {
            continue;
        }
        let key = contribution_key(origin, *cell);
        let mut contribution: Contribution = txn.get_json(&key)?.unwrap_or_default();
        contribution.version += 1;
        contribution.figures = contribution.figures.add(delta);
        txn.put_json(key, &contribution);
        contributions.push(to_wire(*cell, &contribution));
    }
    if !linked {
        return Ok(());
    }
    let seq = txn.next_seq("outbox")?;
    let entry = pb::UpEntry {
        origin: origin.to_string(),
        seq,
        committed_at: Some(wire::timestamp(txn.now())),
        kind: change.kind as i32,
        subject: change.subject,
        volunteer: change.volunteer,
        minutes_delta: change.minutes_delta,
        star: change.star,
        contributions,
        plan_report: change.plan_report,
        nomination: change.nomination,
    };
    append(txn, origin, seq, entry.encode_to_vec());
    Ok(())
}

/// Puts an entry (this node's, or one forwarded from a child) into the outbox of this write.
pub(crate) fn append(txn: &mut Txn<'_>, origin: DivisionCode, seq: u64, encoded: Vec<u8>) {
    txn.put(entry_key(origin, seq), encoded);
    txn.emitted(origin, seq);
}

/// A contribution on the wire.
pub fn to_wire(cell: Cell, contribution: &Contribution) -> pb::CellContribution {
    let f = &contribution.figures;
    pb::CellContribution {
        month: cell.month,
        kind: u32::from(cell.kind),
        version: contribution.version,
        figures: Some(pb::Figures {
            new_volunteers: f.new_volunteers,
            active_volunteers: f.active_volunteers,
            projects_published: f.projects_published,
            sign_ups_accepted: f.sign_ups_accepted,
            confirmed_hours_x100: f.confirmed_hours_x100,
            trainings: f.trainings,
            trainees: f.trainees,
            rating_sum: f.rating_sum,
            rating_count: f.rating_count,
            teams_registered: f.teams_registered,
            star_holders: f.star_holders.to_vec(),
        }),
    }
}

/// A contribution from the wire, checked: a cell is a real month (or the snapshot cell) and a kind 0–5.
pub fn from_wire(contribution: &pb::CellContribution) -> Result<(Cell, Contribution), String> {
    let month = contribution.month;
    let valid_month = month == 0 || ((1900..=9999).contains(&(month / 100)) && (1..=12).contains(&(month % 100)));
    if !valid_month {
        return Err(format!("month {month} is not yyyymm"));
    }
    if contribution.kind > 5 {
        return Err(format!("activity kind {} is not 0–5", contribution.kind));
    }
    let f = contribution.figures.clone().unwrap_or_default();
    if f.star_holders.len() > 5 {
        return Err("star_holders has more than 5 levels".into());
    }
    let mut star_holders = [0i64; 5];
    for (slot, value) in star_holders.iter_mut().zip(&f.star_holders) {
        *slot = *value;
    }
    Ok((
        Cell { month, kind: contribution.kind as u8 },
        Contribution {
            version: contribution.version,
            figures: Figures {
                new_volunteers: f.new_volunteers,
                active_volunteers: f.active_volunteers,
                projects_published: f.projects_published,
                sign_ups_accepted: f.sign_ups_accepted,
                confirmed_hours_x100: f.confirmed_hours_x100,
                trainings: f.trainings,
                trainees: f.trainees,
                rating_sum: f.rating_sum,
                rating_count: f.rating_count,
                teams_registered: f.teams_registered,
                star_holders,
            },
        },
    ))
}

// ----- volunteers -----

fn fedkey_key(volunteer_number: &str) -> String {
    format!("fedkey/{volunteer_number}")
}

/// The key of the local volunteer number of a federation key.
pub fn fedvol_key(volunteer_key: &str) -> String {
    format!("fedvol/{volunteer_key}")
}

/// Remembers a newly registered volunteer's federation key (the registration's write).
pub fn remember_volunteer_key(txn: &mut Txn<'_>, volunteer_number: &str, identity_number: &str) -> String {
    let key = txn.outbox().volunteer_key(identity_number);
    txn.put(fedkey_key(volunteer_number), key.clone());
    txn.put(fedvol_key(&key), volunteer_number.to_string());
    key
}

/// The federation key of a local volunteer (registered through `remember_volunteer_key`).
pub fn volunteer_key_of(txn: &Txn<'_>, volunteer_number: &str) -> Result<String, DomainError> {
    match txn.get(fedkey_key(volunteer_number).as_bytes())? {
        Some(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        None => Err(DomainError::Internal(format!("volunteer {volunteer_number} has no federation key"))),
    }
}

/// The fields of a volunteer record read here (`vol/<number>`).
#[derive(serde::Deserialize)]
struct VolunteerView {
    gender: crate::validate::Gender,
    birth_date: chrono::NaiveDate,
    home_division_code: String,
    status: crate::registry::volunteer::VolunteerStatus,
}

fn minimised_view(view: VolunteerView, key: String) -> pb::MinimisedVolunteer {
    let gender = match view.gender {
        crate::validate::Gender::Male => pb::Gender::Male,
        crate::validate::Gender::Female => pb::Gender::Female,
    };
    pb::MinimisedVolunteer {
        key,
        birth_year: view.birth_date.year().max(0) as u32,
        gender: gender as i32,
        home_code: view.home_division_code,
        active: view.status == crate::registry::volunteer::VolunteerStatus::Active,
    }
}

/// The volunteer as the federation may see them (PRIV-1): key, birth year, gender, home region, active.
pub fn minimised(txn: &Txn<'_>, volunteer_number: &str) -> Result<pb::MinimisedVolunteer, DomainError> {
    let view: VolunteerView = txn
        .get_json(&crate::registry::volunteer::record_key(volunteer_number))?
        .ok_or_else(|| DomainError::not_found("volunteer", volunteer_number))?;
    Ok(minimised_view(view, volunteer_key_of(txn, volunteer_number)?))
}

/// As `minimised`, from a stored record read as JSON (the schema migration); unreadable fields stay unset.
pub fn minimised_of(record: &serde_json::Value, key: &str) -> pb::MinimisedVolunteer {
    match serde_json::from_value::<VolunteerView>(record.clone()) {
        Ok(view) => minimised_view(view, key.to_string()),
        Err(_) => pb::MinimisedVolunteer { key: key.to_string(), active: true, ..Default::default() },
    }
}

// ----- service hours -----

fn active_key(cell: Cell, volunteer_number: &str) -> String {
    format!("roll_act/{:06}/{}/{volunteer_number}", cell.month, cell.kind)
}

fn count_of(txn: &Txn<'_>, key: &str) -> Result<u64, StoreError> {
    Ok(txn
        .get(key.as_bytes())?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0))
}

/// Adds (`sign` = 1) or takes out (`sign` = −1) one confirmed service record of `volunteer_number`: its hours in
/// the cell of its start month and kind, and the distinct active-volunteer counts of that cell and of the month's
/// kind-0 cell, kept exact by counting each volunteer's records per cell.
pub fn service_deltas(
    txn: &mut Txn<'_>,
    deltas: &mut Deltas,
    volunteer_number: &str,
    kind: ActivityKind,
    start_time: DateTime<Utc>,
    hours_x100: u64,
    sign: i64,
) -> Result<(), DomainError> {
    let kind_cell = cell_at(start_time, kind_number(kind));
    let month_cell = cell_at(start_time, 0);
    deltas.add(kind_cell, |f| f.confirmed_hours_x100 += sign * hours_x100 as i64);
    for cell in [kind_cell, month_cell] {
        let key = active_key(cell, volunteer_number);
        let before = count_of(txn, &key)?;
        let after = if sign > 0 { before + 1 } else { before.saturating_sub(1) };
        if after == 0 {
            txn.delete(key);
        } else {
            txn.put(key, after.to_string());
        }
        if before == 0 && after > 0 {
            deltas.add(cell, |f| f.active_volunteers += 1);
        } else if before > 0 && after == 0 {
            deltas.add(cell, |f| f.active_volunteers -= 1);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_follow_the_china_calendar() {
        let late_utc = "2026-01-31T16:30:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(cell_at(late_utc, 3), Cell { month: 202602, kind: 3 }, "00:30 on 1 February in China");
        let early = "2026-01-31T15:59:59Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(cell_at(early, 0), Cell { month: 202601, kind: 0 });
    }

    #[test]
    fn contribution_keys_round_trip_and_wire_form_is_checked() {
        let origin = DivisionCode::parse("330106").unwrap();
        let cell = Cell { month: 202611, kind: 2 };
        assert_eq!(parse_contribution_key(contribution_key(origin, cell).as_bytes()), Some((origin, cell)));
        let contribution = Contribution {
            version: 7,
            figures: Figures { trainees: 4, star_holders: [1, 0, 0, 0, 2], ..Figures::default() },
        };
        assert_eq!(from_wire(&to_wire(cell, &contribution)), Ok((cell, contribution)));
        let mut bad = to_wire(cell, &contribution);
        bad.month = 202613;
        assert!(from_wire(&bad).unwrap_err().contains("yyyymm"));
        bad.month = 202612;
        bad.kind = 6;
        assert!(from_wire(&bad).unwrap_err().contains("kind"));
    }

    #[test]
    fn volunteer_keys_depend_on_the_federation_key_only() {
        let a = Outbox::new(DivisionCode::parse("330106").unwrap(), true, 10, b"shared federation secret");
        let b = Outbox::new(DivisionCode::parse("330108").unwrap(), false, 10, b"shared federation secret");
        let c = Outbox::new(DivisionCode::parse("330106").unwrap(), true, 10, b"another federation");
        let id = "11010519491231002X";
        assert_eq!(a.volunteer_key(id), b.volunteer_key(id), "one person, one key in every county");
        assert_ne!(a.volunteer_key(id), c.volunteer_key(id));
        assert_eq!(a.volunteer_key(id).len(), 32);
        assert!(!a.volunteer_key(id).contains(id));
    }

    #[test]
    fn epochs_live_in_the_high_bits_and_order_with_the_sequence() {
        assert_eq!(epoch_of(41), 0);
        assert!(!starts_epoch(1), "epoch 0 is the first-link numbering, not a re-announcement");
        let base = epoch_base(7);
        assert!(starts_epoch(base + 1) && !starts_epoch(base + 2) && !starts_epoch(base));
        assert!(base + 1 > u64::from(u32::MAX), "every entry of a later epoch follows every entry of epoch 0");
        let now = "2026-12-03T06:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = next_epoch(0, now);
        assert!(clock > 200_000_000, "seconds since 2020: {clock}");
        assert_eq!(next_epoch(epoch_base(clock) + 5, now), clock + 1, "always above the current epoch");
    }

    #[test]
    fn withdrawn_entries_are_no_longer_pending() {
        let origin = DivisionCode::parse("320102").unwrap();
        let outbox = Outbox::new(DivisionCode::parse("320100").unwrap(), true, 10, b"key");
        outbox.appended(&[(origin, 5)]);
        outbox.set_acked(&BTreeMap::from([(origin, 2)]));
        assert_eq!(outbox.pending(), 3);
        let base = epoch_base(9);
        outbox.withdraw(origin, base);
        outbox.appended(&[(origin, base + 4)]);
        assert_eq!(outbox.pending(), 4, "only the new epoch's entries wait");
    }

    #[test]
    fn deltas_sum_per_cell() {
        let cell = Cell { month: 202611, kind: 1 };
        let mut deltas = Deltas::new();
        deltas.add(cell, |f| f.sign_ups_accepted += 1).add(cell, |f| f.sign_ups_accepted -= 1);
        assert!(deltas.is_empty());
        deltas.add(cell, |f| f.trainees += 3);
        assert_eq!(deltas.cells().next().map(|(_, f)| f.trainees), Some(3));
    }
}
