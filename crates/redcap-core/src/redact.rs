//! Clearing a secret from text a server wrote (an error body, a page title, a `Location`),
//! which errors and logs then carry: its own module, as both the errors and the transport's
//! failures use it.

/// `text` with every occurrence of `secret` replaced by `[redacted]`, or `None` when there is
/// none. ASCII case is ignored: tokens are hexadecimal, and a server may quote them in lower case.
pub(crate) fn redacted(text: &str, secret: &str) -> Option<String> {
    if secret.is_empty() || text.len() < secret.len() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let needle = secret.to_ascii_lowercase();
    let first = lower.find(&needle)?;
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut next = Some(first);
    while let Some(i) = next {
        // ASCII lowering keeps byte offsets, so `i` is a boundary in `text` too.
        out.push_str(&text[at..i]);
        out.push_str("[redacted]");
        at = i + needle.len();
        next = lower[at..].find(&needle).map(|j| at + j);
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// Redacts `secret` in `text` in place.
pub(crate) fn redact_in(text: &mut String, secret: &str) {
    if let Some(r) = redacted(text, secret) {
        *text = r;
    }
}
