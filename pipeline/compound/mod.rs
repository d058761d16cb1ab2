//! Compound: one compound's cameras run by several vigil nodes, PostgreSQL
//! deciding which node runs each camera, the broker telling who is alive.
//!
//! `vigil run -c compound.toml --node gate-1` runs this node's share: the
//! cameras pinned to it (`node = "gate-1"`) and, of the unpinned ones, those no
//! live node holds, up to an even share. Each camera is run under a lease row
//! renewed every quarter lease; a node whose leases lapse (killed, powered off,
//! cut off) has its unpinned cameras taken by the others, and the alerts it
//! had open end as `node_lost`. See `lease.rs` for the rules, `pg.rs` for the
//! tables, `node.rs` for the thread that keeps them. Every node's alerts are
//! copied to an index in PostgreSQL (`index.rs`) that every console searches
//! (`peers.rs`); a console opens another node's alert from that node, asking
//! it with a signed request (`forward.rs`).
//!
//! Why two witnesses: PostgreSQL alone cannot tell "node dead" from "node cut
//! off from PostgreSQL". A node keeps its cameras while it can renew, or while
//! the broker has its session (its will is unpublished); the others take a
//! lapsed camera only when the broker has published the holder's will, or when
//! they cannot reach the broker either. So PostgreSQL stopping for a while
//! stops nothing, and a node cut off from both stops its cameras before its
//! lease runs out.

pub mod forward;
mod index;
mod lease;
mod node;
mod peers;
mod pg;
mod sessions;
pub mod users;
mod witness;

pub use forward::{Forwarded, Refusal, Secret, SecretError};
pub use index::{Index, IndexError, Owner};
pub use lease::{Free, LeaseRow, Take, View};
pub use node::{Claim, IndexSource, LostSink, Node, NodeOptions, Tenure};
pub use peers::Peers;
pub use pg::LostAlert;
pub use witness::Witness;

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// `[compound]`: the PostgreSQL the nodes share.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompoundConfig {
    /// `postgres://user@host:port/database`, without a password: it comes
    /// from `password_file` or the `VIGIL_PG_PASSWORD` environment variable.
    pub database: String,
    /// File holding the database password (relative to the config).
    pub password_file: Option<PathBuf>,
    /// Seconds a node holds a camera without renewing. A lost node's cameras
    /// move after this plus up to a quarter of it (and the broker's notice).
    #[serde(default = "default_lease_s")]
    pub lease_s: f64,
    /// File holding the compound's shared secret (the same file on every
    /// node, at least 32 bytes, relative to the config): each console signs
    /// with it what it asks another node for (an alert's page, its evidence,
    /// an acknowledgement). Unset: each console shows other nodes' alerts but
    /// cannot open their evidence.
    pub secret_file: Option<PathBuf>,
}

fn default_lease_s() -> f64 {
    8.0
}

#[derive(Debug, thiserror::Error)]
pub enum CompoundError {
    #[error("[compound] database {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("[compound] database {url:?}")]
    Url {
        url: String,
        #[source]
        source: postgres::Error,
    },
    #[error("[compound] password_file {path}: cannot read")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--node {node:?}: needs [compound] in the config (the PostgreSQL that shares the cameras)"
    )]
    NoCompound { node: String },
    #[error("node name {node:?}: letters, digits, `-` and `_` only")]
    BadNode { node: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(
        "node {node}: another running process already uses this name (another machine started with the same --node?)"
    )]
    NameTaken { node: String },
}

impl CompoundConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease_s.max(1.0))
    }

    /// The connection settings, password included; never logged.
    pub fn pg_config(&self, base: &Path) -> Result<postgres::Config, CompoundError> {
        let url = &self.database;
        let mut config = postgres::Config::from_str(url).map_err(|source| CompoundError::Url {
            url: url.clone(),
            source,
        })?;
        if config.get_password().is_some() {
            return Err(CompoundError::BadUrl {
                url: crate::redact::redact(url),
                reason: "put the password in password_file or VIGIL_PG_PASSWORD, not in the config"
                    .into(),
            });
        }
        if let Some(file) = &self.password_file {
            let path = base.join(file);
            let text =
                std::fs::read_to_string(&path).map_err(|source| CompoundError::PasswordFile {
                    path: path.clone(),
                    source,
                })?;
            config.password(text.trim_end_matches(['\r', '\n']));
        } else if let Ok(p) = std::env::var("VIGIL_PG_PASSWORD") {
            config.password(p);
        }
        config
            .connect_timeout(Duration::from_secs(3))
            .tcp_user_timeout(Duration::from_secs(5))
            .application_name("vigil")
            // The migrations' "already exists, skipping" notices are not news.
            // No JIT: vigil's queries are short, and compiling one costs more
            // than it saves (a 12-hour shift report of 8,334 alerts: 27 ms
            // without, 100 ms with).
            .options("-c client_min_messages=warning -c jit=off");
        Ok(config)
    }

    /// Where the database is, for logs: host, port and database, no password.
    pub fn describe(&self) -> String {
        self.database
            .split_once('@')
            .map_or(self.database.as_str(), |(_, rest)| rest)
            .to_string()
    }
}

/// Checks a node name as given on the command line.
pub fn check_node_name(node: &str) -> Result<(), CompoundError> {
    let ok = !node.is_empty()
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CompoundError::BadNode { node: node.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> CompoundConfig {
        CompoundConfig {
            database: url.into(),
            password_file: None,
            lease_s: 8.0,
            secret_file: None,
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_not_repeated() {
        let e = config("postgres://vigil:hunter2@db:5432/vigil")
            .pg_config(Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("password_file"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn the_password_file_is_read_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pg.password"), "s3cret\n").unwrap();
        let c = CompoundConfig {
            password_file: Some("pg.password".into()),
            ..config("postgres://vigil@db:5432/vigil")
        };
        let pg = c.pg_config(dir.path()).unwrap();
        assert_eq!(pg.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(c.describe(), "db:5432/vigil");
        let missing = CompoundConfig {
            password_file: Some("nope".into()),
            ..c
        };
        let e = missing.pg_config(dir.path()).unwrap_err().to_string();
        assert!(e.contains("password_file") && e.contains("nope"), "{e}");
    }

    #[test]
    fn node_names_are_topic_safe() {
        assert!(check_node_name("gate-1").is_ok());
        assert!(check_node_name("gate/1").is_err());
        assert!(check_node_name("").is_err());
    }
}
