//! The definitions the local runtime runs, compiled in so the binary is
//! self-contained: the workflow Terraform deploys
//! (`terraform/order_workflow.asl.json`) and the alarms it deploys
//! (`dashboards/alarms.json`); and the rendering of their `${name}`
//! placeholders, as Terraform's `templatefile` does it.
//!
//! Our own renderer (no crate renders Terraform templates): only the subset
//! the files need is supported, `${name}` interpolation of a plain variable
//! and the `$${` / `%%{` escapes. Expressions (`${var.x}`, `${upper(x)}`) and
//! `%{ if }` directives are rejected rather than guessed at. Like Terraform,
//! values are inserted verbatim (no JSON escaping): the files quote every
//! placeholder and the values are ARNs, names and URLs.

use std::collections::{BTreeMap, BTreeSet};

/// The workflow definition Terraform deploys (`--workflow-file` overrides it).
pub const WORKFLOW_ASL: &str = include_str!("../../terraform/order_workflow.asl.json");

/// The alarms Terraform deploys (`--alarms-file` overrides them).
pub const ALARMS_JSON: &str = include_str!("../../dashboards/alarms.json");
/// The us-east-1 price table `dofs cost` prices with unless told otherwise.
pub const PRICING_US_EAST_1: &str = include_str!("../../pricing/us-east-1.json");

/// The `${...}` placeholders of the workflow file and their local values,
/// for a `dofs serve` at `base_url`.
pub fn workflow_vars(base_url: &str) -> BTreeMap<String, String> {
    use crate::identity::{queue_arn, queue_url, FunctionName, DEAD_LETTER_QUEUE, ORDER_QUEUE};
    let mut vars: BTreeMap<String, String> = FunctionName::ALL
        .into_iter()
        .map(|f| (format!("{}_function_arn", f.as_str()), f.arn()))
        .collect();
    vars.extend([
        (
            "order_queue_url".to_owned(),
            queue_url(base_url, ORDER_QUEUE),
        ),
        ("order_queue_arn".to_owned(), queue_arn(ORDER_QUEUE)),
        (
            "dead_letter_queue_url".to_owned(),
            queue_url(base_url, DEAD_LETTER_QUEUE),
        ),
        (
            "dead_letter_queue_arn".to_owned(),
            queue_arn(DEAD_LETTER_QUEUE),
        ),
    ]);
    vars
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("template line {line}: no value given for `${{{name}}}`")]
    Unknown { line: usize, name: String },
}

/// Renders `template`, replacing every `${name}` with `vars[name]`.
///
/// An unknown placeholder is an error (Terraform: "vars map does not contain
/// key"). Variables the template does not use are ignored, as Terraform
/// ignores them; [`placeholders`] lets a test compare the two sides.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    scan(template, |piece| match piece {
        Piece::Text(text) => {
            out.push_str(text);
            Ok(())
        }
        Piece::Placeholder { name, line } => {
            let value = vars.get(name).ok_or_else(|| TemplateError::Unknown {
                line,
                name: name.to_owned(),
            })?;
            out.push_str(value);
            Ok(())
        }
    })?;
    Ok(out)
}

/// The names of every `${name}` in `template`.
pub fn placeholders(template: &str) -> Result<BTreeSet<String>, TemplateError> {
    let mut names = BTreeSet::new();
    scan(template, |piece| {
        if let Piece::Placeholder { name, .. } = piece {
            names.insert(name.to_owned());
        }
        Ok(())
    })?;
    Ok(names)
}

enum Piece<'a> {
    Text(&'a str),
    Placeholder { name: &'a str, line: usize },
}

fn scan<'a>(
    template: &'a str,
    mut emit: impl FnMut(Piece<'a>) -> Result<(), TemplateError>,
) -> Result<(), TemplateError> {
    let mut rest = template;
    let mut line = 1usize;
    while let Some(pos) = rest.find(['$', '%']) {
        let (before, tail) = rest.split_at(pos);
        emit(Piece::Text(before))?;
        line += before.matches('\n').count();
        if let Some(after) = tail.strip_prefix("$${") {
            emit(Piece::Text("${"))?;
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%%{") {
            emit(Piece::Text("%{"))?;
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| TemplateError::Syntax {
                line,
                message: "unterminated `${`".to_owned(),
            })?;
            let name = after[..end].trim();
            if !is_identifier(name) {
                return Err(TemplateError::Syntax {
                    line,
                    message: format!(
                        "`${{{name}}}` is not a plain variable reference; only `${{name}}` is supported"
                    ),
                });
            }
            emit(Piece::Placeholder { name, line })?;
            line += after[..end].matches('\n').count();
            rest = &after[end + 1..];
        } else if tail.starts_with("%{") {
            return Err(TemplateError::Syntax {
                line,
                message: "template directives (`%{ ... }`) are not supported".to_owned(),
            });
        } else {
            // A lone `$` or `%` (e.g. the JSONPath `$.order_id`) is ordinary text.
            emit(Piece::Text(&tail[..1]))?;
            rest = &tail[1..];
        }
    }
    emit(Piece::Text(rest))
}

/// Terraform identifiers: a letter or `_`, then letters, digits, `_` and `-`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn replaces_placeholders_and_keeps_jsonpaths() {
        let out = render(
            r#"{"F": "${fn}", "P.$": "$.a", "Q": "${ fn }"}"#,
            &vars(&[("fn", "arn:aws:lambda:x")]),
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"F": "arn:aws:lambda:x", "P.$": "$.a", "Q": "arn:aws:lambda:x"}"#
        );
    }

    #[test]
    fn unknown_placeholder_is_an_error_with_its_line() {
        let err = render("{\n\"a\": \"${missing}\"}", &vars(&[])).unwrap_err();
        assert!(
            matches!(err, TemplateError::Unknown { line: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("missing"));
    }

    #[test]
    fn unused_variables_are_ignored_and_placeholders_listed() {
        assert_eq!(
            render("${a}", &vars(&[("a", "1"), ("b", "2")])).unwrap(),
            "1"
        );
        let names = placeholders("$${x} ${a} ${ b } $.c").unwrap();
        assert_eq!(names, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    }

    #[test]
    fn the_compiled_in_files_render_with_the_local_values() {
        let vars = workflow_vars("http://127.0.0.1:3000");
        let used = placeholders(WORKFLOW_ASL).unwrap();
        let given: BTreeSet<String> = vars.keys().cloned().collect();
        assert!(used.is_subset(&given), "{used:?} vs {given:?}");
        render(WORKFLOW_ASL, &vars).unwrap();
        placeholders(ALARMS_JSON).unwrap();
    }

    #[test]
    fn escapes_render_literally() {
        let out = render("$${a} %%{b} ${a}", &vars(&[("a", "x")])).unwrap();
        assert_eq!(out, "${a} %{b} x");
    }

    #[test]
    fn expressions_and_directives_are_rejected() {
        assert!(render("${var.a}", &vars(&[])).is_err());
        assert!(render("%{ if a }x%{ endif }", &vars(&[])).is_err());
        assert!(render("${a", &vars(&[("a", "1")])).is_err());
    }
}
