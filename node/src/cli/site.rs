//! `ecovol site …`: the service sites (platforms) where volunteers serve (`SiteService`).

use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node, PageArgs, pages};
use super::console::{Console, Record, name, optional, timestamp};
use super::failure::Failure;
use super::vocabulary::{SiteKind, site_kind_name};

/// Site commands.
#[derive(Debug, clap::Subcommand)]
pub enum SiteCommand {
    /// Create a site.
    Create(CreateArgs),
    /// Show one site.
    Get(SiteIdArg),
    /// List sites.
    List(ListArgs),
    /// Change a site.
    Update(UpdateArgs),
}

/// A site id.
#[derive(Debug, Clone, clap::Args)]
pub struct SiteIdArg {
    /// The site id, e.g. 330106-S000003.
    pub site_id: String,
}

/// WGS-84 coordinates, both or neither.
#[derive(Debug, Clone, clap::Args)]
pub struct LocationArgs {
    /// Latitude in degrees (WGS-84), with --longitude.
    #[arg(long, requires = "longitude", allow_negative_numbers = true, value_name = "DEGREES")]
    pub latitude: Option<f64>,

    /// Longitude in degrees (WGS-84), with --latitude.
    #[arg(long, requires = "latitude", allow_negative_numbers = true, value_name = "DEGREES")]
    pub longitude: Option<f64>,
}

impl LocationArgs {
    fn point(&self) -> Option<pb::GeoPoint> {
        Some(pb::GeoPoint { latitude: self.latitude?, longitude: self.longitude? })
    }
}

/// Arguments of `site create`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// Name of the site.
    #[arg(long)]
    pub name: String,

    /// Kind of site.
    #[arg(long, value_enum)]
    pub kind: SiteKind,

    /// Postal address.
    #[arg(long)]
    pub address: String,

    #[command(flatten)]
    pub location: LocationArgs,

    /// Opening hours and how to get in.
    #[arg(long, value_name = "TEXT")]
    pub opening_notes: Option<String>,
}

/// Arguments of `site list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only sites of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<SiteKind>,

    /// Names starting with this.
    #[arg(long)]
    pub name_prefix: Option<String>,

    #[command(flatten)]
    pub page: PageArgs,
}

/// The changes of `site update`; at least one is required.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = true)]
pub struct SiteChanges {
    /// New name.
    #[arg(long)]
    pub name: Option<String>,

    /// New kind.
    #[arg(long, value_enum)]
    pub kind: Option<SiteKind>,

    /// New address.
    #[arg(long)]
    pub address: Option<String>,

    /// New latitude in degrees (WGS-84), with --longitude.
    #[arg(long, requires = "longitude", allow_negative_numbers = true, value_name = "DEGREES")]
    pub latitude: Option<f64>,

    /// New longitude in degrees (WGS-84), with --latitude.
    #[arg(long, requires = "latitude", allow_negative_numbers = true, value_name = "DEGREES")]
    pub longitude: Option<f64>,

    /// Remove the coordinates.
    #[arg(long, conflicts_with_all = ["latitude", "longitude"])]
    pub clear_location: bool,

    /// New opening notes.
    #[arg(long, value_name = "TEXT")]
    pub opening_notes: Option<String>,
}

/// Arguments of `site update`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// The site id, e.g. 330106-S000003.
    pub site_id: String,

    #[command(flatten)]
    pub changes: SiteChanges,
}

/// A site as printed.
pub fn record(site: &pb::Site) -> Record {
    let location = site.location.as_ref().map_or(
        serde_json::Value::Null,
        |point| serde_json::json!({ "latitude": point.latitude, "longitude": point.longitude }),
    );
    Record::new()
        .field("site_id", site.site_id.clone())
        .field("name", site.name.clone())
        .field("kind", name(site_kind_name(site.kind)))
        .field("address", site.address.clone())
        .field("location", location)
        .field("opening_notes", optional(&site.opening_notes))
        .field("version", site.version)
        .field("created_at", timestamp(site.created_at.as_ref()))
}

const LIST_COLUMNS: &[&str] = &["site_id", "name", "kind", "address", "location"];

pub async fn run(command: SiteCommand, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    let mut client = node.sites();
    match command {
        SiteCommand::Create(args) => {
            let response = client
                .create_site(pb::CreateSiteRequest {
                    name: args.name,
                    kind: args.kind.wire(),
                    address: args.address,
                    location: args.location.point(),
                    opening_notes: args.opening_notes.unwrap_or_default(),
                })
                .await?
                .into_inner();
            console.single("site", &record(&response.site.unwrap_or_default()));
        }
        SiteCommand::Get(args) => {
            let response = client.get_site(pb::GetSiteRequest { site_id: args.site_id }).await?.into_inner();
            console.single("site", &record(&response.site.unwrap_or_default()));
        }
        SiteCommand::List(args) => {
            let (sites, next) = pages(args.page.all, args.page.start(), |page_token| {
                let mut client = client.clone();
                let request = pb::ListSitesRequest {
                    kind: args.kind.map_or(0, SiteKind::wire),
                    name_prefix: args.name_prefix.clone().unwrap_or_default(),
                    page_size: args.page.size(),
                    page_token,
                };
                async move {
                    let response = client.list_sites(request).await?.into_inner();
                    Ok((response.sites, response.next_page_token))
                }
            })
            .await?;
            let records: Vec<Record> = sites.iter().map(record).collect();
            console.list("sites", &records, LIST_COLUMNS, &next);
        }
        SiteCommand::Update(args) => {
            let changes = args.changes;
            let location = LocationArgs { latitude: changes.latitude, longitude: changes.longitude }.point();
            let response = client
                .update_site(pb::UpdateSiteRequest {
                    site_id: args.site_id,
                    name: changes.name,
                    kind: changes.kind.map(SiteKind::wire),
                    address: changes.address,
                    location,
                    clear_location: changes.clear_location,
                    opening_notes: changes.opening_notes,
                })
                .await?
                .into_inner();
            console.single("site", &record(&response.site.unwrap_or_default()));
        }
    }
    Ok(())
}
