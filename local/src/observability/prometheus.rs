//! `GET /_dofs/prometheus`: every metric of the runtime — the functions'
//! EMF metrics and the stand-ins' AWS service metrics, the same series the
//! alarms and `dofs metrics` read — in the Prometheus text exposition
//! format (0.0.4,
//! <https://prometheus.io/docs/instrumenting/exposition_formats/>), so a
//! Prometheus or Grafana Agent already running beside a laptop can scrape
//! `dofs serve`.
//!
//! CloudWatch keeps statistic sets per period; Prometheus wants running
//! totals it can take `rate()` of. Each series is exposed from its
//! totals since the process started ([`MetricsStore::totals`]) as:
//! - a **counter** `<namespace>_<name>_total` (the Sum) when its unit is
//!   `Count`: `aws_lambda_invocations_total{function_name="dofs-validator"}`.
//!   The API's 4xx and 5xx are 0 or 1 per request, so their totals are the
//!   number of such responses;
//! - a **summary** `<namespace>_<name>_seconds` (`_sum`, `_count`, in
//!   seconds as Prometheus' base unit) when it is a duration:
//!   `aws_lambda_duration_seconds_sum`;
//! - a **gauge** for what CloudWatch samples rather than counts: SQS's
//!   `Approximate*` metrics and Lambda's `ConcurrentExecutions` (the newest
//!   second's Maximum).
//!
//! Dimensions become labels in snake case (`FunctionName` →
//! `function_name`). Like `/_dofs/health`, it is served with the console on
//! or off and is never API traffic. The text is written here, not through
//! `prometheus-client`: that crate registers each family up front with
//! typed labels, and these series are known only as they appear (their
//! dimensions come from the data).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::observability::metrics::{MetricsStore, SeriesKey, SeriesTotal};

/// Where the scrape endpoint is.
pub const PATH: &str = "/_dofs/prometheus";

/// How old a gauge's newest second may be and still be exposed.
pub const GAUGE_STALE_MS: i64 = 60_000;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /_dofs/prometheus` over `store`.
pub fn router(store: MetricsStore) -> Router {
    Router::new().route(PATH, get(scrape)).with_state(store)
}

async fn scrape(State(store): State<MetricsStore>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        exposition(&store.totals(), store.now_ms()),
    )
}

/// How a series is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Counter,
    Summary,
    Gauge,
}

fn kind(key: &SeriesKey, unit: &str) -> Kind {
    if key.name.starts_with("Approximate") || key.name == "ConcurrentExecutions" {
        Kind::Gauge
    } else if seconds_per_unit(unit).is_some() {
        Kind::Summary
    } else {
        Kind::Counter
    }
}

/// Seconds in one `unit`, for the CloudWatch time units.
fn seconds_per_unit(unit: &str) -> Option<f64> {
    match unit {
        "Seconds" => Some(1.0),
        "Milliseconds" => Some(1e-3),
        "Microseconds" => Some(1e-6),
        _ => None,
    }
}

/// One metric family: its samples, each a name suffix, labels and value.
#[derive(Default)]
struct Family {
    kind: Option<Kind>,
    help: String,
    samples: Vec<(&'static str, String, f64)>,
}

/// The exposition text of `totals` at `now_ms`: one family per name,
/// sorted.
pub fn exposition(totals: &[(SeriesKey, SeriesTotal)], now_ms: i64) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (key, total) in totals {
        let kind = kind(key, &total.unit);
        if kind == Kind::Gauge && now_ms - total.latest_bucket_ms > GAUGE_STALE_MS {
            continue;
        }
        let base = format!("{}_{}", snake_case(&key.namespace), snake_case(&key.name));
        let labels = labels(key);
        let (name, help) = match kind {
            Kind::Counter => (format!("{base}_total"), "Sum since dofs serve started"),
            Kind::Summary => (
                format!("{base}_seconds"),
                "Sum and sample count since dofs serve started, in seconds",
            ),
            Kind::Gauge if total.unit == "Seconds" => {
                (format!("{base}_seconds"), "Maximum of the newest second")
            }
            Kind::Gauge => (base, "Maximum of the newest second"),
        };
        let family = families.entry(name).or_default();
        family.kind = Some(kind);
        family.help = format!(
            "CloudWatch {} {} ({}): {help}.",
            key.namespace, key.name, total.unit
        );
        match kind {
            Kind::Counter => family.samples.push(("", labels, total.all.sum)),
            Kind::Summary => {
                let scale = seconds_per_unit(&total.unit).unwrap_or(1.0);
                family
                    .samples
                    .push(("_sum", labels.clone(), total.all.sum * scale));
                family
                    .samples
                    .push(("_count", labels, total.all.sample_count as f64));
            }
            Kind::Gauge => family.samples.push(("", labels, total.latest.max)),
        }
    }
    let mut text = String::new();
    for (name, family) in &families {
        let kind = match family.kind {
            Some(Kind::Counter) => "counter",
            Some(Kind::Summary) => "summary",
            Some(Kind::Gauge) | None => "gauge",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(text, "# HELP {name} {}", escape_help(&family.help));
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for (suffix, labels, value) in &family.samples {
            let _ = writeln!(text, "{name}{suffix}{labels} {}", number(*value));
        }
    }
    text
}

/// `{a="x",b="y"}` of the dimensions, or nothing.
fn labels(key: &SeriesKey) -> String {
    if key.dimensions.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = key
        .dimensions
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", label_name(k), escape_label(v)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// A label name: the dimension's in snake case, never starting with a
/// digit (the format's rule).
fn label_name(dimension: &str) -> String {
    let name = snake_case(dimension);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{name}")
    } else {
        name
    }
}

/// A part of a metric or label name: `ApiGateway` → `api_gateway`,
/// `AWS/SQS` → `aws_sqs`, `4xx` stays; anything outside `[a-zA-Z0-9_]`
/// becomes `_`.
fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let mut previous: Option<char> = None;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let after_lower =
                previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
            // The end of an acronym: the `S` of `SQSQueue` before `Queue`.
            let acronym_end = previous.is_some_and(|p| p.is_ascii_uppercase())
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if after_lower || acronym_end {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
        previous = Some(c);
    }
    out
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Prometheus writes one (`+Inf`, `NaN`, integers bare).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::metrics::Stats;

    fn total(unit: &str, values: &[f64]) -> SeriesTotal {
        let mut all = Stats::one(values[0]);
        for v in &values[1..] {
            all.merge(&Stats::one(*v));
        }
        SeriesTotal {
            unit: unit.to_owned(),
            all,
            latest_bucket_ms: 1_000,
            latest: Stats::one(*values.last().unwrap_or(&0.0)),
        }
    }

    #[test]
    fn names_are_snake_case_prometheus_names() {
        assert_eq!(snake_case("AWS/ApiGateway"), "aws_api_gateway");
        assert_eq!(
            snake_case("ApproximateAgeOfOldestMessage"),
            "approximate_age_of_oldest_message"
        );
        assert_eq!(snake_case("FunctionName"), "function_name");
        assert_eq!(snake_case("SQSQueue"), "sqs_queue");
        assert_eq!(snake_case("4xx"), "4xx");
        assert_eq!(label_name("4xxClass"), "_4xx_class");
        assert_eq!(snake_case("DOFS"), "dofs");
    }

    #[test]
    fn counters_summaries_and_gauges_as_the_format_says() {
        let lambda =
            |name: &str| SeriesKey::new("AWS/Lambda", name, &[("FunctionName", "dofs-validator")]);
        let queue = SeriesKey::new(
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            &[("QueueName", "dofs-\"odd\"\\queue")],
        );
        let api_4xx = SeriesKey::new("AWS/ApiGateway", "4xx", &[("ApiId", "local")]);
        let series = [
            (lambda("Invocations"), total("Count", &[1.0, 1.0, 1.0])),
            (lambda("Duration"), total("Milliseconds", &[250.0, 750.0])),
            (queue, total("Count", &[7.0, 4.0])),
            (api_4xx, total("Count", &[0.0, 1.0, 1.0])),
        ];
        let text = exposition(&series, 2_000);
        let expected = [
            "# TYPE aws_lambda_duration_seconds summary",
            "aws_lambda_duration_seconds_sum{function_name=\"dofs-validator\"} 1",
            "aws_lambda_duration_seconds_count{function_name=\"dofs-validator\"} 2",
            "# TYPE aws_lambda_invocations_total counter",
            "aws_lambda_invocations_total{function_name=\"dofs-validator\"} 3",
            "# TYPE aws_sqs_approximate_number_of_messages_visible gauge",
            "aws_sqs_approximate_number_of_messages_visible{queue_name=\"dofs-\\\"odd\\\"\\\\queue\"} 4",
        ];
        for line in expected {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from\n{text}"
            );
        }
        assert!(text.ends_with('\n'));
        assert!(
            text.contains("\naws_api_gateway_4xx_total{api_id=\"local\"} 2\n"),
            "{text}"
        );

        // A minute on, the gauge has no data; the counters stay.
        let later = exposition(&series, 1_000 + GAUGE_STALE_MS + 1);
        assert!(!later.contains("aws_sqs_"), "{later}");
        assert!(later.contains("aws_lambda_invocations_total"), "{later}");
    }
}
