//! The `dofs` command line: `serve` runs the whole system; `orders`,
//! `order`, `queues` and `redrive` work on the same data directory, also
//! while `serve` is running (SQLite WAL lets readers and a second writer in).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use dofs_core::{Clock, SystemClock};
use fulfill_order::FailureSimulator;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::asl::StateMachine;
use crate::db::{Db, DbError};
use crate::engine::{self, Engine, EngineConfig, LocalTasks, LocalWorkflow};
use crate::functions::{FunctionDeps, FunctionName, Functions};
use crate::gateway;
use crate::pollers::{self, MappingConfig};
use crate::queue::{self, QueueConfig, Queues};
use crate::tables::{self, Listing, SqliteFailedOrderStore, SqliteOrderStore};

/// Name of the order queue.
pub const ORDER_QUEUE: &str = "dofs-order-queue";
/// Name of the dead-letter queue.
pub const DEAD_LETTER_QUEUE: &str = "dofs-order-dlq";

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway, the workflow engine and the queue pollers.
    Serve(ServeArgs),
    /// List orders.
    Orders {
        /// Only orders in this status (e.g. FULFILLED).
        #[arg(long)]
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
    /// Message counts per queue.
    Queues {
        #[arg(long)]
        json: bool,
    },
    /// Move every dead-lettered message back to the order queue.
    Redrive,
    /// Show an order's trace as a waterfall: one line per span, indented
    /// under its parent (start offset, duration, status, key attributes).
    Trace {
        order_id: String,
        /// Print the spans as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load-test a `dofs serve` (its own, or `--url`) and report throughput,
    /// latency, errors and peak RSS.
    Bench(crate::bench::BenchArgs),
    /// Recent values of every metric (custom and AWS service metrics) per
    /// dimension.
    Metrics {
        /// How far back to look.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        since: Duration,
        #[arg(long)]
        json: bool,
    },
    /// Every alarm: state, reason, last change; and the recent transitions.
    Alarms {
        #[arg(long)]
        json: bool,
    },
}

/// `dofs serve` settings.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "DOFS_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Share of fulfilment attempts that fail, 0 to 1.
    #[arg(long, env = "FAILURE_RATE", default_value_t = 0.3)]
    pub failure_rate: f64,
    /// Makes simulated failures deterministic.
    #[arg(long, env = "FAILURE_SEED")]
    pub failure_seed: Option<u64>,
    /// Order-queue visibility timeout (short locally, so a dead-lettered
    /// order shows up within seconds).
    #[arg(long, env = "DOFS_VISIBILITY_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub visibility_timeout: Duration,
    /// Receives before a message moves to the dead-letter queue.
    #[arg(long, env = "DOFS_MAX_RECEIVE_COUNT", default_value_t = 3)]
    pub max_receive_count: u32,
    /// Most messages per function invocation.
    #[arg(long, env = "DOFS_BATCH_SIZE", default_value_t = 10)]
    pub batch_size: usize,
    /// How often idle pollers and the engine look for work.
    #[arg(long, env = "DOFS_POLL_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// How long a poller waits to fill a batch.
    #[arg(long, env = "DOFS_BATCHING_WINDOW", default_value = "0s", value_parser = parse_duration)]
    pub batching_window: Duration,
    /// Concurrent pollers per queue (Lambda's SQS event source mapping
    /// starts with five concurrent batches).
    #[arg(long, env = "DOFS_POLLERS", default_value_t = 5)]
    pub pollers: usize,
    /// Executions advanced concurrently. Each waits on the database most of
    /// the time, so many keep the writer's group commits full.
    #[arg(long, env = "DOFS_WORKFLOW_WORKERS", default_value_t = 128)]
    pub workflow_workers: usize,
    /// Lambda timeout of every function.
    #[arg(long, env = "DOFS_FUNCTION_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub function_timeout: Duration,
    /// Workflow definition to run instead of the built-in
    /// terraform/order_workflow.asl.json.
    #[arg(long, env = "DOFS_WORKFLOW_FILE")]
    pub workflow_file: Option<PathBuf>,
    /// Store spans for `dofs trace` (`off`: trace context still propagates,
    /// nothing is stored).
    // `Set`: a bool field is otherwise a flag that takes no value.
    #[arg(long, env = "DOFS_TRACES", default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub traces: bool,
    /// How often finished spans are written to the data directory.
    #[arg(long, env = "DOFS_TRACE_FLUSH_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub trace_flush_interval: Duration,
    /// POST every alarm state change here, shaped like an SNS → HTTPS
    /// notification (the CloudWatch alarm JSON in `Message`).
    #[arg(long, env = "DOFS_ALARM_WEBHOOK")]
    pub alarm_webhook: Option<String>,
    /// POST the alarm JSON itself (SNS raw message delivery).
    #[arg(long, env = "DOFS_ALARM_WEBHOOK_RAW")]
    pub alarm_webhook_raw: bool,
    /// Multiplies every alarm period (0.01: five minutes become three
    /// seconds, so a demo alarm fires in seconds). Floor one second.
    #[arg(long, env = "DOFS_ALARM_PERIOD_SCALE", default_value_t = 1.0)]
    pub alarm_period_scale: f64,
    /// Alarm definitions to use instead of the built-in dashboards/alarms.json.
    #[arg(long, env = "DOFS_ALARMS_FILE")]
    pub alarms_file: Option<PathBuf>,
    /// How often queue gauges are sampled, metrics stored and alarms evaluated.
    #[arg(long, env = "DOFS_METRICS_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub metrics_interval: Duration,
    /// How long metric points are kept.
    #[arg(long, env = "DOFS_METRICS_RETENTION", default_value = "1440m", value_parser = parse_duration)]
    pub metrics_retention: Duration,
    /// Serve the web console under /_dofs/.
    #[arg(long, env = "DOFS_CONSOLE", default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub console: bool,
    /// Disable the event source mapping of this function (`dlq_handler` or
    /// `fulfill_order`), as `update-event-source-mapping --no-enabled`
    /// would: its queue fills up (e.g. to watch the DLQ alarm fire).
    #[arg(long, env = "DOFS_DISABLE_MAPPING", value_parser = parse_mapping_function)]
    pub disable_mapping: Vec<FunctionName>,
}

fn parse_mapping_function(text: &str) -> Result<FunctionName, String> {
    match FunctionName::resolve(text) {
        Some(f @ (FunctionName::FulfillOrder | FunctionName::DlqHandler)) => Ok(f),
        _ => Err(format!(
            "{text:?} has no event source mapping (fulfill_order or dlq_handler)"
        )),
    }
}

/// Parses `on`/`off` (also true/false, 1/0, yes/no).
pub fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        other => Err(format!("{other:?} is not on or off")),
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `3m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 250ms, 2s or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?} (use ms, s or m)"
            ))
        }
    };
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(format!("{text:?} must be a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.data_dir, args).await,
        Command::Orders { status, json } => print_orders(&cli.data_dir, status.as_deref(), json),
        Command::Order { order_id, json } => print_order(&cli.data_dir, &order_id, json),
        Command::Queues { json } => print_queues(&cli.data_dir, json),
        Command::Redrive => redrive(&cli.data_dir).await,
        Command::Trace { order_id, json } => print_trace(&cli.data_dir, &order_id, json),
        Command::Bench(args) => crate::bench::bench(&cli.data_dir, args).await,
        Command::Metrics { since, json } => print_metrics(&cli.data_dir, since, json),
        Command::Alarms { json } => print_alarms(&cli.data_dir, json),
    }
}

/// `RUST_LOG`, else `LOG_LEVEL`, else info.
fn log_level() -> String {
    ["RUST_LOG", "LOG_LEVEL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "info".to_owned())
}

/// Telemetry for `dofs serve`, installed for the process: dofs-telemetry's
/// JSON log lines on stderr (every line inside an order's work carries
/// `order_id` and `trace_id`), spans to `spans` when given.
pub fn init_serve_telemetry(
    spans: Option<Arc<crate::traces::SpanStore>>,
    metrics: Option<Arc<dyn dofs_telemetry::MetricsSink>>,
) -> anyhow::Result<dofs_telemetry::Telemetry> {
    use dofs_telemetry::{MetricsExport, TelemetryConfig, TraceExport};
    let config = TelemetryConfig {
        function_name: "dofs".to_owned(),
        log_level: log_level(),
        traces: match spans {
            Some(store) => TraceExport::Custom(store),
            None => TraceExport::Disabled,
        },
        metrics: match metrics {
            Some(sink) => MetricsExport::Custom(sink),
            None => MetricsExport::Disabled,
        },
    };
    dofs_telemetry::init_with_writer(config, std::io::stderr).context("cannot start telemetry")
}

/// JSON log lines on stderr; level from `RUST_LOG`, else `LOG_LEVEL`, else
/// info. `dofs serve` installs telemetry instead ([`init_serve_telemetry`]);
/// this does nothing once a subscriber is installed.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_from_env("LOG_LEVEL"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// One `serve` per data directory: two would advance the same executions
/// and poll the same queues, so an order could be worked on twice. The lock
/// is the operating system's (`flock`), so it goes away with the process,
/// also on `kill -9`. The read-mostly commands (`orders`, `redrive`, ...)
/// don't take it: SQLite's WAL lets them in beside a running server.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let path = data_dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another `dofs serve` is already using the data directory {}",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// `dofs serve`: everything, until SIGINT/SIGTERM. On a signal the gateway
/// stops accepting, in-flight requests finish, every execution reaches its
/// next persisted state and every poller finishes its batch; then exit 0.
pub async fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let _serve_lock = lock_data_dir(data_dir)?;
    let db = Db::open(data_dir)
        .with_context(|| format!("cannot use data directory {}", data_dir.display()))?;
    let span_store = args.traces.then(crate::traces::SpanStore::new);
    let metric_store = crate::metrics::MetricsStore::new();
    crate::metrics::install(metric_store.clone());
    let telemetry = init_serve_telemetry(span_store.clone(), Some(Arc::new(metric_store.clone())))?;
    let alarm_text = match &args.alarms_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read alarm file {}", path.display()))?,
        None => crate::alarms::ALARMS_JSON.to_owned(),
    };
    let alarm_list = crate::alarms::load(
        &alarm_text,
        &crate::alarms::Bindings::local(),
        args.alarm_period_scale,
    )
    .context("invalid alarm definitions")?;
    let webhook = match &args.alarm_webhook {
        Some(url) => {
            let parsed = reqwest::Url::parse(url)
                .with_context(|| format!("--alarm-webhook {url:?} is not a URL"))?;
            anyhow::ensure!(
                parsed.scheme() == "http",
                "--alarm-webhook {url:?}: only http:// is built in (put a TLS-terminating relay in front)"
            );
            Some(crate::alarms::WebhookConfig {
                url: url.clone(),
                raw: args.alarm_webhook_raw,
            })
        }
        None => None,
    };
    let evaluator = crate::alarms::Evaluator::new(db.clone(), alarm_list, webhook).await?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local_addr = listener.local_addr()?;
    let base_url = format!("http://{local_addr}");

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let queues = Queues::new(db.clone(), Arc::clone(&clock), base_url.clone());
    queues
        .declare(&QueueConfig {
            name: DEAD_LETTER_QUEUE.into(),
            visibility_timeout: args.visibility_timeout,
            redrive: None,
        })
        .await?;
    queues
        .declare(&QueueConfig {
            name: ORDER_QUEUE.into(),
            visibility_timeout: args.visibility_timeout,
            redrive: Some((DEAD_LETTER_QUEUE.into(), args.max_receive_count)),
        })
        .await?;

    let template = match &args.workflow_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read workflow file {}", path.display()))?,
        None => engine::WORKFLOW_ASL.to_owned(),
    };
    let rendered = engine::render_workflow(
        &template,
        &engine::template_vars(&queues, ORDER_QUEUE, DEAD_LETTER_QUEUE),
    )
    .context("cannot render the workflow definition")?;
    let machine =
        Arc::new(StateMachine::from_json(&rendered).context("invalid workflow definition")?);

    let orders = Arc::new(SqliteOrderStore::new(db.clone()));
    let failed_orders = Arc::new(SqliteFailedOrderStore::new(db.clone()));
    let workflow = LocalWorkflow::new(db.clone(), Arc::clone(&clock), Arc::clone(&machine));
    let failures = FailureSimulator::new(args.failure_rate, args.failure_seed)
        .map_err(|e| anyhow::anyhow!("invalid --failure-rate {}: {e}", args.failure_rate))?;
    let functions = Arc::new(
        Functions::new(FunctionDeps {
            orders,
            failed_orders,
            workflow: Arc::new(workflow.clone()),
            clock: Arc::clone(&clock),
            failures,
            timeout: args.function_timeout,
        })
        .with_telemetry(telemetry.clone()),
    );
    let tasks = Arc::new(LocalTasks::new(Arc::clone(&functions), queues.clone()));
    let engine = Engine::new(
        &workflow,
        tasks,
        EngineConfig {
            workers: args.workflow_workers,
            poll_interval: args.poll_interval,
        },
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    background.spawn(engine.run(stop_rx.clone()));
    if let Some(store) = &span_store {
        let flushing = telemetry.clone();
        background.spawn(Arc::clone(store).run_writer(
            db.clone(),
            args.trace_flush_interval,
            move || flushing.flush(),
            stop_rx.clone(),
        ));
    }
    background.spawn(crate::alarms::run_monitor(
        db.clone(),
        metric_store.clone(),
        evaluator,
        crate::alarms::MonitorConfig {
            interval: args.metrics_interval,
            retention: args.metrics_retention,
        },
        stop_rx.clone(),
    ));
    for (queue, function) in [
        (ORDER_QUEUE, FunctionName::FulfillOrder),
        (DEAD_LETTER_QUEUE, FunctionName::DlqHandler),
    ] {
        if args.disable_mapping.contains(&function) {
            tracing::warn!(
                queue,
                function = function.as_str(),
                "event source mapping disabled"
            );
            continue;
        }
        for _ in 0..args.pollers.max(1) {
            background.spawn(pollers::run_mapping(
                db.clone(),
                queues.clone(),
                Arc::clone(&functions),
                MappingConfig {
                    queue: queue.into(),
                    function,
                    batch_size: args.batch_size,
                    batching_window: args.batching_window,
                    poll_interval: args.poll_interval,
                },
                stop_rx.clone(),
            ));
        }
    }

    tracing::info!(
        address = %local_addr,
        data_dir = %data_dir.display(),
        failure_rate = args.failure_rate,
        "dofs is serving"
    );
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "dofs listening on {base_url}")?;
        out.flush()?;
    }

    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight work");
        let _ = stop_tx.send(true);
    });
    let mut server_stop = stop_rx.clone();
    let mut app = gateway::router(Arc::clone(&functions));
    if args.console {
        app = crate::console::router(db.clone()).merge(app);
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = server_stop.wait_for(|stop| *stop).await;
    })
    .await
    .context("the HTTP server failed")?;
    while let Some(joined) = background.join_next().await {
        if let Err(err) = joined {
            tracing::error!(error = %err, "a background task failed");
        }
    }
    // The last spans (those of the work just finished) reach the disk too.
    telemetry.flush();
    if let Some(store) = &span_store {
        if let Err(err) = store.write_pending(&db).await {
            tracing::error!(error = %err, "could not store the last spans");
        }
    }
    if let Err(err) = metric_store.flush(&db, None).await {
        tracing::error!(error = %err, "could not store the last metrics");
    }
    tracing::info!("stopped");
    Ok(())
}

fn open_read(data_dir: &Path) -> anyhow::Result<crate::db::ReadOnlyDb> {
    Db::open_read_only(data_dir).with_context(|| format!("cannot read {}", data_dir.display()))
}

fn print_orders(data_dir: &Path, status: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let status = status.map(str::to_ascii_uppercase);
    let orders = tables::order_summaries(db.conn(), status.as_deref(), Listing::OldestFirst)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&orders)?)?;
        return Ok(());
    }
    writeln!(out, "{:<38} {:<10} UPDATED_AT", "ORDER_ID", "STATUS")?;
    for o in &orders {
        writeln!(
            out,
            "{:<38} {:<10} {}",
            o["order_id"].as_str().unwrap_or_default(),
            o["status"].as_str().unwrap_or_default(),
            o["updated_at"].as_str().unwrap_or_default()
        )?;
    }
    writeln!(out, "{} order(s)", orders.len())?;
    Ok(())
}

/// Everything known about one order, as JSON.
pub fn order_report(conn: &rusqlite::Connection, order_id: &str) -> Result<Value, DbError> {
    let order = tables::load_order(conn, order_id)?;
    let failed = tables::load_failed_order(conn, order_id)?;
    let execution = engine::load_execution(conn, order_id)?;
    let events = engine::load_events(conn, order_id)?;
    let deliveries = pollers::load_deliveries(conn, order_id)?;
    let attempts = pollers::attempts_by_function(&deliveries);
    let trace = crate::traces::order_trace(conn, order_id)?;
    Ok(json!({
        "order_id": order_id,
        "order": order,
        "failed_order": failed,
        "execution": execution.map(|e| json!({
            "status": e.status,
            "started_at": e.started_at,
            "stopped_at": e.stopped_at,
            "error": e.error,
            "cause": e.cause,
            "trace_header": e.trace_header,
            "events": events,
        })),
        "deliveries": deliveries,
        "attempts": attempts,
        "trace": trace,
    }))
}

fn print_order(data_dir: &Path, order_id: &str, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let report = order_report(db.conn(), order_id)?;
    if report["order"].is_null() && report["execution"].is_null() {
        anyhow::bail!("no order {order_id} in {}", data_dir.display());
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let order = &report["order"];
    writeln!(
        out,
        "order {order_id}: {}",
        order["status"].as_str().unwrap_or("(not stored yet)")
    )?;
    if let Some(history) = order["history"].as_array() {
        writeln!(out, "status history:")?;
        for change in history {
            writeln!(
                out,
                "  {}  {}",
                change["at"].as_str().unwrap_or_default(),
                change["status"].as_str().unwrap_or_default()
            )?;
        }
    }
    if let Some(execution) = report["execution"].as_object() {
        writeln!(
            out,
            "execution: {}",
            execution
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )?;
        for event in execution
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            writeln!(
                out,
                "  {}  {:<28} {}",
                event["timestamp"].as_str().unwrap_or_default(),
                event["type"].as_str().unwrap_or_default(),
                event["state"].as_str().unwrap_or_default()
            )?;
        }
    }
    let deliveries = report["deliveries"].as_array().cloned().unwrap_or_default();
    if !deliveries.is_empty() {
        writeln!(out, "queue deliveries:")?;
        for d in deliveries {
            writeln!(
                out,
                "  {}  {:<18} receive #{} -> {}",
                d["at"].as_str().unwrap_or_default(),
                d["function"].as_str().unwrap_or_default(),
                d["receive_count"],
                d["outcome"].as_str().unwrap_or_default()
            )?;
        }
    }
    if let Some(trace) = crate::traces::order_trace(db.conn(), order_id)? {
        writeln!(out, "trace:")?;
        for line in crate::traces::render_waterfall(&trace).lines() {
            writeln!(out, "  {line}")?;
        }
    }
    if let Some(failed) = report["failed_order"].as_object() {
        writeln!(
            out,
            "failed: {} ({})",
            failed
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            failed
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

fn print_queues(data_dir: &Path, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let counts = queue::queue_counts(db.conn(), chrono::Utc::now().timestamp_millis())?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&counts)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:>8} {:>10} {:>8}",
        "QUEUE", "VISIBLE", "IN_FLIGHT", "DELAYED"
    )?;
    for c in counts {
        writeln!(
            out,
            "{:<20} {:>8} {:>10} {:>8}",
            c.name, c.visible, c.in_flight, c.delayed
        )?;
    }
    Ok(())
}

fn print_trace(data_dir: &Path, order_id: &str, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let Some(trace) = crate::traces::order_trace(db.conn(), order_id)? else {
        anyhow::bail!(
            "no trace of order {order_id} in {} (unknown order, or served with --traces off)",
            data_dir.display()
        );
    };
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&trace)?)?;
    } else {
        write!(out, "{}", crate::traces::render_waterfall(&trace))?;
    }
    Ok(())
}

fn print_metrics(data_dir: &Path, since: Duration, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let from = chrono::Utc::now().timestamp_millis() - since.as_millis() as i64;
    let series = crate::metrics::recent(db.conn(), from)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&series)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<15} {:<38} {:<44} {:>8} {:>12} {:>10} {:>10}  LAST",
        "NAMESPACE", "METRIC", "DIMENSIONS", "SAMPLES", "SUM", "AVG", "MAX"
    )?;
    for s in &series {
        let dims: Vec<String> = s
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            out,
            "{:<15} {:<38} {:<44} {:>8} {:>12.2} {:>10.2} {:>10.2}  {}",
            s.namespace,
            s.name,
            dims.join(","),
            s.window.sample_count,
            s.window.sum,
            s.average,
            s.window.max,
            s.last_at
        )?;
    }
    writeln!(
        out,
        "{} series with data in the last {:?}",
        series.len(),
        since
    )?;
    Ok(())
}

fn print_alarms(data_dir: &Path, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let states = crate::alarms::load_states(db.conn())?;
    let history = crate::alarms::load_history(db.conn(), 20)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let report = json!({"alarms": states, "history": history});
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<40} {:<18} {:<25} REASON",
        "ALARM", "STATE", "SINCE"
    )?;
    for a in &states {
        writeln!(
            out,
            "{:<40} {:<18} {:<25} {}",
            a.name, a.state, a.changed_at, a.reason
        )?;
    }
    if !history.is_empty() {
        writeln!(out, "recent transitions:")?;
        for t in &history {
            writeln!(
                out,
                "  {}  {:<40} {} -> {}",
                t.at, t.name, t.old_state, t.new_state
            )?;
        }
    }
    Ok(())
}

async fn redrive(data_dir: &Path) -> anyhow::Result<()> {
    // Read-only first: never create a data directory by accident.
    drop(open_read(data_dir)?);
    let db = Db::open(data_dir)?;
    let queues = Queues::new(db, Arc::new(SystemClock), "http://127.0.0.1");
    let moved = queues.move_messages(DEAD_LETTER_QUEUE, ORDER_QUEUE).await?;
    println!("moved {moved} message(s) from {DEAD_LETTER_QUEUE} to {ORDER_QUEUE}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("abc").is_err());
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
    fn serve_takes_console_on_or_off() {
        let console = |args: &[&str]| serve_args(args).map(|serve| serve.console);
        assert_eq!(console(&["dofs", "serve"]), Ok(true));
        assert_eq!(console(&["dofs", "serve", "--console", "off"]), Ok(false));
        assert!(console(&["dofs", "serve", "--console", "maybe"]).is_err());
    }

    #[test]
    fn one_serve_per_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already using"), "{err}");
        drop(first);
        assert!(lock_data_dir(dir.path()).is_ok());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
