//! The alarms of `dashboards/alarms.json` — the very file Terraform turns
//! into CloudWatch alarms — evaluated like CloudWatch on the local metrics
//! ([`crate::metrics`]), with state and history in SQLite and a notification
//! on every state change: always a JSON log line (WARN for ALARM), and a
//! webhook POST shaped like an SNS → HTTPS delivery when one is configured.
//!
//! What is CloudWatch-like here:
//! - a datapoint is the statistic (SampleCount, Sum, Average, Minimum,
//!   Maximum) of the metric over one period; periods are aligned to the
//!   epoch and only complete periods are evaluated;
//! - the alarm breaches when `datapoints_to_alarm` of the last
//!   `evaluation_periods` datapoints compare true against the threshold
//!   (M of N);
//! - `treat_missing_data`: `breaching` / `notBreaching` count a missing
//!   datapoint as such; `missing` and `ignore` leave it out, and when every
//!   datapoint is missing `missing` goes to INSUFFICIENT_DATA while `ignore`
//!   keeps the current state;
//! - metric math (`expression` over `metrics` ids): arithmetic, comparisons,
//!   `AND`/`OR`/`NOT`, `IF(c, a, b)`, `ABS`, `MIN`/`MAX`; a datapoint is
//!   missing where any input is missing or the result is not finite (a
//!   division by zero), as CloudWatch drops such points.
//!
//! Written here rather than taken from a crate: no crate evaluates CloudWatch
//! alarm definitions; the expression language needed is a few operators.
//!
//! Locally, `--alarm-period-scale` multiplies every period (0.01 turns five
//! minutes into three seconds, floor one second) so that a demo alarm fires
//! in seconds; the definitions are otherwise untouched.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::db::{Db, DbError};
use crate::metrics::{self, SeriesKey, Stats};
use crate::queue::{ACCOUNT_ID, REGION};

/// `dashboards/alarms.json`, compiled in (`--alarms-file` overrides it).
pub const ALARMS_JSON: &str = include_str!("../../dashboards/alarms.json");

/// The local stack name: stack alarms are named `<stack>-<name>`.
pub const LOCAL_STACK: &str = "dofs";

/// Errors in an alarm definition file.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    #[error("the alarm file is not valid JSON")]
    Json(#[from] serde_json::Error),
    #[error("alarm {alarm}: {problem}")]
    Invalid { alarm: String, problem: String },
    #[error("alarm {alarm}: unknown placeholder ${{{placeholder}}}")]
    Placeholder { alarm: String, placeholder: String },
    #[error("alarm {alarm}: bad expression {expression:?}: {problem}")]
    Expression {
        alarm: String,
        expression: String,
        problem: String,
    },
}

fn invalid(alarm: &str, problem: impl Into<String>) -> AlarmError {
    AlarmError::Invalid {
        alarm: alarm.to_owned(),
        problem: problem.into(),
    }
}

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CloudWatch `ComparisonOperator` (the static-threshold ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanThreshold,
    GreaterThanOrEqualToThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "GreaterThanThreshold" => Comparison::GreaterThanThreshold,
            "GreaterThanOrEqualToThreshold" => Comparison::GreaterThanOrEqualToThreshold,
            "LessThanThreshold" => Comparison::LessThanThreshold,
            "LessThanOrEqualToThreshold" => Comparison::LessThanOrEqualToThreshold,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::GreaterThanThreshold => "GreaterThanThreshold",
            Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Comparison::LessThanThreshold => "LessThanThreshold",
            Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// How CloudWatch words it in a state reason.
    fn phrase(self) -> &'static str {
        match self {
            Comparison::GreaterThanThreshold => "greater than",
            Comparison::GreaterThanOrEqualToThreshold => "greater than or equal to",
            Comparison::LessThanThreshold => "less than",
            Comparison::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }
}

/// The statistics a local datapoint can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    SampleCount,
    Sum,
    Average,
    Minimum,
    Maximum,
}

impl Statistic {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "SampleCount" => Statistic::SampleCount,
            "Sum" => Statistic::Sum,
            "Average" => Statistic::Average,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::SampleCount => "SampleCount",
            Statistic::Sum => "Sum",
            Statistic::Average => "Average",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
        }
    }

    pub fn of(self, stats: &Stats) -> f64 {
        match self {
            Statistic::SampleCount => stats.sample_count as f64,
            Statistic::Sum => stats.sum,
            Statistic::Average => stats.average(),
            Statistic::Minimum => stats.min,
            Statistic::Maximum => stats.max,
        }
    }
}

/// `treat_missing_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingData {
    Breaching,
    NotBreaching,
    Ignore,
    Missing,
}

impl MissingData {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "breaching" => MissingData::Breaching,
            "notBreaching" => MissingData::NotBreaching,
            "ignore" => MissingData::Ignore,
            "missing" => MissingData::Missing,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MissingData::Breaching => "breaching",
            MissingData::NotBreaching => "notBreaching",
            MissingData::Ignore => "ignore",
            MissingData::Missing => "missing",
        }
    }
}

/// One metric an alarm reads.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub key: SeriesKey,
    pub statistic: Statistic,
}

/// What an alarm watches.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmSource {
    Metric(MetricQuery),
    Math {
        expression: Expr,
        expression_text: String,
        label: Option<String>,
        metrics: BTreeMap<String, MetricQuery>,
    },
}

/// One alarm, placeholders rendered, period scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// The deployed name (`dofs-dlq-depth`, `dofs-validator-lambda-error-rate`).
    pub name: String,
    /// The id in the file (`dlq-depth`).
    pub id: String,
    pub description: String,
    pub source: AlarmSource,
    /// The period of the definition, in seconds.
    pub period_seconds: u64,
    /// The period evaluated locally (scaled).
    pub period: Duration,
    pub evaluation_periods: usize,
    pub datapoints_to_alarm: usize,
    pub threshold: f64,
    pub comparison: Comparison,
    pub treat_missing_data: MissingData,
}

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
        Self {
            stack: LOCAL_STACK.to_owned(),
            placeholders: BTreeMap::from([
                ("api_id".to_owned(), metrics::LOCAL_API_ID.to_owned()),
                (
                    "state_machine_arn".to_owned(),
                    crate::engine::state_machine_arn(),
                ),
                (
                    "order_queue_name".to_owned(),
                    crate::cli::ORDER_QUEUE.to_owned(),
                ),
                (
                    "dead_letter_queue_name".to_owned(),
                    crate::cli::DEAD_LETTER_QUEUE.to_owned(),
                ),
            ]),
            functions: crate::functions::FunctionName::ALL
                .iter()
                .map(|f| f.deployed_name())
                .collect(),
        }
    }
}

fn render(alarm: &str, text: &str, vars: &BTreeMap<String, String>) -> Result<String, AlarmError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| invalid(alarm, format!("unterminated placeholder in {text:?}")))?;
        let name = &after[..end];
        let value = vars.get(name).ok_or_else(|| AlarmError::Placeholder {
            alarm: alarm.to_owned(),
            placeholder: name.to_owned(),
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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
        (Some(expression), None) => {
            let parsed =
                parse_expression(expression).map_err(|problem| AlarmError::Expression {
                    alarm: id.to_owned(),
                    expression: expression.clone(),
                    problem,
                })?;
            let mut metrics = BTreeMap::new();
            for (mid, m) in &def.metrics {
                if !mid.starts_with(|c: char| c.is_ascii_lowercase()) {
                    return Err(invalid(
                        id,
                        format!("metric id {mid:?} must start with a lowercase letter"),
                    ));
                }
                metrics.insert(
                    mid.clone(),
                    metric_query(
                        id,
                        &m.namespace,
                        &m.metric_name,
                        &m.dimensions,
                        &m.statistic,
                        vars,
                    )?,
                );
            }
            for used in parsed.identifiers() {
                if !metrics.contains_key(&used) {
                    return Err(AlarmError::Expression {
                        alarm: id.to_owned(),
                        expression: expression.clone(),
                        problem: format!("{used:?} is not one of the alarm's metrics"),
                    });
                }
            }
            AlarmSource::Math {
                expression: parsed,
                expression_text: expression.clone(),
                label: def.label.clone(),
                metrics,
            }
        }
        (None, Some(metric_name)) => {
            let namespace = def
                .namespace
                .as_deref()
                .ok_or_else(|| invalid(id, "namespace is missing"))?;
            let statistic = def
                .statistic
                .as_deref()
                .ok_or_else(|| invalid(id, "statistic is missing"))?;
            AlarmSource::Metric(metric_query(
                id,
                namespace,
                metric_name,
                &def.dimensions,
                statistic,
                vars,
            )?)
        }
        _ => {
            return Err(invalid(
                id,
                "needs either metric_name or expression, not both",
            ))
        }
    };
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
    let period = Duration::from_secs(period_ms.div_ceil(1000));
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

// ---------------------------------------------------------------- metric math

/// A parsed metric-math expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    Id(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            tokens.push(Token::Num(
                s.parse().map_err(|_| format!("bad number {s:?}"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = match two.as_str() {
                ">=" | "<=" | "==" | "!=" | "&&" | "||" => {
                    i += 2;
                    match two.as_str() {
                        ">=" => ">=",
                        "<=" => "<=",
                        "==" => "==",
                        "!=" => "!=",
                        "&&" => "AND",
                        _ => "OR",
                    }
                }
                _ => {
                    i += 1;
                    match c {
                        '(' => {
                            tokens.push(Token::LParen);
                            continue;
                        }
                        ')' => {
                            tokens.push(Token::RParen);
                            continue;
                        }
                        ',' => {
                            tokens.push(Token::Comma);
                            continue;
                        }
                        '+' => "+",
                        '-' => "-",
                        '*' => "*",
                        '/' => "/",
                        '>' => ">",
                        '<' => "<",
                        '!' => "!",
                        other => return Err(format!("unexpected character {other:?}")),
                    }
                }
            };
            tokens.push(Token::Op(op));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.peek() {
            Some(Token::Op(op)) => Some(op),
            Some(Token::Ident(word)) if word.eq_ignore_ascii_case("AND") => Some("AND"),
            Some(Token::Ident(word)) if word.eq_ignore_ascii_case("OR") => Some("OR"),
            _ => None,
        }
    }

    /// Precedence climbing: OR < AND < comparison < additive < multiplicative.
    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: [&[&str]; 5] = [
            &["OR"],
            &["AND"],
            &[">", ">=", "<", "<=", "==", "!="],
            &["+", "-"],
            &["*", "/"],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        while let Some(op) = self.peek_op().filter(|op| LEVELS[level].contains(op)) {
            self.pos += 1;
            let right = self.binary(level + 1)?;
            let op = match op {
                "OR" => BinOp::Or,
                "AND" => BinOp::And,
                ">" => BinOp::Gt,
                ">=" => BinOp::Ge,
                "<" => BinOp::Lt,
                "<=" => BinOp::Le,
                "==" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                _ => BinOp::Div,
            };
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Token::Op("-")) => {
                self.pos += 1;
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(Token::Op("!")) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("NOT") => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Num(n)) => Ok(Expr::Number(n)),
            Some(Token::LParen) => {
                let e = self.binary(0)?;
                match self.next() {
                    Some(Token::RParen) => Ok(e),
                    _ => Err("expected ')'".into()),
                }
            }
            Some(Token::Ident(name)) => {
                if self.peek() != Some(&Token::LParen) {
                    return Ok(Expr::Id(name));
                }
                self.pos += 1;
                let function = name.to_ascii_uppercase();
                let mut args = Vec::new();
                if self.peek() == Some(&Token::RParen) {
                    self.pos += 1;
                } else {
                    loop {
                        args.push(self.binary(0)?);
                        match self.next() {
                            Some(Token::Comma) => continue,
                            Some(Token::RParen) => break,
                            _ => return Err(format!("expected ',' or ')' in {function}(...)")),
                        }
                    }
                }
                let arity_ok = match function.as_str() {
                    "IF" => args.len() == 2 || args.len() == 3,
                    "ABS" => args.len() == 1,
                    "MIN" | "MAX" => !args.is_empty(),
                    _ => return Err(format!("unsupported function {function}")),
                };
                if !arity_ok {
                    return Err(format!("wrong number of arguments to {function}"));
                }
                Ok(Expr::Call(function, args))
            }
            Some(other) => Err(format!("unexpected {other:?}")),
            None => Err("unexpected end of expression".into()),
        }
    }
}

/// Parses a metric-math expression.
pub fn parse_expression(text: &str) -> Result<Expr, String> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        pos: 0,
    };
    let expr = parser.binary(0)?;
    match parser.peek() {
        None => Ok(expr),
        Some(t) => Err(format!("unexpected {t:?} after the expression")),
    }
}

impl Expr {
    /// The metric ids the expression reads.
    pub fn identifiers(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_ids(&mut out);
        out.sort();
        out.dedup();
        out
    }

    fn collect_ids(&self, out: &mut Vec<String>) {
        match self {
            Expr::Number(_) => {}
            Expr::Id(id) => out.push(id.clone()),
            Expr::Neg(e) | Expr::Not(e) => e.collect_ids(out),
            Expr::Binary(_, a, b) => {
                a.collect_ids(out);
                b.collect_ids(out);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.collect_ids(out)),
        }
    }

    /// The value for one period; `None` where an input is missing or the
    /// result is not a finite number.
    pub fn eval(&self, env: &BTreeMap<String, Option<f64>>) -> Option<f64> {
        let truth = |b: bool| if b { 1.0 } else { 0.0 };
        let value = match self {
            Expr::Number(n) => *n,
            Expr::Id(id) => (*env.get(id)?)?,
            Expr::Neg(e) => -e.eval(env)?,
            Expr::Not(e) => truth(e.eval(env)? == 0.0),
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(env)?, b.eval(env)?);
                match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Gt => truth(a > b),
                    BinOp::Ge => truth(a >= b),
                    BinOp::Lt => truth(a < b),
                    BinOp::Le => truth(a <= b),
                    BinOp::Eq => truth(a == b),
                    BinOp::Ne => truth(a != b),
                    BinOp::And => truth(a != 0.0 && b != 0.0),
                    BinOp::Or => truth(a != 0.0 || b != 0.0),
                }
            }
            Expr::Call(function, args) => match function.as_str() {
                "IF" => {
                    // Only the chosen branch must exist; IF(c, a) drops the
                    // point where c is false, as in CloudWatch.
                    if args[0].eval(env)? != 0.0 {
                        args[1].eval(env)?
                    } else {
                        args.get(2)?.eval(env)?
                    }
                }
                "ABS" => args[0].eval(env)?.abs(),
                "MIN" => args
                    .iter()
                    .map(|a| a.eval(env))
                    .collect::<Option<Vec<f64>>>()?
                    .into_iter()
                    .fold(f64::INFINITY, f64::min),
                "MAX" => args
                    .iter()
                    .map(|a| a.eval(env))
                    .collect::<Option<Vec<f64>>>()?
                    .into_iter()
                    .fold(f64::NEG_INFINITY, f64::max),
                _ => return None,
            },
        };
        value.is_finite().then_some(value)
    }
}

// ---------------------------------------------------------------- evaluation

/// One datapoint of an alarm: the start of its period and its value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Datapoint {
    pub at_ms: i64,
    pub value: Option<f64>,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub state: AlarmState,
    pub reason: String,
    /// CloudWatch's `StateReasonData`.
    pub reason_data: Value,
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%d/%m/%y %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Decides the state from the last `evaluation_periods` datapoints (oldest
/// first), like CloudWatch; see the module docs for the missing-data rules.
pub fn evaluate(alarm: &Alarm, datapoints: &[Datapoint], current: AlarmState) -> Evaluation {
    let n = alarm.evaluation_periods;
    let m = alarm.datapoints_to_alarm;
    let window = &datapoints[datapoints.len().saturating_sub(n)..];
    let present: Vec<(i64, f64)> = window
        .iter()
        .filter_map(|d| d.value.map(|v| (d.at_ms, v)))
        .collect();
    let missing = window.len() - present.len() + n.saturating_sub(window.len());
    let breaching_present = present
        .iter()
        .filter(|(_, v)| alarm.comparison.breaches(*v, alarm.threshold))
        .count();
    let threshold = format_value(alarm.threshold);
    let listed: Vec<String> = present
        .iter()
        .rev()
        .map(|(at, v)| format!("{} ({})", format_value(*v), stamp(*at)))
        .collect();
    let reason_data = json!({
        "version": "1.0",
        "queryDate": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "statistic": match &alarm.source {
            AlarmSource::Metric(q) => Value::from(q.statistic.as_str()),
            AlarmSource::Math { .. } => Value::Null,
        },
        "period": alarm.period.as_secs(),
        "recentDatapoints": present.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        "threshold": alarm.threshold,
        "evaluatedDatapoints": window.iter().rev().map(|d| json!({
            "timestamp": DateTime::<Utc>::from_timestamp_millis(d.at_ms)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            "value": d.value,
        })).collect::<Vec<_>>(),
    });
    if present.is_empty() {
        let (state, reason) = match alarm.treat_missing_data {
            MissingData::Missing => (
                AlarmState::InsufficientData,
                format!("Insufficient Data: {n} datapoint(s) were unknown."),
            ),
            MissingData::Ignore => (
                current,
                format!("No datapoints in the last {n} period(s); the state is kept (treat missing data: ignore)."),
            ),
            MissingData::Breaching => (
                if n >= m { AlarmState::Alarm } else { AlarmState::Ok },
                format!("Threshold Crossed: no datapoints were received for {n} period(s) and {n} missing datapoint(s) were treated as [Breaching]."),
            ),
            MissingData::NotBreaching => (
                AlarmState::Ok,
                format!("Threshold Crossed: no datapoints were received for {n} period(s) and {n} missing datapoint(s) were treated as [NonBreaching]."),
            ),
        };
        return Evaluation {
            state,
            reason,
            reason_data,
        };
    }
    let breaching = breaching_present
        + match alarm.treat_missing_data {
            MissingData::Breaching => missing,
            _ => 0,
        };
    let phrase = alarm.comparison.phrase();
    let treated = match (alarm.treat_missing_data, missing) {
        (_, 0) => String::new(),
        (MissingData::Breaching, k) => {
            format!(" and {k} missing datapoint(s) were treated as [Breaching]")
        }
        (MissingData::NotBreaching, k) => {
            format!(" and {k} missing datapoint(s) were treated as [NonBreaching]")
        }
        (_, k) => format!(" ({k} missing datapoint(s) were not counted)"),
    };
    if breaching >= m {
        Evaluation {
            state: AlarmState::Alarm,
            reason: format!(
                "Threshold Crossed: {breaching} out of the last {n} datapoints [{}] were {phrase} the threshold ({threshold}){treated} (minimum {m} datapoints for OK -> ALARM transition).",
                listed.join(", ")
            ),
            reason_data,
        }
    } else {
        let ok = n - breaching;
        Evaluation {
            state: AlarmState::Ok,
            reason: format!(
                "Threshold Crossed: {ok} out of the last {n} datapoints [{}] were not {phrase} the threshold ({threshold}){treated} (minimum {} datapoints for ALARM -> OK transition).",
                listed.join(", "),
                n + 1 - m
            ),
            reason_data,
        }
    }
}

/// The datapoints of `alarm` for the last `evaluation_periods` complete
/// periods before `now_ms` (oldest first), read from the metric store.
pub fn datapoints(
    conn: &Connection,
    alarm: &Alarm,
    now_ms: i64,
) -> Result<Vec<Datapoint>, DbError> {
    let period_ms = alarm.period.as_millis() as i64;
    let end = now_ms - now_ms.rem_euclid(period_ms);
    let n = alarm.evaluation_periods;
    let from = end - period_ms * n as i64;
    let starts = (0..n).map(|i| from + period_ms * i as i64);
    let values: Vec<Option<f64>> = match &alarm.source {
        AlarmSource::Metric(q) => metrics::period_stats(conn, &q.key, from, period_ms, n)?
            .into_iter()
            .map(|s| s.map(|s| q.statistic.of(&s)))
            .collect(),
        AlarmSource::Math {
            expression,
            metrics: inputs,
            ..
        } => {
            let mut series: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
            for (id, q) in inputs {
                let values = metrics::period_stats(conn, &q.key, from, period_ms, n)?
                    .into_iter()
                    .map(|s| s.map(|s| q.statistic.of(&s)))
                    .collect();
                series.insert(id.as_str(), values);
            }
            (0..n)
                .map(|i| {
                    let env: BTreeMap<String, Option<f64>> = series
                        .iter()
                        .map(|(id, values)| ((*id).to_owned(), values[i]))
                        .collect();
                    // A period with no input at all has no datapoint, even
                    // if the expression would yield a constant there.
                    if env.values().all(Option::is_none) {
                        None
                    } else {
                        expression.eval(&env)
                    }
                })
                .collect()
        }
    };
    Ok(starts
        .zip(values)
        .map(|(at_ms, value)| Datapoint { at_ms, value })
        .collect())
}

// ---------------------------------------------------------------- state

/// The stored state of one alarm.
#[derive(Debug, Clone, Serialize)]
pub struct StoredState {
    pub name: String,
    pub state: AlarmState,
    pub reason: String,
    pub reason_data: Value,
    pub changed_at: String,
    pub evaluated_at: Option<String>,
    pub description: String,
}

/// One transition, as kept in `alarm_history`.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub name: String,
    pub old_state: AlarmState,
    pub new_state: AlarmState,
    pub reason: String,
    pub at: String,
}

fn parse_state(text: &str) -> Result<AlarmState, DbError> {
    AlarmState::parse(text).ok_or_else(|| DbError::Corrupt(format!("unknown alarm state {text:?}")))
}

/// Every stored alarm state, by name.
pub fn load_states(conn: &Connection) -> Result<Vec<StoredState>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT name, state, reason, reason_data, changed_at, evaluated_at, description
         FROM alarm_states ORDER BY name",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(name, state, reason, data, changed_at, evaluated_at, description)| {
                Ok(StoredState {
                    name,
                    state: parse_state(&state)?,
                    reason,
                    reason_data: serde_json::from_str(&data)?,
                    changed_at,
                    evaluated_at,
                    description,
                })
            },
        )
        .collect()
}

/// The most recent transitions, newest first.
pub fn load_history(conn: &Connection, limit: usize) -> Result<Vec<Transition>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT name, old_state, new_state, reason, at FROM alarm_history ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(name, old, new, reason, at)| {
            Ok(Transition {
                name,
                old_state: parse_state(&old)?,
                new_state: parse_state(&new)?,
                reason,
                at,
            })
        })
        .collect()
}

// ---------------------------------------------------------------- notifications

/// Where state changes go besides the log.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// Post the alarm message itself instead of the SNS envelope (SNS
    /// `RawMessageDelivery`).
    pub raw: bool,
}

/// The CloudWatch alarm message SNS delivers (its `Message`).
pub fn alarm_message(
    alarm: &Alarm,
    old: AlarmState,
    eval: &Evaluation,
    at: DateTime<Utc>,
) -> Value {
    let period = alarm.period.as_secs();
    let dims = |q: &MetricQuery| {
        q.key
            .dimensions
            .iter()
            .map(|(k, v)| json!({"value": v, "name": k}))
            .collect::<Vec<_>>()
    };
    let mut trigger = match &alarm.source {
        AlarmSource::Metric(q) => json!({
            "MetricName": q.key.name,
            "Namespace": q.key.namespace,
            "StatisticType": "Statistic",
            "Statistic": q.statistic.as_str().to_ascii_uppercase(),
            "Unit": null,
            "Dimensions": dims(q),
        }),
        AlarmSource::Math {
            expression_text,
            label,
            metrics,
            ..
        } => {
            let mut list = vec![json!({
                "Expression": expression_text,
                "Id": "expression",
                "Label": label,
                "ReturnData": true,
            })];
            for (id, q) in metrics {
                list.push(json!({
                    "Id": id,
                    "MetricStat": {
                        "Metric": {"Dimensions": dims(q), "MetricName": q.key.name, "Namespace": q.key.namespace},
                        "Period": period,
                        "Stat": q.statistic.as_str(),
                    },
                    "ReturnData": false,
                }));
            }
            json!({"Metrics": list})
        }
    };
    if let Some(t) = trigger.as_object_mut() {
        t.insert("Period".into(), json!(period));
        t.insert("EvaluationPeriods".into(), json!(alarm.evaluation_periods));
        t.insert("DatapointsToAlarm".into(), json!(alarm.datapoints_to_alarm));
        t.insert(
            "ComparisonOperator".into(),
            json!(alarm.comparison.as_str()),
        );
        t.insert("Threshold".into(), json!(alarm.threshold));
        t.insert(
            "TreatMissingData".into(),
            json!(alarm.treat_missing_data.as_str()),
        );
        t.insert("EvaluateLowSampleCountPercentile".into(), json!(""));
    }
    json!({
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": ACCOUNT_ID,
        "AlarmConfigurationUpdatedTimestamp": null,
        "NewStateValue": eval.state.as_str(),
        "NewStateReason": eval.reason,
        "StateChangeTime": at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
        "Region": REGION,
        "AlarmArn": format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{}", alarm.name),
        "OldStateValue": old.as_str(),
        "OKActions": [],
        "AlarmActions": [on_call_topic_arn()],
        "InsufficientDataActions": [],
        "Trigger": trigger,
    })
}

/// The local stand-in of the on-call SNS topic.
pub fn on_call_topic_arn() -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:{LOCAL_STACK}-on-call")
}

/// What SNS POSTs to an HTTPS subscriber for `message`.
pub fn sns_envelope(
    message: &Value,
    alarm_name: &str,
    new_state: AlarmState,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "TopicArn": on_call_topic_arn(),
        "Subject": format!("{new_state}: \"{alarm_name}\" in {REGION}"),
        "Message": message.to_string(),
        "Timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertURL": "",
        "UnsubscribeURL": "",
    })
}

/// Delivers to the webhook with a few retries (as SNS retries an HTTPS
/// endpoint); a failure is logged, never fatal.
async fn deliver(client: reqwest::Client, webhook: WebhookConfig, body: Value, alarm: String) {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=4 {
        let result = client
            .post(&webhook.url)
            .header("content-type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", "Notification")
            .header("x-amz-sns-topic-arn", on_call_topic_arn())
            .body(body.to_string())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => tracing::warn!(
                alarm = %alarm, attempt, status = response.status().as_u16(),
                "alarm webhook refused the notification"
            ),
            Err(err) => {
                tracing::warn!(alarm = %alarm, attempt, error = %err, "alarm webhook unreachable")
            }
        }
        tokio::time::sleep(delay).await;
        delay *= 3;
    }
    tracing::error!(alarm = %alarm, url = %webhook.url, "alarm notification not delivered after 4 attempts");
}

// ---------------------------------------------------------------- evaluator

/// Evaluates every alarm on a schedule and acts on transitions.
pub struct Evaluator {
    db: Db,
    alarms: Vec<Alarm>,
    webhook: Option<WebhookConfig>,
    client: reqwest::Client,
}

impl Evaluator {
    /// Registers the alarms (new ones start in INSUFFICIENT_DATA, as a new
    /// CloudWatch alarm does; known ones keep their stored state).
    pub async fn new(
        db: Db,
        alarms: Vec<Alarm>,
        webhook: Option<WebhookConfig>,
    ) -> Result<Arc<Self>, DbError> {
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let register: Vec<(String, String)> = alarms
            .iter()
            .map(|a| (a.name.clone(), a.description.clone()))
            .collect();
        db.write(move |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO alarm_states(name, state, reason, reason_data, changed_at, description)
                 VALUES (?1, 'INSUFFICIENT_DATA', 'Unchecked: Initial alarm creation', '{}', ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET description = excluded.description",
            )?;
            for (name, description) in &register {
                insert.execute(params![name, now, description])?;
            }
            Ok(())
        })
        .await?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| DbError::Corrupt(format!("cannot build the webhook client: {e}")))?;
        Ok(Arc::new(Self {
            db,
            alarms,
            webhook,
            client,
        }))
    }

    pub fn alarms(&self) -> &[Alarm] {
        &self.alarms
    }

    /// The shortest (scaled) period: how often evaluating is worth it.
    pub fn shortest_period(&self) -> Option<Duration> {
        self.alarms.iter().map(|a| a.period).min()
    }

    /// Evaluates every alarm at `now`, persists the results and notifies
    /// transitions. Returns the transitions.
    pub async fn evaluate_all(&self, now: DateTime<Utc>) -> Result<Vec<Transition>, DbError> {
        let now_ms = now.timestamp_millis();
        let alarms = self.alarms.clone();
        let evaluations = self
            .db
            .read(move |conn| {
                let current: BTreeMap<String, AlarmState> = load_states(conn)?
                    .into_iter()
                    .map(|s| (s.name, s.state))
                    .collect();
                alarms
                    .iter()
                    .map(|alarm| {
                        let old = current
                            .get(&alarm.name)
                            .copied()
                            .unwrap_or(AlarmState::InsufficientData);
                        let points = datapoints(conn, alarm, now_ms)?;
                        Ok((alarm.clone(), old, evaluate(alarm, &points, old)))
                    })
                    .collect::<Result<Vec<_>, DbError>>()
            })
            .await?;
        let at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let rows: Vec<(String, AlarmState, AlarmState, String, String)> = evaluations
            .iter()
            .map(|(a, old, e)| {
                (
                    a.name.clone(),
                    *old,
                    e.state,
                    e.reason.clone(),
                    e.reason_data.to_string(),
                )
            })
            .collect();
        let at_row = at.clone();
        self.db
            .write(move |conn| {
                for (name, old, new, reason, data) in &rows {
                    if old == new {
                        conn.execute(
                            "UPDATE alarm_states SET evaluated_at = ?2 WHERE name = ?1",
                            params![name, at_row],
                        )?;
                    } else {
                        conn.execute(
                            "UPDATE alarm_states SET state = ?2, reason = ?3, reason_data = ?4,
                                 changed_at = ?5, evaluated_at = ?5 WHERE name = ?1",
                            params![name, new.as_str(), reason, data, at_row],
                        )?;
                        conn.execute(
                            "INSERT INTO alarm_history(name, old_state, new_state, reason, at)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![name, old.as_str(), new.as_str(), reason, at_row],
                        )?;
                    }
                }
                Ok(())
            })
            .await?;
        let mut transitions = Vec::new();
        for (alarm, old, eval) in evaluations {
            if old == eval.state {
                continue;
            }
            self.notify(&alarm, old, &eval, now);
            transitions.push(Transition {
                name: alarm.name.clone(),
                old_state: old,
                new_state: eval.state,
                reason: eval.reason.clone(),
                at: at.clone(),
            });
        }
        Ok(transitions)
    }

    fn notify(&self, alarm: &Alarm, old: AlarmState, eval: &Evaluation, at: DateTime<Utc>) {
        if eval.state == AlarmState::Alarm {
            tracing::warn!(
                target: "dofs::alarm",
                alarm = %alarm.name, old_state = %old, new_state = %eval.state,
                reason = %eval.reason, "alarm state changed"
            );
        } else {
            tracing::info!(
                target: "dofs::alarm",
                alarm = %alarm.name, old_state = %old, new_state = %eval.state,
                reason = %eval.reason, "alarm state changed"
            );
        }
        let Some(webhook) = self.webhook.clone() else {
            return;
        };
        let message = alarm_message(alarm, old, eval, at);
        let body = if webhook.raw {
            message
        } else {
            sns_envelope(&message, &alarm.name, eval.state, at)
        };
        tokio::spawn(deliver(
            self.client.clone(),
            webhook,
            body,
            alarm.name.clone(),
        ));
    }
}

/// How the metrics-and-alarms loop runs.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Sample queues, flush metrics and evaluate alarms this often.
    pub interval: Duration,
    /// Metric points older than this are deleted.
    pub retention: Duration,
}

/// The loop behind `dofs serve`'s metrics and alarms: sample the SQS
/// gauges, flush the metric aggregate, evaluate the alarms; until `stop`,
/// then one last flush.
pub async fn run_monitor(
    db: Db,
    store: metrics::MetricsStore,
    evaluator: Arc<Evaluator>,
    config: MonitorConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        ticks += 1;
        if let Err(err) = metrics::sample_queues(&db, &store).await {
            tracing::warn!(error = %err, "could not sample the queues");
        }
        // Pruning is a range delete; once a minute is plenty.
        let prune = (ticks % 60 == 1)
            .then(|| Utc::now().timestamp_millis() - config.retention.as_millis() as i64);
        if let Err(err) = store.flush(&db, prune).await {
            tracing::warn!(error = %err, "could not store metrics");
            continue;
        }
        if let Err(err) = evaluator.evaluate_all(Utc::now()).await {
            tracing::warn!(error = %err, "could not evaluate the alarms");
        }
    }
    if let Err(err) = store.flush(&db, None).await {
        tracing::warn!(error = %err, "could not store the last metrics");
    }
}

/// Reads a stored state, by name.
pub fn load_state(conn: &Connection, name: &str) -> Result<Option<StoredState>, DbError> {
    let exists: Option<String> = conn
        .query_row(
            "SELECT name FROM alarm_states WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    match exists {
        None => Ok(None),
        Some(_) => Ok(load_states(conn)?.into_iter().find(|s| s.name == name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(
        comparison: Comparison,
        threshold: f64,
        n: usize,
        m: usize,
        missing: MissingData,
    ) -> Alarm {
        Alarm {
            name: "dofs-test".into(),
            id: "test".into(),
            description: String::new(),
            source: AlarmSource::Metric(MetricQuery {
                key: SeriesKey::new(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    &[("QueueName", "q")],
                ),
                statistic: Statistic::Maximum,
            }),
            period_seconds: 60,
            period: Duration::from_secs(60),
            evaluation_periods: n,
            datapoints_to_alarm: m,
            threshold,
            comparison,
            treat_missing_data: missing,
        }
    }

    fn points(values: &[Option<f64>]) -> Vec<Datapoint> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Datapoint {
                at_ms: 1_700_000_000_000 + 60_000 * i as i64,
                value: *v,
            })
            .collect()
    }

    fn state(a: &Alarm, values: &[Option<f64>], current: AlarmState) -> AlarmState {
        evaluate(a, &points(values), current).state
    }

    #[test]
    fn each_comparison_breaches_on_its_side_of_the_threshold() {
        use Comparison::*;
        let cases = [
            (
                GreaterThanThreshold,
                [(6.0, true), (5.0, false), (4.0, false)],
            ),
            (
                GreaterThanOrEqualToThreshold,
                [(6.0, true), (5.0, true), (4.0, false)],
            ),
            (LessThanThreshold, [(6.0, false), (5.0, false), (4.0, true)]),
            (
                LessThanOrEqualToThreshold,
                [(6.0, false), (5.0, true), (4.0, true)],
            ),
        ];
        for (cmp, values) in cases {
            let a = alarm(cmp, 5.0, 1, 1, MissingData::Missing);
            for (v, breach) in values {
                let expected = if breach {
                    AlarmState::Alarm
                } else {
                    AlarmState::Ok
                };
                assert_eq!(
                    state(&a, &[Some(v)], AlarmState::Ok),
                    expected,
                    "{cmp:?} {v}"
                );
            }
            assert_eq!(Comparison::parse(cmp.as_str()), Some(cmp));
        }
        assert_eq!(
            Comparison::parse("LessThanLowerOrGreaterThanUpperThreshold"),
            None
        );
    }

    #[test]
    fn m_of_n_needs_m_breaching_datapoints_in_the_window() {
        let a = alarm(
            Comparison::GreaterThanThreshold,
            300.0,
            5,
            3,
            MissingData::NotBreaching,
        );
        let v = |x: f64| Some(x);
        assert_eq!(
            state(
                &a,
                &[v(400.0), v(0.0), v(400.0), v(0.0), v(0.0)],
                AlarmState::Ok
            ),
            AlarmState::Ok
        );
        assert_eq!(
            state(
                &a,
                &[v(400.0), v(0.0), v(400.0), v(0.0), v(301.0)],
                AlarmState::Ok
            ),
            AlarmState::Alarm
        );
        // Only the last N count: an older breach has aged out.
        assert_eq!(
            state(
                &a,
                &[v(900.0), v(900.0), v(0.0), v(0.0), v(0.0), v(400.0)],
                AlarmState::Alarm
            ),
            AlarmState::Ok
        );
        let e = evaluate(
            &a,
            &points(&[v(400.0), v(0.0), v(400.0), v(0.0), v(301.0)]),
            AlarmState::Ok,
        );
        assert!(
            e.reason.contains("3 out of the last 5 datapoints"),
            "{}",
            e.reason
        );
        assert!(
            e.reason.contains("greater than the threshold (300.0)"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn missing_data_treatments() {
        let all_missing = [None, None, None];
        let cases = [
            (MissingData::Missing, AlarmState::InsufficientData),
            (MissingData::Ignore, AlarmState::Alarm), // keeps the current state
            (MissingData::Breaching, AlarmState::Alarm),
            (MissingData::NotBreaching, AlarmState::Ok),
        ];
        for (treatment, expected) in cases {
            let a = alarm(Comparison::GreaterThanThreshold, 0.0, 3, 2, treatment);
            assert_eq!(
                state(&a, &all_missing, AlarmState::Alarm),
                expected,
                "{treatment:?}"
            );
        }
        let a = alarm(
            Comparison::GreaterThanThreshold,
            0.0,
            3,
            2,
            MissingData::Ignore,
        );
        assert_eq!(state(&a, &all_missing, AlarmState::Ok), AlarmState::Ok);

        // One breaching point and two missing, 2 of 3 to alarm.
        let some = [Some(1.0), None, None];
        let expect = [
            (MissingData::Breaching, AlarmState::Alarm),
            (MissingData::NotBreaching, AlarmState::Ok),
            (MissingData::Missing, AlarmState::Ok),
            (MissingData::Ignore, AlarmState::Ok),
        ];
        for (treatment, expected) in expect {
            let a = alarm(Comparison::GreaterThanThreshold, 0.0, 3, 2, treatment);
            assert_eq!(
                state(&a, &some, AlarmState::InsufficientData),
                expected,
                "{treatment:?}"
            );
        }
        // Two present breaching points alarm whatever the treatment.
        for treatment in [
            MissingData::Missing,
            MissingData::Ignore,
            MissingData::NotBreaching,
        ] {
            let a = alarm(Comparison::GreaterThanThreshold, 0.0, 3, 2, treatment);
            assert_eq!(
                state(&a, &[Some(1.0), None, Some(2.0)], AlarmState::Ok),
                AlarmState::Alarm
            );
        }
    }

    #[test]
    fn metric_math_parses_and_evaluates_like_cloudwatch() {
        let e = parse_expression("IF(invocations > 0, 100 * errors / invocations, 0)").unwrap();
        assert_eq!(e.identifiers(), ["errors", "invocations"]);
        let env = |e: Option<f64>, i: Option<f64>| {
            BTreeMap::from([("errors".to_owned(), e), ("invocations".to_owned(), i)])
        };
        assert_eq!(e.eval(&env(Some(1.0), Some(10.0))), Some(10.0));
        assert_eq!(e.eval(&env(Some(0.0), Some(0.0))), Some(0.0));
        assert_eq!(e.eval(&env(Some(1.0), None)), None);
        let p = parse_expression("1 + 2 * 3 - -4 / 2").unwrap();
        assert_eq!(p.eval(&BTreeMap::new()), Some(9.0));
        let p = parse_expression("(1 + 2) * 3 >= 9 AND NOT 0 || 0").unwrap();
        assert_eq!(p.eval(&BTreeMap::new()), Some(1.0));
        assert_eq!(
            parse_expression("1 / 0").unwrap().eval(&BTreeMap::new()),
            None
        );
        assert_eq!(
            parse_expression("MAX(1, ABS(-7), 3)")
                .unwrap()
                .eval(&BTreeMap::new()),
            Some(7.0)
        );
        assert_eq!(
            parse_expression("IF(0, 1)").unwrap().eval(&BTreeMap::new()),
            None
        );
        for bad in ["1 +", "IF(1)", "FOO(1)", "(1", "1 2", "a $ b"] {
            assert!(parse_expression(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_shared_alarm_file_loads_with_local_names() {
        let alarms = load(ALARMS_JSON, &Bindings::local(), 1.0).unwrap();
        let names: Vec<&str> = alarms.iter().map(|a| a.name.as_str()).collect();
        assert!(names.contains(&"dofs-dlq-depth"), "{names:?}");
        assert!(
            names.contains(&"dofs-fulfill_order-lambda-error-rate"),
            "{names:?}"
        );
        let dlq = alarms.iter().find(|a| a.id == "dlq-depth").unwrap();
        match &dlq.source {
            AlarmSource::Metric(q) => {
                assert_eq!(q.key.dimensions["QueueName"], crate::cli::DEAD_LETTER_QUEUE);
                assert_eq!(q.statistic, Statistic::Maximum);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(dlq.period, Duration::from_secs(300));
        let per_function = alarms
            .iter()
            .filter(|a| a.id == "lambda-error-rate")
            .count();
        assert_eq!(per_function, crate::functions::FunctionName::ALL.len());
        let order_age = alarms
            .iter()
            .find(|a| a.id == "order-queue-oldest-message-age")
            .unwrap();
        assert_eq!(
            (order_age.evaluation_periods, order_age.datapoints_to_alarm),
            (5, 3)
        );

        let scaled = load(ALARMS_JSON, &Bindings::local(), 0.01).unwrap();
        let dlq = scaled.iter().find(|a| a.id == "dlq-depth").unwrap();
        assert_eq!(dlq.period, Duration::from_secs(3));
        let order_age = scaled
            .iter()
            .find(|a| a.id == "order-queue-oldest-message-age")
            .unwrap();
        assert_eq!(
            order_age.period,
            Duration::from_secs(1),
            "floor of one second"
        );
    }

    #[test]
    fn every_placeholder_the_file_declares_is_bound_locally() {
        let file: Value = serde_json::from_str(ALARMS_JSON).unwrap();
        let bindings = Bindings::local();
        for name in file["placeholders"].as_object().unwrap().keys() {
            assert!(
                name == "function_name" || bindings.placeholders.contains_key(name),
                "${{{name}}} has no local value"
            );
        }
    }

    #[test]
    fn bad_definitions_are_refused_with_the_alarm_named() {
        let file = |body: &str| format!(r#"{{"alarms": [{body}]}}"#);
        let base = r#""name": "x", "namespace": "N", "metric_name": "M", "statistic": "Sum", "period": 60, "evaluation_periods": 1, "threshold": 0, "comparison": "GreaterThanThreshold""#;
        assert!(load(&file(&format!("{{{base}}}")), &Bindings::local(), 1.0).is_ok());
        let broken = [
            base.replace("Sum", "p99"),
            base.replace("GreaterThanThreshold", "Sideways"),
            format!(r#"{base}, "dimensions": {{"Q": "${{nope}}"}}"#),
            format!(r#"{base}, "datapoints_to_alarm": 2"#),
            base.replace(r#""metric_name": "M", "#, r#""expression": "a +", "#),
        ];
        for body in broken {
            let err = load(&file(&format!("{{{body}}}")), &Bindings::local(), 1.0).unwrap_err();
            assert!(err.to_string().contains("alarm x"), "{err}");
        }
    }

    #[tokio::test]
    async fn metric_math_datapoints_come_from_the_store_and_drive_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let alarms = load(ALARMS_JSON, &Bindings::local(), 0.01).unwrap();
        let rate = alarms
            .iter()
            .find(|a| a.name == "dofs-validator-lambda-error-rate")
            .unwrap()
            .clone();
        let store = metrics::MetricsStore::new();
        let period_ms = rate.period.as_millis() as i64;
        let now = 1_700_000_000_000 - 1_700_000_000_000 % period_ms + 10;
        let in_last_period = now - period_ms;
        let dims = [("FunctionName", "dofs-validator")];
        for i in 0..10 {
            store.record_at(
                SeriesKey::new("AWS/Lambda", "Invocations", &dims),
                "Count",
                1.0,
                in_last_period,
            );
            store.record_at(
                SeriesKey::new("AWS/Lambda", "Errors", &dims),
                "Count",
                if i < 2 { 1.0 } else { 0.0 },
                in_last_period,
            );
        }
        store.flush(&db, None).await.unwrap();
        let a = rate.clone();
        let points = db.read(move |c| datapoints(c, &a, now)).await.unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].value, Some(20.0));
        assert_eq!(
            evaluate(&rate, &points, AlarmState::Ok).state,
            AlarmState::Alarm
        );

        let evaluator = Evaluator::new(db.clone(), vec![rate.clone()], None)
            .await
            .unwrap();
        let at = DateTime::<Utc>::from_timestamp_millis(now).unwrap();
        let transitions = evaluator.evaluate_all(at).await.unwrap();
        assert_eq!(transitions.len(), 1);
        assert_eq!(transitions[0].old_state, AlarmState::InsufficientData);
        assert_eq!(transitions[0].new_state, AlarmState::Alarm);
        // Same data, same state: no second transition.
        assert!(evaluator.evaluate_all(at).await.unwrap().is_empty());
        let (states, history) = db
            .read(|c| Ok((load_states(c)?, load_history(c, 10)?)))
            .await
            .unwrap();
        assert_eq!(states[0].state, AlarmState::Alarm);
        assert_eq!(history.len(), 1);
        // A later period with no invocations: missing, treated as not breaching.
        let later = DateTime::<Utc>::from_timestamp_millis(now + 2 * period_ms).unwrap();
        let back = evaluator.evaluate_all(later).await.unwrap();
        assert_eq!(back[0].new_state, AlarmState::Ok);
    }

    #[test]
    fn the_notification_looks_like_cloudwatch_through_sns() {
        let alarms = load(ALARMS_JSON, &Bindings::local(), 1.0).unwrap();
        let dlq = alarms.iter().find(|a| a.id == "dlq-depth").unwrap();
        let eval = evaluate(dlq, &points(&[Some(3.0), Some(5.0)]), AlarmState::Ok);
        let at = Utc::now();
        let message = alarm_message(dlq, AlarmState::Ok, &eval, at);
        assert_eq!(message["AlarmName"], "dofs-dlq-depth");
        assert_eq!(message["NewStateValue"], "ALARM");
        assert_eq!(message["OldStateValue"], "OK");
        assert_eq!(
            message["Trigger"]["MetricName"],
            "ApproximateNumberOfMessagesVisible"
        );
        assert_eq!(
            message["Trigger"]["Dimensions"][0]["value"],
            crate::cli::DEAD_LETTER_QUEUE
        );
        assert_eq!(message["Trigger"]["Statistic"], "MAXIMUM");
        let envelope = sns_envelope(&message, "dofs-dlq-depth", AlarmState::Alarm, at);
        assert_eq!(envelope["Type"], "Notification");
        let inner: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
        assert_eq!(inner, message);

        let rate = alarms.iter().find(|a| a.id == "lambda-error-rate").unwrap();
        let eval = evaluate(rate, &points(&[Some(50.0)]), AlarmState::Ok);
        let message = alarm_message(rate, AlarmState::Ok, &eval, at);
        let list = message["Trigger"]["Metrics"].as_array().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(
            list[0]["Expression"],
            "IF(invocations > 0, 100 * errors / invocations, 0)"
        );
    }
}
