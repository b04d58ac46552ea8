//! Service certificates. MCA Order 67 (2020): whoever records service certifies it; a certificate carries the
//! volunteer's name, ID type and number, volunteer number, hours and content, the issuer and its contact, a
//! certificate number and date (DOMAIN.md "Rules for records").
//!
//! A certificate covers the volunteer's **confirmed** service records whose start lies in the period (China
//! days, inclusive); every record in this node's store was made by this node's teams, so only this node's hours
//! are certified. The identity number is printed masked (first 6, last 4): a certificate is handed around, and the
//! volunteer number is the public identifier.
//!
//! Keys: `cert/<number>` → `StoredCertificate` (content, its canonical JSON and that JSON's SHA-256); never changed
//! after issue, so `verify` detects a changed field. The number is `{code}-C{year}{seq:06}` (sequence `certificate`).

use std::ops::ControlFlow;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use ecovol_proto::v1 as pb;
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::config::NodeSection;
use crate::crypto::NodeKeys;
use crate::error::{DomainError, Violations};
use crate::hours::{self, RecordState, ServiceRecord};
use crate::project::ProjectRecord;
use crate::registry::volunteer::{self, VolunteerRecord};
use crate::stats::StatsRange;
use crate::store::{self, Store};
use crate::wire;

/// The identity document a volunteer registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityDocument {
    ResidentIdentityCard,
    /// Residence permit for Hong Kong, Macao and Taiwan residents (GB 11643 address codes 81/82/83).
    ResidencePermit,
}

impl IdentityDocument {
    /// The label printed on the certificate.
    pub fn label(self) -> &'static str {
        match self {
            IdentityDocument::ResidentIdentityCard => "居民身份证",
            IdentityDocument::ResidencePermit => "港澳台居民居住证",
        }
    }
}

/// One confirmed record on a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateLine {
    pub record_id: String,
    pub project_id: String,
    pub project_title: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub hours_x100: u32,
    pub content: String,
}

/// What a certificate says; its canonical JSON (this field order) is what the hash covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateContent {
    pub certificate_number: String,
    pub volunteer_number: String,
    pub volunteer_name: String,
    pub identity_document: IdentityDocument,
    pub masked_identity_number: String,
    pub period_start_date: NaiveDate,
    pub period_end_date: NaiveDate,
    pub total_hours_x100: u64,
    pub lines: Vec<CertificateLine>,
    pub issuer_name: String,
    pub issuer_code: String,
    pub issuer_contact: String,
    pub issued_by: String,
    pub issued_at: DateTime<Utc>,
}

/// A certificate as stored under `cert/<number>`.
///
/// `content_json` holds the exact bytes that were hashed at issue, so a later release that adds a field to
/// `CertificateContent` (with `#[serde(default)]`) still verifies old certificates: the hash is checked over the
/// stored bytes, never over a re-encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCertificate {
    pub content: CertificateContent,
    /// The canonical JSON of `content` at issue.
    pub content_json: String,
    /// SHA-256 (hex) of `content_json`.
    pub content_sha256: String,
}

impl StoredCertificate {
    /// Seals `content`: its canonical JSON and that JSON's hash.
    pub fn seal(content: CertificateContent) -> Self {
        let content_json = String::from_utf8_lossy(&store::encode(&content)).into_owned();
        StoredCertificate { content_sha256: sha256_hex(content_json.as_bytes()), content_json, content }
    }

    /// True if the stored JSON still has the hash it was issued with, and the content shown is that JSON's.
    pub fn is_intact(&self) -> bool {
        sha256_hex(self.content_json.as_bytes()) == self.content_sha256
            && serde_json::from_str::<CertificateContent>(&self.content_json).is_ok_and(|sealed| sealed == self.content)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

pub fn certificate_key(number: &str) -> String {
    format!("cert/{number}")
}

/// An identity number masked for print: the first 6 and the last 4 characters kept, 8 stars between
/// (`110105********002X`). Anything shorter than 10 characters is masked whole.
pub fn mask_identity_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len().max(8));
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}********{tail}")
}

/// The volunteer's identity number, decrypted and masked.
pub fn masked_identity(record: &VolunteerRecord, keys: &NodeKeys) -> Result<String, DomainError> {
    let number = keys.open("identity_number", &record.identity_sealed).map_err(|_| {
        DomainError::Internal(format!("identity number of volunteer {} unreadable", record.volunteer_number))
    })?;
    Ok(mask_identity_number(&number))
}

/// Hundredths of an hour as a decimal text: 1225 → "12.25".
pub fn hours_text(hours_x100: u64) -> String {
    format!("{}.{:02}", hours_x100 / 100, hours_x100 % 100)
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn china_date(time: DateTime<Utc>) -> NaiveDate {
    time.with_timezone(&wire::china()).date_naive()
}

fn china_minute(time: DateTime<Utc>) -> String {
    time.with_timezone(&wire::china()).format("%Y-%m-%d %H:%M").to_string()
}

// ----- commands -----

/// A validated issue request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCertificate {
    pub volunteer_number: String,
    pub period: StatsRange,
}

impl TryFrom<pb::IssueCertificateRequest> for IssueCertificate {
    type Error = DomainError;

    fn try_from(request: pb::IssueCertificateRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        if let Err(DomainError::Invalid(found)) = volunteer::parse_volunteer_number(&request.volunteer_number) {
            for violation in found {
                violations.add("volunteer_number", violation.description);
            }
        }
        let period =
            StatsRange::try_from(pb::GetStatsRequest { start_date: request.start_date, end_date: request.end_date });
        match period {
            Err(DomainError::Invalid(found)) => {
                for violation in found {
                    violations.add(violation.field, violation.description);
                }
                violations.into_result()?;
                Err(DomainError::Internal("period checked above".into()))
            }
            Err(other) => Err(other),
            Ok(period) => {
                violations.into_result()?;
                Ok(IssueCertificate { volunteer_number: request.volunteer_number, period })
            }
        }
    }
}

/// Checks a certificate number given on the wire.
pub fn parse_certificate_number(number: &str) -> Result<String, DomainError> {
    if number.is_empty() {
        return Err(DomainError::invalid("certificate_number", "is required"));
    }
    if number.len() > 32 || !number.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(DomainError::invalid(
            "certificate_number",
            "is not a certificate number (like 330106-C2026000001)",
        ));
    }
    Ok(number.to_string())
}

// ----- use-cases -----

/// Issues a certificate (staff): the volunteer's confirmed records starting in the period; FailedPrecondition if
/// there are none.
pub fn issue(
    txn: &mut Txn<'_>,
    node: &NodeSection,
    keys: &NodeKeys,
    caller: &Caller,
    command: IssueCertificate,
) -> Result<StoredCertificate, DomainError> {
    caller.require_any(&[Role::Staff], "issuing a service certificate")?;
    let volunteer = volunteer::load(txn, &command.volunteer_number)?;
    let mut records: Vec<ServiceRecord> = Vec::new();
    let mut failure = None;
    let prefix = format!("svc_vol/{}/", command.volunteer_number);
    txn.store().scan(prefix.as_bytes(), None, &mut |key, _| {
        let record_id = String::from_utf8_lossy(key).rsplit('/').next().unwrap_or_default().to_string();
        match txn.get_json::<ServiceRecord>(&hours::record_key(&record_id)) {
            Ok(Some(record)) => {
                if record.state == RecordState::Confirmed && command.period.contains(record.start_time) {
                    records.push(record);
                }
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(error) = failure {
        return Err(error.into());
    }
    if records.is_empty() {
        return Err(DomainError::FailedPrecondition(format!(
            "volunteer {} has no confirmed service hours recorded by this node between {} and {}",
            command.volunteer_number, command.period.start_date, command.period.end_date
        )));
    }
    records.sort_by(|a, b| (a.start_time, &a.record_id).cmp(&(b.start_time, &b.record_id)));
    let mut lines = Vec::with_capacity(records.len());
    for record in records {
        let project: Option<ProjectRecord> = txn.get_json(&crate::project::project_key(&record.project_id))?;
        lines.push(CertificateLine {
            project_title: project.map(|project| project.title).unwrap_or_default(),
            record_id: record.record_id,
            project_id: record.project_id,
            start_time: record.start_time,
            end_time: record.end_time,
            hours_x100: record.hours_x100,
            content: record.content,
        });
    }
    let now = txn.now();
    let sequence = txn.next_seq("certificate")?;
    let number = format!("{}-C{}{sequence:06}", node.code, china_date(now).year());
    let content = CertificateContent {
        certificate_number: number.clone(),
        volunteer_number: volunteer.volunteer_number.clone(),
        volunteer_name: volunteer.name.clone(),
        identity_document: if volunteer.residence_permit {
            IdentityDocument::ResidencePermit
        } else {
            IdentityDocument::ResidentIdentityCard
        },
        masked_identity_number: masked_identity(&volunteer, keys)?,
        period_start_date: command.period.start_date,
        period_end_date: command.period.end_date,
        total_hours_x100: lines.iter().map(|line| u64::from(line.hours_x100)).sum(),
        lines,
        issuer_name: node.name.clone(),
        issuer_code: node.code.clone(),
        issuer_contact: String::new(),
        issued_by: caller.account_id.clone(),
        issued_at: now,
    };
    let stored = StoredCertificate::seal(content);
    txn.put_json(certificate_key(&number), &stored);
    txn.detail = format!("certificate {number}");
    Ok(stored)
}

fn load(store: &dyn Store, number: &str) -> Result<StoredCertificate, DomainError> {
    store::get_json(store, certificate_key(number).as_bytes())?
        .ok_or_else(|| DomainError::not_found("certificate", number))
}

/// A certificate with its page: staff, or the volunteer it certifies.
pub fn get(store: &dyn Store, caller: &Caller, number: &str) -> Result<StoredCertificate, DomainError> {
    caller.require_any(&[Role::Staff, Role::Volunteer], "reading a certificate")?;
    let stored = load(store, number)?;
    if !caller.has(Role::Staff) && !caller.is_volunteer(&stored.content.volunteer_number) {
        return Err(DomainError::denied(format!(
            "certificate {number} is readable by staff and the volunteer it certifies"
        )));
    }
    Ok(stored)
}

/// Any authenticated account: the certificate and whether it is intact.
pub fn verify(store: &dyn Store, number: &str) -> Result<StoredCertificate, DomainError> {
    load(store, number)
}

// ----- rendering -----

/// The printable page: self-contained (no external resources), Chinese labels, every value escaped.
pub fn render_html(stored: &StoredCertificate) -> String {
    let c = &stored.content;
    let e = html_escape;
    let mut rows = String::new();
    for line in &c.lines {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{} – {}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
            e(&line.project_title),
            e(&china_minute(line.start_time)),
            e(&china_minute(line.end_time)),
            e(&hours_text(u64::from(line.hours_x100))),
            e(&line.content),
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>志愿服务证明 {number}</title>\n\
<style>body{{font-family:serif;max-width:48em;margin:2em auto}}table{{border-collapse:collapse;width:100%}}\
td,th{{border:1px solid #444;padding:4px}}.n{{text-align:right}}</style>\n</head>\n<body>\n\
<h1>志愿服务证明</h1>\n<p>证明编号：{number}</p>\n<table>\n\
<tr><th>姓名</th><td>{name}</td></tr>\n<tr><th>证件类型</th><td>{document}</td></tr>\n\
<tr><th>证件号码</th><td>{identity}</td></tr>\n<tr><th>志愿者编号</th><td>{volunteer}</td></tr>\n\
<tr><th>服务期间</th><td>{from} 至 {to}</td></tr>\n<tr><th>服务时长合计（小时）</th><td>{total}</td></tr>\n</table>\n\
<h2>服务内容</h2>\n<table>\n<tr><th>项目</th><th>时间</th><th>时长（小时）</th><th>内容</th></tr>\n{rows}</table>\n\
<p>出具单位：{issuer}（{code}）　联系方式：{contact}</p>\n<p>出具日期：{date}</p>\n\
<p>校验码（SHA-256）：{hash}</p>\n</body>\n</html>\n",
        number = e(&c.certificate_number),
        name = e(&c.volunteer_name),
        document = e(c.identity_document.label()),
        identity = e(&c.masked_identity_number),
        volunteer = e(&c.volunteer_number),
        from = e(&c.period_start_date.to_string()),
        to = e(&c.period_end_date.to_string()),
        total = e(&hours_text(c.total_hours_x100)),
        issuer = e(&c.issuer_name),
        code = e(&c.issuer_code),
        contact = e(&c.issuer_contact),
        date = e(&china_date(c.issued_at).to_string()),
        hash = e(&stored.content_sha256),
    )
}

// ----- wire -----

impl From<IdentityDocument> for pb::IdentityDocumentType {
    fn from(document: IdentityDocument) -> Self {
        match document {
            IdentityDocument::ResidentIdentityCard => pb::IdentityDocumentType::ResidentIdentityCard,
            IdentityDocument::ResidencePermit => pb::IdentityDocumentType::ResidencePermit,
        }
    }
}

impl From<&StoredCertificate> for pb::Certificate {
    fn from(stored: &StoredCertificate) -> Self {
        let c = &stored.content;
        pb::Certificate {
            certificate_number: c.certificate_number.clone(),
            volunteer_number: c.volunteer_number.clone(),
            volunteer_name: c.volunteer_name.clone(),
            identity_document_type: pb::IdentityDocumentType::from(c.identity_document) as i32,
            masked_identity_number: c.masked_identity_number.clone(),
            period_start_date: c.period_start_date.to_string(),
            period_end_date: c.period_end_date.to_string(),
            total_hours_x100: c.total_hours_x100,
            total_hours: hours_text(c.total_hours_x100),
            lines: c
                .lines
                .iter()
                .map(|line| pb::CertificateLine {
                    record_id: line.record_id.clone(),
                    project_id: line.project_id.clone(),
                    project_title: line.project_title.clone(),
                    start_time: Some(wire::timestamp(line.start_time)),
                    end_time: Some(wire::timestamp(line.end_time)),
                    hours_x100: line.hours_x100,
                    content: line.content.clone(),
                })
                .collect(),
            issuer_name: c.issuer_name.clone(),
            issuer_code: c.issuer_code.clone(),
            issuer_contact: c.issuer_contact.clone(),
            issued_at: Some(wire::timestamp(c.issued_at)),
            issue_date: china_date(c.issued_at).to_string(),
            content_sha256: stored.content_sha256.clone(),
        }
    }
}

impl From<&StoredCertificate> for pb::VerifyCertificateResponse {
    fn from(stored: &StoredCertificate) -> Self {
        let c = &stored.content;
        pb::VerifyCertificateResponse {
            valid: stored.is_intact(),
            certificate_number: c.certificate_number.clone(),
            volunteer_number: c.volunteer_number.clone(),
            volunteer_name: c.volunteer_name.clone(),
            period_start_date: c.period_start_date.to_string(),
            period_end_date: c.period_end_date.to_string(),
            total_hours_x100: c.total_hours_x100,
            issuer_name: c.issuer_name.clone(),
            issued_at: Some(wire::timestamp(c.issued_at)),
            content_sha256: stored.content_sha256.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredCertificate {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc);
        let content = CertificateContent {
            certificate_number: "330106-C2026000001".into(),
            volunteer_number: "330106-00000001".into(),
            volunteer_name: "<script>alert(1)</script>".into(),
            identity_document: IdentityDocument::ResidentIdentityCard,
            masked_identity_number: mask_identity_number("11010519491231002X"),
            period_start_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            period_end_date: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            total_hours_x100: 1225,
            lines: vec![CertificateLine {
                record_id: "330106-H00000001".into(),
                project_id: "330106-P000001".into(),
                project_title: "西溪 & \"湿地\"".into(),
                start_time: at("2026-01-10T09:00:00+08:00"),
                end_time: at("2026-01-10T21:15:00+08:00"),
                hours_x100: 1225,
                content: "清理'垃圾'".into(),
            }],
            issuer_name: "西湖区生态环境局".into(),
            issuer_code: "330106".into(),
            issuer_contact: String::new(),
            issued_by: "A1".into(),
            issued_at: at("2026-02-01T10:00:00+08:00"),
        };
        StoredCertificate::seal(content)
    }

    #[test]
    fn identity_numbers_are_masked_keeping_6_and_4() {
        for (number, masked) in [
            ("11010519491231002X", "110105********002X"),
            ("810000199408230021", "810000********0021"),
            ("12345", "********"),
            ("", "********"),
        ] {
            assert_eq!(mask_identity_number(number), masked, "{number}");
        }
    }

    #[test]
    fn hours_print_exactly() {
        for (x100, text) in [(0, "0.00"), (25, "0.25"), (1225, "12.25"), (100_000, "1000.00"), (101, "1.01")] {
            assert_eq!(hours_text(x100), text);
        }
    }

    #[test]
    fn html_escape_neutralises_markup() {
        assert_eq!(html_escape("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(html_escape("a & \"b\""), "a &amp; &quot;b&quot;");
        let page = render_html(&sample());
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("西溪 &amp; &quot;湿地&quot;"));
        assert!(page.contains("110105********002X"));
        assert!(!page.contains("11010519491231002X"));
        assert!(page.contains("12.25"));
        assert!(!page.contains("http"), "no external resources");
    }

    #[test]
    fn a_changed_field_breaks_the_hash() {
        let stored = sample();
        assert!(stored.is_intact());
        let mut tampered = stored.clone();
        tampered.content.total_hours_x100 = 99_900;
        assert!(!tampered.is_intact());
        let mut tampered = stored.clone();
        tampered.content.lines[0].content.push('!');
        assert!(!tampered.is_intact());
        let mut tampered = stored.clone();
        tampered.content.volunteer_name = "别人".into();
        assert!(!tampered.is_intact());
        // Editing the sealed JSON itself (and the content to match) is caught by the hash.
        let mut tampered = stored.clone();
        tampered.content_json = tampered.content_json.replace("1225", "9925");
        tampered.content.total_hours_x100 = 9925;
        assert!(!tampered.is_intact());
        // A stored certificate read back (as a newer release would) still verifies.
        let read_back: StoredCertificate = serde_json::from_slice(&store::encode(&stored)).unwrap();
        assert!(read_back.is_intact());
    }

    #[test]
    fn issue_requests_are_validated() {
        let request = |volunteer: &str, start: &str, end: &str| pb::IssueCertificateRequest {
            volunteer_number: volunteer.into(),
            start_date: start.into(),
            end_date: end.into(),
        };
        let fields = |request| match IssueCertificate::try_from(request) {
            Err(DomainError::Invalid(violations)) => violations.into_iter().map(|v| v.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fields(request("", "", "")), ["volunteer_number", "start_date", "end_date"]);
        assert_eq!(fields(request("bad/number", "2026-02-01", "2026-01-01")), ["volunteer_number", "end_date"]);
        assert_eq!(
            parse_certificate_number("").unwrap_err().to_string(),
            "invalid request: certificate_number: is required"
        );
        assert!(parse_certificate_number("../x").is_err());
        assert!(parse_certificate_number("330106-C2026000001").is_ok());
    }
}
