//! Star rating (星级志愿者): a volunteer's star from their cumulative **confirmed** hours against the node's
//! `[stars]` thresholds, and the history of every star reached or lost.
//!
//! Rules (DOMAIN.md "Star rating"): the common scale is 100 / 300 / 600 / 1000 / 1500 h (MCA practice, China
//! Association of Social Work), regions differ, so thresholds are configuration; the certifying level is tiered in
//! some provinces (Fujian: 1–2★ county, 3–4★ city, 5★ province), so it is configuration too. For now only this
//! node's hours count; the federation extends it to hours served anywhere in the province.
//!
//! A star is reached when the confirmed minutes reach its threshold (exactly at the threshold counts), and lost
//! when a revocation or an amendment drops them below it. Nothing is deleted: a lost star is a `lost` event.
//! A star whose certifying level is this node's level, or a lower one, is certified when reached; a higher level's
//! star is recorded as awaiting that level's certification.
//!
//! The hours module calls `on_total_changed` in the same write as every change of `svc_total/<volunteer>`, so the
//! star never disagrees with the committed total. The rule in force lives in the store (`meta/stars_rule`, written
//! at start-up by `install_rule` when the configured rule differs from the one in force, as an audited change),
//! because the hours use-cases do not carry the configuration; a store without it uses the built-in rule (the
//! default scale on a county node). A changed rule is applied at each volunteer's next change of total.
//!
//! Keys:
//! - `meta/stars_rule` the rule in force;
//! - `star/<volunteer>` → `StarState` (current star, when it was reached, the last event number);
//! - `star_ev/<volunteer>/<seq:010>` → `StarEvent`, in order.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::audit::AuditContext;
use crate::auth::Caller;
use crate::commit::Txn;
use crate::config::{Config, Level, StarsSection};
use crate::error::DomainError;
use crate::store::{self, Store};
use crate::wire;

/// The key of the rule in force.
pub const RULE_KEY: &str = "meta/stars_rule";

/// The level of office that certifies a star. Ordered: county < city < province.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertifyingLevel {
    County,
    City,
    Province,
}

impl From<Level> for CertifyingLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::County => CertifyingLevel::County,
            Level::City => CertifyingLevel::City,
            Level::Province => CertifyingLevel::Province,
        }
    }
}

impl CertifyingLevel {
    pub fn label(self) -> &'static str {
        match self {
            CertifyingLevel::County => "county",
            CertifyingLevel::City => "city",
            CertifyingLevel::Province => "province",
        }
    }
}

/// The star rule in force, as stored under `meta/stars_rule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StarRule {
    /// Confirmed minutes needed for star 1, 2, …, strictly increasing.
    pub thresholds_minutes: Vec<u64>,
    /// The level that certifies each star, one per threshold.
    pub certifying_levels: Vec<CertifyingLevel>,
    /// This node's level.
    pub node_level: CertifyingLevel,
}

impl StarRule {
    /// The rule of a (validated) `[stars]` section on a node of `node_level`.
    pub fn new(section: &StarsSection, node_level: Level) -> Self {
        StarRule {
            thresholds_minutes: section.thresholds_hours.iter().map(|hours| u64::from(*hours) * 60).collect(),
            certifying_levels: section.certifying_levels.iter().map(|level| CertifyingLevel::from(*level)).collect(),
            node_level: node_level.into(),
        }
    }

    pub fn from_config(config: &Config) -> Self {
        Self::new(&config.stars, config.node.level)
    }

    /// The rule in force while the store holds none: the default `[stars]` section on a county node.
    pub fn built_in() -> Self {
        Self::new(&StarsSection::default(), Level::County)
    }

    /// The star of `total_minutes` confirmed minutes: how many thresholds it reaches.
    pub fn star_for(&self, total_minutes: u64) -> u32 {
        self.thresholds_minutes.iter().take_while(|threshold| **threshold <= total_minutes).count() as u32
    }

    /// The level that certifies `star` (1-based); the highest level for a star beyond the scale.
    pub fn certifying_level(&self, star: u32) -> CertifyingLevel {
        let index = (star as usize).saturating_sub(1);
        self.certifying_levels.get(index).copied().unwrap_or(CertifyingLevel::Province)
    }

    /// True if this node certifies `star` itself.
    pub fn certifies_here(&self, star: u32) -> bool {
        self.certifying_level(star) <= self.node_level
    }
}

/// Whether a star was reached or lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StarDirection {
    Reached,
    Lost,
}

/// One change of a volunteer's star, as stored under `star_ev/<volunteer>/<seq:010>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StarEvent {
    pub seq: u64,
    pub star: u32,
    pub direction: StarDirection,
    pub at: DateTime<Utc>,
    /// The confirmed minutes after the change.
    pub total_minutes: u64,
    /// Certified by this node when recorded; otherwise awaiting `certifying_level`.
    pub certified: bool,
    pub certifying_level: CertifyingLevel,
}

/// A volunteer's current star, as stored under `star/<volunteer>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StarState {
    /// 0 (none) to the number of thresholds.
    pub star: u32,
    /// When the current star was reached; `None` for star 0.
    pub reached_at: Option<DateTime<Utc>>,
    /// The number of the volunteer's last event (0: none yet).
    pub last_event_seq: u64,
}

pub fn state_key(volunteer_number: &str) -> String {
    format!("star/{volunteer_number}")
}

fn events_prefix(volunteer_number: &str) -> String {
    format!("star_ev/{volunteer_number}/")
}

fn event_key(volunteer_number: &str, seq: u64) -> String {
    format!("{}{seq:010}", events_prefix(volunteer_number))
}

/// The events that take a volunteer from star `from` to the star of `total_minutes`, numbered from `first_seq`:
/// each star passed is one event, upwards in order when reached, downwards when lost.
pub fn events_between(
    rule: &StarRule,
    from: u32,
    total_minutes: u64,
    first_seq: u64,
    at: DateTime<Utc>,
) -> Vec<StarEvent> {
    let to = rule.star_for(total_minutes);
    let (stars, direction): (Vec<u32>, _) = if to > from {
        ((from + 1..=to).collect(), StarDirection::Reached)
    } else {
        ((to + 1..=from).rev().collect(), StarDirection::Lost)
    };
    stars
        .into_iter()
        .zip(first_seq..)
        .map(|(star, seq)| StarEvent {
            seq,
            star,
            direction,
            at,
            total_minutes,
            certified: direction == StarDirection::Reached && rule.certifies_here(star),
            certifying_level: rule.certifying_level(star),
        })
        .collect()
}

/// The hours module's hook: the volunteer's confirmed minutes are now `new_minutes` in this write.
///
/// The events recorded are those from the volunteer's **committed** star to the star of `new_minutes`; events an
/// earlier call of the same write recorded are replaced. So an amendment, which takes the old minutes out and puts
/// the new ones in, records only its net change, never a `lost` and `reached` pair for the same star.
pub fn on_total_changed(txn: &mut Txn<'_>, volunteer_number: &str, local_minutes: u64) -> Result<(), DomainError> {
    let new_minutes = local_minutes.saturating_add(elsewhere_minutes_in(txn, volunteer_number)?);
    let rule = txn.get_json::<StarRule>(RULE_KEY)?.unwrap_or_else(StarRule::built_in);
    let key = state_key(volunteer_number);
    let committed: StarState = store::get_json(txn.store(), key.as_bytes())?.unwrap_or_default();
    let current: StarState = txn.get_json(&key)?.unwrap_or_default();
    record_star_change(txn, volunteer_number, current.star, rule.star_for(new_minutes))?;
    for seq in committed.last_event_seq + 1..=current.last_event_seq {
        txn.delete(event_key(volunteer_number, seq));
    }
    let events = events_between(&rule, committed.star, new_minutes, committed.last_event_seq + 1, txn.now());
    let Some(last) = events.last() else {
        if current != committed {
            txn.put_json(key, &committed);
        }
        return Ok(());
    };
    let reached_at = match last.direction {
        StarDirection::Reached => Some(last.at),
        StarDirection::Lost if rule.star_for(new_minutes) == 0 => None,
        StarDirection::Lost => last_reached(txn.store(), volunteer_number, rule.star_for(new_minutes))?,
    };
    let state = StarState { star: rule.star_for(new_minutes), reached_at, last_event_seq: last.seq };
    for event in &events {
        txn.put_json(event_key(volunteer_number, event.seq), event);
    }
    txn.put_json(key, &state);
    Ok(())
}

/// Tells the federation that the volunteer's star moved from `from` to `to` in this write (the snapshot cell of
/// star holders); the deltas of several calls in one write add up to the net change.
fn record_star_change(txn: &mut Txn<'_>, volunteer_number: &str, from: u32, to: u32) -> Result<(), DomainError> {
    use crate::federation::outbox::{self, Change};
    use ecovol_coordinator::rollup::Cell;
    if from == to {
        return Ok(());
    }
    let mut change = Change::new(pb::ChangeKind::StarChanged, "");
    change.volunteer = Some(outbox::minimised(txn, volunteer_number)?);
    change.star = to;
    let slot = |star: u32| (star as usize).checked_sub(1).filter(|index| *index < 5);
    if let Some(index) = slot(from) {
        change.deltas.add(Cell::SNAPSHOT, |f| f.star_holders[index] -= 1);
    }
    if let Some(index) = slot(to) {
        change.deltas.add(Cell::SNAPSHOT, |f| f.star_holders[index] += 1);
    }
    outbox::record(txn, change)
}

// ----- mutual recognition: hours served elsewhere, certifications from above -----

fn elsewhere_key(volunteer_number: &str) -> String {
    format!("star_else/{volunteer_number}")
}

fn certification_prefix(volunteer_number: &str) -> String {
    format!("star_cert/{volunteer_number}/")
}

/// A star certified by a higher level (a city or the province), as it reached this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    pub star: u32,
    pub certified_by: String,
    pub level: CertifyingLevel,
    pub certified_at: DateTime<Utc>,
}

/// Confirmed minutes the volunteer served in other counties, as the federation last reported (0 if never).
pub fn elsewhere_minutes(store: &dyn Store, volunteer_number: &str) -> Result<u64, DomainError> {
    Ok(store::get_json(store, elsewhere_key(volunteer_number).as_bytes())?.unwrap_or(0))
}

fn elsewhere_minutes_in(txn: &Txn<'_>, volunteer_number: &str) -> Result<u64, DomainError> {
    Ok(txn.get_json(&elsewhere_key(volunteer_number))?.unwrap_or(0))
}

/// The federation reports the volunteer's minutes served elsewhere and the certifications made above: both are
/// kept, and the star follows `local_minutes + elsewhere`.
pub fn on_federation_notice(
    txn: &mut Txn<'_>,
    volunteer_number: &str,
    local_minutes: u64,
    elsewhere: u64,
    certifications: &[Certification],
) -> Result<(), DomainError> {
    txn.put_json(elsewhere_key(volunteer_number), &elsewhere);
    for certification in certifications {
        txn.put_json(format!("{}{:02}", certification_prefix(volunteer_number), certification.star), certification);
    }
    on_total_changed(txn, volunteer_number, local_minutes)
}

/// The certifications from above that reached this node, by star.
pub fn certifications(store: &dyn Store, volunteer_number: &str) -> Result<Vec<Certification>, DomainError> {
    let mut found = Vec::new();
    store::scan_json::<Certification>(store, &certification_prefix(volunteer_number), |c| found.push(c))?;
    Ok(found)
}

/// When the volunteer last reached `star`, from their committed events.
fn last_reached(store: &dyn Store, volunteer_number: &str, star: u32) -> Result<Option<DateTime<Utc>>, DomainError> {
    let mut found = None;
    let mut failure = None;
    store.scan_rev(
        events_prefix(volunteer_number).as_bytes(),
        None,
        &mut |key, value| match store::decode::<StarEvent>(key, value) {
            Ok(event) if event.star == star && event.direction == StarDirection::Reached => {
                found = Some(event.at);
                ControlFlow::Break(())
            }
            Ok(_) => ControlFlow::Continue(()),
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        },
    )?;
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(found),
    }
}

/// Records the configured rule in the store at start-up if it differs from the rule in force (the stored one,
/// else the built-in one), as an audited change. A county node on the default scale writes nothing.
pub async fn install_rule(app: &App) -> Result<(), DomainError> {
    let rule = StarRule::from_config(&app.config);
    let stored: Option<StarRule> = store::get_json(&*app.store, RULE_KEY.as_bytes())?;
    if stored.unwrap_or_else(StarRule::built_in) == rule {
        return Ok(());
    }
    let context = AuditContext::new(&Caller::system("start-up"), "Stars/InstallRule", RULE_KEY);
    app.committer
        .write(context, move |txn| {
            txn.detail = format!(
                "thresholds_minutes {:?}, certifying levels {:?}, node level {}",
                rule.thresholds_minutes,
                rule.certifying_levels.iter().map(|level| level.label()).collect::<Vec<_>>(),
                rule.node_level.label()
            );
            txn.put_json(RULE_KEY, &rule);
            Ok(())
        })
        .await
}

/// A volunteer's current star (star 0 if they never reached one).
pub fn state(store: &dyn Store, volunteer_number: &str) -> Result<StarState, DomainError> {
    Ok(store::get_json(store, state_key(volunteer_number).as_bytes())?.unwrap_or_default())
}

/// Every star event of a volunteer, oldest first. At most two per star per change of total, so small.
pub fn events(store: &dyn Store, volunteer_number: &str) -> Result<Vec<StarEvent>, DomainError> {
    let mut events = Vec::new();
    let mut failure = None;
    store.scan(
        events_prefix(volunteer_number).as_bytes(),
        None,
        &mut |key, value| match store::decode::<StarEvent>(key, value) {
            Ok(event) => {
                events.push(event);
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        },
    )?;
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(events),
    }
}

// ----- wire conversions -----

impl From<&Certification> for pb::StarCertification {
    fn from(certification: &Certification) -> Self {
        pb::StarCertification {
            star: certification.star,
            certified_by: certification.certified_by.clone(),
            level: match certification.level {
                CertifyingLevel::County => pb::Level::County,
                CertifyingLevel::City => pb::Level::City,
                CertifyingLevel::Province => pb::Level::Province,
            } as i32,
            certified_at: Some(wire::timestamp(certification.certified_at)),
        }
    }
}

impl From<CertifyingLevel> for pb::CertifyingLevel {
    fn from(level: CertifyingLevel) -> Self {
        match level {
            CertifyingLevel::County => pb::CertifyingLevel::County,
            CertifyingLevel::City => pb::CertifyingLevel::City,
            CertifyingLevel::Province => pb::CertifyingLevel::Province,
        }
    }
}

impl From<&StarEvent> for pb::StarEvent {
    fn from(event: &StarEvent) -> Self {
        pb::StarEvent {
            seq: event.seq,
            star: event.star,
            direction: match event.direction {
                StarDirection::Reached => pb::StarDirection::Reached,
                StarDirection::Lost => pb::StarDirection::Lost,
            } as i32,
            at: Some(wire::timestamp(event.at)),
            total_minutes: event.total_minutes,
            certified: event.certified,
            certifying_level: pb::CertifyingLevel::from(event.certifying_level) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::commit::Committer;
    use crate::store::SledStore;

    const H: u64 = 60;

    fn rule(node_level: Level) -> StarRule {
        StarRule::new(&StarsSection::default(), node_level)
    }

    /// Checks the events from star `from` to the star of `total_minutes`: (star, reached?, certified?).
    fn check(node_level: Level, from: u32, total_minutes: u64, expected: &[(u32, bool, bool)]) {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let events = events_between(&rule(node_level), from, total_minutes, 7, at);
        let got: Vec<(u32, bool, bool)> = events
            .iter()
            .map(|event| (event.star, event.direction == StarDirection::Reached, event.certified))
            .collect();
        assert_eq!(got, expected, "{node_level:?} from {from} to {total_minutes} min");
        assert!(events.iter().zip(7..).all(|(event, seq)| event.seq == seq && event.total_minutes == total_minutes));
    }

    #[test]
    fn stars_follow_the_thresholds_exactly() {
        let rule = rule(Level::County);
        for (minutes, star) in
            [(0, 0), (100 * H - 1, 0), (100 * H, 1), (300 * H - 1, 1), (300 * H, 2), (1500 * H, 5), (u64::MAX, 5)]
        {
            assert_eq!(rule.star_for(minutes), star, "{minutes} min");
        }
    }

    #[test]
    fn crossing_thresholds_records_one_event_per_star() {
        use Level::*;
        // Up across 100 h, exactly at the threshold, and below it.
        check(County, 0, 99 * H + 59, &[]);
        check(County, 0, 100 * H, &[(1, true, true)]);
        check(County, 0, 150 * H, &[(1, true, true)]);
        // Up across 300 h; several at once, in order.
        check(County, 1, 300 * H, &[(2, true, true)]);
        check(County, 0, 700 * H, &[(1, true, true), (2, true, true), (3, true, false)]);
        // Down across 300 h and 100 h: lost, highest first, never certified.
        check(County, 2, 299 * H, &[(2, false, false)]);
        check(County, 3, 50 * H, &[(3, false, false), (2, false, false), (1, false, false)]);
        check(County, 2, 300 * H, &[]);
    }

    #[test]
    fn a_star_is_certified_at_once_only_up_to_the_nodes_level() {
        use Level::*;
        let all = 1500 * H;
        check(
            County,
            0,
            all,
            &[(1, true, true), (2, true, true), (3, true, false), (4, true, false), (5, true, false)],
        );
        check(City, 0, all, &[(1, true, true), (2, true, true), (3, true, true), (4, true, true), (5, true, false)]);
        check(Province, 0, all, &[(1, true, true), (2, true, true), (3, true, true), (4, true, true), (5, true, true)]);
        let events = events_between(&rule(County), 0, all, 1, Utc::now());
        let levels: Vec<_> = events.iter().map(|event| event.certifying_level).collect();
        use CertifyingLevel as L;
        assert_eq!(levels, [L::County, L::County, L::City, L::City, L::Province]);
    }

    async fn run(committer: &Committer, job: impl FnOnce(&mut Txn<'_>) -> Result<(), DomainError> + Send + 'static) {
        let context = AuditContext::new(&Caller::system("test"), "Stars/Test", "v");
        committer.write(context, job).await.unwrap();
    }

    #[tokio::test]
    async fn a_write_records_its_net_change_only_and_history_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db"), 8 << 20).unwrap());
        let committer = Committer::start(store.clone(), 64, 16);
        run(&committer, |txn| {
            txn.put_json(RULE_KEY, &rule(Level::County));
            // The volunteer as the federation hook reads it (every star change is recorded for the parent).
            let record = serde_json::json!({
                "gender": "female", "birth_date": "1990-01-01", "home_division_code": "330106", "status": "active"
            });
            txn.put_json(crate::registry::volunteer::record_key("V1"), &record);
            crate::federation::outbox::remember_volunteer_key(txn, "V1", "11010519491231002X");
            Ok(())
        })
        .await;
        run(&committer, |txn| on_total_changed(txn, "V1", 110 * H)).await;
        assert_eq!(state(&*store, "V1").unwrap().star, 1);
        // An amendment: out goes 20 h (below 100 h), in come 25 h: no event.
        run(&committer, |txn| {
            on_total_changed(txn, "V1", 90 * H)?;
            on_total_changed(txn, "V1", 115 * H)
        })
        .await;
        let after_amend = state(&*store, "V1").unwrap();
        assert_eq!((after_amend.star, after_amend.last_event_seq), (1, 1));
        assert_eq!(events(&*store, "V1").unwrap().len(), 1);
        // A revocation drops below 100 h: a lost event, the reached one stays.
        run(&committer, |txn| on_total_changed(txn, "V1", 60 * H)).await;
        let history = events(&*store, "V1").unwrap();
        let summary: Vec<_> = history.iter().map(|event| (event.seq, event.star, event.direction)).collect();
        assert_eq!(summary, [(1, 1, StarDirection::Reached), (2, 1, StarDirection::Lost)]);
        assert_eq!(state(&*store, "V1").unwrap(), StarState { star: 0, reached_at: None, last_event_seq: 2 });
        // Up to 2 stars and back to 1: star 1 keeps its first reached time.
        run(&committer, |txn| on_total_changed(txn, "V1", 300 * H)).await;
        run(&committer, |txn| on_total_changed(txn, "V1", 200 * H)).await;
        let now = state(&*store, "V1").unwrap();
        let history = events(&*store, "V1").unwrap();
        assert_eq!(now.star, 1);
        assert_eq!(now.reached_at, Some(history[2].at));
        assert_eq!(history.len(), 5);
    }
}
