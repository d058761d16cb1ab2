//! `vigil alerts`: the police's view of the store from a terminal: list and
//! search alerts, show one with its evidence, tag it with a case number, hold it.

use super::open_store;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil::store::AlertFilter;

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Alerts, newest first, filtered; a table, or JSON lines with --json.
    List {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        camera: Option<String>,
        /// loitering, battery_cart or fire_smoke.
        #[arg(long)]
        kind: Option<String>,
        /// Started at or after: `2026-11-28`, `2026-11-28T14:30`, an RFC 3339
        /// time, or a span back from now such as `2h`, `3d` (local time zone).
        #[arg(long)]
        since: Option<String>,
        /// Started before (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// open or ended.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One alert: its events, evidence files with their hashes, tags, hold.
    Show {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Tag an alert (e.g. a case number); `--remove` takes a tag off.
    Tag {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
        text: String,
        /// Who tags (default: the login name).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        remove: bool,
    },
    /// Place a legal hold: retention never deletes this alert's evidence.
    Hold {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
        #[arg(long, default_value = "legal hold")]
        reason: String,
        #[arg(long)]
        by: Option<String>,
        /// Lift the hold instead.
        #[arg(long)]
        release: bool,
    },
}

pub fn execute(command: AlertsCommand) -> Result<ExitCode> {
    match command {
        AlertsCommand::List {
            config,
            camera,
            kind,
            since,
            until,
            tag,
            state,
            limit,
            json,
        } => {
            let store = open_store(&config)?;
            let filter = AlertFilter {
                camera,
                kind,
                since_ms: since.as_deref().map(parse_time).transpose()?,
                until_ms: until.as_deref().map(parse_time).transpose()?,
                tag,
                state,
                limit: Some(limit),
                before: None,
            };
            let alerts = store.alerts(&filter)?;
            if json {
                for a in &alerts {
                    println!("{}", serde_json::to_string(a)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<28} {:<10} {:<13} {:<8} {:<19} {:>7}  {:<6} tags",
                "id", "camera", "kind", "severity", "started", "length", "state"
            );
            for a in &alerts {
                let length = a
                    .end_media_s
                    .map(|e| format!("{:.0} s", e - a.start_media_s))
                    .unwrap_or_else(|| "-".into());
                let mut tags = a.tags.join(",");
                if a.held {
                    tags = format!("[HOLD] {tags}");
                }
                println!(
                    "{:<28} {:<10} {:<13} {:<8} {:<19} {:>7}  {:<6} {tags}",
                    a.id,
                    a.camera,
                    a.kind,
                    a.severity,
                    local(a.start_wall_ms),
                    length,
                    a.state
                );
            }
            eprintln!("{} alert(s)", alerts.len());
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Show { config, id, json } => {
            let store = open_store(&config)?;
            let d = store.alert(&id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(ExitCode::SUCCESS);
            }
            let a = &d.alert;
            println!("alert    {}", a.id);
            println!(
                "camera   {}   kind {} ({})   rule {}",
                a.camera, a.kind, a.severity, a.rule
            );
            println!("what     {}", a.summary);
            if let Some(z) = a.zone.as_ref().or(a.line.as_ref()) {
                println!("where    {z}");
            }
            println!(
                "started  {} (media {:.1} s)",
                local(a.start_wall_ms),
                a.start_media_s
            );
            if let (Some(w), Some(m)) = (a.end_wall_ms, a.end_media_s) {
                println!("ended    {} (media {m:.1} s)", local(w));
            }
            println!("state    {}", a.state);
            println!("events");
            for e in &d.events {
                println!(
                    "  {:<6} score {:.2}",
                    e["type"].as_str().unwrap_or("?"),
                    e["after"]["score"].as_f64().unwrap_or(0.0)
                );
            }
            println!("evidence ({})", store.dir().display());
            for f in &d.evidence {
                let deleted = f
                    .deleted_ms
                    .map(|t| format!("  DELETED by retention {}", local(t as i64)))
                    .unwrap_or_default();
                println!(
                    "  {:<9} {}  {} bytes  sha256 {}{deleted}",
                    format!("{:?}", f.kind).to_lowercase(),
                    f.path,
                    f.bytes,
                    f.sha256
                );
            }
            for t in &d.tags {
                println!("tag      {} (by {}, {})", t.text, t.who, local(t.at_ms));
            }
            if let Some(h) = &d.hold {
                println!("HOLD     {} (by {}, {})", h.reason, h.who, local(h.at_ms));
            }
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Tag {
            config,
            id,
            text,
            by,
            remove,
        } => {
            let store = open_store(&config)?;
            if remove {
                if !store.untag(&id, &text)? {
                    eprintln!("alert {id} had no tag {text:?}");
                }
            } else {
                store.tag(&id, &text, &who(by))?;
            }
            println!("{id}: tags {:?}", store.alert(&id)?.alert.tags);
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Hold {
            config,
            id,
            reason,
            by,
            release,
        } => {
            let store = open_store(&config)?;
            if release {
                store.release(&id)?;
                println!("{id}: hold lifted; retention applies again");
            } else {
                store.hold(&id, &who(by), &reason)?;
                println!("{id}: on hold ({reason}); retention will keep its evidence");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// `2026-11-28`, `2026-11-28T14:30[:00]`, RFC 3339, or `90m`/`2h`/`3d` ago → Unix ms.
fn parse_time(text: &str) -> Result<i64> {
    let t = text.trim();
    if let Some((n, unit)) = t
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .map(|i| t.split_at(i))
        && let Ok(n) = n.parse::<i64>()
    {
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => 0,
        };
        if secs > 0 {
            return Ok(jiff::Timestamp::now().as_millisecond() - n * secs * 1000);
        }
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let tz = jiff::tz::TimeZone::system();
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return Ok(dt.to_zoned(tz)?.timestamp().as_millisecond());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        return Ok(d.to_zoned(tz)?.timestamp().as_millisecond());
    }
    anyhow::bail!("time {text:?}: use 2026-11-28, 2026-11-28T14:30, an RFC 3339 time, or 2h / 3d")
}

fn local(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}
