//! The subcommands, one file per family, each named for what the user types:
//! `run` (run, replay, bench), `check` (check, schema), `eval`, `alerts`,
//! `evidence` (evidence, keygen), `user`, `dataset`. Each file holds its arguments and what
//! they do; this one only routes.

mod alerts;
mod check;
mod dataset;
mod eval;
mod evidence;
mod run;
mod user;

use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;
use vigil::config::LoadedConfig;
use vigil::store::Store;

#[derive(Subcommand)]
pub enum Command {
    Run(run::RunArgs),
    Console(run::ConsoleArgs),
    Replay(run::ReplayArgs),
    Check(check::CheckArgs),
    Bench(run::BenchArgs),
    /// Search and annotate stored alerts: list, show, tag, hold.
    ///
    /// Alerts live in the evidence store (`[storage] dir` of the config), with
    /// their events, snapshots and clips. Works while vigil runs.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Check and export evidence: verify the signed manifest, export a bundle.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    Eval(eval::EvalArgs),
    /// Datasets from a compound's own footage: frames to label for training.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Print the config's JSON Schema, for editors that complete and check TOML.
    ///
    /// Save it (e.g. `vigil schema > vigil.schema.json`) and put
    /// `#:schema ./vigil.schema.json` on the first line of a config: Taplo and
    /// VS Code's Even Better TOML then complete keys and flag misspelt ones.
    Schema,
    Keygen(evidence::KeygenArgs),
    /// Console users: who may log in to the web console, and as what.
    #[command(subcommand)]
    User(user::UserCommand),
}

/// `node`: the global `--node`, for the commands it applies to.
pub fn execute(command: Command, node: Option<String>) -> Result<ExitCode> {
    let applies = matches!(
        command,
        Command::Run(_) | Command::Bench(_) | Command::Alerts(_) | Command::Evidence(_)
    );
    if let Some(node) = &node
        && !applies
    {
        anyhow::bail!("--node {node:?}: applies to run, bench, alerts and evidence only");
    }
    NODE.get_or_init(|| node.clone());
    match command {
        Command::Run(args) => run::run(args, node),
        Command::Console(args) => run::console(args),
        Command::Replay(args) => run::replay(args),
        Command::Check(args) => check::check(args),
        Command::Bench(args) => run::bench(args, node),
        Command::Alerts(command) => alerts::execute(command),
        Command::Evidence(command) => evidence::execute(command),
        Command::Eval(args) => eval::eval(args),
        Command::Dataset(command) => dataset::execute(command),
        Command::Schema => check::schema(),
        Command::Keygen(args) => evidence::keygen(args),
        Command::User(command) => user::execute(command),
    }
}

/// The global `--node`, set once before the command runs.
static NODE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// A config as the police tools read it: a compound node's own store with
/// `--node`.
fn load_config(config: &std::path::Path) -> Result<LoadedConfig> {
    let mut loaded = LoadedConfig::load(config)?;
    if let Some(Some(node)) = NODE.get() {
        loaded.as_node(node)?;
    }
    Ok(loaded)
}

/// For a compound's config without `--node`: the compound's PostgreSQL, where
/// every node's alerts are (the police tools on a control-room machine).
fn compound_index(config: &std::path::Path) -> Result<Option<vigil::compound::Peers>> {
    if let Some(Some(_)) = NODE.get() {
        return Ok(None);
    }
    let loaded = load_config(config)?;
    let Some(compound) = &loaded.config.compound else {
        return Ok(None);
    };
    Ok(Some(vigil::compound::Peers::new(
        compound,
        &loaded.base_dir(),
        "cli",
    )?))
}

/// The store a config names, opened to read, tag and hold (the police tools).
fn open_store(config: &std::path::Path) -> Result<Store> {
    let loaded = load_config(config)?;
    Ok(Store::open_reader(
        &loaded.config.storage,
        &loaded.base_dir(),
    )?)
}
