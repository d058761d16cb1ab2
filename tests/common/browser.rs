//! A real browser for the console tests: Debian's headless `chromium` through
//! `chromedriver` (fantoccini), logins, waits on in-page expressions, and the
//! README's screenshots (`VIGIL_SCREENSHOTS=DIR`).

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// Kills the child on drop (a failed assertion must not leave vigil serving).
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn add_user(config: &Path, name: &str, role: &str, password: &str) {
    add_user_with(config, name, role, password, &[]);
}

/// `add_user` with environment variables (a compound's database password).
pub fn add_user_with(config: &Path, name: &str, role: &str, password: &str, env: &[(&str, &str)]) {
    let mut child = vigil()
        .args(["user", "add", name, "--role", role, "-c"])
        .arg(config)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(child.wait().unwrap().success(), "vigil user add {name}");
}

pub fn wait_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Status line and `Location` of a request without a session.
pub fn raw_request(port: u16, method: &str, path: &str) -> (String, Option<String>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.lines().next().unwrap_or("").to_string();
    let location = response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("location:"))
        .map(|l| l[9..].trim().to_string());
    (status, location)
}

/// chromedriver on a free port, killed on drop.
pub fn chromedriver_started(chromedriver: &Path) -> (Killed, u16) {
    let port = super::free_port();
    let driver = Killed(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port, Duration::from_secs(20));
    (driver, port)
}

pub async fn browser(driver: u16, width: u32, height: u32) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": super::program("chromium").unwrap().to_string_lossy(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--autoplay-policy=no-user-gesture-required",
                     // A test console's certificate is self-signed.
                     "--ignore-certificate-errors",
                     format!("--window-size={width},{height}"), "--lang=zh-CN"],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver}"))
        .await
        .expect("a chromium session through chromedriver");
    client.set_window_size(width, height).await.unwrap();
    client
}

pub async fn login(client: &Client, base: &str, user: &str, password: &str) {
    client.goto(&format!("{base}/")).await.unwrap();
    // Not logged in: the console sends every page to the login form.
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/login")
    );
    client
        .find(Locator::Css("input[name=user]"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    client
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    client
        .find(Locator::Css("form.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#wall"))
        .await
        .unwrap();
}

pub async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap()
}

/// Polls `script` (a JS expression) until it is truthy.
pub async fn until(client: &Client, script: &str, timeout: Duration, what: &str) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = js(client, &format!("return ({script});")).await;
        if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("VIGIL_SCREENSHOTS") {
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        let png = client.screenshot().await.unwrap();
        std::fs::write(dir.join(name), png).unwrap();
        eprintln!("screenshot {}", dir.join(name).display());
    }
}

/// Exports the open alert page's evidence bundle as the browser does (the
/// page's export form, `reason` as the case number), checks it with `vigil
/// evidence verify --bundle`, and returns the zip.
pub async fn export_verified(client: &Client, reason: &str, dir: &Path) -> Vec<u8> {
    use base64::Engine;
    let script = format!(
        "const done = arguments[0]; const f = document.getElementById('export'); f.reason.value = {reason:?}; fetch(f.action, {{method: 'POST', body: new URLSearchParams(new FormData(f)), credentials: 'same-origin'}}).then(r => r.arrayBuffer()).then(b => {{ let s = ''; new Uint8Array(b).forEach(x => s += String.fromCharCode(x)); done(btoa(s)); }});"
    );
    let zip = client.execute_async(&script, vec![]).await.unwrap();
    let zip = base64::engine::general_purpose::STANDARD
        .decode(zip.as_str().unwrap())
        .unwrap();
    let bundle = dir.join("bundle.zip");
    std::fs::write(&bundle, &zip).unwrap();
    let verify = vigil()
        .args(["evidence", "verify", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "bundle verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    zip
}
