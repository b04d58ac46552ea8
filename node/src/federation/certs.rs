//! Federation node certificates: the federation CA, the certificate of each node, which carries the node's
//! GB/T 2260 division code and level, and reading that identity back from a peer's certificate.
//!
//! A node's identity is one DNS subjectAltName `{code}.{level}.node.ecovol`, e.g. `320102.county.node.ecovol`.
//! A DNS name rather than a private extension, because TLS checks it already: a child dials its parent with
//! that name as the server name, so the handshake itself proves the parent is the parent; the parent reads the
//! child's name with [`peer_identity`]. The subject CN `ecovol node {code} ({level})` is for people reading the
//! certificate. One certificate serves both ends (EKU serverAuth and clientAuth) and, with extra host names, the
//! office port too.
//!
//! Chain validation is the TLS stack's job (rustls with the ring provider); this module only makes certificates
//! and reads the identity of one TLS has accepted.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ecovol_coordinator::region::{DivisionCode, DivisionCodeError, DivisionLevel};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use ring::rand::SecureRandom as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

/// The DNS suffix shared by every node name: `{code}.{level}` comes before it.
pub const NODE_DNS_SUFFIX: &str = ".node.ecovol";
/// File name of the federation CA certificate written by [`write_ca`].
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the federation CA key written by [`write_ca`].
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of an office CA certificate written by [`write_office_ca`].
pub const OFFICE_CA_CERT_FILE: &str = "office-ca.pem";
/// File name of an office CA key written by [`write_office_ca`].
pub const OFFICE_CA_KEY_FILE: &str = "office-ca.key";
/// Start of the CN of every federation CA; an office CA's CN starts with [`OFFICE_CA_PREFIX`].
const FEDERATION_CA_PREFIX: &str = "ecovol federation CA";
/// Start of the CN of every office CA.
const OFFICE_CA_PREFIX: &str = "ecovol office CA";
/// Start of the CN of every office-client certificate: `ecovol office client {name}`.
pub const OFFICE_CLIENT_PREFIX: &str = "ecovol office client";

/// Validity of the federation CA: 10 years, so it outlives several rounds of node certificates.
const CA_VALIDITY_DAYS: i64 = 3653;
/// Validity of a node certificate: 2 years, then the node gets a new one.
const NODE_VALIDITY_DAYS: i64 = 731;
/// Validity of an office-client certificate: 1 year; people and desks change more often than offices.
const CLIENT_VALIDITY_DAYS: i64 = 366;
/// Longest name in an office-client certificate (characters).
const CLIENT_NAME_CHARS_MAX: usize = 100;
/// Certificates start this long before they are made, so a peer whose clock runs a little behind accepts them.
const BACKDATE_SECS: i64 = 3600;
/// Bytes of the federation pseudonym key (64 hex characters in its file).
const FEDERATION_KEY_BYTES: usize = 32;

/// Who a node is: its division code and the level that code has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    /// The node's GB/T 2260 division code.
    pub code: DivisionCode,
    /// The node's level, always `code.level()` in an identity read by [`peer_identity`].
    pub level: DivisionLevel,
}

impl NodeIdentity {
    /// The identity of the node for `code`.
    pub fn of(code: DivisionCode) -> Self {
        Self { code, level: code.level() }
    }

    /// The DNS name its certificate carries (see [`node_dns_name`]).
    pub fn dns_name(&self) -> String {
        node_dns_name(self.code)
    }
}

impl std::fmt::Display for NodeIdentity {
    /// `320102 (county)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code, level_label(self.level))
    }
}

/// What a node certificate says, for people (`ecovol certs show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertificate {
    /// The node the certificate names.
    pub identity: NodeIdentity,
    /// The subject CN, e.g. `ecovol node 320102 (county)`.
    pub common_name: Option<String>,
    /// Subject alternative names other than the node name: DNS names and IP addresses for the office port.
    pub hosts: Vec<String>,
    /// The issuer's distinguished name, e.g. `CN=ecovol federation CA (jiangsu)`.
    pub issuer: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
}

/// What can go wrong making, writing or reading federation certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The name given to a new CA is empty.
    #[error("the CA name must not be empty")]
    EmptyCaName,
    /// An extra host for a node certificate is neither an IP address nor a DNS name, or is a node name.
    #[error("host {host:?} {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// rcgen could not make or sign the certificate.
    #[error("could not make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The CA certificate given to sign with is not a PEM X.509 certificate.
    #[error("the CA certificate is unreadable: {0}")]
    CaCertificate(String),
    /// The CA key given to sign with is not a PEM private key rcgen can sign with.
    #[error("the CA key is unreadable: {0}")]
    CaKey(String),
    /// The CA certificate given to sign with is not a CA (basic constraints without `cA`).
    #[error("the CA certificate is not a CA certificate (its basic constraints do not allow signing)")]
    NotCa,
    /// The CA certificate given to sign with has expired: its node certificates would be refused at once.
    #[error("the CA certificate expired on {not_after}")]
    CaExpired {
        /// The end of the CA's validity.
        not_after: String,
    },
    /// The CA key given to sign with does not belong to the CA certificate.
    #[error("the CA key does not belong to the CA certificate")]
    CaKeyMismatch,
    /// A node certificate asked of an office CA, or an office-client certificate of the federation CA: the two
    /// trust roots stay apart (see [`issue_client_cert`]).
    #[error("{0}")]
    WrongCa(&'static str),
    /// The name or file label of an office-client certificate is unusable.
    #[error("client {what} {value:?} {reason}")]
    InvalidClient {
        /// `name` or `file name`.
        what: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A certificate is not X.509 (DER, or PEM where PEM is expected).
    #[error("not an X.509 certificate: {0}")]
    Unreadable(String),
    /// A certificate without a `*.node.ecovol` DNS name.
    #[error("the certificate of {subject:?} carries no node name (*{NODE_DNS_SUFFIX})")]
    NoNodeName {
        /// The certificate's subject, to tell which certificate it was.
        subject: String,
    },
    /// A certificate with more than one `*.node.ecovol` DNS name: which node it is would be ambiguous.
    #[error("the certificate carries {} node names, expected one: {}", .0.len(), .0.join(", "))]
    SeveralNodeNames(Vec<String>),
    /// A `*.node.ecovol` name not of the form `{code}.{level}.node.ecovol`.
    #[error("node name {name:?} is malformed: {reason}")]
    BadNodeName {
        /// The name as found.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A node name whose code is not a GB/T 2260 division code.
    #[error("node name {name:?} holds a bad division code: {source}")]
    BadCode {
        /// The name as found.
        name: String,
        /// Why the code does not parse.
        #[source]
        source: DivisionCodeError,
    },
    /// A node name whose level label disagrees with the level of its code (GB/T 2260 digits).
    #[error("node name {name:?} says {claimed}, but {code} is a {actual} code")]
    LevelMismatch {
        /// The name as found.
        name: String,
        /// The code in the name.
        code: DivisionCode,
        /// The level label in the name.
        claimed: &'static str,
        /// The level the code's digits give.
        actual: &'static str,
    },
    /// A file to write exists already and replacing it was not asked for.
    #[error("{} exists already, refusing to overwrite it", .path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file or folder could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The system random number generator failed.
    #[error("no system randomness")]
    Randomness,
}

/// The level as it reads in node names and CNs: `county`, `city` or `province`.
pub fn level_label(level: DivisionLevel) -> &'static str {
    match level {
        DivisionLevel::Province => "province",
        DivisionLevel::City => "city",
        DivisionLevel::County => "county",
    }
}

/// The level a label names, if any (the inverse of [`level_label`]).
fn level_from_label(label: &str) -> Option<DivisionLevel> {
    match label {
        "province" => Some(DivisionLevel::Province),
        "city" => Some(DivisionLevel::City),
        "county" => Some(DivisionLevel::County),
        _ => None,
    }
}

/// The DNS name a node's certificate carries, and that a child uses as TLS server name when dialling its parent:
/// `{code}.{level}.node.ecovol`, the level read from the code (`429004.county.node.ecovol`).
pub fn node_dns_name(code: DivisionCode) -> String {
    format!("{code}.{}{NODE_DNS_SUFFIX}", level_label(code.level()))
}

/// The identity a node name `{code}.{level}.node.ecovol` stands for (case-insensitive, as DNS names are). The
/// code must parse and its level must be the one the name says.
pub fn parse_node_dns_name(name: &str) -> Result<NodeIdentity, CertError> {
    let lowercase = name.to_ascii_lowercase();
    let bad = |reason| CertError::BadNodeName { name: name.to_string(), reason };
    let Some(prefix) = lowercase.strip_suffix(NODE_DNS_SUFFIX) else {
        return Err(bad("it does not end in .node.ecovol"));
    };
    let Some((code, label)) = prefix.split_once('.') else {
        return Err(bad("expected {code}.{level}.node.ecovol"));
    };
    let claimed = level_from_label(label).ok_or_else(|| bad("the level must be county, city or province"))?;
    let code = DivisionCode::parse(code).map_err(|source| CertError::BadCode { name: name.to_string(), source })?;
    if code.level() != claimed {
        return Err(CertError::LevelMismatch {
            name: name.to_string(),
            code,
            claimed: level_label(claimed),
            actual: level_label(code.level()),
        });
    }
    Ok(NodeIdentity { code, level: claimed })
}

/// A new federation CA: (cert_pem, key_pem). CN `ecovol federation CA ({name})`, valid 10 years, key usages
/// keyCertSign and cRLSign, basic constraints `cA` with path length 0: it signs node certificates only, never an
/// intermediate CA.
pub fn generate_ca(name: &str) -> Result<(String, String), CertError> {
    generate_ca_named(FEDERATION_CA_PREFIX, name)
}

/// A new office CA: (cert_pem, key_pem), CN `ecovol office CA ({name})`, otherwise as [`generate_ca`]. It signs
/// the office-client certificates of one office ([`issue_client_cert`]), never node certificates.
pub fn generate_office_ca(name: &str) -> Result<(String, String), CertError> {
    generate_ca_named(OFFICE_CA_PREFIX, name)
}

/// A new self-signed CA with the CN `{prefix} ({name})`.
fn generate_ca_named(prefix: &str, name: &str) -> Result<(String, String), CertError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CertError::EmptyCaName);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, format!("{prefix} ({name})"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let (not_before, not_after) = validity(CA_VALIDITY_DAYS, None)?;
    (params.not_before, params.not_after) = (not_before.to_datetime(), not_after.to_datetime());
    let key = KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// A node certificate signed by the CA (PEMs in): (cert_pem, key_pem). Valid for server and client auth (EKU
/// both) for 2 years (never past the CA's own end), with subjectAltNames `node_dns_name(code)` plus every one of
/// `hosts` (DNS names or IP addresses such as `localhost`, `127.0.0.1`), so the same certificate can serve the
/// office port too.
pub fn issue_node_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    code: DivisionCode,
    hosts: &[String],
) -> Result<(String, String), CertError> {
    let (issuer, ca_common_name, ca_not_after) = load_issuer(ca_cert_pem, ca_key_pem)?;
    if ca_common_name.starts_with(OFFICE_CA_PREFIX) {
        return Err(CertError::WrongCa(
            "this is an office CA: it signs office-client certificates only; node certificates come from the \
             federation CA",
        ));
    }

    let identity = NodeIdentity::of(code);
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, format!("ecovol node {identity}"));
    params.subject_alt_names = subject_alt_names(code, hosts)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let (not_before, not_after) = validity(NODE_VALIDITY_DAYS, Some(ca_not_after))?;
    (params.not_before, params.not_after) = (not_before.to_datetime(), not_after.to_datetime());
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, &issuer)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// The CA in `ca_cert_pem` and `ca_key_pem`, checked (a CA, its own key, not expired), ready to sign: (issuer, its
/// CN, the end of its validity in unix seconds).
fn load_issuer(ca_cert_pem: &str, ca_key_pem: &str) -> Result<(Issuer<'static, KeyPair>, String, i64), CertError> {
    let ca_der = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes())
        .map_err(|error| CertError::CaCertificate(error.to_string()))?;
    let (_, ca) =
        x509_parser::parse_x509_certificate(&ca_der).map_err(|error| CertError::CaCertificate(error.to_string()))?;
    if !ca.is_ca() {
        return Err(CertError::NotCa);
    }
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|error| CertError::CaKey(error.to_string()))?;
    if ca.public_key().subject_public_key.data.as_ref() != ca_key.public_key_raw() {
        return Err(CertError::CaKeyMismatch);
    }
    let ca_not_after = ca.validity().not_after.timestamp();
    if ca_not_after <= Utc::now().timestamp() {
        return Err(CertError::CaExpired { not_after: ca.validity().not_after.to_string() });
    }
    let common_name =
        ca.subject().iter_common_name().next().and_then(|name| name.as_str().ok()).unwrap_or_default().to_string();
    let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key)?;
    Ok((issuer, common_name, ca_not_after))
}

/// An office-client certificate signed by an office CA (PEMs in): (cert_pem, key_pem). CN
/// `ecovol office client {name}`, EKU clientAuth only (it can serve nothing), no subjectAltName (so no node name:
/// the federation port refuses it even if its CA were trusted there), valid 1 year (never past the CA's end).
///
/// Why an office CA of its own rather than the federation CA: the federation CA's key is kept apart, at the
/// province, and whoever holds it can make any node; an office issues and revokes its staff's certificates
/// itself, with a key that can make nothing but office clients, and its nodes' federation ports do not trust it.
/// The certificate says who holds it, not what they may do: an account is bound to it by its SHA-256
/// (`ecovol account create --client-cert-sha256`), and the account's roles apply. Revoking the account
/// revokes the certificate.
pub fn issue_client_cert(ca_cert_pem: &str, ca_key_pem: &str, name: &str) -> Result<(String, String), CertError> {
    let name = client_name(name)?;
    let (issuer, ca_common_name, ca_not_after) = load_issuer(ca_cert_pem, ca_key_pem)?;
    if !ca_common_name.starts_with(OFFICE_CA_PREFIX) {
        return Err(CertError::WrongCa(
            "office-client certificates are signed by an office CA (ecovol certs init --office), not by the \
             federation CA",
        ));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, format!("{OFFICE_CLIENT_PREFIX} {name}"));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let (not_before, not_after) = validity(CLIENT_VALIDITY_DAYS, Some(ca_not_after))?;
    (params.not_before, params.not_after) = (not_before.to_datetime(), not_after.to_datetime());
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, &issuer)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// The holder's name of a client certificate, trimmed: 1 to 100 characters, no control characters.
fn client_name(name: &str) -> Result<&str, CertError> {
    let trimmed = name.trim();
    let invalid = |reason| CertError::InvalidClient { what: "name", value: name.to_string(), reason };
    if trimmed.is_empty() || trimmed.chars().count() > CLIENT_NAME_CHARS_MAX {
        return Err(invalid("must be 1 to 100 characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(trimmed)
}

/// The node name first, then each host once, checked: an IP address, or a DNS name that is not a node name (a
/// second node name would make the certificate's identity ambiguous, and [`peer_identity`] refuses it).
fn subject_alt_names(code: DivisionCode, hosts: &[String]) -> Result<Vec<SanType>, CertError> {
    let node_name = node_dns_name(code);
    let mut names = vec![SanType::DnsName(node_name.clone().try_into()?)];
    let mut seen = vec![node_name];
    for host in hosts {
        let invalid = |reason| CertError::InvalidHost { host: host.clone(), reason };
        let trimmed = host.trim();
        let (text, name) = if let Ok(address) = trimmed.parse::<IpAddr>() {
            (address.to_string(), SanType::IpAddress(address))
        } else {
            let lowercase = trimmed.to_ascii_lowercase();
            if lowercase.ends_with(NODE_DNS_SUFFIX) || lowercase == NODE_DNS_SUFFIX[1..] {
                return Err(invalid("is a node name: the node name comes from the division code"));
            }
            if !matches!(ServerName::try_from(lowercase.as_str()), Ok(ServerName::DnsName(_))) {
                return Err(invalid("is neither an IP address nor a DNS name"));
            }
            (lowercase.clone(), SanType::DnsName(lowercase.try_into()?))
        };
        if !seen.contains(&text) {
            seen.push(text);
            names.push(name);
        }
    }
    Ok(names)
}

/// (not_before, not_after) for a certificate made now and valid `days`, ending no later than `end_max` (unix
/// seconds) if given.
fn validity(days: i64, end_max: Option<i64>) -> Result<(ASN1Time, ASN1Time), CertError> {
    let now = Utc::now().timestamp();
    let end = end_max.map_or(now + days * 86_400, |end_max| end_max.min(now + days * 86_400));
    // Out of range only with a clock or a CA beyond the years X.509 can hold.
    let at = |secs| ASN1Time::from_timestamp(secs).map_err(|_| CertError::Generate(rcgen::Error::Time));
    Ok((at(now - BACKDATE_SECS)?, at(end)?))
}

/// The identity a peer's certificate (DER, as given by tonic's `request.peer_certs()`) carries: exactly one
/// `*.node.ecovol` DNS name, whose code parses and whose level label matches the code's level. Errors name what
/// is wrong. Chain validation is done by TLS already; this only reads the identity.
pub fn peer_identity(der: &[u8]) -> Result<NodeIdentity, CertError> {
    let (_, certificate) =
        x509_parser::parse_x509_certificate(der).map_err(|error| CertError::Unreadable(error.to_string()))?;
    identity_of(&certificate)
}

/// The identity in a parsed certificate (see [`peer_identity`]).
fn identity_of(certificate: &X509Certificate<'_>) -> Result<NodeIdentity, CertError> {
    let node_names: Vec<&str> = dns_names(certificate)?
        .into_iter()
        .filter(|name| name.to_ascii_lowercase().ends_with(NODE_DNS_SUFFIX))
        .collect();
    match node_names.as_slice() {
        [] => Err(CertError::NoNodeName { subject: certificate.subject().to_string() }),
        [name] => parse_node_dns_name(name),
        names => Err(CertError::SeveralNodeNames(names.iter().map(|name| name.to_string()).collect())),
    }
}

/// The DNS subjectAltNames of a certificate (none without the extension).
fn dns_names<'a>(certificate: &'a X509Certificate<'_>) -> Result<Vec<&'a str>, CertError> {
    let names = certificate.subject_alternative_name().map_err(|error| CertError::Unreadable(error.to_string()))?;
    Ok(names
        .map(|names| {
            names
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(*dns),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// What a node certificate (PEM) says: its identity (as [`peer_identity`] reads it), CN, other hosts, issuer
/// and validity.
pub fn read_node_cert(cert_pem: &str) -> Result<NodeCertificate, CertError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|error| CertError::Unreadable(error.to_string()))?;
    let (_, certificate) =
        x509_parser::parse_x509_certificate(&der).map_err(|error| CertError::Unreadable(error.to_string()))?;
    let identity = identity_of(&certificate)?;
    let node_name = identity.dns_name();
    let mut hosts = Vec::new();
    if let Some(names) =
        certificate.subject_alternative_name().map_err(|error| CertError::Unreadable(error.to_string()))?
    {
        for name in &names.value.general_names {
            match name {
                GeneralName::DNSName(dns) if !dns.eq_ignore_ascii_case(&node_name) => hosts.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => hosts.push(ip_address(bytes)),
                _ => {}
            }
        }
    }
    let common_name =
        certificate.subject().iter_common_name().next().and_then(|name| name.as_str().ok()).map(str::to_string);
    let time = |time: ASN1Time| {
        DateTime::<Utc>::from_timestamp(time.timestamp(), 0)
            .ok_or_else(|| CertError::Unreadable(format!("validity {time} out of range")))
    };
    Ok(NodeCertificate {
        identity,
        common_name,
        hosts,
        issuer: certificate.issuer().to_string(),
        not_before: time(certificate.validity().not_before)?,
        not_after: time(certificate.validity().not_after)?,
    })
}

/// An IP address SAN as text (hex for a length that is neither IPv4 nor IPv6).
fn ip_address(bytes: &[u8]) -> String {
    if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
        IpAddr::from(octets).to_string()
    } else if let Ok(octets) = <[u8; 16]>::try_from(bytes) {
        IpAddr::from(octets).to_string()
    } else {
        hex::encode(bytes)
    }
}

/// Writes a new federation CA into `dir` (created if missing): `ca.pem`, and `ca.key` readable by its owner only
/// (0600 on unix). Returns (cert path, key path). Refuses if either file exists, unless `force`.
pub fn write_ca(dir: &Path, name: &str, force: bool) -> Result<(PathBuf, PathBuf), CertError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    refuse_existing(&[&cert_path, &key_path], force)?;
    let (cert_pem, key_pem) = generate_ca(name)?;
    write_pair(dir, (&cert_path, &cert_pem), (&key_path, &key_pem), force)?;
    Ok((cert_path, key_path))
}

/// Writes a node certificate for `code`, signed by the CA in `ca_cert` and `ca_key`, into `dir` (created if
/// missing): `{code}.pem`, and `{code}.key` readable by its owner only (0600 on unix). Returns (cert path, key
/// path). Refuses if either file exists, unless `force`.
pub fn write_node(
    dir: &Path,
    ca_cert: &Path,
    ca_key: &Path,
    code: DivisionCode,
    hosts: &[String],
    force: bool,
) -> Result<(PathBuf, PathBuf), CertError> {
    let cert_path = dir.join(format!("{code}.pem"));
    let key_path = dir.join(format!("{code}.key"));
    refuse_existing(&[&cert_path, &key_path], force)?;
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| CertError::Read { path: path.to_path_buf(), source })
    };
    let (cert_pem, key_pem) = issue_node_cert(&read(ca_cert)?, &read(ca_key)?, code, hosts)?;
    write_pair(dir, (&cert_path, &cert_pem), (&key_path, &key_pem), force)?;
    Ok((cert_path, key_path))
}

/// Writes a new office CA into `dir` (created if missing): `office-ca.pem`, and `office-ca.key` readable by its
/// owner only. Returns (cert path, key path). Refuses if either file exists, unless `force`.
pub fn write_office_ca(dir: &Path, name: &str, force: bool) -> Result<(PathBuf, PathBuf), CertError> {
    let cert_path = dir.join(OFFICE_CA_CERT_FILE);
    let key_path = dir.join(OFFICE_CA_KEY_FILE);
    refuse_existing(&[&cert_path, &key_path], force)?;
    let (cert_pem, key_pem) = generate_office_ca(name)?;
    write_pair(dir, (&cert_path, &cert_pem), (&key_path, &key_pem), force)?;
    Ok((cert_path, key_path))
}

/// Writes an office-client certificate for `name`, signed by the office CA in `ca_cert` and `ca_key`, into `dir`
/// (created if missing): `{file}.pem`, and `{file}.key` readable by its owner only. `file` is a plain label
/// (letters, digits, `-`, `_`, `.`; not starting with `.`). Returns (cert path, key path, SHA-256 of the
/// certificate, which binds it to an account). Refuses if either file exists, unless `force`.
pub fn write_client(
    dir: &Path,
    ca_cert: &Path,
    ca_key: &Path,
    file: &str,
    name: &str,
    force: bool,
) -> Result<(PathBuf, PathBuf, String), CertError> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if file.is_empty() || file.len() > 64 || file.starts_with('.') || !file.bytes().all(plain) {
        return Err(CertError::InvalidClient {
            what: "file name",
            value: file.to_string(),
            reason: "must be 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'",
        });
    }
    let cert_path = dir.join(format!("{file}.pem"));
    let key_path = dir.join(format!("{file}.key"));
    refuse_existing(&[&cert_path, &key_path], force)?;
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| CertError::Read { path: path.to_path_buf(), source })
    };
    let (cert_pem, key_pem) = issue_client_cert(&read(ca_cert)?, &read(ca_key)?, name)?;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|error| CertError::Unreadable(error.to_string()))?;
    let sha256 = crate::crypto::certificate_sha256(&der);
    write_pair(dir, (&cert_path, &cert_pem), (&key_path, &key_pem), force)?;
    Ok((cert_path, key_path, sha256))
}

/// Writes a new federation-wide pseudonym key: 32 random bytes as 64 hex characters and a newline, readable by its
/// owner only (0600 on unix). Every node of the federation holds the same key, so the same person gets the same
/// pseudonym everywhere. Refuses if the file exists, unless `force`.
pub fn write_federation_key(path: &Path, force: bool) -> Result<(), CertError> {
    refuse_existing(&[path], force)?;
    let mut bytes = [0u8; FEDERATION_KEY_BYTES];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| CertError::Randomness)?;
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    write_file(path, format!("{}\n", hex::encode(bytes)).as_bytes(), Access::Owner, force)
}

/// Refuses when one of `paths` exists and `force` is not set, before anything is written.
fn refuse_existing(paths: &[&Path], force: bool) -> Result<(), CertError> {
    match paths.iter().find(|path| path.exists()) {
        Some(path) if !force => Err(CertError::Exists { path: path.to_path_buf() }),
        _ => Ok(()),
    }
}

/// Writes a certificate and its key into `dir`: the key first; if the certificate then fails, a key written
/// anew is removed again, so a second attempt does not find half a pair in its way.
fn write_pair(dir: &Path, cert: (&Path, &str), key: (&Path, &str), force: bool) -> Result<(), CertError> {
    create_dir(dir)?;
    write_file(key.0, key.1.as_bytes(), Access::Owner, force)?;
    write_file(cert.0, cert.1.as_bytes(), Access::Everyone, force).inspect_err(|_| {
        if !force {
            let _ = std::fs::remove_file(key.0);
        }
    })
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write { path: dir.to_path_buf(), source })
}

/// Who may read a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Its owner only (0600 on unix): keys.
    Owner,
    /// Anyone (0644 on unix): certificates.
    Everyone,
}

/// Writes `contents` to `path` and syncs it. Without `force` the file must not exist (checked atomically on
/// creation). With `force` it is written beside the target and renamed over it, so the old file stays whole if
/// writing fails.
fn write_file(path: &Path, contents: &[u8], access: Access, force: bool) -> Result<(), CertError> {
    let fail = |source| CertError::Write { path: path.to_path_buf(), source };
    let target = if force {
        let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
        name.push(format!(".tmp-{}", std::process::id()));
        path.with_file_name(name)
    } else {
        path.to_path_buf()
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if access == Access::Owner { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = access;
    let mut file = match options.open(&target) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && !force => {
            return Err(CertError::Exists { path: path.to_path_buf() });
        }
        Err(error) => return Err(fail(error)),
    };
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if force {
        let renamed = written.and_then(|()| std::fs::rename(&target, path));
        if renamed.is_err() {
            let _ = std::fs::remove_file(&target);
        }
        renamed.map_err(fail)
    } else {
        written.map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    fn code(text: &str) -> DivisionCode {
        DivisionCode::parse(text).expect(text)
    }

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn der(cert_pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("a PEM certificate")
    }

    fn parsed(der: &[u8]) -> X509Certificate<'_> {
        x509_parser::parse_x509_certificate(der).expect("X.509").1
    }

    /// A CA made once per test: (cert_pem, key_pem).
    fn new_ca(name: &str) -> (String, String) {
        generate_ca(name).expect("CA generated")
    }

    /// A certificate signed by `ca` with exactly these DNS names, made with rcgen directly, as a foreign or
    /// mistaken issuer could.
    fn crafted(ca: &(String, String), names: &[&str]) -> CertificateDer<'static> {
        let issuer = Issuer::from_ca_cert_pem(&ca.0, KeyPair::from_pem(&ca.1).unwrap()).unwrap();
        let params = CertificateParams::new(hosts(names)).unwrap();
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &issuer).unwrap().der().clone()
    }

    #[test]
    fn a_node_certificate_carries_its_code_and_level() {
        let ca = new_ca("jiangsu");
        let (cert_pem, key_pem) =
            issue_node_cert(&ca.0, &ca.1, code("320102"), &hosts(&["localhost", "127.0.0.1", "LOCALHOST"])).unwrap();
        assert!(key_pem.contains("PRIVATE KEY"));
        let der = der(&cert_pem);
        assert_eq!(peer_identity(&der).unwrap(), NodeIdentity { code: code("320102"), level: DivisionLevel::County });

        let certificate = parsed(&der);
        let eku = certificate.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!certificate.is_ca());
        let days = (certificate.validity().not_after.timestamp() - Utc::now().timestamp()) / 86_400;
        assert!((729..=731).contains(&days), "valid {days} days");

        let shown = read_node_cert(&cert_pem).unwrap();
        assert_eq!(shown.identity.to_string(), "320102 (county)");
        assert_eq!(shown.common_name.as_deref(), Some("ecovol node 320102 (county)"));
        assert_eq!(shown.hosts, ["localhost", "127.0.0.1"]);
        assert_eq!(shown.issuer, "CN=ecovol federation CA (jiangsu)");
        assert!(shown.not_before < Utc::now() && Utc::now() < shown.not_after);
    }

    #[test]
    fn the_ca_signs_node_certificates_only() {
        let (cert_pem, _) = new_ca("test");
        let der = der(&cert_pem);
        let certificate = parsed(&der);
        assert!(certificate.is_ca());
        let constraints = certificate.basic_constraints().unwrap().unwrap().value;
        assert_eq!(constraints.path_len_constraint, Some(0));
        let usage = certificate.key_usage().unwrap().unwrap().value;
        assert!(usage.key_cert_sign() && usage.crl_sign() && !usage.digital_signature());
        let years = (certificate.validity().not_after.timestamp() - Utc::now().timestamp()) / (365 * 86_400);
        assert_eq!(years, 10);
        assert!(matches!(peer_identity(&der), Err(CertError::NoNodeName { subject }) if subject.contains("CA (test)")));
        assert!(matches!(generate_ca("  "), Err(CertError::EmptyCaName)));
    }

    #[test]
    fn node_names_follow_the_level_of_the_code() {
        fn check(text: &str, name: &str, level: DivisionLevel) {
            assert_eq!(node_dns_name(code(text)), name);
            assert_eq!(parse_node_dns_name(name).unwrap(), NodeIdentity { code: code(text), level });
        }
        check("320000", "320000.province.node.ecovol", DivisionLevel::Province);
        check("320100", "320100.city.node.ecovol", DivisionLevel::City);
        check("320102", "320102.county.node.ecovol", DivisionLevel::County);
        // Province-administered county-level unit (GB/T 2260 xx90yy): county level, under the province.
        check("429004", "429004.county.node.ecovol", DivisionLevel::County);
        check("110101", "110101.county.node.ecovol", DivisionLevel::County);
        // DNS names compare case-insensitively.
        assert_eq!(parse_node_dns_name("320102.County.Node.Ecovol").unwrap(), NodeIdentity::of(code("320102")));
    }

    #[test]
    fn a_province_administered_unit_gets_a_county_certificate() {
        let ca = new_ca("hubei");
        let (cert_pem, _) = issue_node_cert(&ca.0, &ca.1, code("429004"), &[]).unwrap();
        let identity = peer_identity(&der(&cert_pem)).unwrap();
        assert_eq!(identity.level, DivisionLevel::County);
        assert_eq!(identity.dns_name(), "429004.county.node.ecovol");
    }

    #[test]
    fn identities_that_do_not_add_up_are_refused() {
        let ca = new_ca("test");
        let check = |names: &[&str], expected: &str| {
            let error = peer_identity(&crafted(&ca, names)).unwrap_err();
            assert_eq!(error.to_string(), expected, "{names:?}");
        };
        check(&["localhost"], "the certificate of \"CN=rcgen self signed cert\" carries no node name (*.node.ecovol)");
        check(
            &["320102.county.node.ecovol", "320104.county.node.ecovol"],
            "the certificate carries 2 node names, expected one: 320102.county.node.ecovol, \
             320104.county.node.ecovol",
        );
        check(
            &["320102.city.node.ecovol"],
            "node name \"320102.city.node.ecovol\" says city, but 320102 is a county code",
        );
        check(
            &["429004.city.node.ecovol"],
            "node name \"429004.city.node.ecovol\" says city, but 429004 is a county code",
        );
        check(
            &["990102.county.node.ecovol"],
            "node name \"990102.county.node.ecovol\" holds a bad division code: province digits 99 are not a \
             GB/T 2260 province",
        );
        check(
            &["320102.town.node.ecovol"],
            "node name \"320102.town.node.ecovol\" is malformed: the level must be county, city or province",
        );
        check(
            &["320102.node.ecovol"],
            "node name \"320102.node.ecovol\" is malformed: expected {code}.{level}.node.ecovol",
        );
        assert!(matches!(peer_identity(b"not a certificate"), Err(CertError::Unreadable(_))));
        assert!(matches!(read_node_cert("not a certificate"), Err(CertError::Unreadable(_))));
    }

    #[test]
    fn hosts_must_be_addresses_or_names_other_than_node_names() {
        let ca = new_ca("test");
        let check = |host: &str, expected: &str| {
            let error = issue_node_cert(&ca.0, &ca.1, code("320102"), &hosts(&[host])).unwrap_err();
            assert_eq!(error.to_string(), expected);
        };
        check("not a host!", "host \"not a host!\" is neither an IP address nor a DNS name");
        check("", "host \"\" is neither an IP address nor a DNS name");
        check(
            "320104.county.node.ecovol",
            "host \"320104.county.node.ecovol\" is a node name: the node name comes from the division code",
        );
        let (cert_pem, _) =
            issue_node_cert(&ca.0, &ca.1, code("320102"), &hosts(&["::1", "office.example.cn"])).unwrap();
        assert_eq!(read_node_cert(&cert_pem).unwrap().hosts, ["::1", "office.example.cn"]);
    }

    #[test]
    fn only_a_ca_with_its_own_key_signs() {
        let (first, second) = (new_ca("first"), new_ca("second"));
        let check = |cert_pem: &str, key_pem: &str, expected: &str| {
            let error = issue_node_cert(cert_pem, key_pem, code("320102"), &[]).unwrap_err();
            assert_eq!(error.to_string(), expected);
        };
        check(&first.0, &second.1, "the CA key does not belong to the CA certificate");
        let (node_pem, node_key) = issue_node_cert(&first.0, &first.1, code("320102"), &[]).unwrap();
        check(
            &node_pem,
            &node_key,
            "the CA certificate is not a CA certificate (its basic constraints do not allow signing)",
        );
        assert!(matches!(issue_node_cert("", &first.1, code("320102"), &[]), Err(CertError::CaCertificate(_))));
        assert!(matches!(issue_node_cert(&first.0, "nope", code("320102"), &[]), Err(CertError::CaKey(_))));

        let mut expired = CertificateParams::default();
        expired.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        expired.not_before = ASN1Time::from_timestamp(1_600_000_000).unwrap().to_datetime();
        expired.not_after = ASN1Time::from_timestamp(1_700_000_000).unwrap().to_datetime();
        let key = KeyPair::generate().unwrap();
        let expired = expired.self_signed(&key).unwrap();
        let error = issue_node_cert(&expired.pem(), &key.serialize_pem(), code("320102"), &[]).unwrap_err();
        assert_eq!(error.to_string(), "the CA certificate expired on Nov 14 22:13:20 2023 +00:00");
    }

    #[test]
    fn an_office_ca_signs_client_certificates_and_only_those() {
        let federation = new_ca("jiangsu");
        let office = generate_office_ca("320102").unwrap();
        let (cert_pem, key_pem) = issue_client_cert(&office.0, &office.1, " 张工 ").unwrap();
        assert!(key_pem.contains("PRIVATE KEY"));
        let der = der(&cert_pem);
        let certificate = parsed(&der);
        assert_eq!(certificate.subject().to_string(), "CN=ecovol office client 张工");
        assert_eq!(certificate.issuer().to_string(), "CN=ecovol office CA (320102)");
        let eku = certificate.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth, "a client certificate serves nothing");
        assert!(!certificate.is_ca());
        assert!(certificate.subject_alternative_name().unwrap().is_none());
        let days = (certificate.validity().not_after.timestamp() - Utc::now().timestamp()) / 86_400;
        assert!((364..=366).contains(&days), "valid {days} days");
        // It names no node, so the federation port refuses it whatever CA it trusts.
        assert!(matches!(peer_identity(&der), Err(CertError::NoNodeName { .. })));

        let check = |result: Result<(String, String), CertError>, expected: &str| {
            assert_eq!(result.unwrap_err().to_string(), expected);
        };
        check(
            issue_client_cert(&federation.0, &federation.1, "张工"),
            "office-client certificates are signed by an office CA (ecovol certs init --office), not by the \
             federation CA",
        );
        check(
            issue_node_cert(&office.0, &office.1, code("320102"), &[]),
            "this is an office CA: it signs office-client certificates only; node certificates come from the \
             federation CA",
        );
        check(issue_client_cert(&office.0, &office.1, "  "), "client name \"  \" must be 1 to 100 characters");
        check(
            issue_client_cert(&office.0, &office.1, "a\nb"),
            "client name \"a\\nb\" must not contain control characters",
        );
    }

    #[test]
    fn client_files_carry_a_plain_label_and_their_sha256_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_cert, ca_key) = write_office_ca(dir.path(), "320102", false).unwrap();
        assert_eq!(ca_cert, dir.path().join("office-ca.pem"));
        let (cert, key, sha256) = write_client(dir.path(), &ca_cert, &ca_key, "front-desk", "前台", false).unwrap();
        assert_eq!((cert.clone(), key), (dir.path().join("front-desk.pem"), dir.path().join("front-desk.key")));
        let pem = std::fs::read_to_string(&cert).unwrap();
        assert_eq!(sha256, crate::crypto::certificate_sha256(&der(&pem)));
        assert!(matches!(
            write_client(dir.path(), &ca_cert, &ca_key, "front-desk", "前台", false),
            Err(CertError::Exists { .. })
        ));
        for bad in ["", "../x", ".hidden", "a b", "前台"] {
            assert!(
                matches!(
                    write_client(dir.path(), &ca_cert, &ca_key, bad, "x", false),
                    Err(CertError::InvalidClient { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_written_once_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let (ca_cert, ca_key) = write_ca(&pki, "test", false).unwrap();
        assert_eq!((ca_cert.clone(), ca_key.clone()), (pki.join("ca.pem"), pki.join("ca.key")));
        #[cfg(unix)]
        assert_eq!((mode(&ca_cert), mode(&ca_key)), (0o644, 0o600));
        let first = std::fs::read_to_string(&ca_cert).unwrap();
        assert!(matches!(write_ca(&pki, "test", false), Err(CertError::Exists { path }) if path == ca_cert));
        assert_eq!(std::fs::read_to_string(&ca_cert).unwrap(), first);
        write_ca(&pki, "test", true).unwrap();
        assert_ne!(std::fs::read_to_string(&ca_cert).unwrap(), first);
        #[cfg(unix)]
        assert_eq!(mode(&ca_key), 0o600);

        let nodes = dir.path().join("nodes");
        let (cert, key) = write_node(&nodes, &ca_cert, &ca_key, code("320102"), &[], false).unwrap();
        assert_eq!((cert.clone(), key.clone()), (nodes.join("320102.pem"), nodes.join("320102.key")));
        #[cfg(unix)]
        assert_eq!(mode(&key), 0o600);
        assert_eq!(read_node_cert(&std::fs::read_to_string(&cert).unwrap()).unwrap().identity.code, code("320102"));
        assert!(matches!(
            write_node(&nodes, &ca_cert, &ca_key, code("320102"), &[], false),
            Err(CertError::Exists { .. })
        ));
        write_node(&nodes, &ca_cert, &ca_key, code("320102"), &[], true).unwrap();
        // A key without its certificate is in the way too, and a missing CA file is named.
        std::fs::remove_file(&cert).unwrap();
        assert!(matches!(
            write_node(&nodes, &ca_cert, &ca_key, code("320102"), &[], false),
            Err(CertError::Exists { path }) if path == key
        ));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            write_node(&nodes, &missing, &ca_key, code("320104"), &[], false),
            Err(CertError::Read { path, .. }) if path == missing
        ));
        assert!(!nodes.join("320104.key").exists());
        let leftovers: Vec<_> = std::fs::read_dir(&pki).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }

    #[test]
    fn the_federation_key_is_64_hex_characters_for_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/federation.key");
        write_federation_key(&path, false).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert_eq!(first.len(), 65);
        assert!(first.ends_with('\n') && first.trim_end().chars().all(|c| c.is_ascii_hexdigit()));
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert!(matches!(write_federation_key(&path, false), Err(CertError::Exists { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        write_federation_key(&path, true).unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), first);
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }

    /// A node's certificate chain and key for rustls.
    fn rustls_identity(pair: &(String, String)) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (vec![der(&pair.0)], PrivateKeyDer::from_pem_slice(pair.1.as_bytes()).unwrap())
    }

    fn roots(ca_pem: &str) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(der(ca_pem)).unwrap();
        Arc::new(roots)
    }

    /// A parent requiring client certificates from `ca`, serving with `parent`.
    fn parent_config(ca_pem: &str, parent: &(String, String)) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem), provider.clone())
            .build()
            .unwrap();
        let (chain, key) = rustls_identity(parent);
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }

    /// A child trusting `ca`, presenting `child`.
    fn child_config(ca_pem: &str, child: &(String, String)) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (chain, key) = rustls_identity(child);
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(ca_pem))
            .with_client_auth_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }

    /// Runs a TLS handshake in memory, the child dialling `server_name`; returns the identity the parent reads
    /// from the child's certificate, or the first side's error.
    fn handshake(
        parent: Arc<ServerConfig>,
        child: Arc<ClientConfig>,
        server_name: &str,
    ) -> Result<NodeIdentity, String> {
        let name = ServerName::try_from(server_name.to_string()).unwrap();
        let mut client = ClientConnection::new(child, name).unwrap();
        let mut server = ServerConnection::new(parent).unwrap();
        for _ in 0..10 {
            let mut buffer = Vec::new();
            client.write_tls(&mut buffer).unwrap();
            server.read_tls(&mut buffer.as_slice()).unwrap();
            server.process_new_packets().map_err(|error| format!("parent: {error}"))?;
            buffer.clear();
            server.write_tls(&mut buffer).unwrap();
            client.read_tls(&mut buffer.as_slice()).unwrap();
            client.process_new_packets().map_err(|error| format!("child: {error}"))?;
            if !client.is_handshaking() && !server.is_handshaking() {
                let certificates = server.peer_certificates().ok_or("no client certificate")?;
                return peer_identity(&certificates[0]).map_err(|error| error.to_string());
            }
        }
        Err("the handshake did not finish".into())
    }

    #[test]
    fn a_rustls_handshake_proves_both_ends() {
        let ca = new_ca("jiangsu");
        let parent = issue_node_cert(&ca.0, &ca.1, code("320100"), &[]).unwrap();
        let child = issue_node_cert(&ca.0, &ca.1, code("320102"), &[]).unwrap();
        let parent_name = node_dns_name(code("320100"));

        let seen = handshake(parent_config(&ca.0, &parent), child_config(&ca.0, &child), &parent_name);
        assert_eq!(seen, Ok(NodeIdentity::of(code("320102"))));

        // A child dialling another node's name refuses the parent's certificate.
        let wrong_name =
            handshake(parent_config(&ca.0, &parent), child_config(&ca.0, &child), &node_dns_name(code("320200")));
        assert!(
            wrong_name.as_ref().is_err_and(|error| error.starts_with("child:") && error.contains("not valid for name")),
            "{wrong_name:?}"
        );

        // A certificate from another CA is refused by the parent.
        let other = new_ca("elsewhere");
        let stranger = issue_node_cert(&other.0, &other.1, code("320102"), &[]).unwrap();
        let refused = handshake(parent_config(&ca.0, &parent), child_config(&ca.0, &stranger), &parent_name);
        assert!(
            refused.as_ref().is_err_and(|error| error.starts_with("parent:") && error.contains("UnknownIssuer")),
            "{refused:?}"
        );
    }

    /// Starts a parent serving gRPC health over mutual TLS on 127.0.0.1; every call records the caller's
    /// identity. Returns the address, the identities seen, and the shutdown trigger.
    async fn serve_parent(
        ca_pem: &str,
        parent: &(String, String),
    ) -> (String, Arc<Mutex<Vec<NodeIdentity>>>, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let interceptor = move |request: tonic::Request<()>| {
            let certificates =
                request.peer_certs().ok_or_else(|| tonic::Status::unauthenticated("no client certificate"))?;
            let identity =
                peer_identity(&certificates[0]).map_err(|error| tonic::Status::permission_denied(error.to_string()))?;
            recorded.lock().unwrap().push(identity);
            Ok(request)
        };
        let (_, health) = tonic_health::server::health_reporter();
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&parent.0, &parent.1))
            .client_ca_root(Certificate::from_pem(ca_pem));
        let router = Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(tonic::service::interceptor::InterceptedService::new(health, interceptor));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        }));
        (format!("https://{address}"), seen, stop)
    }

    /// A health check from `child` trusting `ca_pem`, dialling `server_name`.
    async fn check_health(
        address: &str,
        ca_pem: &str,
        child: &(String, String),
        server_name: &str,
    ) -> Result<(), String> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .identity(Identity::from_pem(&child.0, &child.1))
            .domain_name(server_name);
        let endpoint = Endpoint::from_shared(address.to_string()).unwrap().tls_config(tls).unwrap();
        let call = async {
            let channel = endpoint.connect().await.map_err(|error| format!("connect: {error:?}"))?;
            HealthClient::new(channel)
                .check(HealthCheckRequest { service: String::new() })
                .await
                .map(drop)
                .map_err(|status| format!("call: {status:?}"))
        };
        tokio::time::timeout(Duration::from_secs(10), call).await.map_err(|_| "timed out".to_string())?
    }

    #[tokio::test]
    async fn tonic_serves_mutual_tls_between_federation_nodes() {
        let ca = new_ca("jiangsu");
        // The parent's certificate also names localhost, as for its office port: the node name still works.
        let parent = issue_node_cert(&ca.0, &ca.1, code("320100"), &hosts(&["localhost", "127.0.0.1"])).unwrap();
        let child = issue_node_cert(&ca.0, &ca.1, code("320102"), &[]).unwrap();
        let (address, seen, stop) = serve_parent(&ca.0, &parent).await;
        let parent_name = node_dns_name(code("320100"));

        check_health(&address, &ca.0, &child, &parent_name).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), [NodeIdentity::of(code("320102"))]);

        let other = new_ca("elsewhere");
        let stranger = issue_node_cert(&other.0, &other.1, code("320104"), &[]).unwrap();
        let refused = check_health(&address, &ca.0, &stranger, &parent_name).await;
        assert!(refused.as_ref().is_err_and(|error| error.contains("UnknownCA")), "{refused:?}");
        // The parent's certificate is refused by a child trusting another CA.
        let untrusted = check_health(&address, &other.0, &stranger, &parent_name).await;
        assert!(untrusted.as_ref().is_err_and(|error| error.contains("UnknownIssuer")), "{untrusted:?}");
        assert_eq!(seen.lock().unwrap().len(), 1);
        let _ = stop.send(());
    }
}
