//! Synthetic people for tests: valid identity numbers made with the GB 11643 check, mobile numbers in the
//! reserved-looking 139-0000 range. No real person's data.

use ecovol_proto::v1 as pb;

/// A valid identity number for address `area`, birth date `yyyymmdd`, sequence `sequence` (odd = male).
pub fn identity_number(area: &str, yyyymmdd: &str, sequence: u32) -> String {
    let first17 = format!("{area}{yyyymmdd}{:03}", sequence % 1000);
    let check = ecovol_node::validate::identity_check_char(&first17).expect("17 digits");
    format!("{first17}{check}")
}

/// The `index`-th synthetic adult: a distinct identity number and phone per index (index < 10^7).
pub fn adult(index: u32) -> pb::RegisterVolunteerRequest {
    let day = 1 + index % 28;
    let month = 1 + (index / 28) % 12;
    let year = 1960 + (index / 336) % 40;
    let sequence = (index / 13_440) % 1000;
    pb::RegisterVolunteerRequest {
        name: format!("志愿者{index}"),
        identity_number: identity_number("330106", &format!("{year:04}{month:02}{day:02}"), sequence),
        phone: format!("139{:08}", index),
        skills: vec!["垃圾分类".into()],
        political_status: pb::PoliticalStatus::Masses as i32,
        consent_to_processing: true,
        home_division_code: "330106".into(),
        ..Default::default()
    }
}
