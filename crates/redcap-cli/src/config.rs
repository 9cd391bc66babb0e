//! The config file of named profiles (URL + token), and where to find it.
//!
//! `config.toml` lives in the user's config directory (`REDCAP_CONFIG_DIR` overrides it). It holds
//! tokens, so on Unix the directory is created 0700 and the file 0600 — at creation, by writing a
//! new file with those permissions and renaming it into place, never by narrowing afterwards.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliError, ExitKind};
use crate::secret::Secret;

/// The environment variable that overrides the config directory.
pub const CONFIG_DIR_ENV: &str = "REDCAP_CONFIG_DIR";
/// The config file's name inside the directory.
pub const FILE_NAME: &str = "config.toml";

/// One named connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Profile {
    /// The API URL.
    pub url: String,
    /// The API token.
    pub token: Secret,
    /// Whether a plain-http URL is accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http: bool,
}

/// The config file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    /// The profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The config directory: `REDCAP_CONFIG_DIR`, else the platform's (`~/.config/redcap` on Linux).
pub fn config_dir(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, CliError> {
    if let Some(dir) = env(CONFIG_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "redcap").map(|d| d.config_dir().to_path_buf()).ok_or_else(|| {
        CliError::usage("cannot tell where your config directory is (no home directory)")
            .hint(format!("set {CONFIG_DIR_ENV} to a directory for redcap's config file"))
    })
}

/// Checks a profile name: letters, digits, `-`, `_` and `.`.
pub fn check_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!("`{name}` is not a usable profile name"))
            .hint("use letters, digits, `-`, `_` or `.` (at most 64)"))
    }
}

impl Config {
    /// The file inside `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Reads the config of `dir` (empty if there is none). Warns on stderr when the file is
    /// readable by others.
    pub fn load(dir: &Path) -> Result<Config, CliError> {
        let path = Config::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(CliError::local(&path, "read", &e)),
        };
        warn_if_shared(&path);
        toml::from_str(&text).map_err(|e| {
            // toml's message quotes the offending line, which may be a token: keep only the reason.
            let reason = e.message().to_owned();
            CliError::new(ExitKind::Local, format!("the config file {} is not valid TOML: {reason}", path.display()))
                .hint("fix or remove the file (`redcap profile add` writes a new one)")
        })
    }

    /// Writes the config into `dir` atomically, owner-only from the moment it exists.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, CliError> {
        let path = Config::path(dir);
        create_private_dir(dir).map_err(|e| CliError::local(dir, "create", &e))?;
        let text = toml::to_string_pretty(self)
            .map_err(|e| CliError::new(ExitKind::Other, format!("could not write the config: {e}")))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(".config-").suffix(".toml");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o600));
        }
        let mut tmp = builder.tempfile_in(dir).map_err(|e| CliError::local(dir, "write in", &e))?;
        let header = "# redcap profiles. This file holds API tokens: keep it private (mode 600).\n";
        tmp.write_all(header.as_bytes())
            .and_then(|()| tmp.write_all(text.as_bytes()))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| CliError::local(&path, "write", &e))?;
        tmp.persist(&path).map_err(|e| CliError::local(&path, "write", &e.error))?;
        Ok(path)
    }

    /// The profile to use: `name`, else the default.
    pub fn profile(&self, name: Option<&str>) -> Option<(&str, &Profile)> {
        let name = name.or(self.default.as_deref())?;
        self.profiles.get_key_value(name).map(|(k, v)| (k.as_str(), v))
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0) {
        crate::output::to_stderr(format!(
            "warning: {} holds API tokens but other users can read it; run `chmod 600 {}`\n",
            path.display(),
            path.display()
        ));
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(url: &str) -> Profile {
        Profile { url: url.into(), token: Secret::new("0123456789ABCDEF0123456789ABCDEF"), allow_http: false }
    }

    #[test]
    fn round_trip_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("nested/redcap");
        let mut c = Config::default();
        c.profiles.insert("lab".into(), profile("https://redcap.example.edu/api/"));
        c.default = Some("lab".into());
        let path = c.save(&sub).unwrap();
        assert_eq!(Config::load(&sub).unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(c.profile(None).unwrap().0, "lab");
        assert!(c.profile(Some("other")).is_none());
    }

    #[test]
    fn a_broken_file_does_not_echo_its_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Config::path(dir.path()), "token = 0123456789ABCDEF0123456789ABCDEF x").unwrap();
        let e = Config::load(dir.path()).unwrap_err();
        assert!(!e.render().contains("0123456789ABCDEF"), "{}", e.render());
    }

    #[test]
    fn names() {
        assert!(check_name("lab-2.prod_x").is_ok());
        for bad in ["", "a b", "x/y", "ü"] {
            assert_eq!(check_name(bad).unwrap_err().kind, ExitKind::Usage);
        }
    }

    #[test]
    fn config_dir_override() {
        let env = |k: &str| (k == CONFIG_DIR_ENV).then(|| "/tmp/x".to_owned());
        assert_eq!(config_dir(&env).unwrap(), PathBuf::from("/tmp/x"));
    }
}
