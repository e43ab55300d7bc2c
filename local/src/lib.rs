//! `dofs-local`: the whole DOFS system in one process, no Docker, no AWS
//! account — the binary `dofs`.
//!
//! The same handler code as on Lambda runs against stand-ins for the AWS
//! services, with the semantics the handlers see in the cloud, and all state
//! in one SQLite file, so that a crash loses no accepted order and a restart
//! resumes in-flight work. The layout says what each part is:
//!
//! - [`runtime`]: the composition root, [`runtime::Runtime`]: builds every
//!   part from a [`runtime::RuntimeConfig`] and runs them until a
//!   [`shutdown::Shutdown`]. `dofs serve`, `dofs bench` and the in-process
//!   tests all start the system through it.
//! - [`shutdown`]: [`shutdown::Shutdown`], the one token every long-running
//!   part watches.
//! - [`identity`]: account, region, stack and the names and ARNs of every
//!   local resource.
//! - [`definitions`]: the workflow and alarm files Terraform deploys,
//!   compiled in, and their `${...}` rendering.
//! - [`store`]: the data directory's SQLite database (WAL, schema versions,
//!   a group-commit writer thread, a checkpointer and pooled readers). Every
//!   write goes through it.
//! - [`faults`]: faults injected per function (`--fault`, the console's
//!   faults API) to rehearse an outage.
//! - [`http_server`]: the HTTP/1.1 server in front of the gateway and the
//!   console, with a connection cap and read and idle timeouts.
//! - [`http_guard`]: the `Host` check against DNS rebinding and the security
//!   headers of every response.
//! - [`aws_tools`]: the JSON refusal of a request from an AWS SDK or the
//!   AWS CLI pointed at `dofs` (it is not an AWS endpoint), outside the
//!   gateway so it never counts as API traffic.
//! - [`services`]: the AWS stand-ins, one per service: `api_gateway` (HTTP
//!   API, payload 2.0), `lambda` (the five functions, invoked as Lambda
//!   invokes them), `dynamodb` (the two tables), `sqs` (queues, redrive, and
//!   the event source mappings), `step_functions` (persisted executions of
//!   the ASL file, driven by [`dofs_asl`]).
//! - [`observability`]: CloudWatch-style metrics (EMF and AWS service
//!   metrics), the monitor loop, the alarms of `dashboards/alarms.json`
//!   evaluated as CloudWatch does, and the span store behind `dofs trace`
//!   (its X-Ray view, `traces::xray_view`, and the full waterfall).
//! - [`inspect`]: the read models (one order's report) shared by the CLI and
//!   the console.
//! - [`console`]: the web console under `/_dofs/`, and `/_dofs/health`.
//! - [`cli`]: the `dofs` command line (`serve`, `orders`, `order`, `trace`,
//!   `queues`, `redrive`, `metrics`, `alarms`, `bench`, `fault`, `submit`,
//!   `reset`, `completions`), and
//!   `cli::serve_process`, a `dofs serve` child process for `bench` and the
//!   end-to-end tests.
//!
//! Dependencies point one way, down these layers (a module uses only
//! the layers below its own; the `layering` test checks it on the source):
//! `cli` → `runtime` → `console` → `inspect` → `services` → `observability`
//! → `store`, `definitions`, `faults`, `http_server` → `identity`,
//! `shutdown`, `http_guard`, `aws_tools`. So `cli` and `console` read through `inspect`
//! and the services; `runtime` wires services and observability; services
//! use `store`, `faults` and `identity`; nothing but `main.rs` depends on
//! `cli`.
//!
//! Why our own implementation: no crate emulates SQS, Step Functions and API
//! Gateway in-process with durable state (the `fakecloud-*` crates are AGPL,
//! LocalStack needs Docker), and the point is to run the *same* handler code
//! against the same event shapes.

pub mod aws_tools;
pub mod cli;
pub mod console;
pub mod definitions;
pub mod faults;
pub mod http_guard;
pub mod http_server;
pub mod identity;
pub mod inspect;
pub mod observability;
pub mod runtime;
pub mod services;
pub mod shutdown;
pub mod store;

/// The dependency direction above, checked on the source: a module's
/// production code (its test modules aside) names no module of its own
/// layer or above.
#[cfg(test)]
mod layering {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// The layers, bottom up: a module may use the modules of the layers
    /// below its own, no other.
    const LAYERS: &[&[&str]] = &[
        &["identity", "shutdown", "http_guard", "aws_tools"],
        &["store", "definitions", "faults", "http_server"],
        &["observability"],
        &["services"],
        &["inspect"],
        &["console"],
        &["runtime"],
        &["cli"],
    ];

    fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|layer| layer.contains(&module))
    }

    fn sources(path: &Path, out: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                sources(&entry.unwrap().path(), out);
            }
        } else if path.is_file()
            && path.extension().is_some_and(|e| e == "rs")
            && !path.ends_with("tests.rs")
        {
            out.push(path.to_path_buf());
        }
    }

    /// The code of a file without its `#[cfg(test)]` tail and comments.
    fn production_code(text: &str) -> String {
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        code.lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The crate's top-level modules `code` names: in paths (`crate::a::x`,
    /// `use crate::a;`) and in groups, nested or over several lines
    /// (`use crate::{a, b::{x, y}}`: `a` and `b`).
    fn modules_used(code: &str) -> BTreeSet<String> {
        let ident = |text: &str| -> String {
            text.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let mut used = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = code[at + "crate::".len()..].trim_start();
            let Some(group) = rest.strip_prefix('{') else {
                used.insert(ident(rest));
                continue;
            };
            // The group's top-level items: split at commas outside braces.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start => {
                        used.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        }
        used.retain(|m| !m.is_empty());
        used
    }

    #[test]
    fn modules_used_reads_paths_and_groups() {
        let code = "use crate::a::x;\nuse crate::b;\nlet _ = crate::c::f();\n\
                    use crate::{d, e::{x, y},\n    f::z};";
        let used: Vec<String> = modules_used(code).into_iter().collect();
        assert_eq!(used, ["a", "b", "c", "d", "e", "f"]);
    }

    /// Every module the crate root declares has a layer (a new module
    /// cannot escape the rule) and an entry in the crate doc's map.
    #[test]
    fn every_module_has_a_layer_and_a_line_in_the_map() {
        let lib = include_str!("lib.rs");
        let declared: Vec<&str> = lib
            .lines()
            .filter_map(|line| line.strip_prefix("pub mod "))
            .map(|rest| rest.trim_end_matches(';'))
            .collect();
        assert!(declared.len() > 10, "{declared:?}");
        for module in declared {
            assert!(
                layer_of(module).is_some(),
                "{module} has no layer in LAYERS"
            );
            assert!(
                lib.contains(&format!("//! - [`{module}`]")),
                "the crate doc's map lacks {module}"
            );
        }
    }

    #[test]
    fn no_module_uses_its_own_layer_or_one_above() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut violations = Vec::new();
        for (level, layer) in LAYERS.iter().enumerate() {
            for module in *layer {
                let mut files = Vec::new();
                sources(&src.join(module), &mut files);
                sources(&src.join(format!("{module}.rs")), &mut files);
                assert!(!files.is_empty(), "no source for module {module}");
                for file in files {
                    let code = production_code(&std::fs::read_to_string(&file).unwrap());
                    for used in modules_used(&code) {
                        if used != *module && layer_of(&used).is_some_and(|l| l >= level) {
                            violations.push(format!("{} uses crate::{used}", file.display()));
                        }
                    }
                }
            }
        }
        assert!(violations.is_empty(), "{violations:#?}");
    }
}
