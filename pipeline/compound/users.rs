//! The compound's console users: one list in PostgreSQL, mirrored into each
//! node's users file, so a user added on any machine logs in on every console.
//!
//! The file stays what the console reads: logins keep working while
//! PostgreSQL is away, and a changed password or a removed user reaches the
//! open sessions of every node the way a changed file always did. The first
//! node to mirror with users in its file seeds the list from it; `vigil user` writes the
//! list (and the local file) when the config has `[compound]`. Users travel
//! here as (name, the console's user record in JSON): what a user is stays
//! the console's business.

use postgres::Client;
use std::path::Path;

type FileError = Box<dyn std::error::Error + Send + Sync>;

/// A node's users file, as the console reads and writes it.
pub trait UsersFile: Send {
    /// Every user: name and record, in any order.
    fn read(&self) -> Result<Vec<(String, String)>, FileError>;
    /// Replaces every user, keeping the previous file beside it.
    fn replace(&self, users: &[(String, String)]) -> Result<(), FileError>;
    fn path(&self) -> &Path;
}

#[derive(Debug, thiserror::Error)]
pub enum UsersMirrorError {
    #[error("the compound's users in PostgreSQL")]
    Pg(#[from] postgres::Error),
    #[error("the compound's users: users file {path}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: FileError,
    },
}

/// Brings `file` in line with the compound's users (seeding them from `file`
/// the first time); returns true when the file changed.
pub fn mirror(client: &mut Client, file: &dyn UsersFile) -> Result<bool, UsersMirrorError> {
    let failed = |source| UsersMirrorError::File {
        path: file.path().to_path_buf(),
        source,
    };
    let mut here = file.read().map_err(failed)?;
    let mut tx = client.transaction()?;
    // Seeded by the first file that has users: a node whose console has
    // none yet must not seed an empty list over the control room's users.
    if !here.is_empty()
        && tx.execute(
            "INSERT INTO users_seeded DEFAULT VALUES ON CONFLICT DO NOTHING",
            &[],
        )? == 1
    {
        for (name, record) in &here {
            put_in(&mut tx, name, record, false)?;
        }
    }
    let shared: Vec<(String, String)> = tx
        .query("SELECT name, user_row FROM users ORDER BY name", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    tx.commit()?;
    here.sort();
    if here == shared {
        return Ok(false);
    }
    let dropped: Vec<&str> = here
        .iter()
        .filter(|(name, _)| !shared.iter().any(|(n, _)| n == name))
        .map(|(name, _)| name.as_str())
        .collect();
    if !dropped.is_empty() {
        // A removal made elsewhere, or users this node had before it joined
        // a compound seeded by another: said, and the old file kept.
        tracing::warn!(
            "console users: {} loses {} (not among the compound's users; the previous file is kept beside it as .replaced; `vigil user add` with the compound's config adds a user for every node)",
            file.path().display(),
            dropped.join(", ")
        );
    }
    file.replace(&shared).map_err(failed)?;
    Ok(true)
}

/// Connects to the compound's PostgreSQL for `vigil user`, its schema
/// brought up to date.
pub fn connect(config: &super::CompoundConfig, base: &Path) -> anyhow::Result<Client> {
    use anyhow::Context;
    let pg = config.pg_config(base)?;
    let mut client = pg
        .connect(postgres::NoTls)
        .with_context(|| format!("the compound's PostgreSQL at {}", config.describe()))?;
    super::pg::migrate(&mut client)
        .with_context(|| format!("the compound's PostgreSQL at {}", config.describe()))?;
    Ok(client)
}

/// Adds or replaces user `name` in the compound's list.
pub fn put(client: &mut Client, name: &str, record: &str) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    put_in(&mut tx, name, record, true)?;
    tx.commit()
}

fn put_in(
    tx: &mut postgres::Transaction<'_>,
    name: &str,
    record: &str,
    replace: bool,
) -> Result<(), postgres::Error> {
    let sql = if replace {
        "INSERT INTO users (name, user_row) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET user_row = $2, changed = now()"
    } else {
        "INSERT INTO users (name, user_row) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
    };
    tx.execute(sql, &[&name, &record])?;
    Ok(())
}

/// Removes user `name` from the compound's list; false if it had none.
pub fn remove(client: &mut Client, name: &str) -> Result<bool, postgres::Error> {
    Ok(client.execute("DELETE FROM users WHERE name = $1", &[&name])? > 0)
}
