//! Rendering of the workflow file's `${name}` placeholders, as Terraform's
//! `templatefile` does it, so the local runtime runs the very file Terraform deploys.
//!
//! Only the subset the ASL file needs is supported: `${name}` interpolation of a
//! plain variable, and the `$${` / `%%{` escapes. Expressions (`${var.x}`,
//! `${upper(x)}`) and `%{ if }` directives are rejected rather than guessed at.
//! Like Terraform, values are inserted verbatim (no JSON escaping): the file
//! quotes every placeholder and the values are ARNs and URLs.

use std::collections::{BTreeMap, BTreeSet};

use super::AslError;

/// Renders `template`, replacing every `${name}` with `vars[name]`.
///
/// An unknown placeholder is an error (Terraform: "vars map does not contain key"),
/// and so is a variable that the template never uses: it is almost always a
/// misspelling on one side, which Terraform would silently accept.
pub fn render_template(
    template: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, AslError> {
    let mut out = String::with_capacity(template.len());
    let mut used = BTreeSet::new();
    let mut rest = template;
    let mut line = 1usize;
    while let Some(pos) = rest.find(['$', '%']) {
        let (before, tail) = rest.split_at(pos);
        out.push_str(before);
        line += before.matches('\n').count();
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%%{") {
            out.push_str("%{");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| AslError::Template {
                line,
                message: "unterminated `${`".to_owned(),
            })?;
            let name = after[..end].trim();
            if !is_identifier(name) {
                return Err(AslError::Template {
                    line,
                    message: format!(
                        "`${{{name}}}` is not a plain variable reference; only `${{name}}` is supported"
                    ),
                });
            }
            let value = vars.get(name).ok_or_else(|| AslError::Template {
                line,
                message: format!("no value given for `${{{name}}}`"),
            })?;
            out.push_str(value);
            used.insert(name.to_owned());
            line += after[..end].matches('\n').count();
            rest = &after[end + 1..];
        } else if tail.starts_with("%{") {
            return Err(AslError::Template {
                line,
                message: "template directives (`%{ ... }`) are not supported".to_owned(),
            });
        } else {
            // A lone `$` or `%` (e.g. the JSONPath `$.order_id`) is ordinary text.
            let ch_len = 1;
            out.push_str(&tail[..ch_len]);
            rest = &tail[ch_len..];
        }
    }
    out.push_str(rest);
    let unused: Vec<&str> = vars
        .keys()
        .filter(|name| !used.contains(*name))
        .map(String::as_str)
        .collect();
    if !unused.is_empty() {
        return Err(AslError::UnusedTemplateVariables(unused.join(", ")));
    }
    Ok(out)
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
        let out = render_template(
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
        let err = render_template("{\n\"a\": \"${missing}\"}", &vars(&[])).unwrap_err();
        assert!(matches!(err, AslError::Template { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("missing"));
    }

    #[test]
    fn unused_variable_is_an_error() {
        let err = render_template("${a}", &vars(&[("a", "1"), ("b", "2")])).unwrap_err();
        assert!(matches!(err, AslError::UnusedTemplateVariables(ref names) if names == "b"));
    }

    #[test]
    fn escapes_render_literally() {
        let out = render_template("$${a} %%{b} ${a}", &vars(&[("a", "x")])).unwrap();
        assert_eq!(out, "${a} %{b} x");
    }

    #[test]
    fn expressions_and_directives_are_rejected() {
        assert!(render_template("${var.a}", &vars(&[])).is_err());
        assert!(render_template("%{ if a }x%{ endif }", &vars(&[])).is_err());
        assert!(render_template("${a", &vars(&[("a", "1")])).is_err());
    }
}
