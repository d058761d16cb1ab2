//! The broker as the second witness: which nodes it sees connected.
//!
//! Every node's publisher holds a session with a will on
//! `<prefix>/nodes/<node>/available` (`online` at connect, `offline` published
//! by the broker when the session dies, or by the node at a clean stop). This
//! subscribes to those retained messages. A killed node's will is published at
//! once (its socket closes); a powered-off one's after 1.5 keep-alives (7.5 s).

use crate::publish::Connect;
use crate::shutdown::Shutdown;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct Witness {
    seen: Arc<Mutex<BTreeMap<String, bool>>>,
    connected: Arc<AtomicBool>,
}

impl Witness {
    /// Subscribes in the background, reconnecting until `shutdown`.
    pub fn start(connect: Connect, client_id: String, prefix: &str, shutdown: Shutdown) -> Witness {
        let witness = Witness {
            seen: Default::default(),
            connected: Default::default(),
        };
        let filter = format!("{prefix}/nodes/+/available");
        let inner = witness.clone();
        let spawned = std::thread::Builder::new()
            .name("witness".into())
            .spawn(move || inner.run(connect, client_id, filter, shutdown));
        if let Err(e) = spawned {
            tracing::error!("cannot start the broker witness thread: {e}");
        }
        witness
    }

    /// `Some(true)`: the broker has the node's session; `Some(false)`: its
    /// will (or clean stop) was published; `None`: not known here.
    pub fn online(&self, node: &str) -> Option<bool> {
        if !self.connected.load(Ordering::Relaxed) {
            return None;
        }
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .copied()
    }

    fn run(self, connect: Connect, client_id: String, filter: String, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            let mut options = MqttOptions::new(&client_id, &connect.host, connect.port);
            options.set_keep_alive(Duration::from_secs(5));
            if let Some((user, password)) = &connect.credentials {
                options.set_credentials(user, password);
            }
            if let Some(tls) = &connect.tls {
                let _ = rustls::crypto::ring::default_provider().install_default();
                options.set_transport(rumqttc::Transport::tls(
                    tls.ca.clone(),
                    tls.client.clone(),
                    None,
                ));
            }
            let (client, mut connection) = Client::new(options, 16);
            for event in connection.iter() {
                if shutdown.is_triggered() {
                    break;
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // A fresh session gets every retained will again.
                        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        if client.try_subscribe(&filter, QoS::AtLeastOnce).is_err() {
                            break;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        self.connected.store(true, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let node = p.topic.rsplit('/').nth(1).unwrap_or_default().to_string();
                        let online = &p.payload[..] == b"online";
                        self.seen
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(node, online);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!("broker witness: {e}");
                        break;
                    }
                }
            }
            self.connected.store(false, Ordering::Relaxed);
            let _ = client.disconnect();
            shutdown.wait(Duration::from_secs(1));
        }
    }
}
