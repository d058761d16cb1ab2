//! The signed, hash-chained manifest of evidence files.
//!
//! `manifest.jsonl` is append-only: one JSON object a line, each naming one file
//! added to (or deleted from) the store, with its sha256, size, alert and the
//! wall time, the sha256 of the previous line, and an ed25519 signature over the
//! line's other fields. Changing a file breaks its hash; changing, dropping or
//! reordering a line breaks the chain (seq and `prev`); forging a line needs the
//! private key. Retention deletions are entries too (`op: "delete"`), so a file
//! gone by policy is told apart from a file gone by tampering.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Add,
    Delete,
}

/// One manifest line; `sig` covers the JSON of every other field, in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub op: Op,
    /// Relative to the store directory.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub alert: String,
    pub wall_ms: u64,
    /// sha256 of the previous line (its exact bytes), [`GENESIS`] for the first.
    pub prev: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl Entry {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.sig = None;
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    /// Checks the signature against `key`.
    pub fn signature_ok(&self, key: &VerifyingKey) -> bool {
        let Some(sig) = self.sig.as_deref().and_then(|s| hex::decode(s).ok()) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&sig) else {
            return false;
        };
        key.verify(&self.signed_bytes(), &sig).is_ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing key {path}: not an ed25519 key written by `vigil keygen` (64 hex digits)")]
    Format { path: PathBuf },
    #[error("signing key {path}: cannot write")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("public key {text:?}: not 64 hex digits of an ed25519 public key")]
    Public { text: String },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// Reads a private key file (64 hex digits).
pub fn read_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.into(),
        source,
    })?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyError::Format { path: path.into() })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Writes a new private key, readable by its owner only, and returns it.
pub fn generate_key(path: &Path) -> Result<SigningKey, KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&bytes);
    let write = |source| KeyError::Write {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write)?;
    writeln!(file, "{}", hex::encode(key.to_bytes())).map_err(write)?;
    file.sync_all().map_err(write)?;
    Ok(key)
}

pub fn public_hex(key: &VerifyingKey) -> String {
    hex::encode(key.to_bytes())
}

pub fn parse_public(text: &str) -> Result<VerifyingKey, KeyError> {
    let bad = || KeyError::Public {
        text: text.trim().chars().take(80).collect(),
    };
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256 and size of a file, read in blocks.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// The writer's end: appends signed entries and remembers the head.
pub struct ManifestWriter {
    path: PathBuf,
    key: SigningKey,
    next_seq: u64,
    head: String,
}

impl ManifestWriter {
    /// Opens (or starts) the manifest at `path`, continuing its chain.
    pub fn open(path: &Path, key: SigningKey) -> std::io::Result<Self> {
        let (next_seq, head) = match std::fs::read_to_string(path) {
            Ok(text) => {
                let (intact, last) = intact_prefix(&text);
                if intact < text.len() {
                    // A power cut mid-append leaves a torn last line. Numbering
                    // and the chain continue from the last whole entry, so the
                    // files of earlier runs still verify; the torn bytes are
                    // cut off (logged), or the next entry would be glued to them.
                    tracing::warn!(
                        "{}: torn last line dropped ({} bytes after entry {}): {:?}",
                        path.display(),
                        text.len() - intact,
                        last.as_ref().map_or(0, |(e, _)| e.seq),
                        &text[intact..text.len().min(intact + 120)]
                    );
                    let file = std::fs::OpenOptions::new().write(true).open(path)?;
                    file.set_len(intact as u64)?;
                    file.sync_all()?;
                }
                match last {
                    Some((entry, line)) => (entry.seq + 1, sha256_hex(line.as_bytes())),
                    None => (1, GENESIS.to_string()),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (1, GENESIS.to_string()),
            Err(e) => return Err(e),
        };
        Ok(ManifestWriter {
            path: path.into(),
            key,
            next_seq,
            head,
        })
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// How many entries the manifest holds.
    pub fn entries(&self) -> u64 {
        self.next_seq - 1
    }

    /// Signs and appends one entry (synced to disk before returning); returns it.
    pub fn append(
        &mut self,
        op: Op,
        path: &str,
        sha256: &str,
        bytes: u64,
        alert: &str,
        wall_ms: u64,
    ) -> std::io::Result<Entry> {
        let mut entry = Entry {
            seq: self.next_seq,
            op,
            path: path.into(),
            sha256: sha256.into(),
            bytes,
            alert: alert.into(),
            wall_ms,
            prev: self.head.clone(),
            sig: None,
        };
        let sig = self.key.sign(&entry.signed_bytes());
        entry.sig = Some(hex::encode(sig.to_bytes()));
        let line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)?;
        file.write_all(format!("{line}\n").as_bytes())?;
        file.sync_data()?;
        self.head = sha256_hex(line.as_bytes());
        self.next_seq += 1;
        Ok(entry)
    }
}

/// What is wrong with a manifest, one finding a line.
#[derive(Debug, Default)]
pub struct ChainCheck {
    /// Entries that parsed, in file order.
    pub entries: Vec<Entry>,
    pub failures: Vec<String>,
}

/// Reads manifest lines and checks sequence, chain and signatures.
/// `expect_gaps` accepts seq jumps (a bundle carries one alert's entries only).
pub fn check_chain(text: &str, key: &VerifyingKey, expect_gaps: bool) -> ChainCheck {
    let mut check = ChainCheck::default();
    let mut previous: Option<(u64, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                check
                    .failures
                    .push(format!("manifest line {n}: not a manifest entry ({e})"));
                previous = None;
                continue;
            }
        };
        match &previous {
            Some((seq, hash)) => {
                if entry.seq <= *seq {
                    check.failures.push(format!(
                        "manifest line {n}: entry {} comes after entry {seq}: entries were reordered or duplicated",
                        entry.seq
                    ));
                } else if entry.seq != seq + 1 && !expect_gaps {
                    check.failures.push(format!(
                        "manifest line {n}: entry {} follows entry {seq}: {} entr{} deleted",
                        entry.seq,
                        entry.seq - seq - 1,
                        if entry.seq - seq - 1 == 1 {
                            "y was"
                        } else {
                            "ies were"
                        }
                    ));
                } else if entry.seq == seq + 1 && entry.prev != *hash {
                    check.failures.push(format!(
                        "manifest line {n}: entry {} does not chain to entry {seq} (prev hash differs): an entry was altered",
                        entry.seq
                    ));
                }
            }
            None if !expect_gaps && check.entries.is_empty() => {
                if entry.seq != 1 {
                    check.failures.push(format!(
                        "manifest line {n}: starts at entry {}: entries 1..{} were deleted",
                        entry.seq,
                        entry.seq - 1
                    ));
                } else if entry.prev != GENESIS {
                    check.failures.push(format!(
                        "manifest line {n}: entry 1 does not start the chain"
                    ));
                }
            }
            None => {}
        }
        if !entry.signature_ok(key) {
            check.failures.push(format!(
                "manifest line {n}: entry {} ({}): signature does not verify with public key {}: the entry was altered or the key is not the one that signed it",
                entry.seq,
                entry.path,
                public_hex(key)
            ));
        }
        previous = Some((entry.seq, sha256_hex(line.as_bytes())));
        check.entries.push(entry);
    }
    check
}

/// The manifest's whole part: the byte length up to and including the last line
/// that is a complete entry (ending in a newline), and that entry with its text.
/// Anything after it is a torn append; lines that do not parse *before* it are
/// left for `verify` to report, never cut.
fn intact_prefix(text: &str) -> (usize, Option<(Entry, &str)>) {
    let mut offset = 0;
    let mut intact = 0;
    let mut last = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        if line.ends_with('\n')
            && let Ok(entry) = serde_json::from_str::<Entry>(body)
        {
            intact = offset + line.len();
            last = Some((entry, body));
        } else if body.trim().is_empty() && last.is_none() {
            intact = offset + line.len();
        }
        offset += line.len();
    }
    if text[intact..].trim().is_empty() {
        intact = text.len();
    }
    (intact, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn manifest(entries: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.jsonl");
        let mut w = ManifestWriter::open(&path, key()).unwrap();
        for i in 0..entries {
            w.append(Op::Add, &format!("f{i}"), "ab", 1, "a", 1)
                .unwrap();
        }
        (dir, path)
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_numbering_continues() {
        let (_d, path) = manifest(3);
        let whole = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{whole}{{\"seq\":4,\"op\":\"add\",\"pa")).unwrap();
        let mut w = ManifestWriter::open(&path, key()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            whole,
            "torn bytes cut off"
        );
        assert_eq!(w.append(Op::Add, "f9", "ab", 1, "a", 2).unwrap().seq, 4);
        let text = std::fs::read_to_string(&path).unwrap();
        let check = check_chain(&text, &key().verifying_key(), false);
        assert!(check.failures.is_empty(), "{:?}", check.failures);
        assert_eq!(check.entries.len(), 4);
        // A whole file is left as it is.
        let before = std::fs::read_to_string(&path).unwrap();
        ManifestWriter::open(&path, key()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn intact_chain_verifies_and_continues_after_reopen() {
        let (_d, path) = manifest(3);
        let mut w = ManifestWriter::open(&path, key()).unwrap();
        assert_eq!(w.append(Op::Delete, "f0", "ab", 1, "a", 2).unwrap().seq, 4);
        let text = std::fs::read_to_string(&path).unwrap();
        let check = check_chain(&text, &key().verifying_key(), false);
        assert!(check.failures.is_empty(), "{:?}", check.failures);
        assert_eq!(check.entries.len(), 4);
    }

    #[test]
    fn deleted_reordered_altered_and_wrong_key_are_named() {
        let (_d, path) = manifest(4);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let k = key().verifying_key();

        let deleted = [lines[0], lines[2], lines[3]].join("\n");
        let f = check_chain(&deleted, &k, false).failures;
        assert!(f.iter().any(|m| m.contains("1 entry was deleted")), "{f:?}");

        let reordered = [lines[0], lines[2], lines[1], lines[3]].join("\n");
        let f = check_chain(&reordered, &k, false).failures;
        assert!(f.iter().any(|m| m.contains("reordered")), "{f:?}");

        let altered = text.replacen("\"f1\"", "\"fX\"", 1);
        let f = check_chain(&altered, &k, false).failures;
        assert!(f.iter().any(|m| m.contains("signature")), "{f:?}");

        let other = SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        let f = check_chain(&text, &other, false).failures;
        assert_eq!(f.len(), 4, "{f:?}");
    }
}
