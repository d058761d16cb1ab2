//! `vigil alerts`: the police's view of the store from a terminal: list and
//! search alerts, show one with its evidence, tag it with a case number, hold it.
//!
//! With a compound's config and no `--node`, `list` and `show` read every
//! node's alerts from the compound's PostgreSQL (a control-room machine has no
//! store of its own); tag and hold are done on the node, or in a console.

use super::{compound_index, open_store};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil::store::{AlertFilter, AlertRecord, AlertRow};

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Alerts, newest first, filtered; a table, or JSON lines with --json.
    /// With a compound's config and no --node: every node's alerts, from the
    /// compound's PostgreSQL, each with its node.
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
    /// One alert's record: its events, takes and resolutions, evidence files
    /// with their hashes, tags, hold, chain of custody. With a compound's config
    /// and no --node: any node's alert, as the compound's PostgreSQL has it.
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
            // Each with the node that recorded it, in a compound.
            let alerts: Vec<(Option<String>, AlertRow)> = match compound_index(&config)? {
                Some(peers) => peers
                    .search(&filter)
                    .map_err(|e| compound_down(&config, e))?
                    .into_iter()
                    .map(|(node, a)| (Some(node), a))
                    .collect(),
                None => open_store(&config)?
                    .alerts(&filter)?
                    .into_iter()
                    .map(|a| (None, a))
                    .collect(),
            };
            let compound = alerts.first().is_some_and(|(node, _)| node.is_some());
            if json {
                for (node, a) in &alerts {
                    let mut row = serde_json::to_value(a)?;
                    if let (Some(node), Some(fields)) = (node, row.as_object_mut()) {
                        fields.insert("node".into(), node.clone().into());
                    }
                    println!("{row}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let node_column = |node: &Option<String>| match (compound, node) {
                (true, Some(n)) => format!("{n:<12} "),
                _ => String::new(),
            };
            println!(
                "{}{:<28} {:<10} {:<13} {:<8} {:<19} {:>7}  {:<6} tags",
                if compound {
                    format!("{:<12} ", "node")
                } else {
                    String::new()
                },
                "id",
                "camera",
                "kind",
                "severity",
                "started",
                "length",
                "state"
            );
            for (node, a) in &alerts {
                let length = a
                    .end_media_s
                    .map(|e| format!("{:.0} s", e - a.start_media_s))
                    .unwrap_or_else(|| "-".into());
                let mut tags = a.tags.join(",");
                if a.held {
                    tags = format!("[HOLD] {tags}");
                }
                println!(
                    "{}{:<28} {:<10} {:<13} {:<8} {:<19} {:>7}  {:<6} {tags}",
                    node_column(node),
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
            let (record, kept_at) = match compound_index(&config)? {
                Some(peers) => match peers.record(&id).map_err(|e| compound_down(&config, e))? {
                    Some((node, record)) => (record, format!("on node {node}")),
                    None => anyhow::bail!("no alert {id:?} in the compound's index"),
                },
                None => {
                    let store = open_store(&config)?;
                    (store.record(&id)?, store.dir().display().to_string())
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&record.detail())?);
                return Ok(ExitCode::SUCCESS);
            }
            print_record(&record, &kept_at);
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

/// The compound's PostgreSQL failed: which database, and what to do instead.
fn compound_down(config: &std::path::Path, e: postgres::Error) -> anyhow::Error {
    anyhow::Error::new(e).context(format!(
        "{}: the compound's PostgreSQL ([compound] database) does not answer; \
         a node's own alerts are still in its store: add --node NAME on that node",
        config.display()
    ))
}

/// An alert's whole record as `vigil alerts show` prints it; `kept_at`: where
/// its evidence files are.
fn print_record(record: &AlertRecord, kept_at: &str) {
    let a = &record.alert;
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
    for e in &record.events {
        let payload: serde_json::Value = serde_json::from_str(&e.payload).unwrap_or_default();
        println!(
            "  {:<6} {}  score {:.2}",
            e.kind,
            local(e.wall_ms),
            payload["after"]["score"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(at) = record.escalated_ms {
        println!("escalated {}", local(at));
    }
    for k in &record.acks {
        let outcome = k
            .outcome
            .map(|o| format!(" ({})", o.as_str()))
            .unwrap_or_default();
        println!(
            "{:<8} by {}, {}{outcome}{}",
            k.action.as_str(),
            k.who,
            local(k.at_ms),
            if k.note.is_empty() {
                String::new()
            } else {
                format!(": {}", k.note)
            }
        );
    }
    println!("evidence ({kept_at})");
    for f in &record.evidence {
        let deleted = f
            .deleted_ms
            .map(|t| format!("  DELETED by retention {}", local(t as i64)))
            .unwrap_or_default();
        println!(
            "  {:<9} {}  {} bytes  sha256 {}{deleted}",
            f.kind.as_str(),
            f.path,
            f.bytes,
            f.sha256
        );
    }
    for t in &record.tags {
        println!("tag      {} (by {}, {})", t.text, t.who, local(t.at_ms));
    }
    if let Some(h) = &record.hold {
        println!("HOLD     {} (by {}, {})", h.reason, h.who, local(h.at_ms));
    }
    if !record.custody.is_empty() {
        println!("custody");
        for c in &record.custody {
            println!(
                "  {}  {:<16} {} {}",
                local(c.at_ms),
                c.who,
                c.action,
                c.detail
            );
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
