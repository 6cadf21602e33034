//! The [`KeyWrapper`] contract.

use std::sync::Arc;

use oponn_core::crypto::{SymmetricKey, WrappedKey};
use oponn_core::domain::BallotId;
use oponn_core::ports::{KeyWrapError, KeyWrapper};

fn assert_rejected(result: Result<SymmetricKey, KeyWrapError>) {
    match result {
        Err(KeyWrapError::Rejected) => {}
        Err(other) => panic!("expected Rejected, got {other:?}"),
        Ok(_) => panic!("expected Rejected, but the key unwrapped"),
    }
}

/// Wrapping then unwrapping gives back the same key.
pub async fn wrapped_key_unwraps_to_the_same_key(wrapper: Arc<dyn KeyWrapper>) {
    let ballot = BallotId::generate();
    let key = SymmetricKey::generate();
    let wrapped = wrapper.wrap_key(&ballot, &key).await.unwrap();
    let unwrapped = wrapper.unwrap_key(&ballot, &wrapped).await.unwrap();
    assert_eq!(unwrapped.expose_bytes(), key.expose_bytes());
}

/// The wrapped form does not contain the key's bytes.
pub async fn wrapped_key_is_not_the_key(wrapper: Arc<dyn KeyWrapper>) {
    let key = SymmetricKey::generate();
    let wrapped = wrapper.wrap_key(&BallotId::generate(), &key).await.unwrap();
    let leaked = wrapped
        .as_bytes()
        .windows(32)
        .any(|window| window == key.expose_bytes());
    assert!(!leaked, "the wrapped key holds the plaintext key");
}

/// A key wrapped for one ballot does not unwrap for another.
pub async fn key_wrapped_for_one_ballot_does_not_unwrap_for_another(wrapper: Arc<dyn KeyWrapper>) {
    let wrapped = wrapper
        .wrap_key(&BallotId::generate(), &SymmetricKey::generate())
        .await
        .unwrap();
    assert_rejected(wrapper.unwrap_key(&BallotId::generate(), &wrapped).await);
}

/// Changing any byte of a wrapped key makes it unusable.
pub async fn altered_wrapped_key_is_rejected(wrapper: Arc<dyn KeyWrapper>) {
    let ballot = BallotId::generate();
    let wrapped = wrapper
        .wrap_key(&ballot, &SymmetricKey::generate())
        .await
        .unwrap();
    let bytes = wrapped.as_bytes();
    // Every byte of a short blob; a spread of positions of a long one.
    let step = (bytes.len() / 64).max(1);
    for position in (0..bytes.len()).step_by(step) {
        let mut altered = bytes.to_vec();
        altered[position] ^= 0x01;
        assert_rejected(
            wrapper
                .unwrap_key(&ballot, &WrappedKey::from_bytes(altered))
                .await,
        );
    }
}

/// Empty or random bytes are rejected, not a panic or an outage.
pub async fn garbage_is_rejected(wrapper: Arc<dyn KeyWrapper>) {
    let ballot = BallotId::generate();
    for garbage in [Vec::new(), vec![0], vec![0xff; 100]] {
        assert_rejected(
            wrapper
                .unwrap_key(&ballot, &WrappedKey::from_bytes(garbage))
                .await,
        );
    }
}
