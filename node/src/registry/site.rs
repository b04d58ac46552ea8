//! Service sites: the platforms where volunteers serve.
//!
//! Rules (DOMAIN.md): the guidance (part 五(三)) names civilization practice centres, eco education venues,
//! facilities open to the public, study bases, education and science bases, nature reserves and volunteer stations.
//! Coordinates are WGS-84 degrees. Site records are not personal data: staff, team managers and volunteers may
//! read them; staff keep them.
//!
//! Keys: `site/<site_id>` the record; `site_nm/<name>\0<site_id>` the name index.

use chrono::{DateTime, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::page::{Page, PageRequest};
use crate::store::{self, Store};
use crate::wire;

/// Longest site name accepted, characters.
pub const NAME_CHARS_MAX: usize = 100;
/// Longest address accepted, characters.
pub const ADDRESS_CHARS_MAX: usize = 200;
/// Longest opening notes accepted, characters.
pub const OPENING_NOTES_CHARS_MAX: usize = 1000;
/// Longest site id accepted, characters (`330106-S000003` is 14).
pub const SITE_ID_CHARS_MAX: usize = 32;

/// The platforms the guidance names (part 五(三)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
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

/// The known site kind of a wire value; `None` for unspecified or unknown values.
fn site_kind(value: i32) -> Option<SiteKind> {
    match pb::SiteKind::try_from(value).ok()? {
        pb::SiteKind::Unspecified => None,
        pb::SiteKind::CivilizationPracticeCentre => Some(SiteKind::CivilizationPracticeCentre),
        pb::SiteKind::EcoEducationVenue => Some(SiteKind::EcoEducationVenue),
        pb::SiteKind::OpenFacility => Some(SiteKind::OpenFacility),
        pb::SiteKind::StudyBase => Some(SiteKind::StudyBase),
        pb::SiteKind::EducationBase => Some(SiteKind::EducationBase),
        pb::SiteKind::ScienceBase => Some(SiteKind::ScienceBase),
        pb::SiteKind::NatureReserve => Some(SiteKind::NatureReserve),
        pb::SiteKind::VolunteerStation => Some(SiteKind::VolunteerStation),
        pb::SiteKind::Other => Some(SiteKind::Other),
    }
}

impl From<SiteKind> for pb::SiteKind {
    fn from(kind: SiteKind) -> Self {
        match kind {
            SiteKind::CivilizationPracticeCentre => pb::SiteKind::CivilizationPracticeCentre,
            SiteKind::EcoEducationVenue => pb::SiteKind::EcoEducationVenue,
            SiteKind::OpenFacility => pb::SiteKind::OpenFacility,
            SiteKind::StudyBase => pb::SiteKind::StudyBase,
            SiteKind::EducationBase => pb::SiteKind::EducationBase,
            SiteKind::ScienceBase => pb::SiteKind::ScienceBase,
            SiteKind::NatureReserve => pb::SiteKind::NatureReserve,
            SiteKind::VolunteerStation => pb::SiteKind::VolunteerStation,
            SiteKind::Other => pb::SiteKind::Other,
        }
    }
}

const KIND_REQUIRED: &str = "is required: civilization practice centre, eco education venue, open facility, \
                             study base, education base, science base, nature reserve, volunteer station or other \
                             (guidance part 五(三))";

/// A WGS-84 position in degrees, both coordinates finite and in range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

impl From<GeoPoint> for pb::GeoPoint {
    fn from(point: GeoPoint) -> Self {
        pb::GeoPoint { latitude: point.latitude, longitude: point.longitude }
    }
}

/// Checks one coordinate: finite (NaN and infinities are refused) and within ±`bound` degrees.
fn check_coordinate(violations: &mut Violations, field: &str, value: f64, bound: f64) {
    if !value.is_finite() {
        violations.add(field, "must be a finite number of degrees");
    } else if !(-bound..=bound).contains(&value) {
        violations.add(field, format!("must be between -{bound} and {bound} degrees (WGS-84), got {value}"));
    }
}

/// Checks a wire position under `field` (`location.latitude`, `location.longitude`).
fn parse_location(violations: &mut Violations, field: &str, point: &pb::GeoPoint) -> GeoPoint {
    check_coordinate(violations, &format!("{field}.latitude"), point.latitude, 90.0);
    check_coordinate(violations, &format!("{field}.longitude"), point.longitude, 180.0);
    GeoPoint { latitude: point.latitude, longitude: point.longitude }
}

fn check_site_id(violations: &mut Violations, site_id: &str) {
    if site_id.is_empty() {
        violations.add("site_id", "is required");
    } else if site_id.len() > SITE_ID_CHARS_MAX || !site_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        violations.add("site_id", "is not a site id (like 330106-S000003)");
    }
}

/// Unwraps a field the validation has already proved present.
fn checked<T>(value: Option<T>) -> Result<T, DomainError> {
    value.ok_or_else(|| DomainError::Internal("validation passed with a missing field".into()))
}

/// A site as stored under `site/<site_id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteRecord {
    pub site_id: String,
    pub name: String,
    pub kind: SiteKind,
    pub address: String,
    pub location: Option<GeoPoint>,
    /// Opening hours and access notes; may be empty.
    pub opening_notes: String,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Account that made this version.
    pub changed_by: String,
}

/// The key of a site record.
pub fn site_key(site_id: &str) -> String {
    format!("site/{site_id}")
}

fn name_key(name: &str, site_id: &str) -> String {
    format!("site_nm/{name}\0{site_id}")
}

/// A validated site creation.
#[derive(Debug, Clone)]
pub struct CreateSite {
    pub name: String,
    pub kind: SiteKind,
    pub address: String,
    pub location: Option<GeoPoint>,
    pub opening_notes: String,
}

impl TryFrom<pb::CreateSiteRequest> for CreateSite {
    type Error = DomainError;

    fn try_from(request: pb::CreateSiteRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        violations.text("name", &request.name, NAME_CHARS_MAX);
        let kind = site_kind(request.kind);
        if kind.is_none() {
            violations.add("kind", KIND_REQUIRED);
        }
        violations.text("address", &request.address, ADDRESS_CHARS_MAX);
        let location = request.location.as_ref().map(|point| parse_location(&mut violations, "location", point));
        violations.optional_text("opening_notes", &request.opening_notes, OPENING_NOTES_CHARS_MAX);
        violations.into_result()?;
        Ok(Self {
            name: request.name.trim().to_string(),
            kind: checked(kind)?,
            address: request.address.trim().to_string(),
            location,
            opening_notes: request.opening_notes.trim().to_string(),
        })
    }
}

/// How an update changes a site's coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LocationChange {
    /// Leave them as they are.
    #[default]
    Keep,
    /// Replace them.
    Set(GeoPoint),
    /// Remove them.
    Clear,
}

/// A validated site update: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateSite {
    pub site_id: String,
    pub name: Option<String>,
    pub kind: Option<SiteKind>,
    pub address: Option<String>,
    pub location: LocationChange,
    pub opening_notes: Option<String>,
}

impl TryFrom<pb::UpdateSiteRequest> for UpdateSite {
    type Error = DomainError;

    fn try_from(request: pb::UpdateSiteRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_site_id(&mut violations, &request.site_id);
        if let Some(name) = &request.name {
            violations.text("name", name, NAME_CHARS_MAX);
        }
        let kind = request.kind.map(site_kind);
        if kind == Some(None) {
            violations.add("kind", KIND_REQUIRED);
        }
        if let Some(address) = &request.address {
            violations.text("address", address, ADDRESS_CHARS_MAX);
        }
        let location = match (&request.location, request.clear_location) {
            (Some(point), false) => LocationChange::Set(parse_location(&mut violations, "location", point)),
            (None, true) => LocationChange::Clear,
            (None, false) => LocationChange::Keep,
            (Some(_), true) => {
                violations.add("clear_location", "cannot be set together with location: give one or the other");
                LocationChange::Keep
            }
        };
        if let Some(notes) = &request.opening_notes {
            violations.optional_text("opening_notes", notes, OPENING_NOTES_CHARS_MAX);
        }
        violations.into_result()?;
        Ok(Self {
            site_id: request.site_id,
            name: request.name.map(|name| name.trim().to_string()),
            kind: kind.flatten(),
            address: request.address.map(|address| address.trim().to_string()),
            location,
            opening_notes: request.opening_notes.map(|notes| notes.trim().to_string()),
        })
    }
}

/// A validated read of one site.
#[derive(Debug, Clone)]
pub struct GetSite {
    pub site_id: String,
}

impl TryFrom<pb::GetSiteRequest> for GetSite {
    type Error = DomainError;

    fn try_from(request: pb::GetSiteRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_site_id(&mut violations, &request.site_id);
        violations.into_result()?;
        Ok(Self { site_id: request.site_id })
    }
}

/// Site list filters; every one given must match. Paging comes separately.
#[derive(Debug, Clone, Default)]
pub struct ListSites {
    pub kind: Option<SiteKind>,
    pub name_prefix: Option<String>,
}

impl TryFrom<&pb::ListSitesRequest> for ListSites {
    type Error = DomainError;

    fn try_from(request: &pb::ListSitesRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let kind = match pb::SiteKind::try_from(request.kind) {
            Ok(pb::SiteKind::Unspecified) => None,
            Ok(_) => site_kind(request.kind),
            Err(_) => {
                violations.add("kind", "is not a known site kind");
                None
            }
        };
        violations.optional_text("name_prefix", &request.name_prefix, NAME_CHARS_MAX);
        violations.into_result()?;
        let name_prefix = request.name_prefix.trim();
        Ok(Self { kind, name_prefix: (!name_prefix.is_empty()).then(|| name_prefix.to_string()) })
    }
}

/// Creates a site. Staff only.
pub fn create(
    txn: &mut Txn<'_>,
    node_code: &str,
    caller: &Caller,
    command: CreateSite,
) -> Result<SiteRecord, DomainError> {
    caller.require_any(&[Role::Staff], "creating a site")?;
    let sequence = txn.next_seq("site")?;
    let site_id = format!("{node_code}-S{sequence:06}");
    txn.target = site_id.clone();
    let now = txn.now();
    let record = SiteRecord {
        site_id: site_id.clone(),
        name: command.name,
        kind: command.kind,
        address: command.address,
        location: command.location,
        opening_notes: command.opening_notes,
        version: 1,
        created_at: now,
        updated_at: now,
        changed_by: caller.account_id.clone(),
    };
    txn.put(name_key(&record.name, &site_id), Vec::new());
    txn.put_json(site_key(&site_id), &record);
    Ok(record)
}

/// Updates a site as a new version. Staff only.
pub fn update(txn: &mut Txn<'_>, caller: &Caller, command: UpdateSite) -> Result<SiteRecord, DomainError> {
    caller.require_any(&[Role::Staff], "updating a site")?;
    let old: SiteRecord = txn
        .get_json(&site_key(&command.site_id))?
        .ok_or_else(|| DomainError::not_found("site", command.site_id.clone()))?;
    let mut new = old.clone();
    if let Some(name) = command.name {
        new.name = name;
    }
    if let Some(kind) = command.kind {
        new.kind = kind;
    }
    if let Some(address) = command.address {
        new.address = address;
    }
    match command.location {
        LocationChange::Keep => {}
        LocationChange::Set(point) => new.location = Some(point),
        LocationChange::Clear => new.location = None,
    }
    if let Some(notes) = command.opening_notes {
        new.opening_notes = notes;
    }
    new.version = old.version + 1;
    new.updated_at = txn.now();
    new.changed_by = caller.account_id.clone();
    if old.name != new.name {
        txn.delete(name_key(&old.name, &old.site_id));
    }
    txn.put(name_key(&new.name, &new.site_id), Vec::new());
    txn.put_json(site_key(&new.site_id), &new);
    Ok(new)
}

/// Reads one site. Staff, team managers and volunteers.
pub fn get(store: &dyn Store, caller: &Caller, site_id: &str) -> Result<SiteRecord, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "reading a site")?;
    store::get_json(store, site_key(site_id).as_bytes())?.ok_or_else(|| DomainError::not_found("site", site_id))
}

/// Lists sites matching `query`, through the name index when a prefix is given. Staff, team managers and
/// volunteers.
pub fn list(
    store: &dyn Store,
    caller: &Caller,
    query: &ListSites,
    page: &PageRequest,
) -> Result<Page<SiteRecord>, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "listing sites")?;
    let prefix = match &query.name_prefix {
        Some(name) => format!("site_nm/{name}"),
        None => "site/".to_string(),
    };
    crate::page::collect(store, &prefix, page, |key, value| {
        let record: SiteRecord = if query.name_prefix.is_some() {
            // Name index keys end in the site id, after NUL.
            let text = String::from_utf8_lossy(key);
            let site_id = text.rsplit('\0').next().unwrap_or_default();
            match store::get_json(store, site_key(site_id).as_bytes())? {
                Some(record) => record,
                None => return Ok(None),
            }
        } else {
            store::decode(key, value)?
        };
        let matches = query.kind.is_none_or(|kind| kind == record.kind)
            && query.name_prefix.as_ref().is_none_or(|name| record.name.starts_with(name.as_str()));
        Ok(matches.then_some(record))
    })
}

impl SiteRecord {
    /// The wire form.
    pub fn to_pb(&self) -> pb::Site {
        pb::Site {
            site_id: self.site_id.clone(),
            name: self.name.clone(),
            kind: pb::SiteKind::from(self.kind) as i32,
            address: self.address.clone(),
            location: self.location.map(pb::GeoPoint::from),
            opening_notes: self.opening_notes.clone(),
            version: self.version,
            created_at: Some(wire::timestamp(self.created_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::audit::AuditContext;
    use crate::auth::Department;
    use crate::commit::Committer;
    use crate::page::PageLimits;
    use crate::store::SledStore;

    use crate::testing::{check, violated_fields as fields};

    fn point(latitude: f64, longitude: f64) -> Option<pb::GeoPoint> {
        Some(pb::GeoPoint { latitude, longitude })
    }

    fn create_request() -> pb::CreateSiteRequest {
        pb::CreateSiteRequest {
            name: "西溪湿地志愿服务站".into(),
            kind: pb::SiteKind::VolunteerStation as i32,
            address: "杭州市西湖区天目山路518号".into(),
            ..Default::default()
        }
    }

    #[test]
    fn site_creations_are_checked_field_by_field() {
        let cases: Vec<(pb::CreateSiteRequest, &[&str])> = vec![
            (create_request(), &[]),
            (
                pb::CreateSiteRequest {
                    location: point(30.27, 120.06),
                    opening_notes: "周二至周日 9:00–17:00\n周一闭馆".into(),
                    ..create_request()
                },
                &[],
            ),
            // The corners of the WGS-84 range are valid, and so is (0, 0).
            (pb::CreateSiteRequest { location: point(-90.0, 180.0), ..create_request() }, &[]),
            (pb::CreateSiteRequest { location: point(0.0, 0.0), ..create_request() }, &[]),
            (pb::CreateSiteRequest { location: point(90.5, 120.0), ..create_request() }, &["location.latitude"]),
            (pb::CreateSiteRequest { location: point(30.0, -180.1), ..create_request() }, &["location.longitude"]),
            (
                pb::CreateSiteRequest { location: point(f64::NAN, f64::INFINITY), ..create_request() },
                &["location.latitude", "location.longitude"],
            ),
            (
                pb::CreateSiteRequest { location: point(30.0, f64::NEG_INFINITY), ..create_request() },
                &["location.longitude"],
            ),
            (pb::CreateSiteRequest { name: String::new(), ..create_request() }, &["name"]),
            (pb::CreateSiteRequest { name: "站".repeat(101), ..create_request() }, &["name"]),
            (pb::CreateSiteRequest { kind: 0, ..create_request() }, &["kind"]),
            (pb::CreateSiteRequest { kind: 10, ..create_request() }, &["kind"]),
            (pb::CreateSiteRequest { address: " ".into(), ..create_request() }, &["address"]),
            (pb::CreateSiteRequest { address: "路".repeat(201), ..create_request() }, &["address"]),
            (
                pb::CreateSiteRequest {
                    address: "路".repeat(200),
                    opening_notes: "注".repeat(1000),
                    ..create_request()
                },
                &[],
            ),
            (pb::CreateSiteRequest { opening_notes: "注".repeat(1001), ..create_request() }, &["opening_notes"]),
            // Every broken rule at once.
            (
                pb::CreateSiteRequest {
                    name: String::new(),
                    kind: 0,
                    address: String::new(),
                    location: point(-91.0, 181.0),
                    opening_notes: "\u{7}".into(),
                },
                &["name", "kind", "address", "location.latitude", "location.longitude", "opening_notes"],
            ),
        ];
        for (request, expected) in cases {
            check::<CreateSite, _>(request, expected);
        }
    }

    fn update_request() -> pb::UpdateSiteRequest {
        pb::UpdateSiteRequest { site_id: "330106-S000001".into(), ..Default::default() }
    }

    #[test]
    fn site_updates_are_checked_field_by_field() {
        let cases: Vec<(pb::UpdateSiteRequest, &[&str])> = vec![
            (update_request(), &[]),
            (pb::UpdateSiteRequest { site_id: String::new(), ..update_request() }, &["site_id"]),
            (pb::UpdateSiteRequest { site_id: "site/../x".into(), ..update_request() }, &["site_id"]),
            (
                pb::UpdateSiteRequest { name: Some(String::new()), address: Some(String::new()), ..update_request() },
                &["name", "address"],
            ),
            (pb::UpdateSiteRequest { kind: Some(0), ..update_request() }, &["kind"]),
            (pb::UpdateSiteRequest { kind: Some(pb::SiteKind::NatureReserve as i32), ..update_request() }, &[]),
            (pb::UpdateSiteRequest { location: point(30.0, 120.0), ..update_request() }, &[]),
            (pb::UpdateSiteRequest { location: point(f64::NAN, 120.0), ..update_request() }, &["location.latitude"]),
            (pb::UpdateSiteRequest { clear_location: true, ..update_request() }, &[]),
            (
                pb::UpdateSiteRequest { location: point(30.0, 120.0), clear_location: true, ..update_request() },
                &["clear_location"],
            ),
            // Opening notes may be emptied, not overlong.
            (pb::UpdateSiteRequest { opening_notes: Some(String::new()), ..update_request() }, &[]),
            (pb::UpdateSiteRequest { opening_notes: Some("注".repeat(1001)), ..update_request() }, &["opening_notes"]),
        ];
        for (request, expected) in cases {
            check::<UpdateSite, _>(request, expected);
        }
    }

    #[test]
    fn update_location_changes_are_told_apart() -> Result<(), DomainError> {
        let parse = |location: Option<pb::GeoPoint>, clear_location: bool| {
            UpdateSite::try_from(pb::UpdateSiteRequest { location, clear_location, ..update_request() })
                .map(|update| update.location)
        };
        assert_eq!(parse(None, false)?, LocationChange::Keep);
        assert_eq!(parse(None, true)?, LocationChange::Clear);
        assert_eq!(
            parse(point(30.5, 120.25), false)?,
            LocationChange::Set(GeoPoint { latitude: 30.5, longitude: 120.25 })
        );
        Ok(())
    }

    #[test]
    fn get_and_list_requests_are_checked() {
        check::<GetSite, _>(pb::GetSiteRequest::default(), &["site_id"]);
        check::<GetSite, _>(pb::GetSiteRequest { site_id: "330106-S000001".into() }, &[]);
        let cases: Vec<(pb::ListSitesRequest, &[&str])> = vec![
            (pb::ListSitesRequest::default(), &[]),
            (
                pb::ListSitesRequest {
                    kind: pb::SiteKind::StudyBase as i32,
                    name_prefix: "西溪".into(),
                    ..Default::default()
                },
                &[],
            ),
            (
                pb::ListSitesRequest { kind: -1, name_prefix: "x".repeat(101), ..Default::default() },
                &["kind", "name_prefix"],
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(fields(ListSites::try_from(&request)), expected, "{request:?}");
        }
    }

    // ----- use-cases against a real store -----

    fn account(roles: &[Role]) -> Caller {
        Caller {
            account_id: "acct-test".into(),
            name: "测试账号".into(),
            department: Department::EcologyBureau,
            roles: roles.to_vec(),
            team_id: None,
            volunteer_number: None,
            request_id: "test".into(),
        }
    }

    fn page(size: usize, token: &str) -> Result<PageRequest, DomainError> {
        PageRequest::parse(size as i32, token, PageLimits { size_default: 50, size_max: 500 })
    }

    #[tokio::test]
    async fn sites_are_created_updated_and_listed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db"), 8 << 20)?);
        let committer = Committer::start(store.clone(), 64, 64);
        let staff = account(&[Role::Staff]);
        let create_site = |caller: &Caller, request: pb::CreateSiteRequest| {
            let caller = caller.clone();
            let command = CreateSite::try_from(request);
            committer.write(AuditContext::new(&caller, "test", ""), move |txn| create(txn, "330106", &caller, command?))
        };
        let update_site = |caller: &Caller, request: pb::UpdateSiteRequest| {
            let caller = caller.clone();
            let command = UpdateSite::try_from(request);
            committer.write(AuditContext::new(&caller, "test", ""), move |txn| update(txn, &caller, command?))
        };

        let station =
            create_site(&staff, pb::CreateSiteRequest { location: point(30.27, 120.06), ..create_request() }).await?;
        assert_eq!(station.site_id, "330106-S000001");
        assert_eq!(station.version, 1);
        let reserve = create_site(
            &staff,
            pb::CreateSiteRequest {
                name: "西溪国家湿地公园".into(),
                kind: pb::SiteKind::NatureReserve as i32,
                ..create_request()
            },
        )
        .await?;
        create_site(
            &staff,
            pb::CreateSiteRequest {
                name: "滨江宣讲中心".into(),
                kind: pb::SiteKind::CivilizationPracticeCentre as i32,
                ..create_request()
            },
        )
        .await?;
        assert!(matches!(
            create_site(&account(&[Role::TeamManager]), create_request()).await,
            Err(DomainError::PermissionDenied(_))
        ));

        // Clear the coordinates and rename: the name index follows.
        let cleared = update_site(
            &staff,
            pb::UpdateSiteRequest {
                site_id: station.site_id.clone(),
                name: Some("蒋村志愿服务站".into()),
                clear_location: true,
                ..Default::default()
            },
        )
        .await?;
        assert_eq!(cleared.location, None);
        assert_eq!(cleared.version, 2);
        assert_eq!(cleared.to_pb().location, None);
        let moved = update_site(
            &staff,
            pb::UpdateSiteRequest {
                site_id: reserve.site_id.clone(),
                location: point(30.26, 120.07),
                ..Default::default()
            },
        )
        .await?;
        assert_eq!(moved.to_pb().location, point(30.26, 120.07));
        assert!(matches!(
            update_site(&staff, pb::UpdateSiteRequest { site_id: "330106-S000099".into(), ..Default::default() }).await,
            Err(DomainError::NotFound { kind: "site", .. })
        ));
        assert!(matches!(
            update_site(&account(&[Role::Volunteer]), update_request()).await,
            Err(DomainError::PermissionDenied(_))
        ));

        let volunteer = account(&[Role::Volunteer]);
        assert_eq!(get(&*store, &volunteer, &reserve.site_id)?.version, 2);
        assert!(matches!(
            get(&*store, &account(&[Role::Operator]), &reserve.site_id),
            Err(DomainError::PermissionDenied(_))
        ));
        let names = |query: ListSites, size: usize| -> anyhow::Result<Vec<String>> {
            let mut names = Vec::new();
            let mut token = String::new();
            loop {
                let found = list(&*store, &volunteer, &query, &page(size, &token)?)?;
                names.extend(found.items.into_iter().map(|site| site.name));
                if found.next_page_token.is_empty() {
                    return Ok(names);
                }
                token = found.next_page_token;
            }
        };
        assert_eq!(names(ListSites::default(), 1)?.len(), 3);
        let west = ListSites { name_prefix: Some("西溪".into()), ..Default::default() };
        // The renamed station left the "西溪" prefix.
        assert_eq!(names(west.clone(), 1)?, ["西溪国家湿地公园"]);
        assert_eq!(
            names(ListSites { kind: Some(SiteKind::VolunteerStation), ..Default::default() }, 2)?,
            ["蒋村志愿服务站"]
        );
        assert!(names(ListSites { kind: Some(SiteKind::StudyBase), ..west }, 2)?.is_empty());
        Ok(())
    }
}
