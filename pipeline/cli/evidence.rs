//! `vigil evidence` and `vigil keygen`: the signed manifest checked, one alert's
//! evidence exported as a bundle, and the key that signs it all.

use super::open_store;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum EvidenceCommand {
    /// Check files against the manifest, its hash chain and its signatures.
    ///
    /// Names exactly what fails: a changed file, a missing file, a deleted or
    /// reordered manifest entry, a bad signature. Files removed by retention are
    /// recorded as deletions and pass. Exits non-zero on any failure.
    Verify {
        /// The store to check (with ALERT_ID: only that alert's files).
        #[arg(long, short, required_unless_present = "bundle")]
        config: Option<PathBuf>,
        alert_id: Option<String>,
        /// Check an exported bundle instead of the store.
        #[arg(long, conflicts_with = "config")]
        bundle: Option<PathBuf>,
        /// The public key you trust (hex, from `vigil keygen`); default: the
        /// store's `signing.pub` or the bundle's `public_key.txt`.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Write one alert's evidence bundle: clip(s), snapshots, events, manifest
    /// entries, public key, SHA256SUMS and a README on how to check it.
    Export {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
        #[arg(long)]
        out: PathBuf,
        /// The case number or reason for the export (e.g. 沪公浦刑2026-117号):
        /// written into the bundle's case.txt and the alert's access log.
        #[arg(long)]
        reason: String,
    },
}

/// Create an ed25519 key that signs the evidence manifest.
///
/// Writes the private key (mode 0600) and prints the public key: give the
/// public key to the police, who pin it with `vigil evidence verify
/// --public-key`. Point `[storage] signing_key` at the file.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key; refuses to overwrite.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn execute(command: EvidenceCommand) -> Result<ExitCode> {
    match command {
        EvidenceCommand::Verify {
            config,
            alert_id,
            bundle,
            public_key,
        } => {
            let pinned = public_key
                .as_deref()
                .map(vigil::store::parse_public)
                .transpose()?;
            let (what, v) = match (bundle, config) {
                (Some(bundle), _) => (
                    bundle.display().to_string(),
                    vigil::store::verify_bundle(&bundle, pinned.as_ref())?,
                ),
                (None, Some(config)) => {
                    let store = open_store(&config)?;
                    let key = match pinned {
                        Some(k) => k,
                        None => store.public_key()?,
                    };
                    let v = store.verify(alert_id.as_deref(), &key)?;
                    (store.dir().display().to_string(), v)
                }
                (None, None) => anyhow::bail!("give --config or --bundle"),
            };
            for n in &v.notes {
                println!("MISSING {n}");
            }
            for f in &v.failures {
                println!("FAIL {f}");
            }
            if v.failures.is_empty() {
                println!(
                    "OK {what}: {} manifest entries, chain and signatures intact; {} file(s) match",
                    v.entries, v.files_ok
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{what}: {} failure(s)", v.failures.len());
                Ok(ExitCode::FAILURE)
            }
        }
        EvidenceCommand::Export {
            config,
            id,
            out,
            reason,
        } => {
            let loaded = super::load_config(&config)?;
            let store = open_store(&config)?;
            let zone = match &loaded.config.console {
                Some(console) => console.zone()?,
                None => jiff::tz::TimeZone::system(),
            };
            let camera = store.alert(&id)?.alert.camera;
            let camera_name = loaded
                .config
                .cameras
                .iter()
                .find(|c| c.id == camera)
                .and_then(|c| c.name.as_deref());
            // The login that ran the command: the custody log names a person.
            let by = std::env::var("SUDO_USER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "cli".into());
            let request = vigil::store::ExportRequest {
                reason: &reason,
                by: &by,
                zone: &zone,
                camera_name,
            };
            let files = store.export(&id, &request, &out)?;
            let sha = vigil::store::manifest::sha256_hex(&std::fs::read(&out)?);
            store.log_access(
                &by,
                "export",
                Some(&id),
                &format!("bundle of {files} file(s), sha256 {sha}; {reason}"),
            )?;
            println!(
                "{}: alert {id}, {files} evidence file(s), case.txt, events, access log, signed manifest entries, public key, SHA256SUMS, README.txt",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn keygen(args: KeygenArgs) -> Result<ExitCode> {
    let KeygenArgs { out } = args;
    let key = vigil::store::generate_key(&out)?;
    eprintln!(
        "private key written to {} (mode 0600); set [storage] signing_key to it",
        out.display()
    );
    println!("{}", vigil::store::public_hex(&key.verifying_key()));
    Ok(ExitCode::SUCCESS)
}
