//! The `dofs` command line, and only that: argument parsing (`args`), the
//! output of the read commands (`print`) and how it looks (`style`: tables
//! and colour), the load test (`bench`), orders sent to a running server
//! (`submit`), an order's log lines (`logs`), a data directory emptied
//! (`reset`). `serve`
//! builds a [`Runtime`] and runs it until SIGINT/SIGTERM; `orders`, `order`,
//! `trace`, `logs`, `queues`, `metrics`, `alarms` and `redrive` work on the same
//! data directory, also while `serve` is running (SQLite WAL lets readers
//! and a second writer in).

pub mod args;
pub mod bench;
mod cost;
mod logs;
mod print;
mod reset;
pub mod serve_process;
mod style;
pub mod submit;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub use args::{parse_duration, parse_switch, ServeArgs};
use print::*;

use crate::runtime::{install_process_telemetry, Runtime};
use crate::shutdown::Shutdown;

/// The line `dofs serve` prints on stdout once it listens; scripts and the
/// tests wait for it.
pub const LISTENING_LINE: &str = "dofs listening on ";

/// `dofs`: the DOFS local runtime.
#[derive(Debug, Parser)]
#[command(
    name = "dofs",
    version,
    about = "DOFS local runtime: the whole order pipeline on one machine"
)]
pub struct Cli {
    /// Where the SQLite database lives.
    #[arg(long, env = "DOFS_DATA_DIR", default_value = "./.dofs", global = true)]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

// One value per process, parsed once: its size is no cost worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway, the workflow engine and the queue pollers.
    Serve(ServeArgs),
    /// List orders.
    Orders {
        /// Only orders in this status (e.g. FULFILLED; any case).
        #[arg(long, value_parser = args::parse_status)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one order: status history, execution history, queue deliveries.
    Order {
        order_id: String,
        #[arg(long)]
        json: bool,
    },
    /// An order's log lines from every function, oldest first.
    ///
    /// `--json` prints the stored JSON lines (JSON Lines); `--follow` goes
    /// on printing new ones until interrupted.
    Logs {
        order_id: String,
        #[arg(long, short)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Message counts per queue.
    Queues {
        #[arg(long)]
        json: bool,
    },
    /// Move every dead-lettered message back to the order queue.
    Redrive,
    /// Show an order's trace as X-Ray would hold it: one line per segment
    /// and subsegment (start offset, duration, fault/error, annotations,
    /// cause), or that the order was not sampled.
    Trace {
        /// The order id, or its trace id: the `trace_id` the API answered
        /// (`1-5759e988-bd862e3fe1be46a994272793`), or a whole
        /// `X-Amzn-Trace-Id` value (`Root=1-...;Parent=...`).
        #[arg(value_name = "ORDER_ID|TRACE_ID")]
        order_id: String,
        /// Print it as JSON (the segment documents, or with --full the spans).
        #[arg(long)]
        json: bool,
        /// Every span the local runtime recorded, as a waterfall: richer
        /// than X-Ray (the gateway and Step Functions stand-ins, every
        /// attribute and log event).
        #[arg(long)]
        full: bool,
    },
    /// Load-test a `dofs serve` (its own, or `--url`) and report throughput,
    /// latency, errors and peak RSS.
    Bench(bench::BenchArgs),
    /// Recent values of every metric (custom and AWS service metrics) per
    /// dimension.
    Metrics {
        /// How far back to look.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        since: Duration,
        #[arg(long)]
        json: bool,
    },
    /// What an order costs on AWS, Standard and Express side by side, from
    /// the billable units the runtime measured and a dated price table.
    Cost(cost::CostArgs),
    /// Every alarm: state, reason, last change; and the recent transitions.
    Alarms {
        #[arg(long)]
        json: bool,
    },
    /// Send orders to a running `dofs serve` and print their ids.
    ///
    /// `POST /orders` of one sample order, `--count N` of them, or the
    /// orders of `--file`; prints each accepted order's id and trace id, and
    /// each refused one's error body (then exits non-zero).
    Submit(submit::SubmitArgs),
    /// Delete everything in the data directory, after asking (refused while
    /// a `dofs serve` runs on it).
    Reset {
        /// Do not ask (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Print a shell completion script.
    ///
    /// E.g. `dofs completions bash > ~/.local/share/bash-completion/completions/dofs`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Inject, clear or list faults of a running `dofs serve` (its console's
    /// faults API), to rehearse an outage: see docs/runbook.md.
    Fault {
        /// The `dofs serve` to talk to.
        #[arg(long, env = "DOFS_URL", default_value = "http://127.0.0.1:3000")]
        url: String,
        #[command(subcommand)]
        action: FaultAction,
    },
}

/// `dofs fault` actions.
#[derive(Debug, Subcommand)]
pub enum FaultAction {
    /// Set a fault, `<function>=unavailable|failing|slow|throttled|disabled`.
    Set { spec: crate::faults::FaultSpec },
    /// Clear one function's fault, or every fault.
    Clear { function: Option<String> },
    /// The faults in force.
    List,
}

impl Command {
    /// Whether the command builds a runtime, which installs telemetry for
    /// the process (so [`run`] must not install logging first).
    pub fn installs_telemetry(&self) -> bool {
        match self {
            Command::Serve(_) => true,
            Command::Bench(args) => args.in_process,
            _ => false,
        }
    }
}

/// Runs the command line, after installing logging for the commands that
/// build no runtime.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if !cli.command.installs_telemetry() {
        init_logging()?;
    }
    match cli.command {
        Command::Serve(args) => serve(&cli.data_dir, args).await,
        Command::Orders { status, json } => print_orders(&cli.data_dir, status.as_deref(), json),
        Command::Order { order_id, json } => print_order(&cli.data_dir, &order_id, json),
        Command::Logs {
            order_id,
            follow,
            json,
        } => logs::print_logs(&cli.data_dir, &order_id, follow, json).await,
        Command::Queues { json } => print_queues(&cli.data_dir, json),
        Command::Redrive => redrive(&cli.data_dir).await,
        Command::Trace {
            order_id,
            json,
            full,
        } => print_trace(&cli.data_dir, &order_id, json, full),
        Command::Bench(args) => bench::bench(&cli.data_dir, args).await,
        Command::Metrics { since, json } => print_metrics(&cli.data_dir, since, json),
        Command::Alarms { json } => print_alarms(&cli.data_dir, json),
        Command::Cost(args) => cost::cost(&cli.data_dir, args),
        Command::Fault { url, action } => fault(&url, action).await,
        Command::Completions { shell } => completions(shell),
        Command::Submit(args) => submit::submit(args).await,
        Command::Reset { yes } => reset::reset(&cli.data_dir, yes),
    }
}

/// `dofs completions <shell>`: the shell's completion script for every
/// command and flag, on stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    use std::io::Write as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "dofs", &mut script);
    // Written here, not by `generate`, so that a closed pipe is an error
    // the caller sees (and `main` ends quietly) rather than a panic.
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

/// `dofs fault`: one call to the running runtime's faults API; prints the
/// faults in force afterwards, one per line.
async fn fault(url: &str, action: FaultAction) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let base = format!("{}/_dofs/api/faults", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let request = match action {
        FaultAction::Set { spec } => client.put(format!("{base}/{spec}")),
        FaultAction::Clear {
            function: Some(function),
        } => client.delete(format!("{base}/{function}")),
        FaultAction::Clear { function: None } => client.delete(&base),
        FaultAction::List => client.get(&base),
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("no dofs serve answering at {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .context("the faults API did not answer JSON")?;
    if !status.is_success() {
        anyhow::bail!("{}", body["error"].as_str().unwrap_or("refused"));
    }
    for fault in body["faults"].as_array().into_iter().flatten() {
        println!("{}", fault.as_str().unwrap_or_default());
    }
    Ok(())
}

/// `dofs serve`: the whole system until SIGINT/SIGTERM, then a clean stop
/// (see [`Runtime::run_until`]); exit 0.
async fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    // Signals are caught from here on: one that comes right after the
    // listening line must stop the runtime, not kill the process.
    let shutdown = Shutdown::on_signals()?;
    let log_format = args.log_format();
    let runtime = Runtime::build(
        args.into_config(data_dir)?,
        Arc::new(dofs_core::SystemClock),
        install_process_telemetry(log_format),
    )
    .await?;
    println!("{LISTENING_LINE}{}", runtime.base_url());
    runtime.run_until(shutdown).await
}

/// A command refused for how it was called rather than failed: `dofs`
/// exits 2 for it, as for clap's usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code of a failed command: 2 for a [`UsageError`], else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// Whether `err` is a write to a closed pipe (`dofs orders | head -1`):
/// the reader has what it wanted, so the command ends quietly, as Unix
/// tools do.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The line a failed command ends with on stderr: `dofs: ` (red where
/// stderr is a terminal that takes colour) and [`error_message`].
pub fn error_line(err: &anyhow::Error) -> String {
    let prefix = style::paint("dofs:", Some(style::Tone::Bad), style::stderr_colour_on());
    format!("{prefix} {}", error_message(err))
}

/// What `dofs` prints for a failed command: the error and its causes,
/// `: `-separated like `{err:#}`, but a cause whose message the one before
/// already ends with is left out (`tracing_subscriber`'s filter errors
/// repeat their source's message, so a bad `LOG_LEVEL` would read twice).
pub fn error_message(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain().map(ToString::to_string) {
        if message.is_empty() {
            message = cause;
        } else if !message.ends_with(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
}

/// Logging for the commands other than `serve` (which installs the
/// runtime's telemetry): `dofs_telemetry`'s JSON log lines, the one shape
/// every DOFS process writes, on stderr, without traces or metrics. Level
/// from `RUST_LOG`, else `LOG_LEVEL`, else info; an invalid one is refused,
/// as `serve` refuses it.
fn init_logging() -> anyhow::Result<()> {
    use anyhow::Context as _;
    dofs_telemetry::init_with_writer(logging_config(), std::io::stderr)
        .context("cannot start logging")?;
    Ok(())
}

/// What [`init_logging`] installs.
fn logging_config() -> dofs_telemetry::TelemetryConfig {
    dofs_telemetry::TelemetryConfig {
        function_name: "dofs".to_owned(),
        metric_dimension: None,
        log_level: args::log_level(),
        traces: dofs_telemetry::TraceExport::Disabled,
        metrics: dofs_telemetry::MetricsExport::Disabled,
        log_sink: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message repeats its source's, as
    /// `tracing_subscriber::filter::ParseError` does.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn error_message_says_each_cause_once() {
        let source = || std::io::Error::other("expected a level");
        let err = anyhow::Error::new(Repeats(source())).context("invalid log level \"x\"");
        assert_eq!(
            error_message(&err),
            "invalid log level \"x\": expected a level"
        );
        let distinct = anyhow::Error::new(source()).context("cannot start logging");
        assert_eq!(
            error_message(&distinct),
            "cannot start logging: expected a level"
        );
    }

    #[test]
    fn parses_the_durations_it_always_took() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("1440m").unwrap(),
            Duration::from_secs(86_400)
        );
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_duration(" 7d ").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
    }

    #[test]
    fn parses_combined_durations() {
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
    }

    #[test]
    fn refuses_what_is_not_a_duration_and_says_what_is() {
        for bad in ["abc", "-1s", "-1", "2 parsecs", "", "NaN"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("{:?}", bad.trim())), "{bad:?}: {err}");
        }
        let err = parse_duration("abc").unwrap_err();
        assert!(err.contains("such as 30, 250ms"), "{err}");
    }

    fn serve_args(args: &[&str]) -> Result<ServeArgs, String> {
        match Cli::try_parse_from(args) {
            Ok(Cli {
                command: Command::Serve(serve),
                ..
            }) => Ok(serve),
            Ok(other) => panic!("{other:?}"),
            Err(err) => Err(err.to_string()),
        }
    }

    #[test]
    fn serve_takes_traces_on_or_off() {
        let traces = |args: &[&str]| serve_args(args).map(|serve| serve.traces);
        assert_eq!(traces(&["dofs", "serve"]), Ok(true));
        assert_eq!(traces(&["dofs", "serve", "--traces", "off"]), Ok(false));
        assert_eq!(traces(&["dofs", "serve", "--traces=on"]), Ok(true));
        assert!(traces(&["dofs", "serve", "--traces", "maybe"]).is_err());
    }

    #[test]
    fn serve_takes_a_log_format() {
        use dofs_telemetry::LogFormat;
        let format = |args: &[&str]| serve_args(args).map(|serve| serve.log_format());
        assert_eq!(
            format(&["dofs", "serve", "--log-format", "json"]),
            Ok(LogFormat::Json)
        );
        assert!(matches!(
            format(&["dofs", "serve", "--log-format", "pretty"]),
            Ok(LogFormat::Pretty { .. })
        ));
        assert!(format(&["dofs", "serve", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn serve_takes_console_on_or_off() {
        let console = |args: &[&str]| serve_args(args).map(|serve| serve.console);
        assert_eq!(console(&["dofs", "serve"]), Ok(true));
        assert_eq!(console(&["dofs", "serve", "--console", "off"]), Ok(false));
        assert!(console(&["dofs", "serve", "--console", "maybe"]).is_err());
    }

    #[test]
    fn serve_takes_a_timeout_for_all_functions_and_for_one() {
        use crate::identity::FunctionName::{DlqHandler, Validator};
        let timeouts = |args: &[&str]| {
            let dir = std::path::Path::new("./.dofs");
            serve_args(args).map(|serve| serve.into_config(dir).unwrap().function_timeouts)
        };
        let of = |args: &[&str], function| timeouts(args).unwrap().of(function);
        assert_eq!(of(&["dofs", "serve"], Validator), Duration::from_secs(30));
        let one = ["dofs", "serve", "--function-timeout", "validator=300ms"];
        assert_eq!(of(&one, Validator), Duration::from_millis(300));
        assert_eq!(of(&one, DlqHandler), Duration::from_secs(30));
        // One function's own timeout wins over the one for all, in any order.
        let both = ["dofs", "serve", "--function-timeout", "validator=1s,5s"];
        assert_eq!(of(&both, Validator), Duration::from_secs(1));
        assert_eq!(of(&both, DlqHandler), Duration::from_secs(5));
        let err = timeouts(&["dofs", "serve", "--function-timeout", "nobody=1s"]).unwrap_err();
        assert!(err.contains("is not a DOFS function"), "{err}");
    }

    #[test]
    fn serve_defaults_are_the_runtime_defaults() {
        let dir = std::path::Path::new("./.dofs");
        let mut config = serve_args(&["dofs", "serve"])
            .unwrap()
            .into_config(dir)
            .unwrap();
        config.log_level = "info".to_owned();
        assert_eq!(config, crate::runtime::RuntimeConfig::new(dir));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Every command and subcommand has its section in docs/cli.md (which
    /// the README links), naming each of its flags and environment
    /// variables; `serve`'s are the README's flag table (checked above),
    /// and the global ones may be anywhere in either.
    #[test]
    fn every_command_flag_and_env_var_is_documented() {
        use clap::CommandFactory;
        let readme = include_str!("../../../README.md");
        let reference = include_str!("../../../docs/cli.md");
        assert!(
            readme.contains("(docs/cli.md)"),
            "the README links docs/cli.md"
        );
        let both = format!("{readme}\n{reference}");

        fn walk<'a>(
            cmd: &'a clap::Command,
            path: &str,
            out: &mut Vec<(String, &'a clap::Command)>,
        ) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name()).trim().to_owned();
                out.push((path.clone(), sub));
                walk(sub, &path, out);
            }
        }
        let cli = Cli::command();
        let mut commands = Vec::new();
        walk(&cli, "", &mut commands);
        assert!(commands.len() > 10, "{commands:?}");

        let documented = |arg: &clap::Arg, text: &str, what: &str| {
            if let Some(long) = arg.get_long() {
                assert!(text.contains(&format!("--{long}")), "{what} lacks --{long}");
            }
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(text.contains(env.as_ref()), "{what} lacks {env}");
            }
        };
        let own = |arg: &&clap::Arg| {
            !arg.is_global_set() && arg.get_long().is_none_or(|l| l != "help" && l != "version")
        };
        for arg in cli.get_arguments().filter(own) {
            documented(arg, &both, "README and docs/cli.md");
        }
        for arg in cli.get_arguments().filter(|a| a.is_global_set()) {
            documented(arg, &both, "README and docs/cli.md");
        }
        for (path, cmd) in &commands {
            let heading = format!("### `dofs {path}`");
            let start = reference
                .find(&heading)
                .unwrap_or_else(|| panic!("docs/cli.md has no section {heading}"));
            let body = &reference[start + heading.len()..];
            let section = &body[..body.find("\n#").unwrap_or(body.len())];
            let text = if path == "serve" { readme } else { section };
            for arg in cmd.get_arguments().filter(own) {
                documented(arg, text, &format!("the docs of dofs {path}"));
            }
        }
    }

    /// The README's `dofs serve` table lists every flag, with the
    /// environment variable and default the binary really has.
    #[test]
    fn readme_flag_table_matches_the_serve_command() {
        use clap::CommandFactory;
        let readme = include_str!("../../../README.md");
        let cell = |text: &str| text.trim().trim_matches('`').to_owned();
        let rows: Vec<(String, String, String)> = readme
            .lines()
            .filter(|line| line.starts_with("| `--"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').collect();
                (cell(cells[1]), cell(cells[2]), cell(cells[3]))
            })
            .collect();
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        let args: Vec<&clap::Arg> = cli
            .get_arguments()
            .chain(serve.get_arguments())
            .filter(|a| a.get_long().is_some_and(|l| l != "help" && l != "version"))
            .collect();
        let documented: Vec<&str> = rows.iter().map(|(flag, _, _)| flag.as_str()).collect();
        for arg in &args {
            let flag = format!("--{}", arg.get_long().unwrap());
            let Some((_, env, default)) = rows.iter().find(|(f, _, _)| *f == flag) else {
                panic!("README's flag table lacks {flag}");
            };
            let real_env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert_eq!(Some(env.clone()), real_env, "{flag}: environment variable");
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
                assert_eq!(default, "off", "{flag}: a switch, off unless given");
                continue;
            }
            match defaults.as_slice() {
                [] => assert!(
                    default == "none" || default.starts_with("built-in"),
                    "{flag}: README says default {default:?}, the binary has none"
                ),
                [real] => assert_eq!(default, real, "{flag}: default"),
                many => panic!("{flag}: several defaults {many:?}"),
            }
        }
        assert_eq!(
            documented.len(),
            args.len(),
            "README documents flags the binary lacks: {documented:?}"
        );
    }
}
