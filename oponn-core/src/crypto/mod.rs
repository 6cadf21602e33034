//! Envelope encryption: per-ballot data keys and the text they seal.
//!
//! Each ballot has its own random 256-bit data key. Its measure and option
//! labels are sealed under it with XChaCha20-Poly1305; the associated data
//! names the ballot and the field, so a ciphertext copied to another ballot
//! or another field fails to open. The data key itself is stored only
//! wrapped by a [`KeyWrapper`](crate::ports::KeyWrapper).

mod cache;

use std::fmt;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub use cache::{BallotCache, KeyCache};

use crate::domain::{BallotId, InvitationHash, OptionId};

/// Nonce length of XChaCha20-Poly1305: long enough to pick at random.
const NONCE_LEN: usize = 24;

/// Fills `buf` from the operating system's random source: ids, keys,
/// tokens, and the web layer's CSRF secrets and masks.
pub fn fill_random(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// A 256-bit XChaCha20-Poly1305 key: a ballot's data key, or a local
/// key-encryption key. Zeroed when dropped; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey([u8; 32]);

impl SymmetricKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        Self(bytes)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from a slice that must hold exactly 32 bytes.
    ///
    /// # Errors
    /// [`OpenError`] when the slice has any other length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, OpenError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| OpenError)?;
        Ok(Self(bytes))
    }

    /// The key's bytes, for a key wrapper to wrap.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Seals `plaintext` under this key, bound to `aad`, with a random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Sealed {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 seals any input under 256 GiB"));
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Sealed(bytes)
    }

    /// Opens `sealed`, which must have been sealed under this key with `aad`.
    ///
    /// # Errors
    /// [`OpenError`] when the key or the associated data differ, or any
    /// byte of the ciphertext was changed.
    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let bytes = sealed.as_bytes();
        if bytes.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError)
    }

    /// Seals one field of `ballot`.
    pub fn seal_field(&self, ballot: &BallotId, field: SealedField, plaintext: &str) -> Sealed {
        self.seal(&field.associated_data(ballot), plaintext.as_bytes())
    }

    /// Opens one field of `ballot` as text.
    ///
    /// # Errors
    /// [`OpenError`] when the ciphertext belongs to another ballot, another
    /// field or another key, was altered, or is not UTF-8.
    pub fn open_field(
        &self,
        ballot: &BallotId,
        field: SealedField,
        sealed: &Sealed,
    ) -> Result<String, OpenError> {
        let plaintext = self.open(&field.associated_data(ballot), sealed)?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| OpenError)
    }

    /// The key under which `ballot`'s labels are compared without decrypting
    /// them; see [`LabelKey`].
    pub fn label_key(&self, ballot: &BallotId, comparison_key: &str) -> LabelKey {
        // A separate sub-key, so the data key itself is only ever used by the AEAD.
        let mut subkey = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(ballot.as_bytes()), &self.0)
            .expand(b"oponn/v1/label-key", subkey.as_mut())
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(subkey.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(comparison_key.as_bytes());
        LabelKey(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

/// Which field of a ballot a ciphertext holds; part of its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedField {
    /// The measure.
    Measure,
    /// The label of one option.
    OptionLabel(OptionId),
    /// The owner's label of one voter link, bound to the link's token
    /// hash (the row's own key), so it cannot be moved to another link.
    InvitationLabel(InvitationHash),
}

impl SealedField {
    fn associated_data(self, ballot: &BallotId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(48);
        aad.extend_from_slice(b"oponn/v1/ballot\0");
        aad.extend_from_slice(ballot.as_bytes());
        match self {
            SealedField::Measure => aad.extend_from_slice(b"\0measure"),
            SealedField::OptionLabel(id) => {
                aad.extend_from_slice(b"\0option\0");
                aad.extend_from_slice(&id.get().to_be_bytes());
            }
            SealedField::InvitationLabel(hash) => {
                aad.extend_from_slice(b"\0invitation\0");
                aad.extend_from_slice(hash.as_bytes());
            }
        }
        aad
    }
}

/// A nonce followed by a ciphertext and its tag: what storage holds.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Wraps bytes read back from storage.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// A keyed hash of an option label's comparison key.
///
/// It lets storage find "the option equal to this write-in" and enforce
/// uniqueness without holding plaintext. It is keyed by the ballot's data
/// key, so it is as unreadable as the labels once the key is destroyed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LabelKey([u8; 32]);

impl LabelKey {
    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a label key from stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for LabelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LabelKey(..)")
    }
}

/// A data key as a [`KeyWrapper`](crate::ports::KeyWrapper) wrapped it:
/// opaque bytes only that wrapper can unwrap.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(Vec<u8>);

impl WrappedKey {
    /// Wraps bytes a key wrapper produced or storage returned.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey({} bytes)", self.0.len())
    }
}

/// A ciphertext that did not open: wrong key, wrong place, or tampered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ciphertext did not authenticate")]
pub struct OpenError;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_field_round_trips() {
        let key = SymmetricKey::generate();
        let ballot = BallotId::generate();
        let sealed = key.seal_field(&ballot, SealedField::Measure, "lunch?");
        assert_eq!(
            key.open_field(&ballot, SealedField::Measure, &sealed)
                .unwrap(),
            "lunch?"
        );
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let key = SymmetricKey::generate();
        let ballot = BallotId::generate();
        assert_ne!(
            key.seal_field(&ballot, SealedField::Measure, "same"),
            key.seal_field(&ballot, SealedField::Measure, "same")
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_ballot_or_field_fails() {
        let key = SymmetricKey::generate();
        let (ballot, other) = (BallotId::generate(), BallotId::generate());
        let option = SealedField::OptionLabel(OptionId::new(1));
        let sealed = key.seal_field(&ballot, option, "pizza");
        assert_eq!(key.open_field(&other, option, &sealed), Err(OpenError));
        assert_eq!(
            key.open_field(&ballot, SealedField::Measure, &sealed),
            Err(OpenError)
        );
        assert_eq!(
            key.open_field(&ballot, SealedField::OptionLabel(OptionId::new(2)), &sealed),
            Err(OpenError)
        );
        assert_eq!(
            SymmetricKey::generate().open_field(&ballot, option, &sealed),
            Err(OpenError)
        );
    }

    #[test]
    fn truncated_ciphertext_fails_without_panicking() {
        let key = SymmetricKey::generate();
        for len in [0, 5, NONCE_LEN, NONCE_LEN + 15] {
            assert_eq!(
                key.open(b"", &Sealed::from_bytes(vec![0; len])),
                Err(OpenError)
            );
        }
    }

    #[test]
    fn label_keys_are_per_ballot_and_per_data_key() {
        let key = SymmetricKey::generate();
        let (a, b) = (BallotId::generate(), BallotId::generate());
        assert_eq!(key.label_key(&a, "pizza"), key.label_key(&a, "pizza"));
        assert_ne!(key.label_key(&a, "pizza"), key.label_key(&b, "pizza"));
        assert_ne!(key.label_key(&a, "pizza"), key.label_key(&a, "pasta"));
        assert_ne!(
            key.label_key(&a, "pizza"),
            SymmetricKey::generate().label_key(&a, "pizza")
        );
    }

    proptest! {
        #[test]
        fn any_flipped_byte_fails_to_open(
            text in "\\PC{0,80}",
            position in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = SymmetricKey::generate();
            let ballot = BallotId::generate();
            let sealed = key.seal_field(&ballot, SealedField::Measure, &text);
            let mut bytes = sealed.as_bytes().to_vec();
            let at = position.index(bytes.len());
            bytes[at] ^= 1 << bit;
            let tampered = Sealed::from_bytes(bytes);
            prop_assert_eq!(key.open_field(&ballot, SealedField::Measure, &tampered), Err(OpenError));
            prop_assert_eq!(key.open_field(&ballot, SealedField::Measure, &sealed).unwrap(), text);
        }
    }
}
