//! The child side: the uplink drains the outbox to the parent, the downlink pulls the parent's messages, and the
//! watcher flags silent children. Each runs as one task for the node's life.
//!
//! The uplink is `ecovol_coordinator::replication::Uplink` driven over gRPC: it is restored from the persisted
//! acknowledged positions (`fed/acked/<origin>`) and the outbox's last entries, woken by every durable append,
//! sends a batch, persists the acknowledged positions and trims the acknowledged entries in one write, and backs
//! off (capped, doubling) while the parent is away. A crash anywhere only causes a resend, which the parent
//! ignores (its inbox positions are durable before it acknowledges).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::replication::{SendBatch, Uplink, UplinkConfig};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::federation_service_client::FederationServiceClient;
use prost::Message as _;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::apply::{self, Router};
use super::outbox::{entry_key, entry_prefix};
use super::{Federation, ParentLink, certs};
use crate::app::App;
use crate::config::{FederationSection, LinkCompression};
use crate::error::DomainError;
use crate::stars::{self, StarRule};
use crate::store::{self, Store};
use crate::wire;

/// The highest position of `origin` the parent acknowledged (`fed/acked/<code>`): only real acknowledgements are
/// kept here, so `CheckPositions` can tell the parent what it must hold.
pub(crate) fn acked_key(origin: DivisionCode) -> String {
    format!("fed/acked/{origin}")
}

const DOWN_POSITION_KEY: &str = "fed/down_applied";

/// A channel to the parent's federation port over mutual TLS, checking that the server is the parent.
pub fn parent_channel(section: &FederationSection, parent: &ParentLink) -> anyhow::Result<Channel> {
    let ca = std::fs::read(&section.ca_file)?;
    let cert = std::fs::read(&section.cert_file)?;
    let key = std::fs::read(&section.key_file)?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
        .domain_name(certs::node_dns_name(parent.code));
    let endpoint = Endpoint::from_shared(parent.address.clone())?
        .tls_config(tls)?
        .connect_timeout(Duration::from_millis(section.ack_timeout_ms.min(5_000)))
        .timeout(Duration::from_millis(section.ack_timeout_ms))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// A client of the parent's federation port, compressing as `federation.compression` says (the parent always
/// takes gzip and zstd, and answers compressed when asked).
pub fn parent_client(section: &FederationSection, channel: Channel) -> FederationServiceClient<Channel> {
    let client = FederationServiceClient::new(channel).max_decoding_message_size(64 << 20);
    match section.compression {
        LinkCompression::Gzip => {
            client.send_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Gzip)
        }
        LinkCompression::Zstd => {
            client.send_compressed(CompressionEncoding::Zstd).accept_compressed(CompressionEncoding::Zstd)
        }
        LinkCompression::None => client,
    }
}

/// Starts the link tasks this node needs; they end when the returned handles are aborted.
pub fn start(app: &Arc<App>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if let (Some(section), Some(parent)) = (app.config.federation.as_ref(), app.federation.parent.as_ref()) {
        let channel = parent_channel(section, parent)?;
        tasks.push(tokio::spawn(uplink(app.clone(), parent_client(section, channel.clone()))));
        tasks.push(tokio::spawn(downlink(app.clone(), parent_client(section, channel))));
    }
    if let Some(section) = app.config.federation.as_ref()
        && !section.listen.is_empty()
    {
        tasks.push(tokio::spawn(watch_children(app.clone())));
    }
    Ok(tasks)
}

/// Restores the uplink from the store: acknowledged positions and the last outbox entry per origin.
fn restore(app: &App, config: UplinkConfig) -> Result<Uplink, DomainError> {
    let mut acked = BTreeMap::new();
    store::scan_json_keyed::<u64>(&*app.store, "fed/acked/", |key, seq| {
        if let Ok(origin) = DivisionCode::parse(key) {
            acked.insert(origin, seq);
        }
    })?;
    let mut appended: BTreeMap<DivisionCode, u64> = BTreeMap::new();
    let mut origins = Vec::new();
    app.store.scan(b"out/", None, &mut |key, _| {
        // Keys are out/<6 digits>/<20 digits>: remember each origin once, then skip past it.
        if let Some(origin) = std::str::from_utf8(&key[4..10]).ok().and_then(|c| DivisionCode::parse(c).ok())
            && origins.last() != Some(&origin)
        {
            origins.push(origin);
        }
        std::ops::ControlFlow::Continue(())
    })?;
    for origin in origins {
        app.store.scan_rev(entry_prefix(origin).as_bytes(), None, &mut |key, _| {
            if let Some(seq) = std::str::from_utf8(&key[11..]).ok().and_then(|s| s.parse::<u64>().ok()) {
                appended.insert(origin, seq);
            }
            std::ops::ControlFlow::Break(())
        })?;
        // Entries below the first one kept were withdrawn (a new epoch superseded them): the uplink starts after
        // them, as if acknowledged (the acknowledged position kept on disk stays the parent's real one).
        if let Some(first) = first_entry_after(&*app.store, origin, 0)? {
            let position = acked.entry(origin).or_insert(0);
            *position = (*position).max(first - 1);
        }
    }
    Ok(Uplink::restore(config, acked, appended))
}

/// The first entry of `origin` in the outbox after position `after`.
fn first_entry_after(store: &dyn Store, origin: DivisionCode, after: u64) -> Result<Option<u64>, DomainError> {
    let prefix = entry_prefix(origin);
    let mut first = None;
    store.scan(prefix.as_bytes(), Some(entry_key(origin, after).as_bytes()), &mut |key, _| {
        first = std::str::from_utf8(&key[prefix.len()..]).ok().and_then(|s| s.parse::<u64>().ok());
        std::ops::ControlFlow::Break(())
    })?;
    Ok(first)
}

fn uplink_config(section: &FederationSection) -> UplinkConfig {
    UplinkConfig {
        batch_entries_max: section.batch_entries_max,
        backlog_entries_max: section.backlog_entries_max,
        ack_timeout_ms: section.ack_timeout_ms,
        retry_backoff_ms_min: section.retry_backoff_ms_min,
        retry_backoff_ms_max: section.retry_backoff_ms_max,
    }
}

/// Reads the entries of a batch from the outbox.
fn read_batch(store: &dyn Store, batch: &SendBatch) -> Result<Vec<pb::UpEntry>, DomainError> {
    let mut entries = Vec::with_capacity(batch.len() as usize);
    for range in &batch.ranges {
        let start = entry_key(range.origin, range.from_seq - 1);
        let prefix = entry_prefix(range.origin);
        let mut failure = None;
        store.scan(prefix.as_bytes(), Some(start.as_bytes()), &mut |key, value| {
            match pb::UpEntry::decode(value) {
                Ok(entry) if entry.seq <= range.to_seq => entries.push(entry),
                Ok(_) => return std::ops::ControlFlow::Break(()),
                Err(error) => {
                    failure = Some(format!("{}: {error}", String::from_utf8_lossy(key)));
                    return std::ops::ControlFlow::Break(());
                }
            }
            std::ops::ControlFlow::Continue(())
        })?;
        if let Some(failure) = failure {
            return Err(DomainError::Internal(format!("an outbox entry is corrupt: {failure}")));
        }
    }
    Ok(entries)
}

/// Persists acknowledged positions and forgets the acknowledged entries, in one write.
async fn persist_acks(
    app: &App,
    acks: Vec<(DivisionCode, u64)>,
    previous: BTreeMap<DivisionCode, u64>,
) -> Result<(), DomainError> {
    app.committer
        .write_unaudited(move |txn| {
            for (origin, seq) in acks {
                let from = previous.get(&origin).copied().unwrap_or(0);
                if seq <= from {
                    continue;
                }
                txn.put_json(acked_key(origin), &seq);
                let prefix = entry_prefix(origin);
                let last = entry_key(origin, seq);
                let mut trimmed = Vec::new();
                txn.store().scan(prefix.as_bytes(), Some(entry_key(origin, from).as_bytes()), &mut |key, _| {
                    if key > last.as_bytes() {
                        return std::ops::ControlFlow::Break(());
                    }
                    trimmed.push(key.to_vec());
                    std::ops::ControlFlow::Continue(())
                })?;
                for key in trimmed {
                    txn.delete(key);
                }
            }
            Ok(())
        })
        .await
}

async fn uplink(app: Arc<App>, mut client: FederationServiceClient<Channel>) {
    let Some(section) = app.config.federation.clone() else { return };
    let poll = Duration::from_millis(section.poll_interval_ms);
    let mut uplink = match restore(&app, uplink_config(&section)) {
        Ok(uplink) => uplink,
        Err(error) => {
            tracing::error!(%error, "cannot restore the uplink: nothing is sent to the parent");
            return;
        }
    };
    let outbox = app.committer.outbox().clone();
    // Seed the outbox's view with what was restored, so `pending` is exact from the start.
    let restored: Vec<(DivisionCode, u64)> =
        uplink.backlog().keys().map(|origin| (*origin, uplink.acked_seq(*origin) + uplink.backlog()[origin])).collect();
    outbox.appended(&restored);
    outbox.set_acked(uplink.acked());
    let mut failures: u32 = 0;
    // The acknowledged positions last made durable here, and the write of newer ones still in flight: a batch's
    // acknowledgement is persisted (and its entries trimmed) while the next batch travels, one write at a time.
    let mut persisted = uplink.acked().clone();
    let mut persisting: Option<tokio::task::JoinHandle<Result<BTreeMap<DivisionCode, u64>, DomainError>>> = None;
    loop {
        for (origin, seq) in outbox.appended_positions() {
            uplink.appended(origin, seq);
        }
        for (origin, seq) in outbox.withdrawn_positions() {
            if seq > uplink.acked_seq(origin) {
                uplink.acknowledged(origin, seq);
            }
        }
        outbox.set_acked(uplink.acked());
        outbox.refresh_alarm();
        let now_ms = Federation::now_ms();
        let Some(batch) = uplink.poll(now_ms) else {
            tokio::select! {
                _ = outbox.woken() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        };
        let entries = match read_batch(&*app.store, &batch) {
            Ok(entries) if entries.is_empty() => {
                // The outbox no longer holds these positions (withdrawn by a new epoch): go on after them.
                for range in &batch.ranges {
                    let next = first_entry_after(&*app.store, range.origin, range.from_seq - 1).ok().flatten();
                    let appended =
                        uplink.acked_seq(range.origin) + uplink.backlog().get(&range.origin).copied().unwrap_or(0);
                    let skip_to = next.map(|first| first - 1).unwrap_or(appended);
                    tracing::warn!(origin = %range.origin, from = range.from_seq, skip_to, "outbox entries are gone; skipped");
                    uplink.acknowledged(range.origin, skip_to);
                }
                uplink.batch_answered(&[]);
                outbox.set_acked(uplink.acked());
                continue;
            }
            Ok(entries) => entries,
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox; retrying");
                uplink.connection_lost(now_ms);
                continue;
            }
        };
        // What this node will still hold once the parent has taken this batch.
        let request = pb::PushRequest { entries, backlog: uplink.backlog_total().saturating_sub(batch.len()) };
        match client.push(request).await {
            Ok(response) => {
                let acks: Vec<(DivisionCode, u64)> = response
                    .into_inner()
                    .acks
                    .into_iter()
                    .filter_map(|ack| DivisionCode::parse(&ack.origin).ok().map(|origin| (origin, ack.seq)))
                    .collect();
                if let Some(previous) = persisting.take() {
                    match previous.await {
                        Ok(Ok(positions)) => persisted = positions,
                        Ok(Err(error)) => tracing::warn!(%error, "cannot persist the parent's acknowledgement; \
                            the next one covers it"),
                        Err(error) => tracing::warn!(%error, "the acknowledgement's write ended abnormally"),
                    }
                }
                uplink.batch_answered(&acks);
                // Trims from what is durable here, so a failed write's entries go with the next one.
                let (writer, acked, from) = (app.clone(), uplink.acked().clone(), persisted.clone());
                persisting = Some(tokio::spawn(async move {
                    let acks: Vec<(DivisionCode, u64)> = acked.iter().map(|(origin, seq)| (*origin, *seq)).collect();
                    persist_acks(&writer, acks, from).await.map(|()| acked)
                }));
                outbox.set_acked(uplink.acked());
                if failures > 0 {
                    tracing::info!(failures, "the parent answers again");
                }
                failures = 0;
                if let Ok(mut news) = app.federation.uplink.lock() {
                    news.last_ack = Some(Utc::now());
                    news.last_error.clear();
                }
            }
            Err(status) => {
                failures += 1;
                uplink.connection_lost(Federation::now_ms());
                let message = format!("{:?}: {}", status.code(), status.message());
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(failures, error = %message, "cannot deliver to the parent; backing off");
                }
                if let Ok(mut news) = app.federation.uplink.lock() {
                    news.last_error = message;
                }
            }
        }
    }
}

/// Pulls the parent's messages and applies them: notices for this node update its volunteers' stars; notices for
/// a node below are certified here if due and passed on.
async fn downlink(app: Arc<App>, mut client: FederationServiceClient<Channel>) {
    let Some(section) = app.config.federation.clone() else { return };
    let poll = Duration::from_millis(section.poll_interval_ms);
    let router = Router::of(&app);
    let mut backoff = section.retry_backoff_ms_min;
    let mut check_positions = true;
    let mut round: u64 = 0;
    loop {
        round += 1;
        if check_positions
            && round % CHECK_POSITIONS_EVERY == 1
            && let Err(status) = positions_checked(&app, &mut client).await
        {
            if status.code() == tonic::Code::Unimplemented {
                tracing::info!("the parent does not check positions (an older release): no resync after its restore");
                check_positions = false;
            } else {
                tracing::debug!(code = ?status.code(), message = status.message(), "cannot check positions");
            }
        }
        let after: u64 = store::get_json(&*app.store, DOWN_POSITION_KEY.as_bytes()).ok().flatten().unwrap_or(0);
        match client.pull(pb::PullRequest { after_seq: after, max: apply::PULL_MAX }).await {
            Ok(response) => {
                backoff = section.retry_backoff_ms_min;
                let messages = response.into_inner().messages;
                if messages.is_empty() {
                    tokio::time::sleep(poll).await;
                    continue;
                }
                let router = router.clone();
                let result =
                    app.committer.write_unaudited(move |txn| apply_messages(txn, &router, after, messages)).await;
                if let Err(error) = result {
                    tracing::warn!(%error, "cannot apply the parent's messages; retrying");
                    tokio::time::sleep(poll).await;
                }
            }
            Err(status) => {
                tracing::debug!(code = ?status.code(), message = status.message(), "cannot pull from the parent");
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                backoff = (backoff * 2).min(section.retry_backoff_ms_max);
            }
        }
    }
}

/// The downlink checks positions with the parent on its first round and then every this many rounds (a round
/// is one pull, at most `poll_interval_ms` apart when idle): a restored parent asks for resyncs within about ten
/// polls, and a pull is not slowed by a second call every time.
const CHECK_POSITIONS_EVERY: u64 = 10;

/// Tells the parent the positions it acknowledged; starts a new epoch for the origins it answers (see
/// [`resync`]).
async fn positions_checked(app: &App, client: &mut FederationServiceClient<Channel>) -> Result<(), tonic::Status> {
    let mut acknowledged = Vec::new();
    store::scan_json_keyed::<u64>(&*app.store, "fed/acked/", |key, seq| {
        acknowledged.push(pb::Ack { origin: key.to_string(), seq });
    })
    .map_err(|error| tonic::Status::internal(error.to_string()))?;
    if acknowledged.is_empty() {
        return Ok(());
    }
    let answer = client.check_positions(pb::CheckPositionsRequest { acknowledged }).await?.into_inner();
    let origins: Vec<DivisionCode> = answer.resync.iter().filter_map(|code| DivisionCode::parse(code).ok()).collect();
    if !origins.is_empty()
        && let Err(error) = resync(app, origins).await
    {
        tracing::warn!(%error, "cannot start the new epoch the parent asked for; retrying");
    }
    Ok(())
}

/// The parent lost entries it had acknowledged. For this node's own origin: a new epoch with the announcement of
/// its whole state (`backfill::resync`). For an origin below: its entries waiting here are withdrawn, the parent's
/// acknowledgement forgotten, and a marker (`fed/resync/…`) passes the request down to the child towards it on
/// its next `CheckPositions`; the origin's new epoch then comes up through this node.
async fn resync(app: &App, origins: Vec<DivisionCode>) -> Result<(), DomainError> {
    let own = app.federation.code;
    let withdrawn = app
        .committer
        .write_unaudited(move |txn| {
            let mut withdrawn = Vec::new();
            for origin in origins {
                if origin == own {
                    if let Some(base) = super::backfill::resync(txn)? {
                        withdrawn.push((own, base));
                    }
                    continue;
                }
                let marker = apply::resync_key(origin);
                if !own.contains(origin) || txn.get(marker.as_bytes())?.is_some() {
                    continue;
                }
                txn.put_json(marker, &(txn.now().timestamp_millis().max(0) as u64));
                let prefix = entry_prefix(origin);
                let mut waiting = Vec::new();
                txn.store().scan(prefix.as_bytes(), None, &mut |key, _| {
                    let seq = std::str::from_utf8(&key[prefix.len()..]).ok().and_then(|s| s.parse::<u64>().ok());
                    waiting.push((key.to_vec(), seq.unwrap_or(0)));
                    std::ops::ControlFlow::Continue(())
                })?;
                let last = waiting.iter().map(|(_, seq)| *seq).max();
                for (key, _) in waiting {
                    txn.delete(key);
                }
                txn.delete(acked_key(origin));
                tracing::warn!(%origin, "the parent lost entries of a node below this one: it is asked to resync");
                if let Some(last) = last {
                    withdrawn.push((origin, last));
                }
            }
            Ok(withdrawn)
        })
        .await?;
    for (origin, seq) in withdrawn {
        app.committer.outbox().withdraw(origin, seq);
    }
    Ok(())
}

fn apply_messages(
    txn: &mut crate::commit::Txn<'_>,
    router: &Router,
    after: u64,
    messages: Vec<pb::DownMessage>,
) -> Result<(), DomainError> {
    let rule = txn.get_json::<StarRule>(stars::RULE_KEY)?.unwrap_or_else(StarRule::built_in);
    let mut position = after;
    for message in messages {
        if message.seq <= position {
            continue;
        }
        position = message.seq;
        if message.campaign.is_some() || message.selected.is_some() {
            crate::campaign::receive(txn, router, &message)?;
            continue;
        }
        if message.plan.is_some() || !message.closed_plan_id.is_empty() {
            let parent = router.parent.map(|code| code.to_string()).unwrap_or_default();
            crate::plan::receive(txn, &parent, &message)?;
            continue;
        }
        let (Ok(target), Some(notice)) = (DivisionCode::parse(&message.target), message.star) else {
            tracing::warn!(seq = message.seq, "skipped a malformed message from the parent");
            continue;
        };
        if target != router.code {
            apply::pass_down(txn, router, &rule, target, notice)?;
            continue;
        }
        let Some(number) = txn.get(super::outbox::fedvol_key(&notice.volunteer_key).as_bytes())? else {
            tracing::warn!("a star notice names a volunteer this node does not hold; skipped");
            continue;
        };
        let number = String::from_utf8_lossy(&number).into_owned();
        let local = crate::hours::confirmed_total(txn.store(), &number)?.confirmed_minutes;
        let certifications: Vec<stars::Certification> = notice
            .certifications
            .iter()
            .filter_map(|c| {
                let level = match pb::Level::try_from(c.level).ok()? {
                    pb::Level::County => stars::CertifyingLevel::County,
                    pb::Level::City => stars::CertifyingLevel::City,
                    pb::Level::Province => stars::CertifyingLevel::Province,
                    pb::Level::Unspecified => return None,
                };
                Some(stars::Certification {
                    star: c.star,
                    certified_by: c.certified_by.clone(),
                    level,
                    certified_at: c.certified_at.as_ref().and_then(wire::from_timestamp).unwrap_or_else(|| txn.now()),
                })
            })
            .collect();
        stars::on_federation_notice(txn, &number, local, notice.elsewhere_minutes, &certifications)?;
    }
    txn.put_json(DOWN_POSITION_KEY, &position);
    Ok(())
}

/// Logs a warning once when a child goes stale. Children get one `stale_after_ms` after this node starts to make
/// contact, so a restart does not report every child stale on the strength of the silence while it was down.
async fn watch_children(app: Arc<App>) {
    let stale_after = app.config.federation.as_ref().map(|f| f.stale_after_ms).unwrap_or(u64::MAX);
    tokio::time::sleep(Duration::from_millis(stale_after)).await;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticker.tick().await;
        let newly = match app.federation.children.lock() {
            Ok(mut children) => children.newly_stale(Federation::now_ms()),
            Err(_) => continue,
        };
        for child in newly {
            tracing::warn!(%child, "child is stale: no contact for longer than federation.stale_after_ms");
        }
    }
}

/// Asks the ancestors for a volunteer's confirmed minutes across the federation; the highest node reached answers.
pub async fn federation_minutes(app: &App, volunteer_key: &str) -> Result<pb::VolunteerMinutesResponse, DomainError> {
    if let (Some(section), Some(parent)) = (app.config.federation.as_ref(), app.federation.parent.as_ref()) {
        let asked = async {
            let channel = parent_channel(section, parent).map_err(|e| e.to_string())?;
            parent_client(section, channel)
                .volunteer_minutes(pb::VolunteerMinutesRequest { volunteer_key: volunteer_key.to_string() })
                .await
                .map(|response| response.into_inner())
                .map_err(|status| status.message().to_string())
        };
        match asked.await {
            Ok(answer) => return Ok(answer),
            Err(error) => tracing::warn!(%error, "the parent cannot answer a volunteer's minutes; answering locally"),
        }
    }
    Ok(pb::VolunteerMinutesResponse {
        total_minutes: apply::territory_minutes(&*app.store, volunteer_key)?,
        answered_by: app.federation.code.to_string(),
        complete: app.federation.parent.is_none(),
    })
}

/// Office side of mutual recognition: a local volunteer's confirmed minutes across the federation (staff only).
pub async fn volunteer_federation_minutes(
    app: &App,
    caller: &crate::auth::Caller,
    volunteer_number: &str,
) -> Result<pb::GetFederationMinutesResponse, DomainError> {
    caller.require_any(&[crate::auth::Role::Staff], "reading a volunteer's federation-wide hours")?;
    if volunteer_number.trim().is_empty() {
        return Err(DomainError::invalid("volunteer_number", "is required"));
    }
    let key = match app.store.get(format!("fedkey/{volunteer_number}").as_bytes())? {
        Some(key) => String::from_utf8_lossy(&key).into_owned(),
        None => return Err(DomainError::not_found("volunteer", volunteer_number)),
    };
    let local = crate::hours::confirmed_total(&*app.store, volunteer_number)?.confirmed_minutes;
    let answer = federation_minutes(app, &key).await?;
    Ok(pb::GetFederationMinutesResponse {
        volunteer_number: volunteer_number.to_string(),
        local_minutes: local,
        federation_minutes: answer.total_minutes.max(local),
        answered_by: answer.answered_by,
        complete: answer.complete,
    })
}

/// The node's links, for `GetFederationStatus`.
pub fn status(app: &App) -> pb::GetFederationStatusResponse {
    let level = match app.config.node.level {
        crate::config::Level::Province => pb::Level::Province,
        crate::config::Level::City => pb::Level::City,
        crate::config::Level::County => pb::Level::County,
    };
    let outbox = app.committer.outbox();
    let uplink = app.federation.parent.as_ref().map(|parent| {
        let news = app.federation.uplink.lock().map(|news| news.clone()).unwrap_or_default();
        pb::UplinkStatus {
            parent_address: parent.address.clone(),
            parent_code: parent.code.to_string(),
            backlog: outbox.pending(),
            backlog_max: outbox.backlog_max(),
            alarm: outbox.alarm(),
            last_ack: wire::optional_timestamp(news.last_ack),
            last_error: news.last_error,
        }
    });
    let mut applied_per_child: BTreeMap<DivisionCode, u64> = BTreeMap::new();
    let _ = store::scan_json_keyed::<super::ChildRecord>(&*app.store, "fed/child/", |key, record| {
        if let Ok(child) = DivisionCode::parse(key) {
            applied_per_child.insert(child, record.entries_applied);
        }
    });
    let children = app
        .federation
        .children_status()
        .into_iter()
        .map(|child| pb::ChildStatus {
            code: child.child.to_string(),
            last_contact: child.last_contact_ms.map(|ms| wire::timestamp(Federation::time_of(ms))),
            stale: child.stale,
            backlog: child.reported_backlog,
            entries_applied: applied_per_child.get(&child.child).copied().unwrap_or(0),
        })
        .collect();
    pb::GetFederationStatusResponse {
        division_code: app.config.node.code.clone(),
        level: level as i32,
        uplink,
        children,
        federation_listen: app.config.federation.as_ref().map(|f| f.listen.clone()).unwrap_or_default(),
    }
}
