//! `dofs`: parses the command line and runs it; everything else is in the
//! `dofs_local` library.

use clap::Parser;

/// mimalloc instead of the system allocator: `dofs serve` allocates on its
/// runtime threads and frees on the database writer thread (and the other
/// way round), and glibc's per-thread arenas make the writer — the thread
/// every write waits for — contend on their locks (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = dofs_local::cli::Cli::parse();
    match dofs_local::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) if dofs_local::cli::is_broken_pipe(&err) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", dofs_local::cli::error_line(&err));
            std::process::ExitCode::from(dofs_local::cli::exit_code(&err))
        }
    }
}
