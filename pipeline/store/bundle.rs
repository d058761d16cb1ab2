//! Evidence bundles: one alert's files, events and signed manifest entries in a
//! zip the police can check with `sha256sum` alone or with
//! `vigil evidence verify --bundle`.

use super::manifest::{self, Entry, Op};
use super::{AlertDetail, Store, StoreError};
use ed25519_dalek::VerifyingKey;
use std::io::{Read, Write};
use std::path::Path;

const README: &str = "\
vigil evidence bundle
=====================

alert.json          the alert as stored (camera, kind, times, box, tags, hold)
events.json         every event published for the alert, as sent over MQTT
evidence/...        the snapshot (clean and annotated) and the clip(s)
manifest.jsonl      the store's manifest entries for these files: path, sha256,
                    size, alert, time, the previous entry's hash, and an ed25519
                    signature by the recording vigil
public_key.txt      the public key that verifies those signatures
SHA256SUMS          sha256 of every other file in this bundle

Check with sha256sum alone (unzip first):
    sha256sum -c SHA256SUMS
  and compare the sha256 of each evidence file with its line in manifest.jsonl.

Check everything, signatures included:
    vigil evidence verify --bundle THIS.zip --public-key <key you hold>
  --public-key pins the key you received from the compound separately; without
  it the key inside the bundle is used, which proves integrity but not origin.
";

pub(super) fn write(
    store: &Store,
    detail: &AlertDetail,
    key: &VerifyingKey,
    out: &Path,
) -> Result<usize, StoreError> {
    let fail = |reason: String| StoreError::Bundle {
        path: out.into(),
        reason,
    };
    let file = std::fs::File::create(out).map_err(|source| StoreError::File {
        path: out.into(),
        source,
    })?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut sums = String::new();
    let mut add = |zip: &mut zip::ZipWriter<std::fs::File>, name: &str, bytes: &[u8]| {
        sums += &format!("{}  {name}\n", manifest::sha256_hex(bytes));
        zip.start_file(name, options)
            .and_then(|_| zip.write_all(bytes).map_err(Into::into))
            .map_err(|e| fail(format!("writing {name}: {e}")))
    };
    let mut files = 0;
    for ev in detail.evidence.iter().filter(|e| e.deleted_ms.is_none()) {
        let abs = store.dir().join(&ev.path);
        let bytes = std::fs::read(&abs).map_err(|source| StoreError::File { path: abs, source })?;
        add(&mut zip, &ev.path, &bytes)?;
        files += 1;
    }
    let alert = serde_json::to_string_pretty(&detail.alert).unwrap_or_default();
    add(&mut zip, "alert.json", alert.as_bytes())?;
    let events = serde_json::to_string_pretty(&detail.events).unwrap_or_default();
    add(&mut zip, "events.json", events.as_bytes())?;
    let lines = store.manifest_lines_for(&detail.alert.id)?;
    add(
        &mut zip,
        "manifest.jsonl",
        (lines.join("\n") + "\n").as_bytes(),
    )?;
    add(
        &mut zip,
        "public_key.txt",
        format!("{}\n", manifest::public_hex(key)).as_bytes(),
    )?;
    add(&mut zip, "README.txt", README.as_bytes())?;
    zip.start_file("SHA256SUMS", options)
        .and_then(|_| zip.write_all(sums.as_bytes()).map_err(Into::into))
        .map_err(|e| fail(format!("writing SHA256SUMS: {e}")))?;
    let file = zip
        .finish()
        .map_err(|e| fail(format!("finishing the zip: {e}")))?;
    file.sync_all().map_err(|source| StoreError::File {
        path: out.into(),
        source,
    })?;
    Ok(files)
}

/// Checks a bundle: every manifest entry's signature (against `pinned`, else the
/// bundle's own key), every evidence file against its entry, and `SHA256SUMS`.
pub fn verify_bundle(
    path: &Path,
    pinned: Option<&VerifyingKey>,
) -> Result<super::Verification, StoreError> {
    let fail = |reason: String| StoreError::Bundle {
        path: path.into(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| StoreError::File {
        path: path.into(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| fail(format!("not a zip: {e}")))?;
    let mut read = |name: &str| -> Result<Option<Vec<u8>>, StoreError> {
        match zip.by_name(name) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)
                    .map_err(|e| fail(format!("{name}: {e}")))?;
                Ok(Some(bytes))
            }
            Err(zip::result::ZipError::FileNotFound) => Ok(None),
            Err(e) => Err(fail(format!("{name}: {e}"))),
        }
    };
    let mut failures = Vec::new();
    let bundled_key = read("public_key.txt")?
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .ok_or_else(|| fail("public_key.txt is missing".into()))?;
    let bundled_key = manifest::parse_public(&bundled_key)?;
    if let Some(p) = pinned
        && p != &bundled_key
    {
        failures.push(format!(
            "public_key.txt holds {}, not the key you pinned ({}): the bundle's key was swapped",
            manifest::public_hex(&bundled_key),
            manifest::public_hex(p)
        ));
    }
    let key = pinned.unwrap_or(&bundled_key);
    let text = read("manifest.jsonl")?
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .ok_or_else(|| fail("manifest.jsonl is missing".into()))?;
    let chain = manifest::check_chain(&text, key, true);
    failures.extend(chain.failures);
    let mut files_ok = 0;
    let live: Vec<&Entry> = chain
        .entries
        .iter()
        .filter(|e| e.op == Op::Add)
        .filter(|e| {
            !chain
                .entries
                .iter()
                .any(|d| d.op == Op::Delete && d.path == e.path && d.seq > e.seq)
        })
        .collect();
    if live.is_empty() {
        failures.push("manifest.jsonl lists no evidence file".into());
    }
    for entry in live {
        match read(&entry.path)? {
            Some(bytes) => {
                let actual = manifest::sha256_hex(&bytes);
                if actual != entry.sha256 {
                    failures.push(format!(
                        "{}: content changed: sha256 {actual}, manifest entry {} says {}",
                        entry.path, entry.seq, entry.sha256
                    ));
                } else {
                    files_ok += 1;
                }
            }
            None => failures.push(format!(
                "{}: listed in manifest entry {} but missing from the bundle",
                entry.path, entry.seq
            )),
        }
    }
    if let Some(sums) = read("SHA256SUMS")? {
        for line in String::from_utf8_lossy(&sums).lines() {
            let Some((sum, name)) = line.split_once("  ") else {
                continue;
            };
            match read(name)? {
                Some(bytes) if manifest::sha256_hex(&bytes) == sum => {}
                Some(_) => failures.push(format!("{name}: does not match SHA256SUMS")),
                None => failures.push(format!("{name}: listed in SHA256SUMS but missing")),
            }
        }
    } else {
        failures.push("SHA256SUMS is missing".into());
    }
    Ok(super::Verification {
        entries: chain.entries.len(),
        files_ok,
        failures,
        notes: Vec::new(),
    })
}

impl Store {
    /// Writes one alert's evidence bundle (zip) for the police.
    pub fn export(&self, id: &str, out: &Path) -> Result<usize, StoreError> {
        let detail = self.alert(id)?;
        let key = self.public_key()?;
        write(self, &detail, &key, out)
    }

    /// The manifest's lines for one alert's files, exactly as stored.
    fn manifest_lines_for(&self, alert: &str) -> Result<Vec<String>, StoreError> {
        let path = self.dir.join("manifest.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|source| StoreError::File {
            path: path.clone(),
            source,
        })?;
        Ok(text
            .lines()
            .filter(|l| serde_json::from_str::<manifest::Entry>(l).is_ok_and(|e| e.alert == alert))
            .map(String::from)
            .collect())
    }
}
