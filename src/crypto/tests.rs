//! Known-answer and cross-backend tests for every compiled-in backend.
//!
//! Expected values: AES-GCM from the NIST/McGrew-Viega GCM test cases 4, 10
//! and 16; HKDF-SHA256 from RFC 5869 test cases 1 and 3; the HKDF-SHA384/512
//! and commit-key values were computed once with Python `cryptography` 48.
//!
//! One file on purpose: every test here runs against each compiled-in
//! backend, and the cross-backend checks need them side by side.

use super::*;
use crate::suite::AlgorithmSuite;

const RSA_PRIVATE_PEM: &str = include_str!("../../tests/data/rsa-4096-private.pem");
const RSA_PUBLIC_PEM: &str = include_str!("../../tests/data/rsa-4096-public.pem");

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector hex")
}

fn iv(s: &str) -> [u8; IV_LEN] {
    h(s).try_into().expect("12-byte IV")
}

/// Every (a, b) pair of backends, including (x, x).
fn pairs() -> Vec<(Backend, Backend)> {
    let all = Backend::all();
    all.iter()
        .flat_map(|a| all.iter().map(move |b| (*a, *b)))
        .collect()
}

#[test]
fn all_lists_distinct_backends() {
    let all = Backend::all();
    assert!(!all.is_empty());
    assert_eq!(all[0], Backend::default());
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

// ---------------------------------------------------------------- AES-GCM

struct GcmVector {
    key: &'static str,
    iv: &'static str,
    aad: &'static str,
    pt: &'static str,
    ct: &'static str,
    tag: &'static str,
}

const GCM_PT: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                      1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const GCM_IV: &str = "cafebabefacedbaddecaf888";

const GCM_VECTORS: [GcmVector; 3] = [
    // Test Case 4 (AES-128).
    GcmVector {
        key: "feffe9928665731c6d6a8f9467308308",
        iv: GCM_IV,
        aad: GCM_AAD,
        pt: GCM_PT,
        ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        tag: "5bc94fbc3221a5db94fae95ae7121a47",
    },
    // Test Case 10 (AES-192).
    GcmVector {
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c",
        iv: GCM_IV,
        aad: GCM_AAD,
        pt: GCM_PT,
        ct: "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c\
             7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
        tag: "2519498e80f1478f37ba55bd6d27618c",
    },
    // Test Case 16 (AES-256).
    GcmVector {
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: GCM_IV,
        aad: GCM_AAD,
        pt: GCM_PT,
        ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
];

#[test]
fn gcm_known_answers() {
    for b in Backend::all() {
        for v in &GCM_VECTORS {
            let aead = b.provider().aead(&h(v.key)).unwrap();
            let (iv, aad, pt) = (iv(v.iv), h(v.aad), h(v.pt));

            let mut buf = pt.clone();
            let tag = aead.seal_in_place(&iv, &aad, &mut buf).unwrap();
            assert_eq!(hex::encode(&buf), v.ct, "{} seal {}", b.name(), v.key.len() * 4);
            assert_eq!(hex::encode(tag), v.tag, "{} tag {}", b.name(), v.key.len() * 4);

            let mut buf = [h(v.ct), h(v.tag)].concat();
            let n = aead.open_in_place(&iv, &aad, &mut buf).unwrap();
            assert_eq!(n, pt.len());
            assert_eq!(&buf[..n], &pt[..], "{} open {}", b.name(), v.key.len() * 4);
        }
    }
}

#[test]
fn gcm_out_of_place_matches_in_place() {
    for b in Backend::all() {
        for key_len in [16, 24, 32] {
            let key = b.provider().aead(&vec![3u8; key_len]).unwrap();
            for len in [0usize, 1, 15, 16, 17, 4096, 65_537] {
                let pt: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
                let mut in_place = pt.clone();
                let tag = key.seal_in_place(&[5; IV_LEN], b"aad", &mut in_place).unwrap();
                let mut out = vec![0u8; len];
                let tag2 = key.seal_to(&[5; IV_LEN], b"aad", &pt, &mut out).unwrap();
                assert_eq!((out.clone(), tag2), (in_place, tag), "{b:?} {key_len} {len}");
                let mut back = vec![0u8; len];
                key.open_to(&[5; IV_LEN], b"aad", &out, &tag, &mut back).unwrap();
                assert_eq!(back, pt);
                if len > 0 {
                    let mut bad_tag = tag;
                    bad_tag[0] ^= 1;
                    assert!(key
                        .open_to(&[5; IV_LEN], b"aad", &out, &bad_tag, &mut back)
                        .is_err());
                    assert!(back.iter().all(|&x| x == 0), "failed open_to wipes its output");
                }
            }
            assert!(key.seal_to(&[5; IV_LEN], b"", &[1, 2], &mut [0u8; 3]).is_err());
        }
    }
}

#[test]
fn gcm_open_failure_wipes_buffer() {
    for b in Backend::all() {
        for v in &GCM_VECTORS {
            let aead = b.provider().aead(&h(v.key)).unwrap();
            let (iv, aad) = (iv(v.iv), h(v.aad));
            let good = [h(v.ct), h(v.tag)].concat();
            let tag_at = good.len() - TAG_LEN;

            let mut bad_tag = good.clone();
            bad_tag[tag_at + 3] ^= 0x01;
            let mut bad_ct = good.clone();
            bad_ct[5] ^= 0x80;
            let mut bad_aad = aad.clone();
            bad_aad[0] ^= 0x01;
            let mut bad_iv = iv;
            bad_iv[11] ^= 0x01;

            for (what, mut buf, iv, aad) in [
                ("tag", bad_tag, iv, aad.as_slice()),
                ("ciphertext", bad_ct, iv, aad.as_slice()),
                ("aad", good.clone(), iv, bad_aad.as_slice()),
                ("missing aad", good.clone(), iv, &[][..]),
                ("iv", good.clone(), bad_iv, aad.as_slice()),
            ] {
                assert_eq!(
                    aead.open_in_place(&iv, aad, &mut buf),
                    Err(CryptoError),
                    "{} accepted a bad {what}",
                    b.name()
                );
                assert!(
                    buf.iter().all(|&x| x == 0),
                    "{} left bytes behind after a bad {what}",
                    b.name()
                );
            }
        }
    }
}

#[test]
fn gcm_edge_cases() {
    for b in Backend::all() {
        let p = b.provider();
        for bad_len in [0, 15, 17, 31, 33, 64] {
            assert!(
                p.aead(&vec![7u8; bad_len]).is_err(),
                "{} key len {bad_len}",
                b.name()
            );
        }
        let aead = p.aead(&[7u8; 32]).unwrap();
        let iv = [9u8; IV_LEN];
        // Shorter than a tag.
        let mut short = vec![1u8; TAG_LEN - 1];
        assert_eq!(aead.open_in_place(&iv, b"", &mut short), Err(CryptoError));
        // Empty plaintext round-trips to a bare tag.
        let mut empty: Vec<u8> = Vec::new();
        let tag = aead.seal_in_place(&iv, b"aad", &mut empty).unwrap();
        let mut buf = tag.to_vec();
        assert_eq!(aead.open_in_place(&iv, b"aad", &mut buf), Ok(0));
    }
}

#[test]
fn gcm_cross_backend() {
    let key = [0x42u8; 24];
    let iv = [3u8; IV_LEN];
    let pt: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for (a, b) in pairs() {
        let mut buf = pt.clone();
        let tag = a
            .provider()
            .aead(&key)
            .unwrap()
            .seal_in_place(&iv, b"ctx", &mut buf)
            .unwrap();
        buf.extend_from_slice(&tag);
        let n = b
            .provider()
            .aead(&key)
            .unwrap()
            .open_in_place(&iv, b"ctx", &mut buf)
            .unwrap();
        assert_eq!(&buf[..n], &pt[..], "{} -> {}", a.name(), b.name());
    }
}

// ------------------------------------------------------------------- HKDF

fn hkdf_one(hash: HashAlg, salt: &[u8], ikm: &[u8], info: &[&[u8]], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    kdf::hkdf(hash, salt, ikm, &mut [Expand { info, out: &mut out }]).unwrap();
    out
}

#[test]
fn hkdf_sha256_rfc5869() {
    let ikm = [0x0bu8; 22];
    let salt: Vec<u8> = (0x00..=0x0c).collect();
    let info: Vec<u8> = (0xf0..=0xf9).collect();
    // Test case 1.
    let okm = hkdf_one(HashAlg::Sha256, &salt, &ikm, &[&info[..4], &info[4..]], 42);
    assert_eq!(
        hex::encode(okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    // Test case 3: empty salt and info.
    let okm = hkdf_one(HashAlg::Sha256, &[], &ikm, &[], 42);
    assert_eq!(
        hex::encode(&okm),
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    );
    // An explicit all-zero hash-length salt is the same as an empty one.
    assert_eq!(hkdf_one(HashAlg::Sha256, &[0u8; 32], &ikm, &[], 42), okm);
}

/// Known answers (computed with aws-lc and RustCrypto when each backend
/// had its own HKDF, and equal in both).
#[test]
fn hkdf_sha384_sha512_known_answers() {
    let ikm: Vec<u8> = (0..32).collect();
    let salt: Vec<u8> = (100..132).collect();
    let info: &[&[u8]] = &[b"envseal-", b"info"];
    assert_eq!(
        hex::encode(hkdf_one(HashAlg::Sha384, &salt, &ikm, info, 64)),
        "dcacd5ff9dd0728e3f26304c11ea6f93d9c7f6f98c534e2d7d57f801974ec32d\
         70f6daa5e5ae88689ad6d27cbf1567ec4bca047c907564094538a04292cefac8"
    );
    assert_eq!(
        hex::encode(hkdf_one(HashAlg::Sha384, &[], &ikm, info, 48)),
        "5f9bd249655fba9501fa203c8dbe4d4e8803509999e3c81a32ac557b5cc65848\
         1bb4fa4d903fea4107514dd4b202a34d"
    );
    assert_eq!(
        hex::encode(hkdf_one(HashAlg::Sha512, &[], &ikm, info, 32)),
        "41aabe1f78a9c70d553424345799431cfce65eaba9a3c3eac3f292e78c97340c"
    );

    // Several expands from one extract.
    let mut a = [0u8; 80];
    let mut c = [0u8; 64];
    kdf::hkdf(
        HashAlg::Sha512,
        &salt,
        &ikm,
        &mut [
            Expand { info, out: &mut a },
            Expand {
                info: &[],
                out: &mut c,
            },
        ],
    )
    .unwrap();
    assert_eq!(
        hex::encode(a),
        "0158939d210b835462a828a01c9069b7225161f63fe6d8f74ca2a37d85cc09fc\
         e81f46352b55ce19d8a01631a4643c492f0de2a161fcfe636b838e22654ab532\
         425cc9e4a01884cb9aa333cba099a0e0"
    );
    assert_eq!(
        hex::encode(c),
        "990b96d42596f768c5cbe7ed68e7e6ebb1983002d7f16f13923002fd6c32dbe2\
         9f1a0cdcacaa299274ce08562b5e33814858702abf9dfdd619b7595aba6cd432"
    );
    assert_eq!(
        hex::encode(hkdf_one(HashAlg::Sha384, &salt, &ikm, &[b"second"], 48)),
        "f53a2d5230ed90a394abc7111620a7bcfd19bfa8d2cf373274c870b6d1b494fb\
         4927dbbdd4706affc24dade752b93a77"
    );
}

/// The longest output RFC 5869 allows is 255 hash lengths; one more fails.
#[test]
fn hkdf_output_limit() {
    let info: &[&[u8]] = &[b"a", b"", b"bc"];
    for (hash, max) in [
        (HashAlg::Sha256, 255 * 32),
        (HashAlg::Sha384, 255 * 48),
        (HashAlg::Sha512, 255 * 64),
    ] {
        assert_eq!(hkdf_one(hash, b"salt", b"ikm", info, max).len(), max);
        let mut too_long = vec![0u8; max + 1];
        assert_eq!(
            kdf::hkdf(
                hash,
                b"salt",
                b"ikm",
                &mut [Expand {
                    info,
                    out: &mut too_long
                }]
            ),
            Err(CryptoError),
            "{hash:?}"
        );
    }
}

/// Against aws-lc's own HKDF, an independent implementation, over salts
/// (empty, short, block-sized, longer than a block), info splits and
/// output lengths up to the maximum.
#[cfg(feature = "aws-lc")]
#[test]
fn hkdf_matches_aws_lc() {
    use aws_lc_rs::hkdf as lc;
    struct Len(usize);
    impl lc::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let ikm = [0x5au8; 48];
    let info: &[&[u8]] = &[b"a", b"", b"bc"];
    for (hash, alg, max) in [
        (HashAlg::Sha256, lc::HKDF_SHA256, 255 * 32),
        (HashAlg::Sha384, lc::HKDF_SHA384, 255 * 48),
        (HashAlg::Sha512, lc::HKDF_SHA512, 255 * 64),
    ] {
        for salt in [&[][..], &[0xa5; 17], &[0x3c; 128], &[0x77; 200]] {
            for len in [1, 16, 32, 33, 100, max] {
                let mut want = vec![0u8; len];
                lc::Salt::new(alg, salt)
                    .extract(&ikm)
                    .expand(info, Len(len))
                    .unwrap()
                    .fill(&mut want)
                    .unwrap();
                assert_eq!(
                    hkdf_one(hash, salt, &ikm, info, len),
                    want,
                    "{hash:?} salt {} len {len}",
                    salt.len()
                );
            }
        }
    }
}

// ------------------------------------------------------------ derive_keys

#[test]
fn derive_keys_committing_suite() {
    let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
    let data_key: Vec<u8> = (0x40..0x60).collect();
    let message_id: Vec<u8> = (0xa0..0xc0).collect();
    // HKDF-SHA512(salt = message id, ikm = data key), Python `cryptography`.
    let want_key = h("45423de36e0876ee6ad6bcfc2ec6d253f9a17bb137ee737fa6e9a9a65760ffaf");
    let want_commit = "94423982e5485ff460bf2dda32e9487b3dd9fd4a607ded3cf88386f01b9f748f";

    let iv = [1u8; IV_LEN];
    let pt = b"derive_keys known answer";
    for b in Backend::all() {
        let keys = derive_keys(b, suite, &data_key, &message_id).unwrap();
        let commit = keys
            .commitment
            .as_ref()
            .expect("committing suite has a commitment");
        assert_eq!(hex::encode(&commit[..]), want_commit, "{}", b.name());

        // The derived AEAD key is not exposed; compare what it produces with
        // an AEAD built from the expected key.
        let mut got = pt.to_vec();
        let got_tag = keys.aead.seal_in_place(&iv, b"aad", &mut got).unwrap();
        let mut want = pt.to_vec();
        let want_tag = b
            .provider()
            .aead(&want_key)
            .unwrap()
            .seal_in_place(&iv, b"aad", &mut want)
            .unwrap();
        assert_eq!((got, got_tag), (want, want_tag), "{}", b.name());
    }

    // Wrong lengths are refused.
    for b in Backend::all() {
        assert!(derive_keys(b, suite, &data_key[..16], &message_id).is_err());
        assert!(derive_keys(b, suite, &data_key, &message_id[..16]).is_err());
    }
}

#[test]
fn derive_keys_agree_across_backends() {
    for suite in AlgorithmSuite::ALL {
        let data_key = vec![0x11u8; suite.data_key_len()];
        let message_id = vec![0x22u8; suite.message_id_len()];
        let iv = [5u8; IV_LEN];
        let mut results = Vec::new();
        for b in Backend::all() {
            let keys = derive_keys(b, suite, &data_key, &message_id).unwrap();
            assert_eq!(keys.commitment.is_some(), suite.is_committing());
            let mut buf = b"same key everywhere".to_vec();
            let tag = keys.aead.seal_in_place(&iv, &[], &mut buf).unwrap();
            results.push((buf, tag, keys.commitment.map(|c| *c)));
        }
        for r in &results[1..] {
            assert_eq!(r, &results[0], "{suite:?}");
        }
    }
}

// ------------------------------------------------------------------ ECDSA

const CURVES: [Curve; 2] = [Curve::P256, Curve::P384];

fn sign(b: Backend, curve: Curve, msg: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let (mut signer, public) = b.provider().signer(curve).unwrap();
    for part in msg {
        signer.update(part);
    }
    (signer.sign().unwrap(), public)
}

fn verify(b: Backend, curve: Curve, public: &[u8], msg: &[&[u8]], sig: &[u8]) -> CResult<()> {
    let mut verifier = b.provider().verifier(curve, public)?;
    for part in msg {
        verifier.update(part);
    }
    verifier.verify(sig)
}

#[test]
fn ecdsa_refuses_p521() {
    // One `Curve` serves suites and ECDH; no suite signs with P-521.
    for b in Backend::all() {
        assert!(b.provider().signer(Curve::P521).is_err(), "{}", b.name());
        let point = [0x02; 67];
        assert!(
            b.provider().verifier(Curve::P521, &point).is_err(),
            "{}",
            b.name()
        );
    }
}

#[test]
fn ecdsa_sign_verify_and_canonical_length() {
    for b in Backend::all() {
        for curve in CURVES {
            for i in 0..8u8 {
                let msg: &[&[u8]] = &[b"header", &[i], b"body"];
                let (sig, public) = sign(b, curve, msg);
                assert_eq!(
                    Some(sig.len()),
                    curve.canonical_signature_len(),
                    "{} {curve:?}",
                    b.name()
                );
                assert_eq!(
                    public.len(),
                    curve.compressed_point_len(),
                    "{} {curve:?}",
                    b.name()
                );
                assert!(matches!(public[0], 0x02 | 0x03), "{} {curve:?}", b.name());
                // Absorbing in different chunks is the same message.
                let whole = [b"header".as_slice(), &[i], b"body"].concat();
                assert_eq!(verify(b, curve, &public, &[&whole], &sig), Ok(()), "{}", b.name());
                assert_eq!(verify(b, curve, &public, msg, &sig), Ok(()), "{}", b.name());
            }
        }
    }
}

#[test]
fn ecdsa_rejects_changes() {
    for b in Backend::all() {
        for curve in CURVES {
            let msg: &[&[u8]] = &[b"the message"];
            let (sig, public) = sign(b, curve, msg);

            assert!(verify(b, curve, &public, &[b"the messagE"], &sig).is_err());
            assert!(verify(b, curve, &public, &[b"the message", b"!"], &sig).is_err());
            assert!(verify(b, curve, &public, &[], &sig).is_err());

            // A changed byte inside r, inside s, or in the DER structure.
            for at in [6, sig.len() - 5, 0, 1] {
                let mut bad = sig.clone();
                bad[at] ^= 0x01;
                assert!(
                    verify(b, curve, &public, msg, &bad).is_err(),
                    "{} byte {at}",
                    b.name()
                );
            }
            // Truncated, extended, empty.
            assert!(verify(b, curve, &public, msg, &sig[..sig.len() - 1]).is_err());
            assert!(verify(b, curve, &public, msg, &[sig.clone(), vec![0]].concat()).is_err());
            assert!(verify(b, curve, &public, msg, &[]).is_err());

            // Another key.
            let (_, other) = sign(b, curve, msg);
            assert!(verify(b, curve, &other, msg, &sig).is_err());

            // Malformed public points are refused up front.
            let other_curve = if curve == Curve::P256 {
                Curve::P384
            } else {
                Curve::P256
            };
            assert!(b.provider().verifier(other_curve, &public).is_err());
            for bad_point in [
                vec![],
                vec![0x00],
                public[..public.len() - 1].to_vec(),
                [public.clone(), vec![0]].concat(),
                [&[0x05u8][..], &public[1..]].concat(),
                [&[0x04u8][..], &public[1..]].concat(),
            ] {
                assert!(
                    b.provider().verifier(curve, &bad_point).is_err(),
                    "{} {curve:?} accepted point {}",
                    b.name(),
                    hex::encode(&bad_point)
                );
            }
        }
    }
}

#[test]
fn ecdsa_cross_backend() {
    for (a, b) in pairs() {
        for curve in CURVES {
            let msg: &[&[u8]] = &[b"cross", b"backend"];
            let (sig, public) = sign(a, curve, msg);
            assert_eq!(
                verify(b, curve, &public, msg, &sig),
                Ok(()),
                "{curve:?}: {} signed, {} verified",
                a.name(),
                b.name()
            );
            assert!(verify(b, curve, &public, &[b"crossbackend!"], &sig).is_err());
        }
    }
}

// -------------------------------------------------------------------- RSA

const PADDINGS: [RsaPadding; 5] = [
    RsaPadding::Pkcs1,
    RsaPadding::OaepSha1,
    RsaPadding::OaepSha256,
    RsaPadding::OaepSha384,
    RsaPadding::OaepSha512,
];

fn der(pem: &str, label: &str) -> Vec<u8> {
    let (got, der) = pem_rfc7468::decode_vec(pem.as_bytes()).expect("test PEM");
    assert_eq!(got, label);
    der
}

fn rsa_keys(b: Backend) -> (Box<dyn RsaPublic>, Box<dyn RsaPrivate>) {
    let p = b.provider();
    (
        p.rsa_public_from_der(&der(RSA_PUBLIC_PEM, "PUBLIC KEY")).unwrap(),
        p.rsa_private_from_der(&der(RSA_PRIVATE_PEM, "PRIVATE KEY"))
            .unwrap(),
    )
}

#[test]
fn rsa_round_trip_across_backends() {
    let keys: Vec<_> = Backend::all().into_iter().map(|b| (b, rsa_keys(b))).collect();
    let data_key: Vec<u8> = (0..32).collect();
    for (a, (public, _)) in &keys {
        for padding in PADDINGS {
            let ct = public.encrypt(padding, &data_key).unwrap();
            assert_eq!(ct.len(), 512, "{} {padding:?}", a.name());
            for (b, (_, private)) in &keys {
                let pt = private.decrypt(padding, &ct).unwrap_or_else(|_| {
                    panic!(
                        "{padding:?}: {} encrypted, {} failed to decrypt",
                        a.name(),
                        b.name()
                    )
                });
                assert_eq!(
                    &pt[..],
                    &data_key[..],
                    "{padding:?}: {} -> {}",
                    a.name(),
                    b.name()
                );
            }
        }
    }
}

#[test]
fn rsa_wrong_padding_and_tampering_fail() {
    let keys: Vec<_> = Backend::all().into_iter().map(|b| (b, rsa_keys(b))).collect();
    let data_key = [0x99u8; 32];
    for (a, (public, _)) in &keys {
        for enc in PADDINGS {
            let ct = public.encrypt(enc, &data_key).unwrap();
            for (b, (_, private)) in &keys {
                for dec in PADDINGS {
                    // An OAEP block read as PKCS#1 v1.5 passes the padding
                    // check by chance (~0.3%); only assert the reliable cases.
                    if dec == enc || dec == RsaPadding::Pkcs1 {
                        continue;
                    }
                    assert!(
                        private.decrypt(dec, &ct).is_err(),
                        "{} {enc:?} ciphertext decrypted by {} as {dec:?}",
                        a.name(),
                        b.name()
                    );
                }
                if enc != RsaPadding::Pkcs1 {
                    let mut bad = ct.clone();
                    bad[100] ^= 0x01;
                    assert!(private.decrypt(enc, &bad).is_err(), "{} {enc:?}", b.name());
                }
                // Not the modulus length.
                assert!(private.decrypt(enc, &ct[1..]).is_err(), "{} {enc:?}", b.name());
                assert!(private.decrypt(enc, &[ct.clone(), vec![0]].concat()).is_err());
                assert!(private.decrypt(enc, &[]).is_err());
            }
        }
    }
}

#[test]
fn rsa_key_parsing() {
    let spki = der(RSA_PUBLIC_PEM, "PUBLIC KEY");
    let pkcs8 = der(RSA_PRIVATE_PEM, "PRIVATE KEY");
    for b in Backend::all() {
        let p = b.provider();
        // Each parser takes only its own format.
        assert!(p.rsa_public_from_der(&pkcs8).is_err(), "{}", b.name());
        assert!(p.rsa_private_from_der(&spki).is_err(), "{}", b.name());
        assert!(p.rsa_public_from_der(&[]).is_err());
        assert!(p.rsa_private_from_der(&[]).is_err());
        assert!(p.rsa_public_from_der(&spki[..spki.len() - 1]).is_err());
        assert!(p.rsa_private_from_der(&pkcs8[..pkcs8.len() - 1]).is_err());
        // Plaintext longer than the padding allows.
        let (public, _) = rsa_keys(b);
        assert!(public
            .encrypt(RsaPadding::OaepSha512, &[0u8; 512 - 2 * 64 - 1])
            .is_err());
        assert!(public
            .encrypt(RsaPadding::OaepSha512, &[0u8; 512 - 2 * 64 - 2])
            .is_ok());
        assert!(public.encrypt(RsaPadding::Pkcs1, &[0u8; 512 - 10]).is_err());
        assert!(public.encrypt(RsaPadding::Pkcs1, &[0u8; 512 - 11]).is_ok());
    }
}

// ----------------------------------------------------------------- random

#[test]
fn fill_random_fills() {
    for b in Backend::all() {
        let mut a = [0u8; 64];
        let mut c = [0u8; 64];
        b.fill_random(&mut a).unwrap();
        b.fill_random(&mut c).unwrap();
        assert_ne!(a, [0u8; 64]);
        assert_ne!(a, c);
        b.fill_random(&mut []).unwrap();
    }
}

#[test]
fn rsa_key_sizes_match_aws_lc() {
    // aws-lc takes 2048..=8192-bit moduli; the RustCrypto backend must too
    // (the `rsa` crate's own SPKI parser stops at 4096).
    let small_public = der(include_str!("../../tests/data/rsa-1024-public.pem"), "PUBLIC KEY");
    let small_private = der(
        include_str!("../../tests/data/rsa-1024-private.pem"),
        "PRIVATE KEY",
    );
    let big_public = der(include_str!("../../tests/data/rsa-8192-public.pem"), "PUBLIC KEY");
    let e3_public = der(
        include_str!("../../tests/data/rsa-2048-e3-public.pem"),
        "PUBLIC KEY",
    );
    for b in Backend::all() {
        let p = b.provider();
        assert!(p.rsa_public_from_der(&small_public).is_err(), "{}", b.name());
        assert!(p.rsa_private_from_der(&small_private).is_err(), "{}", b.name());
        let big = p.rsa_public_from_der(&big_public).unwrap();
        for padding in PADDINGS {
            assert_eq!(
                big.encrypt(padding, &[1u8; 32]).unwrap().len(),
                1024,
                "{}",
                b.name()
            );
        }
        let e3 = p.rsa_public_from_der(&e3_public).unwrap();
        assert_eq!(e3.encrypt(RsaPadding::OaepSha256, &[1u8; 32]).unwrap().len(), 256);
    }
}

// ------------------------------------------------------------- RandomPool

#[test]
fn random_pool_hands_out_each_byte_once_and_wipes_it() {
    for b in Backend::all() {
        let mut pool = RandomPool::draw(b, 40).unwrap();
        let (mut first, mut second, mut beyond) = ([0u8; 32], [0u8; 8], [0u8; 12]);
        pool.fill(&mut first).unwrap();
        pool.fill(&mut second).unwrap();
        // Every drawn byte has been handed out once and wiped from the pool.
        assert!(pool.bytes.iter().all(|&x| x == 0), "{}", b.name());
        assert_eq!(format!("{pool:?}"), "RandomPool { left: 0, .. }");
        // Exhausted: straight from the CSPRNG.
        pool.fill(&mut beyond).unwrap();
        assert_ne!(beyond, [0u8; 12]);
        assert_ne!(first, [0u8; 32]);
        assert_ne!(second, [0u8; 8]);
        assert_ne!(first[..8], second);
        // Two pools never hand out the same bytes.
        let mut other = [0u8; 32];
        RandomPool::draw(b, 32).unwrap().fill(&mut other).unwrap();
        assert_ne!(first, other);
        // A request larger than what is left skips the pool and keeps it.
        let mut pool = RandomPool::draw(b, 16).unwrap();
        pool.fill(&mut [0u8; 32]).unwrap();
        assert_eq!(format!("{pool:?}"), "RandomPool { left: 16, .. }");
    }
}

/// The hierarchical keyring's wrapping key is one SP 800-108 counter-mode
/// block: HMAC-SHA256(branch key, 00000001 || label || 00 || salt ||
/// 00000100), computed here with the hmac crate directly.
#[cfg(feature = "hierarchy")]
#[test]
fn counter_mode_kdf_is_one_hmac_block() {
    use hmac::{KeyInit, Mac};
    let branch = [7u8; 32];
    let salt = [9u8; 16];
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&branch).unwrap();
    mac.update(&[0, 0, 0, 1]);
    mac.update(b"aws-kms-hierarchy");
    mac.update(&[0]);
    mac.update(&salt);
    mac.update(&[0, 0, 1, 0]);
    let want = mac.finalize().into_bytes();
    let got = super::kdf_counter_hmac_sha256(&branch, b"aws-kms-hierarchy", &salt).unwrap();
    assert_eq!(got.as_slice(), want.as_slice());
}
