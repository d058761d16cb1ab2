//! Users: who may log in to the console, and as what.
//!
//! A TOML file beside the config (`[console] users`, default `users.toml`),
//! written by `vigil user add`; passwords are stored only as argon2id hashes
//! (PHC strings). The file is read at every login, so adding a user needs no
//! restart.
//!
//! ```toml
//! [[user]]
//! name = "wang"
//! role = "operator"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! lang = "en"   # optional: the console's language for this user (set from the console's menu)
//! ```

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a user may do. Each role includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The alert wall, acknowledging, cameras.
    Operator,
    /// Also search, tags, holds, export of evidence.
    Police,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Police => "police",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// argon2id PHC string.
    pub password: String,
    /// The language this user chose; unset: the console's `[console] language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<super::Language>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<User>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("users file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("users file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("users file {path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("user name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'")]
    BadName { name: String },
    #[error("the password must have at least 8 characters")]
    ShortPassword,
    #[error("hashing the password: {0}")]
    Hash(String),
}

fn read(path: &Path) -> Result<UsersFile, UsersError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UsersFile::default()),
        Err(source) => {
            return Err(UsersError::Read {
                path: path.into(),
                source,
            });
        }
    };
    toml::from_str(&text).map_err(|source| UsersError::Parse {
        path: path.into(),
        source,
    })
}

/// How many users the file has (0 when it does not exist yet).
pub fn count(path: &Path) -> Result<usize, UsersError> {
    Ok(read(path)?.user.len())
}

/// Adds a user, or replaces the password and role of one with that name.
/// Returns true when the user existed.
pub fn add(path: &Path, name: &str, role: Role, password: &str) -> Result<bool, UsersError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(UsersError::BadName { name: name.into() });
    }
    if password.chars().count() < 8 {
        return Err(UsersError::ShortPassword);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| UsersError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UsersError::Hash(e.to_string()))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| UsersError::Hash(e.to_string()))?
        .to_string();
    let mut file = read(path)?;
    let mut user = User {
        name: name.into(),
        role,
        password: hash,
        lang: None,
    };
    let existed = match file.user.iter_mut().find(|u| u.name == name) {
        Some(u) => {
            // A new password or role keeps the language they chose.
            user.lang = u.lang;
            *u = user;
            true
        }
        None => {
            file.user.push(user);
            false
        }
    };
    write(path, &file)?;
    Ok(existed)
}

/// Replaces the file atomically, readable by its owner only.
fn write(path: &Path, file: &UsersFile) -> Result<(), UsersError> {
    let text = toml::to_string(file).map_err(|e| UsersError::Hash(e.to_string()))?;
    let write = |source| UsersError::Write {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("toml.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write)?;
        f.write_all(text.as_bytes()).map_err(write)?;
        f.sync_all().map_err(write)?;
    }
    std::fs::rename(&tmp, path).map_err(write)
}

/// A users file as the compound mirrors it: each user's record in JSON.
pub struct Mirrored(pub PathBuf);

impl crate::compound::users::UsersFile for Mirrored {
    fn read(&self) -> Result<Vec<(String, String)>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(read(&self.0)?
            .user
            .iter()
            .map(|u| (u.name.clone(), record(u)))
            .collect())
    }

    fn replace(
        &self,
        users: &[(String, String)],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let user = users
            .iter()
            .map(|(_, r)| serde_json::from_str(r))
            .collect::<Result<_, _>>()?;
        if self.0.exists() {
            // `copy` keeps the file's owner-only mode.
            std::fs::copy(&self.0, self.0.with_extension("toml.replaced"))?;
        }
        Ok(write(&self.0, &UsersFile { user })?)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

/// A user as the compound's PostgreSQL keeps it.
pub fn record(user: &User) -> String {
    serde_json::to_string(user).unwrap_or_default()
}

/// The user of that name, as the file says now.
pub fn find(path: &Path, name: &str) -> Result<Option<User>, UsersError> {
    Ok(read(path)?.user.into_iter().find(|u| u.name == name))
}

/// Sets the language a user sees; returns false when there is no such user.
pub fn set_language(
    path: &Path,
    name: &str,
    lang: Option<super::Language>,
) -> Result<bool, UsersError> {
    let mut file = read(path)?;
    let Some(user) = file.user.iter_mut().find(|u| u.name == name) else {
        return Ok(false);
    };
    user.lang = lang;
    write(path, &file)?;
    Ok(true)
}

/// Removes a user; returns false when there was none of that name.
pub fn remove(path: &Path, name: &str) -> Result<bool, UsersError> {
    let mut file = read(path)?;
    let before = file.user.len();
    file.user.retain(|u| u.name != name);
    if file.user.len() == before {
        return Ok(false);
    }
    write(path, &file)?;
    Ok(true)
}

/// The user, if the name and password match. Unknown names cost as much as
/// wrong passwords, so timing does not tell which names exist.
pub fn check(path: &Path, name: &str, password: &str) -> Result<Option<User>, UsersError> {
    let file = read(path)?;
    let user = file.user.into_iter().find(|u| u.name == name);
    // A fixed hash of a random password keeps an unknown name's cost real.
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$rWnyKNqLQlVQdqCc3kBZrG8z2a1xo0Z0q3Dvi6KkzjI";
    let stored = user.as_ref().map(|u| u.password.as_str()).unwrap_or(DUMMY);
    let ok = PasswordHash::new(stored).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    });
    Ok(user.filter(|_| ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_mirrored_to_another_node_logs_in_there_with_the_same_password() {
        use crate::compound::users::UsersFile;
        let dir = tempfile::tempdir().unwrap();
        let (here, there) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
        add(&here, "wang", Role::Police, "correct horse").unwrap();
        let shared = Mirrored(here).read().unwrap();
        assert_eq!(shared.len(), 1);
        add(&there, "li", Role::Operator, "staple battery").unwrap();
        Mirrored(there.clone()).replace(&shared).unwrap();
        assert!(
            check(
                &there.with_extension("toml.replaced"),
                "li",
                "staple battery"
            )
            .unwrap()
            .is_some(),
            "the replaced file is kept"
        );
        assert!(check(&there, "li", "staple battery").unwrap().is_none());
        let user = check(&there, "wang", "correct horse").unwrap().unwrap();
        assert_eq!(user.role, Role::Police);
        assert!(check(&there, "wang", "wrong horse").unwrap().is_none());
        assert!(
            Mirrored(there)
                .replace(&[("li".into(), "not a user".into())])
                .is_err(),
            "a record the console cannot read is refused, the file kept"
        );
    }

    #[test]
    fn added_users_log_in_with_their_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        assert_eq!(count(&path).unwrap(), 0);
        assert!(!add(&path, "wang", Role::Operator, "correct horse").unwrap());
        assert!(matches!(
            add(&path, "../x", Role::Admin, "long enough"),
            Err(UsersError::BadName { .. })
        ));
        assert!(matches!(
            add(&path, "li", Role::Police, "short"),
            Err(UsersError::ShortPassword)
        ));
        let user = check(&path, "wang", "correct horse").unwrap().unwrap();
        assert_eq!(user.role, Role::Operator);
        assert!(check(&path, "wang", "wrong horse").unwrap().is_none());
        assert!(check(&path, "nobody", "correct horse").unwrap().is_none());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$") && !text.contains("correct horse"));
        // Adding again replaces: a password reset.
        assert!(add(&path, "wang", Role::Police, "battery staple").unwrap());
        assert_eq!(count(&path).unwrap(), 1);
        assert!(check(&path, "wang", "correct horse").unwrap().is_none());
        assert_eq!(
            check(&path, "wang", "battery staple")
                .unwrap()
                .unwrap()
                .role,
            Role::Police
        );
    }
}
