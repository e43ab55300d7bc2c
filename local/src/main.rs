//! `dofs`: parses the command line and runs it; everything else is in the
//! `dofs_local` library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = dofs_local::cli::Cli::parse();
    // `serve` installs its own telemetry (with the span store).
    if !matches!(cli.command, dofs_local::cli::Command::Serve(_)) {
        dofs_local::cli::init_logging();
    }
    match dofs_local::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dofs: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
