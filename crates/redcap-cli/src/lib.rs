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
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (exit 2).
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
                eprint!("{}", e.render());
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
        let text = error::redact(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
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
        Command::Profile(cmd) => commands::profile::run(cmd, &opts, env),
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
