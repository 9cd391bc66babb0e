//! `redcap profile`: named connections in the config file.

use std::io::{IsTerminal, Read};

use redcap::{MethodInfo, version};

use crate::cli::ProfileCmd;
use crate::config::{self, Config, Profile};
use crate::error::{CliError, from_call};
use crate::output;
use crate::progress::Ui;
use crate::secret::Secret;
use crate::session::{ConnectOptions, Resolved, Session, TOKEN_ENV, URL_ENV};

const VERSION: &[&MethodInfo] = &[&version::export::INFO];

/// Runs a `profile` subcommand. `opts` are the global connection options (`--url`, `--token`,
/// `--allow-http`), which `profile add` saves.
pub fn run(
    cmd: &ProfileCmd,
    opts: &ConnectOptions,
    env: &dyn Fn(&str) -> Option<String>,
    ui: &Ui,
) -> Result<(), CliError> {
    let dir = config::config_dir(env)?;
    match cmd {
        ProfileCmd::Add { name, token_stdin, default } => {
            config::check_name(name)?;
            let (url, url_source) =
                match opts.url.clone().map(|u| (u, "--url")).or_else(|| env(URL_ENV).map(|u| (u, URL_ENV))) {
                    Some(u) => u,
                    None => {
                        return Err(CliError::usage("`profile add` needs the API URL")
                            .hint(format!("pass --url https://redcap.example.edu/api/ (or set {URL_ENV})")));
                    }
                };
            let (token, token_source) = read_token(name, *token_stdin, opts, env)?;
            let ca_cert = opts
                .ca_cert
                .clone()
                .or_else(|| env(crate::session::CA_ENV).filter(|v| !v.trim().is_empty()).map(std::path::PathBuf::from));
            let resolved = Resolved {
                url,
                token,
                allow_http: opts.allow_http,
                url_source: url_source.to_owned(),
                token_source,
                ca_cert,
            };
            // Check against the server before saving anything.
            let session = Session::open(&resolved)?;
            let v = session
                .client
                .call(&version::export::Request::new())
                .map_err(|e| from_call(&e, &session.ctx(VERSION)))?;
            let title = crate::commands::info::fetch(&session)
                .ok()
                .and_then(|(_, p)| p)
                .and_then(|p| p.get("project_title").map(output::cell_text));

            let mut config = Config::load(&dir)?;
            let replaced = config
                .profiles
                .insert(
                    name.clone(),
                    Profile { url: session.url.clone(), token: resolved.token.clone(), allow_http: opts.allow_http },
                )
                .is_some();
            let is_default = *default || config.default.is_none() || config.profile(None).is_none();
            if is_default {
                config.default = Some(name.clone());
            }
            let path = config.save(&dir)?;
            let project = title.map(|t| format!(", project \"{t}\"")).unwrap_or_default();
            output::line(format!(
                "{} profile `{name}`: REDCap {v} at {}{project}.{}",
                if replaced { "Replaced" } else { "Saved" },
                session.url,
                if is_default { " It is the default profile." } else { "" }
            ))?;
            ui.status(format!("(stored in {})", path.display()));
            Ok(())
        }
        ProfileCmd::List => {
            let config = Config::load(&dir)?;
            if config.profiles.is_empty() {
                output::line("No profiles yet. Add one with `redcap profile add NAME --url URL --token-stdin`.")?;
                return Ok(());
            }
            let rows: Vec<Vec<String>> = config
                .profiles
                .iter()
                .map(|(n, p)| {
                    let default = if config.default.as_deref() == Some(n.as_str()) { "*" } else { "" };
                    vec![default.to_owned(), n.clone(), p.url.clone()]
                })
                .collect();
            output::text(output::table(&["DEFAULT", "NAME", "URL"], &rows))?;
            Ok(())
        }
        ProfileCmd::Remove { name } => {
            let mut config = Config::load(&dir)?;
            if config.profiles.remove(name).is_none() {
                return Err(no_such(name));
            }
            if config.default.as_deref() == Some(name.as_str()) {
                config.default = None;
            }
            config.save(&dir)?;
            output::line(format!("Removed profile `{name}`."))?;
            Ok(())
        }
        ProfileCmd::Default { name } => {
            let mut config = Config::load(&dir)?;
            if !config.profiles.contains_key(name) {
                return Err(no_such(name));
            }
            config.default = Some(name.clone());
            config.save(&dir)?;
            output::line(format!("`{name}` is now the default profile."))?;
            Ok(())
        }
    }
}

fn no_such(name: &str) -> CliError {
    CliError::usage(format!("there is no profile named `{name}`")).hint("`redcap profile list` lists them")
}

/// The token for `profile add`: stdin, else `--token`/`REDCAP_API_TOKEN`, else a hidden prompt.
fn read_token(
    name: &str,
    from_stdin: bool,
    opts: &ConnectOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Secret, String), CliError> {
    if from_stdin {
        if std::io::stdin().is_terminal() {
            // Nothing was piped in: reading to the end of input would wait, showing the pasted
            // token on the screen, until Ctrl-D.
            return Err(CliError::usage("--token-stdin reads the token from standard input, which is a terminal")
                .hint(format!(
                    "pipe it in (`redcap profile add {name} --url URL --token-stdin < token.txt`), or run the same \
                     command without --token-stdin to be asked for it (the input is hidden)"
                )));
        }
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::local(std::path::Path::new("<stdin>"), "read", &e))?;
        let token = s.lines().next().unwrap_or("").trim().to_owned();
        if token.is_empty() {
            return Err(CliError::usage("standard input held no token"));
        }
        return Ok((Secret::new(token), "standard input".into()));
    }
    if let Some(t) = opts.token.clone().filter(|t| !t.is_blank()) {
        return Ok((t, "--token".into()));
    }
    if let Some(t) = env(TOKEN_ENV).filter(|t| !t.trim().is_empty()) {
        return Ok((Secret::new(t), TOKEN_ENV.into()));
    }
    if std::io::stdin().is_terminal() {
        let typed = rpassword::prompt_password(format!("API token for `{name}` (input hidden): "))
            .map_err(|e| CliError::local(std::path::Path::new("the terminal"), "read", &e))?;
        return Ok((Secret::new(typed.trim()), "the prompt".into()));
    }
    Err(CliError::usage("no API token was given").hint("pipe it in with --token-stdin, or set REDCAP_API_TOKEN"))
}
