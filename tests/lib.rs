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
