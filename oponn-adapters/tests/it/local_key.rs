//! The local key-file wrapper passes the key-wrapper contract.

use std::sync::Arc;

use oponn_adapters::local_key::LocalKeyWrapper;
use oponn_core::crypto::SymmetricKey;
use oponn_core::domain::BallotId;
use oponn_core::ports::{KeyWrapError, KeyWrapper};

async fn wrapper() -> Arc<dyn KeyWrapper> {
    Arc::new(LocalKeyWrapper::new(SymmetricKey::generate()))
}

mod key_wrapper_contract {
    oponn_testkit::key_wrapper_contract!(super::wrapper);
}

#[test]
fn a_key_file_survives_a_restart_and_another_key_cannot_unwrap() {
    oponn_testkit::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oponn.key");
        let ballot = BallotId::generate();
        let key = SymmetricKey::generate();
        let wrapped = LocalKeyWrapper::from_file(&path)
            .unwrap()
            .wrap_key(&ballot, &key)
            .await
            .unwrap();
        let reopened = LocalKeyWrapper::from_file(&path).unwrap();
        let unwrapped = reopened.unwrap_key(&ballot, &wrapped).await.unwrap();
        assert_eq!(unwrapped.expose_bytes(), key.expose_bytes());
        let stranger = LocalKeyWrapper::new(SymmetricKey::generate());
        assert!(matches!(
            stranger.unwrap_key(&ballot, &wrapped).await,
            Err(KeyWrapError::Rejected)
        ));
    });
}
