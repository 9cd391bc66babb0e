//! `redcap-emulator`: serve REDCap project XML files as a local REDCap API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use redcap_emulator::{DataExport, Emulator, Rights, User};

/// mimalloc, not the system allocator: a records export is many small strings (a value, a
/// record id), and glibc's allocator took a fifth of the emulator's CPU on a 100,000-record
/// export; with mimalloc that export took 15-25% less time and its peak RSS was 40% lower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A local server that behaves like a REDCap server's /api/ endpoint.
///
/// Serving: `redcap-emulator --project FILE.xml [--project …] [--data-dir DIR | --in-memory]
/// [--bind 127.0.0.1:PORT]` loads the projects, prints the API URL, each project's id, title and
/// admin token, and the super token, then serves until interrupted.
///
/// Users and tokens: `redcap-emulator token add --data-dir DIR --project N --user NAME [rights]`
/// adds a user to project N of a data directory (or updates them) and prints their token.
#[derive(Debug, Parser)]
#[command(name = "redcap-emulator", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A REDCap project XML file to load (repeatable). With --data-dir, a file already loaded
    /// into that directory is not loaded twice.
    #[arg(long = "project", value_name = "FILE.xml")]
    projects: Vec<PathBuf>,
    /// Keep state here (emulator.sqlite and blobs/); restarts keep everything.
    #[arg(long, value_name = "DIR", conflicts_with = "in_memory")]
    data_dir: Option<PathBuf>,
    /// Keep state in memory (the default when --data-dir is not given).
    #[arg(long)]
    in_memory: bool,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8765")]
    bind: SocketAddr,
    /// What Export Version answers.
    #[arg(long, default_value = "14.5.2")]
    redcap_version: String,
    /// Derive the tokens from this number, so every start gives the same ones (for scripts and
    /// documentation; never for anything reachable by others). Default: random tokens.
    #[arg(long, value_name = "N")]
    token_seed: Option<u64>,
    /// Username of the administrator (who owns the super token and every loaded project).
    #[arg(long, value_name = "NAME", default_value = redcap_emulator::DEFAULT_ADMIN)]
    admin: String,
    /// The base URL survey links are made under (e.g. https://redcap.example.org/). Default:
    /// the address the request was sent to.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Fail every records export that names more than N records (see --batch-fault), to test
    /// how a client's batched export copes with a server that cannot answer big batches.
    #[arg(long, value_name = "N")]
    fail_batches_over: Option<usize>,
    /// How --fail-batches-over fails: 500 or 504 with an error message, an empty 200, or the
    /// export with the last record's rows or the last column left out.
    #[arg(long, value_enum, default_value = "500", requires = "fail_batches_over")]
    batch_fault: BatchFaultArg,
    /// Fail every logging export whose answer holds more than N entries with a 504 (a proxy
    /// timing out on a long history), to test a client's windowed logging export.
    #[arg(long, value_name = "N")]
    fail_logs_over: Option<usize>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BatchFaultArg {
    #[value(name = "500")]
    Status500,
    #[value(name = "504")]
    Status504,
    Empty,
    DropRows,
    DropColumns,
}

impl BatchFaultArg {
    fn fault(self) -> redcap_emulator::BatchFault {
        use redcap_emulator::BatchFault;
        match self {
            BatchFaultArg::Status500 => BatchFault::Status {
                status: 500,
                message: "Fatal error: Allowed memory size exhausted (injected by the REDCap emulator)".into(),
            },
            BatchFaultArg::Status504 => {
                BatchFault::Status { status: 504, message: "Gateway Timeout (injected by the REDCap emulator)".into() }
            }
            BatchFaultArg::Empty => BatchFault::Empty,
            BatchFaultArg::DropRows => BatchFault::DropRows,
            BatchFaultArg::DropColumns => BatchFault::DropColumns,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage users and their API tokens in a data directory.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Add a user to a project (or update their rights) and print their 32-character token.
    Add(TokenAdd),
}

#[derive(Debug, Args)]
struct TokenAdd {
    /// The data directory of the emulator.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Project id (as printed at start-up).
    #[arg(long, value_name = "N")]
    project: i64,
    /// Username.
    #[arg(long, value_name = "NAME")]
    user: String,
    /// Put the user in this DAG (unique group name).
    #[arg(long, value_name = "UNIQUE_NAME")]
    dag: Option<String>,
    /// Give the user this role (unique role name); the role's rights then apply.
    #[arg(long, value_name = "UNIQUE_ROLE_NAME")]
    role: Option<String>,
    /// Data export level.
    #[arg(long, value_enum, default_value = "full")]
    data_export: ExportLevel,
    /// Withhold API Export.
    #[arg(long)]
    no_api_export: bool,
    /// Withhold API Import/Update.
    #[arg(long)]
    no_api_import: bool,
    /// Withhold File Repository.
    #[arg(long)]
    no_file_repository: bool,
    /// Withhold User Rights.
    #[arg(long)]
    no_user_rights: bool,
    /// Withhold Data Access Groups.
    #[arg(long)]
    no_data_access_groups: bool,
    /// Withhold Project Design and Setup.
    #[arg(long)]
    no_design: bool,
    /// Withhold Logging.
    #[arg(long)]
    no_logging: bool,
    /// Withhold Delete Record.
    #[arg(long)]
    no_record_delete: bool,
    /// Withhold Rename Record.
    #[arg(long)]
    no_record_rename: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ExportLevel {
    Full,
    DeIdentified,
    RemoveIdentifiers,
    None,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Token { action: TokenAction::Add(a) }) => token_add(a),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redcap-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), redcap_emulator::Error> {
    let mut b = Emulator::builder().bind(args.bind).version(args.redcap_version).admin_username(&args.admin);
    b = match (&args.data_dir, args.in_memory) {
        (Some(d), _) => b.data_dir(d),
        _ => b.in_memory(),
    };
    if let Some(seed) = args.token_seed {
        b = b.deterministic_tokens(seed);
    }
    if let Some(url) = args.base_url {
        b = b.base_url(url);
    }
    for p in &args.projects {
        b = b.project_xml_file(p)?;
    }
    let emu = b.start()?;
    if let Some(n) = args.fail_batches_over {
        emu.faults().fail_batches_over(n, args.batch_fault.fault());
    }
    if let Some(n) = args.fail_logs_over {
        emu.faults().fail_logs_over(n, 504);
    }
    // Printing the tokens is the point of start-up: the user needs them to call the API.
    println!("REDCap emulator API: {}", emu.url());
    println!("super token (user {}): {}", args.admin, emu.super_token());
    for id in emu.project_ids() {
        let title = emu.project_title(id).unwrap_or_default();
        let token = emu.token(id, &args.admin).unwrap_or_default();
        println!("project {id} \"{title}\": token {token} (user {})", args.admin);
    }
    if emu.project_ids().is_empty() {
        println!(
            "no projects loaded yet: pass --project FILE.xml, or create one with content=project and the super token"
        );
    }
    loop {
        std::thread::park();
    }
}

fn token_add(a: TokenAdd) -> Result<(), redcap_emulator::Error> {
    let emu = Emulator::builder().data_dir(&a.data_dir).build()?;
    if !emu.project_ids().contains(&a.project) {
        return Err(redcap_emulator::Error::Invalid(format!(
            "the data directory {} has no project {}",
            a.data_dir.display(),
            a.project
        )));
    }
    let rights = Rights {
        api_export: !a.no_api_export,
        api_import: !a.no_api_import,
        file_repository: !a.no_file_repository,
        data_export: match a.data_export {
            ExportLevel::Full => DataExport::Full,
            ExportLevel::DeIdentified => DataExport::DeIdentified,
            ExportLevel::RemoveIdentifiers => DataExport::RemoveIdentifiers,
            ExportLevel::None => DataExport::NoAccess,
        },
        user_rights: !a.no_user_rights,
        data_access_groups: !a.no_data_access_groups,
        design: !a.no_design,
        logging: !a.no_logging,
        record_delete: !a.no_record_delete,
        record_rename: !a.no_record_rename,
        ..Rights::full()
    };
    let mut user = User::new(&a.user).rights(rights);
    if let Some(d) = a.dag {
        user = user.dag(d);
    }
    if let Some(r) = a.role {
        user = user.role(r);
    }
    let token = emu.add_user(a.project, user)?;
    println!("{token}");
    Ok(())
}
