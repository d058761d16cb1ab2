//! Redact: passwords out of every text that may reach a log, an error, an
//! event or a metric label.
//!
//! Camera and broker addresses carry credentials (`rtsp://admin:pw@host/…`), and
//! GStreamer repeats them in its error messages; everything vigil prints about
//! a source or a broker goes through [`redact`] first.

/// `text` with the password of every `scheme://user:password@host` masked.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'' || c == ')')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_in_uris_are_masked_and_the_rest_kept() {
        assert_eq!(
            redact("rtsp://admin:s3cr:et@10.0.0.5:554/live ok"),
            "rtsp://admin:***@10.0.0.5:554/live ok"
        );
        assert_eq!(
            redact("gst: rtspsrc location=rtsp://u:p@h/x ! fakesink; mqtt://user:pw@b:1883"),
            "gst: rtspsrc location=rtsp://u:***@h/x ! fakesink; mqtt://user:***@b:1883"
        );
        assert_eq!(redact("file:///tmp/a.mp4"), "file:///tmp/a.mp4");
        assert_eq!(redact("rtsp://cam@h/x"), "rtsp://cam@h/x");
        assert_eq!(redact("no uri here"), "no uri here");
    }
}
