//! vigil: video analytics for a residential compound's cameras.
//!
//! Frames flow through one stage per module, each with a typed boundary:
//!
//! ```text
//! source ──Frame──▶ detect ──Detection──▶ track ──Track──▶ rules ──Event──▶ evidence ──▶ publish
//!   └── encoded video ──▶ record (per-camera ring, clips) ──────────────────┘
//! ```
//!
//! - [`source`]: GStreamer decoding of files and RTSP into [`source::Frame`]s, resized
//!   once per detector; latest-frame hand-off for live cameras.
//! - [`motion`]: frame differencing on a luma grid; frames where nothing moved in
//!   the watched zones skip the object detectors.
//! - [`detect`]: ONNX Runtime models (YOLOX, NanoDet-Plus, YOLOv8 layouts) → [`detect::Detection`]s.
//! - [`track`]: ByteTrack per label → [`track::Track`]s with stable ids.
//! - [`rules`]: loitering, battery carts entering buildings, fire and smoke →
//!   [`events::Event`]s (`new → update → end`).
//! - [`evidence`]: the stage that gives `new` its snapshots and `end` its clip
//!   before either is published, and keeps every event in the [`store`].
//! - [`record`]: per-camera ring of encoded video, clip muxing, snapshot drawing.
//! - [`store`]: SQLite store of alerts, events, evidence, tags and holds; the
//!   signed hash-chained manifest; retention; verify and export for the police.
//! - [`publish`]: MQTT (QoS 1, per-recipient topics), JSON lines, the log.
//! - [`camera`]: one camera's chain on one worker thread; [`supervisor`] reopens its
//!   source when it fails or stalls; [`app`] runs many.
//! - [`console`]: the operators' and police web console (axum): live alert
//!   wall, acknowledgements, camera health, search, alert pages, export; users
//!   and roles. [`health`] is what cameras share with it.
//! - [`telemetry`]: Prometheus `/metrics` (stage histograms, per-camera counters).
//! - [`shutdown`]: the one stop signal every thread waits on; reconnect backoff.
//! - [`redact`]: passwords masked in every URI that reaches a log or an error.
//! - [`config`]: the TOML file and `vigil check`. Each section's type lives with
//!   the stage it configures; `config` only gathers and checks them.
//! - [`eval`], [`inspect`], [`bench`]: for integrators: detection quality and alert
//!   truth, annotated replays, throughput and latency. [`labelling`]: frames the
//!   cameras saw, pre-labelled for training a model on a compound's own footage.
//! - The ground floor, used by every stage and using none: [`geometry`] (boxes and
//!   zones), [`time`] (media vs wall clocks), [`stats`] (latency percentiles),
//!   [`errors`] (error chains for people), [`redact`]; [`models`] reads the manifest.
//!
//! No module imports one that imports it back (a test in `layout.rs` fails on a
//! cycle): a piece two stages share moves down to the ground floor. The `vigil`
//! binary (`main.rs`, `cli/`) sits on top and only parses and dispatches.
//!
//! A new model format goes in `detect/decode.rs`; a new rule kind is a new file in
//! `rules/`. Errors are typed per module (`thiserror`); only the binary uses `anyhow`.

pub mod app;
pub mod bench;
pub mod camera;
pub mod compound;
pub mod config;
pub mod console;
pub mod detect;
pub mod errors;
pub mod eval;
pub mod events;
pub mod evidence;
pub mod geometry;
pub mod health;
pub mod inspect;
pub mod labelling;
#[cfg(test)]
mod layout;
pub mod models;
pub mod motion;
pub mod publish;
pub mod record;
pub mod redact;
pub mod rules;
pub mod shutdown;
pub mod source;
pub mod stats;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod time;
pub mod track;
pub mod watchdog;
