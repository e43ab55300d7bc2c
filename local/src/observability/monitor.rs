//! The loop that makes metrics and alarms live: every interval it flushes
//! the metric aggregate to the store, prunes what is past retention, and
//! evaluates the alarms; every gauge interval it samples the SQS gauges.
//! SQS publishes its queue metrics once a minute
//! (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/monitoring-using-cloudwatch.html>),
//! so `dofs serve` samples them once per (alarm-scaled) minute: a message
//! that sits in a queue for a second is seen about as rarely as on AWS, and
//! a `Maximum` over a period has as many samples. On shutdown, one last
//! flush.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dofs_core::Clock;

use crate::observability::alarms::Evaluator;
use crate::observability::metrics::MetricsStore;
use crate::shutdown::Shutdown;
use crate::store::{Db, DbError};

/// A stand-in that publishes gauges on every tick, as SQS publishes its
/// queue metrics to CloudWatch by itself (the monitor only asks).
#[async_trait::async_trait]
pub trait Gauges: Send + Sync {
    async fn sample(&self, store: &MetricsStore, now: DateTime<Utc>) -> Result<(), DbError>;
}

/// How the metrics-and-alarms loop runs.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Flush metrics and evaluate alarms this often.
    pub interval: Duration,
    /// Sample the queue gauges this often (at most once per `interval`).
    pub gauge_interval: Duration,
    /// Metric points older than this are deleted.
    pub retention: Duration,
}

/// The loop behind `dofs serve`'s metrics and alarms: sample the SQS
/// gauges, flush the metric aggregate, evaluate the alarms; until `stop`,
/// then one last flush.
pub async fn run(
    db: Db,
    store: MetricsStore,
    evaluator: Arc<Evaluator>,
    gauges: Arc<dyn Gauges>,
    clock: Arc<dyn Clock>,
    config: MonitorConfig,
    stop: Shutdown,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    let mut sampled: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.triggered() => break,
        }
        ticks += 1;
        let due = sampled.is_none_or(|at| at.elapsed() >= config.gauge_interval);
        if due {
            sampled = Some(tokio::time::Instant::now());
            if let Err(err) = gauges.sample(&store, clock.now()).await {
                tracing::warn!(error = %err, "could not sample the gauges");
            }
        }
        // Pruning is a range delete; once a minute is plenty.
        let prune = (ticks % 60 == 1)
            .then(|| clock.now().timestamp_millis() - config.retention.as_millis() as i64);
        if let Err(err) = store.flush(&db, prune).await {
            tracing::warn!(error = %err, "could not store metrics");
            continue;
        }
        if let Err(err) = evaluator.evaluate_all(clock.now()).await {
            tracing::warn!(error = %err, "could not evaluate the alarms");
        }
    }
    if let Err(err) = store.flush(&db, None).await {
        tracing::warn!(error = %err, "could not store the last metrics");
    }
}
