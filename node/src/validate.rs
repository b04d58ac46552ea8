//! Validation of the identifiers the domain carries (identity numbers, social credit codes, division codes,
//! mobile numbers) and the age rules for minors; every rule cites its source in `shared/DOMAIN.md`.
//!
//! Nothing here reads a clock: callers pass "today". No function panics on any input: every length is
//! checked in characters before any byte is indexed, and non-ASCII input is reported as an error.
//! Inputs are not trimmed; callers strip surrounding whitespace if their forms allow it.

use std::fmt;

use chrono::{Datelike, NaiveDate};

// ---------------------------------------------------------------------------------------------------------
// Resident identity numbers, GB 11643-1999
// ---------------------------------------------------------------------------------------------------------

/// Weights of the GB 11643-1999 §5.5 check (ISO 7064:1983 MOD 11-2): w_i = 2^(18-i) mod 11.
const IDENTITY_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Check characters indexed by S mod 11, GB 11643-1999 §5.5.
const IDENTITY_CHECK_CHARS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Earliest birth year accepted: identity numbers of people born before 1900 are not issued in practice,
/// and a year below it almost always means a typing error.
const EARLIEST_BIRTH_YEAR: i32 = 1900;

/// Address codes of residence permits for Hong Kong, Macao and Taiwan residents
/// (Measures for the Application and Issuance of Residence Permits for HK, Macao and Taiwan Residents, 2018).
const RESIDENCE_PERMIT_ADDRESS_CODES: [&str; 3] = ["810000", "820000", "830000"];

/// Gender encoded by the sequence code of an identity number: odd for men, even for women
/// (GB 11643-1999 §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    /// Odd sequence code (GB 11643-1999 §5.4).
    Male,
    /// Even sequence code (GB 11643-1999 §5.4).
    Female,
}

/// A validated resident identity number (GB 11643-1999) or Hong Kong/Macao/Taiwan residence-permit number
/// (address codes 810000/820000/830000).
///
/// Holds the normalised 18 characters (a trailing `x` is uppercased). The address code is not checked
/// against GB/T 2260: retired codes stay valid on old numbers (DOMAIN.md, "Identifiers").
///
/// Identity numbers are sensitive personal information (PIPL art. 28, GB/T 35273): `Debug` prints only the
/// address code and masks the rest, and there is deliberately no `Display`; use [`IdentityNumber::as_str`]
/// where the full number is really needed.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityNumber {
    /// Exactly 18 ASCII characters: 17 digits and a digit or `X`.
    text: String,
    /// The birth date code (characters 7–14), already validated.
    birth: NaiveDate,
}

/// Why a string is not a valid identity number (GB 11643-1999).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityNumberError {
    /// Not 18 characters long (GB 11643-1999 §5.1: 17 digits and a check character).
    #[error("must be 18 characters, got {len}")]
    Length {
        /// Length of the input in characters.
        len: usize,
    },
    /// A character other than a digit in the first 17, or other than a digit or `X` in the last
    /// (GB 11643-1999 §5.1).
    #[error("the first 17 characters must be digits and the last a digit or 'X' (GB 11643-1999)")]
    NotDigits,
    /// Characters 7–14 are not a real calendar date (GB 11643-1999 §5.3).
    #[error("birth date code is not a real calendar date (GB 11643-1999)")]
    InvalidBirthDate,
    /// The birth date is after the day of the check (GB 11643-1999 §5.3: the date of birth).
    #[error("birth date is in the future (GB 11643-1999)")]
    BirthDateInFuture,
    /// The birth date is before 1900-01-01.
    #[error("birth date is before 1900-01-01")]
    BirthDateTooEarly,
    /// The check character does not match the GB 11643-1999 §5.5 checksum.
    #[error("check character is '{found}' but the GB 11643 checksum gives '{expected}'")]
    CheckDigit {
        /// The check character the checksum gives.
        expected: char,
        /// The check character in the input (uppercased).
        found: char,
    },
}

/// The GB 11643-1999 §5.5 check character for 17 digits: S = Σ a_i·w_i with weights
/// 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, check = "10X98765432"[S mod 11].
///
/// Returns `None` if `first17` is not exactly 17 ASCII digits.
pub fn identity_check_char(first17: &str) -> Option<char> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(identity_check_of_digits(bytes))
}

/// GB 11643-1999 §5.5 checksum over bytes already known to be 17 ASCII digits.
fn identity_check_of_digits(digits: &[u8]) -> char {
    let sum: u32 = digits.iter().zip(IDENTITY_WEIGHTS).map(|(d, w)| u32::from(d.wrapping_sub(b'0')) * w).sum();
    // `sum % 11` is always < 11, the length of the table.
    IDENTITY_CHECK_CHARS.get((sum % 11) as usize).copied().unwrap_or('?')
}

/// Value of `N` ASCII digits; callers have checked that they are digits.
fn digits_value(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d.wrapping_sub(b'0')))
}

impl IdentityNumber {
    /// Parses and validates an identity number (GB 11643-1999 §5) or a Hong Kong/Macao/Taiwan
    /// residence-permit number.
    ///
    /// `today` is passed in (no clock inside): the birth date (§5.3) must be a real date, not after `today`,
    /// and not before 1900-01-01. A lowercase trailing `x` is accepted and stored as `X`. The 15-digit
    /// first-generation numbers are not accepted. The address code is not checked (retired codes are legal).
    /// Checks run in this order: length, characters, birth date, check character (§5.5).
    pub fn parse(input: &str, today: NaiveDate) -> Result<IdentityNumber, IdentityNumberError> {
        let len = input.chars().count();
        if len != 18 {
            return Err(IdentityNumberError::Length { len });
        }
        let bytes = input.as_bytes();
        // 18 characters but more bytes means some character is not ASCII.
        let [body @ .., last] = bytes else {
            return Err(IdentityNumberError::NotDigits);
        };
        if bytes.len() != 18 || !body.iter().all(u8::is_ascii_digit) {
            return Err(IdentityNumberError::NotDigits);
        }
        let last = last.to_ascii_uppercase();
        if !(last.is_ascii_digit() || last == b'X') {
            return Err(IdentityNumberError::NotDigits);
        }

        // GB 11643-1999 §5.3: characters 7–14 are the birth date YYYYMMDD.
        let year = digits_value(&body[6..10]);
        let month = digits_value(&body[10..12]);
        let day = digits_value(&body[12..14]);
        let year = i32::try_from(year).map_err(|_| IdentityNumberError::InvalidBirthDate)?;
        let birth = NaiveDate::from_ymd_opt(year, month, day).ok_or(IdentityNumberError::InvalidBirthDate)?;
        if birth.year() < EARLIEST_BIRTH_YEAR {
            return Err(IdentityNumberError::BirthDateTooEarly);
        }
        if birth > today {
            return Err(IdentityNumberError::BirthDateInFuture);
        }

        // GB 11643-1999 §5.5: the check character.
        let expected = identity_check_of_digits(body);
        let found = char::from(last);
        if expected != found {
            return Err(IdentityNumberError::CheckDigit { expected, found });
        }

        let mut text: String = body.iter().map(|&b| char::from(b)).collect();
        text.push(found);
        Ok(IdentityNumber { text, birth })
    }

    /// The normalised 18 characters (GB 11643-1999 §5.1), trailing `X` uppercase.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The 6-digit address code (GB 11643-1999 §5.2, a GB/T 2260 code, possibly retired).
    pub fn address_code(&self) -> &str {
        self.text.get(..6).unwrap_or_default()
    }

    /// The birth date (GB 11643-1999 §5.3).
    pub fn birth_date(&self) -> NaiveDate {
        self.birth
    }

    /// The gender from the 17th character: odd male, even female (GB 11643-1999 §5.4).
    pub fn gender(&self) -> Gender {
        match self.text.as_bytes().get(16) {
            Some(d) if d.wrapping_sub(b'0') % 2 == 1 => Gender::Male,
            _ => Gender::Female,
        }
    }

    /// True for a Hong Kong/Macao/Taiwan residence-permit number: address code 810000, 820000 or 830000
    /// (DOMAIN.md, "Identifiers"; Residence Permit Measures 2018).
    pub fn is_residence_permit(&self) -> bool {
        RESIDENCE_PERMIT_ADDRESS_CODES.contains(&self.address_code())
    }
}

impl fmt::Debug for IdentityNumber {
    /// Masks everything after the address code: identity numbers are sensitive personal information
    /// (PIPL art. 28) and must stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityNumber(\"{}************\")", self.address_code())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Unified social credit codes, GB 32100-2015
// ---------------------------------------------------------------------------------------------------------

/// The 31 characters of GB 32100-2015 (digits and uppercase letters without I, O, Z, S, V), in value order.
const CREDIT_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of the GB 32100-2015 check (GB/T 17710, modulus 31): w_i = 3^(i-1) mod 31.
const CREDIT_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Outcome of checking a well-formed unified social credit code (GB 32100-2015).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreditCodeCheck {
    /// The check character matches (GB 32100-2015).
    Valid,
    /// The check character does not match. Some codes issued during the pilot era fail the check yet are
    /// legal (DOMAIN.md, "Identifiers"): warn, do not reject.
    CheckMismatch {
        /// The check character the GB 32100-2015 checksum gives.
        expected: char,
    },
}

/// Why a string is not a well-formed unified social credit code (GB 32100-2015).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    /// Not 18 characters long (GB 32100-2015: 17 characters and a check character).
    #[error("must be 18 characters, got {len}")]
    Length {
        /// Length of the input in characters.
        len: usize,
    },
    /// A character outside the GB 32100-2015 alphabet `0123456789ABCDEFGHJKLMNPQRTUWXY`.
    #[error("character {position} is '{ch}', which is not in the GB 32100 alphabet (no I, O, Z, S or V)")]
    InvalidCharacter {
        /// 1-based position of the character, counted in characters.
        position: usize,
        /// The character as it appeared in the input.
        ch: char,
    },
}

/// Value of one credit-code character (GB 32100-2015 alphabet), lowercase accepted.
fn credit_value(ch: char) -> Option<u32> {
    let upper = ch.to_ascii_uppercase();
    if !upper.is_ascii() {
        return None;
    }
    CREDIT_ALPHABET.iter().position(|&c| char::from(c) == upper).and_then(|p| u32::try_from(p).ok())
}

/// GB 32100-2015 check character over 17 character values (each < 31).
fn credit_check_of_values(values: &[u32]) -> char {
    let sum: u32 = values.iter().zip(CREDIT_WEIGHTS).map(|(v, w)| v * w).sum();
    let index = (31 - sum % 31) % 31;
    CREDIT_ALPHABET.get(index as usize).map(|&c| char::from(c)).unwrap_or('?')
}

/// The GB 32100-2015 check character for the first 17 characters of a unified social credit code:
/// alphabet[(31 − Σ v_i·w_i mod 31) mod 31] with weights 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28.
///
/// Lowercase letters are accepted as their uppercase forms. Returns `None` unless `first17` is exactly 17
/// characters of the alphabet.
pub fn credit_check_char(first17: &str) -> Option<char> {
    let mut values = [0u32; 17];
    let mut count = 0usize;
    for ch in first17.chars() {
        let slot = values.get_mut(count)?;
        *slot = credit_value(ch)?;
        count += 1;
    }
    (count == 17).then(|| credit_check_of_values(&values))
}

/// Checks a unified social credit code (GB 32100-2015): 18 characters of the alphabet
/// `0123456789ABCDEFGHJKLMNPQRTUWXY` and a check character.
///
/// Lowercase letters are accepted (uppercased before checking); the caller should store the uppercase form.
/// A well-formed code whose check character does not match is **not** an error but
/// [`CreditCodeCheck::CheckMismatch`], because some pilot-era codes are legal yet fail the check: warn,
/// do not reject. Characters 3–8 (the registering authority's division code) are not checked.
pub fn check_credit_code(input: &str) -> Result<CreditCodeCheck, CreditCodeError> {
    let len = input.chars().count();
    if len != 18 {
        return Err(CreditCodeError::Length { len });
    }
    let mut values = [0u32; 18];
    for ((index, ch), slot) in input.chars().enumerate().zip(values.iter_mut()) {
        *slot = credit_value(ch).ok_or(CreditCodeError::InvalidCharacter { position: index + 1, ch })?;
    }
    let [body @ .., last] = values;
    let expected = credit_check_of_values(&body);
    let found = CREDIT_ALPHABET.get(last as usize).map(|&c| char::from(c)).unwrap_or('?');
    if found == expected { Ok(CreditCodeCheck::Valid) } else { Ok(CreditCodeCheck::CheckMismatch { expected }) }
}

// ---------------------------------------------------------------------------------------------------------
// Administrative division codes, GB/T 2260: one definition, in the coordinator (the federation's hierarchy
// is built from it), used here for validation.
// ---------------------------------------------------------------------------------------------------------

pub use ecovol_coordinator::region::{DivisionCode, DivisionCodeError, DivisionLevel};

// ---------------------------------------------------------------------------------------------------------
// Mobile numbers
// ---------------------------------------------------------------------------------------------------------

/// Why a string is not a mainland mobile number (DOMAIN.md, "Identifiers": 11 digits starting with 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MobileError {
    /// Not 11 characters long.
    #[error("mobile number must be 11 digits, got {len} characters")]
    Length {
        /// Length of the input in characters.
        len: usize,
    },
    /// A character that is not an ASCII digit.
    #[error("mobile number must be 11 ASCII digits")]
    NotDigits,
    /// The first digit is not 1.
    #[error("mainland mobile numbers start with 1, got '{found}'")]
    Prefix {
        /// The first digit found.
        found: char,
    },
}

/// Checks a mainland mobile number: exactly 11 ASCII digits starting with 1 (DOMAIN.md, "Identifiers").
///
/// No `+86` prefix, spaces or dashes: callers normalise before checking.
pub fn check_mobile(input: &str) -> Result<(), MobileError> {
    let len = input.chars().count();
    if len != 11 {
        return Err(MobileError::Length { len });
    }
    let bytes = input.as_bytes();
    if bytes.len() != 11 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(MobileError::NotDigits);
    }
    match bytes.first() {
        Some(b'1') => Ok(()),
        Some(&other) => Err(MobileError::Prefix { found: char::from(other) }),
        None => Err(MobileError::Length { len: 0 }),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Age and consent of minors
// ---------------------------------------------------------------------------------------------------------

/// Whole years of age on `on` for someone born on `birth` (周岁, the unit of the age thresholds of Civil Code art. 17–19).
///
/// The age goes up on the anniversary of the birth date. For someone born on 29 February the anniversary in
/// a non-leap year is 1 March (the common legal rule): on 28 February they are still the younger age.
/// Returns 0 if `on` is before `birth`.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> u32 {
    if on <= birth {
        return 0;
    }
    let mut years = on.year() - birth.year();
    // Comparing (month, day) makes a 29 Feb birthday fall due on 1 Mar in non-leap years.
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

/// Consent needed before a volunteer of a given age may be registered
/// (Regulations on Volunteer Service 2017; PIPL art. 28 and 31; Civil Code art. 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentRequirement {
    /// No consent beyond the volunteer's own: 18 or older, or 16–17 and living on their own income
    /// (Civil Code art. 18 para. 2: counted as adults).
    None,
    /// 14–17 (not self-supporting): a guardian's consent, or a guardian present
    /// (Regulations on Volunteer Service 2017; DOMAIN.md "Minors").
    Guardian,
    /// Under 14: personal information of a child under 14 is sensitive (PIPL art. 28) and processing it
    /// needs the consent of a parent or other guardian (PIPL art. 31).
    Parent,
}

/// The consent a volunteer of `age` whole years needs (Regulations on Volunteer Service 2017;
/// PIPL art. 28/31; Civil Code art. 18).
///
/// `self_supporting` (living mainly on one's own labour income) matters only at 16 and 17, where it makes the
/// volunteer count as an adult (Civil Code art. 18).
pub fn consent_requirement(age: u32, self_supporting: bool) -> ConsentRequirement {
    match age {
        18.. => ConsentRequirement::None,
        16..=17 if self_supporting => ConsentRequirement::None,
        14..=17 => ConsentRequirement::Guardian,
        _ => ConsentRequirement::Parent,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// The day the identity-number tests treat as today.
    fn today() -> NaiveDate {
        date(2025, 6, 15)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("test date")
    }

    /// Appends the computed GB 11643 check character to 17 digits.
    fn with_check(first17: &str) -> String {
        let check = identity_check_char(first17).expect("17 digits");
        format!("{first17}{check}")
    }

    mod identity {
        use super::*;

        fn check(input: &str, expected: Result<&str, IdentityNumberError>) {
            let got = IdentityNumber::parse(input, today());
            match (&got, &expected) {
                (Ok(id), Ok(text)) => assert_eq!(id.as_str(), *text, "input {input:?}"),
                (Err(e), Err(want)) => assert_eq!(e, want, "input {input:?}"),
                _ => panic!("input {input:?}: got {got:?}, expected {expected:?}"),
            }
        }

        #[test]
        fn table() {
            use IdentityNumberError as E;
            let feb30 = with_check("33010619900230001");
            let future = with_check("33010620250616001");
            let born_today = with_check("33010620250615001");
            let earliest = with_check("33010619000101001");
            let too_early = with_check("33010618991231001");
            let month13 = with_check("33010619901301001");
            let year0 = with_check("33010600000101001");
            let cases: Vec<(&str, Result<&str, E>)> = vec![
                ("11010519491231002X", Ok("11010519491231002X")),
                ("440308199901101512", Ok("440308199901101512")),
                ("810000199408230021", Ok("810000199408230021")),
                ("11010519491231002x", Ok("11010519491231002X")),
                (&born_today, Ok(&born_today)),
                (&earliest, Ok(&earliest)),
                ("15000019970319128X", Err(E::CheckDigit { expected: '2', found: 'X' })),
                ("440308199901101513", Err(E::CheckDigit { expected: '2', found: '3' })),
                ("", Err(E::Length { len: 0 })),
                ("11010519491231002", Err(E::Length { len: 17 })),
                ("11010519491231002X0", Err(E::Length { len: 19 })),
                (" 11010519491231002X", Err(E::Length { len: 19 })),
                ("11010519491231002A", Err(E::NotDigits)),
                ("1101051949123100XX", Err(E::NotDigits)),
                ("A1010519491231002X", Err(E::NotDigits)),
                ("11010519491231002Ｘ", Err(E::NotDigits)),
                ("一一010519491231002X", Err(E::NotDigits)),
                ("11010519491231002-", Err(E::NotDigits)),
                (&feb30, Err(E::InvalidBirthDate)),
                (&month13, Err(E::InvalidBirthDate)),
                (&future, Err(E::BirthDateInFuture)),
                (&too_early, Err(E::BirthDateTooEarly)),
                (&year0, Err(E::BirthDateTooEarly)),
            ];
            for (input, expected) in cases {
                check(input, expected);
            }
        }

        #[test]
        fn derived_fields() {
            let cases = [
                ("11010519491231002X", "110105", date(1949, 12, 31), Gender::Female, false),
                ("440308199901101512", "440308", date(1999, 1, 10), Gender::Male, false),
                ("810000199408230021", "810000", date(1994, 8, 23), Gender::Female, true),
            ];
            for (input, address, birth, gender, permit) in cases {
                let id = IdentityNumber::parse(input, today()).expect(input);
                assert_eq!(id.address_code(), address, "{input}");
                assert_eq!(id.birth_date(), birth, "{input}");
                assert_eq!(id.gender(), gender, "{input}");
                assert_eq!(id.is_residence_permit(), permit, "{input}");
            }
            for code in ["820000", "830000"] {
                let id = IdentityNumber::parse(&with_check(&format!("{code}19900101003")), today()).expect(code);
                assert!(id.is_residence_permit(), "{code}");
                assert_eq!(id.gender(), Gender::Male, "{code}");
            }
        }

        #[test]
        fn check_char_of_known_numbers() {
            assert_eq!(identity_check_char("11010519491231002"), Some('X'));
            assert_eq!(identity_check_char("44030819990110151"), Some('2'));
            assert_eq!(identity_check_char("81000019940823002"), Some('1'));
            assert_eq!(identity_check_char("15000019970319128"), Some('2'));
            assert_eq!(identity_check_char("1100"), None);
            assert_eq!(identity_check_char("1101051949123100a"), None);
            assert_eq!(identity_check_char("11010519491231002X"), None);
        }

        #[test]
        fn debug_masks_the_number() {
            let id = IdentityNumber::parse("11010519491231002X", today()).expect("valid");
            let shown = format!("{id:?}");
            assert!(shown.contains("110105"), "{shown}");
            assert!(!shown.contains("19491231"), "{shown}");
        }

        #[test]
        fn messages() {
            assert_eq!(IdentityNumberError::Length { len: 17 }.to_string(), "must be 18 characters, got 17");
            assert_eq!(
                IdentityNumberError::CheckDigit { expected: '5', found: 'X' }.to_string(),
                "check character is 'X' but the GB 11643 checksum gives '5'"
            );
        }
    }

    mod credit {
        use super::*;

        fn check(input: &str, expected: Result<CreditCodeCheck, CreditCodeError>) {
            assert_eq!(check_credit_code(input), expected, "input {input:?}");
        }

        #[test]
        fn table() {
            use CreditCodeCheck::{CheckMismatch, Valid};
            use CreditCodeError as E;
            let valid_a = format!("91330106MA2AB3CD4{}", credit_check_char("91330106MA2AB3CD4").expect("alphabet"));
            let valid_civil = format!("51330106500000123{}", credit_check_char("51330106500000123").expect("alphabet"));
            let lower = valid_a.to_lowercase();
            let cases: Vec<(&str, Result<CreditCodeCheck, E>)> = vec![
                // Published codes whose check characters the algorithm reproduces.
                ("91350100M000100Y43", Ok(Valid)),
                ("91110000600037341L", Ok(Valid)),
                ("91440300708461136T", Ok(Valid)),
                (&valid_a, Ok(Valid)),
                (&valid_civil, Ok(Valid)),
                (&lower, Ok(Valid)),
                ("91350100m000100y43", Ok(Valid)),
                ("91350100M000100Y44", Ok(CheckMismatch { expected: '3' })),
                ("91110000600037341M", Ok(CheckMismatch { expected: 'L' })),
                ("", Err(E::Length { len: 0 })),
                ("91350100M000100Y4", Err(E::Length { len: 17 })),
                ("91350100M000100Y433", Err(E::Length { len: 19 })),
                ("91350100I000100Y43", Err(E::InvalidCharacter { position: 9, ch: 'I' })),
                ("91350100O000100Y43", Err(E::InvalidCharacter { position: 9, ch: 'O' })),
                ("91350100Z000100Y43", Err(E::InvalidCharacter { position: 9, ch: 'Z' })),
                ("91350100S000100Y43", Err(E::InvalidCharacter { position: 9, ch: 'S' })),
                ("V1350100M000100Y43", Err(E::InvalidCharacter { position: 1, ch: 'V' })),
                ("91350100M000100Y4v", Err(E::InvalidCharacter { position: 18, ch: 'v' })),
                ("91350100M000100Y4-", Err(E::InvalidCharacter { position: 18, ch: '-' })),
                ("9135010０M000100Y43", Err(E::InvalidCharacter { position: 8, ch: '０' })),
            ];
            for (input, expected) in cases {
                check(input, expected);
            }
        }

        #[test]
        fn check_char() {
            assert_eq!(credit_check_char("91350100M000100Y4"), Some('3'));
            assert_eq!(credit_check_char("91350100m000100y4"), Some('3'));
            assert_eq!(credit_check_char("91110000600037341"), Some('L'));
            assert_eq!(credit_check_char("91350100M000100Y"), None);
            assert_eq!(credit_check_char("91350100M000100Y43"), None);
            assert_eq!(credit_check_char("91350100I000100Y4"), None);
            assert_eq!(credit_check_char("中中中中中中中中中中中中中中中中中"), None);
        }

        #[test]
        fn messages() {
            assert_eq!(
                CreditCodeError::InvalidCharacter { position: 9, ch: 'I' }.to_string(),
                "character 9 is 'I', which is not in the GB 32100 alphabet (no I, O, Z, S or V)"
            );
        }
    }

    mod mobile {
        use super::*;

        fn check(input: &str, expected: Result<(), MobileError>) {
            assert_eq!(check_mobile(input), expected, "input {input:?}");
        }

        #[test]
        fn table() {
            use MobileError as E;
            let cases: Vec<(&str, Result<(), E>)> = vec![
                ("13800138000", Ok(())),
                ("19912345678", Ok(())),
                ("23800138000", Err(E::Prefix { found: '2' })),
                ("03800138000", Err(E::Prefix { found: '0' })),
                ("1380013800", Err(E::Length { len: 10 })),
                ("138001380000", Err(E::Length { len: 12 })),
                ("", Err(E::Length { len: 0 })),
                ("+8613800138000", Err(E::Length { len: 14 })),
                ("1380013800a", Err(E::NotDigits)),
                ("138 0013800", Err(E::NotDigits)),
                ("1380013800１", Err(E::NotDigits)),
            ];
            for (input, expected) in cases {
                check(input, expected);
            }
        }
    }

    mod age {
        use super::*;

        fn check(birth: NaiveDate, on: NaiveDate, expected: u32) {
            assert_eq!(age_on(birth, on), expected, "born {birth}, on {on}");
        }

        #[test]
        fn table() {
            let cases = [
                (date(2000, 6, 15), date(2018, 6, 14), 17),
                (date(2000, 6, 15), date(2018, 6, 15), 18),
                (date(2000, 6, 15), date(2018, 6, 16), 18),
                (date(2000, 1, 1), date(2000, 1, 1), 0),
                (date(2000, 1, 1), date(1999, 12, 31), 0),
                (date(2000, 12, 31), date(2001, 12, 30), 0),
                (date(2000, 12, 31), date(2001, 12, 31), 1),
                // 29 February: the anniversary in a non-leap year is 1 March.
                (date(2008, 2, 29), date(2026, 2, 28), 17),
                (date(2008, 2, 29), date(2026, 3, 1), 18),
                (date(2008, 2, 29), date(2028, 2, 28), 19),
                (date(2008, 2, 29), date(2028, 2, 29), 20),
                (date(2008, 2, 29), date(2009, 2, 28), 0),
                (date(2008, 2, 29), date(2009, 3, 1), 1),
                // Born 28 Feb or 1 Mar: unaffected by leap years.
                (date(2007, 2, 28), date(2008, 2, 28), 1),
                (date(2007, 3, 1), date(2008, 2, 29), 0),
                (date(1900, 1, 1), date(2025, 6, 15), 125),
            ];
            for (birth, on, expected) in cases {
                check(birth, on, expected);
            }
        }
    }

    mod consent {
        use super::*;

        fn check(age: u32, self_supporting: bool, expected: ConsentRequirement) {
            assert_eq!(
                consent_requirement(age, self_supporting),
                expected,
                "age {age}, self-supporting {self_supporting}"
            );
        }

        #[test]
        fn table() {
            use ConsentRequirement::{Guardian, None, Parent};
            let cases = [
                (0, false, Parent),
                (13, false, Parent),
                (13, true, Parent),
                (14, false, Guardian),
                (14, true, Guardian),
                (15, false, Guardian),
                (15, true, Guardian),
                (16, false, Guardian),
                (16, true, None),
                (17, false, Guardian),
                (17, true, None),
                (18, false, None),
                (18, true, None),
                (70, false, None),
                (u32::MAX, false, None),
            ];
            for (age, self_supporting, expected) in cases {
                check(age, self_supporting, expected);
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A valid identity number: any address digits, a birth date from 1900-01-01 to today, any sequence.
        fn valid_identity() -> impl Strategy<Value = String> {
            let days = (today() - date(1900, 1, 1)).num_days();
            ("[0-9]{6}", 0..=days, "[0-9]{3}").prop_map(|(address, offset, sequence)| {
                let birth = date(1900, 1, 1) + chrono::Duration::days(offset);
                with_check(&format!("{address}{}{sequence}", birth.format("%Y%m%d")))
            })
        }

        /// 17 characters of the GB 32100 alphabet.
        fn credit_body() -> impl Strategy<Value = String> {
            "[0-9ABCDEFGHJKLMNPQRTUWXY]{17}"
        }

        proptest! {
            #[test]
            fn valid_identity_numbers_parse(number in valid_identity()) {
                let id = IdentityNumber::parse(&number, today());
                prop_assert!(id.is_ok(), "{number}: {id:?}");
                let id = id.expect("checked");
                prop_assert_eq!(id.as_str(), number.as_str());
                let birth = NaiveDate::parse_from_str(&number[6..14], "%Y%m%d").expect("date");
                prop_assert_eq!(id.birth_date(), birth);
                let odd = (number.as_bytes()[16] - b'0') % 2 == 1;
                prop_assert_eq!(id.gender() == Gender::Male, odd);
            }

            #[test]
            fn any_single_substitution_fails(
                number in valid_identity(),
                position in 0usize..18,
                replacement in prop::sample::select(b"0123456789X".to_vec()),
            ) {
                let mut bytes = number.into_bytes();
                let original = bytes[position];
                prop_assume!(original != replacement);
                prop_assume!(position == 17 || replacement != b'X');
                bytes[position] = replacement;
                let changed = String::from_utf8(bytes).expect("ascii");
                let result = IdentityNumber::parse(&changed, today());
                prop_assert!(result.is_err(), "{changed} parsed");
            }

            #[test]
            fn identity_never_panics(input in ".*") {
                let _ = IdentityNumber::parse(&input, today());
                let _ = identity_check_char(&input);
            }

            #[test]
            fn identity_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
                let input = String::from_utf8_lossy(&bytes);
                let _ = IdentityNumber::parse(&input, today());
                let _ = identity_check_char(&input);
            }

            #[test]
            fn identity_never_panics_near_shape(input in "[0-9xX\u{ff10}-\u{ff19}]{16,19}") {
                let _ = IdentityNumber::parse(&input, today());
            }

            #[test]
            fn computed_credit_codes_are_valid(body in credit_body()) {
                let check = credit_check_char(&body).expect("alphabet");
                let code = format!("{body}{check}");
                prop_assert_eq!(check_credit_code(&code), Ok(CreditCodeCheck::Valid));
                prop_assert_eq!(check_credit_code(&code.to_lowercase()), Ok(CreditCodeCheck::Valid));
            }

            #[test]
            fn credit_single_substitution_mismatches(
                body in credit_body(),
                position in 0usize..18,
                replacement in prop::sample::select(CREDIT_ALPHABET.to_vec()),
            ) {
                let check = credit_check_char(&body).expect("alphabet");
                let mut bytes = format!("{body}{check}").into_bytes();
                prop_assume!(bytes[position] != replacement);
                bytes[position] = replacement;
                let changed = String::from_utf8(bytes).expect("ascii");
                let result = check_credit_code(&changed);
                prop_assert!(
                    matches!(result, Ok(CreditCodeCheck::CheckMismatch { .. })),
                    "{changed}: {result:?}"
                );
            }

            #[test]
            fn credit_never_panics(input in ".*") {
                let _ = check_credit_code(&input);
                let _ = credit_check_char(&input);
            }

            #[test]
            fn credit_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
                let input = String::from_utf8_lossy(&bytes);
                let _ = check_credit_code(&input);
                let _ = credit_check_char(&input);
            }

            #[test]
            fn mobile_never_panics(input in ".*") {
                let _ = check_mobile(&input);
            }

            #[test]
            fn mobile_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..20)) {
                let input = String::from_utf8_lossy(&bytes);
                let _ = check_mobile(&input);
            }

            #[test]
            fn age_never_panics(a in -100_000i32..100_000, b in -100_000i32..100_000) {
                let base = date(2000, 1, 1);
                let _ = age_on(base + chrono::Duration::days(i64::from(a)), base + chrono::Duration::days(i64::from(b)));
            }
        }
    }
}
