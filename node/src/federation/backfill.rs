//! Store schema 1 → 2: a node that worked before it knew the federation gets, from its records, what the
//! federation hooks would have written all along.
//!
//! - every volunteer's federation key (`fedkey/`, `fedvol/`), from the sealed identity number;
//! - this node's own figures per cell (`roll/<own>/…`, version 1) and the active-volunteer markers (`roll_act/`),
//!   from the same facts `stats::collect` reads, so they equal `stats::aggregate` cell by cell;
//!
//! It runs once, in `App::open`, before the committer starts, as one atomic batch followed by a flush; the schema
//! version is stamped 2 in the same batch, so a crash leaves either the old store or the migrated one.
//!
//! [`announce`] is the other half: the first time a node starts with a parent, it tells the parent everything it
//! recorded before (one `Backfill` entry carrying every cell of its own figures, then one `VolunteerRegistered`
//! entry per volunteer with their confirmed minutes), so an office that worked alone can join the federation later
//! without its history missing above it. The same announcement opens a new epoch (see `outbox`): after a restore
//! from a backup (`fed/new_epoch`, written by `backup::restore`) and when the parent lost entries it had
//! acknowledged ([`resync`]).

use std::collections::BTreeMap;

use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::rollup::{Cell, Contribution, Figures};
use ecovol_proto::v1 as pb;
use prost::Message as _;

use super::outbox::{self, Outbox, cell_at, contribution_key, entry_key, kind_number, parse_contribution_key};
use crate::commit::Txn;
use crate::crypto::NodeKeys;
use crate::error::DomainError;
use crate::stats::{self, ActivityKindKey};
use crate::store::{self, Store, Write};

/// What a backfill wrote, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backfilled {
    pub volunteers: u64,
    pub cells: u64,
    pub entries: u64,
}

#[derive(serde::Deserialize)]
struct SealedVolunteer {
    volunteer_number: String,
    identity_sealed: String,
}

/// Migrates `store` (schema 1) and stamps it `schema_version`. See the module note.
pub fn run(
    store: &dyn Store,
    keys: &NodeKeys,
    outbox: &Outbox,
    schema_version: u32,
) -> Result<Backfilled, DomainError> {
    let origin = outbox.origin();
    let mut writes: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut done = Backfilled::default();

    let mut volunteers = Vec::new();
    store::scan_json::<SealedVolunteer>(store, "vol/", |v| volunteers.push(v))?;
    let mut volunteer_keys = BTreeMap::new();
    for volunteer in &volunteers {
        let identity = keys.open("identity_number", &volunteer.identity_sealed).map_err(|_| {
            DomainError::Internal(format!(
                "volunteer {}: the identity number cannot be opened with this node's key",
                volunteer.volunteer_number
            ))
        })?;
        let key = outbox.volunteer_key(&identity);
        writes.insert(format!("fedkey/{}", volunteer.volunteer_number).into_bytes(), key.clone().into_bytes());
        writes.insert(outbox::fedvol_key(&key).into_bytes(), volunteer.volunteer_number.clone().into_bytes());
        volunteer_keys.insert(volunteer.volunteer_number.clone(), key);
        done.volunteers += 1;
    }

    let facts = stats::collect(store)?;
    let mut cells: BTreeMap<Cell, Figures> = BTreeMap::new();
    let mut add = |cell: Cell, change: &dyn Fn(&mut Figures)| change(cells.entry(cell).or_default());
    for volunteer in &facts.volunteers {
        add(cell_at(volunteer.registered_at, 0), &|f| f.new_volunteers += 1);
    }
    for team in &facts.teams {
        add(cell_at(team.created_at, 0), &|f| f.teams_registered += 1);
    }
    for project in &facts.projects {
        add(cell_at(project.published_at, kind_number(project.activity_kind)), &|f| f.projects_published += 1);
    }
    for sign_up in &facts.accepted_sign_ups {
        add(cell_at(sign_up.project_start_at, kind_number(sign_up.activity_kind)), &|f| f.sign_ups_accepted += 1);
    }
    let mut markers: BTreeMap<(Cell, String), u64> = BTreeMap::new();
    for service in &facts.confirmed_service {
        let kind_cell = cell_at(service.start_time, ActivityKindKey::of(service.activity_kind).0);
        let hours = service.hours_x100 as i64;
        add(kind_cell, &|f| f.confirmed_hours_x100 += hours);
        for cell in [kind_cell, cell_at(service.start_time, 0)] {
            *markers.entry((cell, service.volunteer_number.clone())).or_default() += 1;
        }
    }
    for ((cell, volunteer), count) in &markers {
        add(*cell, &|f| f.active_volunteers += 1);
        writes.insert(
            format!("roll_act/{:06}/{}/{volunteer}", cell.month, cell.kind).into_bytes(),
            count.to_string().into_bytes(),
        );
    }
    for training in &facts.trainings {
        let trainees = training.trainees as i64;
        add(cell_at(training.held_at, 0), &|f| {
            f.trainings += 1;
            f.trainees += trainees;
        });
    }
    for rating in &facts.ratings {
        let value = i64::from(rating.rating);
        add(cell_at(rating.rated_at, 0), &|f| {
            f.rating_sum += value;
            f.rating_count += 1;
        });
    }
    for level in &facts.star_levels {
        if let Some(index) = (*level as usize).checked_sub(1).filter(|index| *index < 5) {
            add(Cell::SNAPSHOT, &|f| f.star_holders[index] += 1);
        }
    }
    for (cell, figures) in &cells {
        let contribution = Contribution { version: 1, figures: *figures };
        writes.insert(contribution_key(origin, *cell).into_bytes(), store::encode(&contribution));
        done.cells += 1;
    }

    writes.insert(b"meta/schema_version".to_vec(), schema_version.to_string().into_bytes());
    let batch: Vec<Write> = writes.into_iter().map(|(key, value)| (key, Some(value))).collect();
    store.apply(&batch)?;
    store.flush()?;
    Ok(done)
}

const OUTBOX_SEQ_KEY: &[u8] = b"meta/seq/outbox";
/// Written by `ecovol admin restore`: the epoch the restored node starts (see [`announce`]).
pub const NEW_EPOCH_KEY: &[u8] = b"fed/new_epoch";

/// On a node with a parent: queues its whole history for the parent when it has never written an outbox entry
/// (the first link, numbered 1, 2, 3, … in epoch 0), or when it was restored from a backup (`fed/new_epoch`,
/// written by the restore): then its own unsent entries are withdrawn and the announcement opens the new epoch,
/// so the parent replaces everything it held of this node. One batch, flushed. Returns the entries queued.
pub fn announce(store: &dyn Store, outbox: &Outbox) -> Result<u64, DomainError> {
    if !outbox.linked() {
        return Ok(0);
    }
    let origin = outbox.origin();
    if let Some(epoch) = store.get(NEW_EPOCH_KEY)? {
        let epoch = std::str::from_utf8(&epoch).ok().and_then(|text| text.parse::<u64>().ok()).ok_or_else(|| {
            DomainError::Internal(format!("{} is not a number", String::from_utf8_lossy(NEW_EPOCH_KEY)))
        })?;
        let base = outbox::epoch_base(epoch);
        let mut writes: Vec<Write> = own_entry_keys(store, origin)?.into_iter().map(|(key, _)| (key, None)).collect();
        let entries = announcement(store, outbox, base + 1, true)?;
        let last = base + entries.len() as u64;
        for entry in &entries {
            writes.push((entry_key(origin, entry.seq).into_bytes(), Some(entry.encode_to_vec())));
        }
        writes.push((OUTBOX_SEQ_KEY.to_vec(), Some(last.to_string().into_bytes())));
        writes.push((NEW_EPOCH_KEY.to_vec(), None));
        store.apply(&writes)?;
        store.flush()?;
        tracing::info!(
            epoch,
            entries = entries.len(),
            "restored from a backup: this node starts a new epoch and announces its whole state to its parent"
        );
        return Ok(entries.len() as u64);
    }
    if store.get(OUTBOX_SEQ_KEY)?.is_some() {
        return Ok(0);
    }
    let entries = announcement(store, outbox, 1, false)?;
    let mut writes: Vec<Write> =
        entries.iter().map(|entry| (entry_key(origin, entry.seq).into_bytes(), Some(entry.encode_to_vec()))).collect();
    writes.push((OUTBOX_SEQ_KEY.to_vec(), Some((entries.len() as u64).to_string().into_bytes())));
    store.apply(&writes)?;
    store.flush()?;
    Ok(entries.len() as u64)
}

/// In a committer job, when the parent reports that it lost entries of this node it had acknowledged: starts a
/// new epoch, withdraws this node's unsent entries and queues the announcement of its whole state. Does nothing
/// while an earlier new epoch is still waiting for the parent's first acknowledgement (that announcement is on
/// its way and answers the same need). Returns the position before the new epoch's first entry, for
/// `Outbox::withdraw` once the job is durable.
pub fn resync(txn: &mut Txn<'_>) -> Result<Option<u64>, DomainError> {
    let outbox = txn.outbox();
    if !outbox.linked() {
        return Ok(None);
    }
    let origin = outbox.origin();
    let current = match txn.get(OUTBOX_SEQ_KEY)? {
        Some(value) => String::from_utf8_lossy(&value).parse::<u64>().unwrap_or(0),
        None => 0,
    };
    let acked: u64 = txn.get_json(&super::link::acked_key(origin))?.unwrap_or(0);
    if outbox::epoch_of(current) > outbox::epoch_of(acked) {
        return Ok(None);
    }
    let epoch = outbox::next_epoch(current, txn.now());
    let base = outbox::epoch_base(epoch);
    for (key, _) in own_entry_keys(txn.store(), origin)? {
        txn.delete(key);
    }
    let entries = announcement(txn.store(), outbox, base + 1, true)?;
    let last = base + entries.len() as u64;
    for entry in entries {
        let seq = entry.seq;
        outbox::append(txn, origin, seq, entry.encode_to_vec());
    }
    txn.put(OUTBOX_SEQ_KEY.to_vec(), last.to_string());
    txn.delete(super::link::acked_key(origin));
    tracing::warn!(
        epoch,
        entries = last - base,
        "the parent lost entries it had acknowledged (restored from a backup): this node starts a new epoch and \
         announces its whole state again"
    );
    Ok(Some(base))
}

/// The keys (and seqs) of this node's own entries in its outbox.
fn own_entry_keys(store: &dyn Store, origin: DivisionCode) -> Result<Vec<(Vec<u8>, u64)>, DomainError> {
    let prefix = outbox::entry_prefix(origin);
    let mut keys = Vec::new();
    store.scan(prefix.as_bytes(), None, &mut |key, _| {
        let seq = std::str::from_utf8(&key[prefix.len()..]).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        keys.push((key.to_vec(), seq));
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(keys)
}

/// The entries announcing this node's whole own state, numbered from `first_seq`: one `Backfill` entry with every
/// cell of its own figures (also when there are none, if `always_backfill`: it opens a new epoch), then one
/// `VolunteerRegistered` entry per volunteer with their confirmed minutes.
fn announcement(
    store: &dyn Store,
    outbox: &Outbox,
    first_seq: u64,
    always_backfill: bool,
) -> Result<Vec<pb::UpEntry>, DomainError> {
    let origin = outbox.origin();
    let now = crate::wire::timestamp(chrono::Utc::now());
    let mut contributions = Vec::new();
    let mut failure = None;
    store.scan(format!("roll/{origin}/").as_bytes(), None, &mut |key, value| {
        match (parse_contribution_key(key), store::decode::<Contribution>(key, value)) {
            (Some((_, cell)), Ok(contribution)) => contributions.push(outbox::to_wire(cell, &contribution)),
            (_, Err(error)) => failure = Some(error),
            (None, _) => {}
        }
        std::ops::ControlFlow::Continue(())
    })?;
    if let Some(error) = failure {
        return Err(error.into());
    }
    let mut entries = Vec::new();
    let mut seq = first_seq;
    let mut entry = |kind: pb::ChangeKind| {
        let numbered = pb::UpEntry {
            origin: origin.to_string(),
            seq,
            committed_at: Some(now),
            kind: kind as i32,
            ..Default::default()
        };
        seq += 1;
        numbered
    };
    if always_backfill || !contributions.is_empty() {
        entries.push(pb::UpEntry { contributions, ..entry(pb::ChangeKind::Backfill) });
    }
    let mut volunteers = Vec::new();
    store.scan(b"fedkey/", None, &mut |key, value| {
        volunteers.push((
            String::from_utf8_lossy(&key[b"fedkey/".len()..]).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
        std::ops::ControlFlow::Continue(())
    })?;
    for (number, key) in volunteers {
        let record =
            store::get_json::<serde_json::Value>(store, format!("vol/{number}").as_bytes())?.unwrap_or_default();
        let minutes = crate::hours::confirmed_total(store, &number)?.confirmed_minutes;
        entries.push(pb::UpEntry {
            volunteer: Some(outbox::minimised_of(&record, &key)),
            minutes_delta: minutes as i64,
            ..entry(pb::ChangeKind::VolunteerRegistered)
        });
    }
    Ok(entries)
}
