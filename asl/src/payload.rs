//! Payload templates: the `Parameters` and `ResultSelector` objects, where a key
//! ending in `.$` takes its value from a path or an intrinsic function
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html>).
//! Templates are compiled when the definition is loaded, so a bad path is a
//! definition error rather than a surprise in the middle of an execution.

use rand::RngCore;
use serde_json::{Map, Value};

use super::intrinsic::Call;
use super::path::Path;
use super::TaskFailure;

/// A dynamic value: a path, or an intrinsic function call.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Path(Path),
    Call(Call),
}

impl Expr {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with('$') {
            Path::parse(text).map(Self::Path)
        } else if text.starts_with("States.") {
            Call::parse(text).map(Self::Call)
        } else {
            Err(format!(
                "`{text}` is neither a path nor an intrinsic function"
            ))
        }
    }

    pub(crate) fn eval(
        &self,
        input: &Value,
        context: &Value,
        field: &str,
        rng: &mut (dyn RngCore + Send),
    ) -> Result<Value, TaskFailure> {
        match self {
            Self::Path(path) => path.select(input, context, field),
            Self::Call(call) => call.eval_in(input, context, field, rng),
        }
    }
}

/// The size of `value` as JSON text in UTF-8, the measure of Step Functions'
/// payload quota ("262,144 bytes of data as a UTF-8 encoded string"), counted
/// without building the text.
pub(crate) fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a JSON value to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// A compiled payload template.
#[derive(Debug, Clone)]
pub(crate) enum Template {
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    /// The original key (with `.$`) is kept for error messages.
    Dynamic {
        field: String,
        expr: Expr,
    },
}

impl Template {
    pub(crate) fn compile(value: &Value) -> Result<Self, String> {
        match value {
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                let mut seen = std::collections::BTreeSet::new();
                for (key, value) in map {
                    let (name, template) = match key.strip_suffix(".$") {
                        Some(name) => {
                            let text = value
                                .as_str()
                                .ok_or_else(|| format!("the value of `{key}` must be a string (a path or an intrinsic function)"))?;
                            let expr = Expr::parse(text).map_err(|e| format!("`{key}`: {e}"))?;
                            (
                                name.to_owned(),
                                Template::Dynamic {
                                    field: key.clone(),
                                    expr,
                                },
                            )
                        }
                        None => (key.clone(), Template::compile(value)?),
                    };
                    if !seen.insert(name.clone()) {
                        return Err(format!(
                            "field `{name}` is given twice (with and without `.$`)"
                        ));
                    }
                    fields.push((name, template));
                }
                Ok(Template::Object(fields))
            }
            Value::Array(items) => items
                .iter()
                .map(Template::compile)
                .collect::<Result<_, _>>()
                .map(Template::Array),
            other => Ok(Template::Literal(other.clone())),
        }
    }

    pub(crate) fn eval(
        &self,
        input: &Value,
        context: &Value,
        rng: &mut (dyn RngCore + Send),
    ) -> Result<Value, TaskFailure> {
        match self {
            Template::Literal(value) => Ok(value.clone()),
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (name, template) in fields {
                    out.insert(name.clone(), template.eval(input, context, rng)?);
                }
                Ok(Value::Object(out))
            }
            Template::Array(items) => items
                .iter()
                .map(|item| item.eval(input, context, rng))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Template::Dynamic { field, expr } => expr.eval(input, context, field, rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn render(template: Value, input: Value) -> Result<Value, TaskFailure> {
        let mut rng = StdRng::seed_from_u64(1);
        let context = json!({"Execution": {"Id": "arn:exec"}, "State": {"Name": "S"}});
        Template::compile(&template)
            .unwrap()
            .eval(&input, &context, &mut rng)
    }

    #[test]
    fn dollar_keys_take_values_from_input_context_and_intrinsics() {
        let out = render(
            json!({
                "FunctionName": "arn:fn",
                "Payload": {
                    "action": "store",
                    "order.$": "$.validated.order",
                    "exec.$": "$$.Execution.Id",
                    "note.$": "States.Format('in {}', $$.State.Name)",
                    "list": [{"id.$": "$.id"}, 2]
                }
            }),
            json!({"id": 7, "validated": {"order": {"order_id": "o-1"}}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "FunctionName": "arn:fn",
                "Payload": {
                    "action": "store",
                    "order": {"order_id": "o-1"},
                    "exec": "arn:exec",
                    "note": "in S",
                    "list": [{"id": 7}, 2]
                }
            })
        );
    }

    #[test]
    fn missing_path_is_a_runtime_error_naming_the_field() {
        let err = render(json!({"order.$": "$.nope"}), json!({})).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        assert!(err.cause.contains("order.$"), "{}", err.cause);
    }

    #[test]
    fn bad_templates_are_rejected_when_compiled() {
        assert!(Template::compile(&json!({"a.$": 1})).is_err());
        assert!(Template::compile(&json!({"a.$": "nope"})).is_err());
        assert!(Template::compile(&json!({"a.$": "$.x", "a": 1})).is_err());
        assert!(Template::compile(&json!({"a.$": "States.Bogus()"})).is_err());
    }
}
