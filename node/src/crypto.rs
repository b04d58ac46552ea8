//! The node key and what it protects: identity and phone numbers encrypted at rest (AES-256-GCM), keyed hashes
//! (HMAC-SHA-256) for looking them up without plain text, and hashed bearer tokens.
//!
//! GB/T 35273 treats identity numbers as sensitive personal information: encrypt at rest, keep out of indexes.
//! The key file holds 32 random bytes as 64 hex characters; sub-keys for each purpose are derived with HKDF, so one
//! file serves all of them and no key is used for two purposes.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use ring::rand::SecureRandom as _;
use ring::{aead, digest, hkdf, hmac, rand};

/// What can go wrong with keys and sealed values.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("a sealed value could not be opened (wrong node key or corrupt record)")]
    Open,
}

/// Keys derived from the node key file.
pub struct NodeKeys {
    aead: aead::LessSafeKey,
    identity_lookup: hmac::Key,
    phone_lookup: hmac::Key,
    pseudonym: hmac::Key,
    random: rand::SystemRandom,
}

const KEY_BYTES: usize = 32;

impl NodeKeys {
    /// Loads the key file (64 hex characters).
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let fail = |message: String| CryptoError::KeyFile { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path)
            .map_err(|error| fail(format!("{error} (create one with `ecovol admin keygen {}`)", path.display())))?;
        let bytes = hex::decode(text.trim()).map_err(|_| fail("must hold 64 hex characters".into()))?;
        if bytes.len() != KEY_BYTES {
            return Err(fail(format!("must hold {KEY_BYTES} bytes (64 hex characters), got {}", bytes.len())));
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// Derives the keys from raw key material.
    pub fn from_bytes(key_material: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"ecovol node key v1").extract(key_material);
        let aead_key: aead::UnboundKey = prk
            .expand(&[b"pii-aead"], &aead::AES_256_GCM)
            .map(Into::into)
            .unwrap_or_else(|_| unreachable!("32-byte HKDF output is always available"));
        let identity_lookup: hmac::Key = prk
            .expand(&[b"identity-lookup"], hmac::HMAC_SHA256)
            .map(Into::into)
            .unwrap_or_else(|_| unreachable!("32-byte HKDF output is always available"));
        let phone_lookup: hmac::Key = prk
            .expand(&[b"phone-lookup"], hmac::HMAC_SHA256)
            .map(Into::into)
            .unwrap_or_else(|_| unreachable!("32-byte HKDF output is always available"));
        let pseudonym: hmac::Key = prk
            .expand(&[b"pseudonym"], hmac::HMAC_SHA256)
            .map(Into::into)
            .unwrap_or_else(|_| unreachable!("32-byte HKDF output is always available"));
        Self {
            aead: aead::LessSafeKey::new(aead_key),
            identity_lookup,
            phone_lookup,
            pseudonym,
            random: rand::SystemRandom::new(),
        }
    }

    /// Writes a new random key file readable by its owner only. Refuses to overwrite an existing file.
    pub fn generate_file(path: &Path) -> Result<(), CryptoError> {
        let fail = |message: String| CryptoError::KeyFile { path: path.display().to_string(), message };
        let mut bytes = [0u8; KEY_BYTES];
        rand::SystemRandom::new().fill(&mut bytes).map_err(|_| fail("no system randomness".into()))?;
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| fail(error.to_string()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|error| fail(error.to_string()))?;
        writeln!(file, "{}", hex::encode(bytes)).map_err(|error| fail(error.to_string()))?;
        file.sync_all().map_err(|error| fail(error.to_string()))
    }

    /// Encrypts `plaintext`; `purpose` is bound as associated data so a sealed phone cannot pass as an identity
    /// number. Output: base64 of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, purpose: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; aead::NONCE_LEN];
        if self.random.fill(&mut nonce).is_err() {
            // The system RNG does not fail on Linux once seeded; never encrypt with a fixed nonce.
            panic!("system randomness unavailable");
        }
        let mut buffer = plaintext.as_bytes().to_vec();
        self.aead
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(purpose.as_bytes()),
                &mut buffer,
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM sealing of a small buffer cannot fail"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        STANDARD_NO_PAD.encode(out)
    }

    /// Decrypts a value made by `seal` with the same purpose.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<String, CryptoError> {
        let bytes = STANDARD_NO_PAD.decode(sealed).map_err(|_| CryptoError::Open)?;
        if bytes.len() < aead::NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, aead::Aad::from(purpose.as_bytes()), &mut buffer)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| CryptoError::Open)
    }

    /// Keyed hash of an identity number, for uniqueness and lookup (hex).
    pub fn identity_lookup_key(&self, identity_number: &str) -> String {
        hex::encode(hmac::sign(&self.identity_lookup, identity_number.as_bytes()))
    }

    /// A stable pseudonym for `value` in the context `purpose` (16 hex characters): the same value gives the same
    /// pseudonym, so entries can be linked, but it cannot be turned back without the node key.
    pub fn pseudonym(&self, purpose: &str, value: &str) -> String {
        let tag = hmac::sign(&self.pseudonym, format!("{purpose}\0{value}").as_bytes());
        hex::encode(&tag.as_ref()[..8])
    }

    /// Keyed hash of a phone number, for search by phone (hex).
    pub fn phone_lookup_key(&self, phone: &str) -> String {
        hex::encode(hmac::sign(&self.phone_lookup, phone.as_bytes()))
    }
}

/// A new random bearer token (`ecv_` + 43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    if rand::SystemRandom::new().fill(&mut bytes).is_err() {
        panic!("system randomness unavailable");
    }
    format!("ecv_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// How a token is stored: SHA-256 (hex). Tokens carry 256 random bits, so a fast hash suffices.
pub fn token_hash(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// SHA-256 (hex) of a DER certificate, to match client certificates to accounts.
pub fn certificate_sha256(der: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_purpose() {
        let keys = NodeKeys::from_bytes(&[7u8; 32]);
        let sealed = keys.seal("identity_number", "11010519491231002X");
        assert!(!sealed.contains("11010519491231002X"));
        assert_eq!(keys.open("identity_number", &sealed).unwrap(), "11010519491231002X");
        assert!(keys.open("phone", &sealed).is_err());
        assert!(NodeKeys::from_bytes(&[8u8; 32]).open("identity_number", &sealed).is_err());
        assert!(keys.open("identity_number", "not base64!").is_err());
        assert!(keys.open("identity_number", "AAAA").is_err());
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts_but_one_lookup_key() {
        let keys = NodeKeys::from_bytes(&[7u8; 32]);
        assert_ne!(keys.seal("p", "13800138000"), keys.seal("p", "13800138000"));
        assert_eq!(keys.phone_lookup_key("13800138000"), keys.phone_lookup_key("13800138000"));
        assert_ne!(keys.phone_lookup_key("13800138000"), keys.identity_lookup_key("13800138000"));
    }

    #[test]
    fn key_files_round_trip_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        NodeKeys::generate_file(&path).unwrap();
        assert!(NodeKeys::generate_file(&path).is_err());
        let first = NodeKeys::load(&path).unwrap();
        let second = NodeKeys::load(&path).unwrap();
        let sealed = first.seal("x", "secret");
        assert_eq!(second.open("x", &sealed).unwrap(), "secret");
        std::fs::write(&path, "abc").unwrap();
        assert!(NodeKeys::load(&path).is_err());
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("ecv_"));
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_eq!(token_hash(&a).len(), 64);
    }
}
