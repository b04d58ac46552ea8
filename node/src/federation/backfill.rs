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
//! without its history missing above it.

use std::collections::BTreeMap;

use ecovol_coordinator::rollup::{Cell, Contribution, Figures};
use ecovol_proto::v1 as pb;
use prost::Message as _;

use super::outbox::{self, Outbox, cell_at, contribution_key, entry_key, kind_number, parse_contribution_key};
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

/// On a node with a parent that has never written an outbox entry: queues its history for the parent (see the
/// module note) and starts the outbox sequence, in one batch. Returns the entries queued.
pub fn announce(store: &dyn Store, outbox: &Outbox) -> Result<u64, DomainError> {
    if !outbox.linked() || store.get(OUTBOX_SEQ_KEY)?.is_some() {
        return Ok(0);
    }
    let origin = outbox.origin();
    let now = crate::wire::timestamp(chrono::Utc::now());
    let mut writes: Vec<Write> = Vec::new();
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
    let mut seq = 0u64;
    let mut entry = |kind: pb::ChangeKind| {
        seq += 1;
        pb::UpEntry {
            origin: origin.to_string(),
            seq,
            committed_at: Some(now),
            kind: kind as i32,
            ..Default::default()
        }
    };
    if !contributions.is_empty() {
        let backfill = pb::UpEntry { contributions, ..entry(pb::ChangeKind::Backfill) };
        writes.push((entry_key(origin, backfill.seq).into_bytes(), Some(backfill.encode_to_vec())));
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
        let registered = pb::UpEntry {
            volunteer: Some(outbox::minimised_of(&record, &key)),
            minutes_delta: minutes as i64,
            ..entry(pb::ChangeKind::VolunteerRegistered)
        };
        writes.push((entry_key(origin, registered.seq).into_bytes(), Some(registered.encode_to_vec())));
    }
    writes.push((OUTBOX_SEQ_KEY.to_vec(), Some(seq.to_string().into_bytes())));
    store.apply(&writes)?;
    store.flush()?;
    Ok(seq)
}
