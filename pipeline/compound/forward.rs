//! Forwarding between the compound's consoles: an alert's evidence, custody
//! log and acknowledgements live in the store of the node that recorded it, so
//! a console asked about another node's alert passes the request on, and the
//! owning node serves it as the user the first console logged in.
//!
//! The owning node believes the first console's word about the user only
//! when the request carries it signed: HMAC-SHA256 with the compound's secret
//! (`[compound] secret_file`, the same file on every node) over the method,
//! the path, who asks, the body's hash and an expiry. The secret never crosses
//! the network, a changed body or path breaks the signature, and a captured
//! request is refused a minute later.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Who asks, as the forwarding console vouches: one header, base64 JSON.
pub const FORWARDED: &str = "x-vigil-forwarded";
/// The HMAC over method, path and [`FORWARDED`], hex.
pub const SIGNATURE: &str = "x-vigil-signature";

/// How long a signed request stays good: clocks of a compound's machines
/// agree within seconds (NTP); a minute leaves room, not much for replay.
const VALID_MS: i64 = 60_000;

/// The compound's shared secret, read from `[compound] secret_file`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("[compound] secret_file {path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "[compound] secret_file {path}: {len} bytes; needs at least 32 (e.g. `head -c 32 /dev/urandom | base64 > FILE`)"
    )]
    Short { path: PathBuf, len: usize },
}

impl Secret {
    pub fn read(path: &Path) -> Result<Secret, SecretError> {
        let text = std::fs::read(path).map_err(|source| SecretError::Read {
            path: path.into(),
            source,
        })?;
        let trimmed = text.trim_ascii().to_vec();
        if trimmed.len() < 32 {
            return Err(SecretError::Short {
                path: path.into(),
                len: trimmed.len(),
            });
        }
        Ok(Secret(trimmed))
    }

    #[cfg(test)]
    pub fn from_bytes(b: &[u8]) -> Secret {
        Secret(b.to_vec())
    }

    fn mac(&self, method: &str, path: &str, forwarded: &str) -> Hmac<Sha256> {
        // Any key length is accepted by HMAC.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        for part in [method, path, forwarded] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }
}

/// The user a console logged in, as it vouches for them to the owning node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forwarded {
    /// The forwarding console's node.
    pub from: String,
    pub user: String,
    pub role: String,
    pub lang: String,
    /// The user's CSRF token on the forwarding console: a form the owning
    /// node rendered posts back through that console with it.
    pub csrf: String,
    pub expires_ms: i64,
    /// SHA-256 of the request body, hex.
    pub body_sha256: String,
}

/// Why a forwarded request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this node has no [compound] secret_file")]
    NoSecret,
    #[error("the forwarded user cannot be read")]
    Malformed,
    #[error("the signature does not match (another compound's secret, or the request was changed)")]
    BadSignature,
    #[error("the request expired (clocks more than a minute apart?)")]
    Expired,
    #[error("the body does not match its signed hash")]
    BadBody,
}

pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

impl Forwarded {
    /// The two header values: [`FORWARDED`] and [`SIGNATURE`].
    pub fn sign(&self, secret: &Secret, method: &str, path: &str) -> (String, String) {
        use base64::Engine;
        let json = serde_json::to_vec(self).unwrap_or_default();
        let header = base64::engine::general_purpose::STANDARD.encode(json);
        let signature = hex::encode(secret.mac(method, path, &header).finalize().into_bytes());
        (header, signature)
    }

    /// Checks a forwarded request's headers and body, at `now_ms`.
    pub fn verify(
        secret: &Secret,
        method: &str,
        path: &str,
        header: &str,
        signature: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Forwarded, Refusal> {
        use base64::Engine;
        let given = hex::decode(signature).map_err(|_| Refusal::BadSignature)?;
        secret
            .mac(method, path, header)
            .verify_slice(&given)
            .map_err(|_| Refusal::BadSignature)?;
        let json = base64::engine::general_purpose::STANDARD
            .decode(header)
            .map_err(|_| Refusal::Malformed)?;
        let forwarded: Forwarded = serde_json::from_slice(&json).map_err(|_| Refusal::Malformed)?;
        if now_ms > forwarded.expires_ms || forwarded.expires_ms > now_ms + 2 * VALID_MS {
            return Err(Refusal::Expired);
        }
        if forwarded.body_sha256 != body_sha256(body) {
            return Err(Refusal::BadBody);
        }
        Ok(forwarded)
    }

    pub fn expiry(now_ms: i64) -> i64 {
        now_ms + VALID_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(body: &[u8]) -> Forwarded {
        Forwarded {
            from: "node-b".into(),
            user: "王警官".into(),
            role: "police".into(),
            lang: "zh-CN".into(),
            csrf: "c".into(),
            expires_ms: Forwarded::expiry(1_000_000),
            body_sha256: body_sha256(body),
        }
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_is_refused() {
        let secret = Secret::from_bytes(b"0123456789abcdef0123456789abcdef");
        let body = b"csrf=c&note=on+it";
        let f = asked(body);
        let (header, sig) = f.sign(&secret, "POST", "/alerts/gate-1-00001/ack");
        let ok = |m: &str, p: &str, h: &str, s: &str, b: &[u8], now: i64| {
            Forwarded::verify(&secret, m, p, h, s, b, now)
        };
        assert_eq!(
            ok(
                "POST",
                "/alerts/gate-1-00001/ack",
                &header,
                &sig,
                body,
                1_000_000
            ),
            Ok(f.clone())
        );
        // Another alert, another method, another body, later, another secret.
        assert_eq!(
            ok(
                "POST",
                "/alerts/gate-1-00002/ack",
                &header,
                &sig,
                body,
                1_000_000
            ),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            ok(
                "GET",
                "/alerts/gate-1-00001/ack",
                &header,
                &sig,
                body,
                1_000_000
            ),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            ok(
                "POST",
                "/alerts/gate-1-00001/ack",
                &header,
                &sig,
                b"csrf=c&note=x",
                1_000_000
            ),
            Err(Refusal::BadBody)
        );
        assert_eq!(
            ok(
                "POST",
                "/alerts/gate-1-00001/ack",
                &header,
                &sig,
                body,
                1_070_000
            ),
            Err(Refusal::Expired)
        );
        let other = Secret::from_bytes(b"another compound's secret, 32 bytes+");
        assert_eq!(
            Forwarded::verify(
                &other,
                "POST",
                "/alerts/gate-1-00001/ack",
                &header,
                &sig,
                body,
                1_000_000
            ),
            Err(Refusal::BadSignature)
        );
        // A user changed in the header breaks the signature too.
        let mut admin = f.clone();
        admin.role = "admin".into();
        let (forged, _) = admin.sign(&other, "POST", "/alerts/gate-1-00001/ack");
        assert_eq!(
            ok(
                "POST",
                "/alerts/gate-1-00001/ack",
                &forged,
                &sig,
                body,
                1_000_000
            ),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn a_short_or_missing_secret_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("compound.secret");
        std::fs::write(&path, "short\n").unwrap();
        let e = Secret::read(&path).unwrap_err().to_string();
        assert!(e.contains("compound.secret") && e.contains("32"), "{e}");
        let e = Secret::read(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("secret_file") && e.contains("nope"), "{e}");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        assert!(Secret::read(&path).is_ok());
    }
}
