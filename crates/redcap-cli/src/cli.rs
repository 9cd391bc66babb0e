//! The command line: every subcommand, its options and its help.
// The doc comments below are clap's help text, written for a terminal: URLs and REDCap
// logic such as [age] are meant literally, not as rustdoc links.
#![allow(rustdoc::bare_urls, rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use redcap::workflow::ReportId;
use redcap::{METHODS, MethodInfo};

use crate::output::Format;
use crate::secret::Secret;

const LONG_ABOUT: &str = "\
One command-line tool for the REDCap API: call any of its 55 methods, sync File Repository
folders, export reports and records, and import records in batches.

New here? `redcap demo` starts a local REDCap emulator with a demo project and shows a short
tour; it needs no server and no token.";

fn after_help() -> String {
    format!(
        "\
Connecting:
  The URL and token come from --url/--token, else --profile NAME, else the environment
  (REDCAP_API_URL, REDCAP_API_TOKEN), else the profile named by REDCAP_PROFILE or the
  default profile (see `redcap profile --help`). Prefer the environment or a profile for the
  token: a --token flag is visible to other users of this machine (e.g. in `ps`).
  Plain http is accepted only for this machine (localhost) or with --allow-http.
  A private CA is trusted with --ca-cert PATH or SSL_CERT_FILE (added to the built-in roots).

Scripting (cron jobs, pipelines):
  Data goes to stdout only: exports, downloads to -, doc_ids, folder_ids, listings.
  Messages, summaries, warnings and progress go to stderr; progress bars only on a terminal.
  -q silences everything on stderr but errors. --json prints the result of files put, push,
  pull, records import, dataset pull, backup and backup verify as one JSON object on stdout (also when some files
  failed: the exit code says so). The exit codes below never depend on -q or --json.

{}",
        crate::error::EXIT_CODES_HELP
    )
}

/// `redcap`: the REDCap API from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "redcap",
    version,
    about = "The REDCap API from the command line: every method, File Repository sync, reports and records",
    long_about = LONG_ABOUT,
    after_help = after_help(),
    max_term_width = 100
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Connection and output options (accepted before or after the subcommand).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// REDCap API URL, e.g. https://redcap.example.edu/api/ [env: REDCAP_API_URL]
    #[arg(long, global = true, value_name = "URL", help_heading = "Connection")]
    pub url: Option<String>,
    /// API token; other users can see flags in `ps`, so prefer REDCAP_API_TOKEN or a profile
    #[arg(long, global = true, value_name = "TOKEN", hide_default_value = true, help_heading = "Connection")]
    pub token: Option<Secret>,
    /// Use this profile from the config file [env: REDCAP_PROFILE]
    #[arg(long, global = true, value_name = "NAME", help_heading = "Connection")]
    pub profile: Option<String>,
    /// Accept a plain-http URL on another machine (the token travels unencrypted)
    #[arg(long, global = true, help_heading = "Connection")]
    pub allow_http: bool,
    /// Give up on a call (retries included) after SECS seconds; by default a call may take as
    /// long as it makes progress (one that stalls for 2 minutes is retried once, then ends)
    #[arg(long, global = true, value_name = "SECS", value_parser = parse_secs, help_heading = "Connection")]
    pub timeout: Option<std::time::Duration>,
    /// Give up connecting to the server after SECS seconds [default: 15]
    #[arg(long, global = true, value_name = "SECS", value_parser = parse_secs, help_heading = "Connection")]
    pub connect_timeout: Option<std::time::Duration>,
    /// Also trust the CA certificates in this PEM file (a private or institutional CA)
    /// [env: SSL_CERT_FILE]
    #[arg(long, global = true, value_name = "PATH", help_heading = "Connection")]
    pub ca_cert: Option<PathBuf>,
    /// No progress bars, status messages or warnings (errors are still shown)
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print the result as one JSON object on stdout (files put/push/pull, records import, backup)
    #[arg(long, global = true)]
    pub json: bool,
}

/// Seconds, whole or decimal (`30`, `0.5`), greater than zero.
fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("`{s}`: give a number of seconds greater than zero"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call any API method with parameters from the command line
    #[command(
        long_about = "Calls any of the 55 API methods. Parameters are NAME=VALUE pairs named as in the \
                      API (`redcap call <method> --help` lists them). The answer is written as REDCap \
                      sent it, to stdout or to a file (-o).",
        after_help = "Examples:\n  redcap call --list\n  redcap call record.export --help\n  \
                      redcap call record.export -p format=csv -p fields=record_id,age -o records.csv\n  \
                      redcap call file_repository.import -p file=report.pdf -p folder_id=3"
    )]
    Call(CallArgs),
    /// Call an External Module's API action (content=externalModule)
    #[command(
        long_about = "Calls an action an External Module publishes through the API: sends \
                      content=externalModule, prefix=PREFIX, action=ACTION and the -p NAME=VALUE pairs \
                      (a value @FILE is read from FILE), and writes the answer as the module sent it. \
                      Such calls are never retried (the module's action may not be safe to repeat).",
        after_help = "Example:\n  redcap em custom_log_entry log -p comment=\"Consent re-checked\" -p record=1001 \
                      -p returnFormat=json"
    )]
    Em(EmArgs),
    /// List the API methods (also with no subcommand), or show one method's parameters
    Methods(MethodsArgs),
    /// Show the server's REDCap version and the project's settings
    Info {
        /// Output format
        #[arg(long, value_enum, default_value_t = InfoFormat::Table)]
        format: InfoFormat,
    },
    /// File Repository: list, download, upload, and sync folders
    #[command(subcommand)]
    Files(FilesCmd),
    /// Export a report defined in REDCap
    #[command(subcommand)]
    Report(ReportCmd),
    /// Export or import records, in batches
    #[command(subcommand)]
    Records(RecordsCmd),
    /// Pull the project as typed tables (Parquet, Arrow or CSV), one per instrument
    #[command(subcommand)]
    Dataset(crate::commands::dataset::DatasetCmd),
    /// Back up the whole project into a directory (for cron); `backup verify DIR` checks one
    Backup(crate::commands::backup::BackupArgs),
    /// Save, list and remove named connections (URL and token) in the config file
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Start a local REDCap emulator with a demo project and take a short tour
    #[command(long_about = "Starts the REDCap emulator inside this process with a demo project (records, \
                            a report with filter logic, File Repository folders restricted by DAG and role), \
                            then runs a short tour of redcap's commands against it. Needs no server, no \
                            token and no network; finishes on its own.")]
    Demo(DemoArgs),
    /// Print a shell completion script (e.g. `redcap completions bash > ~/.local/share/bash-completion/completions/redcap`)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `redcap call`.
#[derive(Debug, Args)]
#[command(
    subcommand_value_name = "METHOD",
    subcommand_help_heading = "Methods",
    args_conflicts_with_subcommands = true
)]
pub struct CallArgs {
    /// List the methods with their summaries
    #[arg(long)]
    pub list: bool,
    /// The method to call.
    #[command(subcommand)]
    pub method: Option<MethodCall>,
}

/// One method call: `redcap call <method-id> --param k=v … [-o FILE]`. Its subcommands are
/// generated from the spec, one per method, so `--help` and completions know every method.
#[derive(Debug, Clone)]
pub struct MethodCall {
    /// The method.
    pub info: &'static MethodInfo,
    /// `NAME=VALUE` pairs as given.
    pub params: Vec<String>,
    /// `-o FILE`.
    pub output: Option<PathBuf>,
}

fn method_command(m: &'static MethodInfo) -> clap::Command {
    clap::Command::new(m.id)
        .about(m.summary)
        .after_help(crate::methods::params_help(m))
        .arg(
            Arg::new("param")
                .short('p')
                .long("param")
                .value_name("NAME=VALUE")
                .action(ArgAction::Append)
                .help("A parameter; repeat for more. Lists: repeat the name, or separate values with commas"),
        )
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Write the answer to FILE (atomically) instead of stdout"),
        )
}

impl FromArgMatches for MethodCall {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let (name, sub) = matches
            .subcommand()
            .ok_or_else(|| clap::Error::raw(clap::error::ErrorKind::MissingSubcommand, "a method is required\n"))?;
        let info = redcap::method(name).ok_or_else(|| {
            clap::Error::raw(clap::error::ErrorKind::InvalidSubcommand, format!("unknown method `{name}`\n"))
        })?;
        Ok(MethodCall {
            info,
            params: sub.get_many::<String>("param").map(|v| v.cloned().collect()).unwrap_or_default(),
            output: sub.get_one::<PathBuf>("output").cloned(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = MethodCall::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for MethodCall {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        cmd.subcommands(METHODS.iter().map(|m| method_command(m)))
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        MethodCall::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        redcap::method(name).is_some()
    }
}

/// A method id, checked against the spec.
fn parse_method(s: &str) -> Result<&'static MethodInfo, String> {
    if let Some(m) = redcap::method(s) {
        return Ok(m);
    }
    let close: Vec<&str> = METHODS
        .iter()
        .map(|m| m.id)
        .filter(|id| id.contains(s) || s.contains(id.split('.').next().unwrap_or("")))
        .collect();
    let mut msg = format!("`{s}` is not a method; `redcap methods list` lists them");
    if !close.is_empty() && close.len() <= 8 {
        msg.push_str(&format!(" (close: {})", close.join(", ")));
    }
    Err(msg)
}

/// `redcap em PREFIX ACTION -p NAME=VALUE …`.
#[derive(Debug, Args)]
pub struct EmArgs {
    /// The module's prefix (its directory name without the version, e.g. custom_log_entry)
    pub prefix: String,
    /// The API action the module publishes
    pub action: String,
    /// A parameter; repeat for more
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Write the answer to FILE (atomically) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `redcap methods [list|show]`.
#[derive(Debug, Args)]
pub struct MethodsArgs {
    /// What to show (the list by default).
    #[command(subcommand)]
    pub cmd: Option<MethodsCmd>,
}

/// `redcap methods`.
#[derive(Debug, Subcommand)]
pub enum MethodsCmd {
    /// List every method with its summary
    List,
    /// Show a method's parameters: type, whether required, allowed values, REDCap's default, description
    Show {
        /// Method id, e.g. record.export
        #[arg(value_parser = parse_method)]
        method: &'static MethodInfo,
    },
}

/// Output of `redcap info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    /// Aligned name/value lines
    Table,
    /// The project's settings as REDCap returns them, plus `redcap_version`
    Json,
}

/// Output of `redcap files tree`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TreeFormat {
    /// An indented tree
    Text,
    /// Folders and files with ids, parents and paths
    Json,
}

/// `redcap files`.
#[derive(Debug, Subcommand)]
pub enum FilesCmd {
    /// List a folder (the top level by default)
    Ls {
        /// folder_id of the folder to list (the top level by default)
        #[arg(long = "folder", value_name = "FOLDER_ID")]
        folder: Option<u64>,
        /// The same, as a positional argument (kept for older scripts)
        #[arg(value_name = "FOLDER_ID", conflicts_with = "folder", hide = true)]
        folder_id: Option<u64>,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show all folders and files below a folder (the whole repository by default)
    Tree {
        /// Start at this folder_id
        #[arg(long, value_name = "FOLDER_ID")]
        folder: Option<u64>,
        /// Output format
        #[arg(long, value_enum, default_value_t = TreeFormat::Text)]
        format: TreeFormat,
    },
    /// Download a file by doc_id (into the current directory under its REDCap name by default)
    #[command(long_about = "Downloads a file by doc_id, into the current directory under its REDCap name by \
                            default. The name is chosen by whoever uploaded the file, so it never replaces an \
                            existing file: a name that is taken gets ` (doc_id N)` before its extension, and \
                            a name starting with a dot (`.bashrc`) is written as `_bashrc`. --overwrite and \
                            --dot-files lift these.")]
    Get {
        /// The file's doc_id (see `redcap files ls`)
        doc_id: u64,
        /// A file path, an existing directory (keeps REDCap's name), or - for stdout
        #[arg(short, long, value_name = "PATH|DIR")]
        output: Option<PathBuf>,
        /// Replace an existing file of the same name (or the -o file)
        #[arg(long)]
        overwrite: bool,
        /// Keep a leading dot in REDCap's file name (hidden files such as .bashrc)
        #[arg(long)]
        dot_files: bool,
    },
    /// Upload a file and print the doc_id REDCap gave it
    #[command(long_about = "Uploads a file and prints the doc_id REDCap gave it. REDCap's upload answers \
                            nothing, so the folder is listed before and after to find the new file.")]
    Put {
        /// The file to upload
        path: PathBuf,
        /// Destination folder_id (the top level by default)
        #[arg(long, value_name = "FOLDER_ID")]
        folder: Option<u64>,
    },
    /// Create a folder and print its folder_id
    Mkdir {
        /// Folder name
        name: String,
        /// Parent folder_id (the top level by default)
        #[arg(long, value_name = "FOLDER_ID")]
        parent: Option<u64>,
        /// Restrict the folder to this Data Access Group (numeric id)
        #[arg(long, value_name = "N")]
        dag_id: Option<u64>,
        /// Restrict the folder to this user role (numeric id)
        #[arg(long, value_name = "N")]
        role_id: Option<u64>,
    },
    /// Delete a file by doc_id
    Rm {
        /// The file's doc_id
        doc_id: u64,
    },
    /// Mirror a folder into a local directory (only new files are downloaded on a re-run)
    Pull {
        /// Remote folder_id to pull (the whole repository by default)
        #[arg(long, value_name = "FOLDER_ID")]
        folder: Option<u64>,
        /// Local directory (created if missing)
        dir: PathBuf,
        /// Also remove local files whose remote file is gone (only files a pull wrote, unchanged since)
        #[arg(long)]
        delete: bool,
        /// Replace local files a pull did not write (by default the remote file goes beside
        /// such a file, as `NAME (doc_id N).EXT`)
        #[arg(long)]
        overwrite: bool,
        /// Files downloaded at once
        #[arg(long, default_value_t = redcap::workflow::DEFAULT_JOBS as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
        jobs: u64,
    },
    /// Upload a local directory into a folder (creates folders; skips files already pushed)
    Push {
        /// Local directory
        dir: PathBuf,
        /// Remote folder_id to push into (the top level by default)
        #[arg(long, value_name = "FOLDER_ID")]
        folder: Option<u64>,
        /// Upload again files that a previous push already uploaded
        #[arg(long)]
        force: bool,
        /// Keep the record of what was pushed in FILE (by default in redcap's state directory,
        /// named after the server, the folder and DIR; REDCAP_STATE_DIR overrides the directory)
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Files uploaded at once (never retried: a failed upload is reported, not repeated)
        #[arg(long, default_value_t = redcap::workflow::DEFAULT_JOBS as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
        jobs: u64,
    },
}

/// Options shared by the data exports.
#[derive(Debug, Args)]
pub struct ExportOutput {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Write to FILE (atomically) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Export choice labels instead of raw codes
    #[arg(long)]
    pub labels: bool,
}

/// `redcap report`.
#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Export a report's rows
    Export {
        /// The report's numeric id (shown on its page in REDCap)
        id: ReportId,
        /// Output options.
        #[command(flatten)]
        out: ExportOutput,
    },
}

/// Input format of `records import`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// A JSON array of objects
    Json,
    /// CSV with a header row of field names
    Csv,
}

/// Date layout of imported values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[allow(clippy::upper_case_acronyms)]
pub enum DateFormatArg {
    /// 2024-12-31
    YMD,
    /// 12/31/2024
    MDY,
    /// 31/12/2024
    DMY,
}

/// `redcap records`.
#[derive(Debug, Subcommand)]
pub enum RecordsCmd {
    /// Export records in batches of whole records (checks that every record came back)
    Export {
        /// Only these fields (comma-separated or repeated)
        #[arg(long, value_delimiter = ',', value_name = "FIELD")]
        fields: Vec<String>,
        /// Only the fields of these instruments
        #[arg(long, value_delimiter = ',', value_name = "FORM")]
        forms: Vec<String>,
        /// Only these events (longitudinal projects)
        #[arg(long, value_delimiter = ',', value_name = "EVENT")]
        events: Vec<String>,
        /// Only these records
        #[arg(long, value_delimiter = ',', value_name = "RECORD")]
        records: Vec<String>,
        /// Only rows where this REDCap logic is true, e.g. "[age] > 30"
        #[arg(long, value_name = "LOGIC")]
        filter: Option<String>,
        /// Records per call (by default every record in one call; batches list the record ids
        /// first)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        batch_size: Option<u64>,
        /// Batches asked for at once (with --batch-size; 1 to 16; 2, as `dataset pull`: one
        /// batch is answered while the one before it is written); rows are still written in
        /// order, and a batch that fails is healed as with one at a time
        #[arg(long, default_value_t = 2, value_name = "N", requires = "batch_size", value_parser = clap::value_parser!(u64).range(1..=16))]
        parallel: u64,
        /// Output options.
        #[command(flatten)]
        out: ExportOutput,
    },
    /// Import records from a JSON or CSV file, in batches of whole records
    Import {
        /// The file (- for stdin)
        file: PathBuf,
        /// Format of the file (by default from its extension, or for - from its first character)
        #[arg(long, value_enum)]
        input_format: Option<InputFormat>,
        /// Records per call
        #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        batch_size: u64,
        /// Let blank values erase stored values (REDCap's `overwrite`)
        #[arg(long)]
        overwrite: bool,
        /// Layout of date values in the file
        #[arg(long, value_enum, default_value_t = DateFormatArg::YMD)]
        date_format: DateFormatArg,
        /// Start at this batch (1-based), after an import that stopped part-way (exit code 7
        /// names the batch): the same file and --batch-size plan the same batches
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        resume_from: Option<u64>,
        /// --check, --diff, --only-changed, --no-check
        #[command(flatten)]
        check: crate::commands::import_check::CheckArgs,
    },
}

/// `redcap profile`.
#[derive(Debug, Subcommand)]
#[command(after_help = "Profiles are kept in config.toml in your config directory (~/.config/redcap on Linux; \
                        REDCAP_CONFIG_DIR overrides it), readable only by you.")]
pub enum ProfileCmd {
    /// Check a URL and token against the server, then save them under NAME
    #[command(after_help = "The token is read from stdin with --token-stdin, else REDCAP_API_TOKEN or --token, \
                            else asked for (hidden) on a terminal. Example:\n  \
                            redcap profile add lab --url https://redcap.example.edu/api/ --token-stdin < token.txt")]
    Add {
        /// Profile name (letters, digits, -, _ and .)
        name: String,
        /// Read the token from standard input
        #[arg(long)]
        token_stdin: bool,
        /// Make it the default profile (the first profile is the default anyway)
        #[arg(long)]
        default: bool,
    },
    /// List the profiles (tokens are never shown)
    List,
    /// Remove a profile
    Remove {
        /// Profile name
        name: String,
    },
    /// Make a profile the default
    Default {
        /// Profile name
        name: String,
    },
}

/// `redcap demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the pulled demo folder here instead of a temporary directory
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_help_that_renders() {
        fn walk(cmd: &mut clap::Command, path: &str, seen: &mut usize) {
            let long = cmd.render_long_help().to_string();
            assert!(long.contains("Usage:"), "{path}: {long}");
            *seen += 1;
            let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_owned()).collect();
            for name in names {
                let sub = cmd.find_subcommand_mut(&name).unwrap();
                walk(sub, &format!("{path} {name}"), seen);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut seen = 0;
        walk(&mut cmd, "redcap", &mut seen);
        assert!(seen > 55 + 20, "{seen}");
    }

    #[test]
    fn call_parses_method_params_and_output() {
        let cli = Cli::try_parse_from([
            "redcap",
            "call",
            "record.export",
            "-p",
            "format=csv",
            "--param",
            "fields=a,b",
            "-o",
            "x.csv",
        ])
        .unwrap();
        let Command::Call(CallArgs { method: Some(m), .. }) = cli.command else { panic!() };
        assert_eq!(m.info.id, "record.export");
        assert_eq!(m.params, ["format=csv", "fields=a,b"]);
        assert_eq!(m.output.unwrap(), PathBuf::from("x.csv"));
        assert!(Cli::try_parse_from(["redcap", "call", "no.such"]).is_err());
    }

    #[test]
    fn the_token_flag_is_never_shown() {
        let cli = Cli::try_parse_from(["redcap", "--token", "0123456789ABCDEF0123456789ABCDEF", "info"]).unwrap();
        assert!(!format!("{cli:?}").contains("0123456789"));
    }
}
