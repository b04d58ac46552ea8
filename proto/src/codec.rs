//! The gRPC codec of every ecovol service: tonic-prost's `ProstCodec`, except that a body prost cannot decode is
//! answered `InvalidArgument`, not `Internal`.
//!
//! tonic's codec maps every `prost::DecodeError` to `Internal`, as the gRPC status-code guide suggests for a
//! peer that speaks broken protobuf. For a node that is the wrong signal: invalid UTF-8 in a string field, a
//! message cut short or nested past prost's recursion limit is the caller's fault, and `Internal` sends an
//! operator looking for a bug in the node (docs/BAD_INPUT.md). `proto/build.rs` names this codec with
//! `codec_path`, so clients and servers of every service use it. A client that receives an undecodable
//! answer sees `InvalidArgument` too; the message says what could not be decoded.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::ProstEncoder;
use tonic_types::{ErrorDetails, StatusExt};

/// `ProstCodec` with decode errors answered `InvalidArgument` (see the module documentation).
#[derive(Debug, Clone)]
pub struct EcovolCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for EcovolCodec<T, U> {
    fn default() -> Self {
        Self { _types: PhantomData }
    }
}

impl<T, U> Codec for EcovolCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = EcovolDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        EcovolDecoder { _type: PhantomData }
    }
}

/// Decodes `U` with prost; a failure is `InvalidArgument` naming the field prost was reading, if any.
#[derive(Debug, Clone)]
pub struct EcovolDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for EcovolDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| undecodable(&error))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The answer to a body prost could not decode: `InvalidArgument`, the message prost's path and reason, and a
/// `google.rpc.BadRequest` field violation when prost was inside a field (`name`, `rows.end_time`).
fn undecodable(error: &prost::DecodeError) -> Status {
    let (field, description) = field_and_description(&error.to_string());
    let message = format!("cannot decode the message: {}", prost_detail(&error.to_string()));
    match field {
        Some(field) => Status::with_error_details(
            Code::InvalidArgument,
            message,
            ErrorDetails::with_bad_request_violation(field, description),
        ),
        None => Status::invalid_argument(message),
    }
}

/// prost's text after its fixed prefix: `RegisterVolunteerRequest.name: invalid string value: …`.
fn prost_detail(text: &str) -> &str {
    text.strip_prefix("failed to decode Protobuf message: ").unwrap_or(text)
}

/// Splits prost's text into the field path (outermost first, proto field names) and the reason.
///
/// prost's `DecodeError` does not expose its stack, only its `Display`: the prefix, then one `Message.field: `
/// per level from the innermost out, then the reason (which may itself contain `: `).
fn field_and_description(text: &str) -> (Option<String>, String) {
    let mut rest = prost_detail(text);
    let mut fields_innermost_first = Vec::new();
    while let Some((segment, after)) = rest.split_once(": ") {
        let Some((message, field)) = segment.split_once('.') else { break };
        let is_identifier =
            |part: &str| !part.is_empty() && part.chars().all(|char| char.is_ascii_alphanumeric() || char == '_');
        if !(is_identifier(message) && is_identifier(field)) {
            break;
        }
        fields_innermost_first.push(field);
        rest = after;
    }
    if fields_innermost_first.is_empty() {
        return (None, rest.to_string());
    }
    fields_innermost_first.reverse();
    (Some(fields_innermost_first.join(".")), rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected_field: Option<&str>, expected_description: &str) {
        let (field, description) = field_and_description(text);
        assert_eq!((field.as_deref(), description.as_str()), (expected_field, expected_description), "{text}");
    }

    #[test]
    fn prost_texts_split_into_field_and_reason() {
        check(
            "failed to decode Protobuf message: RegisterVolunteerRequest.name: invalid string value: data is not UTF-8 encoded",
            Some("name"),
            "invalid string value: data is not UTF-8 encoded",
        );
        check(
            "failed to decode Protobuf message: Row.end_time: RecordServiceBulkRequest.rows: buffer underflow",
            Some("rows.end_time"),
            "buffer underflow",
        );
        check("failed to decode Protobuf message: recursion limit reached", None, "recursion limit reached");
        check("failed to decode Protobuf message: invalid wire type value: 7", None, "invalid wire type value: 7");
    }

    #[test]
    fn invalid_utf8_in_a_string_field_is_invalid_argument_naming_the_field() {
        // Field 1 (a string), length 1, a lone 0xFF byte.
        let error = prost_types::Duration::decode(&[0x08, 0x01][..]).err();
        assert!(error.is_none(), "a valid Duration decodes");
        let error = prost_types::Api::decode(&[0x0A, 0x01, 0xFF][..]).unwrap_err();
        let status = undecodable(&error);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with("cannot decode the message: Api.name: invalid string value"),
            "{status:?}"
        );
        let violations =
            status.get_error_details().bad_request().map(|bad| bad.field_violations.clone()).unwrap_or_default();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "name");
    }

    #[test]
    fn a_message_cut_short_is_invalid_argument() {
        let error = prost_types::Api::decode(&[0x0A, 0x05, b'a'][..]).unwrap_err();
        assert_eq!(undecodable(&error).code(), Code::InvalidArgument);
    }
}
