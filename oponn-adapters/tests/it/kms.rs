//! The KMS key wrapper, against moto's KMS look-alike (or the endpoint
//! `OPONN_KMS_ENDPOINT` names), passes the key-wrapper contract.
//!
//! Every test makes its own KMS key, so tests share one server safely.
//! Credentials and region are passed explicitly, never through the process
//! environment (tests run in parallel threads) nor the SDK's instance
//! metadata lookup (which would leave the loopback interface).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::operation::encrypt::EncryptError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeySpec;
use oponn_adapters::kms::{ENCRYPTION_CONTEXT_KEY, FORMAT_KMS_V1, KmsKeyWrapper, KmsSettings};
use oponn_core::crypto::{SymmetricKey, WrappedKey};
use oponn_core::domain::BallotId;
use oponn_core::ports::{KeyWrapError, KeyWrapper};
use oponn_testkit::services::free_port;
use oponn_testkit::services::moto::TestMoto;

const REGION: &str = "us-east-1";

/// How long an unreachable KMS may take to count as unavailable: generous,
/// well above the wrapper's five-second operation timeout, and far below
/// "forever".
const OUTAGE_DEADLINE: Duration = Duration::from_secs(20);

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "oponn-tests")
}

/// An SDK client for `endpoint` with static test credentials.
fn client(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

fn moto_client() -> aws_sdk_kms::Client {
    client(TestMoto::shared().endpoint())
}

/// Creates a fresh symmetric KMS key and returns its id.
async fn fresh_key(client: &aws_sdk_kms::Client) -> String {
    client
        .create_key()
        .key_spec(KeySpec::SymmetricDefault)
        .description("oponn adapter test")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned()
}

/// A wrapper around a fresh KMS key on the test server.
async fn wrapper_on_fresh_key() -> KmsKeyWrapper {
    let client = moto_client();
    let key_id = fresh_key(&client).await;
    KmsKeyWrapper::new(client, key_id)
}

async fn wrapper() -> Arc<dyn KeyWrapper> {
    Arc::new(wrapper_on_fresh_key().await)
}

/// Settings, with explicit credentials, for a wrapper built by `connect`.
async fn connected(endpoint: &str, key_id: &str) -> KmsKeyWrapper {
    let settings = KmsSettings {
        key_id: key_id.to_owned(),
        region: Some(REGION.to_owned()),
        endpoint: Some(endpoint.to_owned()),
    };
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).credentials_provider(credentials());
    KmsKeyWrapper::connect_with(&settings, loader).await
}

fn assert_unavailable<T>(what: &str, result: Result<T, KeyWrapError>) {
    match result {
        Err(KeyWrapError::Unavailable(_)) => {}
        Err(other) => panic!("{what}: expected Unavailable, got {other:?}"),
        Ok(_) => panic!("{what}: expected Unavailable, but it succeeded"),
    }
}

/// The SDK failure behind a wrap that must have been Unavailable.
fn encrypt_failure(
    result: Result<WrappedKey, KeyWrapError>,
) -> SdkError<EncryptError, HttpResponse> {
    match result {
        Err(KeyWrapError::Unavailable(source)) => *source
            .downcast::<SdkError<EncryptError, HttpResponse>>()
            .unwrap_or_else(|other| panic!("not an SDK failure: {other}")),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn assert_rejected<T>(result: Result<T, KeyWrapError>) {
    match result {
        Err(KeyWrapError::Rejected) => {}
        Err(other) => panic!("expected Rejected, got {other:?}"),
        Ok(_) => panic!("expected Rejected, but it succeeded"),
    }
}

mod key_wrapper_contract {
    oponn_testkit::key_wrapper_contract!(super::wrapper);
}

#[test]
fn a_key_wrapped_under_one_kms_key_does_not_unwrap_under_another() {
    oponn_testkit::block_on(async {
        let first = wrapper_on_fresh_key().await;
        let second = wrapper_on_fresh_key().await;
        let ballot = BallotId::generate();
        let wrapped = first
            .wrap_key(&ballot, &SymmetricKey::generate())
            .await
            .unwrap();
        assert_rejected(second.unwrap_key(&ballot, &wrapped).await);
        assert!(first.unwrap_key(&ballot, &wrapped).await.is_ok());
    });
}

#[test]
fn the_wrapped_key_is_a_kms_ciphertext_bound_to_the_ballot_id() {
    oponn_testkit::block_on(async {
        let client = moto_client();
        let key_id = fresh_key(&client).await;
        let wrapper = KmsKeyWrapper::new(client.clone(), key_id.clone());
        let ballot = BallotId::generate();
        let key = SymmetricKey::generate();
        let wrapped = wrapper.wrap_key(&ballot, &key).await.unwrap();
        let (&format, blob) = wrapped.as_bytes().split_first().unwrap();
        assert_eq!(format, FORMAT_KMS_V1);
        let decrypt = |ballot: String| {
            client
                .decrypt()
                .key_id(&key_id)
                .ciphertext_blob(Blob::new(blob))
                .encryption_context(ENCRYPTION_CONTEXT_KEY, ballot)
                .send()
        };
        let output = decrypt(ballot.to_string()).await.unwrap();
        assert_eq!(output.plaintext().unwrap().as_ref(), key.expose_bytes());
        let error = decrypt(BallotId::generate().to_string())
            .await
            .unwrap_err()
            .into_service_error();
        assert!(error.is_invalid_ciphertext_exception(), "{error:?}");
    });
}

#[test]
fn a_blob_of_another_format_is_rejected_without_asking_kms() {
    oponn_testkit::block_on(async {
        // Nobody listens on this endpoint: reaching it would be Unavailable.
        let wrapper = KmsKeyWrapper::new(
            client(&format!("http://127.0.0.1:{}", free_port())),
            "alias/none",
        );
        let ballot = BallotId::generate();
        for blob in [
            vec![],
            vec![FORMAT_KMS_V1],
            vec![1, 2, 3, 4],
            [vec![FORMAT_KMS_V1], vec![7; 6145]].concat(),
        ] {
            assert_rejected(
                wrapper
                    .unwrap_key(&ballot, &WrappedKey::from_bytes(blob))
                    .await,
            );
        }
    });
}

#[test]
fn ping_succeeds_on_an_enabled_key() {
    oponn_testkit::block_on(async {
        wrapper_on_fresh_key().await.ping().await.unwrap();
    });
}

#[test]
fn ping_reports_a_disabled_or_missing_key_as_unavailable() {
    oponn_testkit::block_on(async {
        let client = moto_client();
        let key_id = fresh_key(&client).await;
        client.disable_key().key_id(&key_id).send().await.unwrap();
        let disabled = KmsKeyWrapper::new(client.clone(), key_id);
        assert_unavailable("ping of a disabled key", disabled.ping().await);
        let missing = KmsKeyWrapper::new(client, "0b3a4f4e-0000-4000-8000-000000000000");
        assert_unavailable("ping of a missing key", missing.ping().await);
        assert_unavailable(
            "wrapping under a missing key",
            missing
                .wrap_key(&BallotId::generate(), &SymmetricKey::generate())
                .await,
        );
    });
}

#[test]
fn an_endpoint_nobody_listens_on_is_unavailable_promptly() {
    oponn_testkit::block_on(async {
        let endpoint = format!("http://127.0.0.1:{}", free_port());
        let wrapper = connected(&endpoint, "alias/oponn").await;
        let ballot = BallotId::generate();
        let outage = async {
            let failure =
                encrypt_failure(wrapper.wrap_key(&ballot, &SymmetricKey::generate()).await);
            assert!(
                matches!(failure, SdkError::DispatchFailure(_)),
                "{failure:?}"
            );
            let blob = WrappedKey::from_bytes(vec![FORMAT_KMS_V1, 1, 2, 3]);
            assert_unavailable("unwrap", wrapper.unwrap_key(&ballot, &blob).await);
            assert_unavailable("ping", wrapper.ping().await);
        };
        tokio::time::timeout(OUTAGE_DEADLINE, outage)
            .await
            .expect("an unreachable KMS is reported, not waited on");
    });
}

#[test]
fn an_endpoint_that_never_answers_is_unavailable_promptly() {
    oponn_testkit::block_on(async {
        // The kernel completes connections to this listener, but nobody
        // reads or answers: only the wrapper's timeouts end the calls.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", silent.local_addr().unwrap());
        let wrapper = connected(&endpoint, "alias/oponn").await;
        let outage = async {
            let failure = encrypt_failure(
                wrapper
                    .wrap_key(&BallotId::generate(), &SymmetricKey::generate())
                    .await,
            );
            assert!(matches!(failure, SdkError::TimeoutError(_)), "{failure:?}");
            assert_unavailable("ping", wrapper.ping().await);
        };
        tokio::time::timeout(OUTAGE_DEADLINE * 2, outage)
            .await
            .expect("a silent KMS is reported, not waited on");
        drop(silent);
    });
}

#[test]
fn connect_builds_a_working_wrapper_from_settings() {
    oponn_testkit::block_on(async {
        let moto = TestMoto::shared().endpoint();
        let key_id = fresh_key(&moto_client()).await;
        let wrapper = connected(moto, &key_id).await;
        assert_eq!(wrapper.key_id(), key_id);
        wrapper.ping().await.unwrap();
        let ballot = BallotId::generate();
        let key = SymmetricKey::generate();
        let wrapped = wrapper.wrap_key(&ballot, &key).await.unwrap();
        // A wrapper built the other way reads what this one wrote.
        let other = KmsKeyWrapper::new(moto_client(), key_id);
        let unwrapped = other.unwrap_key(&ballot, &wrapped).await.unwrap();
        assert_eq!(unwrapped.expose_bytes(), key.expose_bytes());
    });
}
