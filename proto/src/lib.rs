//! The ecovol wire contract: the `ecovol.v1` protobuf messages and gRPC services, generated at build time.
//!
//! Hand-written domain types with validating conversions live in `ecovol-node`; this crate only carries the
//! generated code and the file descriptor set that the node serves over gRPC reflection.

pub mod codec;

/// Generated messages, clients and servers of package `ecovol.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ecovol.v1");
}

/// The encoded `FileDescriptorSet` of every `ecovol.v1` file (and its imports), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ecovol_descriptor.bin"));
