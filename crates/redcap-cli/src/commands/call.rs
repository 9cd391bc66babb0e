//! `redcap call <method> --param k=v …`: any method, driven by the spec.

use std::io::Write;
use std::path::Path;

use redcap::MethodInfo;
use redcap::core::{DynamicCall, ParamInfo, ResponseKind, ValueType};

use crate::cli::MethodCall;
use crate::error::{CallContext, CliError, from_call};
use crate::methods::defaults_to_json;
use crate::output::{self, human_bytes};
use crate::progress::Ui;
use crate::session::Session;

/// Turns `NAME=VALUE` strings into pairs: `NAME` alone is `NAME=` (a flag's "true"), a value
/// `@FILE` is read from FILE (`@@…` is a literal `@…`), and `format`/`returnFormat` default to
/// json. File parameters must name a readable file.
pub fn pairs(info: &'static MethodInfo, raw: &[String]) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    for item in raw {
        let (name, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
        let name = name.trim();
        let Some(param) = info.param(name) else {
            let known: Vec<&str> = info.params.iter().map(|p| p.name).collect();
            return Err(CliError::usage(format!("method `{}` has no parameter `{name}`", info.id)).hint(
                if known.is_empty() {
                    "it takes no parameters".to_owned()
                } else {
                    format!("its parameters are {} (see `redcap methods show {}`)", known.join(", "), info.id)
                },
            ));
        };
        let value = if param.ty == ValueType::File {
            let path = value.strip_prefix('@').unwrap_or(value);
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => path.to_owned(),
                Ok(_) => return Err(CliError::new(crate::error::ExitKind::Local, format!("{path} is not a file"))),
                Err(e) => return Err(CliError::local(Path::new(path), "read", &e)),
            }
        } else if let Some(rest) = value.strip_prefix("@@") {
            format!("@{rest}")
        } else if let Some(path) = value.strip_prefix('@') {
            std::fs::read_to_string(path).map_err(|e| CliError::local(Path::new(path), "read", &e))?
        } else {
            value.to_owned()
        };
        out.push((name.to_owned(), value));
    }
    for p in info.params {
        if defaults_to_json(p) && !out.iter().any(|(n, _)| n == p.name) {
            out.push((p.name.to_owned(), "json".to_owned()));
        }
    }
    Ok(out)
}

/// Runs the call and writes REDCap's answer to stdout or `-o FILE`.
pub fn run(call: &MethodCall, session: &Session, ui: &Ui) -> Result<(), CliError> {
    let info = call.info;
    let methods = [info];
    let ctx = CallContext { output: call.output.as_deref(), raw_call: true, ..session.ctx(&methods) };
    let pairs = pairs(info, &call.params)?;
    let dynamic = DynamicCall::new(info, &pairs).map_err(|e| from_call(&redcap::Error::Encode(e), &ctx))?;
    let to_stdout = call.output.as_deref().is_none_or(|p| p.as_os_str() == "-");
    let streamed = output::to_destination(call.output.as_deref(), |w| {
        let mut tracked = LastByte { inner: w, last: None };
        let streamed = session.client.stream_dynamic(&dynamic, &mut tracked).map_err(|e| from_call(&e, &ctx))?;
        // A short text answer (a version, a count, a link) ends its line on a terminal or in a
        // pipe; files and bytes are written exactly as sent.
        if to_stdout && info.response != ResponseKind::Bytes && tracked.last.is_some_and(|b| b != b'\n') {
            tracked.inner.write_all(b"\n").map_err(|e| CliError::stdout(&e))?;
        }
        Ok(streamed)
    })?;
    if let Some(path) = call.output.as_deref().filter(|p| p.as_os_str() != "-") {
        ui.status(format!("Wrote {} to {}.", human_bytes(streamed.bytes), path.display()));
    } else if streamed.bytes == 0 {
        ui.status(format!("{}: done (REDCap's answer is empty).", info.id));
    }
    Ok(())
}

/// An External Module action as a method known only at run time: `content=externalModule`,
/// the module's `prefix` and `action`, and a free-text parameter per name given. Never retried.
pub fn external_module(em: &crate::cli::EmArgs) -> Result<MethodCall, CliError> {
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid(&em.prefix) || !valid(&em.action) {
        return Err(CliError::usage(format!("`{} {}` is not a module prefix and action", em.prefix, em.action))
            .hint("use letters, digits, `_`, `-` and `.`, e.g. `redcap em custom_log_entry log`"));
    }
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mut params: Vec<ParamInfo> = Vec::new();
    for pair in &em.params {
        let name = pair.split_once('=').map_or(pair.as_str(), |(n, _)| n).trim();
        if name.is_empty() || matches!(name, "token" | "content" | "action" | "prefix") {
            // Only the name: the value may be the token itself (`-p token=…`).
            return Err(CliError::usage(format!("`{name}` cannot be a module parameter"))
                .hint("give NAME=VALUE; token, content, action and prefix are sent by redcap"));
        }
        if !params.iter().any(|p| p.name == name) {
            params.push(ParamInfo::new(leak(name.to_owned()), ValueType::String));
        }
    }
    // One process makes one such call: leaking its few facts gives them the static lifetime
    // the spec's methods have.
    let prefix = leak(em.prefix.clone());
    let fixed: &'static [(&'static str, &'static str)] = Box::leak(Box::new([("prefix", prefix)]));
    let info: &'static MethodInfo = Box::leak(Box::new(
        MethodInfo::new(
            leak(format!("{}.{}", em.prefix, em.action)),
            "externalModule",
            Some(leak(em.action.clone())),
            ResponseKind::Text,
            false,
        )
        .summary("An External Module's API action")
        .fixed(fixed)
        .params(Box::leak(params.into_boxed_slice())),
    ));
    Ok(MethodCall { info, params: em.params.clone(), output: em.output.clone() })
}

/// A writer that remembers the last byte written.
struct LastByte<'a> {
    inner: &'a mut dyn Write,
    last: Option<u8>,
}

impl Write for LastByte<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if n > 0 {
            self.last = Some(buf[n - 1]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitKind;

    fn p(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let m = redcap::method("record.export").unwrap();
        let got = pairs(m, &p(&["format=csv", "exportSurveyFields", "fields=a,b"])).unwrap();
        assert!(got.contains(&("format".into(), "csv".into())));
        assert!(got.contains(&("exportSurveyFields".into(), String::new())));
        assert!(got.contains(&("returnFormat".into(), "json".into())), "{got:?}");
        assert!(!got.iter().any(|(n, v)| n == "format" && v == "json"));
        assert!(DynamicCall::new(m, &got).is_ok());
    }

    #[test]
    fn values_from_files_and_literal_at() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("logic.txt");
        std::fs::write(&f, "[age] > 30").unwrap();
        let m = redcap::method("record.export").unwrap();
        let got = pairs(m, &p(&[&format!("filterLogic=@{}", f.display())])).unwrap();
        assert!(got.contains(&("filterLogic".into(), "[age] > 30".into())));
        let got = pairs(m, &p(&["filterLogic=@@x"])).unwrap();
        assert!(got.contains(&("filterLogic".into(), "@x".into())));
        let e = pairs(m, &p(&["filterLogic=@/no/such/file"])).unwrap_err();
        assert_eq!(e.kind, ExitKind::Local);
    }

    #[test]
    fn unknown_params_and_missing_files() {
        let m = redcap::method("record.export").unwrap();
        let e = pairs(m, &p(&["nope=1"])).unwrap_err();
        assert_eq!(e.kind, ExitKind::Usage);
        assert!(e.hint.unwrap().contains("filterLogic"));
        let up = redcap::method("file_repository.import").unwrap();
        assert_eq!(pairs(up, &p(&["file=/no/such/file"])).unwrap_err().kind, ExitKind::Local);
    }
}
