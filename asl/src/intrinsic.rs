//! Intrinsic functions (`States.Format('{}', $.a)`) usable in `.$` fields.
//!
//! Supported: States.Format, States.StringToJson, States.JsonToString,
//! States.Array, States.UUID, States.MathAdd, States.MathRandom,
//! States.ArrayLength, States.ArrayGetItem, States.ArrayContains,
//! States.StringSplit. Others are rejected when the definition is loaded.
//! Semantics follow
//! <https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html>:
//! string literals are single-quoted, and `'`, `{`, `}` and `\` are escaped with
//! `\`; a failure at run time is `States.IntrinsicFailure`.

use rand::{Rng, RngCore, SeedableRng};
use serde_json::{Number, Value};

use super::errors;
use super::path::Path;
use super::TaskFailure;

/// A parsed intrinsic function call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    function: Function,
    args: Vec<Arg>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Function {
    Format,
    StringToJson,
    JsonToString,
    Array,
    Uuid,
    MathAdd,
    MathRandom,
    ArrayLength,
    ArrayGetItem,
    ArrayContains,
    StringSplit,
}

impl Function {
    fn by_name(name: &str) -> Option<Self> {
        Some(match name {
            "States.Format" => Self::Format,
            "States.StringToJson" => Self::StringToJson,
            "States.JsonToString" => Self::JsonToString,
            "States.Array" => Self::Array,
            "States.UUID" => Self::Uuid,
            "States.MathAdd" => Self::MathAdd,
            "States.MathRandom" => Self::MathRandom,
            "States.ArrayLength" => Self::ArrayLength,
            "States.ArrayGetItem" => Self::ArrayGetItem,
            "States.ArrayContains" => Self::ArrayContains,
            "States.StringSplit" => Self::StringSplit,
            _ => return None,
        })
    }

    /// Allowed argument counts, inclusive.
    fn arity(self) -> (usize, usize) {
        match self {
            Self::Format => (1, usize::MAX),
            Self::Array => (0, usize::MAX),
            Self::Uuid => (0, 0),
            Self::StringToJson | Self::JsonToString | Self::ArrayLength => (1, 1),
            Self::MathAdd | Self::ArrayGetItem | Self::ArrayContains | Self::StringSplit => (2, 2),
            Self::MathRandom => (2, 3),
        }
    }
}

#[derive(Debug, Clone)]
enum Arg {
    /// A string literal, escapes still in place (States.Format needs to tell `\{` from `{`).
    Str(String),
    Literal(Value),
    Path(Path),
    Call(Call),
}

impl Call {
    /// Parses a whole `.$` value that starts with `States.`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser {
            chars: text.chars().collect(),
            pos: 0,
        };
        let call = parser.call()?;
        parser.skip_ws();
        if parser.pos != parser.chars.len() {
            return Err(format!("unexpected text after the call in `{text}`"));
        }
        Ok(call)
    }

    pub(crate) fn eval(
        &self,
        input: &Value,
        context: &Value,
        rng: &mut (dyn RngCore + Send),
    ) -> Result<Value, TaskFailure> {
        let mut values = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            values.push(match arg {
                Arg::Str(raw) => Value::String(unescape(raw)),
                Arg::Literal(value) => value.clone(),
                Arg::Path(path) => path.select(input, context, "intrinsic argument")?,
                Arg::Call(call) => call.eval(input, context, rng)?,
            });
        }
        match self.function {
            Function::Format => self.format(&values),
            Function::StringToJson => {
                let text = string_arg(&values[0], "States.StringToJson")?;
                serde_json::from_str(text)
                    .map_err(|e| fail(format!("States.StringToJson: invalid JSON: {e}")))
            }
            Function::JsonToString => Ok(Value::String(values[0].to_string())),
            Function::Array => Ok(Value::Array(values)),
            Function::Uuid => {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                Ok(Value::String(
                    uuid::Builder::from_random_bytes(bytes)
                        .into_uuid()
                        .to_string(),
                ))
            }
            Function::MathAdd => {
                let a = int_arg(&values[0], "States.MathAdd")?;
                let b = int_arg(&values[1], "States.MathAdd")?;
                a.checked_add(b)
                    .map(|sum| Value::Number(sum.into()))
                    .ok_or_else(|| fail("States.MathAdd: overflow".to_owned()))
            }
            Function::MathRandom => {
                let start = int_arg(&values[0], "States.MathRandom")?;
                let end = int_arg(&values[1], "States.MathRandom")?;
                if start >= end {
                    return Err(fail(format!(
                        "States.MathRandom: start {start} is not below end {end}"
                    )));
                }
                let n = match values.get(2) {
                    Some(seed) => {
                        let seed = int_arg(seed, "States.MathRandom")?;
                        rand::rngs::StdRng::seed_from_u64(seed as u64).random_range(start..end)
                    }
                    None => rng.random_range(start..end),
                };
                Ok(Value::Number(n.into()))
            }
            Function::ArrayLength => Ok(Value::Number(
                array_arg(&values[0], "States.ArrayLength")?.len().into(),
            )),
            Function::ArrayGetItem => {
                let items = array_arg(&values[0], "States.ArrayGetItem")?;
                let index = int_arg(&values[1], "States.ArrayGetItem")?;
                usize::try_from(index)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        fail(format!(
                            "States.ArrayGetItem: index {index} is out of range"
                        ))
                    })
            }
            Function::ArrayContains => {
                let items = array_arg(&values[0], "States.ArrayContains")?;
                Ok(Value::Bool(items.contains(&values[1])))
            }
            Function::StringSplit => {
                let text = string_arg(&values[0], "States.StringSplit")?;
                let delimiters = string_arg(&values[1], "States.StringSplit")?;
                Ok(Value::Array(
                    text.split(|c| delimiters.contains(c))
                        .filter(|piece| !piece.is_empty())
                        .map(|piece| Value::String(piece.to_owned()))
                        .collect(),
                ))
            }
        }
    }

    fn format(&self, values: &[Value]) -> Result<Value, TaskFailure> {
        // A literal template keeps its escapes so `\{` is a brace, not a placeholder.
        let template = match &self.args[0] {
            Arg::Str(raw) => raw.clone(),
            _ => string_arg(&values[0], "States.Format")?.to_owned(),
        };
        let mut args = values[1..].iter();
        let mut out = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        out.push(escaped);
                    }
                }
                '{' if chars.peek() == Some(&'}') => {
                    chars.next();
                    let arg = args.next().ok_or_else(|| {
                        fail("States.Format: more placeholders than arguments".to_owned())
                    })?;
                    match arg {
                        Value::String(s) => out.push_str(s),
                        Value::Number(_) | Value::Bool(_) | Value::Null => {
                            out.push_str(&arg.to_string())
                        }
                        _ => return Err(fail(
                            "States.Format: arguments must be strings, numbers, booleans or null"
                                .to_owned(),
                        )),
                    }
                }
                c => out.push(c),
            }
        }
        if args.next().is_some() {
            return Err(fail(
                "States.Format: more arguments than placeholders".to_owned(),
            ));
        }
        Ok(Value::String(out))
    }
}

fn fail(cause: String) -> TaskFailure {
    TaskFailure::new(errors::INTRINSIC_FAILURE, cause)
}

fn string_arg<'a>(value: &'a Value, function: &str) -> Result<&'a str, TaskFailure> {
    value
        .as_str()
        .ok_or_else(|| fail(format!("{function}: expected a string, got {value}")))
}

fn array_arg<'a>(value: &'a Value, function: &str) -> Result<&'a Vec<Value>, TaskFailure> {
    value
        .as_array()
        .ok_or_else(|| fail(format!("{function}: expected an array, got {value}")))
}

fn int_arg(value: &Value, function: &str) -> Result<i64, TaskFailure> {
    let integral = value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    });
    integral.ok_or_else(|| fail(format!("{function}: expected an integer, got {value}")))
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn rest_starts_with(&self, prefix: &str) -> bool {
        prefix
            .chars()
            .enumerate()
            .all(|(i, c)| self.chars.get(self.pos + i) == Some(&c))
    }

    fn call(&mut self) -> Result<Call, String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let function = Function::by_name(&name)
            .ok_or_else(|| format!("unsupported intrinsic function `{name}`"))?;
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(format!("expected `(` after `{name}`"));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.arg()?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(format!("expected `,` or `)` in the arguments of `{name}`")),
                }
            }
        }
        let (min, max) = function.arity();
        if args.len() < min || args.len() > max {
            return Err(format!("`{name}` does not take {} argument(s)", args.len()));
        }
        if function == Function::Format && matches!(args[0], Arg::Literal(_)) {
            return Err("the first argument of `States.Format` must be a string".to_owned());
        }
        Ok(Call { function, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_ws();
        match self.peek() {
            Some('\'') => self.string(),
            Some('$') => self.path(),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            _ if self.rest_starts_with("States.") => Ok(Arg::Call(self.call()?)),
            _ => {
                for (word, value) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.rest_starts_with(word) {
                        self.pos += word.len();
                        return Ok(Arg::Literal(value));
                    }
                }
                Err(format!("unexpected argument at position {}", self.pos))
            }
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.pos += 1;
        let mut raw = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string literal".to_owned()),
                Some('\\') => {
                    let escaped = self.chars.get(self.pos + 1).ok_or("unterminated escape")?;
                    raw.push('\\');
                    raw.push(*escaped);
                    self.pos += 2;
                }
                Some('\'') => {
                    self.pos += 1;
                    return Ok(Arg::Str(raw));
                }
                Some(c) => {
                    raw.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn path(&mut self) -> Result<Arg, String> {
        let start = self.pos;
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), '\\') => self.pos += 1,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '[' | '(') => depth += 1,
                (None, ']' | ')') if depth > 0 => depth -= 1,
                (None, ',' | ')') => break,
                (None, c) if c.is_whitespace() && depth == 0 => break,
                _ => {}
            }
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos.min(self.chars.len())]
            .iter()
            .collect();
        Ok(Arg::Path(Path::parse(&text)?))
    }

    fn number(&mut self) -> Result<Arg, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        let number: Number =
            serde_json::from_str(&text).map_err(|_| format!("`{text}` is not a number"))?;
        Ok(Arg::Literal(Value::Number(number)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use serde_json::json;

    fn eval(text: &str, input: Value) -> Result<Value, TaskFailure> {
        let mut rng = StdRng::seed_from_u64(7);
        Call::parse(text)
            .unwrap()
            .eval(&input, &json!({"Execution": {"Name": "e-1"}}), &mut rng)
    }

    #[test]
    fn format_fills_placeholders_and_honours_escapes() {
        let out = eval(
            r"States.Format('Order {} for \{{}\}: {}', $.id, $$.Execution.Name, 3)",
            json!({"id": "o-1"}),
        );
        assert_eq!(out.unwrap(), json!("Order o-1 for {e-1}: 3"));
        assert_eq!(
            eval(r"States.Format('it\'s {}', true)", json!({})).unwrap(),
            json!("it's true")
        );
        let err = eval("States.Format('{} {}', 1)", json!({})).unwrap_err();
        assert_eq!(err.error, "States.IntrinsicFailure");
        assert!(eval("States.Format('{}', $.o)", json!({"o": {}})).is_err());
    }

    #[test]
    fn json_round_trips_and_arrays() {
        assert_eq!(
            eval("States.StringToJson($.s)", json!({"s": "{\"a\":[1]}"})).unwrap(),
            json!({"a": [1]})
        );
        assert_eq!(
            eval("States.JsonToString($.o)", json!({"o": {"a": 1}})).unwrap(),
            json!("{\"a\":1}")
        );
        assert_eq!(
            eval(
                "States.Array('a', 1, null, $.x, States.Array())",
                json!({"x": [true]})
            )
            .unwrap(),
            json!(["a", 1, null, [true], []])
        );
        assert_eq!(
            eval("States.StringToJson($.s)", json!({"s": "{"}))
                .unwrap_err()
                .error,
            "States.IntrinsicFailure"
        );
    }

    #[test]
    fn math_array_and_split_helpers() {
        assert_eq!(
            eval("States.MathAdd($.n, -3)", json!({"n": 10})).unwrap(),
            json!(7)
        );
        assert!(eval("States.MathAdd(1.5, 1)", json!({})).is_err());
        let n = eval("States.MathRandom(5, 8)", json!({}))
            .unwrap()
            .as_i64()
            .unwrap();
        assert!((5..8).contains(&n));
        assert_eq!(
            eval("States.ArrayLength($.a)", json!({"a": [1, 2]})).unwrap(),
            json!(2)
        );
        assert_eq!(
            eval("States.ArrayGetItem($.a, 1)", json!({"a": [1, 2]})).unwrap(),
            json!(2)
        );
        assert!(eval("States.ArrayGetItem($.a, 2)", json!({"a": [1, 2]})).is_err());
        assert_eq!(
            eval("States.ArrayContains($.a, 2)", json!({"a": [1, 2]})).unwrap(),
            json!(true)
        );
        assert_eq!(
            eval("States.StringSplit('a.b+c', '.+')", json!({})).unwrap(),
            json!(["a", "b", "c"])
        );
    }

    #[test]
    fn uuid_is_a_v4_uuid_drawn_from_the_rng() {
        let a = eval("States.UUID()", json!({})).unwrap();
        let b = eval("States.UUID()", json!({})).unwrap();
        assert_eq!(
            a, b,
            "same seed, same UUID: resuming replays deterministically"
        );
        let parsed = uuid::Uuid::parse_str(a.as_str().unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn malformed_calls_are_rejected_at_load_time() {
        for bad in [
            "States.Nope(1)",
            "States.Format(",
            "States.UUID(1)",
            "States.MathAdd(1)",
            "States.Format('a') extra",
            "States.Format(1)",
            "States.Array('x)",
        ] {
            assert!(Call::parse(bad).is_err(), "{bad}");
        }
    }
}
