//! Certificates on this machine: `ecovol certs ca|node|federation-key|show|inspect` (offline, no `--node`);
//! `init` and `issue` are other names of `ca` and `node`.
//!
//! The federation CA key signs every node of the federation: make it on a machine kept apart, issue node
//! certificates there, and hand each office only its own `{code}.pem`, `{code}.key` and the CA's `ca.pem`.
//!
//! Office-client certificates (`certs issue --client LABEL --name NAME`) come from an office CA of the office's
//! own (`certs init --office`), which its office port trusts (`office.tls.client_ca_file`) and its federation
//! port does not: see `federation::certs::issue_client_cert` for why. An account is bound to a client
//! certificate by the certificate's SHA-256, printed here (`account create --client-cert-sha256`).

use std::path::{Path, PathBuf};

use chrono::Utc;
use ecovol_coordinator::region::DivisionCode;

use super::console::{Console, Record};
use super::failure::Failure;
use crate::federation::certs::{self, CertError};

/// Federation certificates: the CA, node certificates, the federation pseudonym key.
#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Make a new federation CA: DIR/ca.pem and DIR/ca.key (readable by its owner only); with --office, an
    /// office CA for client certificates: DIR/office-ca.pem and DIR/office-ca.key.
    #[command(visible_alias = "init")]
    Ca(CaArgs),
    /// Issue a node certificate signed by the federation CA: DIR/{code}.pem and DIR/{code}.key; with
    /// --client LABEL, an office-client certificate signed by the office CA: DIR/LABEL.pem and DIR/LABEL.key.
    #[command(visible_alias = "issue")]
    Node(NodeArgs),
    /// Write a new federation-wide pseudonym key (64 hex characters, readable by its owner only).
    FederationKey(FederationKeyArgs),
    /// Print the identity a node certificate carries: division code, level and validity.
    Show(ShowArgs),
    /// Print what any certificate (PEM) says: a node certificate's identity, or the subject of an office, client
    /// or CA certificate; validity, and the SHA-256 that `federation.denied` and accounts' client certificates use.
    Inspect(ShowArgs),
}

/// A level given with `--level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeLevel {
    Province,
    City,
    County,
}

/// Arguments of `certs ca`.
#[derive(Debug, Clone, clap::Args)]
pub struct CaArgs {
    /// Folder to write ca.pem and ca.key into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Name in the CA's subject: "ecovol federation CA (NAME)", or "ecovol office CA (NAME)" with --office.
    #[arg(long, default_value = "ecovol")]
    pub name: String,

    /// Make an office CA (office-ca.pem, office-ca.key) that signs the office's client certificates only; its
    /// node trusts it with `office.tls.client_ca_file`.
    #[arg(long)]
    pub office: bool,

    /// Replace existing files (every certificate the old CA signed stops being trusted).
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `certs node`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// Folder to write {code}.pem and {code}.key into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// The CA's certificate [default: DIR/ca.pem, with --client DIR/office-ca.pem].
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// The CA's key [default: DIR/ca.key, with --client DIR/office-ca.key].
    #[arg(long, value_name = "FILE")]
    pub ca_key: Option<PathBuf>,

    /// GB/T 2260 division code of the node, e.g. 320102; its level is read from the digits.
    #[arg(long, value_name = "CODE", required_unless_present = "client")]
    pub code: Option<DivisionCode>,

    /// The node's level, checked against the code (a county code with --level city is refused).
    #[arg(long, value_enum, conflicts_with = "client")]
    pub level: Option<NodeLevel>,

    /// Another name the certificate is valid for, to serve the office port too (DNS name or IP address;
    /// repeatable), e.g. --host localhost --host 127.0.0.1.
    #[arg(long = "host", value_name = "HOST", conflicts_with = "client")]
    pub hosts: Vec<String>,

    /// Issue an office-client certificate instead of a node certificate, into DIR/LABEL.pem and DIR/LABEL.key
    /// (LABEL: letters, digits, '-', '_', '.'), signed by the office CA. Bind it to an account with the SHA-256
    /// printed: `ecovol account create … --client-cert-sha256 SHA`.
    #[arg(long, value_name = "LABEL", conflicts_with = "code", requires = "name")]
    pub client: Option<String>,

    /// With --client: the person or desk holding the certificate, in its subject ("ecovol office client NAME").
    #[arg(long, value_name = "NAME", requires = "client")]
    pub name: Option<String>,

    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `certs federation-key`.
#[derive(Debug, Clone, clap::Args)]
pub struct FederationKeyArgs {
    /// Where to write the key; copy the same file to every node of the federation.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Replace an existing file (pseudonyms made with the old key no longer match).
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `certs show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// A node certificate (PEM), e.g. 320102.pem.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Runs a `certs` command; all of them work on local files only.
pub fn run(command: CertsCommand, console: &mut Console<'_>) -> Result<(), Failure> {
    match command {
        CertsCommand::Ca(args) => {
            if args.office {
                let (cert, key) = certs::write_office_ca(&args.dir, &args.name, args.force).map_err(failure)?;
                wrote_pair(console, "office CA", &cert, &key);
                console.note(
                    "keep office-ca.key with the office's operator: it signs this office's client certificates \
                     (ecovol certs issue --client); the node trusts office-ca.pem as office.tls.client_ca_file",
                );
                return Ok(());
            }
            let (cert, key) = certs::write_ca(&args.dir, &args.name, args.force).map_err(failure)?;
            wrote_pair(console, "federation CA", &cert, &key);
            console.note(
                "keep ca.key offline and backed up: whoever holds it can make certificates for any node; give the \
                 nodes ca.pem only",
            );
            Ok(())
        }
        CertsCommand::Node(args) => {
            if let Some(label) = &args.client {
                return issue_client(&args, label, console);
            }
            let Some(code) = args.code else {
                return Err(Failure::Usage("--code is required for a node certificate (or --client LABEL)".into()));
            };
            if let Some(level) = args.level {
                let actual = match code.level() {
                    ecovol_coordinator::region::DivisionLevel::Province => NodeLevel::Province,
                    ecovol_coordinator::region::DivisionLevel::City => NodeLevel::City,
                    ecovol_coordinator::region::DivisionLevel::County => NodeLevel::County,
                };
                if actual != level {
                    let label = |level: NodeLevel| format!("{level:?}").to_lowercase();
                    return Err(Failure::Usage(format!(
                        "--level {} does not match --code {}: it is a {} code",
                        label(level),
                        code,
                        label(actual)
                    )));
                }
            }
            let ca_cert = args.ca_cert.unwrap_or_else(|| args.dir.join(certs::CA_CERT_FILE));
            let ca_key = args.ca_key.unwrap_or_else(|| args.dir.join(certs::CA_KEY_FILE));
            let (cert, key) =
                certs::write_node(&args.dir, &ca_cert, &ca_key, code, &args.hosts, args.force).map_err(failure)?;
            wrote_pair(console, &format!("node {}", certs::node_dns_name(code)), &cert, &key);
            Ok(())
        }
        CertsCommand::FederationKey(args) => {
            certs::write_federation_key(&args.out, args.force).map_err(failure)?;
            if console.is_json() {
                console.json(&serde_json::json!({ "key_file": args.out.display().to_string() }));
            } else {
                console.print(&format!(
                    "wrote a new federation key to {} (readable by its owner only)\n",
                    args.out.display()
                ));
            }
            console.note("copy the same key file to every node of the federation, and back it up");
            Ok(())
        }
        CertsCommand::Show(args) => show(&args.file, console),
        CertsCommand::Inspect(args) => inspect(&args.file, console),
    }
}

/// `certs issue --client LABEL --name NAME`: an office-client certificate from the office CA.
fn issue_client(args: &NodeArgs, label: &str, console: &mut Console<'_>) -> Result<(), Failure> {
    let ca_cert = args.ca_cert.clone().unwrap_or_else(|| args.dir.join(certs::OFFICE_CA_CERT_FILE));
    let ca_key = args.ca_key.clone().unwrap_or_else(|| args.dir.join(certs::OFFICE_CA_KEY_FILE));
    let name = args.name.as_deref().unwrap_or_default();
    let (cert, key, sha256) =
        certs::write_client(&args.dir, &ca_cert, &ca_key, label, name, args.force).map_err(failure)?;
    if console.is_json() {
        console.json(&serde_json::json!({
            "cert_file": cert.display().to_string(),
            "key_file": key.display().to_string(),
            "sha256": sha256,
        }));
    } else {
        console.print(&format!(
            "wrote the office-client certificate of {name} to {}\nand its key to {} (readable by its owner only)\n\
             sha256: {sha256}\n",
            cert.display(),
            key.display()
        ));
    }
    console.note(&format!(
        "bind it to an account: ecovol account create … --client-cert-sha256 {sha256}; revoking the account \
         revokes the certificate"
    ));
    Ok(())
}

/// Prints the paths of a written certificate and key.
fn wrote_pair(console: &mut Console<'_>, what: &str, cert: &Path, key: &Path) {
    if console.is_json() {
        console.json(&serde_json::json!({
            "cert_file": cert.display().to_string(),
            "key_file": key.display().to_string(),
        }));
    } else {
        console.print(&format!(
            "wrote the {what} certificate to {}\nand its key to {} (readable by its owner only)\n",
            cert.display(),
            key.display()
        ));
    }
}

fn show(file: &Path, console: &mut Console<'_>) -> Result<(), Failure> {
    let pem = std::fs::read_to_string(file)
        .map_err(|source| failure(CertError::Read { path: file.to_path_buf(), source }))?;
    let certificate = certs::read_node_cert(&pem).map_err(failure)?;
    let identity = certificate.identity;
    let record = Record::new()
        .field("division_code", identity.code.to_string())
        .field("level", certs::level_label(identity.level))
        .field("node_name", identity.dns_name())
        .field("common_name", super::console::name(certificate.common_name))
        .field("hosts", certificate.hosts)
        .field("issuer", certificate.issuer)
        .field("not_before", certificate.not_before.to_rfc3339())
        .field("not_after", certificate.not_after.to_rfc3339())
        .field("sha256", certificate_sha256(&pem).unwrap_or_default());
    console.single("certificate", &record);
    expiry_note(certificate.not_after, console);
    Ok(())
}

/// Warns about a certificate that expired or expires within `metrics::CERT_WARN_DAYS`.
fn expiry_note(not_after: chrono::DateTime<Utc>, console: &mut Console<'_>) {
    let now = Utc::now();
    if not_after < now {
        console.note(&format!("warning: this certificate expired at {}", not_after.to_rfc3339()));
    } else if (not_after - now).num_days() < crate::metrics::CERT_WARN_DAYS {
        console.note(&format!(
            "warning: this certificate expires in {} days ({}): issue a new one",
            (not_after - now).num_days(),
            not_after.to_rfc3339()
        ));
    }
}

/// SHA-256 (hex) of the DER of the first certificate in a PEM text: what `federation.denied` and an account's
/// client certificate name.
fn certificate_sha256(pem: &str) -> Option<String> {
    use rustls::pki_types::pem::PemObject as _;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    Some(crate::crypto::certificate_sha256(&der))
}

/// `certs inspect`: a node certificate as `show` prints it; any other certificate by subject, issuer, names and
/// validity.
fn inspect(file: &Path, console: &mut Console<'_>) -> Result<(), Failure> {
    let pem = std::fs::read_to_string(file)
        .map_err(|source| failure(CertError::Read { path: file.to_path_buf(), source }))?;
    if certs::read_node_cert(&pem).is_ok() {
        return show(file, console);
    }
    use rustls::pki_types::pem::PemObject as _;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|error| failure(CertError::Unreadable(error.to_string())))?;
    let (_, certificate) =
        x509_parser::parse_x509_certificate(&der).map_err(|error| failure(CertError::Unreadable(error.to_string())))?;
    let mut hosts = Vec::new();
    if let Ok(Some(names)) = certificate.subject_alternative_name() {
        for name in &names.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => hosts.push(dns.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => hosts.push(match bytes.len() {
                    4 => std::net::IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default()).to_string(),
                    16 => std::net::IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default()).to_string(),
                    _ => hex::encode(bytes),
                }),
                _ => {}
            }
        }
    }
    let is_ca = certificate.basic_constraints().ok().flatten().is_some_and(|constraints| constraints.value.ca);
    let subject = certificate.subject().to_string();
    let kind = if is_ca && subject.starts_with("CN=ecovol office CA") {
        "office CA certificate (signs office-client certificates)"
    } else if is_ca {
        "CA certificate"
    } else if subject.starts_with(&format!("CN={}", certs::OFFICE_CLIENT_PREFIX)) {
        "office-client certificate (bind it to an account by its sha256)"
    } else {
        "certificate (not an ecovol node certificate)"
    };
    let time = |time: x509_parser::time::ASN1Time| {
        chrono::DateTime::<Utc>::from_timestamp(time.timestamp(), 0).unwrap_or_default()
    };
    let not_after = time(certificate.validity().not_after);
    let record = Record::new()
        .field("subject", subject)
        .field("issuer", certificate.issuer().to_string())
        .field("kind", kind)
        .field("hosts", hosts)
        .field("not_before", time(certificate.validity().not_before).to_rfc3339())
        .field("not_after", not_after.to_rfc3339())
        .field("sha256", crate::crypto::certificate_sha256(&der));
    console.single("certificate", &record);
    expiry_note(not_after, console);
    Ok(())
}

/// A usage mistake (exit 2) when the files or values given are wrong; a failure (exit 1) when writing or
/// generating failed.
fn failure(error: CertError) -> Failure {
    match error {
        CertError::Exists { .. } => Failure::Usage(format!("{error}; pass --force to replace it")),
        CertError::Write { .. } | CertError::Randomness | CertError::Generate(_) => Failure::Failed(error.to_string()),
        _ => Failure::Usage(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::failure::{EXIT_OK, EXIT_USAGE};

    /// Runs `ecovol ARGS`; returns (exit code, standard output, standard error).
    async fn ecovol(args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = std::iter::once("ecovol").chain(args.iter().copied()).map(str::to_string);
        let code = crate::cli::run_with(args, &mut out, &mut err).await;
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[tokio::test]
    async fn a_ca_issues_a_node_certificate_that_shows_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let pki = pki.to_str().unwrap();
        let (code, out, err) = ecovol(&["certs", "ca", "--dir", pki, "--name", "jiangsu"]).await;
        assert_eq!(code, EXIT_OK, "{err}");
        assert!(out.contains(&format!("{pki}/ca.pem")) && out.contains(&format!("{pki}/ca.key")), "{out}");
        assert!(err.contains("keep ca.key offline"), "{err}");

        let (code, out, err) =
            ecovol(&["certs", "node", "--dir", pki, "--code", "320102", "--host", "localhost", "--host", "127.0.0.1"])
                .await;
        assert_eq!(code, EXIT_OK, "{err}");
        assert!(out.contains("node 320102.county.node.ecovol") && out.contains(&format!("{pki}/320102.key")), "{out}");

        let cert = format!("{pki}/320102.pem");
        let (code, out, err) = ecovol(&["certs", "show", &cert]).await;
        assert_eq!(code, EXIT_OK, "{err}");
        assert!(out.contains("division_code: 320102\n") && out.contains("level:         county\n"), "{out}");
        assert!(out.contains("hosts:         localhost, 127.0.0.1\n"), "{out}");

        let (code, out, _) = ecovol(&["-o", "json", "certs", "show", &cert]).await;
        assert_eq!(code, EXIT_OK);
        let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["certificate"]["node_name"], "320102.county.node.ecovol");
        assert_eq!(shown["certificate"]["issuer"], "CN=ecovol federation CA (jiangsu)");
    }

    #[tokio::test]
    async fn mistakes_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().to_str().unwrap();
        assert_eq!(ecovol(&["certs", "ca", "--dir", pki]).await.0, EXIT_OK);
        let check = |expected: &'static str| {
            move |(code, _, err): (i32, String, String)| {
                assert_eq!(code, EXIT_USAGE, "{err}");
                assert!(err.contains(expected), "{err}");
            }
        };
        check("exists already, refusing to overwrite it; pass --force to replace it")(
            ecovol(&["certs", "ca", "--dir", pki]).await,
        );
        assert_eq!(ecovol(&["certs", "ca", "--dir", pki, "--force"]).await.0, EXIT_OK);
        check("must be 6 digits")(ecovol(&["certs", "node", "--dir", pki, "--code", "32010"]).await);
        check("is neither an IP address nor a DNS name")(
            ecovol(&["certs", "node", "--dir", pki, "--code", "320102", "--host", "bad host"]).await,
        );
        check("cannot read")(
            ecovol(&["certs", "node", "--dir", pki, "--code", "320102", "--ca-key", "/nonexistent/ca.key"]).await,
        );
        check("carries no node name")(ecovol(&["certs", "show", &format!("{pki}/ca.pem")]).await);
        check("cannot read")(ecovol(&["certs", "show", &format!("{pki}/missing.pem")]).await);
    }

    #[tokio::test]
    async fn an_office_ca_issues_client_certificates_that_inspect_shows() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().to_str().unwrap();
        let (code, out, err) = ecovol(&["certs", "init", "--office", "--dir", pki, "--name", "320102"]).await;
        assert_eq!(code, EXIT_OK, "{err}");
        assert!(out.contains(&format!("{pki}/office-ca.pem")) && err.contains("office.tls.client_ca_file"), "{out}");
        let (code, out, err) =
            ecovol(&["-o", "json", "certs", "issue", "--client", "front-desk", "--name", "前台", "--dir", pki]).await;
        assert_eq!(code, EXIT_OK, "{err}");
        let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
        let sha256 = issued["sha256"].as_str().unwrap().to_string();
        assert!(err.contains(&format!("--client-cert-sha256 {sha256}")), "{err}");

        let cert = format!("{pki}/front-desk.pem");
        let (code, out, _) = ecovol(&["-o", "json", "certs", "inspect", &cert]).await;
        assert_eq!(code, EXIT_OK);
        let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["certificate"]["subject"], "CN=ecovol office client 前台");
        assert_eq!(shown["certificate"]["issuer"], "CN=ecovol office CA (320102)");
        assert_eq!(shown["certificate"]["sha256"], sha256.as_str());
        assert!(shown["certificate"]["kind"].as_str().unwrap().starts_with("office-client certificate"));

        // Usage mistakes: a node flag with --client, --client without --name, a node certificate of the office CA.
        let usage = |(code, _, err): (i32, String, String), expected: &str| {
            assert_eq!(code, EXIT_USAGE, "{err}");
            assert!(err.contains(expected), "{err}");
        };
        usage(
            ecovol(&["certs", "issue", "--client", "x", "--name", "x", "--code", "320102", "--dir", pki]).await,
            "cannot be used with",
        );
        usage(ecovol(&["certs", "issue", "--client", "x", "--dir", pki]).await, "--name");
        usage(
            ecovol(&[
                "certs",
                "issue",
                "--code",
                "320102",
                "--dir",
                pki,
                "--ca-cert",
                &format!("{pki}/office-ca.pem"),
                "--ca-key",
                &format!("{pki}/office-ca.key"),
            ])
            .await,
            "this is an office CA",
        );
    }

    #[tokio::test]
    async fn the_federation_key_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("federation.key");
        let key = key.to_str().unwrap();
        let (code, out, err) = ecovol(&["certs", "federation-key", "--out", key]).await;
        assert_eq!(code, EXIT_OK, "{err}");
        assert!(out.contains(key), "{out}");
        assert_eq!(std::fs::read_to_string(key).unwrap().trim_end().len(), 64);
        assert_eq!(ecovol(&["certs", "federation-key", "--out", key]).await.0, EXIT_USAGE);
        assert_eq!(ecovol(&["certs", "federation-key", "--out", key, "--force"]).await.0, EXIT_OK);
    }
}
