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

/// The users file a config names.
fn users_file(config: &std::path::Path) -> Result<PathBuf> {
    let loaded = LoadedConfig::load(config)?;
    let console = loaded.config.console.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no [console] section; add one (see config/README.md) to use the console",
            config.display()
        )
    })?;
    Ok(console.users_path(&loaded.base_dir()))
}

pub fn execute(command: UserCommand) -> Result<ExitCode> {
    let (name, role, config) = match command {
        UserCommand::Add { name, role, config } => (name, role, config),
        UserCommand::Remove { name, config } => {
            let path = users_file(&config)?;
            if !vigil::console::users::remove(&path, &name)? {
                anyhow::bail!("{}: no user named {name:?}", path.display());
            }
            eprintln!("removed {name} from {}", path.display());
            return Ok(ExitCode::SUCCESS);
        }
    };
    let path = users_file(&config)?;
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
    eprintln!(
        "{} {name} ({}) in {}",
        if existed { "updated" } else { "added" },
        role.as_str(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
