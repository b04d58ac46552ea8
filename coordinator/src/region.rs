//! GB/T 2260 administrative division codes: parsing, level, parent and the territory rule used by AUTH-1 and
//! the roll-ups.
//!
//! Copied from `node::validate::DivisionCode`; the node will re-export this type when it adopts the
//! coordinator. One deliberate difference: [`DivisionCode::contains`] follows the federation tree, so a
//! province-administered county-level unit `xx90yy` lies inside its province only, never inside a `xx9000`
//! pseudo-city.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Prefecture digits of province-administered county-level units (GB/T 2260, e.g. `429004`).
const PROVINCE_ADMINISTERED_PREFECTURE: u32 = 90;

/// True for the province digits of GB/T 2260 (11–15, 21–23, 31–37, 41–46, 50–54, 61–65, 71, 81, 82), plus 83
/// which residence permits for Taiwan residents use as their address code.
fn is_province_digits(p: u32) -> bool {
    matches!(p, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82 | 83)
}

/// A GB/T 2260 administrative division code: province (2 digits) + prefecture (2) + county (2).
///
/// Orders numerically, so a province sorts before its cities and a city before its counties. Serialises as
/// its 6-digit string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DivisionCode(u32);

/// The level of a node in the GB/T 2260 hierarchy, read from the code's digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DivisionLevel {
    /// `xx0000`: province, autonomous region, municipality or SAR (GB/T 2260).
    Province,
    /// `xxyy00`: prefecture-level unit, or a municipality's `xx0100`-style placeholder (GB/T 2260).
    City,
    /// `xxyyzz`: county-level unit (GB/T 2260).
    County,
}

/// Why a string is not a GB/T 2260 division code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DivisionCodeError {
    /// Not 6 characters long (GB/T 2260: 6 digits).
    #[error("must be 6 digits, got {len} characters")]
    Length {
        /// Length of the input in characters.
        len: usize,
    },
    /// A character that is not an ASCII digit (GB/T 2260: 6 digits).
    #[error("must be 6 ASCII digits (GB/T 2260)")]
    NotDigits,
    /// The first two digits name no province (GB/T 2260).
    #[error("province digits {province:02} are not a GB/T 2260 province")]
    UnknownProvince {
        /// The first two digits, 0–99.
        province: u8,
    },
    /// Prefecture digits `00` with county digits other than `00` (GB/T 2260: a county lies in a prefecture).
    #[error("a county code needs prefecture digits other than 00 (GB/T 2260)")]
    CountyWithoutPrefecture,
}

impl DivisionCode {
    /// Digits 1–2: the province (GB/T 2260).
    fn province_digits(self) -> u32 {
        self.0 / 10_000
    }

    /// Digits 3–4: the prefecture (GB/T 2260).
    fn prefecture_digits(self) -> u32 {
        self.0 / 100 % 100
    }

    /// Digits 5–6: the county (GB/T 2260).
    fn county_digits(self) -> u32 {
        self.0 % 100
    }

    /// Parses a GB/T 2260 code: exactly 6 ASCII digits; the province digits must be one of
    /// 11–15, 21–23, 31–37, 41–46, 50–54, 61–65, 71, 81, 82, 83; prefecture `00` with county other than `00`
    /// (e.g. `330006`) is rejected. Codes are not checked against a list of existing units.
    pub fn parse(input: &str) -> Result<DivisionCode, DivisionCodeError> {
        let len = input.chars().count();
        if len != 6 {
            return Err(DivisionCodeError::Length { len });
        }
        let bytes = input.as_bytes();
        if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(DivisionCodeError::NotDigits);
        }
        let code = DivisionCode(bytes.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')));
        let province = code.province_digits();
        if !is_province_digits(province) {
            return Err(DivisionCodeError::UnknownProvince { province: u8::try_from(province).unwrap_or(u8::MAX) });
        }
        if code.prefecture_digits() == 0 && code.county_digits() != 0 {
            return Err(DivisionCodeError::CountyWithoutPrefecture);
        }
        Ok(code)
    }

    /// The code as 6 digits, zero-padded (GB/T 2260).
    pub fn as_string(&self) -> String {
        self.to_string()
    }

    /// The province this code lies in, `xx0000` (GB/T 2260).
    pub fn province(&self) -> DivisionCode {
        DivisionCode(self.0 / 10_000 * 10_000)
    }

    /// The level read from the digits (GB/T 2260): `xx0000` province, `xxyy00` city, anything else county.
    pub fn level(&self) -> DivisionLevel {
        if self.prefecture_digits() == 0 && self.county_digits() == 0 {
            DivisionLevel::Province
        } else if self.county_digits() == 0 {
            DivisionLevel::City
        } else {
            DivisionLevel::County
        }
    }

    /// True for a province-administered county-level unit `xx90yy` (GB/T 2260), a direct child of the
    /// province.
    pub fn is_province_administered(&self) -> bool {
        self.level() == DivisionLevel::County && self.prefecture_digits() == PROVINCE_ADMINISTERED_PREFECTURE
    }

    /// The code of the node directly above in the federation (GB/T 2260): county `xxyyzz` → `xxyy00`,
    /// except province-administered county-level units (`xx90yy`, e.g. `429004`) whose parent is the province;
    /// city → province; province → `None`.
    pub fn parent(&self) -> Option<DivisionCode> {
        match self.level() {
            DivisionLevel::Province => None,
            DivisionLevel::City => Some(self.province()),
            DivisionLevel::County if self.is_province_administered() => Some(self.province()),
            DivisionLevel::County => Some(DivisionCode(self.0 / 100 * 100)),
        }
    }

    /// True if `other` lies inside this code's territory, `self` included, following the federation tree:
    /// a province contains every code with the same first 2 digits; a city `xxyy00` contains every `xxyyzz`;
    /// a county contains only itself. A `xx9000` pseudo-city contains only itself: the `xx90yy` units are
    /// direct children of the province (their [`parent`](DivisionCode::parent)), so `contains` agrees with
    /// walking `parent` upwards.
    pub fn contains(&self, other: DivisionCode) -> bool {
        match self.level() {
            DivisionLevel::Province => self.0 / 10_000 == other.0 / 10_000,
            DivisionLevel::City if self.prefecture_digits() == PROVINCE_ADMINISTERED_PREFECTURE => self.0 == other.0,
            DivisionLevel::City => self.0 / 100 == other.0 / 100,
            DivisionLevel::County => self.0 == other.0,
        }
    }

    /// The direct child of `self` whose territory holds `other`: `Some(self)` if `other == self`, `None` if
    /// `other` is not inside `self`.
    pub fn child_towards(&self, other: DivisionCode) -> Option<DivisionCode> {
        if !self.contains(other) {
            return None;
        }
        let mut below = other;
        while below != *self {
            match below.parent() {
                Some(up) if up == *self => return Some(below),
                Some(up) => below = up,
                None => return None,
            }
        }
        Some(below)
    }
}

impl fmt::Display for DivisionCode {
    /// Six digits, zero-padded (GB/T 2260).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl FromStr for DivisionCode {
    type Err = DivisionCodeError;

    /// Same as [`DivisionCode::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DivisionCode::parse(s)
    }
}

impl TryFrom<String> for DivisionCode {
    type Error = DivisionCodeError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        DivisionCode::parse(&s)
    }
}

impl From<DivisionCode> for String {
    fn from(code: DivisionCode) -> String {
        code.to_string()
    }
}

#[cfg(test)]
pub(crate) fn code(s: &str) -> DivisionCode {
    DivisionCode::parse(s).expect(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, DivisionCodeError>) {
        let got = DivisionCode::parse(input);
        match (&got, &expected) {
            (Ok(c), Ok(text)) => {
                assert_eq!(c.as_string(), *text, "input {input:?}");
                assert_eq!(input.parse::<DivisionCode>().as_ref(), Ok(c), "{input:?}");
            }
            (Err(e), Err(want)) => assert_eq!(e, want, "input {input:?}"),
            _ => panic!("input {input:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn parse_table() {
        use DivisionCodeError as E;
        let cases: Vec<(&str, Result<&str, E>)> = vec![
            ("330000", Ok("330000")),
            ("330100", Ok("330100")),
            ("330106", Ok("330106")),
            ("429004", Ok("429004")),
            ("110101", Ok("110101")),
            ("830000", Ok("830000")),
            ("110000", Ok("110000")),
            ("710000", Ok("710000")),
            ("810000", Ok("810000")),
            ("820000", Ok("820000")),
            ("650000", Ok("650000")),
            ("990000", Err(E::UnknownProvince { province: 99 })),
            ("160000", Err(E::UnknownProvince { province: 16 })),
            ("+33010", Err(E::NotDigits)),
            ("000000", Err(E::UnknownProvince { province: 0 })),
            ("720000", Err(E::UnknownProvince { province: 72 })),
            ("33010", Err(E::Length { len: 5 })),
            ("3301061", Err(E::Length { len: 7 })),
            ("", Err(E::Length { len: 0 })),
            ("3301a6", Err(E::NotDigits)),
            ("33010６", Err(E::NotDigits)),
            ("330006", Err(E::CountyWithoutPrefecture)),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
    }

    #[test]
    fn hierarchy() {
        let cases = [
            ("330000", DivisionLevel::Province, None),
            ("330100", DivisionLevel::City, Some("330000")),
            ("330106", DivisionLevel::County, Some("330100")),
            ("429004", DivisionLevel::County, Some("420000")),
            ("429000", DivisionLevel::City, Some("420000")),
            ("110101", DivisionLevel::County, Some("110100")),
        ];
        for (input, level, parent) in cases {
            let c = code(input);
            assert_eq!(c.level(), level, "{input}");
            assert_eq!(c.parent(), parent.map(code), "{input}");
            assert_eq!(c.to_string(), input, "{input}");
        }
    }

    #[test]
    fn contains() {
        let cases = [
            ("330000", "330000", true),
            ("330000", "330106", true),
            ("330000", "320106", false),
            ("330100", "330100", true),
            ("330100", "330106", true),
            ("330100", "330000", false),
            ("330100", "330206", false),
            ("330106", "330106", true),
            ("330106", "330105", false),
            ("330106", "330100", false),
            ("420000", "429004", true),
            ("429000", "429004", false),
            ("429000", "429000", true),
            ("429004", "429004", true),
        ];
        for (outer, inner, expected) in cases {
            assert_eq!(code(outer).contains(code(inner)), expected, "{outer} contains {inner}");
        }
    }

    #[test]
    fn child_towards() {
        let cases = [
            ("330000", "330106", Some("330100")),
            ("330000", "330100", Some("330100")),
            ("330000", "330000", Some("330000")),
            ("330100", "330106", Some("330106")),
            ("420000", "429004", Some("429004")),
            ("330100", "330206", None),
            ("330106", "330100", None),
        ];
        for (parent, origin, expected) in cases {
            assert_eq!(code(parent).child_towards(code(origin)), expected.map(code), "{parent} → {origin}");
        }
    }

    #[test]
    fn serde_as_string() {
        let c = code("330106");
        assert_eq!(String::from(c), "330106");
        assert_eq!(DivisionCode::try_from("429004".to_string()), Ok(code("429004")));
        assert!(DivisionCode::try_from("33".to_string()).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn division_never_panics(input in ".*") {
                let _ = DivisionCode::parse(&input);
            }

            #[test]
            fn division_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..12)) {
                let input = String::from_utf8_lossy(&bytes);
                let _ = DivisionCode::parse(&input);
            }

            #[test]
            fn division_round_trips_and_nests(input in "[0-9]{6}") {
                if let Ok(code) = DivisionCode::parse(&input) {
                    prop_assert_eq!(code.to_string(), input.clone());
                    prop_assert!(code.contains(code));
                    prop_assert!(code.province().contains(code));
                    if let Some(parent) = code.parent() {
                        prop_assert!(parent.contains(code), "{parent} should contain {code}");
                        prop_assert!(parent < code);
                        prop_assert!(DivisionCode::parse(&parent.as_string()).is_ok());
                    } else {
                        prop_assert_eq!(code.level(), DivisionLevel::Province);
                    }
                }
            }
        }
    }
}
