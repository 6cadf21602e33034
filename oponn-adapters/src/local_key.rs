//! A key wrapper whose key-encryption key is 32 bytes in a local file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use oponn_core::crypto::{SymmetricKey, WrappedKey};
use oponn_core::domain::BallotId;
use oponn_core::ports::{KeyWrapError, KeyWrapper};

/// First byte of every wrapped key, so a future format can sit beside this one.
const FORMAT_V1: u8 = 1;

/// Wraps data keys with XChaCha20-Poly1305 under a local 256-bit
/// key-encryption key, the ballot id as associated data.
///
/// For development and the embedded default. Whoever reads the key file and
/// the database together can read every ballot; production uses KMS.
pub struct LocalKeyWrapper {
    key_encryption_key: SymmetricKey,
}

impl LocalKeyWrapper {
    /// A wrapper around a key-encryption key held by the caller.
    pub fn new(key_encryption_key: SymmetricKey) -> Self {
        Self { key_encryption_key }
    }

    /// Loads the key file at `path`, or creates one with a fresh random key
    /// (readable by its owner only, mode 0600) when there is none.
    ///
    /// # Errors
    /// [`KeyFileError`] when the file cannot be read or created, or does not
    /// hold a key.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyFileError> {
        let path = path.as_ref();
        match read_key_file(path) {
            Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                create_key_file(path).map(Self::new)
            }
            other => other.map(Self::new),
        }
    }

    fn associated_data(ballot: &BallotId) -> Vec<u8> {
        let mut aad = b"oponn/v1/data-key\0".to_vec();
        aad.extend_from_slice(ballot.as_bytes());
        aad
    }
}

#[async_trait]
impl KeyWrapper for LocalKeyWrapper {
    async fn wrap_key(
        &self,
        ballot: &BallotId,
        key: &SymmetricKey,
    ) -> Result<WrappedKey, KeyWrapError> {
        let sealed = self
            .key_encryption_key
            .seal(&Self::associated_data(ballot), key.expose_bytes());
        let mut bytes = Vec::with_capacity(1 + sealed.as_bytes().len());
        bytes.push(FORMAT_V1);
        bytes.extend_from_slice(sealed.as_bytes());
        Ok(WrappedKey::from_bytes(bytes))
    }

    async fn unwrap_key(
        &self,
        ballot: &BallotId,
        wrapped: &WrappedKey,
    ) -> Result<SymmetricKey, KeyWrapError> {
        let Some((&FORMAT_V1, sealed)) = wrapped.as_bytes().split_first() else {
            return Err(KeyWrapError::Rejected);
        };
        let sealed = oponn_core::crypto::Sealed::from_bytes(sealed.to_vec());
        let plaintext = self
            .key_encryption_key
            .open(&Self::associated_data(ballot), &sealed)
            .map_err(|_| KeyWrapError::Rejected)?;
        SymmetricKey::from_slice(&plaintext).map_err(|_| KeyWrapError::Rejected)
    }
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The file exists but does not hold 64 hexadecimal digits.
    #[error("key file {path} does not hold a 256-bit key as 64 hexadecimal digits")]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
}

fn read_key_file(path: &Path) -> Result<SymmetricKey, KeyFileError> {
    let text = fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    let malformed = || KeyFileError::Malformed {
        path: path.to_owned(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| malformed())?;
    SymmetricKey::from_slice(&bytes).map_err(|_| malformed())
}

fn create_key_file(path: &Path) -> Result<SymmetricKey, KeyFileError> {
    let key = SymmetricKey::generate();
    let io_error = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    // create_new: if another process created it first, use theirs.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match file {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return read_key_file(path),
        Err(error) => return Err(io_error(error)),
    };
    writeln!(file, "{}", hex::encode(key.expose_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(io_error)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_missing_key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oponn.key");
        let first = LocalKeyWrapper::from_file(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = LocalKeyWrapper::from_file(&path).unwrap();
        assert_eq!(
            first.key_encryption_key.expose_bytes(),
            second.key_encryption_key.expose_bytes()
        );
    }

    #[test]
    fn a_malformed_key_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oponn.key");
        fs::write(&path, "not a key").unwrap();
        let error = LocalKeyWrapper::from_file(&path).err().unwrap();
        assert!(matches!(error, KeyFileError::Malformed { .. }));
        assert!(error.to_string().contains("oponn.key"));
    }
}
