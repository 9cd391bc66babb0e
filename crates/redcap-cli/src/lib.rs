//! `redcap`, the command-line tool: configuration, output, error classes and the commands.
//!
//! The binary is a thin `main` over [`run`]; everything here is testable in-process.
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod methods;
pub mod output;
pub mod progress;
pub mod secret;
pub mod session;

use std::ffi::OsString;

use clap::{CommandFactory, Parser};

use crate::cli::{CallArgs, Cli, Command, MethodsArgs, MethodsCmd};
use crate::error::CliError;
use crate::progress::Ui;
use crate::session::{ConnectOptions, Session, Timeouts, resolve};

/// Parses `args`, runs the command, prints any error, and returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // A usage error quotes the arguments it could not place, and a token pasted in the
            // wrong place (`redcap info TOKEN`, `--folder TOKEN`) is one of them.
            if let Some(t) = std::env::var_os(session::TOKEN_ENV) {
                error::remember_secret(&t.to_string_lossy());
            }
            let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
            for (i, arg) in args.iter().enumerate() {
                match arg.strip_prefix("--token=") {
                    Some(t) => error::remember_secret(t),
                    None if arg == "--token" => error::remember_secret(args.get(i + 1).map_or("", String::as_str)),
                    None => {}
                }
            }
            output::to_stderr(error::redact_tokens(&e.render().to_string()));
            return e.exit_code().clamp(0, 255) as u8;
        }
        Err(e) => {
            // Help and version, on stdout (exit 0).
            let _ = e.print();
            return e.exit_code().clamp(0, 255) as u8;
        }
    };
    init_tracing(cli.global.quiet);
    let env = |k: &str| std::env::var(k).ok();
    match dispatch(&cli, &env) {
        Ok(()) => 0,
        Err(e) => {
            if e.kind != error::ExitKind::ClosedOutput {
                output::to_stderr(e.render());
            }
            e.kind.code()
        }
    }
}

/// Shows the library's warnings (retries, a moved API URL) on stderr, with any secret
/// redacted; `--quiet` keeps only errors. Tokens never reach tracing anyway (spans carry the
/// method, attempt, status and bytes only); the redaction guards server text.
fn init_tracing(quiet: bool) {
    let level = if quiet { tracing::Level::ERROR } else { tracing::Level::WARN };
    let _ = tracing_subscriber::fmt()
        .with_writer(|| RedactingStderr)
        .with_max_level(level)
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .compact()
        .try_init();
}

/// Standard error with secrets redacted (tracing writes each event in one call).
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A failure is not reported: tracing would say so with `eprintln!`, which panics when
        // the reader of stderr went away (`redcap … 2>&1 | head -1`).
        output::to_stderr(error::redact(&String::from_utf8_lossy(buf)));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn dispatch(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<(), CliError> {
    let mut ui = Ui::new(cli.global.quiet);
    ui.json = cli.global.json;
    let opts = ConnectOptions {
        url: cli.global.url.clone(),
        token: cli.global.token.clone(),
        profile: cli.global.profile.clone(),
        allow_http: cli.global.allow_http,
        timeouts: Timeouts { overall: cli.global.timeout, connect: cli.global.connect_timeout },
        ca_cert: cli.global.ca_cert.clone(),
    };
    let session = || Session::open_with(&resolve(&opts, env)?, &opts.timeouts);
    match &cli.command {
        Command::Call(CallArgs { method: None, .. }) => {
            output::text(format!("API methods (`redcap call <method> --help` shows one):\n{}", methods::list()))
        }
        Command::Call(CallArgs { method: Some(call), .. }) => commands::call::run(call, &session()?, &ui),
        Command::Em(em) => commands::call::run(&commands::call::external_module(em)?, &session()?, &ui),
        Command::Methods(MethodsArgs { cmd: None | Some(MethodsCmd::List) }) => output::text(methods::list()),
        Command::Methods(MethodsArgs { cmd: Some(MethodsCmd::Show { method }) }) => output::text(methods::show(method)),
        Command::Info { format } => commands::info::run(&session()?, *format),
        Command::Files(cmd) => commands::files::run(cmd, &session()?, &ui),
        Command::Report(cmd) => commands::data::run_report(cmd, &session()?),
        Command::Records(cmd) => commands::data::run_records(cmd, &session()?, &ui),
        Command::Dataset(cmd) => commands::dataset::run(cmd, &session()?, &ui),
        Command::Backup(args) => commands::backup::run(args, session, &ui),
        Command::Profile(cmd) => commands::profile::run(cmd, &opts, env, &ui),
        #[cfg(feature = "demo")]
        Command::Demo(args) => commands::demo::run(args, &ui),
        #[cfg(not(feature = "demo"))]
        Command::Demo(_) => Err(CliError::usage("this redcap was built without the demo")
            .hint("build it with the `demo` feature (on by default)")),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "redcap", &mut out);
            output::text(String::from_utf8_lossy(&out))
        }
    }
}
