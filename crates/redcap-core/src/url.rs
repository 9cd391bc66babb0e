//! The API endpoint URL.

use std::fmt;

/// Why a URL cannot be used as a REDCap API endpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not a URL at all.
    #[error("`{url}` is not a valid URL: {reason}")]
    Parse {
        /// What was given.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// Neither http nor https.
    #[error("the API URL must use https, not `{0}:`")]
    Scheme(String),
    /// Plain http without an explicit opt-in.
    #[error(
        "the API URL uses plain http, which would send the token unencrypted; use https, or allow http explicitly (e.g. for a local emulator)"
    )]
    InsecureHttp,
    /// User name or password in the URL.
    #[error("the API URL must not contain a user name or password")]
    Credentials,
    /// A query string or fragment: REDCap takes everything in the POST body.
    #[error("the API URL must not have a query string or fragment; REDCap's endpoint is `<base>/api/`")]
    QueryOrFragment,
    /// The address of one of REDCap's web pages, as copied from a browser: a path in a
    /// `redcap_vX.Y.Z` folder (the project's pages, the API token page) or the API's help page.
    /// No base URL can be told from it with certainty, so it is refused with the likely one.
    #[error("the API URL path `{path}` is a REDCap web page, not its API endpoint; the API URL is likely {suggestion}")]
    Page {
        /// The path given.
        path: String,
        /// The endpoint it most likely meant: the page's base followed by `/api/`.
        suggestion: String,
    },
    /// A path that does not point at the API endpoint.
    #[error(
        "the API URL path `{0}` is not REDCap's API endpoint; it should end with `/api/` (e.g. https://redcap.example.edu/api/)"
    )]
    Path(String),
}

/// A REDCap API endpoint such as `https://redcap.example.edu/api/`.
///
/// Normalised to end in `/api/`: `…/api` gains its slash (a final `API` in any case becomes
/// `api`) and a base URL ending in `/` gains `api/`. A web page's address (see
/// [`UrlError::Page`]) is refused, since `api/` after it would name no endpoint. Plain `http` is
/// refused unless [`ApiUrl::parse_allow_http`] is used.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiUrl {
    url: url::Url,
}

impl ApiUrl {
    /// Parses an https URL.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        Self::parse_inner(input, false)
    }

    /// Parses an https or http URL (http: for a local emulator or a test server).
    pub fn parse_allow_http(input: &str) -> Result<Self, UrlError> {
        Self::parse_inner(input, true)
    }

    fn parse_inner(input: &str, allow_http: bool) -> Result<Self, UrlError> {
        let mut url = url::Url::parse(input.trim()).map_err(|e| {
            let reason = match e {
                // `redcap.example.edu/api/`, `https//redcap…`: the parser's "relative URL without
                // a base" names nothing the user wrote.
                url::ParseError::RelativeUrlWithoutBase => "it does not start with `https://`".to_owned(),
                e => e.to_string(),
            };
            UrlError::Parse { url: input.to_owned(), reason }
        })?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => return Err(UrlError::InsecureHttp),
            other => return Err(UrlError::Scheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        // Before the query check: a page copied from the browser has `?pid=…`, and what to
        // use instead is the more useful message.
        if let Some(base) = page_base(url.path()) {
            let mut suggestion = url.clone();
            suggestion.set_query(None);
            suggestion.set_fragment(None);
            suggestion.set_path(&format!("{base}api/"));
            return Err(UrlError::Page { path: url.path().to_owned(), suggestion: suggestion.to_string() });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(UrlError::QueryOrFragment);
        }
        let mut path = url.path().to_owned();
        // `/API/` typed for `/api/`: the endpoint's name is lower-case.
        let stem = path.trim_end_matches('/');
        if let Some(base) = stem.len().checked_sub(4).and_then(|at| stem.get(..at)) {
            if stem[base.len()..].eq_ignore_ascii_case("/api") {
                path = format!("{base}/api{}", if path.ends_with('/') { "/" } else { "" });
            }
        }
        let normalised = if path.ends_with("/api/") {
            path
        } else if path.ends_with("/api") {
            format!("{path}/")
        } else if path.ends_with('/') {
            format!("{path}api/")
        } else {
            return Err(UrlError::Path(path));
        };
        url.set_path(&normalised);
        Ok(ApiUrl { url })
    }

    /// The URL as a string, always ending in `/api/`.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The parsed URL.
    pub fn as_url(&self) -> &url::Url {
        &self.url
    }

    /// Whether the URL uses plain http.
    pub fn is_http(&self) -> bool {
        self.url.scheme() == "http"
    }

    /// Host and port, to decide whether a redirect stays on the same server.
    pub fn origin(&self) -> url::Origin {
        self.url.origin()
    }
}

/// The base path (ending in `/`) of a REDCap web page's path, if `path` is one: everything
/// before a `redcap_v<digit>…` folder, or before `api/help`.
fn page_base(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let versioned = seg.len() > 8
            && seg[..8].eq_ignore_ascii_case("redcap_v")
            && seg[8..].starts_with(|c: char| c.is_ascii_digit());
        let help =
            seg.eq_ignore_ascii_case("api") && segments.get(i + 1).is_some_and(|n| n.eq_ignore_ascii_case("help"));
        if versioned || help {
            return Some(format!("{}/", segments[..i].join("/")));
        }
    }
    None
}

impl fmt::Debug for ApiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiUrl({})", self.url)
    }
}

impl fmt::Display for ApiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl std::str::FromStr for ApiUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApiUrl::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_api_slash() {
        for (input, want) in [
            ("https://r.example.edu/api/", "https://r.example.edu/api/"),
            ("https://r.example.edu/redcap/api", "https://r.example.edu/redcap/api/"),
            ("https://r.example.edu/redcap/", "https://r.example.edu/redcap/api/"),
            ("https://r.example.edu", "https://r.example.edu/api/"),
            (" https://R.Example.edu:8443/api/ ", "https://r.example.edu:8443/api/"),
            ("https://r.example.edu/API/", "https://r.example.edu/api/"),
            ("https://r.example.edu/redcap/Api", "https://r.example.edu/redcap/api/"),
        ] {
            assert_eq!(ApiUrl::parse(input).unwrap().as_str(), want, "{input}");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(ApiUrl::parse("http://r.example.edu/api/"), Err(UrlError::InsecureHttp));
        assert!(ApiUrl::parse_allow_http("http://127.0.0.1:8080/api/").is_ok());
        assert_eq!(ApiUrl::parse("ftp://r/api/"), Err(UrlError::Scheme("ftp".into())));
        assert_eq!(ApiUrl::parse("https://u:p@r/api/"), Err(UrlError::Credentials));
        assert_eq!(ApiUrl::parse("https://r/api/?x=1"), Err(UrlError::QueryOrFragment));
        assert_eq!(ApiUrl::parse("https://r/redcap/index.php"), Err(UrlError::Path("/redcap/index.php".into())));
        assert!(matches!(ApiUrl::parse("not a url"), Err(UrlError::Parse { .. })));
        for typo in ["https//r.example.edu/api/", "r.example.edu/api/"] {
            let e = ApiUrl::parse(typo).unwrap_err();
            assert!(e.to_string().contains("does not start with `https://`"), "{typo}: {e}");
        }
    }

    #[test]
    fn a_web_page_is_refused_with_the_api_url_it_likely_meant() {
        for (page, want) in [
            ("https://r.example.edu/redcap_v14.5.2/index.php?pid=12", "https://r.example.edu/api/"),
            (
                "https://r.example.edu/redcap/redcap_v14.5.2/API/project_api.php?pid=12",
                "https://r.example.edu/redcap/api/",
            ),
            ("https://r.example.edu/redcap_v14.5.2/", "https://r.example.edu/api/"),
            ("https://r.example.edu:8443/api/help/", "https://r.example.edu:8443/api/"),
            (
                "https://r.example.edu/redcap/api/help/index.php?content=exp_records",
                "https://r.example.edu/redcap/api/",
            ),
        ] {
            match ApiUrl::parse(page) {
                Err(UrlError::Page { suggestion, .. }) => assert_eq!(suggestion, want, "{page}"),
                other => panic!("{page}: {other:?}"),
            }
        }
        // A base folder that merely starts like one is a base.
        assert!(ApiUrl::parse("https://r.example.edu/redcap_vault/").is_ok());
    }
}
