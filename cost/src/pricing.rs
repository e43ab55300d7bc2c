//! The price table: `pricing/<region>.json` at the repository root, every
//! price with the page it was read from and the date it was read.
//!
//! Prices live in that file and nowhere in code, so a price change is a
//! one-line, dated, reviewable edit with its source next to it.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One list price: `price` US dollars per `per` units of `unit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub price: f64,
    pub per: f64,
    pub unit: String,
    /// The AWS pricing page the figure was read from.
    pub source: String,
    /// The date it was read (YYYY-MM-DD).
    pub as_of: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The page's worked example this crate's tests reproduce, and which
    /// test (or that none could be retrieved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

impl Price {
    /// Dollars for one unit.
    pub fn per_unit(&self) -> f64 {
        self.price / self.per
    }
}

/// The prices paid per unit of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePrices {
    pub api_gateway_http_requests: Price,
    pub step_functions_standard_state_transitions: Price,
    pub step_functions_express_requests: Price,
    /// Per GB-second.
    pub step_functions_express_duration: Price,
    pub lambda_requests: Price,
    /// Per GB-second.
    pub lambda_duration_x86_64: Price,
    /// Per GB-second.
    pub lambda_duration_arm64: Price,
    pub dynamodb_on_demand_write_request_units: Price,
    pub dynamodb_on_demand_read_request_units: Price,
    pub sqs_standard_requests: Price,
    /// Per GB (2^30 bytes).
    pub cloudwatch_logs_ingestion_standard: Price,
    /// Per GB (2^30 bytes).
    pub cloudwatch_logs_ingestion_vended_step_functions: Price,
    pub xray_traces_recorded: Price,
    pub kms_requests: Price,
}

impl UsagePrices {
    fn named(&self) -> [(&'static str, &Price); 14] {
        [
            ("api_gateway_http_requests", &self.api_gateway_http_requests),
            (
                "step_functions_standard_state_transitions",
                &self.step_functions_standard_state_transitions,
            ),
            (
                "step_functions_express_requests",
                &self.step_functions_express_requests,
            ),
            (
                "step_functions_express_duration",
                &self.step_functions_express_duration,
            ),
            ("lambda_requests", &self.lambda_requests),
            ("lambda_duration_x86_64", &self.lambda_duration_x86_64),
            ("lambda_duration_arm64", &self.lambda_duration_arm64),
            (
                "dynamodb_on_demand_write_request_units",
                &self.dynamodb_on_demand_write_request_units,
            ),
            (
                "dynamodb_on_demand_read_request_units",
                &self.dynamodb_on_demand_read_request_units,
            ),
            ("sqs_standard_requests", &self.sqs_standard_requests),
            (
                "cloudwatch_logs_ingestion_standard",
                &self.cloudwatch_logs_ingestion_standard,
            ),
            (
                "cloudwatch_logs_ingestion_vended_step_functions",
                &self.cloudwatch_logs_ingestion_vended_step_functions,
            ),
            ("xray_traces_recorded", &self.xray_traces_recorded),
            ("kms_requests", &self.kms_requests),
        ]
    }
}

/// Prices paid per month whatever the order volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedMonthlyPrices {
    pub kms_customer_managed_key: Price,
    pub cloudwatch_custom_metric: Price,
    pub cloudwatch_standard_alarm: Price,
    pub cloudwatch_dashboard: Price,
}

impl FixedMonthlyPrices {
    pub(crate) fn named(&self) -> [(&'static str, &Price); 4] {
        [
            ("kms_customer_managed_key", &self.kms_customer_managed_key),
            ("cloudwatch_custom_metric", &self.cloudwatch_custom_metric),
            ("cloudwatch_standard_alarm", &self.cloudwatch_standard_alarm),
            ("cloudwatch_dashboard", &self.cloudwatch_dashboard),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceTable {
    region: String,
    as_of: String,
    currency: String,
    #[serde(default)]
    note: String,
    prices: UsagePrices,
    fixed_monthly: FixedMonthlyPrices,
}

/// A checked price table for one region.
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    table: PriceTable,
}

/// Why a price table could not be used.
#[derive(Debug, Error)]
pub enum PricingError {
    #[error("no price table for region {region}: {} does not exist", path.display())]
    MissingRegion {
        region: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the price table {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the price table {origin} is not valid JSON of the expected shape")]
    Malformed {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the price table {origin}: `{name}` {reason}")]
    InvalidPrice {
        origin: String,
        name: &'static str,
        reason: &'static str,
    },
    #[error("the price table {origin} is for region {found}, not {expected}")]
    WrongRegion {
        origin: String,
        found: String,
        expected: String,
    },
    #[error("the price table {origin} {reason}")]
    Invalid {
        origin: String,
        reason: &'static str,
    },
}

impl Pricing {
    /// Parses and checks a price table given as text.
    pub fn from_json(json: &str) -> Result<Pricing, PricingError> {
        Self::parse(json, "(given as text)")
    }

    /// Loads `<dir>/<region>.json`, e.g. `pricing/us-east-1.json`.
    pub fn load_region(dir: &Path, region: &str) -> Result<Pricing, PricingError> {
        let path = dir.join(format!("{region}.json"));
        let json = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                PricingError::MissingRegion {
                    region: region.to_owned(),
                    path: path.clone(),
                    source,
                }
            } else {
                PricingError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let origin = path.display().to_string();
        let pricing = Self::parse(&json, &origin)?;
        if pricing.region() != region {
            return Err(PricingError::WrongRegion {
                origin,
                found: pricing.region().to_owned(),
                expected: region.to_owned(),
            });
        }
        Ok(pricing)
    }

    fn parse(json: &str, origin: &str) -> Result<Pricing, PricingError> {
        let table: PriceTable =
            serde_json::from_str(json).map_err(|source| PricingError::Malformed {
                origin: origin.to_owned(),
                source,
            })?;
        let invalid = |reason| PricingError::Invalid {
            origin: origin.to_owned(),
            reason,
        };
        if table.region.trim().is_empty() {
            return Err(invalid("names no region"));
        }
        if table.as_of.trim().is_empty() {
            return Err(invalid("has no as_of date"));
        }
        // Every figure below is summed as one currency.
        if table.currency != "USD" {
            return Err(invalid("is not in USD"));
        }
        let named = table
            .prices
            .named()
            .into_iter()
            .chain(table.fixed_monthly.named());
        for (name, price) in named {
            check_price(price).map_err(|reason| PricingError::InvalidPrice {
                origin: origin.to_owned(),
                name,
                reason,
            })?;
        }
        Ok(Pricing { table })
    }

    pub fn region(&self) -> &str {
        &self.table.region
    }

    /// The date the table as a whole was checked against the pages.
    pub fn as_of(&self) -> &str {
        &self.table.as_of
    }

    pub fn currency(&self) -> &str {
        &self.table.currency
    }

    pub fn note(&self) -> &str {
        &self.table.note
    }

    pub fn prices(&self) -> &UsagePrices {
        &self.table.prices
    }

    pub fn fixed_monthly(&self) -> &FixedMonthlyPrices {
        &self.table.fixed_monthly
    }
}

fn check_price(price: &Price) -> Result<(), &'static str> {
    if !price.price.is_finite() || price.price < 0.0 {
        return Err("has a price that is not a finite, non-negative number");
    }
    if !price.per.is_finite() || price.per <= 0.0 {
        return Err("has a `per` that is not a positive number");
    }
    if !price.source.starts_with("https://") {
        return Err("has no https source page");
    }
    if price.as_of.trim().is_empty() {
        return Err("has no as_of date");
    }
    if price.unit.trim().is_empty() {
        return Err("has no unit");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::error::Error as _;

    use super::*;

    /// The repository's table, as `dofs cost` reads it.
    pub(crate) fn repository_pricing() -> Pricing {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pricing");
        Pricing::load_region(&dir, "us-east-1").unwrap()
    }

    fn repository_json() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pricing/us-east-1.json");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn the_repository_table_loads_with_every_price_sourced_and_dated() {
        let pricing = repository_pricing();
        assert_eq!(pricing.region(), "us-east-1");
        assert_eq!(pricing.currency(), "USD");
        assert!(!pricing.as_of().is_empty());
        for (name, price) in pricing.prices().named() {
            assert!(
                price.source.starts_with("https://aws.amazon.com/"),
                "{name}: {}",
                price.source
            );
            // The issue asks for each page's worked example to be cited.
            assert!(price.example.is_some(), "{name} cites no worked example");
        }
        let prices = pricing.prices();
        let transitions = &prices.step_functions_standard_state_transitions;
        assert_eq!((transitions.price, transitions.per), (0.025, 1000.0));
        assert_eq!(
            (prices.lambda_requests.price, prices.lambda_requests.per),
            (0.2, 1e6)
        );
        assert_eq!(prices.dynamodb_on_demand_write_request_units.price, 0.625);
        assert_eq!(prices.dynamodb_on_demand_read_request_units.price, 0.125);
        // The figures checked against the pages (or, where a page's rate
        // table could not be read, against the sources each note names).
        let per_unit = |price: &Price| price.per_unit();
        assert_eq!(per_unit(&prices.api_gateway_http_requests), 1.0 / 1e6);
        assert_eq!(per_unit(&prices.sqs_standard_requests), 0.4 / 1e6);
        assert_eq!(per_unit(&prices.kms_requests), 0.03 / 10_000.0);
        assert_eq!(prices.cloudwatch_logs_ingestion_standard.per_unit(), 0.5);
        assert_eq!(
            prices
                .cloudwatch_logs_ingestion_vended_step_functions
                .per_unit(),
            0.5
        );
        let fixed = pricing.fixed_monthly();
        assert_eq!(fixed.kms_customer_managed_key.per_unit(), 1.0);
        assert_eq!(fixed.cloudwatch_custom_metric.per_unit(), 0.3);
        assert_eq!(fixed.cloudwatch_standard_alarm.per_unit(), 0.1);
        assert_eq!(fixed.cloudwatch_dashboard.per_unit(), 3.0);
        // A price not confirmed on its page says so in its note.
        for (name, price) in fixed.named() {
            assert!(price.note.is_some(), "{name} has no note on its source");
        }
    }

    #[test]
    fn a_missing_region_names_the_file_it_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let err = Pricing::load_region(dir.path(), "eu-west-9").unwrap_err();
        let expected = dir.path().join("eu-west-9.json");
        assert!(matches!(err, PricingError::MissingRegion { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "no price table for region eu-west-9: {} does not exist",
                expected.display()
            )
        );
    }

    #[test]
    fn malformed_json_is_reported_with_its_file_and_parser_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("us-east-1.json"), "{ not json").unwrap();
        let err = Pricing::load_region(dir.path(), "us-east-1").unwrap_err();
        assert!(matches!(err, PricingError::Malformed { .. }), "{err:?}");
        assert!(err.to_string().contains("us-east-1.json"), "{err}");
        assert!(err.source().is_some());
    }

    #[test]
    fn a_missing_price_is_named() {
        let mut table: serde_json::Value = serde_json::from_str(&repository_json()).unwrap();
        table["prices"]
            .as_object_mut()
            .unwrap()
            .remove("lambda_requests");
        let err = Pricing::from_json(&table.to_string()).unwrap_err();
        assert!(matches!(err, PricingError::Malformed { .. }), "{err:?}");
        let cause = err.source().unwrap().to_string();
        assert!(cause.contains("missing field `lambda_requests`"), "{cause}");
    }

    #[test]
    fn a_negative_price_or_a_price_without_source_is_refused() {
        let mut table: serde_json::Value = serde_json::from_str(&repository_json()).unwrap();
        table["prices"]["kms_requests"]["price"] = serde_json::json!(-1.0);
        let err = Pricing::from_json(&table.to_string()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the price table (given as text): `kms_requests` has a price that is not a finite, non-negative number"
        );

        let mut table: serde_json::Value = serde_json::from_str(&repository_json()).unwrap();
        table["fixed_monthly"]["cloudwatch_dashboard"]["source"] = serde_json::json!("");
        let err = Pricing::from_json(&table.to_string()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the price table (given as text): `cloudwatch_dashboard` has no https source page"
        );
    }

    #[test]
    fn a_file_for_another_region_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("eu-west-1.json"), repository_json()).unwrap();
        let err = Pricing::load_region(dir.path(), "eu-west-1").unwrap_err();
        assert!(matches!(err, PricingError::WrongRegion { .. }), "{err:?}");
        assert!(err
            .to_string()
            .contains("is for region us-east-1, not eu-west-1"));
    }
}
