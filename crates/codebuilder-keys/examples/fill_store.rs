//! Fills a key store with COUNT random ed25519 public keys, for `bench/keys.sh`.
//!
//! ```text
//! cargo run --release -p codebuilder-keys --example fill_store -- HOME COUNT
//! ```
//!
//! Keys are named `fill-<index>`; the key bytes come from a std-only generator seeded from the
//! index, so the same COUNT always gives the same keys and no new dependency is needed.
//!
//! Every key goes through `KeyStore::add`, so the records are exactly what the CLI writes.
//! Put HOME on a tmpfs for speed: each add fsyncs its two files.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use base64ct::{Base64, Encoding};
use codebuilder_core::{Home, KeyName};
use codebuilder_keys::{KeyStore, PublicKeyEntry};

/// splitmix64: turns consecutive indexes into well-spread seeds.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// xorshift64*: plenty for key bytes that only need to be distinct, not secret.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `ssh-ed25519 BASE64`, the blob being SSH wire format: string "ssh-ed25519", string 32 bytes.
fn key_text(index: u64) -> String {
    // A zero state would make xorshift emit zeros forever.
    let mut rng = XorShift(splitmix64(index) | 1);
    let mut blob = Vec::with_capacity(51);
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    for _ in 0..4 {
        blob.extend_from_slice(&rng.next().to_le_bytes());
    }
    format!("ssh-ed25519 {}", Base64::encode_string(&blob))
}

fn run(home: PathBuf, count: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
    let store = KeyStore::new(&Home::new(&home));
    for index in 0..count {
        let key = PublicKeyEntry::parse_text(&key_text(index))
            .with_context(|| format!("generated key {index} does not parse"))?;
        store.add(KeyName::parse(&format!("fill-{index}"))?, &key, false)?;
    }
    eprintln!(
        "fill_store: added {count} keys to {} in {:.1}s",
        home.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [home, count] => count.parse::<u64>().ok().map(|c| (PathBuf::from(home), c)),
        _ => None,
    };
    let Some((home, count)) = parsed else {
        eprintln!("usage: fill_store HOME COUNT");
        return ExitCode::from(2);
    };
    match run(home, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fill_store: {e:#}");
            ExitCode::FAILURE
        }
    }
}
