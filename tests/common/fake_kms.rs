//! A small fake of KMS's JSON API (GenerateDataKey, Encrypt, Decrypt) for
//! what moto 5.2.5 cannot do: multi-Region keys (moto's blobs hold 36-byte
//! key ids, so `mrk-` keys never decrypt). Replicas share key material: a
//! blob made under `…:us-east-1:…:key/mrk-x` decrypts under the same key
//! in any region. The fake also checks that each request is signed for the
//! region of the key ARN it names, which is what a regional KMS enforces.
//! Not cryptography: blobs are plain JSON, good only for tests. The one
//! exception: RSA keys given with [`FakeKms::add_rsa_key`] decrypt with
//! real RSAES-OAEP (SHA-1 or SHA-256), for the KMS RSA keyring.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A way for the fake to misbehave, for the keyrings' response checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    None,
    /// Answer with another key's ARN.
    WrongKeyId,
    /// Answer with a KeyId that is not a key ARN.
    NotAnArn,
    /// Return a 16-byte data key whatever was asked.
    ShortKey,
    /// Omit the CiphertextBlob.
    NoCiphertext,
}

/// Decides whether a request's credentials are accepted: gets the access
/// key id and the session token (empty if none); `Some(code)` rejects the
/// request with that error code (e.g. `ExpiredTokenException`).
pub type CredentialCheck = Arc<dyn Fn(&str, &str) -> Option<&'static str> + Send + Sync>;

/// RSA private keys (PKCS#8 DER) by key identity (see `key_identity`).
type RsaKeys = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

pub struct FakeKms {
    pub url: String,
    pub quirk: Arc<Mutex<Quirk>>,
    /// (operation, KeyId, signing region) of every request.
    pub calls: Arc<Mutex<Vec<(String, String, String)>>>,
    /// RSA private keys (PKCS#8 DER) by key identity.
    rsa_keys: RsaKeys,
    _server: super::loopback::Loopback,
}

impl FakeKms {
    pub fn start() -> FakeKms {
        Self::start_checking(Arc::new(|_: &str, _: &str| None))
    }

    /// A fake that asks `check` about every request's credentials.
    pub fn start_checking(check: CredentialCheck) -> FakeKms {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let quirk = Arc::new(Mutex::new(Quirk::None));
        let rsa_keys = RsaKeys::default();
        let (seen, q, rsa) = (Arc::clone(&calls), Arc::clone(&quirk), Arc::clone(&rsa_keys));
        let server = super::loopback::serve(move |sock| {
            let (seen, q, check, rsa) = (
                Arc::clone(&seen),
                Arc::clone(&q),
                Arc::clone(&check),
                Arc::clone(&rsa),
            );
            async move {
                let _ = serve(sock, seen, q, check, rsa).await;
            }
        });
        FakeKms {
            url: format!("http://{}", server.addr),
            quirk,
            calls,
            rsa_keys,
            _server: server,
        }
    }

    /// Makes `key_arn` (and, for an `mrk-` key, its replicas in every
    /// region) an RSA key whose Decrypt is real RSAES-OAEP with the
    /// PKCS#8 PEM private key `private_pem`.
    pub fn add_rsa_key(&self, key_arn: &str, private_pem: &str) {
        let (label, der) = pem_rfc7468::decode_vec(private_pem.as_bytes()).unwrap();
        assert_eq!(label, "PRIVATE KEY", "PKCS#8");
        let identity = key_identity(key_arn).expect("a key ARN");
        self.rsa_keys.lock().unwrap().push((identity, der));
    }

    pub fn calls(&self) -> Vec<(String, String, String)> {
        self.calls.lock().unwrap().clone()
    }
}

/// The data key every GenerateDataKey returns (tests look for it in logs).
pub fn data_key(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// The key material's identity: the ARN without its region for a
/// multi-Region key, the whole ARN otherwise.
fn key_identity(key_id: &str) -> Option<String> {
    let parts: Vec<&str> = key_id.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || !parts[5].starts_with("key/") {
        return None;
    }
    if parts[5].starts_with("key/mrk-") {
        Some(format!(
            "{}:{}:{}::{}:{}",
            parts[0], parts[1], parts[2], parts[4], parts[5]
        ))
    } else {
        Some(key_id.to_owned())
    }
}

fn arn_region(key_id: &str) -> &str {
    key_id.split(':').nth(3).unwrap_or("")
}

fn error(code: &str) -> (u16, Value) {
    (
        400,
        json!({"__type": code, "message": format!("fake kms: {code}")}),
    )
}

/// RSAES-OAEP decrypt with `pkcs8` under KMS's algorithm name.
#[cfg(feature = "aws-lc")]
fn rsa_oaep_decrypt(pkcs8: &[u8], algorithm: &str, ciphertext: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::rsa::{
        OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
    };
    let oaep = match algorithm {
        "RSAES_OAEP_SHA_1" => &OAEP_SHA1_MGF1SHA1,
        "RSAES_OAEP_SHA_256" => &OAEP_SHA256_MGF1SHA256,
        _ => return None,
    };
    let key = OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(pkcs8).ok()?).ok()?;
    let mut out = vec![0u8; key.min_output_size()];
    let n = key.decrypt(oaep, ciphertext, &mut out, None).ok()?.len();
    out.truncate(n);
    Some(out)
}

#[cfg(not(feature = "aws-lc"))]
fn rsa_oaep_decrypt(_: &[u8], _: &str, _: &[u8]) -> Option<Vec<u8>> {
    panic!("the fake KMS's real RSA needs the aws-lc feature")
}

fn handle(op: &str, req: &Value, signing_region: &str, rsa_keys: &RsaKeys) -> (u16, Value) {
    let key_id = req["KeyId"].as_str().unwrap_or("");
    let Some(identity) = key_identity(key_id) else {
        return error("NotFoundException");
    };
    if arn_region(key_id) != signing_region {
        return error("IncorrectRegionForKey");
    }
    let context = req.get("EncryptionContext").cloned().unwrap_or(json!({}));
    let seal = |plaintext: &[u8]| -> String {
        let blob = json!({"k": identity, "ec": context, "p": B64.encode(plaintext)});
        B64.encode(blob.to_string())
    };
    let rsa_key = rsa_keys
        .lock()
        .unwrap()
        .iter()
        .find(|(id, _)| *id == identity)
        .map(|(_, der)| der.clone());
    match op {
        // A real RSA key's Decrypt: RSAES-OAEP with its private key.
        "Decrypt" if rsa_key.is_some() => {
            let algorithm = req["EncryptionAlgorithm"].as_str().unwrap_or("SYMMETRIC_DEFAULT");
            let ciphertext = B64
                .decode(req["CiphertextBlob"].as_str().unwrap_or(""))
                .unwrap_or_default();
            match rsa_key.and_then(|der| rsa_oaep_decrypt(&der, algorithm, &ciphertext)) {
                Some(plaintext) => (
                    200,
                    json!({"Plaintext": B64.encode(plaintext), "KeyId": key_id, "EncryptionAlgorithm": algorithm}),
                ),
                None => error("InvalidCiphertextException"),
            }
        }
        "DescribeKey" => (
            200,
            json!({"KeyMetadata": {"KeyId": key_id, "Arn": key_id, "KeyState": "Enabled", "Enabled": true,
                "KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "SYMMETRIC_DEFAULT"}}),
        ),
        "GenerateDataKey" => {
            let n = req["NumberOfBytes"].as_u64().unwrap_or(32) as usize;
            let plaintext = data_key(n);
            (
                200,
                json!({"CiphertextBlob": seal(&plaintext), "Plaintext": B64.encode(&plaintext), "KeyId": key_id}),
            )
        }
        "Encrypt" => {
            let plaintext = B64
                .decode(req["Plaintext"].as_str().unwrap_or(""))
                .unwrap_or_default();
            (200, json!({"CiphertextBlob": seal(&plaintext), "KeyId": key_id}))
        }
        // An RSA key's Decrypt (the KMS RSA keyring): the fake holds no RSA
        // key, so it answers 80 zero bytes (a digest and a data key that
        // never match), for the keyring's response checks.
        "Decrypt" if req.get("EncryptionAlgorithm").is_some() => (
            200,
            json!({"Plaintext": B64.encode([0u8; 80]), "KeyId": key_id,
                "EncryptionAlgorithm": req["EncryptionAlgorithm"]}),
        ),
        "Decrypt" => {
            let blob = B64
                .decode(req["CiphertextBlob"].as_str().unwrap_or(""))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let Some(blob) = blob else {
                return error("InvalidCiphertextException");
            };
            if blob["k"].as_str() != Some(identity.as_str()) {
                return error("IncorrectKeyException");
            }
            if blob["ec"] != context {
                return error("InvalidCiphertextException");
            }
            (200, json!({"Plaintext": blob["p"], "KeyId": key_id}))
        }
        _ => error("UnsupportedOperationException"),
    }
}

async fn serve(
    mut sock: TcpStream,
    seen: Arc<Mutex<Vec<(String, String, String)>>>,
    quirk: Arc<Mutex<Quirk>>,
    check: CredentialCheck,
    rsa_keys: RsaKeys,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req_http) = super::stand_in::read_request(&mut sock, &mut buf).await? {
        let header = |name: &str| req_http.header(name).to_owned();
        let body = &req_http.body;
        let op = header("x-amz-target").rsplit('.').next().unwrap_or("").to_owned();
        // Credential=AKID/DATE/REGION/kms/aws4_request
        let auth = header("authorization");
        let region = auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').nth(2))
            .unwrap_or("")
            .to_owned();
        let access_key = auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').next())
            .unwrap_or("")
            .to_owned();
        let req: Value = serde_json::from_slice(body).unwrap_or(json!({}));
        seen.lock().unwrap().push((
            op.clone(),
            req["KeyId"].as_str().unwrap_or("").to_owned(),
            region.clone(),
        ));
        let (status, mut value) = match check(&access_key, &header("x-amz-security-token")) {
            Some(code) => error(code),
            None => handle(&op, &req, &region, &rsa_keys),
        };
        if status == 200 {
            match *quirk.lock().unwrap() {
                Quirk::None => {}
                Quirk::WrongKeyId => {
                    value["KeyId"] = json!("arn:aws:kms:us-east-1:999999999999:key/someone-else");
                }
                Quirk::NotAnArn => value["KeyId"] = json!("alias/not-a-key-arn"),
                Quirk::ShortKey if value.get("Plaintext").is_some() => {
                    value["Plaintext"] = json!(B64.encode([1u8; 16]));
                }
                Quirk::ShortKey => {}
                Quirk::NoCiphertext => {
                    if let Some(o) = value.as_object_mut() {
                        o.remove("CiphertextBlob");
                    }
                }
            }
        }
        let body = value.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(response.as_bytes()).await?;
    }
    Ok(())
}
