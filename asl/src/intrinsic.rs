//! The intrinsic functions (`States.Format('{}', $.a)`) usable in `.$` fields:
//! all eighteen of
//! <https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html>
//! (`States.Format`, `StringToJson`, `JsonToString`, `Array`,
//! `ArrayPartition`, `ArrayContains`, `ArrayRange`, `ArrayGetItem`,
//! `ArrayLength`, `ArrayUnique`, `Base64Encode`, `Base64Decode`, `Hash`,
//! `JsonMerge`, `MathRandom`, `MathAdd`, `StringSplit`, `UUID`), with the
//! argument rules ("Input validation") and limits that page states. String
//! literals are single-quoted, and `'`, `{`, `}` and `\` are escaped with `\`.
//!
//! A call that is malformed (unknown function, wrong number of arguments,
//! more than 10 calls in one field) is rejected when the definition is
//! loaded; an argument of the wrong type or out of range at run time is
//! `States.IntrinsicFailure` ("This error occurs when the attempt to invoke
//! an intrinsic function within a payload template fails",
//! concepts-error-handling); a path argument that matches nothing is
//! `States.Runtime`, as for any other `.$` path.
//!
//! Where the page is silent, the choice made is marked *unverified* below and
//! listed in the crate documentation.

use base64::Engine as _;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{Map, Number, Value};
use sha2::Digest as _;

use super::errors;
use super::path::Path;
use super::payload::json_size;
use super::TaskFailure;

/// "You can nest up to 10 intrinsic functions within a field in your
/// workflows" — the page's example, `myArn`, is called one "that includes
/// nine nested intrinsic functions" and holds nine calls in all, at most five
/// deep, so the limit is read as the number of calls in the field
/// (unverified: AWS may count depth instead).
pub(crate) const MAX_CALLS_PER_FIELD: usize = 10;

/// "The new array can contain up to 1000 elements" (`States.ArrayRange`).
const MAX_RANGE_ITEMS: i64 = 1000;

/// "a data string of up to 10,000 characters" (`Base64Encode`,
/// `Base64Decode`); "10,000 characters or less" (`Hash`).
const MAX_STRING_CHARS: usize = 10_000;

/// `States.MathAdd`: "You must specify integer values in the range of
/// -2147483648 and 2147483647."
const MATH_ADD_RANGE: std::ops::RangeInclusive<i64> = (i32::MIN as i64)..=(i32::MAX as i64);

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
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Function {
    const ALL: [Function; 18] = [
        Self::Format,
        Self::StringToJson,
        Self::JsonToString,
        Self::Array,
        Self::ArrayPartition,
        Self::ArrayContains,
        Self::ArrayRange,
        Self::ArrayGetItem,
        Self::ArrayLength,
        Self::ArrayUnique,
        Self::Base64Encode,
        Self::Base64Decode,
        Self::Hash,
        Self::JsonMerge,
        Self::MathRandom,
        Self::MathAdd,
        Self::StringSplit,
        Self::Uuid,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Format => "States.Format",
            Self::StringToJson => "States.StringToJson",
            Self::JsonToString => "States.JsonToString",
            Self::Array => "States.Array",
            Self::ArrayPartition => "States.ArrayPartition",
            Self::ArrayContains => "States.ArrayContains",
            Self::ArrayRange => "States.ArrayRange",
            Self::ArrayGetItem => "States.ArrayGetItem",
            Self::ArrayLength => "States.ArrayLength",
            Self::ArrayUnique => "States.ArrayUnique",
            Self::Base64Encode => "States.Base64Encode",
            Self::Base64Decode => "States.Base64Decode",
            Self::Hash => "States.Hash",
            Self::JsonMerge => "States.JsonMerge",
            Self::MathRandom => "States.MathRandom",
            Self::MathAdd => "States.MathAdd",
            Self::StringSplit => "States.StringSplit",
            Self::Uuid => "States.UUID",
        }
    }

    fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Allowed argument counts, inclusive, as the page gives them.
    fn arity(self) -> (usize, usize) {
        match self {
            Self::Format => (1, usize::MAX),
            Self::Array => (0, usize::MAX),
            Self::Uuid => (0, 0),
            Self::StringToJson
            | Self::JsonToString
            | Self::ArrayLength
            | Self::ArrayUnique
            | Self::Base64Encode
            | Self::Base64Decode => (1, 1),
            Self::ArrayPartition
            | Self::ArrayContains
            | Self::ArrayGetItem
            | Self::Hash
            | Self::MathAdd
            | Self::StringSplit => (2, 2),
            Self::ArrayRange | Self::JsonMerge => (3, 3),
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
            calls: 0,
        };
        let call = parser.call()?;
        parser.skip_ws();
        if parser.pos != parser.chars.len() {
            return Err(format!("unexpected text after the call in `{text}`"));
        }
        if parser.calls > MAX_CALLS_PER_FIELD {
            return Err(format!(
                "`{text}` has {} intrinsic function calls; a field may nest at most {MAX_CALLS_PER_FIELD}",
                parser.calls
            ));
        }
        Ok(call)
    }

    /// Evaluates the call outside any field (unit tests).
    #[cfg(test)]
    pub(crate) fn eval(
        &self,
        input: &Value,
        context: &Value,
        rng: &mut (dyn RngCore + Send),
    ) -> Result<Value, TaskFailure> {
        self.eval_in(input, context, "", rng)
    }

    /// Evaluates the call; `field` (the `.$` key) names it in error causes.
    pub(crate) fn eval_in(
        &self,
        input: &Value,
        context: &Value,
        field: &str,
        rng: &mut (dyn RngCore + Send),
    ) -> Result<Value, TaskFailure> {
        let mut values = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            values.push(match arg {
                Arg::Str(raw) => Value::String(unescape(raw)),
                Arg::Literal(value) => value.clone(),
                Arg::Path(path) => path.select(input, context, field)?,
                Arg::Call(call) => call.eval_in(input, context, field, rng)?,
            });
        }
        let f = Fn {
            name: self.function.name(),
            field,
        };
        match self.function {
            Function::Format => self.format(&f, &values),
            Function::StringToJson => {
                let text = f.string(&values[0], "its argument")?;
                // Unverified: an empty or blank string gives `null`, as
                // executions recorded on AWS show; the page only says "The
                // interpreter applies a JSON parser".
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_str(text)
                    .map_err(|e| f.fail(format!("the string is not JSON: {e}")))
            }
            Function::JsonToString => Ok(Value::String(values[0].to_string())),
            Function::Array => Ok(Value::Array(values)),
            Function::ArrayPartition => {
                let items = f.array(&values[0], "the first argument")?;
                f.within_payload(&values[0])?;
                let size = f.integer(&values[1], "the chunk size")?;
                let size = usize::try_from(size)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        f.fail(format!(
                            "the chunk size must be a non-zero, positive integer, got {}",
                            values[1]
                        ))
                    })?;
                Ok(Value::Array(
                    items
                        .chunks(size)
                        .map(|chunk| Value::Array(chunk.to_vec()))
                        .collect(),
                ))
            }
            Function::ArrayContains => {
                let items = f.array(&values[0], "the first argument")?;
                f.within_payload(&values[0])?;
                Ok(Value::Bool(items.contains(&values[1])))
            }
            Function::ArrayRange => {
                let first = f.integer(&values[0], "the first argument")?;
                let last = f.integer(&values[1], "the second argument")?;
                let step = f.integer(&values[2], "the increment")?;
                if step == 0 {
                    return Err(
                        f.fail("the increment (third argument) must be non-zero".to_owned())
                    );
                }
                // Unverified: an increment that points away from the final
                // element gives an empty array; the page only requires it
                // to be non-zero.
                let count = if (last - first).signum() * step.signum() < 0 {
                    0
                } else {
                    (last - first) / step + 1
                };
                if count > MAX_RANGE_ITEMS {
                    return Err(f.fail(format!(
                        "the array would have {count} items; it can't contain more than {MAX_RANGE_ITEMS}"
                    )));
                }
                Ok(Value::Array(
                    (0..count).map(|i| Value::from(first + i * step)).collect(),
                ))
            }
            Function::ArrayGetItem => {
                let items = f.array(&values[0], "the first argument")?;
                // Unverified: the index is rounded like every other integer
                // argument on the page; the page states no rule for it.
                let index = f.integer(&values[1], "the index")?;
                usize::try_from(index)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        f.fail(format!(
                            "index {index} is out of bounds for an array of {} items",
                            items.len()
                        ))
                    })
            }
            Function::ArrayLength => Ok(Value::from(f.array(&values[0], "its argument")?.len())),
            Function::ArrayUnique => {
                let items = f.array(&values[0], "its argument")?;
                let mut unique: Vec<Value> = Vec::with_capacity(items.len());
                for item in items {
                    if !unique.contains(item) {
                        unique.push(item.clone());
                    }
                }
                Ok(Value::Array(unique))
            }
            Function::Base64Encode => {
                let text = f.string(&values[0], "its argument")?;
                f.at_most_chars(text)?;
                // Unverified: standard Base64 (RFC 4648) without line breaks;
                // the page says "MIME Base64 encoding scheme", whose line
                // breaks every 76 characters it does not show.
                Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
                ))
            }
            Function::Base64Decode => {
                let text = f.string(&values[0], "its argument")?;
                f.at_most_chars(text)?;
                // MIME decoding skips line breaks; padding is optional.
                let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                let bytes = base64::engine::general_purpose::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::general_purpose::GeneralPurposeConfig::new()
                        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
                )
                .decode(compact.as_bytes())
                .map_err(|e| f.fail(format!("the string is not Base64: {e}")))?;
                // Unverified: decoded bytes that are not UTF-8 fail; the
                // page only shows text.
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| f.fail("the decoded data is not UTF-8 text".to_owned()))
            }
            Function::Hash => {
                // Unverified: "The data you provide must be an object string
                // containing 10,000 characters or less" is read as "a string
                // of at most 10,000 characters"; any other value fails.
                let data = f.string(&values[0], "the data (first argument)")?;
                f.at_most_chars(data)?;
                let algorithm = f.string(&values[1], "the algorithm (second argument)")?;
                let bytes = data.as_bytes();
                let digest = match algorithm {
                    "MD5" => md5::Md5::digest(bytes).to_vec(),
                    "SHA-1" => sha1::Sha1::digest(bytes).to_vec(),
                    "SHA-256" => sha2::Sha256::digest(bytes).to_vec(),
                    "SHA-384" => sha2::Sha384::digest(bytes).to_vec(),
                    "SHA-512" => sha2::Sha512::digest(bytes).to_vec(),
                    other => {
                        return Err(f.fail(format!(
                            "the algorithm must be one of MD5, SHA-1, SHA-256, SHA-384, SHA-512, got '{other}'"
                        )))
                    }
                };
                Ok(Value::String(hex::encode(digest)))
            }
            Function::JsonMerge => {
                let first = f.object(&values[0], "the first argument")?;
                let second = f.object(&values[1], "the second argument")?;
                match values[2] {
                    Value::Bool(false) => {}
                    Value::Bool(true) => {
                        return Err(f.fail(
                            "only the shallow merging mode is supported: the third argument must be false"
                                .to_owned(),
                        ))
                    }
                    ref other => {
                        return Err(f.fail(format!(
                            "the third argument must be the boolean false, got {other}"
                        )))
                    }
                }
                let mut merged: Map<String, Value> = first.clone();
                for (key, value) in second {
                    merged.insert(key.clone(), value.clone());
                }
                Ok(Value::Object(merged))
            }
            Function::MathRandom => {
                let start = f.integer(&values[0], "the start number")?;
                let end = f.integer(&values[1], "the end number")?;
                // "a random number between the specified start number
                // (inclusive) and end number (exclusive)". Unverified: an
                // empty range (start >= end) fails.
                if start >= end {
                    return Err(f.fail(format!(
                        "the start number {start} must be below the end number {end}"
                    )));
                }
                let n = match values.get(2) {
                    // "If you use this function with the same seed value, it
                    // will return identical numbers" — identical here, not
                    // the numbers AWS draws for that seed.
                    Some(seed) => {
                        let seed = f.integer(seed, "the seed")?;
                        rand::rngs::StdRng::seed_from_u64(seed as u64).random_range(start..end)
                    }
                    None => rng.random_range(start..end),
                };
                Ok(Value::from(n))
            }
            Function::MathAdd => {
                let a = f.integer(&values[0], "the first argument")?;
                let b = f.integer(&values[1], "the second argument")?;
                for n in [a, b] {
                    if !MATH_ADD_RANGE.contains(&n) {
                        return Err(f.fail(format!(
                            "{n} is outside the range -2147483648 to 2147483647"
                        )));
                    }
                }
                // Two values in the 32-bit range cannot overflow an i64.
                // Unverified: the sum is not wrapped to 32 bits.
                Ok(Value::from(a + b))
            }
            Function::StringSplit => {
                let text = f.string(&values[0], "the first argument")?;
                let delimiters = f.string(&values[1], "the delimiting characters")?;
                // Each character of the second argument delimits, and empty
                // pieces are dropped (the page's "This.is+a,test=string"
                // example with ".+,=").
                Ok(Value::Array(
                    text.split(|c| delimiters.contains(c))
                        .filter(|piece| !piece.is_empty())
                        .map(|piece| Value::String(piece.to_owned()))
                        .collect(),
                ))
            }
            Function::Uuid => {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                Ok(Value::String(
                    uuid::Builder::from_random_bytes(bytes)
                        .into_uuid()
                        .to_string(),
                ))
            }
        }
    }

    fn format(&self, f: &Fn<'_>, values: &[Value]) -> Result<Value, TaskFailure> {
        // A literal template keeps its escapes so `\{` is a brace, not a
        // placeholder; a template read from a path is taken as it is, with
        // `{}` its only special sequence (unverified).
        let (template, escapes) = match &self.args[0] {
            Arg::Str(raw) => (raw.clone(), true),
            _ => (
                f.string(&values[0], "the first argument")?.to_owned(),
                false,
            ),
        };
        let placeholders = count_placeholders(&template, escapes);
        let args = &values[1..];
        // "There must be as many remaining arguments in the intrinsic
        // function invocation as there are occurrences of {}."
        if placeholders != args.len() {
            return Err(f.fail(format!(
                "the template has {placeholders} placeholder(s) but {} argument(s) follow it",
                args.len()
            )));
        }
        let mut args = args.iter();
        let mut out = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if escapes => {
                    if let Some(escaped) = chars.next() {
                        out.push(escaped);
                    }
                }
                '{' if chars.peek() == Some(&'}') => {
                    chars.next();
                    if let Some(arg) = args.next() {
                        format_value(arg, &mut out);
                    }
                }
                c => out.push(c),
            }
        }
        Ok(Value::String(out))
    }
}

fn count_placeholders(template: &str, escapes: bool) -> usize {
    let mut count = 0;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if escapes => {
                chars.next();
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                count += 1;
            }
            _ => {}
        }
    }
    count
}

/// A `States.Format` argument as text: a string as it is, a number, boolean
/// or `null` as its JSON text ("the natural string representation; string
/// values are not accompanied by enclosing \" characters", ASL spec). The
/// ASL spec says an argument "MUST NOT be a JSON array or object", but Step
/// Functions formats them, and executions recorded on AWS show how: an
/// object as `{Arg1=1, Arg2=[]}` and an array as `[1, 2]`, Java's rendering
/// of maps and lists (unverified beyond that: the developer guide is silent;
/// object keys come out in name order here).
fn format_value(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                format_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push('=');
                format_value(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The function being evaluated, for argument checks and error causes.
struct Fn<'a> {
    name: &'static str,
    field: &'a str,
}

impl Fn<'_> {
    /// `States.IntrinsicFailure`. The cause's wording is our own (the
    /// documentation gives none).
    fn fail(&self, reason: String) -> TaskFailure {
        let field = if self.field.is_empty() {
            String::new()
        } else {
            format!(" specified for the field '{}'", self.field)
        };
        TaskFailure::new(
            errors::INTRINSIC_FAILURE,
            format!(
                "The intrinsic function {}{field} failed: {reason}",
                self.name
            ),
        )
    }

    fn string<'v>(&self, value: &'v Value, what: &str) -> Result<&'v str, TaskFailure> {
        value
            .as_str()
            .ok_or_else(|| self.fail(format!("{what} must be a string, got {}", brief(value))))
    }

    fn array<'v>(&self, value: &'v Value, what: &str) -> Result<&'v Vec<Value>, TaskFailure> {
        value
            .as_array()
            .ok_or_else(|| self.fail(format!("{what} must be an array, got {}", brief(value))))
    }

    fn object<'v>(
        &self,
        value: &'v Value,
        what: &str,
    ) -> Result<&'v Map<String, Value>, TaskFailure> {
        value.as_object().ok_or_else(|| {
            self.fail(format!(
                "{what} must be a JSON object, got {}",
                brief(value)
            ))
        })
    }

    /// An integer argument. "If you specify a non-integer value ..., Step
    /// Functions will round it off to the nearest integer" (ArrayPartition,
    /// ArrayRange, MathRandom, MathAdd). Halves round up, towards positive
    /// infinity (Java's `Math.round`: 2.5 → 3, -2.5 → -2), which is what
    /// executions recorded on AWS show for `States.MathAdd`; the page does
    /// not say how halves round (unverified).
    fn integer(&self, value: &Value, what: &str) -> Result<i64, TaskFailure> {
        if let Some(n) = value.as_i64() {
            return Ok(n);
        }
        value
            .as_f64()
            .filter(|x| x.is_finite())
            .map(|x| (x + 0.5).floor())
            .filter(|x| x.abs() < 9.2e18)
            .map(|x| x as i64)
            .ok_or_else(|| self.fail(format!("{what} must be an integer, got {}", brief(value))))
    }

    /// "The input array can't exceed Step Functions' payload size limit of 256 KiB."
    fn within_payload(&self, value: &Value) -> Result<(), TaskFailure> {
        let size = json_size(value);
        if size > super::quotas::MAX_PAYLOAD_BYTES {
            return Err(self.fail(format!(
                "the input array has {size} bytes; it can't exceed the payload size limit of 256 KiB"
            )));
        }
        Ok(())
    }

    fn at_most_chars(&self, text: &str) -> Result<(), TaskFailure> {
        let chars = text.chars().count();
        if chars > MAX_STRING_CHARS {
            return Err(self.fail(format!(
                "the string has {chars} characters; at most {MAX_STRING_CHARS} are allowed"
            )));
        }
        Ok(())
    }
}

/// A value for an error cause, shortened.
fn brief(value: &Value) -> String {
    super::path::truncated(value)
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
    /// Calls parsed so far (the 10-per-field limit).
    calls: usize,
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
            .ok_or_else(|| format!("`{name}` is not an intrinsic function"))?;
        self.calls += 1;
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
        // This asserted an error before; AWS formats objects (issue 19, and
        // executions recorded on AWS): `{}` renders as `{}`.
        assert_eq!(
            eval("States.Format('{}', $.o)", json!({"o": {}})).unwrap(),
            json!("{}")
        );
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
        // This asserted an error before; the AWS page says non-integer
        // arguments are rounded to the nearest integer: 1.5 → 2.
        assert_eq!(eval("States.MathAdd(1.5, 1)", json!({})).unwrap(), json!(3));
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
