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
//! - [`identity`]: account, region, stack and the names and ARNs of every
//!   local resource.
//! - [`definitions`]: the workflow and alarm files Terraform deploys,
//!   compiled in, and their `${...}` rendering.
//! - [`store`]: the data directory's SQLite database (WAL, schema versions,
//!   a group-commit writer thread, a checkpointer and pooled readers). Every
//!   write goes through it.
//! - [`services`]: the AWS stand-ins, one per service: `api_gateway` (HTTP
//!   API, payload 2.0), `lambda` (the five functions, invoked as Lambda
//!   invokes them), `dynamodb` (the two tables), `sqs` (queues, redrive, and
//!   the event source mappings), `step_functions` (persisted executions of
//!   the ASL file, driven by [`dofs_asl`]).
//! - [`observability`]: CloudWatch-style metrics (EMF and AWS service
//!   metrics), the monitor loop, the alarms of `dashboards/alarms.json`
//!   evaluated as CloudWatch does, and the span store behind `dofs trace`.
//! - [`inspect`]: the read models (one order's report) shared by the CLI and
//!   the console.
//! - [`console`]: the web console under `/_dofs/`.
//! - [`cli`]: the `dofs` command line (`serve`, `orders`, `order`, `trace`,
//!   `queues`, `redrive`, `metrics`, `alarms`, `bench`).
//!
//! Dependencies point one way: `cli` and `console` read through `inspect`
//! and the services; `runtime` wires services and observability; services
//! use `store` and `identity`; nothing but `main.rs` depends on `cli`.
//!
//! Why our own implementation: no crate emulates SQS, Step Functions and API
//! Gateway in-process with durable state (the `fakecloud-*` crates are AGPL,
//! LocalStack needs Docker), and the point is to run the *same* handler code
//! against the same event shapes.

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

/// The dependency direction above, checked on the source: a layer's
/// production code (its test modules aside) names no module above it.
#[cfg(test)]
mod layering {
    use std::path::Path;

    /// Each layer and the modules it must not use.
    const RULES: &[(&str, &[&str])] = &[
        (
            "identity",
            &[
                "store",
                "services",
                "observability",
                "inspect",
                "console",
                "cli",
                "runtime",
            ],
        ),
        (
            "store",
            &[
                "services",
                "observability",
                "inspect",
                "console",
                "cli",
                "runtime",
            ],
        ),
        (
            "observability",
            &["services", "inspect", "console", "cli", "runtime"],
        ),
        ("services", &["inspect", "console", "cli", "runtime"]),
        ("inspect", &["console", "cli", "runtime"]),
        ("console", &["cli", "runtime"]),
        ("runtime", &["cli"]),
    ];

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

    #[test]
    fn no_layer_uses_a_layer_above_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut violations = Vec::new();
        for (layer, forbidden) in RULES {
            let mut files = Vec::new();
            sources(&src.join(layer), &mut files);
            sources(&src.join(format!("{layer}.rs")), &mut files);
            assert!(!files.is_empty(), "no source for layer {layer}");
            for file in files {
                let code = production_code(&std::fs::read_to_string(&file).unwrap());
                for above in *forbidden {
                    if code.contains(&format!("crate::{above}::"))
                        || code.contains(&format!("crate::{above};"))
                        || code.contains(&format!("crate::{above}}}"))
                    {
                        violations.push(format!("{} uses crate::{above}", file.display()));
                    }
                }
            }
        }
        assert!(violations.is_empty(), "{violations:#?}");
    }
}
