//! Choice rules (<https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html>).
//!
//! Semantics that are easy to get wrong:
//! - a comparison whose operands are not of the operator's type (a number
//!   against `StringEquals`, a non-timestamp against `TimestampEquals`) is simply
//!   false, not an error;
//! - a `Variable` (or `...Path` operand) that selects nothing is
//!   `States.Runtime`; only `IsPresent` may look at a missing field;
//! - `StringMatches` knows one wildcard, `*`; `\*` and `\\` are literal.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::path::Path;
use super::TaskFailure;

/// A Choice rule: a boolean combination of data tests.
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test { variable: Path, test: Test },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    String,
    Numeric,
    Timestamp,
    Boolean,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Compare {
        kind: Kind,
        op: Op,
        operand: Operand,
    },
    Matches(Vec<Glob>),
    IsPresent(bool),
    IsType {
        kind: TypeTest,
        expected: bool,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum TypeTest {
    Null,
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Glob {
    Char(char),
    Star,
}

/// A top-level Choice: a rule and where to go when it holds.
#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub(crate) rule: Rule,
    pub(crate) next: String,
}

impl Branch {
    pub(crate) fn parse(value: &Value) -> Result<Self, String> {
        let map = value.as_object().ok_or("a Choice rule must be an object")?;
        let next = map
            .get("Next")
            .and_then(Value::as_str)
            .ok_or("a top-level Choice rule needs a string `Next`")?
            .to_owned();
        Ok(Self {
            rule: Rule::parse_map(map, true)?,
            next,
        })
    }
}

impl Rule {
    fn parse(value: &Value) -> Result<Self, String> {
        let map = value.as_object().ok_or("a Choice rule must be an object")?;
        Self::parse_map(map, false)
    }

    fn parse_map(map: &Map<String, Value>, top_level: bool) -> Result<Self, String> {
        let mut operators: Vec<(&String, &Value)> = Vec::new();
        for (key, value) in map {
            match key.as_str() {
                "Variable" | "Comment" => {}
                "Next" if top_level => {}
                "Next" => {
                    return Err("`Next` is only allowed on a top-level Choice rule".to_owned())
                }
                _ => operators.push((key, value)),
            }
        }
        let [(operator, operand)] = operators[..] else {
            return Err(format!(
                "a Choice rule needs exactly one operator, found {}",
                if operators.is_empty() {
                    "none".to_owned()
                } else {
                    operators
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        };
        let variable = map.get("Variable");
        match operator.as_str() {
            "And" | "Or" | "Not" => {
                if variable.is_some() {
                    return Err(format!("`{operator}` does not take a `Variable`"));
                }
                if operator == "Not" {
                    return Ok(Rule::Not(Box::new(Rule::parse(operand)?)));
                }
                let rules = operand
                    .as_array()
                    .filter(|rules| !rules.is_empty())
                    .ok_or_else(|| format!("`{operator}` needs a non-empty array of rules"))?
                    .iter()
                    .map(Rule::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if operator == "And" {
                    Rule::And(rules)
                } else {
                    Rule::Or(rules)
                })
            }
            _ => {
                let variable = variable
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`{operator}` needs a string `Variable`"))?;
                let variable = Path::parse(variable)?;
                Ok(Rule::Test {
                    variable,
                    test: Test::parse(operator, operand)?,
                })
            }
        }
    }

    pub(crate) fn eval(&self, input: &Value, context: &Value) -> Result<bool, TaskFailure> {
        match self {
            Rule::And(rules) => {
                for rule in rules {
                    if !rule.eval(input, context)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for rule in rules {
                    if rule.eval(input, context)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(rule) => Ok(!rule.eval(input, context)?),
            Rule::Test { variable, test } => {
                if let Test::IsPresent(expected) = test {
                    return Ok(variable.lookup(input, context).is_some() == *expected);
                }
                let value = variable.select(input, context, "Variable")?;
                test.eval(&value, input, context)
            }
        }
    }
}

impl Test {
    fn parse(operator: &str, operand: &Value) -> Result<Self, String> {
        let comparisons: [(&str, Kind, Op); 17] = [
            ("StringEquals", Kind::String, Op::Eq),
            ("StringLessThan", Kind::String, Op::Lt),
            ("StringGreaterThan", Kind::String, Op::Gt),
            ("StringLessThanEquals", Kind::String, Op::Le),
            ("StringGreaterThanEquals", Kind::String, Op::Ge),
            ("NumericEquals", Kind::Numeric, Op::Eq),
            ("NumericLessThan", Kind::Numeric, Op::Lt),
            ("NumericGreaterThan", Kind::Numeric, Op::Gt),
            ("NumericLessThanEquals", Kind::Numeric, Op::Le),
            ("NumericGreaterThanEquals", Kind::Numeric, Op::Ge),
            ("TimestampEquals", Kind::Timestamp, Op::Eq),
            ("TimestampLessThan", Kind::Timestamp, Op::Lt),
            ("TimestampGreaterThan", Kind::Timestamp, Op::Gt),
            ("TimestampLessThanEquals", Kind::Timestamp, Op::Le),
            ("TimestampGreaterThanEquals", Kind::Timestamp, Op::Ge),
            ("BooleanEquals", Kind::Boolean, Op::Eq),
            ("StringMatches", Kind::String, Op::Eq),
        ];
        if operator == "StringMatches" {
            let pattern = operand
                .as_str()
                .ok_or("`StringMatches` needs a string pattern")?;
            return Ok(Test::Matches(compile_glob(pattern)));
        }
        let (base, is_path) = match operator.strip_suffix("Path") {
            Some(base) => (base, true),
            None => (operator, false),
        };
        if let Some((_, kind, op)) = comparisons.iter().find(|(name, _, _)| *name == base) {
            let operand = if is_path {
                let text = operand
                    .as_str()
                    .ok_or_else(|| format!("`{operator}` needs a path string"))?;
                Operand::Path(Path::parse(text)?)
            } else {
                let well_typed = match kind {
                    Kind::String => operand.is_string(),
                    Kind::Numeric => operand.is_number(),
                    Kind::Boolean => operand.is_boolean(),
                    Kind::Timestamp => operand.as_str().and_then(timestamp).is_some(),
                };
                if !well_typed {
                    return Err(format!(
                        "`{operator}` has an operand of the wrong type: {operand}"
                    ));
                }
                Operand::Literal(operand.clone())
            };
            return Ok(Test::Compare {
                kind: *kind,
                op: *op,
                operand,
            });
        }
        let expected = || {
            operand
                .as_bool()
                .ok_or_else(|| format!("`{operator}` takes `true` or `false`"))
        };
        let type_test = match operator {
            "IsPresent" => return Ok(Test::IsPresent(expected()?)),
            "IsNull" => TypeTest::Null,
            "IsString" => TypeTest::String,
            "IsNumeric" => TypeTest::Numeric,
            "IsBoolean" => TypeTest::Boolean,
            "IsTimestamp" => TypeTest::Timestamp,
            _ => return Err(format!("unknown Choice operator `{operator}`")),
        };
        Ok(Test::IsType {
            kind: type_test,
            expected: expected()?,
        })
    }

    fn eval(&self, value: &Value, input: &Value, context: &Value) -> Result<bool, TaskFailure> {
        Ok(match self {
            Test::IsPresent(expected) => *expected,
            Test::IsType { kind, expected } => {
                let actual = match kind {
                    TypeTest::Null => value.is_null(),
                    TypeTest::String => value.is_string(),
                    TypeTest::Numeric => value.is_number(),
                    TypeTest::Boolean => value.is_boolean(),
                    TypeTest::Timestamp => value.as_str().and_then(timestamp).is_some(),
                };
                actual == *expected
            }
            Test::Matches(pattern) => value.as_str().is_some_and(|s| glob_matches(pattern, s)),
            Test::Compare { kind, op, operand } => {
                let other = match operand {
                    Operand::Literal(value) => value.clone(),
                    Operand::Path(path) => path.select(input, context, "comparison operand")?,
                };
                let ordering = match kind {
                    Kind::String => match (value.as_str(), other.as_str()) {
                        (Some(a), Some(b)) => Some(a.cmp(b)),
                        _ => None,
                    },
                    Kind::Numeric => compare_numbers(value, &other),
                    Kind::Timestamp => match (
                        value.as_str().and_then(timestamp),
                        other.as_str().and_then(timestamp),
                    ) {
                        (Some(a), Some(b)) => Some(a.cmp(&b)),
                        _ => None,
                    },
                    Kind::Boolean => match (value.as_bool(), other.as_bool()) {
                        (Some(a), Some(b)) => Some(a.cmp(&b)),
                        _ => None,
                    },
                };
                ordering.is_some_and(|ordering| match op {
                    Op::Eq => ordering == Ordering::Equal,
                    Op::Lt => ordering == Ordering::Less,
                    Op::Gt => ordering == Ordering::Greater,
                    Op::Le => ordering != Ordering::Greater,
                    Op::Ge => ordering != Ordering::Less,
                })
            }
        })
    }
}

/// Integers compare exactly (beyond 2^53 too); anything else as f64.
fn compare_numbers(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Step Functions timestamps are RFC 3339 with an uppercase `T` and an explicit offset.
pub(crate) fn timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    if text.contains('t') || text.contains(' ') {
        return None;
    }
    DateTime::parse_from_rfc3339(text).ok()
}

fn compile_glob(pattern: &str) -> Vec<Glob> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(Glob::Char(chars.next().unwrap_or('\\'))),
            '*' => out.push(Glob::Star),
            c => out.push(Glob::Char(c)),
        }
    }
    out
}

/// Wildcard matching with backtracking to the last `*` (linear in practice).
fn glob_matches(pattern: &[Glob], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Glob::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Glob::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|g| *g == Glob::Star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(rule: Value, input: Value) -> Result<bool, TaskFailure> {
        let mut rule = rule;
        rule["Next"] = json!("X");
        Branch::parse(&rule).unwrap().rule.eval(&input, &json!({}))
    }

    #[test]
    fn glob_handles_stars_and_escapes() {
        let m = |p: &str, t: &str| glob_matches(&compile_glob(p), t);
        assert!(m("*.log", "app.log"));
        assert!(m("log-*-2024-*", "log-a-2024-b"));
        assert!(!m("*.log", "app.txt"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "abxbc"));
        assert!(!m("abc", "ab"));
    }

    #[test]
    fn type_mismatch_is_false_not_an_error() {
        assert!(!holds(
            json!({"Variable": "$.n", "StringEquals": "1"}),
            json!({"n": 1})
        )
        .unwrap());
        assert!(!holds(
            json!({"Variable": "$.s", "NumericEquals": 1}),
            json!({"s": "1"})
        )
        .unwrap());
        assert!(!holds(
            json!({"Variable": "$.s", "TimestampLessThan": "2024-01-01T00:00:00Z"}),
            json!({"s": "x"})
        )
        .unwrap());
    }

    #[test]
    fn missing_variable_is_runtime_error_except_for_is_present() {
        let err = holds(json!({"Variable": "$.x", "IsNull": true}), json!({})).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        assert!(holds(json!({"Variable": "$.x", "IsPresent": false}), json!({})).unwrap());
        assert!(holds(
            json!({"Variable": "$.x", "IsPresent": true}),
            json!({"x": null})
        )
        .unwrap());
    }

    #[test]
    fn numbers_compare_exactly_and_as_floats() {
        let big = json!({"a": 9_007_199_254_740_993_i64, "b": 9_007_199_254_740_992_i64});
        assert!(holds(
            json!({"Variable": "$.a", "NumericGreaterThanPath": "$.b"}),
            big
        )
        .unwrap());
        assert!(holds(
            json!({"Variable": "$.n", "NumericLessThanEquals": 2.5}),
            json!({"n": 2.5})
        )
        .unwrap());
        assert!(holds(
            json!({"Variable": "$.n", "NumericEquals": 2}),
            json!({"n": 2.0})
        )
        .unwrap());
    }

    #[test]
    fn definition_errors() {
        for bad in [
            json!({"Variable": "$.a", "StringEquals": 1, "Next": "X"}),
            json!({"Variable": "$.a", "Next": "X"}),
            json!({"Variable": "$.a", "StringEquals": "a", "IsNull": true, "Next": "X"}),
            json!({"And": [], "Next": "X"}),
            json!({"Not": {"Variable": "$.a", "IsNull": true, "Next": "Y"}, "Next": "X"}),
            json!({"Variable": "$.a", "Frobnicates": 1, "Next": "X"}),
            json!({"Variable": "$.a", "TimestampEquals": "yesterday", "Next": "X"}),
            json!({"Variable": "$.a", "IsNull": true}),
        ] {
            assert!(Branch::parse(&bad).is_err(), "{bad}");
        }
    }
}
