//! A key wrapper whose key-encryption key lives in AWS KMS (or a
//! KMS-compatible endpoint such as moto or LocalStack).
//!
//! # The envelope
//!
//! Each ballot's 256-bit data key is sent to KMS `Encrypt` under the
//! configured KMS key; the ciphertext blob KMS returns, behind a one-byte
//! format tag ([`FORMAT_KMS_V1`]), is the [`WrappedKey`] storage keeps.
//! Unwrapping sends that blob to KMS `Decrypt`, naming the same KMS key, and
//! takes back exactly 32 bytes. The key-encryption key never leaves KMS, so
//! the database alone (or a backup of it) reads nothing.
//!
//! # Binding to the ballot
//!
//! Both calls carry the encryption context `{"oponn_ballot": <ballot id>}`.
//! KMS authenticates it with the ciphertext, so a wrapped key copied to
//! another ballot's row fails to decrypt there, and CloudTrail records which
//! ballot each decryption was for.
//!
//! # Errors
//!
//! Failures are told apart by the SDK's typed errors, never by message text:
//!
//! - **[`KeyWrapError::Rejected`]**, the blob is not this wrapper's for this
//!   ballot:
//!   - `Decrypt` answers `InvalidCiphertextException` (altered bytes,
//!     another ballot's context) or `IncorrectKeyException` (wrapped under
//!     another KMS key);
//!   - `Decrypt` answers `ValidationException` (a malformed blob) or
//!     `AccessDeniedException` (a ciphertext naming a KMS key this caller
//!     cannot use, which is how KMS-compatible servers answer a blob from
//!     another key). These two are not in `Decrypt`'s model, so they are
//!     matched on their error code, as the SDK recommends. On AWS an IAM
//!     policy denying `kms:Decrypt` also answers `AccessDeniedException`:
//!     `Rejected` is logged with its code and must never be a reason to
//!     destroy data;
//!   - without calling KMS: a blob without our format tag, empty, or longer
//!     than any KMS ciphertext;
//!   - a plaintext that is not exactly 32 bytes.
//! - **[`KeyWrapError::Unavailable`]**, holding as its source the typed
//!   service error, or the SDK's `SdkError` when KMS never answered:
//!   everything else, on every operation: no connection, timeouts,
//!   throttling after retries, 5xx, `KMSInternalException`,
//!   `DependencyTimeoutException`, `KeyUnavailableException`, a disabled,
//!   missing or pending-deletion key (`DisabledException`,
//!   `NotFoundException`, `KMSInvalidStateException`), and any error of
//!   `Encrypt` or `DescribeKey`, which have no "not yours" case.
//!
//! # Timeouts
//!
//! [`KmsKeyWrapper::connect`] gives the client a [`CONNECT_TIMEOUT`], an
//! [`ATTEMPT_TIMEOUT`] per try and an [`OPERATION_TIMEOUT`] over all the
//! SDK's retries, so an unreachable or silent KMS turns into `Unavailable`
//! within seconds instead of holding a request open. A client passed to
//! [`KmsKeyWrapper::new`] keeps whatever timeouts its owner gave it.
//!
//! # Plaintext hygiene
//!
//! Key bytes are never logged (the SDK redacts `Plaintext` in its `Debug`
//! output too). The plaintext `Decrypt` returns is overwritten once copied
//! into the [`SymmetricKey`], which zeroes itself when dropped. The copies
//! the SDK makes while encoding the request and decoding the response are
//! out of our reach.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeyState;
use oponn_core::crypto::{SymmetricKey, WrappedKey};
use oponn_core::domain::BallotId;
use oponn_core::ports::{KeyWrapError, KeyWrapper};

/// First byte of every wrapped key this wrapper makes: distinct from the
/// local key file's `1`, so a store holding both can tell them apart.
pub const FORMAT_KMS_V1: u8 = 2;

/// The encryption-context key whose value is the ballot id.
pub const ENCRYPTION_CONTEXT_KEY: &str = "oponn_ballot";

/// How long [`KmsKeyWrapper::connect`]'s client waits for a TCP (and TLS)
/// connection to KMS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one try of a KMS call may take before the SDK retries it.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a KMS call may take in all, retries included, before it counts
/// as [`KeyWrapError::Unavailable`].
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest ciphertext blob KMS accepts; anything longer is not one.
const MAX_CIPHERTEXT_LEN: usize = 6144;

/// Where [`KmsKeyWrapper::connect`] finds KMS, and which key it uses.
///
/// Credentials come from the SDK's standard chain (environment variables,
/// shared profile, web identity, container or instance metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsSettings {
    /// The key-encryption key: a key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    /// The AWS region; `None` resolves it from the environment or profile.
    pub region: Option<String>,
    /// A KMS-compatible endpoint URL (moto, LocalStack), replacing AWS's
    /// own; `None` uses the region's KMS endpoint.
    pub endpoint: Option<String>,
}

/// Wraps data keys with AWS KMS `Encrypt`/`Decrypt` under one KMS key, the
/// ballot id as encryption context.
///
/// For production: the key-encryption key never leaves KMS, every unwrap is
/// an audited KMS call, and disabling or scheduling deletion of the KMS key
/// shreds every ballot at once.
#[derive(Debug, Clone)]
pub struct KmsKeyWrapper {
    /// Cheap to clone: it shares one connection pool.
    client: aws_sdk_kms::Client,
    /// Named on every call, `Decrypt` included, so KMS refuses a blob
    /// wrapped under any other key instead of using that key.
    key_id: String,
}

impl KmsKeyWrapper {
    /// A wrapper using `client` as its owner configured it (region,
    /// endpoint, credentials, timeouts) and the KMS key `key_id`.
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }

    /// A wrapper whose client is configured from the environment the way
    /// every AWS SDK is, with `settings` on top and this module's timeouts.
    ///
    /// Does not contact KMS: call [`KeyWrapper::ping`] to check the key.
    /// When neither `settings` nor the environment name a region, loading
    /// asks the instance metadata service for one.
    pub async fn connect(settings: &KmsSettings) -> Self {
        Self::connect_with(settings, aws_config::defaults(BehaviorVersion::latest())).await
    }

    /// Like [`KmsKeyWrapper::connect`], from a `loader` the caller has
    /// already adjusted (explicit credentials, a profile name, an HTTP
    /// client). The region and endpoint of `settings`, when given, and this
    /// module's timeouts replace the loader's.
    pub async fn connect_with(settings: &KmsSettings, loader: aws_config::ConfigLoader) -> Self {
        let mut loader = loader.timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        Self::new(aws_sdk_kms::Client::new(&config), settings.key_id.clone())
    }

    /// The KMS key this wrapper names on every call.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

#[async_trait]
impl KeyWrapper for KmsKeyWrapper {
    async fn wrap_key(
        &self,
        ballot: &BallotId,
        key: &SymmetricKey,
    ) -> Result<WrappedKey, KeyWrapError> {
        let output = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(key.expose_bytes().as_slice()))
            .encryption_context(ENCRYPTION_CONTEXT_KEY, ballot.to_string())
            .send()
            .await
            .map_err(unavailable)?;
        let ciphertext: &[u8] = output
            .ciphertext_blob()
            .ok_or_else(|| unexpected(UnexpectedAnswer::NoCiphertext))?
            .as_ref();
        let mut bytes = Vec::with_capacity(1 + ciphertext.len());
        bytes.push(FORMAT_KMS_V1);
        bytes.extend_from_slice(ciphertext);
        Ok(WrappedKey::from_bytes(bytes))
    }

    async fn unwrap_key(
        &self,
        ballot: &BallotId,
        wrapped: &WrappedKey,
    ) -> Result<SymmetricKey, KeyWrapError> {
        let ciphertext = match wrapped.as_bytes().split_first() {
            Some((&FORMAT_KMS_V1, blob)) if (1..=MAX_CIPHERTEXT_LEN).contains(&blob.len()) => blob,
            _ => return Err(KeyWrapError::Rejected),
        };
        let output = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_context(ENCRYPTION_CONTEXT_KEY, ballot.to_string())
            .send()
            .await
            .map_err(|error| unwrap_failure(ballot, error))?;
        let plaintext = WipeOnDrop(
            output
                .plaintext
                .ok_or_else(|| unexpected(UnexpectedAnswer::NoPlaintext))?
                .into_inner(),
        );
        // Our key and this ballot's context, yet not a data key: not ours.
        SymmetricKey::from_slice(&plaintext.0).map_err(|_| KeyWrapError::Rejected)
    }

    async fn ping(&self) -> Result<(), KeyWrapError> {
        let output = self
            .client
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(unavailable)?;
        match output.key_metadata() {
            Some(metadata) if metadata.enabled() => Ok(()),
            Some(metadata) => Err(unexpected(UnexpectedAnswer::KeyNotEnabled {
                key_id: self.key_id.clone(),
                state: metadata
                    .key_state()
                    .map(KeyState::as_str)
                    .map(str::to_owned),
            })),
            None => Err(unexpected(UnexpectedAnswer::NoKeyMetadata)),
        }
    }
}

/// Maps a failed `Decrypt`: see the module docs for which errors reject
/// the blob and which leave the key service unavailable.
fn unwrap_failure<R>(ballot: &BallotId, error: SdkError<DecryptError, R>) -> KeyWrapError
where
    R: fmt::Debug + Send + Sync + 'static,
{
    let error = match error {
        SdkError::ServiceError(service) => service.into_err(),
        not_an_answer => return KeyWrapError::Unavailable(Box::new(not_an_answer)),
    };
    let rejected = match &error {
        DecryptError::InvalidCiphertextException(_) | DecryptError::IncorrectKeyException(_) => {
            true
        }
        // Not in Decrypt's model, so only their codes tell them apart.
        other => matches!(
            other.code(),
            Some("AccessDeniedException" | "ValidationException")
        ),
    };
    if rejected {
        // Tampering, a row copied between ballots, or (for access denied)
        // an IAM policy: the code tells an operator which.
        tracing::warn!(
            ballot = %ballot,
            code = error.code().unwrap_or("unknown"),
            "KMS refused to unwrap a ballot's data key"
        );
        KeyWrapError::Rejected
    } else {
        KeyWrapError::Unavailable(Box::new(error))
    }
}

/// Any failed call whose failure cannot mean "not your blob".
fn unavailable<E, R>(error: SdkError<E, R>) -> KeyWrapError
where
    E: StdError + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    match error {
        // The typed service error, without the raw HTTP response.
        SdkError::ServiceError(service) => KeyWrapError::Unavailable(Box::new(service.into_err())),
        not_an_answer => KeyWrapError::Unavailable(Box::new(not_an_answer)),
    }
}

fn unexpected(answer: UnexpectedAnswer) -> KeyWrapError {
    KeyWrapError::Unavailable(Box::new(answer))
}

/// A KMS answer that succeeded but cannot be used.
#[derive(Debug, thiserror::Error)]
enum UnexpectedAnswer {
    #[error("KMS Encrypt answered without a ciphertext blob")]
    NoCiphertext,
    #[error("KMS Decrypt answered without a plaintext")]
    NoPlaintext,
    #[error("KMS DescribeKey answered without key metadata")]
    NoKeyMetadata,
    #[error("KMS key {key_id} is not enabled (state: {})", state.as_deref().unwrap_or("unknown"))]
    KeyNotEnabled {
        key_id: String,
        state: Option<String>,
    },
}

/// Plaintext key bytes from KMS, overwritten with zeros when dropped.
struct WipeOnDrop(Vec<u8>);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        self.0.fill(0);
        // An opaque use, so the compiler cannot drop the writes as dead.
        std::hint::black_box(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_kms::types::error::{
        DependencyTimeoutException, DisabledException, IncorrectKeyException,
        InvalidCiphertextException, KeyUnavailableException, KmsInternalException,
        KmsInvalidStateException, NotFoundException,
    };

    use super::*;

    /// `Decrypt` answering `error`, as the SDK hands it over.
    fn answered(error: DecryptError) -> SdkError<DecryptError, ()> {
        SdkError::service_error(error, ())
    }

    fn unmodelled(code: &str) -> DecryptError {
        DecryptError::generic(ErrorMetadata::builder().code(code).build())
    }

    fn is_rejected(error: SdkError<DecryptError, ()>) -> bool {
        match unwrap_failure(&BallotId::generate(), error) {
            KeyWrapError::Rejected => true,
            KeyWrapError::Unavailable(_) => false,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn blobs_that_are_not_ours_are_rejected() {
        for error in [
            DecryptError::InvalidCiphertextException(InvalidCiphertextException::builder().build()),
            DecryptError::IncorrectKeyException(IncorrectKeyException::builder().build()),
            unmodelled("AccessDeniedException"),
            unmodelled("ValidationException"),
        ] {
            let shown = format!("{error:?}");
            assert!(is_rejected(answered(error)), "{shown}");
        }
    }

    #[test]
    fn outages_and_key_trouble_are_unavailable() {
        for error in [
            DecryptError::KmsInternalException(KmsInternalException::builder().build()),
            DecryptError::DependencyTimeoutException(DependencyTimeoutException::builder().build()),
            DecryptError::KeyUnavailableException(KeyUnavailableException::builder().build()),
            DecryptError::DisabledException(DisabledException::builder().build()),
            DecryptError::KmsInvalidStateException(KmsInvalidStateException::builder().build()),
            DecryptError::NotFoundException(NotFoundException::builder().build()),
            unmodelled("ThrottlingException"),
            unmodelled("InternalFailure"),
        ] {
            let shown = format!("{error:?}");
            assert!(!is_rejected(answered(error)), "{shown}");
        }
    }

    #[test]
    fn failures_without_an_answer_are_unavailable() {
        assert!(!is_rejected(SdkError::timeout_error("operation timed out")));
        assert!(!is_rejected(SdkError::dispatch_failure(
            ConnectorError::io("connection refused".into())
        )));
    }
}
