//! Shared fixtures for the workspace's cross-crate tests.

use redcap_core::{ApiUrl, Token};

/// A fixed, fake project token (never a real one).
pub const FAKE_TOKEN: &str = "0123456789ABCDEF0123456789ABCDEF";

/// A fixed, fake super token.
pub const FAKE_SUPER_TOKEN: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";

/// The multipart boundary used in snapshots.
pub const BOUNDARY: &str = "BOUNDARY";

/// The URL used in snapshots.
pub fn url() -> ApiUrl {
    ApiUrl::parse("https://redcap.example.edu/api/").expect("valid URL")
}

/// The fake project token.
pub fn token() -> Token {
    Token::new(FAKE_TOKEN).expect("valid token")
}

/// The fake super token.
pub fn super_token() -> Token {
    Token::new(FAKE_SUPER_TOKEN).expect("valid token")
}

/// The workspace root.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_owned()
}

/// Reads one HTTP request head from `reader`, its lines up to the blank one (`None` if the
/// connection ends first): what the tests' raw-TCP stand-in servers need of a request.
pub fn read_head(reader: &mut impl std::io::BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some(head);
        }
        head.push_str(&line);
    }
}

/// Reads one HTTP request (head, then as many body bytes as its `Content-Length` says);
/// `None` if the connection ends first.
pub fn read_request(reader: &mut impl std::io::BufRead) -> Option<(String, Vec<u8>)> {
    let head = read_head(reader)?;
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}
