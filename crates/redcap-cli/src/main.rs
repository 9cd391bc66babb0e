//! The `redcap` binary.

fn main() -> std::process::ExitCode {
    // The library reports retries and a moved API URL as tracing warnings: show them on stderr.
    // Tokens never reach tracing (spans carry the method, attempt, status and bytes only).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .compact()
        .init();
    std::process::ExitCode::from(redcap_cli::run(std::env::args_os()))
}
