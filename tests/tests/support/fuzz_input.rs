//! Bad-input generation for the fuzz tests: well-formed-on-the-wire but hostile protobuf messages of any
//! `ecovol.v1` type, built from the file descriptor set, so every request type is covered without a generator
//! per type, and a new field or message is fuzzed the day it is added.
//!
//! A message is generated from a seed: the same seed gives the same bytes (`tests/fuzz-corpus` keeps inputs as
//! bytes, failures print the seed). Values come from palettes of trouble: strings with control characters,
//! NUL, bidi overrides, emoji, 100 000 characters, near-valid identifiers; numbers at every integer edge,
//! NaN and infinities; timestamps in year 1 and year 9999 and beyond; repeated fields empty or with thousands of
//! elements; singular fields sent twice (duplicate keys: the last wins); unknown fields; and, when asked,
//! invalid UTF-8 in string fields.
//!
//! Shared by the test binaries `fuzz` and `bad_input_grpc` (`#[path]` module); each uses a part of it.

#![allow(dead_code)]

use std::collections::HashMap;

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One gRPC method of the wire contract.
#[derive(Debug, Clone)]
pub struct Method {
    /// `/ecovol.v1.VolunteerService/RegisterVolunteer`.
    pub path: String,
    /// Fully qualified input type, `.ecovol.v1.RegisterVolunteerRequest`.
    pub input_type: String,
    /// Client or server streaming (the unary fuzz calls skip these).
    pub streaming: bool,
}

/// The message types and methods of `ecovol.v1`, read from the proto crate's file descriptor set.
pub struct Schema {
    messages: HashMap<String, DescriptorProto>,
    methods: Vec<Method>,
}

impl Schema {
    pub fn ecovol() -> Schema {
        let set =
            FileDescriptorSet::decode(ecovol_proto::FILE_DESCRIPTOR_SET).expect("the proto crate's descriptor set");
        let mut messages = HashMap::new();
        let mut methods = Vec::new();
        for file in &set.file {
            let package = file.package();
            for message in &file.message_type {
                collect_messages(&format!(".{package}"), message, &mut messages);
            }
            for service in &file.service {
                for method in &service.method {
                    methods.push(Method {
                        path: format!("/{package}.{}/{}", service.name(), method.name()),
                        input_type: method.input_type().to_string(),
                        streaming: method.client_streaming() || method.server_streaming(),
                    });
                }
            }
        }
        Schema { messages, methods }
    }

    /// Every method of every service, in descriptor order.
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    /// The descriptor of a fully qualified message type (`.ecovol.v1.X`).
    pub fn message(&self, full_name: &str) -> Option<&DescriptorProto> {
        self.messages.get(full_name)
    }

    /// The proto field names of a message, for checking that a field violation names a real field.
    pub fn field_names(&self, full_name: &str) -> Vec<String> {
        self.message(full_name).map(|m| m.field.iter().map(|f| f.name().to_string()).collect()).unwrap_or_default()
    }
}

fn collect_messages(scope: &str, message: &DescriptorProto, out: &mut HashMap<String, DescriptorProto>) {
    let name = format!("{scope}.{}", message.name());
    for nested in &message.nested_type {
        collect_messages(&name, nested, out);
    }
    out.insert(name, message.clone());
}

/// The fully qualified proto name of a generated prost type (`ecovol_proto::v1::GetTeamRequest` →
/// `.ecovol.v1.GetTeamRequest`); request types are not nested, so the last path segment is the message name.
pub fn proto_name_of<M>() -> String {
    let rust = std::any::type_name::<M>();
    format!(".ecovol.v1.{}", rust.rsplit("::").next().unwrap_or(rust))
}

/// What the generator may produce.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Soft cap on the encoded size of one message; long strings and big repeated fields stop growing at it.
    pub bytes_max: usize,
    /// Put invalid UTF-8 into some string fields (prost refuses to decode those).
    pub invalid_utf8: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { bytes_max: 256 << 10, invalid_utf8: false }
    }
}

/// Builds hostile messages from a seed.
pub struct Generator<'a> {
    schema: &'a Schema,
    rng: StdRng,
    limits: Limits,
    /// Bytes written so far into the current message (for `Limits::bytes_max`).
    written: usize,
    /// Whether the last message contains invalid UTF-8 somewhere.
    pub wrote_invalid_utf8: bool,
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const START_GROUP: u64 = 3;
const END_GROUP: u64 = 4;
const FIXED32: u64 = 5;

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u64) {
    put_varint(out, (u64::from(field) << 3) | wire_type);
}

pub fn put_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, LENGTH_DELIMITED);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `depth` nested start-group markers of an unknown field (number 999): the deepest nesting a message can carry,
/// since no `ecovol.v1` message nests itself.
pub fn nested_unknown_groups(depth: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..depth {
        put_key(&mut out, 999, START_GROUP);
    }
    for _ in 0..depth {
        put_key(&mut out, 999, END_GROUP);
    }
    out
}

/// Strings that have broken parsers before, or that sit on the edge of a rule.
const NASTY_STRINGS: &[&str] = &[
    "",
    " ",
    "\t\n",
    "\u{3000}",
    "a\u{7}b",
    "\0",
    "a\0b",
    "\u{1b}[31mred\u{1b}[0m",
    "\u{202e}fdp.exe",
    "\u{feff}",
    "e\u{301}\u{301}\u{301}",
    "\u{fffd}",
    "🌿🙂👩‍👩‍👧‍👦",
    "西湖区志愿者",
    "𠀀𪚥",
    "../../etc/passwd",
    "' OR 1=1 --",
    "%s%n%x",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "NaN",
    "-1",
    "1e309",
    "18446744073709551616",
    "0x7fffffff",
    "true",
    "null",
    "330106",
    "330100",
    "330000",
    "000000",
    "999999",
    "429004",
    "33010",
    "3301066",
    "11010519491231002X",
    "11010519491231002x",
    "440308199901101512",
    "810000199408230021",
    "15000019970319128X",
    "330106600101001",
    "１１０１０５１９４９１２３１００２Ｘ",
    "91350100M000100Y43",
    "51330106MJ1234567X",
    "91350100m000100y43",
    "9135010OM000100Y43",
    "13900000001",
    "139000000011",
    "+8613900000001",
    "2024-02-29",
    "2023-02-29",
    "0000-01-01",
    "9999-12-31",
    "-001-01-01",
    "2024-13-01",
    "2024-6-5",
    "20240605",
    "2024-06-05T09:00:00+08:00",
    "+275760-09-13T00:00:00Z",
    "V330106-000001",
    "330106-V000001",
    "330106-C2026000001",
    "AAAA",
    "%%%",
    "____",
    "STATUS_ACTIVE",
];

impl<'a> Generator<'a> {
    pub fn new(schema: &'a Schema, seed: u64, limits: Limits) -> Self {
        Generator { schema, rng: StdRng::seed_from_u64(seed), limits, written: 0, wrote_invalid_utf8: false }
    }

    /// A hostile but wire-valid encoding of the message type `full_name` (`.ecovol.v1.X`).
    pub fn message(&mut self, full_name: &str) -> Vec<u8> {
        self.written = 0;
        self.wrote_invalid_utf8 = false;
        let mut out = Vec::new();
        self.fill(full_name, 0, &mut out);
        out
    }

    /// The message, then damaged at the byte level: bytes flipped, cut short, or spliced with random bytes.
    pub fn mutated_message(&mut self, full_name: &str) -> Vec<u8> {
        let mut bytes = self.message(full_name);
        match self.rng.random_range(0..4) {
            0 if !bytes.is_empty() => {
                for _ in 0..self.rng.random_range(1..4) {
                    let at = self.rng.random_range(0..bytes.len());
                    bytes[at] ^= 1 << self.rng.random_range(0..8);
                }
            }
            1 if !bytes.is_empty() => {
                let keep = self.rng.random_range(0..bytes.len());
                bytes.truncate(keep);
            }
            2 => {
                let at = if bytes.is_empty() { 0 } else { self.rng.random_range(0..bytes.len()) };
                let noise: Vec<u8> = (0..self.rng.random_range(1..32)).map(|_| self.rng.random()).collect();
                bytes.splice(at..at, noise);
            }
            _ => {
                let extra = self.rng.random_range(0..64);
                bytes.extend((0..extra).map(|_| self.rng.random::<u8>()));
            }
        }
        bytes
    }

    /// Uniformly random bytes, up to `length_max` of them.
    pub fn raw_bytes(&mut self, length_max: usize) -> Vec<u8> {
        let length = self.rng.random_range(0..=length_max);
        (0..length).map(|_| self.rng.random()).collect()
    }

    fn budget_left(&self) -> usize {
        self.limits.bytes_max.saturating_sub(self.written)
    }

    fn fill(&mut self, full_name: &str, depth: usize, out: &mut Vec<u8>) {
        if full_name == ".google.protobuf.Timestamp" {
            self.timestamp(out);
            return;
        }
        let Some(message) = self.schema.message(full_name).cloned() else { return };
        for field in &message.field {
            // About one field in five is left out: absent and default must both be handled.
            if self.rng.random_bool(0.2) {
                continue;
            }
            let repeated = field.label() == Label::Repeated;
            let count = if repeated {
                self.repeat_count()
            } else if self.rng.random_bool(0.05) {
                2 // a duplicate key: on the wire the last value wins
            } else {
                1
            };
            if repeated && is_packable(field) && count > 0 && self.rng.random_bool(0.5) {
                let mut packed = Vec::new();
                for _ in 0..count {
                    if self.budget_left() < 16 {
                        break;
                    }
                    self.scalar(field, &mut packed);
                }
                put_key(out, field.number() as u32, LENGTH_DELIMITED);
                put_varint(out, packed.len() as u64);
                out.extend_from_slice(&packed);
                continue;
            }
            for _ in 0..count {
                if self.budget_left() < 16 {
                    break;
                }
                let before = out.len();
                self.field(field, depth, out);
                self.written += out.len() - before;
            }
        }
        // Unknown fields, which a newer client might send: they must be skipped, not refused or kept.
        if self.rng.random_bool(0.1) {
            put_key(out, 1000 + self.rng.random_range(0..100), VARINT);
            put_varint(out, self.rng.random());
            put_bytes_field(out, 2047, b"unknown");
        }
    }

    fn repeat_count(&mut self) -> usize {
        match self.rng.random_range(0..20) {
            0..=5 => 0,
            6..=15 => self.rng.random_range(1..4),
            16..=18 => self.rng.random_range(4..300),
            _ => self.rng.random_range(1000..20_000),
        }
    }

    fn field(&mut self, field: &FieldDescriptorProto, depth: usize, out: &mut Vec<u8>) {
        let number = field.number() as u32;
        match field.r#type() {
            Type::Message | Type::Group => {
                let mut inner = Vec::new();
                if depth < 6 {
                    self.fill(field.type_name(), depth + 1, &mut inner);
                }
                put_bytes_field(out, number, &inner);
            }
            Type::String => {
                let text = self.string_bytes();
                put_bytes_field(out, number, &text);
            }
            Type::Bytes => {
                let bytes = self.raw_bytes(64);
                put_bytes_field(out, number, &bytes);
            }
            _ => {
                let wire_type = match field.r#type() {
                    Type::Double | Type::Fixed64 | Type::Sfixed64 => FIXED64,
                    Type::Float | Type::Fixed32 | Type::Sfixed32 => FIXED32,
                    _ => VARINT,
                };
                put_key(out, number, wire_type);
                self.scalar(field, out);
            }
        }
    }

    /// One scalar value, without its key (packed or not).
    fn scalar(&mut self, field: &FieldDescriptorProto, out: &mut Vec<u8>) {
        match field.r#type() {
            Type::Double => {
                let value = self.double();
                out.extend_from_slice(&value.to_le_bytes());
            }
            Type::Float => {
                let value = self.double() as f32;
                out.extend_from_slice(&value.to_le_bytes());
            }
            Type::Fixed64 | Type::Sfixed64 => out.extend_from_slice(&self.integer().to_le_bytes()),
            Type::Fixed32 | Type::Sfixed32 => out.extend_from_slice(&(self.integer() as u32).to_le_bytes()),
            Type::Bool => put_varint(
                out,
                if self.rng.random_bool(0.1) { self.rng.random_range(2..300) } else { self.rng.random_range(0..2) },
            ),
            Type::Enum => {
                let value: i64 = match self.rng.random_range(0..10) {
                    0..=5 => self.rng.random_range(0..8),
                    6 => -1,
                    7 => i64::from(i32::MAX),
                    8 => i64::from(i32::MIN),
                    _ => self.rng.random_range(-100..100),
                };
                put_varint(out, value as u64);
            }
            Type::Sint32 | Type::Sint64 => {
                let value = self.integer() as i64;
                put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
            }
            _ => put_varint(out, self.integer()),
        }
    }

    /// An integer at an edge or anywhere; negative values are sign-extended like protobuf int32/int64.
    fn integer(&mut self) -> u64 {
        let value: i64 = match self.rng.random_range(0..16) {
            0 => 0,
            1 => 1,
            2 => -1,
            3 => i64::from(i32::MAX),
            4 => i64::from(i32::MIN),
            5 => i64::MAX,
            6 => i64::MIN,
            7 => return u64::MAX,
            8 => i64::from(u32::MAX),
            9 => self.rng.random_range(-1000..0),
            10 => self.rng.random(),
            11 => 253_402_300_800, // 10000-01-01 in Unix seconds
            12 => -62_135_596_801, // before 0001-01-01
            _ => self.rng.random_range(0..10_000),
        };
        value as u64
    }

    fn double(&mut self) -> f64 {
        match self.rng.random_range(0..12) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -0.0,
            4 => f64::MAX,
            5 => f64::MIN_POSITIVE,
            6 => 5e-324,
            7 => 91.0,
            8 => -181.0,
            9 => self.rng.random_range(-90.0..90.0),
            10 => f64::from_bits(self.rng.random()),
            _ => self.rng.random_range(-1e6..1e6),
        }
    }

    fn timestamp(&mut self, out: &mut Vec<u8>) {
        let seconds: i64 = match self.rng.random_range(0..10) {
            0 => 0,
            1 => -62_135_596_800, // 0001-01-01
            2 => 253_402_300_799, // 9999-12-31T23:59:59
            3 => i64::MAX,
            4 => i64::MIN,
            5 => 4_102_444_800,  // 2100-01-01
            6 => -2_208_988_800, // 1900-01-01
            7 => self.rng.random(),
            _ => 1_700_000_000 + self.rng.random_range(-100_000_000..100_000_000),
        };
        let nanos: i64 = match self.rng.random_range(0..8) {
            0 => -1,
            1 => 1_000_000_000,
            2 => i64::from(i32::MIN),
            3 => 999_999_999,
            _ => 0,
        };
        if self.rng.random_bool(0.9) {
            put_key(out, 1, VARINT);
            put_varint(out, seconds as u64);
        }
        if self.rng.random_bool(0.5) {
            put_key(out, 2, VARINT);
            put_varint(out, nanos as u64);
        }
    }

    /// The bytes of a string field: mostly valid UTF-8 from the palettes, sometimes huge, and, if allowed,
    /// sometimes not UTF-8 at all.
    fn string_bytes(&mut self) -> Vec<u8> {
        if self.limits.invalid_utf8 && self.rng.random_bool(0.03) {
            self.wrote_invalid_utf8 = true;
            let mut bytes = b"ab".to_vec();
            bytes.extend_from_slice(match self.rng.random_range(0..4) {
                0 => &[0xff][..],
                1 => &[0xc3][..],                   // a two-byte sequence cut short
                2 => &[0xed, 0xa0, 0x80][..],       // an encoded surrogate
                _ => &[0xf4, 0x90, 0x80, 0x80][..], // above U+10FFFF
            });
            return bytes;
        }
        match self.rng.random_range(0..10) {
            0..=4 => NASTY_STRINGS[self.rng.random_range(0..NASTY_STRINGS.len())].as_bytes().to_vec(),
            5 | 6 => {
                let length = self.rng.random_range(0..40);
                self.random_text(length).into_bytes()
            }
            7 => {
                // A long run: just over a limit, or far over it.
                let length = [51, 101, 201, 501, 1001, 4097, 10_001, 100_001][self.rng.random_range(0..8)];
                let unit = ["x", "名", "🌿", "\u{7}"][self.rng.random_range(0..4)];
                let fits = self.budget_left() / unit.len().max(1) / 2;
                unit.repeat(length.min(fits)).into_bytes()
            }
            8 => {
                // A near-valid value with one character changed or added.
                let base = NASTY_STRINGS[self.rng.random_range(0..NASTY_STRINGS.len())];
                let mut chars: Vec<char> = base.chars().collect();
                let replacement = self.random_char();
                if chars.is_empty() || self.rng.random_bool(0.3) {
                    let at = self.rng.random_range(0..=chars.len());
                    chars.insert(at, replacement);
                } else {
                    let at = self.rng.random_range(0..chars.len());
                    chars[at] = replacement;
                }
                chars.into_iter().collect::<String>().into_bytes()
            }
            _ => {
                // A valid-looking identity number with a random birth date and correct check character.
                let first17 = format!(
                    "{:06}{:04}{:02}{:02}{:03}",
                    self.rng.random_range(0..1_000_000),
                    self.rng.random_range(1800..2200),
                    self.rng.random_range(0..14),
                    self.rng.random_range(0..33),
                    self.rng.random_range(0..1000)
                );
                let check = ecovol_node::validate::identity_check_char(&first17).unwrap_or('0');
                format!("{first17}{check}").into_bytes()
            }
        }
    }

    fn random_char(&mut self) -> char {
        match self.rng.random_range(0..6) {
            0 => char::from(self.rng.random_range(0u8..0x20)),
            1 => char::from(self.rng.random_range(0x20u8..0x7f)),
            2 => char::from_u32(self.rng.random_range(0x4e00..0x9fff)).unwrap_or('名'),
            3 => ['\u{200b}', '\u{202e}', '\u{fe0f}', '\u{301}', '\u{2028}', '\u{85}'][self.rng.random_range(0..6)],
            4 => char::from(self.rng.random_range(b'0'..=b'9')),
            _ => char::from_u32(self.rng.random_range(0..0x11_0000)).unwrap_or('\u{fffd}'),
        }
    }

    fn random_text(&mut self, length: usize) -> String {
        (0..length).map(|_| self.random_char()).collect()
    }
}

/// Scalar types protobuf may pack when repeated.
fn is_packable(field: &FieldDescriptorProto) -> bool {
    !matches!(field.r#type(), Type::String | Type::Bytes | Type::Message | Type::Group)
}
