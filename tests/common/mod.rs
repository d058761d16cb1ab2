//! Test harness: real media and models (skipping loudly when absent), a real
//! mosquitto on a free loopback port, and a subscriber that records messages.

#![allow(dead_code)]

pub mod browser;

use gstreamer as gst;
use gstreamer::prelude::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file from the media set: `media/` (fetched by setup) or the `../shared` mirror.
/// `None` after printing a loud SKIP line naming the file; under `CI=true` a
/// missing file fails the test instead.
pub fn media(rel: &str) -> Option<PathBuf> {
    find(
        &[
            repo().join("media").join(rel),
            repo().join("../shared/media").join(rel),
        ],
        rel,
    )
}

pub fn model(file: &str) -> Option<PathBuf> {
    find(
        &[
            repo().join("models/weights").join(file),
            repo().join("../shared/models").join(file),
        ],
        file,
    )
}

/// A labelled dataset file: `datasets/` or the `../shared` mirror.
pub fn dataset(rel: &str) -> Option<PathBuf> {
    find(
        &[
            repo().join("datasets").join(rel),
            repo().join("../shared/datasets").join(rel),
        ],
        rel,
    )
}

/// The Python with pycocotools that setup installs (not canonicalised: the
/// venv is only active through its own path).
pub fn pycocotools_python() -> Option<PathBuf> {
    let python = repo().join("third_party/pyeval/bin/python");
    if python.exists() {
        return Some(python);
    }
    find(&[python], "third_party/pyeval/bin/python (pycocotools)")
}

fn find(candidates: &[PathBuf], name: &str) -> Option<PathBuf> {
    for c in candidates {
        if c.is_file() {
            return Some(c.canonicalize().unwrap());
        }
    }
    // CI has ../shared: a missing file there is a broken setup, not a skip.
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "required file {name} not found (looked in {candidates:?}); under CI=true this fails instead of skipping"
    );
    eprintln!(
        "\n*** SKIP: required file {name} not found (looked in {candidates:?}); run scripts/setup ***\n"
    );
    None
}

/// A program the setup installs (Debian packages: `chromium`, `chromium-driver`),
/// found on `PATH`; skips loudly, or fails under CI, like a missing file.
pub fn program(name: &str) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let candidates: Vec<PathBuf> = dirs.iter().map(|d| d.join(name)).collect();
    find(&candidates, &format!("program {name}"))
}

/// `[[detectors]]` TOML for the models used in tests.
pub fn yolox_detector(model: &Path) -> String {
    yolox_detector_as("coco", "\"coco\"", 0.3, model)
}

/// A YOLOX-format detector named `name` with `classes` (TOML: `"coco"` or a
/// list), e.g. one the training tool exported.
pub fn yolox_detector_as(name: &str, classes: &str, threshold: f32, model: &Path) -> String {
    format!(
        r#"
[[detectors]]
name = "{name}"
model = "{}"
format = "yolox"
input = [416, 416]
channels = "bgr"
letterbox = "top_left"
pad = 114
classes = {classes}
score_threshold = {threshold}
"#,
        model.display()
    )
}

/// Makes a test file with `gst-launch-1.0` (a pipeline description, paths
/// without spaces); false if this GStreamer cannot.
pub fn make_media(description: &str) -> bool {
    Command::new("gst-launch-1.0")
        .arg("-q")
        .args(description.split_whitespace())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `vigil replay` of a config with events discarded; its output.
pub fn vigil_replay(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "replay",
            "-c",
            config.to_str().unwrap(),
            "--events",
            "/dev/null",
        ])
        .output()
        .unwrap()
}

pub fn fire_detector(model: &Path) -> String {
    format!(
        r#"
[[detectors]]
name = "fire"
model = "{}"
format = "yolov8"
input = [640, 640]
channels = "rgb"
scale = 0.00392156862745098
letterbox = "center"
pad = 114
classes = ["smoke", "fire"]
score_threshold = 0.25
"#,
        model.display()
    )
}

/// A still image presented as a `seconds`-long 10 fps stream.
pub fn still_stream(image: &Path, seconds: u32) -> String {
    let dec = if image.extension().is_some_and(|e| e == "png") {
        "pngdec"
    } else {
        "jpegdec"
    };
    format!(
        "gst: filesrc location={} ! {dec} ! videoconvert ! imagefreeze num-buffers={} ! capsfilter caps=video/x-raw,framerate=10/1",
        image.display(),
        seconds * 10
    )
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("vigil.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Replays a config (no MQTT unless it names a broker) and returns the events as JSON.
pub fn replay(config: &Path) -> (vigil::app::RunReport, Vec<serde_json::Value>) {
    let loaded = vigil::config::LoadedConfig::load_checked(config, false).expect("config is valid");
    let events = config.with_extension("jsonl");
    let options = vigil::app::RunOptions {
        pacing: vigil::source::Pacing::AsFastAsPossible,
        events_file: Some(events.display().to_string()),
        embedded_broker: false,
        mqtt: loaded.config.alerts.broker.is_some(),
        progress: false,
        shutdown: Default::default(),
        run_until: None,
        inspect: Default::default(),
        console: vigil::app::ConsoleUse::Off,
        node: None,
    };
    let report = vigil::app::run(&loaded, &options).expect("run starts");
    let text = std::fs::read_to_string(&events).unwrap();
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (report, events)
}

pub fn new_alerts<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["type"] == "new" && e["after"]["kind"] == kind)
        .map(|e| &e["after"])
        .collect()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real mosquitto broker on a free loopback port, killed on drop.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_with(None)
    }

    /// A broker on a port chosen earlier (vigil was told it while it was down).
    pub fn start_on(port: u16) -> Mosquitto {
        Self::start_with_on(None, port)
    }

    /// A broker that keeps sessions and queued messages across [`Self::stop`] and
    /// [`Self::restart`] (mosquitto's persistence file, saved on SIGTERM).
    pub fn start_persistent() -> Mosquitto {
        let mut m = Self::start_with(None);
        m.stop();
        let data = m._dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // Started as root, mosquitto drops to its own user: it must be able to
        // write its persistence file, or sessions silently vanish on restart.
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |m| std::fs::Permissions::from_mode(m);
            std::fs::set_permissions(m._dir.path(), mode(0o755)).unwrap();
            std::fs::set_permissions(&data, mode(0o777)).unwrap();
        }
        let mut conf = std::fs::read_to_string(&m.conf)
            .unwrap()
            .replace("persistence false\n", "");
        conf.push_str(&format!(
            "persistence true\npersistence_location {}/\nautosave_interval 1\n",
            data.display()
        ));
        std::fs::write(&m.conf, conf).unwrap();
        m.restart();
        m
    }

    /// Stops the broker the way a service manager does (SIGTERM) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(Self::spawn(&self.conf, self.port));
    }

    fn spawn(conf: &Path, port: u16) -> Child {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (scripts/setup installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// A broker that admits only `user` with `password`.
    pub fn start_with_password(user: &str, password: &str) -> Mosquitto {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Mosquitto {
        Self::start_with_on(login, free_port())
    }

    fn start_with_on(login: Option<(&str, &str)>, port: u16) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        let access = match login {
            None => "allow_anonymous true\n".to_string(),
            Some((user, password)) => {
                let file = dir.path().join("passwd");
                let made = Command::new("mosquitto_passwd")
                    .arg("-b")
                    .arg("-c")
                    .arg(&file)
                    .args([user, password])
                    .status()
                    .expect("mosquitto_passwd (package mosquitto) runs");
                assert!(made.success());
                format!("allow_anonymous false\npassword_file {}\n", file.display())
            }
        };
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\n{access}persistence false\n"),
        )
        .unwrap();
        let child = Self::spawn(&conf, port);
        Mosquitto {
            child: Some(child),
            port,
            conf,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A subscriber with a persistent session (clean session off, QoS 1) that
/// reconnects by itself: what a patrol app does. Records (topic, payload).
pub struct PersistentSubscriber {
    pub messages: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl PersistentSubscriber {
    pub fn start(port: u16, filter: &str) -> PersistentSubscriber {
        let mut options = rumqttc::MqttOptions::new(format!("patrol-{port}"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(false);
        let (client, mut connection) = rumqttc::Client::new(options, 100);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (subscribed_tx, subscribed_rx) = std::sync::mpsc::channel();
        {
            let (messages, stop, filter) = (messages.clone(), stop.clone(), filter.to_string());
            std::thread::spawn(move || {
                for n in connection.iter() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    match n {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                            if !ack.session_present {
                                let _ = client.try_subscribe(&filter, rumqttc::QoS::AtLeastOnce);
                            }
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                            let _ = subscribed_tx.send(());
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                            messages.lock().unwrap().push((
                                p.topic.clone(),
                                String::from_utf8_lossy(&p.payload).to_string(),
                            ));
                        }
                        Ok(_) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
            });
        }
        subscribed_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscribed to the test broker");
        PersistentSubscriber { messages, stop }
    }

    pub fn wait_for(&self, what: impl Fn(&[(String, String)]) -> bool, timeout: Duration) -> bool {
        wait_until(timeout, || what(&self.messages.lock().unwrap()))
    }
}

impl Drop for PersistentSubscriber {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `event_id`s of JSON events (one per line of `text`, or per message payload).
pub fn event_ids<'a>(payloads: impl Iterator<Item = &'a str>) -> Vec<String> {
    payloads
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter_map(|v| v["event_id"].as_str().map(String::from))
        .collect()
}

/// Subscribes to `filter` and records every message (topic, payload, retained).
pub struct Recorder {
    pub messages: Arc<Mutex<Vec<(String, String, bool)>>>,
    /// Wall clock (ms since the Unix epoch) each message arrived, same order.
    pub arrived_ms: Arc<Mutex<Vec<u64>>>,
}

impl Recorder {
    pub fn start(port: u16, filter: &str) -> Recorder {
        Self::start_as(port, filter, None)
    }

    /// Subscribes with a user name and password.
    pub fn start_as(port: u16, filter: &str, login: Option<(&str, &str)>) -> Recorder {
        // Each recorder its own client id: a second one must not kick the first off.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut options = rumqttc::MqttOptions::new(format!("test-{port}-{n}"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut connection) = rumqttc::Client::new(options, 100);
        client.subscribe(filter, rumqttc::QoS::AtLeastOnce).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let arrived_ms = Arc::new(Mutex::new(Vec::new()));
        let (subscribed_tx, subscribed_rx) = std::sync::mpsc::channel();
        {
            let messages = messages.clone();
            let arrived_ms = arrived_ms.clone();
            std::thread::spawn(move || {
                let _client = client;
                for n in connection.iter() {
                    match n {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                            let _ = subscribed_tx.send(());
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                            arrived_ms.lock().unwrap().push(
                                std::time::SystemTime::now()
                                    .duration_since(std::time::UNIX_EPOCH)
                                    .unwrap()
                                    .as_millis() as u64,
                            );
                            messages.lock().unwrap().push((
                                p.topic.clone(),
                                String::from_utf8_lossy(&p.payload).to_string(),
                                p.retain,
                            ));
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            });
        }
        subscribed_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscribed to the test broker");
        Recorder {
            messages,
            arrived_ms,
        }
    }

    pub fn wait_for(
        &self,
        what: impl Fn(&[(String, String, bool)]) -> bool,
        timeout: Duration,
    ) -> bool {
        wait_until(timeout, || what(&self.messages.lock().unwrap()))
    }
}

/// The body of `GET path` on a loopback port.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or(response)
}

/// An RTSP camera served in-process at `/cam` from a GStreamer launch line
/// (`( … ! rtph264pay name=pay0 pt=96 )`); stops on drop.
pub struct RtspCamera {
    pub uri: vigil::source::SourceUri,
    pub port: u16,
    launch: String,
    main_loop: gstreamer::glib::MainLoop,
    server: Option<(gstreamer_rtsp_server::RTSPServer, gstreamer::glib::SourceId)>,
}

impl RtspCamera {
    pub fn serve(launch: &str) -> RtspCamera {
        vigil::source::init().unwrap();
        let main_loop = gstreamer::glib::MainLoop::new(None, false);
        let lp = main_loop.clone();
        std::thread::spawn(move || lp.run());
        let mut camera = RtspCamera {
            uri: vigil::source::SourceUri(String::new()),
            port: 0,
            launch: launch.into(),
            main_loop,
            server: None,
        };
        camera.start();
        camera
    }

    fn start(&mut self) {
        use gstreamer_rtsp_server as rtsp;
        use gstreamer_rtsp_server::prelude::*;
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&self.port.to_string());
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(&self.launch);
        factory.set_shared(true);
        server.mount_points().unwrap().add_factory("/cam", factory);
        let id = server.attach(None).unwrap();
        self.port = server.bound_port() as u16;
        self.uri = vigil::source::SourceUri(format!("rtsp://127.0.0.1:{}/cam", self.port));
        self.server = Some((server, id));
    }

    /// The camera goes dark: every client is dropped and the port closes.
    pub fn stop(&mut self) {
        use gstreamer_rtsp_server::prelude::*;
        if let Some((server, id)) = self.server.take() {
            server.client_filter(Some(&mut |_, _| {
                gstreamer_rtsp_server::RTSPFilterResult::Remove
            }));
            id.remove();
        }
    }

    /// The camera comes back on the same address.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }
}

impl Drop for RtspCamera {
    fn drop(&mut self) {
        self.stop();
        self.main_loop.quit();
    }
}

/// A loopback TCP proxy to `target` that can be partitioned: while it is, no
/// byte is forwarded either way and no connection is closed (a cut cable, not
/// a refused port).
pub struct PartitionProxy {
    pub port: u16,
    partitioned: Arc<std::sync::atomic::AtomicBool>,
}

impl PartitionProxy {
    pub fn start(target: u16) -> PartitionProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let partitioned = Arc::new(AtomicBool::new(false));
        let cut = partitioned.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let cut = cut.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let (mut from, mut to) = (from, to);
                        let mut buf = [0u8; 16384];
                        loop {
                            if cut.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(50));
                                continue;
                            }
                            from.set_read_timeout(Some(Duration::from_millis(50)))
                                .unwrap();
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => break,
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        PartitionProxy { port, partitioned }
    }

    pub fn partition(&self, cut: bool) {
        self.partitioned
            .store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A clip (H.264 in MP4) as GStreamer sees it: encoded, then decoded to its end.
#[derive(Debug)]
pub struct ClipInfo {
    pub frames: usize,
    /// End of the last decoded frame, seconds from the clip's start.
    pub duration_s: f64,
    pub first_is_keyframe: bool,
    pub profile: String,
    pub decoded_format: String,
    pub width: i32,
}

pub fn inspect_clip(path: &Path) -> ClipInfo {
    gst::init().unwrap();
    // Encoded units: the first must be a keyframe; the profile says who encoded.
    let parse = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! h264parse ! appsink name=sink sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = parse
        .by_name("sink")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    parse.set_state(gst::State::Playing).unwrap();
    let first = sink
        .try_pull_sample(gst::ClockTime::from_seconds(10))
        .expect("the clip has encoded frames");
    let first_is_keyframe = !first
        .buffer()
        .unwrap()
        .flags()
        .contains(gst::BufferFlags::DELTA_UNIT);
    let profile = first
        .caps()
        .unwrap()
        .structure(0)
        .unwrap()
        .get::<String>("profile")
        .unwrap_or_default();
    parse.set_state(gst::State::Null).unwrap();

    // Decoded to the last frame, without an error.
    let decode = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! h264parse ! avdec_h264 ! appsink name=sink sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = decode
        .by_name("sink")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    decode.set_state(gst::State::Playing).unwrap();
    let (mut frames, mut end, mut format, mut width) = (0, 0u64, String::new(), 0);
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        let b = s.buffer().unwrap();
        end =
            end.max(b.pts().unwrap().nseconds() + b.duration().map(|d| d.nseconds()).unwrap_or(0));
        let st = s.caps().unwrap().structure(0).unwrap().to_owned();
        format = st.get::<String>("format").unwrap();
        width = st.get::<i32>("width").unwrap();
        frames += 1;
    }
    let bus = decode.bus().unwrap();
    let error = bus.pop_filtered(&[gst::MessageType::Error]);
    assert!(
        error.is_none(),
        "{} decodes without error: {error:?}",
        path.display()
    );
    assert!(sink.is_eos(), "{} decodes to its end", path.display());
    decode.set_state(gst::State::Null).unwrap();
    ClipInfo {
        frames,
        duration_s: end as f64 / 1e9,
        first_is_keyframe,
        profile,
        decoded_format: format,
        width,
    }
}

/// Polls `condition` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a signal to a child process (SIGTERM: what a service manager sends).
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Waits for the child to exit (killing it after `within`); its status code and everything it logged.
pub fn finish(mut child: Child, within: Duration) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    (status.code(), log, took)
}

/// A child's stderr, followed line by line as it arrives (echoed to the
/// test's output), each line with when it came: for tests that wait on what
/// vigil logs, or time it.
pub struct LogLines {
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LogLines {
    /// Takes `child`'s piped stderr.
    pub fn follow(child: &mut Child) -> LogLines {
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let stderr = child.stderr.take().expect("stderr piped");
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    eprintln!("vigil: {line}");
                    lines.lock().unwrap().push((Instant::now(), line));
                }
            })
        };
        LogLines {
            lines,
            reader: Some(reader),
        }
    }

    /// When the first line at or after `after` matching `what` arrived.
    pub fn first_after(&self, after: Instant, what: impl Fn(&str) -> bool) -> Option<Instant> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|(t, l)| *t >= after && what(l))
            .map(|(t, _)| *t)
    }

    /// Everything so far, one line each.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap();
        lines.iter().map(|(_, l)| format!("{l}\n")).collect()
    }

    /// Everything, once the child has closed its stderr.
    pub fn finish(mut self) -> String {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.text()
    }
}

/// A real PostgreSQL (Debian's `postgresql` package) in a temporary
/// directory on a free loopback port, with password login for `vigil`;
/// stopped on drop. As root it runs as the `postgres` user (PostgreSQL
/// refuses root).
pub struct Postgres {
    pub port: u16,
    pub password: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            })
            .expect("PostgreSQL must be installed (scripts/setup installs package postgresql)");
        let dir = tempfile::tempdir().unwrap();
        let as_root = unsafe { libc::geteuid() } == 0;
        let password = "compound-test-secret".to_string();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &password).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if as_root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data)
                .arg(&pwfile)
                .status()
                .unwrap();
            assert!(owned.success());
        }
        let pg = Postgres {
            port: free_port(),
            password,
            dir,
            bin,
            as_root,
        };
        let init = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "vigil", "-A", "scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        pg.start_server();
        pg
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// `postgres://vigil@127.0.0.1:<port>/postgres`; the password is separate.
    pub fn url(&self) -> String {
        format!("postgres://vigil@127.0.0.1:{}/postgres", self.port)
    }

    /// A client for the test's own queries.
    pub fn client(&self) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("vigil")
            .password(&self.password)
            .dbname("postgres")
            .connect(postgres::NoTls)
            .expect("connect to the test PostgreSQL")
    }

    pub fn start_server(&self) {
        let data = self.dir.path().join("data");
        let started = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
                self.port,
                data.display()
            ))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&started.stdout),
            String::from_utf8_lossy(&started.stderr)
        );
    }

    /// Stops the server the way an operator does (`pg_ctl stop -m fast`).
    pub fn stop_server(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
