//! Lambda configuration from the environment, checked once at startup.
//!
//! Each function has a config type listing exactly the variables it needs
//! (`terraform/tests/check_consistency.py` checks that each function's
//! `from_env` names exactly what `terraform/functions.tf` gives it).
//! Loading one reports *every* missing or invalid variable by name in a
//! single [`ConfigError`], so a broken deployment is fixed in one go; the
//! bootstrap turns that error into a `/runtime/init/error` (see
//! [`crate::startup`]). Nothing here reads the environment after startup.
//!
//! SDK-free by design: values are parsed into plain types. The state
//! machine is a [`StateMachineArn`] from `dofs-core` — the type the
//! `dofs-aws` Step Functions adapter takes — rather than anything of the
//! SDK's, so a crate that needs a function's configuration (or its handler
//! library) does not compile the AWS SDK.
//!
//! `LOG_LEVEL` belongs to `dofs-telemetry`, which reads it when it sets up
//! logging.

use std::collections::BTreeMap;
use std::fmt;

use dofs_core::StateMachineArn;

pub const ORDERS_TABLE: &str = "ORDERS_TABLE";
pub const FAILED_ORDERS_TABLE: &str = "FAILED_ORDERS_TABLE";
pub const STATE_MACHINE_ARN: &str = "STATE_MACHINE_ARN";
pub const FAILURE_RATE: &str = "FAILURE_RATE";
/// Optional: seeds fulfill_order's simulated failures, for reproducible runs.
pub const FAILURE_SEED: &str = "FAILURE_SEED";
/// Optional: the share of orders api_handler traces in X-Ray, 0 to 1
/// (Terraform's `order_trace_sample_rate`).
pub const ORDER_TRACE_SAMPLE_RATE: &str = "ORDER_TRACE_SAMPLE_RATE";

/// The failure rate when `FAILURE_RATE` is not set.
pub const DEFAULT_FAILURE_RATE: f64 = 0.3;
/// The order trace sample rate when `ORDER_TRACE_SAMPLE_RATE` is not set:
/// every order.
pub const DEFAULT_ORDER_TRACE_SAMPLE_RATE: f64 = 1.0;

/// A snapshot of environment variables. Tests build one from pairs instead
/// of mutating the process environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The process environment (variables that are not UTF-8 are skipped,
    /// and so reported as missing if they are needed).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, treating an empty (or blank) value as unset:
    /// Terraform renders a missing reference as "".
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// One variable that is missing or has an unusable value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    /// `None` when the variable is not set.
    pub value: Option<String>,
    /// What a valid value looks like.
    pub expected: &'static str,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            None => write!(
                f,
                "{} is not set (expected {})",
                self.variable, self.expected
            ),
            Some(value) => write!(
                f,
                "{}={value:?} is invalid (expected {})",
                self.variable, self.expected
            ),
        }
    }
}

/// Every problem found while loading a function's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// The names of the offending variables.
    pub fn variables(&self) -> Vec<&'static str> {
        self.problems.iter().map(|p| p.variable).collect()
    }
}

/// Reads variables and collects problems instead of stopping at the first.
struct Reader<'a> {
    env: &'a Env,
    problems: Vec<Problem>,
}

const TABLE_EXPECTED: &str =
    "a DynamoDB table name (3-255 characters of A-Z a-z 0-9 _ - .) or table ARN";
const ARN_EXPECTED: &str =
    "a state machine ARN, arn:aws:states:<region>:<account>:stateMachine:<name>";
const RATE_EXPECTED: &str = "a number from 0 to 1, such as 0.3";
const SEED_EXPECTED: &str = "an unsigned 64-bit integer";

impl<'a> Reader<'a> {
    fn new(env: &'a Env) -> Self {
        Self {
            env,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, variable: &'static str, value: Option<&str>, expected: &'static str) {
        self.problems.push(Problem {
            variable,
            value: value.map(str::to_owned),
            expected,
        });
    }

    fn required(&mut self, variable: &'static str, expected: &'static str) -> Option<&'a str> {
        let value = self.env.get(variable);
        if value.is_none() {
            self.problem(variable, None, expected);
        }
        value
    }

    fn table_name(&mut self, variable: &'static str) -> Option<String> {
        let value = self.required(variable, TABLE_EXPECTED)?;
        if is_table_name(value) || is_table_arn(value) {
            Some(value.to_owned())
        } else {
            self.problem(variable, Some(value), TABLE_EXPECTED);
            None
        }
    }

    fn state_machine_arn(&mut self, variable: &'static str) -> Option<StateMachineArn> {
        let value = self.required(variable, ARN_EXPECTED)?;
        match StateMachineArn::parse(value) {
            Ok(arn) => Some(arn),
            Err(_) => {
                self.problem(variable, Some(value), ARN_EXPECTED);
                None
            }
        }
    }

    fn failure_rate(&mut self, variable: &'static str) -> Option<f64> {
        self.rate(variable, DEFAULT_FAILURE_RATE)
    }

    fn trace_sample_rate(&mut self, variable: &'static str) -> Option<f64> {
        self.rate(variable, DEFAULT_ORDER_TRACE_SAMPLE_RATE)
    }

    /// An optional number in `[0, 1]`.
    fn rate(&mut self, variable: &'static str, default: f64) -> Option<f64> {
        let Some(value) = self.env.get(variable) else {
            return Some(default);
        };
        match value.parse::<f64>() {
            Ok(rate) if (0.0..=1.0).contains(&rate) => Some(rate),
            _ => {
                self.problem(variable, Some(value), RATE_EXPECTED);
                None
            }
        }
    }

    /// `Some(None)` when unset, `None` when invalid.
    fn optional_u64(&mut self, variable: &'static str) -> Option<Option<u64>> {
        let Some(value) = self.env.get(variable) else {
            return Some(None);
        };
        match value.parse::<u64>() {
            Ok(n) => Some(Some(n)),
            Err(_) => {
                self.problem(variable, Some(value), SEED_EXPECTED);
                None
            }
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ConfigError> {
        match value {
            Some(value) if self.problems.is_empty() => Ok(value),
            _ => Err(ConfigError {
                problems: self.problems,
            }),
        }
    }
}

fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn is_table_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "dynamodb", _, _, resource]
        if resource.strip_prefix("table/").is_some_and(is_table_name))
}

/// api_handler: reads orders, starts the workflow, traces a share of the
/// orders.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiHandlerConfig {
    pub orders_table: String,
    pub state_machine: StateMachineArn,
    /// Probability in `[0, 1]` that an order is traced in X-Ray (1 by default).
    pub order_trace_sample_rate: f64,
}

impl ApiHandlerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut r = Reader::new(env);
        let orders_table = r.table_name(ORDERS_TABLE);
        let state_machine = r.state_machine_arn(STATE_MACHINE_ARN);
        let sample_rate = r.trace_sample_rate(ORDER_TRACE_SAMPLE_RATE);
        let value = match (orders_table, state_machine, sample_rate) {
            (Some(orders_table), Some(state_machine), Some(order_trace_sample_rate)) => {
                Some(Self {
                    orders_table,
                    state_machine,
                    order_trace_sample_rate,
                })
            }
            _ => None,
        };
        r.finish(value)
    }
}

/// validator: pure business rules, no AWS resources.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatorConfig {}

impl ValidatorConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Reader::new(env).finish(Some(Self {}))
    }
}

/// order_storage and other functions that only touch the orders table.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersTableConfig {
    pub orders_table: String,
}

impl OrdersTableConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut r = Reader::new(env);
        let orders_table = r.table_name(ORDERS_TABLE);
        r.finish(orders_table.map(|orders_table| Self { orders_table }))
    }
}

/// fulfill_order: the orders table and the simulated failure rate.
#[derive(Debug, Clone, PartialEq)]
pub struct FulfillOrderConfig {
    pub orders_table: String,
    /// Probability in `[0, 1]` that fulfilling an order fails.
    pub failure_rate: f64,
    pub failure_seed: Option<u64>,
}

impl FulfillOrderConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut r = Reader::new(env);
        let orders_table = r.table_name(ORDERS_TABLE);
        let failure_rate = r.failure_rate(FAILURE_RATE);
        let failure_seed = r.optional_u64(FAILURE_SEED);
        let value = match (orders_table, failure_rate, failure_seed) {
            (Some(orders_table), Some(failure_rate), Some(failure_seed)) => Some(Self {
                orders_table,
                failure_rate,
                failure_seed,
            }),
            _ => None,
        };
        r.finish(value)
    }
}

/// dlq_handler: both tables.
#[derive(Debug, Clone, PartialEq)]
pub struct DlqHandlerConfig {
    pub orders_table: String,
    pub failed_orders_table: String,
}

impl DlqHandlerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut r = Reader::new(env);
        let orders_table = r.table_name(ORDERS_TABLE);
        let failed_orders_table = r.table_name(FAILED_ORDERS_TABLE);
        let value =
            orders_table
                .zip(failed_orders_table)
                .map(|(orders_table, failed_orders_table)| Self {
                    orders_table,
                    failed_orders_table,
                });
        r.finish(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:states:eu-west-1:123456789012:stateMachine:dofs-orders";

    #[test]
    fn reports_every_missing_variable_by_name() {
        let err = ApiHandlerConfig::from_env(&Env::default()).unwrap_err();
        assert_eq!(err.variables(), vec![ORDERS_TABLE, STATE_MACHINE_ARN]);
        let text = err.to_string();
        assert!(text.contains("ORDERS_TABLE is not set"), "{text}");
        assert!(text.contains("STATE_MACHINE_ARN is not set"), "{text}");
    }

    #[test]
    fn blank_values_count_as_missing() {
        let env = Env::from_pairs([(ORDERS_TABLE, "  "), (STATE_MACHINE_ARN, ARN)]);
        let err = ApiHandlerConfig::from_env(&env).unwrap_err();
        assert_eq!(err.problems[0].value, None);
    }

    #[test]
    fn loads_a_complete_api_handler_config() {
        let env = Env::from_pairs([(ORDERS_TABLE, "dofs-orders"), (STATE_MACHINE_ARN, ARN)]);
        let config = ApiHandlerConfig::from_env(&env).unwrap();
        assert_eq!(config.orders_table, "dofs-orders");
        assert_eq!(config.state_machine.as_str(), ARN);
        assert_eq!(
            config.order_trace_sample_rate, 1.0,
            "every order by default"
        );
    }

    #[test]
    fn the_order_trace_sample_rate_is_read_and_bounded() {
        let env = |rate: &str| {
            Env::from_pairs([
                (ORDERS_TABLE, "dofs-orders"),
                (STATE_MACHINE_ARN, ARN),
                (ORDER_TRACE_SAMPLE_RATE, rate),
            ])
        };
        let config = ApiHandlerConfig::from_env(&env("0.25")).unwrap();
        assert_eq!(config.order_trace_sample_rate, 0.25);
        assert_eq!(
            ApiHandlerConfig::from_env(&env("0"))
                .unwrap()
                .order_trace_sample_rate,
            0.0
        );
        for bad in ["2", "-1", "all"] {
            let err = ApiHandlerConfig::from_env(&env(bad)).unwrap_err();
            assert_eq!(err.variables(), vec![ORDER_TRACE_SAMPLE_RATE], "{bad}");
        }
    }

    #[test]
    fn rejects_bad_values_quoting_them() {
        let env = Env::from_pairs([
            (ORDERS_TABLE, "no spaces allowed"),
            (STATE_MACHINE_ARN, "dofs"),
        ]);
        let err = ApiHandlerConfig::from_env(&env).unwrap_err();
        assert_eq!(err.variables(), vec![ORDERS_TABLE, STATE_MACHINE_ARN]);
        assert!(err
            .to_string()
            .contains("ORDERS_TABLE=\"no spaces allowed\" is invalid"));
    }

    #[test]
    fn table_arns_are_accepted() {
        let env = Env::from_pairs([(
            ORDERS_TABLE,
            "arn:aws:dynamodb:eu-west-1:123456789012:table/dofs-orders",
        )]);
        assert!(OrdersTableConfig::from_env(&env).is_ok());
        let env = Env::from_pairs([(ORDERS_TABLE, "arn:aws:s3:::bucket")]);
        assert!(OrdersTableConfig::from_env(&env).is_err());
    }

    #[test]
    fn failure_rate_defaults_and_is_bounded() {
        let env = Env::from_pairs([(ORDERS_TABLE, "orders")]);
        let config = FulfillOrderConfig::from_env(&env).unwrap();
        assert_eq!(config.failure_rate, DEFAULT_FAILURE_RATE);
        assert_eq!(config.failure_seed, None);

        for bad in ["1.5", "-0.1", "NaN", "thirty percent"] {
            let env = Env::from_pairs([(ORDERS_TABLE, "orders"), (FAILURE_RATE, bad)]);
            let err = FulfillOrderConfig::from_env(&env).unwrap_err();
            assert_eq!(err.variables(), vec![FAILURE_RATE], "{bad}");
        }

        let env = Env::from_pairs([
            (ORDERS_TABLE, "orders"),
            (FAILURE_RATE, "0"),
            (FAILURE_SEED, "42"),
        ]);
        let config = FulfillOrderConfig::from_env(&env).unwrap();
        assert_eq!((config.failure_rate, config.failure_seed), (0.0, Some(42)));
    }

    #[test]
    fn dlq_handler_needs_both_tables() {
        let env = Env::from_pairs([(ORDERS_TABLE, "orders")]);
        let err = DlqHandlerConfig::from_env(&env).unwrap_err();
        assert_eq!(err.variables(), vec![FAILED_ORDERS_TABLE]);
    }

    #[test]
    fn validator_needs_nothing() {
        assert!(ValidatorConfig::from_env(&Env::default()).is_ok());
    }
}
