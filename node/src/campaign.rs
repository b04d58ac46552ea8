//! Selection campaigns (honours; docs/CAMPAIGNS.md): issued by a province or city, delivered down like joint work
//! plans (pulled by the children, once each), nominated by counties within their quota, reviewed by cities,
//! selected by the issuer; results travel down to the nominee's home node, where they join the volunteer's honours.
//!
//! Privacy (PIPL): a nomination always carries the volunteer's pseudonymous key and figures; the name and story
//! only when staff recorded the volunteer's consent to publicity. The local volunteer number never leaves the home
//! node.
//!
//! Keys: `camp/<id>` (protobuf `Campaign`), `camp_open/<id>` (this node passes it down), `camp_dlv/<id>/<child>`,
//! `camp_nom/<id>/<nomination>` (protobuf `Nomination`), `honour/<volunteer>/<campaign>` (protobuf `Honour`),
//! `honour_series/<series>/<volunteer key>` (selected before in the series).

use chrono::NaiveDate;
use ecovol_coordinator::region::DivisionCode;
use ecovol_proto::v1 as pb;
use prost::Message as _;

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::federation::apply::Router;
use crate::federation::outbox::{self, Change};
use crate::store::Store;
use crate::wire;

fn campaign_key(id: &str) -> String {
    format!("camp/{id}")
}

fn nomination_key(campaign: &str, nomination: &str) -> String {
    format!("camp_nom/{campaign}/{nomination}")
}

fn decode<T: prost::Message + Default>(key: &str, bytes: &[u8]) -> Result<T, DomainError> {
    T::decode(bytes).map_err(|error| DomainError::Internal(format!("{key}: {error}")))
}

fn load(txn: &Txn<'_>, id: &str) -> Result<pb::Campaign, DomainError> {
    let key = campaign_key(id);
    match txn.get(key.as_bytes())? {
        Some(bytes) => decode(&key, &bytes),
        None => Err(DomainError::not_found("campaign", id)),
    }
}

fn save(txn: &mut Txn<'_>, campaign: &pb::Campaign) {
    txn.put(campaign_key(&campaign.campaign_id), campaign.encode_to_vec());
    if matches!(campaign.state.as_str(), "issued" | "passed_down") {
        txn.put(format!("camp_open/{}", campaign.campaign_id), Vec::new());
    }
}

fn staff(caller: &Caller, action: &str) -> Result<(), DomainError> {
    caller.require_any(&[Role::Staff], action)
}

fn check_quotas(violations: &mut Violations, quotas: &[pb::CampaignQuota], router: &Router) {
    let mut seen = std::collections::BTreeSet::new();
    for (index, quota) in quotas.iter().enumerate() {
        match DivisionCode::parse(&quota.region) {
            Ok(code) if router.route(code) != Some(code) => violations
                .add(format!("quotas[{index}].region"), format!("{code} is not a direct child of {}", router.code)),
            Ok(code) if !seen.insert(code) => violations.add(format!("quotas[{index}].region"), "is listed twice"),
            Ok(_) => {}
            Err(error) => violations.add(format!("quotas[{index}].region"), error.to_string()),
        }
        if quota.nominations == 0 || quota.nominations > 10_000 {
            violations.add(format!("quotas[{index}].nominations"), "must be 1–10000");
        }
    }
}

/// Creates and issues a campaign here (a province or a city).
pub fn issue(
    txn: &mut Txn<'_>,
    caller: &Caller,
    router: &Router,
    request: pb::IssueCampaignRequest,
) -> Result<pb::Campaign, DomainError> {
    staff(caller, "issuing a selection campaign")?;
    if router.code.level() == ecovol_coordinator::region::DivisionLevel::County {
        return Err(DomainError::FailedPrecondition("campaigns are issued by a province or a city".into()));
    }
    let mut violations = Violations::new();
    violations.text("title", &request.title, 200);
    let series_ok = (1..=64).contains(&request.series.len())
        && request.series.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !series_ok {
        violations.add("series", "must be 1–64 letters, digits, - or _");
    }
    if request.edition == 0 {
        violations.add("edition", "must be at least 1");
    }
    let open = wire::parse_date(&request.nominations_open);
    let close = wire::parse_date(&request.nominations_close);
    if open.is_none() {
        violations.add("nominations_open", "must be a date YYYY-MM-DD");
    }
    match close {
        None => violations.add("nominations_close", "must be a date YYYY-MM-DD"),
        Some(close) if open.is_some_and(|open| close < open) => {
            violations.add("nominations_close", "must not be before nominations_open")
        }
        _ => {}
    }
    match wire::parse_date(&request.publication_date) {
        None => violations.add("publication_date", "must be a date YYYY-MM-DD (e.g. 5 March, 5 June or 5 December)"),
        Some(publication) if close.is_some_and(|close| publication < close) => {
            violations.add("publication_date", "must not be before nominations_close")
        }
        _ => {}
    }
    if request.quotas.is_empty() {
        violations.add("quotas", "give each child region its number of nominations");
    }
    check_quotas(&mut violations, &request.quotas, router);
    violations.into_result()?;
    let campaign = pb::Campaign {
        campaign_id: format!("{}-CA{:04}", router.code, txn.next_seq("campaign")?),
        title: request.title.trim().to_string(),
        series: request.series,
        edition: request.edition,
        issuer: router.code.to_string(),
        nominations_open: request.nominations_open,
        nominations_close: request.nominations_close,
        publication_date: request.publication_date,
        min_confirmed_hours: request.min_confirmed_hours,
        quotas: request.quotas,
        state: "issued".into(),
    };
    txn.target = campaign.campaign_id.clone();
    save(txn, &campaign);
    Ok(campaign)
}

/// A city splits its quota among its counties and passes the campaign down.
pub fn set_quotas(
    txn: &mut Txn<'_>,
    caller: &Caller,
    router: &Router,
    request: pb::SetQuotasRequest,
) -> Result<pb::Campaign, DomainError> {
    staff(caller, "setting a campaign's quotas")?;
    let mut campaign = load(txn, &request.campaign_id)?;
    if campaign.state != "received" && campaign.state != "passed_down" {
        return Err(DomainError::FailedPrecondition(format!(
            "the campaign is {} here: quotas are set on a received one",
            campaign.state
        )));
    }
    let own = campaign.quotas.iter().find(|q| q.region == router.code.to_string()).map(|q| q.nominations).unwrap_or(0);
    let mut violations = Violations::new();
    check_quotas(&mut violations, &request.quotas, router);
    let total: u32 = request.quotas.iter().map(|q| q.nominations).sum();
    if total > own {
        violations.add("quotas", format!("they add up to {total}, more than this office's quota of {own}"));
    }
    violations.into_result()?;
    campaign.quotas.retain(|q| {
        DivisionCode::parse(&q.region).is_ok_and(|code| !router.code.contains(code) || code == router.code)
    });
    campaign.quotas.extend(request.quotas);
    campaign.state = "passed_down".into();
    save(txn, &campaign);
    Ok(campaign)
}

/// True if `child` has a campaign waiting.
pub fn has_deliveries(store: &dyn Store, child: DivisionCode) -> Result<bool, DomainError> {
    let mut waiting = false;
    store.scan(b"camp_open/", None, &mut |key, _| {
        let id = String::from_utf8_lossy(&key[b"camp_open/".len()..]).into_owned();
        match store.get(format!("camp_dlv/{id}/{child}").as_bytes()) {
            Ok(None) => {
                waiting = true;
                std::ops::ControlFlow::Break(())
            }
            _ => std::ops::ControlFlow::Continue(()),
        }
    })?;
    Ok(waiting)
}

/// At a parent, when `child` pulls: the campaigns it has not received, marked delivered.
pub fn deliveries(txn: &mut Txn<'_>, child: DivisionCode) -> Result<Vec<pb::DownMessage>, DomainError> {
    let mut open = Vec::new();
    txn.store().scan(b"camp_open/", None, &mut |key, _| {
        open.push(String::from_utf8_lossy(&key[b"camp_open/".len()..]).into_owned());
        std::ops::ControlFlow::Continue(())
    })?;
    let mut messages = Vec::new();
    for id in open {
        let marker = format!("camp_dlv/{id}/{child}");
        if txn.get(marker.as_bytes())?.is_some() {
            continue;
        }
        txn.put(marker, Vec::new());
        let campaign = pb::Campaign { state: "received".into(), ..load(txn, &id)? };
        messages.push(pb::DownMessage { target: child.to_string(), campaign: Some(campaign), ..Default::default() });
    }
    Ok(messages)
}

/// At a child: a campaign from the parent (kept once), or a selection result (recorded at the home node, passed
/// on towards it otherwise).
pub fn receive(txn: &mut Txn<'_>, router: &Router, message: &pb::DownMessage) -> Result<(), DomainError> {
    if let Some(campaign) = &message.campaign
        && !campaign.campaign_id.is_empty()
        && txn.get(campaign_key(&campaign.campaign_id).as_bytes())?.is_none()
    {
        save(txn, campaign);
    }
    let Some(selected) = &message.selected else { return Ok(()) };
    let Ok(target) = DivisionCode::parse(&message.target) else { return Ok(()) };
    if target != router.code {
        if let Some(child) = router.route(target) {
            let seq = txn.next_seq(&format!("down/{child}"))?;
            let relayed = pb::DownMessage { seq, ..message.clone() };
            txn.put(crate::federation::apply::down_key(child, seq), relayed.encode_to_vec());
        }
        return Ok(());
    }
    let key = nomination_key(&selected.campaign_id, &selected.nomination_id);
    let Some(bytes) = txn.get(key.as_bytes())? else { return Ok(()) };
    let mut nomination: pb::Nomination = decode(&key, &bytes)?;
    if nomination.status == "selected" {
        return Ok(());
    }
    nomination.status = "selected".into();
    txn.put(key, nomination.encode_to_vec());
    let campaign = load(txn, &selected.campaign_id).unwrap_or_default();
    let honour = pb::Honour {
        campaign_id: selected.campaign_id.clone(),
        title: campaign.title.clone(),
        series: campaign.series.clone(),
        edition: campaign.edition,
        awarded_by: campaign.issuer.clone(),
        publication_date: campaign.publication_date.clone(),
        recorded_at: Some(wire::timestamp(txn.now())),
    };
    txn.put(format!("honour/{}/{}", nomination.volunteer_number, selected.campaign_id), honour.encode_to_vec());
    txn.put(format!("honour_series/{}/{}", campaign.series, nomination.volunteer_key), Vec::new());
    Ok(())
}

/// A county nominates one of its volunteers, within its quota and the window, if eligible.
pub fn nominate(
    txn: &mut Txn<'_>,
    caller: &Caller,
    router: &Router,
    request: pb::NominateRequest,
) -> Result<pb::Nomination, DomainError> {
    staff(caller, "nominating a volunteer")?;
    let campaign = load(txn, &request.campaign_id)?;
    let here = router.code.to_string();
    let quota = campaign.quotas.iter().find(|q| q.region == here).map(|q| q.nominations).unwrap_or(0);
    if quota == 0 {
        return Err(DomainError::FailedPrecondition(format!(
            "the campaign gives {here} no nominations (ask the city to set quotas)"
        )));
    }
    let today = wire::today_china();
    let open = wire::parse_date(&campaign.nominations_open).unwrap_or(NaiveDate::MIN);
    let close = wire::parse_date(&campaign.nominations_close).unwrap_or(NaiveDate::MAX);
    if today < open || today > close {
        return Err(DomainError::FailedPrecondition(format!(
            "nominations are open from {} to {}",
            campaign.nominations_open, campaign.nominations_close
        )));
    }
    let mut violations = Violations::new();
    violations.optional_text("story", &request.story, 2000);
    if !request.not_eco_system_staff {
        violations.add("not_eco_system_staff", "staff of the eco-environment system are not eligible");
    }
    if !request.service_outside_job_duties {
        violations.add("service_outside_job_duties", "only service outside job duties counts");
    }
    violations.into_result()?;
    let number = request.volunteer_number.trim().to_string();
    let volunteer = outbox::minimised(txn, &number)?;
    if !volunteer.active {
        return Err(DomainError::FailedPrecondition(format!("volunteer {number} is deactivated")));
    }
    if txn.get(format!("honour_series/{}/{}", campaign.series, volunteer.key).as_bytes())?.is_some() {
        return Err(DomainError::FailedPrecondition(format!(
            "volunteer {number} was selected in an earlier edition of {}",
            campaign.series
        )));
    }
    let minutes = crate::hours::confirmed_total(txn.store(), &number)?.confirmed_minutes
        + crate::stars::elsewhere_minutes(txn.store(), &number)?;
    if minutes < u64::from(campaign.min_confirmed_hours) * 60 {
        return Err(DomainError::FailedPrecondition(format!(
            "volunteer {number} has {:.1} confirmed hours; the campaign asks for {}",
            minutes as f64 / 60.0,
            campaign.min_confirmed_hours
        )));
    }
    let nomination_id = format!("{here}-{}", &volunteer.key[..12]);
    let key = nomination_key(&campaign.campaign_id, &nomination_id);
    if txn.get(key.as_bytes())?.is_some() {
        return Err(DomainError::AlreadyExists {
            message: format!("volunteer {number} is nominated already"),
            existing: nomination_id,
        });
    }
    let mut nominated = 0;
    txn.store().scan(format!("camp_nom/{}/{here}-", campaign.campaign_id).as_bytes(), None, &mut |_, _| {
        nominated += 1;
        std::ops::ControlFlow::Continue(())
    })?;
    if nominated >= quota {
        return Err(DomainError::FailedPrecondition(format!("{here} has used its {quota} nominations")));
    }
    let name = if request.consent_to_publicity {
        txn.get_json::<serde_json::Value>(&crate::registry::volunteer::record_key(&number))?
            .and_then(|record| record.get("name").and_then(|n| n.as_str()).map(str::to_string))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let star = crate::stars::state(txn.store(), &number)?.star;
    let travelling = pb::Nomination {
        nomination_id,
        campaign_id: campaign.campaign_id.clone(),
        home: here,
        volunteer_key: volunteer.key.clone(),
        confirmed_minutes: minutes,
        star,
        name,
        story: if request.consent_to_publicity { request.story.clone() } else { String::new() },
        consent_to_publicity: request.consent_to_publicity,
        status: "nominated".into(),
        review_comment: String::new(),
        volunteer_number: String::new(),
    };
    let local = pb::Nomination { volunteer_number: number, story: request.story, ..travelling.clone() };
    txn.put(key, local.encode_to_vec());
    txn.target = local.nomination_id.clone();
    let mut change = Change::new(pb::ChangeKind::CampaignNominated, campaign.campaign_id.clone());
    change.nomination = Some(travelling);
    outbox::record(txn, change)?;
    Ok(local)
}

/// At a parent applying a child's entry: keeps the nominations and reviews of its subtree.
pub fn apply_report(txn: &mut Txn<'_>, entry: &pb::UpEntry) -> Result<(), DomainError> {
    let Some(nomination) = &entry.nomination else { return Ok(()) };
    if nomination.campaign_id.is_empty() || nomination.nomination_id.is_empty() {
        return Ok(());
    }
    let key = nomination_key(&nomination.campaign_id, &nomination.nomination_id);
    // A later review never goes back to "nominated" (entries of one origin arrive in order; reviews come from
    // another origin, the city, and may overtake nothing here because the city forwards the nomination first).
    let keep = match txn.get(key.as_bytes())? {
        Some(bytes) => decode::<pb::Nomination>(&key, &bytes)?.status != "selected",
        None => true,
    };
    if keep {
        txn.put(key, pb::Nomination { volunteer_number: String::new(), ..nomination.clone() }.encode_to_vec());
    }
    Ok(())
}

/// A city endorses or rejects a nomination from one of its counties.
pub fn review(
    txn: &mut Txn<'_>,
    caller: &Caller,
    router: &Router,
    request: pb::ReviewRequest,
) -> Result<pb::Nomination, DomainError> {
    staff(caller, "reviewing a nomination")?;
    let campaign = load(txn, &request.campaign_id)?;
    if campaign.issuer == router.code.to_string() {
        return Err(DomainError::FailedPrecondition(
            "the issuer selects; reviews are for the levels in between".into(),
        ));
    }
    let key = nomination_key(&request.campaign_id, &request.nomination_id);
    let Some(bytes) = txn.get(key.as_bytes())? else {
        return Err(DomainError::not_found("nomination", &request.nomination_id));
    };
    let mut nomination: pb::Nomination = decode(&key, &bytes)?;
    if nomination.home == router.code.to_string() {
        return Err(DomainError::FailedPrecondition("a nomination is reviewed by the level above its home".into()));
    }
    if nomination.status != "nominated" {
        return Err(DomainError::FailedPrecondition(format!("the nomination is {} already", nomination.status)));
    }
    let mut violations = Violations::new();
    violations.optional_text("comment", &request.comment, 500);
    violations.into_result()?;
    nomination.status = if request.endorse { "endorsed" } else { "rejected" }.into();
    nomination.review_comment = request.comment;
    txn.put(key, nomination.encode_to_vec());
    txn.target = nomination.nomination_id.clone();
    let mut change = Change::new(pb::ChangeKind::CampaignReviewed, campaign.campaign_id);
    change.nomination = Some(nomination.clone());
    outbox::record(txn, change)?;
    Ok(nomination)
}

/// The issuer selects nominations; each result travels down to the nominee's home node.
pub fn select(
    txn: &mut Txn<'_>,
    caller: &Caller,
    router: &Router,
    request: pb::SelectRequest,
) -> Result<Vec<pb::Nomination>, DomainError> {
    staff(caller, "selecting nominations")?;
    let campaign = load(txn, &request.campaign_id)?;
    if campaign.issuer != router.code.to_string() {
        return Err(DomainError::FailedPrecondition(format!("only the issuer ({}) selects", campaign.issuer)));
    }
    let mut selected = Vec::new();
    for (index, id) in request.nomination_ids.iter().enumerate() {
        let key = nomination_key(&campaign.campaign_id, id);
        let Some(bytes) = txn.get(key.as_bytes())? else {
            return Err(DomainError::invalid(
                format!("nomination_ids[{index}]"),
                "names no nomination of this campaign",
            ));
        };
        let mut nomination: pb::Nomination = decode(&key, &bytes)?;
        let home = DivisionCode::parse(&nomination.home).map_err(|e| DomainError::Internal(e.to_string()))?;
        // Nominations of a direct child need no review in between; others must be endorsed by the level between.
        let direct = router.route(home) == Some(home);
        let ready = nomination.status == "endorsed" || (direct && nomination.status == "nominated");
        if !ready {
            return Err(DomainError::FailedPrecondition(format!(
                "nomination {id} is {}: it cannot be selected",
                nomination.status
            )));
        }
        nomination.status = "selected".into();
        txn.put(key, nomination.encode_to_vec());
        txn.put(format!("honour_series/{}/{}", campaign.series, nomination.volunteer_key), Vec::new());
        if let Some(child) = router.route(home) {
            let seq = txn.next_seq(&format!("down/{child}"))?;
            let message = pb::DownMessage {
                seq,
                target: home.to_string(),
                selected: Some(nomination.clone()),
                ..Default::default()
            };
            txn.put(crate::federation::apply::down_key(child, seq), message.encode_to_vec());
        }
        selected.push(nomination);
    }
    let mut campaign = campaign;
    campaign.state = "selected".into();
    save(txn, &campaign);
    Ok(selected)
}

/// A campaign with the nominations held here (staff and auditors).
pub fn get(store: &dyn Store, caller: &Caller, id: &str) -> Result<pb::CampaignResponse, DomainError> {
    caller.require_any(&[Role::Staff, Role::Auditor], "reading a campaign")?;
    let key = campaign_key(id);
    let campaign: pb::Campaign = match store.get(key.as_bytes())? {
        Some(bytes) => decode(&key, &bytes)?,
        None => return Err(DomainError::not_found("campaign", id)),
    };
    let mut nominations = Vec::new();
    let mut failure = None;
    store.scan(format!("camp_nom/{id}/").as_bytes(), None, &mut |key, value| {
        match pb::Nomination::decode(value) {
            Ok(nomination) => nominations.push(nomination),
            Err(error) => failure = Some(format!("{}: {error}", String::from_utf8_lossy(key))),
        }
        std::ops::ControlFlow::Continue(())
    })?;
    if let Some(failure) = failure {
        return Err(DomainError::Internal(failure));
    }
    Ok(pb::CampaignResponse { campaign: Some(campaign), nominations })
}

/// Every campaign held here.
pub fn list(store: &dyn Store, caller: &Caller) -> Result<Vec<pb::Campaign>, DomainError> {
    caller.require_any(&[Role::Staff, Role::Auditor], "listing campaigns")?;
    let mut campaigns = Vec::new();
    store.scan(b"camp/", None, &mut |_, value| {
        if let Ok(campaign) = pb::Campaign::decode(value) {
            campaigns.push(campaign);
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(campaigns)
}

/// A volunteer's honours, at their home node.
pub fn honours(store: &dyn Store, volunteer_number: &str) -> Result<Vec<pb::Honour>, DomainError> {
    let mut honours = Vec::new();
    store.scan(format!("honour/{volunteer_number}/").as_bytes(), None, &mut |_, value| {
        if let Ok(honour) = pb::Honour::decode(value) {
            honours.push(honour);
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(honours)
}
