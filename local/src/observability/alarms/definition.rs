//! `dashboards/alarms.json` (or `--alarms-file`) to [`Alarm`]s: the file
//! format, its `${...}` placeholders bound to the local names, and the checks
//! CloudWatch's `PutMetricAlarm` would make.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::observability::metrics::SeriesKey;

#[derive(Debug, Deserialize)]
struct FileMetric {
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    statistic: String,
}

#[derive(Debug, Deserialize)]
struct FileAlarm {
    name: String,
    #[serde(default = "default_scope")]
    scope: String,
    #[serde(default)]
    description: String,
    namespace: Option<String>,
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    statistic: Option<String>,
    expression: Option<String>,
    label: Option<String>,
    #[serde(default)]
    metrics: BTreeMap<String, FileMetric>,
    period: u64,
    evaluation_periods: usize,
    datapoints_to_alarm: Option<usize>,
    threshold: f64,
    comparison: String,
    #[serde(default = "default_missing")]
    treat_missing_data: String,
}

fn default_scope() -> String {
    "stack".to_owned()
}

fn default_missing() -> String {
    "missing".to_owned()
}

#[derive(Debug, Deserialize)]
struct FileRoot {
    alarms: Vec<FileAlarm>,
}

/// The local values of the file's placeholders; `function_name` is bound per
/// function for `scope: "function"` alarms.
#[derive(Debug, Clone)]
pub struct Bindings {
    pub stack: String,
    pub placeholders: BTreeMap<String, String>,
    /// Deployed names of the functions a `function` alarm is repeated for.
    pub functions: Vec<String>,
}

impl Bindings {
    /// The names `dofs serve` uses.
    pub fn local() -> Self {
        let mut placeholders = BTreeMap::from([
            ("api_id".to_owned(), crate::identity::API_ID.to_owned()),
            (
                "state_machine_arn".to_owned(),
                crate::identity::state_machine_arn(),
            ),
            (
                "order_queue_name".to_owned(),
                crate::identity::ORDER_QUEUE.to_owned(),
            ),
            (
                "dead_letter_queue_name".to_owned(),
                crate::identity::DEAD_LETTER_QUEUE.to_owned(),
            ),
        ]);
        // The `function` dimension of DOFS metrics, as Terraform binds it.
        for f in crate::identity::FunctionName::ALL {
            placeholders.insert(format!("function_name_{}", f.as_str()), f.deployed_name());
        }
        Self {
            stack: crate::identity::STACK.to_owned(),
            placeholders,
            functions: crate::identity::FunctionName::ALL
                .iter()
                .map(|f| f.deployed_name())
                .collect(),
        }
    }
}

fn render(alarm: &str, text: &str, vars: &BTreeMap<String, String>) -> Result<String, AlarmError> {
    crate::definitions::render(text, vars).map_err(|source| AlarmError::Template {
        alarm: alarm.to_owned(),
        source,
    })
}

fn metric_query(
    alarm: &str,
    namespace: &str,
    metric_name: &str,
    dimensions: &BTreeMap<String, String>,
    statistic: &str,
    vars: &BTreeMap<String, String>,
) -> Result<MetricQuery, AlarmError> {
    let statistic = Statistic::parse(statistic)
        .ok_or_else(|| invalid(alarm, format!("unsupported statistic {statistic:?}")))?;
    let mut dims = BTreeMap::new();
    for (k, v) in dimensions {
        dims.insert(k.clone(), render(alarm, v, vars)?);
    }
    Ok(MetricQuery {
        key: SeriesKey {
            namespace: namespace.to_owned(),
            name: metric_name.to_owned(),
            dimensions: dims,
        },
        statistic,
    })
}

/// Reads an alarm file and renders it with `bindings`; `period_scale`
/// multiplies every period (floor one second).
pub fn load(text: &str, bindings: &Bindings, period_scale: f64) -> Result<Vec<Alarm>, AlarmError> {
    if !(period_scale.is_finite() && period_scale > 0.0) {
        return Err(invalid(
            "*",
            format!("period scale {period_scale} must be > 0"),
        ));
    }
    let root: FileRoot = serde_json::from_str(text)?;
    let mut out = Vec::new();
    for def in &root.alarms {
        let targets: Vec<(String, BTreeMap<String, String>)> = match def.scope.as_str() {
            "stack" => vec![(
                format!("{}-{}", bindings.stack, def.name),
                bindings.placeholders.clone(),
            )],
            "function" => bindings
                .functions
                .iter()
                .map(|f| {
                    let mut vars = bindings.placeholders.clone();
                    vars.insert("function_name".to_owned(), f.clone());
                    (format!("{f}-{}", def.name), vars)
                })
                .collect(),
            other => return Err(invalid(&def.name, format!("unknown scope {other:?}"))),
        };
        for (name, vars) in targets {
            out.push(build(def, name, &vars, period_scale)?);
        }
    }
    Ok(out)
}

fn build(
    def: &FileAlarm,
    name: String,
    vars: &BTreeMap<String, String>,
    period_scale: f64,
) -> Result<Alarm, AlarmError> {
    let id = def.name.as_str();
    let source = match (&def.expression, &def.metric_name) {
        (Some(expression), None) => build_math_source(def, expression, vars)?,
        (None, Some(metric_name)) => build_metric_source(def, metric_name, vars)?,
        _ => {
            return Err(invalid(
                id,
                "needs either metric_name or expression, not both",
            ))
        }
    };
    let (period, datapoints_to_alarm) = validate_periods(def, period_scale)?;
    Ok(Alarm {
        name,
        id: id.to_owned(),
        description: def.description.clone(),
        source,
        period_seconds: def.period,
        period,
        evaluation_periods: def.evaluation_periods,
        datapoints_to_alarm,
        threshold: def.threshold,
        comparison: Comparison::parse(&def.comparison)
            .ok_or_else(|| invalid(id, format!("unsupported comparison {:?}", def.comparison)))?,
        treat_missing_data: MissingData::parse(&def.treat_missing_data).ok_or_else(|| {
            invalid(
                id,
                format!("unknown treat_missing_data {:?}", def.treat_missing_data),
            )
        })?,
    })
}

/// A metric-math alarm: the expression parsed, every id it uses one of the
/// alarm's metrics (ids start lowercase, as CloudWatch requires).
fn build_math_source(
    def: &FileAlarm,
    expression: &str,
    vars: &BTreeMap<String, String>,
) -> Result<AlarmSource, AlarmError> {
    let id = def.name.as_str();
    let bad_expression = |problem: String| AlarmError::Expression {
        alarm: id.to_owned(),
        expression: expression.to_owned(),
        problem,
    };
    let parsed = parse_expression(expression).map_err(bad_expression)?;
    let mut metrics = BTreeMap::new();
    for (mid, m) in &def.metrics {
        if !mid.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(invalid(
                id,
                format!("metric id {mid:?} must start with a lowercase letter"),
            ));
        }
        let query = metric_query(
            id,
            &m.namespace,
            &m.metric_name,
            &m.dimensions,
            &m.statistic,
            vars,
        )?;
        metrics.insert(mid.clone(), query);
    }
    if let Some(used) = parsed
        .identifiers()
        .into_iter()
        .find(|used| !metrics.contains_key(used))
    {
        return Err(bad_expression(format!(
            "{used:?} is not one of the alarm's metrics"
        )));
    }
    Ok(AlarmSource::Math {
        expression: parsed,
        expression_text: expression.to_owned(),
        label: def.label.clone(),
        metrics,
    })
}

/// A single-metric alarm: namespace and statistic are required.
fn build_metric_source(
    def: &FileAlarm,
    metric_name: &str,
    vars: &BTreeMap<String, String>,
) -> Result<AlarmSource, AlarmError> {
    let id = def.name.as_str();
    let namespace = def
        .namespace
        .as_deref()
        .ok_or_else(|| invalid(id, "namespace is missing"))?;
    let statistic = def
        .statistic
        .as_deref()
        .ok_or_else(|| invalid(id, "statistic is missing"))?;
    Ok(AlarmSource::Metric(metric_query(
        id,
        namespace,
        metric_name,
        &def.dimensions,
        statistic,
        vars,
    )?))
}

/// The scaled period and `datapoints_to_alarm`, after CloudWatch's checks
/// (positive period, 1 ≤ M ≤ N).
fn validate_periods(def: &FileAlarm, period_scale: f64) -> Result<(Duration, usize), AlarmError> {
    let id = def.name.as_str();
    if def.period == 0 {
        return Err(invalid(id, "period must be positive"));
    }
    if def.evaluation_periods == 0 {
        return Err(invalid(id, "evaluation_periods must be at least 1"));
    }
    let datapoints_to_alarm = def.datapoints_to_alarm.unwrap_or(def.evaluation_periods);
    if datapoints_to_alarm == 0 || datapoints_to_alarm > def.evaluation_periods {
        return Err(invalid(
            id,
            "datapoints_to_alarm must be between 1 and evaluation_periods",
        ));
    }
    let period_ms = ((def.period as f64 * period_scale * 1000.0).round() as u64).max(1000);
    // Whole seconds, so periods line up with the stored one-second buckets.
    Ok((
        Duration::from_secs(period_ms.div_ceil(1000)),
        datapoints_to_alarm,
    ))
}
