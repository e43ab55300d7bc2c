//! The CloudWatch dashboard Terraform deploys (`dashboards/dashboard.json`),
//! rendered locally: the same widgets, metrics, statistics and periods,
//! each drawn as a server-side SVG chart (no script, no chart library).
//! The widget fields read are those of CloudWatch's dashboard body
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html>):
//! `type`, `properties.metrics` with its rendering options, `stat`,
//! `period`, `title`.
//!
//! The file's `${...}` placeholders are bound to the local names, as the
//! alarms' are ([`Bindings::local`]), and its two generated widgets are
//! filled as `terraform/observability.tf` fills them: the order funnel with
//! every per-function `Count` metric of `dashboards/metrics.json`, the
//! alarm widget with every alarm.
//!
//! The local store keeps, per series and second, CloudWatch's statistic set
//! (count, sum, minimum, maximum) and, for a distribution (a duration
//! series, [`metrics::is_distribution`]), a histogram of the second's
//! samples. A percentile (`p50`, `p99`, any `pNN`) of a period is read from
//! the merged histograms of its seconds: CloudWatch's percentile, the
//! value that share of the period's samples lies below
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html>),
//! within the histogram's relative error
//! ([`crate::observability::histogram::RELATIVE_ERROR`]) and within the
//! period's exact minimum and maximum. Where a period has a second without
//! a histogram (a series that is not a distribution, or data written
//! before histograms were kept) the percentile is estimated from the
//! per-second averages, weighted by their sample counts, and the line's
//! legend says so with a `≈`.

use std::collections::BTreeMap;

use maud::{html, Markup};
use rusqlite::Connection;
use serde_json::Value;

use super::html::number;
use crate::identity::FunctionName;
use crate::observability::alarms::Bindings;
use crate::observability::metrics::{self, Bucket, SeriesKey};
use crate::store::DbError;

const DASHBOARD_JSON: &str = include_str!("../../../dashboards/dashboard.json");
const METRICS_JSON: &str = include_str!("../../../dashboards/metrics.json");

/// Line colours, CloudWatch's default palette order (the legend's `c0`…`c7`
/// classes in the stylesheet are the same colours).
const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// One line of a chart: which series, with which statistic.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Line {
    pub key: SeriesKey,
    pub stat: String,
    pub label: String,
}

/// One widget of the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Widget {
    Text(String),
    Chart {
        title: String,
        period_s: i64,
        lines: Vec<Line>,
    },
    Alarms {
        title: String,
    },
}

/// Why the compiled-in dashboard could not be read (a test reads it, so
/// this is a build that shipped a broken file).
#[derive(Debug, thiserror::Error)]
pub(super) enum DashboardError {
    #[error("dashboards/*.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("dashboards/dashboard.json: {0}")]
    Shape(String),
}

/// `${name}` → its local value (unknown names stay as they are).
fn bind(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    out
}

/// The order funnel's lines, as Terraform generates them.
fn funnel(vars: &BTreeMap<String, String>) -> Result<Vec<Line>, DashboardError> {
    let catalogue: Value = serde_json::from_str(METRICS_JSON)?;
    let namespace = catalogue["namespace"].as_str().unwrap_or("DOFS");
    let dimension = catalogue["dimension"].as_str().unwrap_or("function");
    let mut lines = Vec::new();
    for m in catalogue["metrics"].as_array().into_iter().flatten() {
        let (Some(name), Some(function)) = (m["name"].as_str(), m["function"].as_str()) else {
            continue;
        };
        if m["unit"] != "Count" || function == "*" {
            continue;
        }
        let deployed = vars
            .get(&format!("function_name_{function}"))
            .cloned()
            .or_else(|| FunctionName::resolve(function).map(|f| f.deployed_name()))
            .unwrap_or_else(|| function.to_owned());
        lines.push(Line {
            key: SeriesKey::new(namespace, name, &[(dimension, &deployed)]),
            stat: "Sum".into(),
            label: name.into(),
        });
    }
    Ok(lines)
}

/// The dashboard's widgets, in the file's order.
pub(super) fn widgets() -> Result<Vec<Widget>, DashboardError> {
    let mut vars = Bindings::local().placeholders;
    vars.insert("region".into(), crate::identity::REGION.into());
    let doc: Value = serde_json::from_str(DASHBOARD_JSON)?;
    let mut out = Vec::new();
    for w in doc["widgets"].as_array().into_iter().flatten() {
        let p = &w["properties"];
        let title = p["title"].as_str().unwrap_or_default().to_owned();
        match w["type"].as_str() {
            Some("text") => out.push(Widget::Text(
                p["markdown"].as_str().unwrap_or_default().to_owned(),
            )),
            Some("alarm") => out.push(Widget::Alarms { title }),
            Some("metric") => {
                let default_stat = p["stat"].as_str().unwrap_or("Average");
                let mut lines = if w["dofs_generated"] == "order_funnel" {
                    funnel(&vars)?
                } else {
                    Vec::new()
                };
                for m in p["metrics"].as_array().into_iter().flatten() {
                    lines.push(line(m, default_stat, &vars)?);
                }
                out.push(Widget::Chart {
                    title,
                    period_s: p["period"].as_i64().unwrap_or(300),
                    lines,
                });
            }
            other => {
                return Err(DashboardError::Shape(format!(
                    "widget type {other:?} is not rendered"
                )))
            }
        }
    }
    Ok(out)
}

/// One `metrics` entry: `[namespace, name, dim, value, ..., {options}]`.
fn line(
    m: &Value,
    default_stat: &str,
    vars: &BTreeMap<String, String>,
) -> Result<Line, DashboardError> {
    let parts = m
        .as_array()
        .ok_or_else(|| DashboardError::Shape(format!("a metric is not an array: {m}")))?;
    let options = parts.last().filter(|v| v.is_object());
    let texts: Vec<String> = parts
        .iter()
        .filter_map(Value::as_str)
        .map(|s| bind(s, vars))
        .collect();
    let [namespace, name, dims @ ..] = texts.as_slice() else {
        return Err(DashboardError::Shape(format!(
            "a metric without a name: {m}"
        )));
    };
    let dims: Vec<(&str, &str)> = dims
        .chunks(2)
        .filter_map(|c| match c {
            [k, v] => Some((k.as_str(), v.as_str())),
            _ => None,
        })
        .collect();
    let stat = options
        .and_then(|o| o["stat"].as_str())
        .unwrap_or(default_stat)
        .to_owned();
    let label = options
        .and_then(|o| o["label"].as_str())
        .unwrap_or(name)
        .to_owned();
    Ok(Line {
        key: SeriesKey::new(namespace, name, &dims),
        stat,
        label,
    })
}

/// One period's statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Datapoint {
    pub value: f64,
    /// A percentile estimated from per-second averages, for want of
    /// histograms (see the module doc).
    pub estimated: bool,
}

impl Datapoint {
    fn exact(value: f64) -> Self {
        Self {
            value,
            estimated: false,
        }
    }
}

/// `stat` of each period from `from_ms` (`count` periods of `period_ms`);
/// `None` for a period without data.
pub(super) fn datapoints(
    conn: &Connection,
    key: &SeriesKey,
    stat: &str,
    from_ms: i64,
    period_ms: i64,
    count: usize,
) -> Result<Vec<Option<Datapoint>>, DbError> {
    let periods = metrics::period_buckets(conn, key, from_ms, period_ms, count)?;
    Ok(periods.iter().map(|p| statistic(p, stat)).collect())
}

/// CloudWatch's statistic `stat` of one period's per-second buckets.
fn statistic(buckets: &[Bucket], stat: &str) -> Option<Datapoint> {
    if buckets.is_empty() {
        return None;
    }
    let n: f64 = buckets.iter().map(|b| b.stats.sample_count as f64).sum();
    let sum: f64 = buckets.iter().map(|b| b.stats.sum).sum();
    let min = buckets
        .iter()
        .map(|b| b.stats.min)
        .fold(f64::INFINITY, f64::min);
    let max = buckets
        .iter()
        .map(|b| b.stats.max)
        .fold(f64::NEG_INFINITY, f64::max);
    Some(match stat {
        "Sum" => Datapoint::exact(sum),
        "SampleCount" => Datapoint::exact(n),
        "Minimum" => Datapoint::exact(min),
        "Maximum" => Datapoint::exact(max),
        s if s.starts_with('p') => {
            let percent: f64 = s[1..].parse().ok()?;
            match metrics::period_histogram(buckets) {
                // The period's extremes are known exactly: p0 and p100 are
                // its Minimum and Maximum, as in CloudWatch.
                Some(histogram) => {
                    Datapoint::exact(histogram.percentile_between(percent, min, max)?)
                }
                None => Datapoint {
                    value: estimated_percentile(buckets, n, percent)?,
                    estimated: true,
                },
            }
        }
        _ => Datapoint::exact(if n > 0.0 { sum / n } else { 0.0 }),
    })
}

/// The `percent`-th percentile of a period without histograms: each second
/// stands for its samples at its average, weighted by their count.
fn estimated_percentile(buckets: &[Bucket], n: f64, percent: f64) -> Option<f64> {
    let mut means: Vec<(f64, f64)> = buckets
        .iter()
        .filter(|b| b.stats.sample_count > 0)
        .map(|b| (b.stats.average(), b.stats.sample_count as f64))
        .collect();
    means.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank = n * percent / 100.0;
    let mut seen = 0.0;
    let mut value = means.last()?.0;
    for (mean, weight) in means {
        seen += weight;
        if seen >= rank {
            value = mean;
            break;
        }
    }
    Some(value)
}

/// A chart's lines with their datapoints.
pub(super) struct Drawn<'a> {
    pub line: &'a Line,
    pub points: Vec<Option<f64>>,
    /// Some datapoint is an estimate: the legend marks it `≈`.
    pub estimated: bool,
}

impl<'a> Drawn<'a> {
    /// `line` with the datapoints [`datapoints`] read for it.
    pub fn new(line: &'a Line, datapoints: &[Option<Datapoint>]) -> Self {
        Self {
            line,
            points: datapoints.iter().map(|p| p.map(|p| p.value)).collect(),
            estimated: datapoints.iter().flatten().any(|p| p.estimated),
        }
    }
}

/// A line chart of `series` over `count` periods from `from_ms`, with an
/// optional threshold line (an alarm's), as inline SVG plus a legend.
pub(super) fn chart(
    series: &[Drawn<'_>],
    from_ms: i64,
    period_ms: i64,
    threshold: Option<f64>,
) -> Markup {
    const W: f64 = 560.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 44.0;
    const BOTTOM: f64 = 18.0;
    const TOP: f64 = 8.0;
    let count = series.first().map_or(0, |s| s.points.len()).max(1);
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().flatten().copied())
        .chain(threshold)
        .fold(0.0_f64, f64::max);
    let y_max = if max <= 0.0 { 1.0 } else { max * 1.1 };
    let x = |i: usize| LEFT + (W - LEFT - 8.0) * (i as f64 + 0.5) / count as f64;
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / y_max);
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%H:%M").to_string())
            .unwrap_or_default()
    };
    let has_data = series.iter().any(|s| s.points.iter().any(Option::is_some));
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (H) } role="img" data-series=(series.len()) {
            line.axis x1=(LEFT) y1=(H - BOTTOM) x2=(W - 8.0) y2=(H - BOTTOM) {}
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(H - BOTTOM) {}
            @for f in [0.0, 0.5, 1.0] {
                text x=(LEFT - 4.0) y=(y(y_max * f) + 3.0) text-anchor="end" { (number(y_max * f)) }
            }
            text x=(LEFT) y=(H - 4.0) { (time(from_ms)) }
            text x=(W - 8.0) y=(H - 4.0) text-anchor="end" { (time(from_ms + period_ms * count as i64)) }
            @if !has_data {
                text x=(W / 2.0) y=(H / 2.0) text-anchor="middle" { "No data in this range" }
            }
            @if let Some(t) = threshold {
                line.threshold x1=(LEFT) y1=(format!("{:.1}", y(t))) x2=(W - 8.0) y2=(format!("{:.1}", y(t))) {
                    title { "threshold " (number(t)) }
                }
            }
            @for (i, s) in series.iter().enumerate() {
                @let colour = PALETTE[i % PALETTE.len()];
                @let path = path_of(&s.points, &x, &y);
                @if !path.is_empty() {
                    path.line d=(path) stroke=(colour) data-label=(s.line.label) {}
                }
                @for (j, v) in s.points.iter().enumerate() {
                    @if let Some(v) = v {
                        circle cx=(format!("{:.1}", x(j))) cy=(format!("{:.1}", y(*v))) r="2" fill=(colour) {
                            title { (s.line.label) ": " (number(*v)) }
                        }
                    }
                }
            }
        }
        ul.legend {
            @for (i, s) in series.iter().enumerate() {
                @let last = s.points.iter().rev().flatten().next();
                li {
                    i class={ "c" (i % PALETTE.len()) } {}
                    (legend_label(s.line, s.estimated))
                    @if let Some(v) = last { " " b { (number(*v)) } }
                }
            }
        }
    }
}

/// A line's legend: its label and statistic (`≈` marks an estimate).
fn legend_label(line: &Line, estimated: bool) -> String {
    if estimated && line.label == line.stat {
        format!("≈{}", line.stat)
    } else if estimated {
        format!("{} (≈{})", line.label, line.stat)
    } else if line.label.contains(&line.stat) {
        line.label.clone()
    } else {
        format!("{} ({})", line.label, line.stat)
    }
}

/// An SVG path through the datapoints, broken where a period has none.
fn path_of(points: &[Option<f64>], x: &impl Fn(usize) -> f64, y: &impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for (i, v) in points.iter().enumerate() {
        match v {
            Some(v) => {
                d.push_str(&format!(
                    "{}{:.1} {:.1} ",
                    if pen_down { "L" } else { "M" },
                    x(i),
                    y(*v)
                ));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::histogram::RELATIVE_ERROR;
    use crate::observability::metrics::Stats;

    #[test]
    fn every_widget_of_the_deployed_dashboard_is_rendered() {
        let widgets = widgets().unwrap();
        let charts: Vec<&Widget> = widgets
            .iter()
            .filter(|w| matches!(w, Widget::Chart { .. }))
            .collect();
        assert_eq!(charts.len(), 12, "{widgets:#?}");
        for w in charts {
            let Widget::Chart { lines, title, .. } = w else {
                unreachable!()
            };
            assert!(!lines.is_empty(), "{title}");
            for l in lines {
                assert!(
                    !l.key.dimensions_text().contains("${"),
                    "{title}: unbound {:?}",
                    l.key
                );
            }
        }
        let funnel = widgets.iter().find_map(|w| match w {
            Widget::Chart { title, lines, .. } if title.starts_with("Order funnel") => Some(lines),
            _ => None,
        });
        assert!(funnel.unwrap().iter().any(|l| l.label == "OrdersFulfilled"));
    }

    /// A bucket without a histogram, as a count series (or a row from
    /// before histograms) stores it.
    fn bare(sample_count: u64, sum: f64, min: f64, max: f64) -> Bucket {
        Bucket {
            stats: Stats {
                sample_count,
                sum,
                min,
                max,
            },
            histogram: None,
        }
    }

    /// A bucket of a duration series holding `values`, as the store keeps it.
    fn of_values(values: &[f64]) -> Bucket {
        let mut bucket = Bucket::one(values[0], "Milliseconds");
        for &v in &values[1..] {
            bucket.merge(&Bucket::one(v, "Milliseconds"));
        }
        bucket
    }

    fn value(point: Option<Datapoint>) -> Option<f64> {
        point.map(|p| p.value)
    }

    #[test]
    fn statistics_as_cloudwatch_computes_them() {
        let b = [bare(2, 10.0, 4.0, 6.0), bare(1, 1.0, 1.0, 1.0)];
        assert_eq!(value(statistic(&b, "Sum")), Some(11.0));
        assert_eq!(value(statistic(&b, "SampleCount")), Some(3.0));
        assert_eq!(value(statistic(&b, "Maximum")), Some(6.0));
        assert_eq!(value(statistic(&b, "Minimum")), Some(1.0));
        assert_eq!(value(statistic(&b, "Average")), Some(11.0 / 3.0));
        assert!(!statistic(&b, "Sum").unwrap().estimated);
        // No histograms: the old estimate, marked as one.
        assert_eq!(
            statistic(&b, "p99"),
            Some(Datapoint {
                value: 5.0,
                estimated: true
            })
        );
        assert_eq!(value(statistic(&b, "p10")), Some(1.0));
        assert_eq!(statistic(&[], "Sum"), None);
    }

    #[test]
    fn a_percentile_comes_from_the_histogram_not_the_averages() {
        // One second: 99 requests of 1 ms and one of 1000 ms. CloudWatch's
        // p99 is 1 ms (99 % of the samples are at or below it); the
        // average-based estimate would give the second's mean, 10.99 ms.
        let mut values = vec![1.0; 99];
        values.push(1000.0);
        let one_second = [of_values(&values)];
        let p99 = statistic(&one_second, "p99").unwrap();
        assert!(!p99.estimated);
        assert!((p99.value - 1.0).abs() <= 1.0 * RELATIVE_ERROR, "{p99:?}");
        let without_histogram = [bare(100, 1099.0, 1.0, 1000.0)];
        let estimate = statistic(&without_histogram, "p99").unwrap();
        assert!(estimate.estimated);
        assert!((estimate.value - 10.99).abs() < 1e-9, "{estimate:?}");
        assert!((estimate.value - 1.0).abs() > 1.0 * RELATIVE_ERROR);

        // Across seconds the histograms merge: 1..=200 ms spread over
        // four seconds, p50 = 100 ms and p99 = 198 ms exactly by rank.
        let spread: Vec<f64> = (1..=200).map(f64::from).collect();
        let seconds: Vec<Bucket> = spread.chunks(50).map(of_values).collect();
        for (stat, want) in [("p50", 100.0), ("p99", 198.0), ("p99.5", 199.0)] {
            let got = statistic(&seconds, stat).unwrap();
            assert!(!got.estimated, "{stat}");
            assert!(
                (got.value - want).abs() <= want * RELATIVE_ERROR,
                "{stat}: {got:?}"
            );
        }
        // p100 and p0 are the exact extremes (clamped to max and min).
        assert_eq!(value(statistic(&seconds, "p100")), Some(200.0));
        assert_eq!(value(statistic(&seconds, "p0")), Some(1.0));

        // One second without a histogram (before migration 9) in the
        // period: the whole period falls back to the estimate.
        let mut mixed = seconds.clone();
        mixed.push(bare(1, 5.0, 5.0, 5.0));
        assert!(statistic(&mixed, "p50").unwrap().estimated);
    }

    #[test]
    fn only_an_estimate_is_marked_in_the_legend() {
        let line = |stat: &str, label: &str| Line {
            key: SeriesKey::new("AWS/Lambda", "Duration", &[]),
            stat: stat.into(),
            label: label.into(),
        };
        assert_eq!(legend_label(&line("p99", "p99"), false), "p99");
        assert_eq!(
            legend_label(&line("p99", "Duration"), false),
            "Duration (p99)"
        );
        assert_eq!(legend_label(&line("p99", "p99"), true), "≈p99");
        assert_eq!(
            legend_label(&line("p99", "Duration"), true),
            "Duration (≈p99)"
        );
        assert_eq!(legend_label(&line("Sum", "Count"), false), "Count (Sum)");

        let points = [
            Some(Datapoint::exact(1.0)),
            None,
            Some(Datapoint {
                value: 2.0,
                estimated: true,
            }),
        ];
        let p50 = line("p50", "p50");
        let drawn = Drawn::new(&p50, &points);
        assert_eq!(drawn.points, vec![Some(1.0), None, Some(2.0)]);
        assert!(drawn.estimated);
        assert!(!Drawn::new(&p50, &points[..2]).estimated);
    }

    #[test]
    fn a_gap_in_the_data_breaks_the_line() {
        let path = path_of(
            &[Some(1.0), None, Some(2.0), Some(3.0)],
            &|i| i as f64,
            &|v| v,
        );
        assert_eq!(path, "M0.0 1.0 M2.0 2.0 L3.0 3.0");
    }
}
