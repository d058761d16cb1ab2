//! Other nodes' alerts and cameras through this console. An alert's page,
//! evidence, acknowledgements, tags, hold and export live with the node that
//! recorded it, and a camera's live pictures with the node running it; a
//! request for an alert this node's store does not have, or for a camera
//! another node runs, is passed to that node, signed with the compound's
//! secret (`compound/forward.rs`), and its answer (a page, a clip with its
//! byte ranges, a redirect) streamed back.
//! The other way round, a signed request from another console is served here
//! as the user it names, `name@node`, so the custody log says who and where.

use super::Console;
use super::auth::User;
use super::routes::AckForm;
use super::views;
use crate::compound::forward::{FORWARDED, Forwarded, SIGNATURE, body_sha256};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

/// Forms and JSON only: evidence is fetched, never posted.
const MAX_FORWARDED_BODY: usize = 1 << 20;
/// A node that does not answer within this is shown as unreachable.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

pub(crate) type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

pub(crate) fn http_client() -> HttpClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(3)));
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

/// The alert a console path concerns: `/alerts/{id}…`, or the alert whose
/// evidence file `/evidence/<camera>/<day>/<id>-<kind>.<ext>` is.
pub(crate) fn alert_of_path(path: &str) -> Option<&str> {
    if let Some(rest) = path.strip_prefix("/alerts/") {
        return rest.split('/').next().filter(|id| !id.is_empty());
    }
    let file = path.strip_prefix("/evidence/")?.rsplit('/').next()?;
    let stem = file.rsplit_once('.')?.0;
    for kind in ["-snapshot", "-annotated", "-clip"] {
        if let Some(id) = stem.strip_suffix(kind) {
            return Some(id);
        }
    }
    // A split clip: `<id>-clip-2`.
    let (head, n) = stem.rsplit_once('-')?;
    n.parse::<u32>().ok()?;
    head.strip_suffix("-clip")
}

/// The user a verified forwarded request names.
pub(crate) fn forwarded_user(f: &Forwarded) -> Option<User> {
    fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
        serde_json::from_value(serde_json::Value::String(s.into())).ok()
    }
    Some(User {
        name: format!("{}@{}", f.user, f.from),
        role: parse(&f.role)?,
        csrf: f.csrf.clone(),
        session: String::new(),
        lang: parse(&f.lang)?,
    })
}

/// Serves a signed request from another console as the user it names; refuses
/// one whose signature does not hold.
pub(crate) async fn accept_forwarded(
    State(c): State<Arc<Console>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(header_value) = request.headers().get(FORWARDED).cloned() else {
        return next.run(request).await;
    };
    let refuse = |why: String| {
        tracing::warn!("console: a forwarded request refused: {why}");
        (StatusCode::FORBIDDEN, format!("refused: {why}")).into_response()
    };
    let Some(secret) = c.compound.as_ref().and_then(|p| p.secret.clone()) else {
        return refuse(crate::compound::Refusal::NoSecret.to_string());
    };
    let signature = request
        .headers()
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_FORWARDED_BODY).await else {
        return refuse("the body is too large".into());
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str())
        .to_string();
    let verified = Forwarded::verify(
        &secret,
        parts.method.as_str(),
        &path,
        header_value.to_str().unwrap_or_default(),
        &signature,
        &body,
        crate::time::now_ms() as i64,
    );
    match verified {
        Ok(f) => {
            if forwarded_user(&f).is_none() {
                return refuse(format!(
                    "role {:?} or language {:?} unknown",
                    f.role, f.lang
                ));
            }
            parts.extensions.insert(f);
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Err(why) => refuse(why.to_string()),
    }
}

/// What a console path concerns that may live on another node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// An alert: its node is the one that recorded it.
    Alert(&'a str),
    /// A camera's live pages: its node is the one running it now.
    Camera(&'a str),
}

pub(crate) fn target_of_path(path: &str) -> Option<Target<'_>> {
    if let Some(rest) = path.strip_prefix("/cameras/") {
        return rest
            .split('/')
            .next()
            .filter(|id| !id.is_empty())
            .map(Target::Camera);
    }
    alert_of_path(path).map(Target::Alert)
}

/// An alert this node's store does not have, or a camera another node runs.
#[derive(Debug, Clone)]
enum Elsewhere {
    Alert(String),
    Camera { id: String, node: String },
}

impl std::fmt::Display for Elsewhere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Elsewhere::Alert(id) => write!(f, "alert {id}"),
            Elsewhere::Camera { id, .. } => write!(f, "camera {id}"),
        }
    }
}

/// Passes a request about another node's alert, or a camera another node
/// runs, to that node.
pub(crate) async fn forward_remote(
    State(c): State<Arc<Console>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(peers) = c.compound.clone() else {
        return next.run(request).await;
    };
    // Served here already for another console: never passed on again.
    if request.extensions().get::<Forwarded>().is_some() {
        return next.run(request).await;
    }
    let elsewhere = match target_of_path(request.uri().path()) {
        None => None,
        Some(Target::Camera(id)) => c
            .health
            .camera(id)
            .and_then(|h| h.runner())
            .filter(|r| !r.here)
            .map(|r| Elsewhere::Camera {
                id: id.to_string(),
                node: r.node,
            }),
        Some(Target::Alert(id)) => {
            let local = {
                let id = id.to_string();
                c.db(move |s| s.has_alert(&id)).await
            };
            matches!(local, Ok(false)).then(|| Elsewhere::Alert(id.to_string()))
        }
    };
    let Some(what) = elsewhere else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let user = match User::from_request_parts(&mut parts, &c).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let t = user.lang.text();
    let lookup = {
        let (peers, what) = (peers.clone(), what.clone());
        tokio::task::spawn_blocking(move || match &what {
            Elsewhere::Camera { node, .. } => peers.node(node),
            Elsewhere::Alert(id) => peers.owner(id),
        })
        .await
    };
    let owner = match lookup {
        Ok(Ok(Some(o))) if o.node != peers.me => o,
        Ok(Ok(_)) => return next.run(Request::from_parts(parts, body)).await,
        Ok(Err(e)) => {
            tracing::warn!("console: {what}: the compound's PostgreSQL: {e}");
            return shown(
                &c,
                &user,
                StatusCode::SERVICE_UNAVAILABLE,
                t.compound_db_down,
            );
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    // A take or resolution of a down node's alert: queued in PostgreSQL for
    // the node to write when it is back, so a shift can close the case now.
    if let Elsewhere::Alert(id) = &what
        && !owner.live
        && parts.method == axum::http::Method::POST
        && parts.uri.path().ends_with("/ack")
    {
        let request = Request::from_parts(parts, body);
        return queue_ack(&c, &peers, user, &owner.node, id, request).await;
    }
    let unreachable = match what {
        Elsewhere::Camera { .. } => t.camera_elsewhere_unreachable,
        Elsewhere::Alert(_) => t.elsewhere_unreachable,
    }
    .replace("{node}", &owner.node);
    // What this console shows when the node does not answer, at `status`.
    let down =
        async |status| unreachable_page(&c, &user, status, &unreachable, &what, &peers).await;
    let Some(secret) = peers.secret.clone() else {
        let text = t.elsewhere_no_secret.replace("{node}", &owner.node);
        return shown(&c, &user, StatusCode::SERVICE_UNAVAILABLE, &text);
    };
    let Some(url) = owner.url else {
        tracing::warn!(
            "console: {what} is on node {}, which advertises no console address",
            owner.node
        );
        return down(StatusCode::BAD_GATEWAY).await;
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_FORWARDED_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str())
        .to_string();
    let forwarded = Forwarded {
        from: peers.me.clone(),
        user: user.name.clone(),
        role: user.role.as_str().into(),
        lang: user.lang.tag().into(),
        csrf: user.csrf.clone(),
        expires_ms: Forwarded::expiry(crate::time::now_ms() as i64),
        body_sha256: body_sha256(&body),
    };
    let (header_value, signature) = forwarded.sign(&secret, parts.method.as_str(), &path);
    let mut outgoing = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{url}{path}"))
        .header(FORWARDED, header_value)
        .header(SIGNATURE, signature);
    // What the owning node's handlers read: byte ranges for clips, the
    // form's type, and where an acknowledgement came from (to return there).
    for name in [
        header::RANGE,
        header::IF_RANGE,
        header::CONTENT_TYPE,
        header::ACCEPT,
        header::REFERER,
        header::HeaderName::from_static("x-requested-with"),
    ] {
        if let Some(v) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, v.clone());
        }
    }
    let Ok(outgoing) = outgoing.body(Full::new(body)) else {
        return down(StatusCode::BAD_GATEWAY).await;
    };
    let sent = async {
        if url.starts_with("https://") {
            let pin = owner.cert_sha256.as_deref().ok_or_else(|| {
                ForwardError::from("the node serves HTTPS but published no certificate")
            })?;
            send_pinned(pin, outgoing).await
        } else {
            Ok(c.http.request(outgoing).await?)
        }
    };
    let answer = tokio::time::timeout(ANSWER_WITHIN, sent).await;
    match answer {
        Ok(Ok(response)) => {
            let (mut head, incoming) = response.into_parts();
            strip_hop_by_hop(&mut head.headers);
            Response::from_parts(head, Body::new(incoming))
        }
        Ok(Err(e)) => {
            tracing::warn!(
                "console: {what}: node {} at {url}: {}",
                owner.node,
                crate::errors::with_causes(e.as_ref())
            );
            down(StatusCode::BAD_GATEWAY).await
        }
        Err(_) => {
            tracing::warn!(
                "console: {what}: node {} at {url} did not answer within {ANSWER_WITHIN:?}",
                owner.node
            );
            down(StatusCode::GATEWAY_TIMEOUT).await
        }
    }
}

type ForwardError = Box<dyn std::error::Error + Send + Sync>;

/// Sends `request` (an absolute `https` URI) to a node whose console serves
/// HTTPS, trusting exactly the certificate that node published in PostgreSQL
/// (`nodes.cert_sha256`): a compound's consoles usually have self-signed
/// certificates, and no CA is needed to know which one is the node's.
async fn send_pinned(
    pin: &str,
    mut request: axum::http::Request<Full<Bytes>>,
) -> Result<axum::http::Response<hyper::body::Incoming>, ForwardError> {
    let uri = request.uri().clone();
    let host = uri
        .host()
        .ok_or("no host")?
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            sha256: pin.to_string(),
            provider,
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| "connect timed out")??;
    let name = rustls::pki_types::ServerName::try_from(host.clone())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    // The connection carries the answer's body: it lives until that is read.
    tokio::spawn(connection);
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or(host);
    *request.uri_mut() = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
    request
        .headers_mut()
        .insert(header::HOST, authority.parse()?);
    Ok(sender.send_request(request).await?)
}

/// Trusts one certificate, by its SHA-256; signatures are still checked
/// against its key, so only the holder of that certificate's key passes.
#[derive(Debug)]
struct Pinned {
    sha256: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if crate::store::manifest::sha256_hex(end_entity.as_ref()) == self.sha256 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "its certificate differs from the one the node published".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The page for a node that does not answer; for an alert, with its record
/// as the index last had it (one more lookup, on this failure path only).
async fn unreachable_page(
    c: &Console,
    user: &User,
    status: StatusCode,
    text: &str,
    what: &Elsewhere,
    peers: &Arc<crate::compound::Peers>,
) -> Response {
    let record = match what {
        Elsewhere::Alert(id) => {
            let (peers, id) = (peers.clone(), id.clone());
            tokio::task::spawn_blocking(move || peers.record(&id))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        }
        Elsewhere::Camera { .. } => None,
    };
    let record = record.as_ref().map(|(node, r)| (node.as_str(), r));
    (status, views::unreachable(c, user, text, record)).into_response()
}

/// Queues the take or resolution `request` posts for alert `id` of `node`,
/// which is down, as `user@this-node`.
async fn queue_ack(
    c: &Arc<Console>,
    peers: &Arc<crate::compound::Peers>,
    user: User,
    node: &str,
    id: &str,
    request: Request,
) -> Response {
    use axum::extract::FromRequest;
    let t = user.lang.text();
    let fetch = request.headers().contains_key("x-requested-with");
    let form = match axum::Form::<AckForm>::from_request(request, c).await {
        Ok(axum::Form(form)) => form,
        Err(rejection) => return rejection.into_response(),
    };
    if let Err(refused) = user.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let ack = form.ack(&format!("{}@{}", user.name, peers.me));
    let queued = {
        let (peers, node, id, ack) = (peers.clone(), node.to_string(), id.to_string(), ack.clone());
        tokio::task::spawn_blocking(move || peers.queue_ack(&node, &id, &ack)).await
    };
    match queued {
        Ok(Ok(())) => {
            tracing::info!(
                "console: alert {id} {} by {} queued for node {node}, which is down",
                ack.action.as_str(),
                ack.who
            );
            if fetch {
                StatusCode::ACCEPTED.into_response()
            } else {
                shown(
                    c,
                    &user,
                    StatusCode::ACCEPTED,
                    &t.ack_queued.replace("{node}", node),
                )
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(
                "console: alert {id}: queueing for node {node}: the compound's PostgreSQL: {e}"
            );
            shown(
                c,
                &user,
                StatusCode::SERVICE_UNAVAILABLE,
                t.compound_db_down,
            )
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn shown(c: &Console, user: &User, status: StatusCode, text: &str) -> Response {
    (status, views::message(c, Some(user), text)).into_response()
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
        header::SET_COOKIE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_of_a_page_or_an_evidence_file() {
        assert_eq!(
            alert_of_path("/alerts/gate-17-00003"),
            Some("gate-17-00003")
        );
        assert_eq!(
            alert_of_path("/alerts/gate-17-00003/ack"),
            Some("gate-17-00003")
        );
        let day = "/evidence/gate/2026-12-02";
        for (file, id) in [
            ("gate-17-00003-snapshot.jpg", Some("gate-17-00003")),
            ("gate-17-00003-annotated.jpg", Some("gate-17-00003")),
            ("gate-17-00003-clip.mp4", Some("gate-17-00003")),
            ("gate-17-00003-clip-2.mp4", Some("gate-17-00003")),
            ("manifest.jsonl", None),
            ("gate-17-00003-other.mp4", None),
        ] {
            assert_eq!(alert_of_path(&format!("{day}/{file}")), id, "{file}");
        }
        assert_eq!(alert_of_path("/alerts/"), None);
        assert_eq!(alert_of_path("/search"), None);
        assert_eq!(
            target_of_path("/cameras/gate/live.jpg"),
            Some(Target::Camera("gate"))
        );
        assert_eq!(
            target_of_path("/cameras/gate"),
            Some(Target::Camera("gate"))
        );
        assert_eq!(target_of_path("/cameras"), None);
        assert_eq!(
            target_of_path("/alerts/gate-17-00003/ack"),
            Some(Target::Alert("gate-17-00003"))
        );
    }
}
