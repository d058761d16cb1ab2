//! `vigil check` and `vigil schema`: a config validated before it runs, and the
//! JSON Schema editors use to complete and check it while it is written.

use anyhow::Result;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil::config::LoadedConfig;

/// Validate a config: fields, files, zones, classes and the models' tensors.
///
/// With `[compound]`, also that PostgreSQL answers (skipped by `--no-models`).
/// Prints every problem with its field path and line; exits non-zero if
/// any is an error.
#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(long, short)]
    pub config: PathBuf,
    /// Skip loading the models in ONNX Runtime and connecting to the
    /// compound's PostgreSQL (faster, shallower).
    #[arg(long)]
    pub no_models: bool,
}

pub fn check(args: CheckArgs) -> Result<ExitCode> {
    let CheckArgs { config, no_models } = args;
    let loaded = LoadedConfig::load(&config)?;
    let problems = loaded.check(!no_models);
    for p in &problems {
        println!("{}: {p}", config.display());
    }
    let errors = problems.iter().filter(|p| !p.warning).count();
    if errors > 0 {
        println!("{}: {errors} error(s)", config.display());
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{}: ok ({} camera(s), {} detector(s))",
        config.display(),
        loaded.config.cameras.len(),
        loaded.config.detectors.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn schema() -> Result<ExitCode> {
    // `vigil schema | head` must not panic on the closed pipe.
    let _ = writeln!(std::io::stdout(), "{}", vigil::config::json_schema());
    Ok(ExitCode::SUCCESS)
}
