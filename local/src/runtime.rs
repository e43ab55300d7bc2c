//! The composition root: [`Runtime::build`] turns a [`RuntimeConfig`] into a
//! running system's parts — data directory, telemetry, queues, functions,
//! the workflow engine, the event source mappings, the monitor, the gateway
//! and the console — and [`Runtime::run_until`] runs them until a
//! [`Shutdown`]. `dofs serve`, `dofs bench` and the in-process tests start
//! DOFS through it and nothing else.
//!
//! Everything that can be refused is checked before anything is created:
//! settings, the workflow and alarm files, the webhook URL, then the listen
//! address (a port conflict leaves no data directory behind); only then is
//! the data directory locked and opened.
//!
//! Shutdown: the gateway stops accepting and finishes its requests, every
//! execution reaches its next persisted state, every poller finishes its
//! batch; then the last spans and metrics are written.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dofs_asl::StateMachine;
use dofs_core::Clock;
use dofs_telemetry::traces::SpanSink;
use dofs_telemetry::{
    LogFormat, MetricsExport, Telemetry, TelemetryConfig, TelemetryError, TraceExport,
};
use fulfill_order::FailureSimulator;
use tokio::net::TcpListener;

use crate::definitions;
use crate::http_server::ConnectionLimits;
use crate::identity::{FunctionName, DEAD_LETTER_QUEUE, ORDER_QUEUE};
use crate::observability::alarms::{self, Bindings, Evaluator, WebhookConfig};
use crate::observability::logs::LogStore;
use crate::observability::metrics::{MetricsStore, ServiceMetrics};
use crate::observability::monitor::{self, MonitorConfig};
use crate::observability::traces::otlp::{self, BothSinks, OtlpPoster, OtlpSink};
use crate::observability::traces::SpanStore;
use crate::observability::usage::{self, UsageMeter};
use crate::services::api_gateway;
use crate::services::dynamodb::{SqliteFailedOrderStore, SqliteOrderStore};
use crate::services::lambda::{FunctionDeps, FunctionTimeouts, Functions};
use crate::services::sqs::event_source_mapping::{self, MappingConfig};
use crate::services::sqs::{QueueConfig, Queues};
use crate::services::step_functions::{
    self, Engine, EngineConfig, ExpressStarts, LocalTasks, LocalWorkflow,
};
use crate::shutdown::Shutdown;
use crate::store::Db;
use dofs_cost::WorkflowType;

/// Everything a runtime is built from. [`RuntimeConfig::new`] gives the
/// defaults `dofs serve` has (a test pins the two together).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Where the SQLite database lives (created if missing).
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Share of fulfilment attempts that fail, 0 to 1.
    pub failure_rate: f64,
    /// Makes simulated failures deterministic.
    pub failure_seed: Option<u64>,
    /// Visibility timeout of both queues.
    pub visibility_timeout: Duration,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// Most messages per function invocation.
    pub batch_size: usize,
    /// How often idle pollers and the engine look for work.
    pub poll_interval: Duration,
    /// How long a poller waits to fill a batch.
    pub batching_window: Duration,
    /// Concurrent pollers per queue.
    pub pollers: usize,
    /// Executions advanced concurrently.
    pub workflow_workers: usize,
    /// Lambda timeout of each function.
    pub function_timeouts: FunctionTimeouts,
    /// Workflow definition to run instead of the compiled-in one.
    pub workflow_file: Option<PathBuf>,
    /// Store spans (trace context propagates either way).
    pub traces: bool,
    /// Also export spans over OTLP/HTTP to this base URL.
    pub otlp_endpoint: Option<String>,
    /// How often finished spans are written.
    pub trace_flush_interval: Duration,
    /// Where alarm state changes are POSTed, if anywhere.
    pub alarm_webhook: Option<WebhookConfig>,
    /// Multiplies every alarm period (floor one second).
    pub alarm_period_scale: f64,
    /// Alarm definitions to use instead of the compiled-in ones.
    pub alarms_file: Option<PathBuf>,
    /// How often queues are sampled, metrics stored and alarms evaluated.
    pub metrics_interval: Duration,
    /// How long metric points are kept.
    pub metrics_retention: Duration,
    /// How long the history, spans and deliveries of ended orders are kept
    /// (`services::retention`); zero keeps everything.
    pub retention: Duration,
    /// Pack closed histories and quiet spans (`services::compaction`).
    pub compaction: bool,
    /// Serve the web console under `/_dofs/`.
    pub console: bool,
    /// Functions whose event source mapping is disabled.
    pub disabled_mappings: Vec<FunctionName>,
    /// Faults injected from the start (`--fault`).
    pub faults: Vec<crate::faults::FaultSpec>,
    /// Reserved concurrency per function (`--reserved-concurrency`); the
    /// others are not capped.
    pub reserved_concurrency: BTreeMap<FunctionName, u32>,
    /// The workflow's execution timeout instead of its `TimeoutSeconds`.
    pub workflow_timeout: Option<Duration>,
    /// STANDARD or EXPRESS, as Terraform's `workflow_type`.
    pub workflow_type: WorkflowType,
    /// Memory of every function, as Terraform's `function_memory_mb` (what
    /// `dofs cost` bills their duration at).
    pub function_memory_mb: u32,
    /// How many executions an Express start makes (at least once).
    pub express_starts: ExpressStarts,
    /// Log level filter (`info`, `dofs_local=debug,info`, ...).
    pub log_level: String,
    /// `Host` names accepted besides the loopback ones.
    pub allowed_hosts: Vec<String>,
    /// Whether a non-loopback `addr` may be listened on.
    pub allow_remote: bool,
    /// Connection cap and timeouts of the HTTP server.
    pub connection_limits: ConnectionLimits,
}

impl RuntimeConfig {
    /// The defaults of `dofs serve`, on `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            failure_rate: 0.3,
            failure_seed: None,
            visibility_timeout: Duration::from_secs(2),
            max_receive_count: 3,
            batch_size: 10,
            poll_interval: Duration::from_millis(250),
            batching_window: Duration::ZERO,
            pollers: 5,
            workflow_workers: 128,
            function_timeouts: FunctionTimeouts::default(),
            workflow_file: None,
            traces: true,
            otlp_endpoint: None,
            trace_flush_interval: Duration::from_millis(100),
            alarm_webhook: None,
            alarm_period_scale: 1.0,
            alarms_file: None,
            metrics_interval: Duration::from_secs(1),
            metrics_retention: Duration::from_secs(24 * 60 * 60),
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            compaction: true,
            console: true,
            disabled_mappings: Vec::new(),
            faults: Vec::new(),
            reserved_concurrency: BTreeMap::new(),
            workflow_timeout: None,
            workflow_type: WorkflowType::Standard,
            function_memory_mb: usage::DEFAULT_FUNCTION_MEMORY_MB,
            express_starts: ExpressStarts::Once,
            log_level: "info".to_owned(),
            allowed_hosts: Vec::new(),
            allow_remote: false,
            connection_limits: ConnectionLimits::default(),
        }
    }
}

/// A built, not yet running, DOFS: listening already (so [`Runtime::addr`]
/// is known), serving nothing until [`Runtime::run_until`].
pub struct Runtime {
    config: RuntimeConfig,
    listener: TcpListener,
    addr: SocketAddr,
    db: Db,
    /// Held for the runtime's life: one runtime per data directory.
    _lock: std::fs::File,
    telemetry: Telemetry,
    spans: Option<Arc<SpanStore>>,
    /// Posts the spans `--otlp-endpoint` asked for.
    otlp: Option<OtlpPoster>,
    /// Each order's log lines, for `dofs logs`.
    logs: Arc<LogStore>,
    metric_store: MetricsStore,
    service_metrics: ServiceMetrics,
    clock: Arc<dyn Clock>,
    queues: Queues,
    functions: Arc<Functions>,
    engine: Arc<Engine>,
    evaluator: Arc<Evaluator>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("addr", &self.addr)
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds everything and binds the listener. `clock` is the "now" of
    /// every part (`dofs serve` passes [`dofs_core::SystemClock`]).
    /// `install_telemetry` puts the given telemetry configuration in place:
    /// process-wide for `dofs serve` ([`install_process_telemetry`]), for
    /// one thread in tests (`dofs_telemetry::init_scoped_with_writer`).
    pub async fn build(
        config: RuntimeConfig,
        clock: Arc<dyn Clock>,
        install_telemetry: impl FnOnce(TelemetryConfig) -> Result<Telemetry, TelemetryError>,
    ) -> anyhow::Result<Self> {
        // Refusals first, before anything exists on disk.
        let failures = FailureSimulator::new(config.failure_rate, config.failure_seed)
            .map_err(|e| anyhow::anyhow!("invalid failure rate {}: {e}", config.failure_rate))?;
        let alarm_list = load_alarms(&config)?;
        let template = workflow_template(&config)?;
        if let Some(endpoint) = &config.otlp_endpoint {
            check_otlp_endpoint(endpoint)?;
        }
        let listener = bind(&config).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let machine = compile_workflow(
            &template,
            &base_url,
            config.workflow_timeout,
            config.workflow_type,
        )?;

        let lock = lock_data_dir(&config.data_dir)?;
        let db = Db::open(&config.data_dir)
            .with_context(|| format!("cannot use data directory {}", config.data_dir.display()))?;
        let spans = config.traces.then(SpanStore::new);
        let (otlp_sink, otlp) = config.otlp_endpoint.as_deref().map(otlp::exporter).unzip();
        let usage = UsageMeter::new(config.function_memory_mb, Arc::clone(&clock));
        let metric_store = MetricsStore::with_clock(Arc::clone(&clock)).with_usage(usage.clone());
        let service_metrics = ServiceMetrics::new(metric_store.clone());
        let logs = Arc::new(LogStore::new(Arc::clone(&clock)).with_usage(usage.clone()));
        let telemetry = install_telemetry(telemetry_config(
            &config,
            span_sink(spans.as_ref(), otlp_sink),
            &metric_store,
            &logs,
        ))
        .context("cannot start telemetry")?;
        let evaluator = Evaluator::register(
            db.clone(),
            alarm_list,
            config.alarm_webhook.clone(),
            Arc::clone(&clock),
        )
        .await?;
        let queues = build_queues(&config, &db, &clock, base_url, &usage).await?;
        let workflow = LocalWorkflow::new(
            db.clone(),
            Arc::clone(&clock),
            machine,
            service_metrics.clone(),
        )
        .with_type(config.workflow_type, config.express_starts);
        let functions = build_functions(
            &config,
            &db,
            &clock,
            &workflow,
            failures,
            &service_metrics,
            &telemetry,
        );
        let tasks = Arc::new(LocalTasks::new(Arc::clone(&functions), queues.clone()));
        let engine = workflow.engine(
            tasks,
            EngineConfig {
                workers: config.workflow_workers,
                poll_interval: config.poll_interval,
            },
        );
        Ok(Self {
            config,
            listener,
            addr,
            db,
            _lock: lock,
            telemetry,
            spans,
            otlp,
            logs,
            metric_store,
            service_metrics,
            clock,
            queues,
            functions,
            engine,
            evaluator,
        })
    }

    /// Where the gateway listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The data directory's database (tests read it).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Serves until `shutdown` is triggered, then stops in order (see the
    /// module doc).
    pub async fn run_until(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Runtime {
            config,
            listener,
            addr,
            db,
            _lock,
            telemetry,
            spans,
            otlp,
            logs,
            metric_store,
            service_metrics,
            clock,
            queues,
            functions,
            engine,
            evaluator,
        } = self;
        // The console draws each alarm's chart from its definition.
        let console_alarms = Arc::new(evaluator.alarms().to_vec());
        let mut background = tokio::task::JoinSet::new();
        if let Some(poster) = otlp {
            background.spawn(poster.run(shutdown.clone()));
        }
        background.spawn(Arc::clone(&logs).run(db.clone(), shutdown.clone()));
        background.spawn(engine.run(shutdown.clone()));
        if let Some(store) = &spans {
            let flushing = telemetry.clone();
            background.spawn(Arc::clone(store).run_writer(
                db.clone(),
                config.trace_flush_interval,
                move || flushing.flush(),
                shutdown.clone(),
            ));
        }
        background.spawn(monitor::run(
            db.clone(),
            metric_store.clone(),
            evaluator,
            Arc::new(queues.clone()),
            Arc::clone(&clock),
            MonitorConfig {
                interval: config.metrics_interval,
                gauge_interval: Duration::from_secs_f64(60.0 * config.alarm_period_scale)
                    .max(config.metrics_interval),
                retention: config.metrics_retention,
            },
            shutdown.clone(),
        ));
        if config.compaction {
            background.spawn(crate::services::compaction::run(
                db.clone(),
                Arc::clone(&clock),
                shutdown.clone(),
            ));
        }
        if !config.retention.is_zero() {
            background.spawn(crate::services::retention::run(
                db.clone(),
                Arc::clone(&clock),
                config.retention,
                shutdown.clone(),
            ));
        }
        for mapping in mappings(&config) {
            let backoff = event_source_mapping::mapping_backoff(&mapping);
            for _ in 0..config.pollers.max(1) {
                background.spawn(event_source_mapping::run_mapping(
                    db.clone(),
                    queues.clone(),
                    Arc::clone(&functions),
                    mapping.clone(),
                    backoff.clone(),
                    shutdown.clone(),
                ));
            }
        }
        tracing::info!(
            address = %addr,
            data_dir = %config.data_dir.display(),
            failure_rate = config.failure_rate,
            "dofs is serving"
        );

        // Absolute, so the answer says where the data is whatever the
        // asker's working directory.
        let data_dir = std::path::absolute(&config.data_dir).unwrap_or(config.data_dir.clone());
        let health = crate::console::health::Health::new(data_dir, format!("http://{addr}"));
        let console = crate::console::router(
            db.clone(),
            Arc::clone(&clock),
            console_alarms,
            queues.clone(),
            crate::console::FunctionsView {
                faults: functions.faults().clone(),
                disabled_mappings: config.disabled_mappings.clone(),
            },
        );
        let app = http_app(
            &config,
            console,
            &clock,
            &functions,
            (service_metrics, &metric_store),
            health,
        );
        let stop = shutdown.clone();
        crate::http_server::serve(listener, app, config.connection_limits, stop)
            .await
            .context("the HTTP server failed")?;
        while let Some(joined) = background.join_next().await {
            if let Err(err) = joined {
                tracing::error!(error = %err, "a background task failed");
            }
        }
        // The last spans (those of the work just finished) reach the disk too.
        telemetry.flush();
        if let Some(store) = &spans {
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
}

/// The workflow definition's text: `--workflow-file`'s, else the
/// compiled-in one.
fn workflow_template(config: &RuntimeConfig) -> anyhow::Result<String> {
    match &config.workflow_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read workflow file {}", path.display())),
        None => Ok(definitions::WORKFLOW_ASL.to_owned()),
    }
}

/// The listener on `config.addr`, refused on a non-loopback address unless
/// `allow_remote`.
async fn bind(config: &RuntimeConfig) -> anyhow::Result<TcpListener> {
    // Nothing authenticates the local API: reachable from the network,
    // anyone there could read and place orders.
    if !config.addr.ip().is_loopback() {
        anyhow::ensure!(
            config.allow_remote,
            "refusing to listen on {}, which is not a loopback address: the local API and console have no authentication. Pass --allow-remote to do it anyway (and --allow-host with the name clients will use)",
            config.addr
        );
        tracing::warn!(address = %config.addr, "listening on a non-loopback address: anyone who can reach it can read and place orders");
        eprintln!("warning: dofs listens on {}, which is not a loopback address; the API and console have no authentication", config.addr);
    }
    TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))
}

/// The workflow, rendered for the runtime at `base_url` and parsed, with
/// `--workflow-timeout` applied; refused if it calls an integration the
/// local Step Functions does not have.
/// The longest an Express execution runs.
const EXPRESS_MAX_DURATION: Duration = Duration::from_secs(5 * 60);

fn compile_workflow(
    template: &str,
    base_url: &str,
    timeout: Option<Duration>,
    workflow_type: WorkflowType,
) -> anyhow::Result<Arc<StateMachine>> {
    let rendered = definitions::render(template, &definitions::workflow_vars(base_url))
        .context("cannot render the workflow definition")?;
    let mut machine = StateMachine::from_json(&rendered).context("invalid workflow definition")?;
    if let Some(timeout) = timeout {
        machine = machine.with_timeout(timeout);
    }
    // "Express Workflows can run for up to five minutes"
    // (https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html).
    if workflow_type == WorkflowType::Express
        && machine.timeout().is_none_or(|t| t > EXPRESS_MAX_DURATION)
    {
        machine = machine.with_timeout(EXPRESS_MAX_DURATION);
    }
    step_functions::check_resources(&machine)
        .map_err(|e| anyhow::anyhow!("workflow definition not runnable here: {e}"))?;
    Ok(Arc::new(machine))
}

/// Where finished spans go: the span store (if traces are stored), OTLP
/// (if asked for), both, or nowhere.
fn span_sink(store: Option<&Arc<SpanStore>>, otlp: Option<OtlpSink>) -> Option<Arc<dyn SpanSink>> {
    let mut sinks: Vec<Arc<dyn SpanSink>> = Vec::new();
    if let Some(store) = store {
        sinks.push(Arc::clone(store) as _);
    }
    if let Some(otlp) = otlp {
        sinks.push(Arc::new(otlp));
    }
    match sinks.len() {
        0 => None,
        1 => sinks.pop(),
        _ => Some(Arc::new(BothSinks(sinks))),
    }
}

/// An OTLP endpoint is an http(s) base URL (refused before anything exists).
fn check_otlp_endpoint(endpoint: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(endpoint)
        .with_context(|| format!("invalid --otlp-endpoint {endpoint:?}"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && url.host().is_some(),
        "invalid --otlp-endpoint {endpoint:?}: expected an http(s) URL such as http://127.0.0.1:4318"
    );
    Ok(())
}

/// The telemetry every function of the runtime shares: spans to `spans`,
/// metrics to the metric store, each order's log lines to the log store.
fn telemetry_config(
    config: &RuntimeConfig,
    spans: Option<Arc<dyn SpanSink>>,
    metric_store: &MetricsStore,
    logs: &Arc<LogStore>,
) -> TelemetryConfig {
    TelemetryConfig {
        function_name: "dofs".to_owned(),
        metric_dimension: None,
        log_level: config.log_level.clone(),
        traces: match spans {
            Some(sink) => TraceExport::Custom(sink),
            None => TraceExport::Disabled,
        },
        metrics: MetricsExport::Custom(Arc::new(metric_store.clone())),
        log_sink: Some(Arc::clone(logs) as _),
    }
}

/// The queues, with the order queue and its dead-letter queue declared.
async fn build_queues(
    config: &RuntimeConfig,
    db: &Db,
    clock: &Arc<dyn Clock>,
    base_url: String,
    usage: &UsageMeter,
) -> anyhow::Result<Queues> {
    let queues = Queues::new(db.clone(), Arc::clone(clock), base_url).with_usage(usage.clone());
    queues
        .declare(&QueueConfig {
            name: DEAD_LETTER_QUEUE.into(),
            visibility_timeout: config.visibility_timeout,
            redrive: None,
        })
        .await?;
    queues
        .declare(&QueueConfig {
            name: ORDER_QUEUE.into(),
            visibility_timeout: config.visibility_timeout,
            redrive: Some((DEAD_LETTER_QUEUE.into(), config.max_receive_count)),
        })
        .await?;
    Ok(queues)
}

/// The five functions on the local tables and workflow, with the runtime's
/// telemetry.
fn build_functions(
    config: &RuntimeConfig,
    db: &Db,
    clock: &Arc<dyn Clock>,
    workflow: &LocalWorkflow,
    failures: FailureSimulator,
    service_metrics: &ServiceMetrics,
    telemetry: &Telemetry,
) -> Arc<Functions> {
    Arc::new(
        Functions::new(FunctionDeps {
            orders: Arc::new(SqliteOrderStore::new(db.clone()).with_usage(service_metrics.usage())),
            failed_orders: Arc::new(
                SqliteFailedOrderStore::new(db.clone()).with_usage(service_metrics.usage()),
            ),
            workflow: Arc::new(workflow.clone()),
            clock: Arc::clone(clock),
            failures,
            timeouts: config.function_timeouts.clone(),
            metrics: service_metrics.clone(),
            faults: crate::faults::Faults::new(&config.faults),
            reserved_concurrency: config.reserved_concurrency.clone(),
        })
        .with_telemetry(telemetry.clone()),
    )
}

/// Everything the HTTP server answers: the gateway, `/_dofs/health`,
/// `/_dofs/prometheus`, and the console with its faults API unless it is
/// off, behind the refusal of AWS tools and the `Host` guard. `metrics`:
/// what the gateway records into, and the store the scrape reads.
fn http_app(
    config: &RuntimeConfig,
    console: axum::Router,
    clock: &Arc<dyn Clock>,
    functions: &Arc<Functions>,
    (service_metrics, metric_store): (ServiceMetrics, &MetricsStore),
    health: crate::console::health::Health,
) -> axum::Router {
    let mut app = api_gateway::router(Arc::clone(functions), service_metrics, Arc::clone(clock))
        .layer(axum::Extension(api_gateway::BodyReadTimeout(
            config.connection_limits.body_read_timeout,
        )));
    // `/_dofs/` is never the API's: what the console does not route there
    // is answered beside it, not by the gateway (whose metrics would count
    // it).
    app = crate::console::health::router(health, config.console)
        .merge(crate::observability::prometheus::router(
            metric_store.clone(),
        ))
        .merge(app);
    if config.console {
        app = console
            .merge(crate::faults::router(functions.faults().clone()))
            .merge(app);
    }
    // Outside every route, the gateway's metrics layer included: an AWS
    // tool's request, and what a browser asks for on its own, are no API
    // traffic.
    app.layer(axum::middleware::from_fn(
        crate::aws_tools::refuse_aws_requests,
    ))
    .layer(axum::middleware::from_fn(
        crate::console::health::browser_files,
    ))
    .layer(axum::middleware::from_fn_with_state(
        Arc::new(crate::http_guard::HostPolicy::new(&config.allowed_hosts)),
        crate::http_guard::guard,
    ))
}

/// The event source mappings to run: both queues, minus the disabled ones
/// (as `update-event-source-mapping --no-enabled` would leave them).
fn mappings(config: &RuntimeConfig) -> Vec<MappingConfig> {
    [
        (ORDER_QUEUE, FunctionName::FulfillOrder),
        (DEAD_LETTER_QUEUE, FunctionName::DlqHandler),
    ]
    .into_iter()
    .filter(|(queue, function)| {
        let disabled = config.disabled_mappings.contains(function);
        if disabled {
            tracing::warn!(
                queue,
                function = function.as_str(),
                "event source mapping disabled"
            );
        }
        !disabled
    })
    .map(|(queue, function)| MappingConfig {
        queue: queue.into(),
        function,
        batch_size: config.batch_size,
        batching_window: config.batching_window,
        poll_interval: config.poll_interval,
    })
    .collect()
}

fn load_alarms(config: &RuntimeConfig) -> anyhow::Result<Vec<alarms::Alarm>> {
    let text = match &config.alarms_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read alarm file {}", path.display()))?,
        None => definitions::ALARMS_JSON.to_owned(),
    };
    alarms::load(&text, &Bindings::local(), config.alarm_period_scale)
        .context("invalid alarm definitions")
}

/// `dofs serve`'s telemetry: installed for the process, log lines on
/// stderr in `format` (every line inside an order's work carries `order_id`
/// and `trace_id`: as JSON fields, or in the pretty line's span context).
pub fn install_process_telemetry(
    format: LogFormat,
) -> impl FnOnce(TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    move |config| dofs_telemetry::init_with_format(config, format, std::io::stderr)
}

/// One runtime per data directory: two would advance the same executions
/// and poll the same queues, so an order could be worked on twice. The lock
/// is the operating system's (`flock`), so it goes away with the process,
/// also on `kill -9`. The read-mostly commands (`orders`, `redrive`, ...)
/// don't take it: SQLite's WAL lets them in beside a running server.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    // The directory itself, not a lock file in it: a file can be deleted
    // while a server holds it, and the next server would lock a new one.
    let dir = std::fs::File::open(data_dir)
        .with_context(|| format!("cannot open {}", data_dir.display()))?;
    match dir.try_lock() {
        Ok(()) => Ok(dir),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another `dofs serve` is already using the data directory {}",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", data_dir.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_clock() -> Arc<dyn Clock> {
        Arc::new(dofs_core::SystemClock)
    }

    #[test]
    fn one_runtime_per_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already using"), "{err}");
        // Nothing in the directory holds the lock, so nothing there can be
        // deleted to lift it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        drop(first);
        assert!(lock_data_dir(dir.path()).is_ok());
    }

    #[tokio::test]
    async fn an_otlp_endpoint_that_is_no_http_url_is_refused_before_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        for bad in ["127.0.0.1:4318", "ftp://collector:21", "not a url"] {
            let mut config = RuntimeConfig::new(&data_dir);
            config.otlp_endpoint = Some(bad.to_owned());
            config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
            let err = Runtime::build(config, system_clock(), |_| {
                unreachable!("telemetry before validation")
            })
            .await
            .unwrap_err();
            assert!(
                format!("{err:#}").contains("--otlp-endpoint"),
                "{bad}: {err:#}"
            );
            assert!(!data_dir.exists());
        }
    }

    #[tokio::test]
    async fn a_refused_setting_creates_no_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut config = RuntimeConfig::new(&data_dir);
        config.failure_rate = 2.0;
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let err = Runtime::build(config, system_clock(), |_| {
            unreachable!("telemetry before validation")
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("failure rate"), "{err}");
        assert!(!data_dir.exists());
    }

    #[tokio::test]
    async fn a_workflow_calling_an_unsupported_integration_is_refused_before_anything_exists() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wf.json");
        std::fs::write(
            &file,
            r#"{"StartAt": "Wait", "States": {"Wait": {"Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "x", "Payload": {"token.$": "$$.Task.Token"}},
                "End": true}}}"#,
        )
        .unwrap();
        let data_dir = dir.path().join("data");
        let mut config = RuntimeConfig::new(&data_dir);
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.workflow_file = Some(file);
        let err = Runtime::build(config, system_clock(), |_| {
            unreachable!("telemetry before validation")
        })
        .await
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("\"Wait\"") && text.contains("waitForTaskToken"),
            "{text}"
        );
        assert!(!data_dir.exists());
    }

    #[tokio::test]
    async fn a_taken_port_creates_no_data_dir() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut config = RuntimeConfig::new(&data_dir);
        config.addr = taken.local_addr().unwrap();
        let err = Runtime::build(config, system_clock(), |_| {
            unreachable!("telemetry before the bind")
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("cannot listen"), "{err}");
        assert!(!data_dir.exists());
    }

    #[tokio::test]
    async fn a_non_loopback_address_needs_allow_remote() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut config = RuntimeConfig::new(&data_dir);
        config.addr = SocketAddr::from(([0, 0, 0, 0], 0));
        let err = Runtime::build(config, system_clock(), |_| {
            unreachable!("telemetry before the bind")
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("--allow-remote"), "{err}");
        assert!(!data_dir.exists());
    }
}
