//! A tokio service's job: encrypts a file into another with `tokio::fs`
//! and decrypts it back, through `AsyncWrite`/`AsyncRead` streams, in
//! memory bounded by a few batches whatever the file's size; the frames
//! are sealed and opened on the rayon pool, so the runtime's threads stay
//! free for other requests.
//!
//! Run: `cargo run --release --example async_file [FILE]` (without FILE it
//! makes a 16 MiB file in the system's temporary directory).

use std::path::PathBuf;

use envseal::{AlgorithmSuite, Client, Config, EncryptionContext, Error, RawAesKeyring, WrappingKey};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("envseal-async-{}", std::process::id()));
    tokio::fs::create_dir_all(&dir).await?;
    // 1. The input: the file given, or 16 MiB of sample data.
    let input: PathBuf = match std::env::args_os().nth(1) {
        Some(p) => p.into(),
        None => {
            let p = dir.join("sample.bin");
            let data: Vec<u8> = (0..16u32 << 18).flat_map(u32::to_le_bytes).collect();
            tokio::fs::write(&p, data).await?;
            p
        }
    };

    // 2. A client: the unsigned committing suite, 64 KiB frames.
    let keyring = RawAesKeyring::new("envseal-demo", "file-key", WrappingKey::from_slice(&[9u8; 32])?)?;
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .frame_length(64 * 1024)
        .build()?;
    let client = Client::builder(keyring).config(config).build()?;
    let context = EncryptionContext::from([("file", "sample")]);

    // 3. Encrypt: the writer reads the file straight into its batches
    //    (`copy_from`; `tokio::io::copy` would work too, with one more copy
    //    of every byte), then shut it down (which writes the final frame:
    //    without it the message is truncated).
    let sealed = dir.join("sample.esdk");
    let out = BufWriter::new(File::create(&sealed).await?);
    let mut writer = client.encrypt_stream(&context, out).await?;
    let copied = writer.copy_from(&mut File::open(&input).await?).await?;
    writer.shutdown().await?;

    // 4. Decrypt: each batch of frames is released once its tags verify; the
    //    reader fails (never ends early) on a truncated or altered message.
    let restored = dir.join("sample.out");
    let source = BufReader::new(File::open(&sealed).await?);
    let mut reader = client.decrypt_stream(&context, source).await?;
    let mut out = File::create(&restored).await?;
    tokio::io::copy_buf(&mut reader, &mut out).await?;
    out.flush().await?;
    assert!(reader.is_complete());

    let same = same_bytes(&input, &restored).await?;
    println!(
        "{copied} bytes -> {} byte message -> {} bytes, identical: {same}",
        tokio::fs::metadata(&sealed).await?.len(),
        tokio::fs::metadata(&restored).await?.len()
    );
    tokio::fs::remove_dir_all(&dir).await?;
    assert!(same);
    Ok(())
}

/// Whether two files hold the same bytes, compared a piece at a time.
async fn same_bytes(a: &std::path::Path, b: &std::path::Path) -> std::io::Result<bool> {
    let (mut a, mut b) = (
        BufReader::new(File::open(a).await?),
        BufReader::new(File::open(b).await?),
    );
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = a.read(&mut x).await?;
        if n == 0 {
            return Ok(b.read(&mut y[..1]).await? == 0);
        }
        if b.read_exact(&mut y[..n]).await.is_err() || x[..n] != y[..n] {
            return Ok(false);
        }
    }
}
