//! An embedded MQTT broker (rumqttd) for demos and single-box installs: started by
//! `vigil run` when `[alerts] broker` is unset.
//!
//! Nobody connects without a login. vigil makes a fresh password for itself at
//! every start and is the only one allowed its client id (so no other client can
//! take its session and kick it off). Subscribers log in as `reader` with the
//! password vigil keeps in `mqtt-reader.password` (0600) in the store directory,
//! made once and kept across restarts. rumqttd has no per-topic ACL, so a reader
//! could still publish: installations that need that run mosquitto with an ACL
//! file and set `[alerts] broker`. It listens on loopback only (`vigil check`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("embedded MQTT broker on {listen}: {reason}")]
pub struct BrokerError {
    pub listen: String,
    pub reason: String,
}

/// `listen` as an address that can be bound right now. Servers that bind on a
/// thread of their own (rumqttd, the metrics exporter) report a taken port only
/// in their logs; probing first turns it into an error naming the address.
pub fn bindable(listen: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = listen.parse().map_err(|e| format!("not an address: {e}"))?;
    drop(std::net::TcpListener::bind(addr).map_err(|e| e.to_string())?);
    Ok(addr)
}

/// Who may connect to the embedded broker.
#[derive(Clone)]
pub struct EmbeddedLogin {
    /// vigil's own login, made at this start.
    pub vigil: (String, String),
    /// The client id only vigil may use.
    pub client_id: String,
    /// The subscribers' password (user `reader`).
    pub reader_password: String,
    /// Where the subscribers' password is kept.
    pub reader_file: PathBuf,
}

impl std::fmt::Debug for EmbeddedLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EmbeddedLogin {{ reader_file: {:?}, .. }}",
            self.reader_file
        )
    }
}

pub const READER: &str = "reader";

fn random_password() -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a password: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

impl EmbeddedLogin {
    /// A fresh password for vigil; the readers' from `dir/mqtt-reader.password`
    /// (made, 0600, if missing).
    pub fn prepare(dir: &Path, client_id: &str) -> Result<EmbeddedLogin, BrokerError> {
        let reader_file = dir.join("mqtt-reader.password");
        let fail = |reason: String| BrokerError {
            listen: reader_file.display().to_string(),
            reason,
        };
        let existing = std::fs::read_to_string(&reader_file)
            .ok()
            .and_then(|t| t.lines().next().map(str::trim).map(String::from))
            .filter(|p| p.len() >= 16);
        let reader_password = match existing {
            Some(p) => p,
            None => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
                let password = random_password().map_err(fail)?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&reader_file)
                    .map_err(|e| fail(e.to_string()))?;
                writeln!(f, "{password}").map_err(|e| fail(e.to_string()))?;
                password
            }
        };
        Ok(EmbeddedLogin {
            vigil: ("vigil".into(), random_password().map_err(fail)?),
            client_id: client_id.into(),
            reader_password,
            reader_file,
        })
    }

    fn admits(&self, client_id: &str, user: &str, password: &str) -> bool {
        let is_vigil = user == self.vigil.0 && password == self.vigil.1;
        let is_reader = user == READER && password == self.reader_password;
        if client_id == self.client_id {
            is_vigil
        } else {
            is_reader
        }
    }
}

/// Starts the broker on its own thread; returns the address it listens on.
pub fn start(listen: &str, login: EmbeddedLogin) -> Result<SocketAddr, BrokerError> {
    let fail = |reason: String| BrokerError {
        listen: listen.into(),
        reason,
    };
    // Probe the port first: rumqttd only logs a bind failure from its thread.
    let addr = bindable(listen).map_err(fail)?;
    let config = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 10485760
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let mut config: rumqttd::Config = toml::from_str(&config).map_err(|e| fail(e.to_string()))?;
    for server in config.v4.iter_mut().flat_map(|v| v.values_mut()) {
        let login = login.clone();
        server
            .connections
            .set_auth_handler(move |client_id, user, password| {
                let admitted = login.admits(&client_id, &user, &password);
                if !admitted {
                    tracing::warn!(
                        "embedded MQTT broker: refused client {client_id:?} (user {user:?}): wrong login or a client id reserved for vigil"
                    );
                }
                std::future::ready(admitted)
            });
    }
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("embedded MQTT broker stopped: {e}");
            }
        })
        .map_err(|e| fail(e.to_string()))?;
    // Ready before the client's first attempt, so the demo does not open with
    // a "connection refused" warning.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::net::TcpStream::connect(addr).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vigil_gets_its_client_id_and_readers_need_the_kept_password() {
        let dir = tempfile::tempdir().unwrap();
        let login = EmbeddedLogin::prepare(dir.path(), "vigil-x").unwrap();
        let (user, pw) = login.vigil.clone();
        assert!(login.admits("vigil-x", &user, &pw));
        assert!(!login.admits("vigil-x", READER, &login.reader_password));
        assert!(login.admits("patrol-1", READER, &login.reader_password));
        assert!(!login.admits("patrol-1", READER, "guess"));
        assert!(!login.admits("patrol-1", "", ""));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&login.reader_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = EmbeddedLogin::prepare(dir.path(), "vigil-x").unwrap();
        assert_eq!(
            again.reader_password, login.reader_password,
            "kept across restarts"
        );
        assert_ne!(
            again.vigil.1, login.vigil.1,
            "vigil's own is new at each start"
        );
    }
}
