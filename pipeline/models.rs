//! Models: what `models/manifest.toml` says about the weights vigil knows, so
//! `vigil check` can warn when a config uses evaluation-only weights (AGPL).

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub license: String,
    #[serde(default)]
    pub evaluation_only: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    model: Vec<ManifestEntry>,
}

/// The manifest of the checkout vigil was built from.
pub fn manifest_path() -> PathBuf {
    Path::new(env!("VIGIL_REPO_ROOT")).join("models/manifest.toml")
}

pub fn manifest() -> Vec<ManifestEntry> {
    std::fs::read_to_string(manifest_path())
        .ok()
        .and_then(|t| toml::from_str::<Manifest>(&t).ok())
        .map(|m| m.model)
        .unwrap_or_default()
}

/// A warning if `model` is a file the manifest marks evaluation-only.
pub fn evaluation_only(model: &Path) -> Option<String> {
    let name = model.file_name()?.to_str()?;
    manifest()
        .into_iter()
        .find(|m| m.file == name && m.evaluation_only)
        .map(|m| {
            format!(
                "{} is {} licensed: for tests and evaluation only, never ship it as a default",
                m.file, m.license
            )
        })
}
