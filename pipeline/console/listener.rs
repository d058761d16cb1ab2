//! The console's listener: connections accepted within limits, so no client
//! can starve the console, the evidence clips or the process.
//!
//! `axum::serve` accepts every connection and keeps an idle one forever: 1 100
//! idle connections without a login once exhausted the file descriptors,
//! failed clip downloads and kept Ctrl-C from stopping vigil. Here each
//! connection holds a slot: at most [`MAX_CONNECTIONS`] in all and
//! [`MAX_PER_ADDRESS`] from one address (so one machine cannot lock out the
//! control room), and a connection must send each request head within
//! [`HEADER_TIMEOUT`], including the next one on a kept-alive connection, so
//! idle connections close. A live feed is mid-response and stays open. A
//! connection over a limit is closed at once and counted in
//! `vigil_http_refused_total{listener="console"}`.

use crate::telemetry::RateLimitedLog;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

/// Open connections at most: a browser holds up to 6, so this serves about
/// 80 consoles, well under the file descriptors vigil asks for at start.
pub const MAX_CONNECTIONS: usize = 512;
/// Open connections from one address at most: a control room behind one NAT
/// address still gets about 20 consoles.
pub const MAX_PER_ADDRESS: usize = 128;
/// Time to send a whole request head, and to start the next one.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One accepted connection's place; given back when it closes.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: IpAddr,
}

impl Slot {
    fn take(open: &Arc<Mutex<Open>>, ip: IpAddr) -> Option<Slot> {
        let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
        let here = o.by_address.get(&ip).copied().unwrap_or(0);
        if o.total >= MAX_CONNECTIONS || here >= MAX_PER_ADDRESS {
            return None;
        }
        o.total += 1;
        *o.by_address.entry(ip).or_default() += 1;
        Some(Slot {
            open: open.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        o.total -= 1;
        if let Some(n) = o.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.by_address.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` until the task is dropped (the console's shutdown drops it).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    let refused = Arc::new(RateLimitedLog::new("console"));
    let refused_total = metrics::counter!("vigil_http_refused_total", "listener" => "console");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: back off, do not spin.
                refused.warn(&format!("cannot accept a connection: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = Slot::take(&open, peer.ip()) else {
            refused_total.increment(1);
            refused.warn(&format!(
                "connection from {} closed: {MAX_CONNECTIONS} open in all or {MAX_PER_ADDRESS} from one address",
                peer.ip()
            ));
            continue;
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            match tls {
                None => connection(stream, peer, app).await,
                Some(acceptor) => {
                    // A failed or stalled handshake is the client's problem.
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        connection(stream, peer, app).await;
                    }
                }
            }
        });
    }
}

async fn connection<S>(stream: S, peer: SocketAddr, app: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    // Errors here are clients going away or timing out: nothing to report.
    let _ = http.serve_connection(TokioIo::new(stream), service).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_per_address_and_in_all_and_given_back() {
        let open = Arc::new(Mutex::new(Open::default()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut held: Vec<Slot> = (0..MAX_PER_ADDRESS)
            .map(|_| Slot::take(&open, a).unwrap())
            .collect();
        assert!(Slot::take(&open, a).is_none(), "one address is capped");
        held.pop();
        assert!(
            Slot::take(&open, a).is_some(),
            "a closed one frees its place"
        );
        let mut others = Vec::new();
        for i in 0.. {
            let ip: IpAddr = format!("10.1.{}.{}", i / 250, i % 250).parse().unwrap();
            match Slot::take(&open, ip) {
                Some(s) => others.push(s),
                None => break,
            }
        }
        assert_eq!(held.len() + others.len(), MAX_CONNECTIONS);
        drop(held);
        drop(others);
        let o = open.lock().unwrap();
        assert_eq!((o.total, o.by_address.len()), (0, 0));
    }
}
