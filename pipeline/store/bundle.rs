//! Evidence bundles: one alert's files, events and signed manifest entries in a
//! zip the police can check with `sha256sum` alone or with
//! `vigil evidence verify --bundle`.

use super::manifest::{self, Entry, Op};
use super::{AlertDetail, Store, StoreError};
use ed25519_dalek::VerifyingKey;
use std::io::{Read, Write};
use std::path::Path;

const README: &str = "\
vigil 证据包 / vigil evidence bundle
====================================

中文说明
--------
case.txt            本案摘要：摄像机名称、告警类型、本地时间及时区、保全原因、
                    导出人、导出事由或案号
access_log.json     本告警的访问记录（查看、导出、标记、保全），含本地时间
alert.json          告警原始记录；events.json 为经 MQTT 发布的全部事件
evidence/...        快照（原图与标注图）及视频片段
manifest.jsonl      证据文件的签名清单（sha256、大小、前一条目的哈希、ed25519 签名）
public_key.txt      验证签名用的公钥
SHA256SUMS          本包内其他每个文件的 sha256

仅用 sha256sum 核对（先解压）：
    sha256sum -c SHA256SUMS
完整核对（含签名）：
    vigil evidence verify --bundle 本文件.zip --public-key <另行取得的公钥>
未指定 --public-key 时使用包内公钥：可证明完整性，不能证明来源。

English
-------
case.txt            the case at a glance: camera name, kind, local times with the
                    time zone, hold reason, who exported and the case number or
                    reason given
access_log.json     this alert's chain of custody (views, exports, tags, holds),
                    with local times
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

/// Who asks for a bundle and why, and how to show its times: an export names
/// its case (a case number or a reason), and a bundle read far from the
/// compound must not leave its reader converting Unix milliseconds.
pub struct ExportRequest<'a> {
    /// The case number or reason; required, at most 200 characters.
    pub reason: &'a str,
    pub by: &'a str,
    pub zone: &'a jiff::tz::TimeZone,
    /// The camera's name in the config, when it still has one.
    pub camera_name: Option<&'a str>,
}

impl ExportRequest<'_> {
    fn local(&self, ms: i64) -> String {
        crate::time::local_text(ms, self.zone, "%Y-%m-%d %H:%M:%S %:z")
    }

    fn zone_name(&self) -> String {
        self.zone.iana_name().unwrap_or("local").to_string()
    }
}

/// `case.txt` and `case.json`: the case at a glance, in both languages.
fn case_files(detail: &AlertDetail, request: &ExportRequest<'_>, now_ms: i64) -> (String, String) {
    let a = &detail.alert;
    let zone = request.zone_name();
    let camera = match request.camera_name {
        Some(name) => format!("{name} ({})", a.camera),
        None => a.camera.clone(),
    };
    let end = a.end_wall_ms.map(|ms| request.local(ms));
    let hold = detail
        .hold
        .as_ref()
        .map(|h| format!("{} ({}, {})", h.reason, h.who, request.local(h.at_ms)));
    let text = format!(
        "告警 / Alert:                 {id}\n\
         摄像机 / Camera:              {camera}\n\
         类型 / Kind:                  {kind} ({severity})\n\
         摘要 / Summary:               {summary}\n\
         时区 / Time zone:             {zone}\n\
         开始 / Start:                 {start}\n\
         结束 / End:                   {end}\n\
         保全 / Hold:                  {hold}\n\
         标记 / Tags:                  {tags}\n\
         案号或事由 / Case or reason:  {reason}\n\
         导出人 / Exported by:         {by}\n\
         导出时间 / Exported at:       {at}\n",
        id = a.id,
        kind = a.kind,
        severity = a.severity,
        summary = a.summary,
        start = request.local(a.start_wall_ms),
        end = end.as_deref().unwrap_or("—"),
        hold = hold.as_deref().unwrap_or("—"),
        tags = if a.tags.is_empty() {
            "—".to_string()
        } else {
            a.tags.join(", ")
        },
        reason = request.reason,
        by = request.by,
        at = request.local(now_ms),
    );
    let json = serde_json::json!({
        "alert": a.id,
        "camera": { "id": a.camera, "name": request.camera_name },
        "kind": a.kind,
        "time_zone": zone,
        "start": { "unix_ms": a.start_wall_ms, "local": request.local(a.start_wall_ms) },
        "end": a.end_wall_ms.map(|ms| serde_json::json!({ "unix_ms": ms, "local": request.local(ms) })),
        "hold": detail.hold.as_ref().map(|h| serde_json::json!({
            "who": h.who, "reason": h.reason, "at_unix_ms": h.at_ms, "at_local": request.local(h.at_ms),
        })),
        "export": {
            "reason": request.reason, "by": request.by,
            "at_unix_ms": now_ms, "at_local": request.local(now_ms),
        },
    });
    (
        text,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
}

pub(super) fn write(
    store: &Store,
    detail: &AlertDetail,
    key: &VerifyingKey,
    request: &ExportRequest<'_>,
    out: &Path,
) -> Result<usize, StoreError> {
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(StoreError::Bundle {
            path: out.into(),
            reason: "an export needs a case number or reason (1 to 200 characters)".into(),
        });
    }
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
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let (case_text, case_json) = case_files(detail, request, now_ms);
    add(&mut zip, "case.txt", case_text.as_bytes())?;
    add(&mut zip, "case.json", case_json.as_bytes())?;
    let access: Vec<serde_json::Value> = store
        .access_log(&detail.alert.id)?
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "at_unix_ms": r.at_ms, "at_local": request.local(r.at_ms),
                "who": r.who, "action": r.action, "detail": r.detail,
            })
        })
        .collect();
    let access = serde_json::to_string_pretty(&access).unwrap_or_default();
    add(&mut zip, "access_log.json", access.as_bytes())?;
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
    pub fn export(
        &self,
        id: &str,
        request: &ExportRequest<'_>,
        out: &Path,
    ) -> Result<usize, StoreError> {
        let detail = self.alert(id)?;
        let key = self.public_key()?;
        write(self, &detail, &key, request, out)
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
