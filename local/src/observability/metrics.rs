//! Local CloudWatch metrics: the custom EMF metrics the functions emit and
//! the AWS service metrics the alarms watch, stored in SQLite in one-second
//! buckets so that `dofs metrics`, the console and the alarms
//! ([`crate::observability::alarms`]) read the same numbers.
//!
//! Where the values come from:
//! - **Custom metrics** (namespace `DOFS`, dimension `function`): the
//!   `dofs-telemetry` EMF recorder hands every flushed value to
//!   [`MetricsStore`] through its [`MetricsSink`] hook, with the function read
//!   from the invocation span, exactly the values the EMF lines would carry.
//! - **AWS service metrics**, produced by the local stand-ins with the names,
//!   units and dimensions AWS uses: `AWS/Lambda` Invocations / Errors /
//!   Duration per `FunctionName` ([`crate::services::lambda`]), `AWS/ApiGateway`
//!   Count / 4xx / 5xx / Latency per `ApiId` ([`api_gateway_layer`]),
//!   `AWS/States` ExecutionsStarted / Succeeded / Failed / TimedOut per
//!   `StateMachineArn` ([`crate::services::step_functions`]), and `AWS/SQS`
//!   ApproximateNumberOfMessagesVisible / NotVisible / AgeOfOldestMessage per
//!   `QueueName`, sampled from the queues on every tick like the SQS service
//!   samples them (a [`crate::observability::monitor::Gauges`] source).
//!
//! The stand-ins record through a [`ServiceMetrics`] handle they are given
//! at construction, not a process global, so two runtimes can share a
//! process (the in-process tests do).
//!
//! Cost: a value is folded into an in-memory aggregate (count, sum, min,
//! max) keyed by series and second; [`MetricsStore::flush`] writes all of
//! them in one job of the group-commit writer. Never a write per increment.
//!
//! Distributions: a series whose unit is a duration (`Microseconds`,
//! `Milliseconds`, `Seconds`: Lambda `Duration`, API Gateway `Latency`,
//! the custom `FulfillmentLatency`, …; see [`is_distribution`]) also keeps,
//! per bucket, a [`Histogram`] of its values in the `histogram` column, so
//! that a period's percentiles are read from the merged histograms of its
//! buckets ([`period_histogram`]) instead of estimated. Counts, rates and
//! gauges (`Count`, `Bytes`, `Percent`, …) are summed, averaged or maxed,
//! never asked for a percentile by the dashboards, and keep no histogram
//! (no bytes spent on them). A bucket's histogram, when there is one,
//! always counts every sample of the bucket: a flush merges the stored
//! histogram with the new one in the same write job, and a bucket stored
//! without one (written before migration 9) stays without one, so a
//! reader can trust a histogram it finds or fall back to an estimate.

use crate::observability::usage::UsageMeter;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use dofs_core::Clock;
use dofs_telemetry::{MetricSample, MetricsSink};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::observability::histogram::Histogram;
use crate::store::{Db, DbError};

/// Width of a stored bucket. Alarm periods (even scaled down) are whole
/// seconds, so a second is the finest resolution anyone reads.
pub const BUCKET_MS: i64 = 1_000;

/// The custom metrics' namespace and dimension (as in `dashboards/metrics.json`).
pub const CUSTOM_NAMESPACE: &str = dofs_telemetry::metric::NAMESPACE;

/// Which series a value belongs to: CloudWatch's identity of a metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SeriesKey {
    pub namespace: String,
    pub name: String,
    /// Dimension name → value, sorted (so the stored text is canonical).
    pub dimensions: BTreeMap<String, String>,
}

impl SeriesKey {
    pub fn new(namespace: &str, name: &str, dimensions: &[(&str, &str)]) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions: dimensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The dimensions as stored: a JSON object with sorted keys.
    pub fn dimensions_text(&self) -> String {
        dimensions_text(&self.dimensions)
    }
}

/// Canonical stored form of a dimension map.
pub fn dimensions_text(dimensions: &BTreeMap<String, String>) -> String {
    // A BTreeMap serializes in key order and cannot fail.
    serde_json::to_string(dimensions).unwrap_or_else(|_| "{}".to_owned())
}

/// CloudWatch's statistic set for a bucket or a period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub sample_count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// The statistic columns (`sample_count`, `sum`, `min`, `max`) of a
    /// `metric_points` row.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            sample_count: row.get::<_, i64>("sample_count")?.max(0) as u64,
            sum: row.get("sum")?,
            min: row.get("min")?,
            max: row.get("max")?,
        })
    }

    pub fn one(value: f64) -> Self {
        Self {
            sample_count: 1,
            sum: value,
            min: value,
            max: value,
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.sample_count += other.sample_count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn average(&self) -> f64 {
        if self.sample_count == 0 {
            0.0
        } else {
            self.sum / self.sample_count as f64
        }
    }
}

/// Whether the values of a series in `unit` are a distribution whose
/// percentiles are asked for, and so get a histogram per bucket: the
/// CloudWatch duration units (see the module doc for why only those).
pub fn is_distribution(unit: &str) -> bool {
    matches!(unit, "Microseconds" | "Milliseconds" | "Seconds")
}

/// One stored (or pending) bucket: its statistic set and, for a
/// distribution, the histogram of every one of its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub stats: Stats,
    pub histogram: Option<Histogram>,
}

impl Bucket {
    /// A bucket of the one value `value` of a series in `unit`.
    pub fn one(value: f64, unit: &str) -> Self {
        Self {
            stats: Stats::one(value),
            histogram: is_distribution(unit).then(|| Histogram::of(value)),
        }
    }

    /// Adds `other`'s samples. The histogram survives only if both sides
    /// have one: a histogram that missed some samples would be wrong.
    pub fn merge(&mut self, other: &Bucket) {
        self.stats.merge(&other.stats);
        self.histogram = match (self.histogram.take(), &other.histogram) {
            (Some(mut mine), Some(theirs)) => {
                mine.merge(theirs);
                Some(mine)
            }
            _ => None,
        };
    }

    /// The bucket columns of a `metric_points` row (`histogram` may be a
    /// NULL the query selected in its place). A histogram that does not
    /// decode, or does not count the bucket's samples, is dropped: the
    /// readers then estimate, as for a bucket that never had one.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let stats = Stats::from_row(row)?;
        let histogram = row
            .get::<_, Option<Vec<u8>>>("histogram")?
            .and_then(|bytes| Histogram::decode(&bytes).ok())
            .filter(|h| h.count() == stats.sample_count);
        Ok(Self { stats, histogram })
    }
}

/// The merged histogram of a period's buckets, if every bucket with
/// samples has one; `None` otherwise (no samples, a series that is not a
/// distribution, or buckets written before histograms were kept).
pub fn period_histogram(buckets: &[Bucket]) -> Option<Histogram> {
    let mut merged = Histogram::default();
    for bucket in buckets.iter().filter(|b| b.stats.sample_count > 0) {
        merged.merge(bucket.histogram.as_ref()?);
    }
    (!merged.is_empty()).then_some(merged)
}

/// One series waiting for the next flush.
struct PendingSeries {
    key: SeriesKey,
    unit: String,
    buckets: BTreeMap<i64, Bucket>,
}

/// Series filed by a hash of their identity, so that recording a value of
/// a known series allocates nothing (this runs for every invocation,
/// request and execution); a hash collision only makes a list of two.
#[derive(Default)]
struct Pending {
    series: HashMap<u64, Vec<PendingSeries>>,
    buckets: usize,
}

fn identity_hash(namespace: &str, name: &str, dimensions: &[(&str, &str)]) -> u64 {
    let mut hasher = DefaultHasher::new();
    namespace.hash(&mut hasher);
    name.hash(&mut hasher);
    for (k, v) in dimensions {
        k.hash(&mut hasher);
        v.hash(&mut hasher);
    }
    hasher.finish()
}

fn same_series(key: &SeriesKey, namespace: &str, name: &str, dimensions: &[(&str, &str)]) -> bool {
    key.namespace == namespace
        && key.name == name
        && key.dimensions.len() == dimensions.len()
        && key
            .dimensions
            .iter()
            .zip(dimensions)
            .all(|((k, v), (dk, dv))| k == dk && v == dv)
}

impl Pending {
    /// Adds `values` to the series' bucket starting at `bucket_ms`,
    /// creating either as needed.
    fn add(
        &mut self,
        namespace: &str,
        name: &str,
        dimensions: &[(&str, &str)],
        unit: &str,
        bucket_ms: i64,
        values: Bucket,
    ) {
        let hash = identity_hash(namespace, name, dimensions);
        let list = self.series.entry(hash).or_default();
        let index = match list
            .iter()
            .position(|s| same_series(&s.key, namespace, name, dimensions))
        {
            Some(i) => i,
            None => {
                list.push(PendingSeries {
                    key: SeriesKey::new(namespace, name, dimensions),
                    unit: unit.to_owned(),
                    buckets: BTreeMap::new(),
                });
                list.len() - 1
            }
        };
        let created = match list[index].buckets.entry(bucket_ms) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(values);
                true
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                slot.get_mut().merge(&values);
                false
            }
        };
        if created {
            self.buckets += 1;
        }
    }
}

/// The in-memory aggregate in front of the `metric_points` table; cheap to
/// clone (clones share it).
#[derive(Clone)]
pub struct MetricsStore {
    pending: Arc<Mutex<Pending>>,
    totals: Arc<Mutex<BTreeMap<SeriesKey, SeriesTotal>>>,
    clock: Arc<dyn Clock>,
    /// Flushed with the metrics, and reached through them by every service.
    usage: UsageMeter,
}

/// One series since the store was made (the process started): what a
/// Prometheus scrape reads ([`crate::observability::prometheus`]). Folded
/// in at each flush, so it is as fresh as the stored buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesTotal {
    pub unit: String,
    /// Every value so far.
    pub all: Stats,
    /// The newest bucket's start (ms) and statistics: a sampled gauge's
    /// current value is its `max`.
    pub latest_bucket_ms: i64,
    pub latest: Stats,
}

impl std::fmt::Debug for MetricsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsStore").finish_non_exhaustive()
    }
}

impl MetricsStore {
    /// A store whose "now" is `clock`'s (the runtime's).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            pending: Arc::default(),
            totals: Arc::default(),
            clock,
            usage: UsageMeter::off(),
        }
    }

    /// The store, also flushing `usage`.
    pub fn with_usage(mut self, usage: UsageMeter) -> Self {
        self.usage = usage;
        self
    }

    /// The meter of billable units.
    pub fn usage(&self) -> &UsageMeter {
        &self.usage
    }

    /// Now, by the store's clock, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Records `value` now.
    pub fn record(&self, key: SeriesKey, unit: &str, value: f64) {
        self.record_at(key, unit, value, self.now_ms());
    }

    /// Records `value` at `at_ms` (milliseconds since the epoch).
    pub fn record_at(&self, key: SeriesKey, unit: &str, value: f64, at_ms: i64) {
        let dimensions: Vec<(&str, &str)> = key
            .dimensions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.record_parts(&key.namespace, &key.name, &dimensions, unit, value, at_ms);
    }

    /// [`Self::record_at`] without building a [`SeriesKey`] (the hot path).
    pub fn record_parts(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(&str, &str)],
        unit: &str,
        value: f64,
        at_ms: i64,
    ) {
        if !value.is_finite() {
            return;
        }
        let sorted;
        let dimensions = if dimensions.windows(2).all(|w| w[0].0 <= w[1].0) {
            dimensions
        } else {
            let mut copy = dimensions.to_vec();
            copy.sort_unstable();
            sorted = copy;
            &sorted[..]
        };
        let bucket = at_ms - at_ms.rem_euclid(BUCKET_MS);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(
                namespace,
                name,
                dimensions,
                unit,
                bucket,
                Bucket::one(value, unit),
            );
    }

    /// Every series flushed so far, with its running totals.
    pub fn totals(&self) -> Vec<(SeriesKey, SeriesTotal)> {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, total)| (key.clone(), total.clone()))
            .collect()
    }

    fn add_to_totals(&self, flushed: &Pending) {
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        for series in flushed.series.values().flatten() {
            let Some(first) = series.buckets.values().next().map(|b| b.stats) else {
                continue;
            };
            let total = totals
                .entry(series.key.clone())
                .or_insert_with(|| SeriesTotal {
                    unit: series.unit.clone(),
                    all: Stats {
                        sample_count: 0,
                        sum: 0.0,
                        min: first.min,
                        max: first.max,
                    },
                    latest_bucket_ms: i64::MIN,
                    latest: first,
                });
            for (&bucket, Bucket { stats, .. }) in &series.buckets {
                total.all.merge(stats);
                // A second can be flushed in parts (values recorded after
                // a flush in the same second).
                match bucket.cmp(&total.latest_bucket_ms) {
                    std::cmp::Ordering::Greater => {
                        total.latest_bucket_ms = bucket;
                        total.latest = *stats;
                    }
                    std::cmp::Ordering::Equal => total.latest.merge(stats),
                    std::cmp::Ordering::Less => {}
                }
            }
        }
    }

    /// How many series-buckets wait for the next flush.
    pub fn pending_len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .buckets
    }

    /// Writes everything recorded so far in one group-commit job (merging
    /// into buckets already stored) and drops points older than
    /// `retain_since_ms`. Returns how many buckets were written. On error the
    /// values are put back, so a busy database delays metrics but loses none.
    pub async fn flush(&self, db: &Db, retain_since_ms: Option<i64>) -> Result<usize, DbError> {
        self.usage.flush(db).await?;
        let taken =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if taken.buckets == 0 && retain_since_ms.is_none() {
            return Ok(0);
        }
        let rows: Vec<(String, String, String, String, i64, Bucket)> = taken
            .series
            .values()
            .flatten()
            .flat_map(|s| {
                let dimensions = s.key.dimensions_text();
                s.buckets.iter().map(move |(bucket_ms, bucket)| {
                    (
                        s.key.namespace.clone(),
                        s.key.name.clone(),
                        dimensions.clone(),
                        s.unit.clone(),
                        *bucket_ms,
                        bucket.clone(),
                    )
                })
            })
            .collect();
        let result = db
            .write(move |conn| {
                // SQL cannot add two histograms, so the stored one is read,
                // merged and written back here, inside the write job: no
                // other write can come between the read and the upsert.
                let mut stored_histogram = conn.prepare_cached(
                    "SELECT histogram FROM metric_points
                     WHERE namespace = ?1 AND name = ?2 AND dimensions = ?3 AND bucket_ms = ?4",
                )?;
                let mut upsert = conn.prepare_cached(
                    "INSERT INTO metric_points(namespace, name, dimensions, bucket_ms, unit,
                         sample_count, sum, min, max, histogram)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT(namespace, name, dimensions, bucket_ms) DO UPDATE SET
                         unit = excluded.unit,
                         sample_count = sample_count + excluded.sample_count,
                         sum = sum + excluded.sum,
                         min = min(min, excluded.min),
                         max = max(max, excluded.max),
                         histogram = excluded.histogram",
                )?;
                for (namespace, name, dimensions, unit, bucket_ms, bucket) in &rows {
                    let histogram = match &bucket.histogram {
                        None => None,
                        Some(new) => {
                            let stored: Option<Option<Vec<u8>>> = stored_histogram
                                .query_row(params![namespace, name, dimensions, bucket_ms], |r| {
                                    r.get(0)
                                })
                                .optional()?;
                            merge_stored(stored, new).map(|h| h.encode())
                        }
                    };
                    let stats = &bucket.stats;
                    upsert.execute(params![
                        namespace,
                        name,
                        dimensions,
                        bucket_ms,
                        unit,
                        stats.sample_count as i64,
                        stats.sum,
                        stats.min,
                        stats.max,
                        histogram,
                    ])?;
                }
                if let Some(since) = retain_since_ms {
                    conn.execute("DELETE FROM metric_points WHERE bucket_ms < ?1", [since])?;
                }
                Ok(rows.len())
            })
            .await;
        if result.is_ok() {
            self.add_to_totals(&taken);
        } else {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for series in taken.series.into_values().flatten() {
                let dimensions: Vec<(&str, &str)> = series
                    .key
                    .dimensions
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                for (bucket_ms, bucket) in series.buckets {
                    pending.add(
                        &series.key.namespace,
                        &series.key.name,
                        &dimensions,
                        &series.unit,
                        bucket_ms,
                        bucket,
                    );
                }
            }
        }
        result
    }
}

/// The histogram a bucket holds after `new` is flushed into it, given what
/// the row stores: `None` for no row yet, `Some(None)` for a row without a
/// histogram. A row without one (or with one that no longer decodes) has
/// samples no histogram counts, so the merged bucket has none either.
fn merge_stored(stored: Option<Option<Vec<u8>>>, new: &Histogram) -> Option<Histogram> {
    match stored {
        None => Some(new.clone()),
        Some(None) => None,
        Some(Some(bytes)) => {
            let mut merged = Histogram::decode(&bytes).ok()?;
            merged.merge(new);
            Some(merged)
        }
    }
}

/// The custom metrics, from the telemetry EMF recorder.
/// Like EMF on Lambda, the `function` dimension is the deployed function
/// name (`dofs-fulfill_order`), which is what the alarms and dashboards
/// select; the invocation names its function by crate name.
impl MetricsSink for MetricsStore {
    fn emf_bytes(&self, function: &str, bytes: usize) {
        self.usage.emf(function, bytes);
    }

    fn record(&self, sample: &MetricSample<'_>) {
        let deployed = crate::identity::FunctionName::resolve(sample.function)
            .map(crate::identity::FunctionName::deployed_name);
        self.record_parts(
            CUSTOM_NAMESPACE,
            sample.name,
            &[(
                dofs_telemetry::metric::FUNCTION_DIMENSION,
                deployed.as_deref().unwrap_or(sample.function),
            )],
            sample.unit,
            sample.value,
            self.now_ms(),
        );
    }
}

/// An `AWS/States` execution counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionMetric {
    Started,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMetric::Started => "ExecutionsStarted",
            ExecutionMetric::Succeeded => "ExecutionsSucceeded",
            ExecutionMetric::Failed => "ExecutionsFailed",
            ExecutionMetric::TimedOut => "ExecutionsTimedOut",
            ExecutionMetric::Aborted => "ExecutionsAborted",
        }
    }
}

/// Where the stand-ins record the AWS service metrics, with the names,
/// units and dimensions AWS uses. A cloneable handle handed to each
/// stand-in that emits (lambda, step functions, the gateway layer), so two
/// runtimes in one process keep their metrics apart; [`ServiceMetrics::off`]
/// records nothing (CLI commands, tests that don't look).
#[derive(Clone, Debug, Default)]
pub struct ServiceMetrics {
    store: Option<MetricsStore>,
}

impl ServiceMetrics {
    /// Records into `store`.
    pub fn new(store: MetricsStore) -> Self {
        Self { store: Some(store) }
    }

    /// Records nothing.
    pub fn off() -> Self {
        Self::default()
    }

    fn record(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(&str, &str)],
        unit: &str,
        value: f64,
    ) {
        if let Some(store) = &self.store {
            let now = store.now_ms();
            store.record_parts(namespace, name, dimensions, unit, value, now);
        }
    }

    /// The meter of billable units (off when metrics are).
    pub fn usage(&self) -> UsageMeter {
        self.store
            .as_ref()
            .map(|store| store.usage().clone())
            .unwrap_or_default()
    }

    /// `AWS/Lambda` Invocations, Errors and Duration of one invocation of the
    /// function deployed as `function_name`.
    pub fn lambda_invocation(&self, function_name: &str, failed: bool, duration_ms: f64) {
        let dims = [("FunctionName", function_name)];
        self.record("AWS/Lambda", "Invocations", &dims, "Count", 1.0);
        self.record("AWS/Lambda", "Errors", &dims, "Count", flag(failed));
        self.record("AWS/Lambda", "Duration", &dims, "Milliseconds", duration_ms);
    }

    /// A throttled invocation: `AWS/Lambda Throttles` (Lambda counts it
    /// neither in Invocations nor in Errors).
    pub fn lambda_throttle(&self, function_name: &str) {
        let dims = [("FunctionName", function_name)];
        self.record("AWS/Lambda", "Throttles", &dims, "Count", 1.0);
    }

    /// `AWS/Lambda ConcurrentExecutions` as one invocation starts: the
    /// function's invocations in flight, this one included (alarms and
    /// dashboards read its Maximum).
    pub fn lambda_concurrency(&self, function_name: &str, concurrent: u32) {
        let dims = [("FunctionName", function_name)];
        self.record(
            "AWS/Lambda",
            "ConcurrentExecutions",
            &dims,
            "Count",
            f64::from(concurrent),
        );
    }

    /// An `AWS/States` execution counter of the local state machine.
    pub fn execution(&self, metric: ExecutionMetric) {
        let arn = crate::identity::state_machine_arn();
        self.record(
            "AWS/States",
            metric.as_str(),
            &[("StateMachineArn", &arn)],
            "Count",
            1.0,
        );
    }

    /// `AWS/ApiGateway` Count, 4xx, 5xx (0 or 1 each, so Sum is the number
    /// and Average the rate, as in CloudWatch) and Latency of one response.
    pub fn api_response(&self, status: u16, latency_ms: f64) {
        let dims = [("ApiId", crate::identity::API_ID)];
        self.record("AWS/ApiGateway", "Count", &dims, "Count", 1.0);
        let client_error = (400..500).contains(&status);
        self.record("AWS/ApiGateway", "4xx", &dims, "Count", flag(client_error));
        self.record("AWS/ApiGateway", "5xx", &dims, "Count", flag(status >= 500));
        self.record(
            "AWS/ApiGateway",
            "Latency",
            &dims,
            "Milliseconds",
            latency_ms,
        );
    }
}

fn flag(hit: bool) -> f64 {
    if hit {
        1.0
    } else {
        0.0
    }
}

/// The API Gateway metrics of every response, including those made by the
/// gateway's own layers (413). Install with `from_fn_with_state`.
pub async fn api_gateway_layer(
    axum::extract::State(metrics): axum::extract::State<ServiceMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.api_response(
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0,
    );
    response
}

/// The stored one-second buckets of `key`, with their histograms, in each
/// period of `period_ms` starting at `from_ms` (`count` periods), oldest
/// first within a period: what every statistic of a period is computed from.
pub fn period_buckets(
    conn: &Connection,
    key: &SeriesKey,
    from_ms: i64,
    period_ms: i64,
    count: usize,
) -> Result<Vec<Vec<Bucket>>, DbError> {
    read_periods(
        conn,
        "SELECT bucket_ms, sample_count, sum, min, max, histogram FROM metric_points
         WHERE namespace = ?1 AND name = ?2 AND dimensions = ?3 AND bucket_ms >= ?4 AND bucket_ms < ?5
         ORDER BY bucket_ms",
        key,
        from_ms,
        period_ms,
        count,
    )
}

/// [`period_buckets`] by `sql`, which selects the bucket columns of one
/// series' rows in a time range.
fn read_periods(
    conn: &Connection,
    sql: &str,
    key: &SeriesKey,
    from_ms: i64,
    period_ms: i64,
    count: usize,
) -> Result<Vec<Vec<Bucket>>, DbError> {
    let mut out = vec![Vec::new(); count];
    if count == 0 || period_ms <= 0 {
        return Ok(out);
    }
    let to_ms = from_ms + period_ms * count as i64;
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(
        params![
            key.namespace,
            key.name,
            key.dimensions_text(),
            from_ms,
            to_ms
        ],
        |r| Ok((r.get::<_, i64>("bucket_ms")?, Bucket::from_row(r)?)),
    )?;
    for row in rows {
        let (bucket_ms, bucket) = row?;
        let index = ((bucket_ms - from_ms) / period_ms) as usize;
        if let Some(period) = out.get_mut(index) {
            period.push(bucket);
        }
    }
    Ok(out)
}

/// The statistic set of `key` in each period of `period_ms` starting at
/// `from_ms` (`count` periods); `None` where nothing was recorded.
pub fn period_stats(
    conn: &Connection,
    key: &SeriesKey,
    from_ms: i64,
    period_ms: i64,
    count: usize,
) -> Result<Vec<Option<Stats>>, DbError> {
    // The alarms read only the statistic set: the histograms are not read
    // (nor decoded) on their every evaluation.
    let periods = read_periods(
        conn,
        "SELECT bucket_ms, sample_count, sum, min, max, NULL AS histogram FROM metric_points
         WHERE namespace = ?1 AND name = ?2 AND dimensions = ?3 AND bucket_ms >= ?4 AND bucket_ms < ?5
         ORDER BY bucket_ms",
        key,
        from_ms,
        period_ms,
        count,
    )?;
    Ok(periods
        .into_iter()
        .map(|buckets| {
            let mut buckets = buckets.into_iter();
            let mut merged = buckets.next()?.stats;
            for bucket in buckets {
                merged.merge(&bucket.stats);
            }
            Some(merged)
        })
        .collect())
}

/// One series over a recent window, for `dofs metrics` and the console.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesSummary {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    pub unit: String,
    /// Statistics over the whole window.
    pub window: Stats,
    pub average: f64,
    /// The latest second with data, and its statistics.
    pub last_at: String,
    pub last: Stats,
}

/// One whole `metric_points` row, its dimensions still the stored JSON.
struct PointRow {
    namespace: String,
    name: String,
    dimensions: String,
    unit: String,
    bucket_ms: i64,
    stats: Stats,
}

impl PointRow {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            namespace: row.get("namespace")?,
            name: row.get("name")?,
            dimensions: row.get("dimensions")?,
            unit: row.get("unit")?,
            bucket_ms: row.get("bucket_ms")?,
            stats: Stats::from_row(row)?,
        })
    }
}

/// Every series with data since `since_ms`, sorted by namespace, name and dimensions.
pub fn recent(conn: &Connection, since_ms: i64) -> Result<Vec<SeriesSummary>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT namespace, name, dimensions, unit, bucket_ms, sample_count, sum, min, max
         FROM metric_points WHERE bucket_ms >= ?1
         ORDER BY namespace, name, dimensions, bucket_ms",
    )?;
    let mut out: Vec<SeriesSummary> = Vec::new();
    let rows = stmt.query_map([since_ms], PointRow::from_row)?;
    for row in rows {
        let PointRow {
            namespace,
            name,
            dimensions,
            unit,
            bucket_ms: bucket,
            stats,
        } = row?;
        let dimensions: BTreeMap<String, String> = serde_json::from_str(&dimensions)?;
        let last_at = dofs_core::timestamp::format_millis(bucket).unwrap_or_default();
        match out.last_mut() {
            Some(s) if s.namespace == namespace && s.name == name && s.dimensions == dimensions => {
                s.window.merge(&stats);
                s.average = s.window.average();
                s.unit = unit;
                s.last = stats;
                s.last_at = last_at;
            }
            _ => out.push(SeriesSummary {
                namespace,
                name,
                dimensions,
                unit,
                window: stats,
                average: stats.average(),
                last_at,
                last: stats,
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose clock stands still at 2023-11-14T22:13:20Z (the tests
    /// give their samples' times; only the sink reads the clock).
    fn store() -> MetricsStore {
        let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        MetricsStore::with_clock(Arc::new(dofs_core::testkit::FixedClock(now)))
    }

    fn key() -> SeriesKey {
        SeriesKey::new(
            "AWS/Lambda",
            "Errors",
            &[("FunctionName", "dofs-validator")],
        )
    }

    #[test]
    fn dimensions_are_stored_in_a_canonical_order() {
        let a = SeriesKey::new("N", "M", &[("b", "2"), ("a", "1")]);
        let b = SeriesKey::new("N", "M", &[("a", "1"), ("b", "2")]);
        assert_eq!(a.dimensions_text(), r#"{"a":"1","b":"2"}"#);
        assert_eq!(a, b);
    }

    #[tokio::test]
    async fn values_are_aggregated_per_second_and_merged_across_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let store = store();
        let t0 = 1_700_000_000_000;
        store.record_at(key(), "Count", 1.0, t0 + 10);
        store.record_at(key(), "Count", 0.0, t0 + 990);
        store.record_at(key(), "Count", 1.0, t0 + 1_000);
        store.record_at(key(), "Count", f64::NAN, t0 + 1_000);
        assert_eq!(store.pending_len(), 2);
        assert_eq!(store.flush(&db, None).await.unwrap(), 2);
        assert_eq!(store.pending_len(), 0);
        store.record_at(key(), "Count", 5.0, t0 + 500);
        store.flush(&db, None).await.unwrap();

        let k = key();
        let stats = db
            .read(move |c| period_stats(c, &k, t0, 1_000, 3))
            .await
            .unwrap();
        let first = stats[0].unwrap();
        assert_eq!(first.sample_count, 3);
        assert_eq!((first.sum, first.min, first.max), (6.0, 0.0, 5.0));
        assert_eq!(stats[1].unwrap().sum, 1.0);
        assert!(stats[2].is_none());
        let k = key();
        let whole = db
            .read(move |c| period_stats(c, &k, t0, 2_000, 1))
            .await
            .unwrap();
        assert_eq!(whole[0].unwrap().sample_count, 4);

        let summary = db.read(move |c| recent(c, t0)).await.unwrap();
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].window.sum, 7.0);
        assert_eq!(summary[0].last.sum, 1.0);
        assert_eq!(summary[0].dimensions["FunctionName"], "dofs-validator");

        // Retention drops old buckets.
        store.flush(&db, Some(t0 + 1_000)).await.unwrap();
        let k = key();
        let stats = db
            .read(move |c| period_stats(c, &k, t0, 1_000, 2))
            .await
            .unwrap();
        assert!(stats[0].is_none());
        assert!(stats[1].is_some());
    }

    fn latency_key() -> SeriesKey {
        SeriesKey::new(
            "AWS/Lambda",
            "Duration",
            &[("FunctionName", "dofs-validator")],
        )
    }

    #[tokio::test]
    async fn flushing_twice_into_one_bucket_merges_the_histograms() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let store = store();
        let t0 = 1_700_000_000_000;
        for ms in [1.0, 2.0, 3.0] {
            store.record_at(latency_key(), "Milliseconds", ms, t0 + 100);
        }
        // A count in the same second keeps no histogram.
        store.record_at(key(), "Count", 1.0, t0 + 100);
        store.flush(&db, None).await.unwrap();
        for ms in [400.0, 500.0] {
            store.record_at(latency_key(), "Milliseconds", ms, t0 + 900);
        }
        store.flush(&db, None).await.unwrap();

        let k = latency_key();
        let periods = db
            .read(move |c| period_buckets(c, &k, t0, 1_000, 1))
            .await
            .unwrap();
        let [bucket] = periods[0].as_slice() else {
            panic!("one stored bucket: {periods:?}")
        };
        assert_eq!(bucket.stats.sample_count, 5);
        let mut want = Histogram::default();
        for ms in [1.0, 2.0, 3.0, 400.0, 500.0] {
            want.record(ms);
        }
        assert_eq!(bucket.histogram.as_ref(), Some(&want));
        let merged = period_histogram(&periods[0]).unwrap();
        let median = merged.percentile(50.0).unwrap();
        assert!((median - 3.0).abs() <= 3.0 * 0.01, "{median}");

        let k = key();
        let counts = db
            .read(move |c| period_buckets(c, &k, t0, 1_000, 1))
            .await
            .unwrap();
        assert_eq!(counts[0][0].histogram, None);
        assert_eq!(period_histogram(&counts[0]), None);
    }

    #[tokio::test]
    async fn a_bucket_stored_without_a_histogram_keeps_none() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let t0: i64 = 1_700_000_000_000;
        // As a runtime before migration 9 left it: samples, no histogram.
        let k = latency_key();
        db.write(move |c| {
            c.execute(
                "INSERT INTO metric_points(namespace, name, dimensions, bucket_ms, unit,
                     sample_count, sum, min, max)
                 VALUES (?1, ?2, ?3, ?4, 'Milliseconds', 2, 20.0, 5.0, 15.0)",
                params![k.namespace, k.name, k.dimensions_text(), t0],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        let store = store();
        store.record_at(latency_key(), "Milliseconds", 7.0, t0 + 1);
        store.flush(&db, None).await.unwrap();
        let k = latency_key();
        let periods = db
            .read(move |c| period_buckets(c, &k, t0, 1_000, 1))
            .await
            .unwrap();
        assert_eq!(periods[0][0].stats.sample_count, 3);
        assert_eq!(periods[0][0].histogram, None);
        assert_eq!(period_histogram(&periods[0]), None);
    }

    #[test]
    fn only_duration_units_are_distributions() {
        for unit in ["Milliseconds", "Seconds", "Microseconds"] {
            assert!(is_distribution(unit), "{unit}");
        }
        for unit in ["Count", "Bytes", "Percent", "None", "Count/Second"] {
            assert!(!is_distribution(unit), "{unit}");
        }
    }

    #[test]
    fn dimension_order_does_not_split_a_series() {
        let store = store();
        store.record_parts("N", "M", &[("b", "2"), ("a", "1")], "Count", 1.0, 5);
        store.record_parts("N", "M", &[("a", "1"), ("b", "2")], "Count", 2.0, 6);
        store.record_parts("N", "M", &[("a", "1"), ("b", "3")], "Count", 4.0, 7);
        assert_eq!(store.pending_len(), 2);
        let pending = store.pending.lock().unwrap();
        let merged = pending
            .series
            .values()
            .flatten()
            .find(|s| s.key.dimensions["b"] == "2")
            .unwrap();
        assert_eq!(merged.buckets[&0].stats.sample_count, 2);
        assert_eq!(merged.buckets[&0].stats.sum, 3.0);
    }

    #[test]
    fn the_sink_files_custom_metrics_under_the_function_dimension() {
        let store = store();
        let props = BTreeMap::new();
        MetricsSink::record(
            &store,
            &MetricSample {
                name: "OrdersFulfilled",
                unit: "Count",
                value: 2.0,
                function: "fulfill_order",
                properties: &props,
            },
        );
        let pending = store.pending.lock().unwrap();
        let series = pending.series.values().flatten().next().unwrap();
        assert_eq!(series.key.namespace, "DOFS");
        assert_eq!(series.key.dimensions["function"], "dofs-fulfill_order");
        assert_eq!(series.unit, "Count");
        assert_eq!(series.buckets.values().next().unwrap().stats.sum, 2.0);
        assert_eq!(series.buckets.values().next().unwrap().histogram, None);
    }
}
