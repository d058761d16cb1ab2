//! An embedded MQTT broker (rumqttd) for demos and single-box installs: started by
//! `vigil run` when `[alerts] broker` is unset.

use std::net::SocketAddr;

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

/// Starts the broker on its own thread; returns the address it listens on.
pub fn start(listen: &str) -> Result<SocketAddr, BrokerError> {
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
    let config: rumqttd::Config = toml::from_str(&config).map_err(|e| fail(e.to_string()))?;
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
