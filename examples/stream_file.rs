//! Streams a file through encryption and back, in memory bounded by the
//! frame length, whatever the file's size.
//!
//! Run: `cargo run --release --example stream_file [FILE]` (without FILE it
//! makes a 16 MiB file in the system's temporary directory).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;

use envseal::{blocking, AlgorithmSuite, Config, EncryptionContext, Error, RawAesKeyring, WrappingKey};

fn main() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("envseal-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // 1. The input: the file given, or 16 MiB of sample data.
    let input: PathBuf = match std::env::args_os().nth(1) {
        Some(p) => p.into(),
        None => {
            let p = dir.join("sample.bin");
            let mut w = BufWriter::new(File::create(&p)?);
            for i in 0..(16u32 << 20) / 4 {
                w.write_all(&i.to_le_bytes())?;
            }
            w.flush()?;
            p
        }
    };

    // 2. A client: the unsigned committing suite, 64 KiB frames.
    let keyring = RawAesKeyring::new("envseal-demo", "file-key", WrappingKey::from_slice(&[9u8; 32])?)?;
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .frame_length(64 * 1024)
        .build()?;
    let client = blocking::Client::builder(keyring).config(config).build()?;
    let context = EncryptionContext::from([("file", "sample")]);

    // 3. Encrypt: copy the file into the writer, then finish (which writes
    //    the final frame: without it the message is truncated).
    let sealed = dir.join("sample.esdk");
    let mut writer = client.encrypt_stream(&context, BufWriter::new(File::create(&sealed)?))?;
    let copied = io::copy(&mut BufReader::new(File::open(&input)?), &mut writer).map_err(Error::from_io)?;
    writer.finish().map_err(Error::from_io)?.flush()?;

    // 4. Decrypt: each frame is released once its tag verifies; the reader
    //    fails (never ends early) on a truncated or altered message.
    let restored = dir.join("sample.out");
    let mut reader = client.decrypt_stream(&context, BufReader::new(File::open(&sealed)?))?;
    let mut out = BufWriter::new(File::create(&restored)?);
    io::copy(&mut reader, &mut out).map_err(Error::from_io)?;
    out.flush()?;
    assert!(reader.is_complete());

    let same = std::fs::read(&input)? == std::fs::read(&restored)?;
    println!(
        "{copied} bytes -> {} byte message -> {} bytes, identical: {same}",
        std::fs::metadata(&sealed)?.len(),
        std::fs::metadata(&restored)?.len()
    );
    std::fs::remove_dir_all(&dir)?;
    assert!(same);
    Ok(())
}
