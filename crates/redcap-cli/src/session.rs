//! Which server and token a command uses, and the client built from them.
//!
//! Order: `--url`/`--token`; then `--profile NAME`; then `REDCAP_API_URL`/`REDCAP_API_TOKEN`;
//! then the profile named by `REDCAP_PROFILE`, else the config's default profile. Each of URL
//! and token is taken from the first place that has it.

use std::time::Duration;

use redcap::blocking::Client;
use redcap::{MethodInfo, Token};

use crate::config::{self, Config};
use crate::error::{CallContext, CliError, ExitKind};
use crate::secret::Secret;

/// Environment variable for the API URL.
pub const URL_ENV: &str = "REDCAP_API_URL";
/// Environment variable for the API token.
pub const TOKEN_ENV: &str = "REDCAP_API_TOKEN";
/// Environment variable naming a PEM file of extra trusted CA certificates (as OpenSSL and
/// many tools read it).
pub const CA_ENV: &str = "SSL_CERT_FILE";
/// Environment variable naming the profile to use.
pub const PROFILE_ENV: &str = "REDCAP_PROFILE";

/// The connection options every command takes.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// `--url`.
    pub url: Option<String>,
    /// `--token`.
    pub token: Option<Secret>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--allow-http`.
    pub allow_http: bool,
    /// `--timeout` and `--connect-timeout`.
    pub timeouts: Timeouts,
    /// `--ca-cert`.
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Timeouts from the command line (unset: the defaults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// `--timeout`: the longest a call may take, retries included.
    pub overall: Option<Duration>,
    /// `--connect-timeout`.
    pub connect: Option<Duration>,
}

/// Where the URL and token were found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The API URL as given.
    pub url: String,
    /// The token as given.
    pub token: Secret,
    /// Plain http accepted (flag or profile).
    pub allow_http: bool,
    /// Where the URL came from, for messages.
    pub url_source: String,
    /// Where the token came from, for messages (never the token itself).
    pub token_source: String,
    /// Extra trusted CA certificates (PEM): `--ca-cert`, else `SSL_CERT_FILE`.
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Finds URL and token per the module's order. `env` reads environment variables.
pub fn resolve(opts: &ConnectOptions, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, CliError> {
    let env_nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let mut url = opts.url.clone().map(|u| (u, "--url".to_owned()));
    let mut token = opts.token.clone().filter(|t| !t.is_blank()).map(|t| (t, "--token".to_owned()));
    let mut allow_http = opts.allow_http;

    let explicit_profile = opts.profile.is_some();
    let mut use_profile = |config: &Config,
                           name: Option<&str>,
                           url: &mut Option<(String, String)>,
                           token: &mut Option<(Secret, String)>|
     -> Result<(), CliError> {
        match config.profile(name) {
            Some((name, p)) => {
                if url.is_none() {
                    *url = Some((p.url.clone(), format!("profile `{name}`")));
                }
                if token.is_none() {
                    *token = Some((p.token.clone(), format!("profile `{name}`")));
                }
                allow_http |= p.allow_http;
                Ok(())
            }
            None => match name {
                Some(name) => Err(CliError::usage(format!("there is no profile named `{name}`"))
                    .hint("list them with `redcap profile list`; add one with `redcap profile add NAME --url URL`")),
                None => Ok(()),
            },
        }
    };

    let needs_more =
        |url: &Option<(String, String)>, token: &Option<(Secret, String)>| url.is_none() || token.is_none();
    if explicit_profile && needs_more(&url, &token) {
        let config = Config::load(&config::config_dir(env)?)?;
        use_profile(&config, opts.profile.as_deref(), &mut url, &mut token)?;
    }
    if !explicit_profile {
        if url.is_none() {
            url = env_nonempty(URL_ENV).map(|u| (u, URL_ENV.to_owned()));
        }
        if token.is_none() {
            token = env_nonempty(TOKEN_ENV).map(|t| (Secret::new(t), TOKEN_ENV.to_owned()));
        }
        if needs_more(&url, &token) {
            let named = env_nonempty(PROFILE_ENV);
            let config = Config::load(&config::config_dir(env)?)?;
            use_profile(&config, named.as_deref(), &mut url, &mut token)?;
        }
    }

    let Some((url, url_source)) = url else {
        return Err(CliError::usage("no REDCap API URL was given").hint(format!(
            "pass --url https://redcap.example.edu/api/, set {URL_ENV}, or save a profile with `redcap profile add`"
        )));
    };
    let Some((token, token_source)) = token else {
        return Err(CliError::usage("no API token was given").hint(format!(
            "set {TOKEN_ENV}, or save a profile with `redcap profile add` (a --token flag works too, \
             but other users can see it in `ps`)"
        )));
    };
    let ca_cert = opts.ca_cert.clone().or_else(|| env_nonempty(CA_ENV).map(std::path::PathBuf::from));
    Ok(Resolved { url, token, allow_http, url_source, token_source, ca_cert })
}

/// Whether `url` is plain http to this machine (an emulator), where the token never leaves it.
/// Judged on the host alone, so a loopback URL with a wrong path gets the path's message, not
/// the plain-http one.
pub fn is_loopback_http(url: &str) -> bool {
    let url = url.trim();
    let Some(rest) = url.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")).map(|_| &url[7..]) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A connected client and what error messages need to know.
#[derive(Debug)]
pub struct Session {
    /// The client.
    pub client: Client,
    /// The normalised API URL.
    pub url: String,
    /// Where the token came from.
    pub token_source: String,
}

impl Session {
    /// Validates token and URL (no request is made) and builds the client.
    pub fn open(r: &Resolved) -> Result<Session, CliError> {
        Session::open_with(r, &Timeouts::default())
    }

    /// [`Session::open`] with the command line's timeouts.
    pub fn open_with(r: &Resolved, timeouts: &Timeouts) -> Result<Session, CliError> {
        // The token first: a malformed one is an authentication error, whatever the URL.
        crate::error::remember_secret(r.token.expose());
        let token = Token::new(r.token.expose()).map_err(|e| {
            CliError::new(ExitKind::Auth, e.to_string())
                .hint(format!("check the token ({}); nothing was sent", r.token_source))
        })?;
        let allow_http = r.allow_http || is_loopback_http(&r.url);
        let url = if allow_http { redcap::ApiUrl::parse_allow_http(&r.url) } else { redcap::ApiUrl::parse(&r.url) }
            .map_err(|e| {
                let hint = if matches!(e, redcap::UrlError::InsecureHttp) {
                    "use https, or pass --allow-http if you accept sending the token unencrypted".to_owned()
                } else {
                    format!(
                        "the API URL (from {}) is your REDCap address followed by /api/, e.g. https://redcap.example.edu/api/",
                        r.url_source
                    )
                };
                CliError::usage(e.to_string()).hint(hint)
            })?;
        let mut builder = Client::builder(url.as_str(), token.expose_secret())
            .allow_http(allow_http)
            .connect_timeout(timeouts.connect.unwrap_or(Duration::from_secs(15)))
            .overall_timeout(timeouts.overall);
        if let Some(pem) = &r.ca_cert {
            if !pem.is_file() {
                return Err(CliError::new(
                    ExitKind::Local,
                    format!("the CA certificate file {} does not exist", pem.display()),
                )
                .hint("pass a PEM file with --ca-cert PATH (or SSL_CERT_FILE)"));
            }
            builder = builder.extra_roots_pem(pem);
        }
        let client = builder.build().map_err(|e| {
            let ctx = CallContext {
                url: url.as_str(),
                token_source: &r.token_source,
                methods: &[],
                output: None,
                raw_call: false,
            };
            crate::error::from_call(&e, &ctx)
        })?;
        Ok(Session { client, url: url.as_str().to_owned(), token_source: r.token_source.clone() })
    }

    /// The context for error messages of a command calling `methods`.
    pub fn ctx<'a>(&'a self, methods: &'a [&'static MethodInfo]) -> CallContext<'a> {
        CallContext { url: &self.url, token_source: &self.token_source, methods, output: None, raw_call: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const T1: &str = "0123456789ABCDEF0123456789ABCDEF";
    const T2: &str = "FEDCBA9876543210FEDCBA9876543210";

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |k| map.get(k).cloned()
    }

    fn with_profile(dir: &std::path::Path) {
        let mut c = Config::default();
        c.profiles.insert(
            "lab".into(),
            config::Profile { url: "https://lab.example.edu/api/".into(), token: Secret::new(T2), allow_http: false },
        );
        c.default = Some("lab".into());
        c.save(dir).unwrap();
    }

    #[test]
    fn flags_beat_env_beat_default_profile() {
        let dir = tempfile::tempdir().unwrap();
        with_profile(dir.path());
        let d = dir.path().to_str().unwrap();
        let env = env_of(&[(URL_ENV, "https://env.example.edu/api/"), (TOKEN_ENV, T1), ("REDCAP_CONFIG_DIR", d)]);
        let r = resolve(&ConnectOptions::default(), &env).unwrap();
        assert_eq!(
            (r.url.as_str(), r.token.expose(), r.token_source.as_str()),
            ("https://env.example.edu/api/", T1, TOKEN_ENV)
        );

        let opts = ConnectOptions { url: Some("https://flag.example.edu/api/".into()), ..Default::default() };
        let r = resolve(&opts, &env).unwrap();
        assert_eq!(r.url, "https://flag.example.edu/api/");
        assert_eq!(r.token_source, TOKEN_ENV);

        let env = env_of(&[("REDCAP_CONFIG_DIR", d)]);
        let r = resolve(&ConnectOptions::default(), &env).unwrap();
        assert_eq!((r.url.as_str(), r.token.expose()), ("https://lab.example.edu/api/", T2));
        assert_eq!(r.token_source, "profile `lab`");
    }

    #[test]
    fn an_explicit_profile_beats_env() {
        let dir = tempfile::tempdir().unwrap();
        with_profile(dir.path());
        let d = dir.path().to_str().unwrap();
        let env = env_of(&[(URL_ENV, "https://env.example.edu/api/"), (TOKEN_ENV, T1), ("REDCAP_CONFIG_DIR", d)]);
        let opts = ConnectOptions { profile: Some("lab".into()), ..Default::default() };
        let r = resolve(&opts, &env).unwrap();
        assert_eq!(r.token.expose(), T2);
        let opts = ConnectOptions { profile: Some("nope".into()), ..Default::default() };
        assert_eq!(resolve(&opts, &env).unwrap_err().kind, ExitKind::Usage);
    }

    #[test]
    fn missing_pieces_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let e = resolve(&ConnectOptions::default(), &env_of(&[("REDCAP_CONFIG_DIR", d)])).unwrap_err();
        assert_eq!(e.kind, ExitKind::Usage);
        assert!(e.hint.unwrap().contains(URL_ENV));
        let e = resolve(&ConnectOptions::default(), &env_of(&[("REDCAP_CONFIG_DIR", d), (URL_ENV, "https://x/api/")]))
            .unwrap_err();
        assert!(e.message.contains("token"));
    }

    #[test]
    fn bad_token_is_auth_and_secret_free() {
        let r = Resolved {
            url: "https://redcap.example.edu/api/".into(),
            token: Secret::new("0123456789abcdef-not-a-token"),
            allow_http: false,
            url_source: "--url".into(),
            token_source: TOKEN_ENV.into(),
            ca_cert: None,
        };
        let e = Session::open(&r).unwrap_err();
        assert_eq!(e.kind, ExitKind::Auth);
        assert!(!e.render().contains("0123456789abcdef"));
    }

    #[test]
    fn loopback_http_is_accepted_other_http_is_not() {
        assert!(is_loopback_http("http://127.0.0.1:8080/api/"));
        assert!(is_loopback_http("http://localhost/api/"));
        assert!(is_loopback_http("http://[::1]:9/api/"));
        assert!(!is_loopback_http("http://redcap.example.edu/api/"));
        assert!(!is_loopback_http("https://127.0.0.1/api/"));
        let r = Resolved {
            url: "http://redcap.example.edu/api/".into(),
            token: Secret::new(T1),
            allow_http: false,
            url_source: "--url".into(),
            token_source: "--token".into(),
            ca_cert: None,
        };
        let e = Session::open(&r).unwrap_err();
        assert_eq!(e.kind, ExitKind::Usage);
        assert!(e.hint.unwrap().contains("--allow-http"));
        assert!(Session::open(&Resolved { url: "http://127.0.0.1:1/api/".into(), ..r.clone() }).is_ok());
        // A loopback URL with a wrong path: the path is what is wrong, not plain http.
        assert!(is_loopback_http("http://127.0.0.1:8080/redcap/"));
        assert!(is_loopback_http("HTTP://localhost"));
        assert!(!is_loopback_http("http://127.0.0.1.example.com/api/"));
        for wrong in ["http://127.0.0.1:8080/", "http://localhost:8080/redcap/index.php"] {
            // Accepted as is, or refused for its path: never for plain http.
            if let Err(e) = Session::open(&Resolved { url: wrong.into(), ..r.clone() }) {
                let hint = e.hint.unwrap_or_default();
                assert!(!hint.contains("--allow-http"), "{wrong}: {hint}");
            }
        }
    }
}
