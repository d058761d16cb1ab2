//! `vigil user`: who may log in to the web console, and as what.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil::config::LoadedConfig;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user to `[console] users`, or reset an existing user's password
    /// and role; this ends the user's open console sessions. (A role changed
    /// by editing the file applies to open sessions at their next request.) Prompts for the password (twice) on a terminal; otherwise
    /// reads it from the first line of stdin.
    ///
    /// Roles: `operator` (alert wall, acknowledge, cameras), `police` (also
    /// search, tags, holds, evidence export), `admin` (everything).
    ///
    /// With `[compound]` in the config the user is written to the compound's
    /// PostgreSQL too, and every node's console takes it from there within a
    /// lease round; without PostgreSQL nothing changes.
    Add {
        /// Login name: letters, digits, '.', '_', '-'.
        name: String,
        #[arg(long, value_enum)]
        role: vigil::console::Role,
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Remove a user. Their open console sessions end at their next request
    /// (an open alert wall within 10 s).
    Remove {
        name: String,
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// The users file a config names, and in a compound a connection to the
/// compound's users (made first: a change PostgreSQL does not take would be
/// undone by the next mirror, so nothing is written without it).
fn users_file(config: &std::path::Path) -> Result<(PathBuf, Option<postgres::Client>)> {
    let loaded = LoadedConfig::load(config)?;
    let console = loaded.config.console.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no [console] section; add one (see config/README.md) to use the console",
            config.display()
        )
    })?;
    let base = loaded.base_dir();
    let shared = match &loaded.config.compound {
        Some(compound) => Some(
            vigil::compound::users::connect(compound, &base)
                .map_err(|e| e.context("nothing changed: a compound's users are kept there"))?,
        ),
        None => None,
    };
    Ok((console.users_path(&base), shared))
}

pub fn execute(command: UserCommand) -> Result<ExitCode> {
    let (name, role, config) = match command {
        UserCommand::Add { name, role, config } => (name, role, config),
        UserCommand::Remove { name, config } => {
            let (path, shared) = users_file(&config)?;
            let in_compound = match shared {
                Some(mut client) => vigil::compound::users::remove(&mut client, &name)?,
                None => false,
            };
            if !vigil::console::users::remove(&path, &name)? && !in_compound {
                anyhow::bail!("{}: no user named {name:?}", path.display());
            }
            eprintln!("removed {name} from {}", path.display());
            return Ok(ExitCode::SUCCESS);
        }
    };
    let (path, shared) = users_file(&config)?;
    let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(first == again, "the passwords differ; nothing changed");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    let existed = vigil::console::users::add(&path, &name, role, &password)?;
    let compound = match shared {
        Some(mut client) => {
            if let Some(user) = vigil::console::users::find(&path, &name)? {
                vigil::compound::users::put(
                    &mut client,
                    &user.name,
                    &vigil::console::users::record(&user),
                )?;
            }
            " and the compound's users in PostgreSQL"
        }
        None => "",
    };
    eprintln!(
        "{} {name} ({}) in {}{compound}",
        if existed { "updated" } else { "added" },
        role.as_str(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
