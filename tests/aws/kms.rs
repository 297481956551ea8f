//! KMS keyrings against moto's KMS server on loopback (tests/common/moto.rs):
//! round trips with one and two keys, decrypt with the second key alone,
//! discovery with and without a filter, a wrong encryption context, KMS and
//! raw AES in one message, call counts and the EDK bound on KMS calls.
#![cfg(feature = "kms")]

use crate::common;
#[path = "kms/ecdh.rs"]
mod ecdh;

use std::sync::Arc;

use common::fault::{Action, FaultServer};
use common::moto::{self, create_key, moto, ACCOUNT};
use envseal::kms::{AwsBounds, AwsErrorKind, KmsClient};
use envseal::{
    AlgorithmSuite, Config, DiscoveryFilter, EncryptionContext, Error, Keyring, KmsDiscoveryKeyring,
    KmsKeyring, MultiKeyring,
};

async fn client(region: &str) -> KmsClient {
    moto::client(region, &moto().url, AwsBounds::default()).await
}

fn context() -> EncryptionContext {
    [("purpose", "kms-test"), ("tenant", "acme1")]
        .into_iter()
        .collect()
}

/// Changes the stored context value "acme1" to "acme2", so KMS gets a
/// context other than the one the data key was wrapped under; returns the
/// changed context (to pass as the reproduced one).
fn retarget_context(message: &mut [u8]) -> EncryptionContext {
    let at = message.windows(5).position(|w| w == b"acme1").unwrap();
    message[at + 4] = b'2';
    [("purpose", "kms-test"), ("tenant", "acme2")]
        .into_iter()
        .collect()
}

fn kms_error(e: Error) -> envseal::kms::AwsError {
    match e {
        Error::Aws(k) => *k,
        other => panic!("expected a KMS error, got {other:?}"),
    }
}

#[tokio::test]
async fn round_trip_with_one_key() {
    let key = create_key("us-east-1").await;
    let c = client("us-east-1").await;
    let keyring = KmsKeyring::builder(c.clone(), [key.as_str()]).build().unwrap();
    let config = Config::default();
    let message = crate::common::async_client(&config, &keyring)
        .encrypt(&context(), b"one key")
        .await
        .unwrap();
    // The EDK names the key by ARN, as every ESDK expects.
    assert!(message.windows(key.len()).any(|w| w == key.as_bytes()));
    let out = crate::common::async_client(&config, &keyring)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(*out.plaintext, b"one key");
    let stats = c.stats();
    assert_eq!(stats.generate_data_key_calls, 1);
    assert_eq!(stats.encrypt_calls, 0);
    assert_eq!(stats.decrypt_calls, 1);
    assert_eq!((stats.attempts, stats.failures), (2, 0));
}

#[tokio::test]
async fn two_keys_and_decrypt_with_either_alone() {
    let k1 = create_key("us-east-1").await;
    let k2 = create_key("us-east-1").await;
    let c = client("us-east-1").await;
    let both = KmsKeyring::builder(c.clone(), [&k1, &k2]).build().unwrap();
    let config = Config::default();
    let message = crate::common::async_client(&config, &both)
        .encrypt(&context(), b"two keys")
        .await
        .unwrap();
    assert_eq!(c.stats().generate_data_key_calls, 1);
    assert_eq!(c.stats().encrypt_calls, 1);

    for (key, label) in [(&k2, "second"), (&k1, "first")] {
        let alone_client = client("us-east-1").await;
        let alone = KmsKeyring::builder(alone_client.clone(), [key]).build().unwrap();
        let out = crate::common::async_client(&config, &alone)
            .decrypt(&context(), &message)
            .await
            .unwrap();
        assert_eq!(*out.plaintext, b"two keys", "{label}");
        // The other key's EDK is filtered out before any call.
        assert_eq!(alone_client.stats().decrypt_calls, 1, "{label}");
    }

    // With both configured, decrypt stops at the first success.
    let c2 = client("us-east-1").await;
    let both2 = KmsKeyring::builder(c2.clone(), [&k1, &k2]).build().unwrap();
    crate::common::async_client(&config, &both2)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(c2.stats().decrypt_calls, 1);

    // A key that wrapped nothing in the message matches nothing: no call.
    let k3 = create_key("us-east-1").await;
    let c3 = client("us-east-1").await;
    let other = KmsKeyring::builder(c3.clone(), [&k3]).build().unwrap();
    let err = crate::common::async_client(&config, &other)
        .decrypt(&context(), &message)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoMatchingKey { edks: 2 }), "{err:?}");
    assert_eq!(c3.stats().calls(), 0);
}

#[tokio::test]
async fn discovery_decrypts_and_filters_before_any_call() {
    let key = create_key("us-east-1").await;
    let config = Config::default();
    let message = {
        let keyring = KmsKeyring::builder(client("us-east-1").await, [&key])
            .build()
            .unwrap();
        crate::common::async_client(&config, &keyring)
            .encrypt(&context(), b"discover me")
            .await
            .unwrap()
    };

    let open = KmsDiscoveryKeyring::builder(client("us-east-1").await)
        .build()
        .unwrap();
    let out = crate::common::async_client(&config, &open)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(*out.plaintext, b"discover me");

    let mine = DiscoveryFilter::new("aws", [ACCOUNT]).unwrap();
    let filtered = KmsDiscoveryKeyring::builder(client("us-east-1").await)
        .filter(mine)
        .build()
        .unwrap();
    let out = crate::common::async_client(&config, &filtered)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(*out.plaintext, b"discover me");
    assert_eq!(filtered.client().stats().decrypt_calls, 1);

    let excluded = [
        DiscoveryFilter::new("aws", ["111122223333"]).unwrap(),
        DiscoveryFilter::new("aws-cn", [ACCOUNT]).unwrap(),
    ];
    for filter in excluded {
        let c = client("us-east-1").await;
        let keyring = KmsDiscoveryKeyring::builder(c.clone())
            .filter(filter.clone())
            .build()
            .unwrap();
        let err = crate::common::async_client(&config, &keyring)
            .decrypt(&context(), &message)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::NoMatchingKey { edks: 1 }),
            "{filter:?}: {err:?}"
        );
        assert_eq!(c.stats().calls(), 0, "{filter:?}: no KMS call may be made");
        assert_eq!(c.stats().attempts, 0);
    }

    // A single-Region key of another region is skipped without a call.
    let c = client("us-west-2").await;
    let west = KmsDiscoveryKeyring::builder(c.clone()).build().unwrap();
    let err = crate::common::async_client(&config, &west)
        .decrypt(&context(), &message)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoMatchingKey { .. }), "{err:?}");
    assert_eq!(c.stats().calls(), 0);

    // Discovery cannot encrypt.
    assert!(crate::common::async_client(&config, &open)
        .encrypt(&context(), b"x")
        .await
        .is_err());
}

#[tokio::test]
async fn wrong_encryption_context_fails_at_kms() {
    let key = create_key("us-east-1").await;
    let c = client("us-east-1").await;
    let keyring = KmsKeyring::builder(c.clone(), [&key]).build().unwrap();
    let config = Config::default();
    let mut message = crate::common::async_client(&config, &keyring)
        .encrypt(&context(), b"bound")
        .await
        .unwrap();
    let tampered = retarget_context(&mut message);
    let err = crate::common::async_client(&config, &keyring)
        .decrypt(&tampered, &message)
        .await
        .unwrap_err();
    let err = kms_error(err);
    assert_eq!(err.kind, AwsErrorKind::InvalidCiphertext, "{err}");
    assert_eq!(err.attempts, 1, "invalid ciphertext must not be retried");
    assert_eq!(err.status, Some(400));
    assert!(err.to_string().contains("KMS Decrypt"), "{err}");
}

#[tokio::test]
async fn kms_and_raw_aes_in_one_message() {
    let key = create_key("us-east-1").await;
    let aes = common::aes("app", "aes-1", &[9u8; 32]);
    let config = Config::default();

    // KMS generates, raw AES wraps too.
    let c = client("us-east-1").await;
    let kms: Arc<dyn Keyring> = Arc::new(KmsKeyring::builder(c.clone(), [&key]).build().unwrap());
    let multi = MultiKeyring::from_keyrings(vec![kms.clone(), aes.clone()]).unwrap();
    let message = crate::common::async_client(&config, &multi)
        .encrypt(&context(), b"mixed")
        .await
        .unwrap();
    assert_eq!(c.stats().generate_data_key_calls, 1);
    let out = crate::common::async_client(&config, aes.clone())
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(*out.plaintext, b"mixed");
    let out = crate::common::async_client(&config, kms.clone())
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(*out.plaintext, b"mixed");

    // Raw AES generates, KMS wraps the existing data key with Encrypt.
    let c2 = client("us-east-1").await;
    let kms2: Arc<dyn Keyring> = Arc::new(KmsKeyring::builder(c2.clone(), [&key]).build().unwrap());
    let multi = MultiKeyring::from_keyrings(vec![aes.clone(), kms2.clone()]).unwrap();
    let message = crate::common::async_client(&config, &multi)
        .encrypt(&context(), b"mixed 2")
        .await
        .unwrap();
    let stats = c2.stats();
    assert_eq!((stats.generate_data_key_calls, stats.encrypt_calls), (0, 1));
    let out = crate::common::async_client(&config, kms2.clone())
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(*out.plaintext, b"mixed 2");
}

#[tokio::test]
async fn n_encrypts_make_n_generate_data_key_calls() {
    let key = create_key("us-east-1").await;
    let c = client("us-east-1").await;
    let keyring = KmsKeyring::builder(c.clone(), [&key]).build().unwrap();
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .build()
        .unwrap();
    const N: u64 = 25;
    for i in 0..N {
        crate::common::async_client(&config, &keyring)
            .encrypt(&context(), &i.to_be_bytes())
            .await
            .unwrap();
    }
    let stats = c.stats();
    assert_eq!(stats.generate_data_key_calls, N, "no cache: one call per message");
    assert_eq!(stats.attempts, N);
    assert_eq!(stats.successes, N);
    assert!(stats.latency_p50.is_some() && stats.latency_max.is_some());
}

#[tokio::test]
async fn hostile_message_causes_at_most_max_edk_calls() {
    let k1 = create_key("us-east-1").await;
    let k2 = create_key("us-east-1").await;
    let keyring = KmsKeyring::builder(client("us-east-1").await, [&k1, &k2])
        .build()
        .unwrap();
    let mut message = crate::common::async_client(&Config::default(), &keyring)
        .encrypt(&context(), b"x")
        .await
        .unwrap();
    let tampered = retarget_context(&mut message);

    // Every matching EDK is tried once: two EDKs, two failing calls, both
    // failures in the error (Error::Keyrings, in order).
    let c = client("us-east-1").await;
    let both = KmsKeyring::builder(c.clone(), [&k1, &k2]).build().unwrap();
    let err = crate::common::async_client(&Config::default(), &both)
        .decrypt(&tampered, &message)
        .await
        .unwrap_err();
    let Error::Keyrings(all) = err else {
        panic!("{err:?}")
    };
    let failed: Vec<_> = all
        .into_iter()
        .map(kms_error)
        .map(|e| (e.kind, e.key_id))
        .collect();
    assert_eq!(
        failed,
        [
            (AwsErrorKind::InvalidCiphertext, k1.clone()),
            (AwsErrorKind::InvalidCiphertext, k2.clone())
        ]
    );
    assert_eq!((c.stats().decrypt_calls, c.stats().attempts), (2, 2));

    // With max_encrypted_data_keys = 1 the message is refused before any call.
    let c = client("us-east-1").await;
    let both = KmsKeyring::builder(c.clone(), [&k1, &k2]).build().unwrap();
    let limited = Config::builder().max_encrypted_data_keys(1).build().unwrap();
    let err = crate::common::async_client(&limited, &both)
        .decrypt(&tampered, &message)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Limit(_)), "{err:?}");
    assert_eq!(c.stats().calls(), 0);
}

#[tokio::test]
async fn grant_tokens_reach_kms() {
    let key = create_key("us-east-1").await;
    let proxy = FaultServer::start(Some(moto().url.clone()), vec![Action::Proxy]);
    let c = moto::client("us-east-1", &proxy.url, AwsBounds::default()).await;
    let keyring = KmsKeyring::builder(c, [&key])
        .grant_tokens(["grant-token-1"])
        .build()
        .unwrap();
    let message = crate::common::async_client(&Config::default(), &keyring)
        .encrypt(&context(), b"gt")
        .await
        .unwrap();
    crate::common::async_client(&Config::default(), &keyring)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    let requests = proxy.request_bytes();
    assert_eq!(requests.len(), 2);
    for r in requests {
        let text = String::from_utf8_lossy(&r);
        assert!(text.contains(r#""GrantTokens":["grant-token-1"]"#), "{text}");
    }
}

#[tokio::test]
async fn keyring_configuration_is_checked() {
    let c = client("us-east-1").await;
    assert!(KmsKeyring::builder(c.clone(), Vec::<String>::new())
        .build()
        .is_err());
    assert!(
        KmsKeyring::builder(c.clone(), ["arn:aws:kms:us-east-1:1:grant/x"])
            .build()
            .is_err()
    );
    let mrk = "arn:aws:kms:us-east-1:111122223333:key/mrk-1234";
    let replica = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234";
    let err = KmsKeyring::builder(c.clone(), [mrk, replica])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("multi-Region"), "{err}");
    assert!(KmsKeyring::builder(c.clone(), ["alias/app", "mrk-1", "1234abcd"])
        .build()
        .is_ok());
    assert!(DiscoveryFilter::new("aws", Vec::<String>::new()).is_err());
}
