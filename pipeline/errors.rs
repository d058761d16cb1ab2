//! Error reports for people: a typed error keeps its cause as `#[source]`, and
//! this is where the causes are spelled out in one line for a log or a message.
//! It sits on the ground floor so every stage can use it without importing
//! another stage.

/// The causes of an error, joined: what `{e}` alone would hide.
pub fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}

/// The error and its causes in one line.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    match source_chain(e) {
        c if c.is_empty() => e.to_string(),
        c => format!("{e}: {c}"),
    }
}
