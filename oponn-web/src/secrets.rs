//! The service secret and the keys derived from it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use oponn_core::crypto::SymmetricKey;
use sha2::Sha256;

/// Shortest `OPONN_SECRET_KEY` accepted, in bytes.
const MIN_SECRET_LEN: usize = 32;

/// File name of the generated secret in the data directory.
pub const SECRET_FILE: &str = "oponn.secret";

/// Independent keys for each use of the one configured secret, so that no
/// two mechanisms ever share key material.
pub struct Secrets {
    /// Signs cookies (the voter id, the guest owner id).
    pub cookie_key: [u8; 64],
    /// Seals CSRF tokens.
    pub csrf_key: [u8; 32],
    /// Keys voter hashes; must match across instances.
    pub voter_hash_key: [u8; 32],
}

impl Secrets {
    /// Derives the keys from `secret` with HKDF-SHA256.
    ///
    /// # Errors
    /// [`SecretError::TooShort`] for secrets under 32 bytes.
    pub fn derive(secret: &str) -> Result<Self, SecretError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort);
        }
        let hkdf = Hkdf::<Sha256>::new(Some(b"oponn/v1/secrets"), secret.as_bytes());
        let mut secrets = Self {
            cookie_key: [0; 64],
            csrf_key: [0; 32],
            voter_hash_key: [0; 32],
        };
        for (info, out) in [
            (&b"cookie"[..], &mut secrets.cookie_key[..]),
            (b"csrf", &mut secrets.csrf_key[..]),
            (b"voter-hash", &mut secrets.voter_hash_key[..]),
        ] {
            hkdf.expand(info, out)
                .unwrap_or_else(|_| unreachable!("64 bytes is a valid HKDF-SHA256 output"));
        }
        Ok(secrets)
    }

    /// The secret in `data_dir/oponn.secret`, generated (mode 0600) on first use.
    ///
    /// # Errors
    /// [`SecretError::File`] when the file cannot be read or written.
    pub fn from_data_dir(data_dir: &Path) -> Result<(Self, PathBuf), SecretError> {
        let path = data_dir.join(SECRET_FILE);
        let file_error = |source| SecretError::File {
            path: path.clone(),
            source,
        };
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match created {
            Ok(mut file) => {
                let secret = format!(
                    "{}{}",
                    hex(SymmetricKey::generate().expose_bytes()),
                    hex(SymmetricKey::generate().expose_bytes())
                );
                writeln!(file, "{secret}")
                    .and_then(|()| file.sync_all())
                    .map_err(file_error)?;
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(file_error(error)),
        }
        let secret = fs::read_to_string(&path).map_err(file_error)?;
        Ok((Self::derive(secret.trim())?, path))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the service secret cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The configured secret is too short to be safe.
    #[error("OPONN_SECRET_KEY must be at least {MIN_SECRET_LEN} bytes (try: openssl rand -hex 32)")]
    TooShort,
    /// The generated secret's file cannot be used.
    #[error("secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn derived_keys_are_distinct_and_stable() {
        let a = Secrets::derive(&"s".repeat(32)).unwrap();
        let b = Secrets::derive(&"s".repeat(32)).unwrap();
        assert_eq!(a.csrf_key, b.csrf_key);
        assert_ne!(a.csrf_key, a.voter_hash_key);
        assert_ne!(a.cookie_key[..32], a.csrf_key);
        assert!(matches!(
            Secrets::derive("short"),
            Err(SecretError::TooShort)
        ));
    }

    #[test]
    fn a_generated_secret_is_kept_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, path) = Secrets::from_data_dir(dir.path()).unwrap();
        let (second, _) = Secrets::from_data_dir(dir.path()).unwrap();
        assert_eq!(first.voter_hash_key, second.voter_hash_key);
        let mode = fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
