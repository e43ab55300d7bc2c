//! ASL paths: reading with `Path` (InputPath, OutputPath, `.$` fields, Choice
//! variables) and writing with `ReferencePath` (ResultPath).
//!
//! Reading is delegated to `serde_json_path` (RFC 9535). Step Functions uses
//! Jayway JsonPath, which differs in two ways that matter here, handled before
//! the query reaches the RFC engine:
//! - a *reference path* (`$.a.b`, `$['a']`, `$.a[0]`) selects one node and it is an
//!   error when it is missing; any other path (wildcards, filters, slices) yields
//!   the array of what it matched, possibly empty ("Paths" in the ASL spec);
//! - Jayway dot names may contain characters RFC 9535 shorthand does not
//!   (`$.order-id`), so reference paths are re-written in bracket notation.
//!
//! `$$` selects from the context object instead of the state input
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html>).
//!
//! Writing needs the path's segments, which `serde_json_path` does not expose,
//! hence the small reference-path parser here.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use super::{errors, TaskFailure};

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Name(String),
    Index(i64),
}

/// A path that selects at most one node: `$` followed by names and indexes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReferencePath {
    text: String,
    segments: Vec<Segment>,
}

impl ReferencePath {
    /// Parses `$`, `$.a.b`, `$['a b']`, `$.a[0]`. Returns `None` for anything else
    /// (which may still be a valid, non-singular JSONPath).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let chars: Vec<char> = text.chars().collect();
        if chars.first() != Some(&'$') {
            return None;
        }
        let mut segments = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                        end += 1;
                    }
                    let name: String = chars[start..end].iter().collect();
                    if name.is_empty() || name == "*" || name.contains(['(', ')', '?', '@']) {
                        return None;
                    }
                    segments.push(Segment::Name(name));
                    i = end;
                }
                '[' => {
                    let quote = *chars.get(i + 1)?;
                    if quote == '\'' || quote == '"' {
                        let mut name = String::new();
                        let mut j = i + 2;
                        loop {
                            let c = *chars.get(j)?;
                            if c == '\\' {
                                name.push(*chars.get(j + 1)?);
                                j += 2;
                            } else if c == quote {
                                break;
                            } else {
                                name.push(c);
                                j += 1;
                            }
                        }
                        if chars.get(j + 1) != Some(&']') {
                            return None;
                        }
                        segments.push(Segment::Name(name));
                        i = j + 2;
                    } else {
                        let close = (i + 1..chars.len()).find(|&j| chars[j] == ']')?;
                        let digits: String = chars[i + 1..close].iter().collect();
                        let digits = digits.trim();
                        let unsigned = digits.strip_prefix('-').unwrap_or(digits);
                        if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_ascii_digit()) {
                            return None;
                        }
                        segments.push(Segment::Index(digits.parse().ok()?));
                        i = close + 1;
                    }
                }
                _ => return None,
            }
        }
        Some(Self {
            text: text.to_owned(),
            segments,
        })
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The same path in RFC 9535 bracket notation, which accepts any member name.
    fn to_rfc9535(&self) -> String {
        let mut out = String::from("$");
        for segment in &self.segments {
            match segment {
                Segment::Name(name) => {
                    out.push_str("['");
                    for c in name.chars() {
                        match c {
                            '\'' => out.push_str("\\'"),
                            '\\' => out.push_str("\\\\"),
                            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                            c => out.push(c),
                        }
                    }
                    out.push_str("']");
                }
                Segment::Index(index) => out.push_str(&format!("[{index}]")),
            }
        }
        out
    }

    /// Puts `value` at this path inside `target` (ResultPath semantics): objects on
    /// the way are created when missing; an existing non-object on the way, or an
    /// array index out of range, is `States.ResultPathMatchFailure`.
    /// <https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultpath.html>
    pub(crate) fn write(&self, target: Value, value: Value) -> Result<Value, TaskFailure> {
        let Some((last, parents)) = self.segments.split_last() else {
            return Ok(value);
        };
        let mut root = target;
        let mut node = &mut root;
        for segment in parents {
            node = match (segment, node) {
                (Segment::Name(name), Value::Object(map)) => map
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new())),
                (Segment::Index(index), Value::Array(items)) => {
                    let at = self.array_slot(items.len(), *index)?;
                    &mut items[at]
                }
                (_, other) => return Err(self.mismatch(other)),
            };
        }
        match (last, node) {
            (Segment::Name(name), Value::Object(map)) => {
                map.insert(name.clone(), value);
            }
            (Segment::Index(index), Value::Array(items)) => {
                let at = self.array_slot(items.len(), *index)?;
                items[at] = value;
            }
            (_, other) => return Err(self.mismatch(other)),
        }
        Ok(root)
    }

    fn array_slot(&self, len: usize, index: i64) -> Result<usize, TaskFailure> {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < len)
            .ok_or_else(|| {
                TaskFailure::new(
                    errors::RESULT_PATH_MATCH_FAILURE,
                    format!(
                        "Unable to apply ResultPath '{}': index {index} is out of range",
                        self.text
                    ),
                )
            })
    }

    fn mismatch(&self, found: &Value) -> TaskFailure {
        TaskFailure::new(
            errors::RESULT_PATH_MATCH_FAILURE,
            format!(
                "Unable to apply ResultPath '{}' to input {}: it does not lead through objects",
                self.text,
                truncated(found)
            ),
        )
    }
}

/// A JSONPath read from the state input or, with `$$`, the context object.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    text: String,
    context: bool,
    query: JsonPath,
    /// The segments, when the path is a reference path (selects one node).
    reference: Option<Vec<Segment>>,
}

impl Path {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (context, local) = match text.strip_prefix("$$") {
            Some(rest) => (true, format!("${rest}")),
            None if text.starts_with('$') => (false, text.to_owned()),
            None => return Err(format!("`{text}` is not a path: paths start with `$`")),
        };
        let (query, reference) = match ReferencePath::parse(&local) {
            Some(reference) => (
                JsonPath::parse(&reference.to_rfc9535()),
                Some(reference.segments),
            ),
            None => (JsonPath::parse(&local), None),
        };
        let query = query.map_err(|e| format!("`{text}` is not a valid JSONPath: {e}"))?;
        Ok(Self {
            text: text.to_owned(),
            context,
            query,
            reference,
        })
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The value the path selects, or `None` when a reference path finds nothing.
    pub(crate) fn lookup(&self, input: &Value, context: &Value) -> Option<Value> {
        let doc = if self.context { context } else { input };
        let nodes = self.query.query(doc);
        if self.reference.is_some() {
            nodes.first().cloned()
        } else {
            Some(Value::Array(nodes.all().into_iter().cloned().collect()))
        }
    }

    /// Like [`Path::lookup`], but a missing value is `States.Runtime`, which is what
    /// Step Functions reports for a `.$` field, an intrinsic argument, a Fail
    /// state's `ErrorPath`/`CausePath` or a Choice variable that matches
    /// nothing. The wording is the one of execution histories recorded on
    /// AWS ("The JSONPath '$.x' specified for the field 'value.$' could not be
    /// found in the input '{...}'"); the documentation gives none.
    pub(crate) fn select(
        &self,
        input: &Value,
        context: &Value,
        field: &str,
    ) -> Result<Value, TaskFailure> {
        self.lookup(input, context).ok_or_else(|| {
            let doc = if self.context { context } else { input };
            TaskFailure::new(
                errors::RUNTIME,
                format!(
                    "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                    self.text,
                    truncated(doc)
                ),
            )
        })
    }

    /// Like [`Path::select`], for the fields that are paths themselves
    /// (`InputPath`, `OutputPath`, `TimeoutSecondsPath`,
    /// `HeartbeatSecondsPath`): Step Functions words those failures as its
    /// JSONPath engine (Jayway) does, "Invalid path '$.a' : No results for
    /// path: $['a']" when the last step is missing and "Invalid path
    /// '$.a.b' : Missing property in path $['a']" when one before it is.
    /// Both shapes are taken from execution histories recorded on AWS; the
    /// documentation words neither (unverified beyond those two shapes).
    pub(crate) fn select_path_field(
        &self,
        input: &Value,
        context: &Value,
    ) -> Result<Value, TaskFailure> {
        self.lookup(input, context).ok_or_else(|| {
            let doc = if self.context { context } else { input };
            TaskFailure::new(
                errors::RUNTIME,
                format!("Invalid path '{}' : {}", self.text, self.miss(doc)),
            )
        })
    }

    /// Where a reference path stops matching `doc`, in Jayway's words.
    fn miss(&self, doc: &Value) -> String {
        let Some(segments) = &self.reference else {
            return format!("No results for path: {}", self.text);
        };
        let mut node = Some(doc);
        let mut at = 0;
        for (i, segment) in segments.iter().enumerate() {
            node = node.and_then(|n| step(n, segment));
            if node.is_none() {
                at = i;
                break;
            }
        }
        let bracketed = |upto: usize| -> String {
            let mut out = String::from("$");
            for segment in &segments[..=upto] {
                match segment {
                    Segment::Name(name) => out.push_str(&format!("['{name}']")),
                    Segment::Index(index) => out.push_str(&format!("[{index}]")),
                }
            }
            out
        };
        if at + 1 == segments.len() {
            format!("No results for path: {}", bracketed(at))
        } else {
            format!("Missing property in path {}", bracketed(at))
        }
    }
}

/// One step of a reference path into `node`.
fn step<'a>(node: &'a Value, segment: &Segment) -> Option<&'a Value> {
    match (segment, node) {
        (Segment::Name(name), Value::Object(map)) => map.get(name),
        (Segment::Index(index), Value::Array(items)) => {
            let at = if *index < 0 {
                i64::try_from(items.len()).ok()? + index
            } else {
                *index
            };
            items.get(usize::try_from(at).ok()?)
        }
        _ => None,
    }
}

/// JSON text for error causes, cut so a large payload does not flood the history.
pub(crate) fn truncated(value: &Value) -> String {
    const LIMIT: usize = 1024;
    let text = value.to_string();
    if text.len() <= LIMIT {
        return text;
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_paths_parse_names_quotes_and_indexes() {
        let path = ReferencePath::parse("$.a['b c'][2].d-e").unwrap();
        assert_eq!(
            path.segments(),
            &[
                Segment::Name("a".into()),
                Segment::Name("b c".into()),
                Segment::Index(2),
                Segment::Name("d-e".into())
            ]
        );
        assert!(ReferencePath::parse("$").unwrap().segments().is_empty());
        for not_reference in [
            "$..a",
            "$.a[*]",
            "$.*",
            "$[0:2]",
            "$.a[?@.b]",
            "a.b",
            "$.a[x]",
        ] {
            assert!(
                ReferencePath::parse(not_reference).is_none(),
                "{not_reference}"
            );
        }
    }

    #[test]
    fn reading_a_reference_path_gives_the_node_or_a_runtime_error() {
        let input = json!({"a": {"b": [10, 20]}, "order-id": "o-1"});
        let ctx = json!({"Execution": {"Id": "arn:x"}});
        let read = |p: &str| Path::parse(p).unwrap().select(&input, &ctx, "f");
        assert_eq!(read("$.a.b[1]").unwrap(), json!(20));
        assert_eq!(read("$.a.b[-1]").unwrap(), json!(20));
        assert_eq!(read("$.order-id").unwrap(), json!("o-1"));
        assert_eq!(read("$").unwrap(), input);
        assert_eq!(read("$$.Execution.Id").unwrap(), json!("arn:x"));
        let missing = read("$.a.c").unwrap_err();
        assert_eq!(missing.error, "States.Runtime");
        assert!(missing.cause.contains("$.a.c"));
    }

    #[test]
    fn non_singular_paths_yield_arrays() {
        let input = json!({"items": [{"sku": "A"}, {"sku": "B"}]});
        let path = Path::parse("$.items[*].sku").unwrap();
        assert_eq!(
            path.select(&input, &json!({}), "f").unwrap(),
            json!(["A", "B"])
        );
        let none = Path::parse("$.nothing[*]").unwrap();
        assert_eq!(none.select(&input, &json!({}), "f").unwrap(), json!([]));
    }

    #[test]
    fn invalid_paths_are_rejected() {
        assert!(Path::parse("a.b").is_err());
        assert!(Path::parse("$.a[").is_err());
    }

    #[test]
    fn writing_merges_and_creates_intermediate_objects() {
        let path = ReferencePath::parse("$.x.y").unwrap();
        let out = path.write(json!({"a": 1}), json!(true)).unwrap();
        assert_eq!(out, json!({"a": 1, "x": {"y": true}}));
        let replace = ReferencePath::parse("$.a").unwrap();
        assert_eq!(
            replace.write(json!({"a": 1}), json!(2)).unwrap(),
            json!({"a": 2})
        );
        let root = ReferencePath::parse("$").unwrap();
        assert_eq!(root.write(json!({"a": 1}), json!("r")).unwrap(), json!("r"));
        let index = ReferencePath::parse("$.l[1]").unwrap();
        assert_eq!(
            index.write(json!({"l": [0, 0]}), json!(5)).unwrap(),
            json!({"l": [0, 5]})
        );
    }

    #[test]
    fn writing_through_a_non_object_fails() {
        let path = ReferencePath::parse("$.a.b").unwrap();
        let err = path.write(json!({"a": "text"}), json!(1)).unwrap_err();
        assert_eq!(err.error, "States.ResultPathMatchFailure");
        let err = path.write(json!("text"), json!(1)).unwrap_err();
        assert_eq!(err.error, "States.ResultPathMatchFailure");
        let index = ReferencePath::parse("$.l[3]").unwrap();
        assert!(index.write(json!({"l": []}), json!(1)).is_err());
    }
}
