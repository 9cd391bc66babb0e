//! The `redcap` binary.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(redcap_cli::run(std::env::args_os()))
}
