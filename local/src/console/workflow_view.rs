//! An order's workflow execution as the Step Functions console shows it:
//! the graph of the state machine, drawn from the ASL file Terraform
//! deploys ([`crate::definitions::WORKFLOW_ASL`]), with the execution's path
//! coloured (green: done, red: failed, blue: in progress, grey: not taken),
//! then one row per step taken with its elapsed time and, openable, its
//! input, output and error (the history events' details).
//!
//! The layout is layered: a state sits one row below the deepest state that
//! leads to it (by `Next`, `Choices`, `Default` or `Catch`), so the graph
//! reads top to bottom and fits a phone's width. Catch edges are dashed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde_json::Value;

use super::html::{duration_ms, scroll};
use crate::inspect::{ExecutionEvent, ExecutionReport};

/// One state of the machine and where it goes.
struct State {
    name: String,
    kind: String,
    /// `(target, is_catch)`.
    next: Vec<(String, bool)>,
}

fn states(asl: &Value) -> (Option<String>, Vec<State>) {
    let start = asl["StartAt"].as_str().map(str::to_owned);
    let mut out = Vec::new();
    if let Some(map) = asl["States"].as_object() {
        for (name, s) in map {
            let mut next = Vec::new();
            let mut push = |v: &Value, catch: bool| {
                if let Some(t) = v.as_str() {
                    next.push((t.to_owned(), catch));
                }
            };
            push(&s["Next"], false);
            push(&s["Default"], false);
            for c in s["Choices"].as_array().into_iter().flatten() {
                push(&c["Next"], false);
            }
            for c in s["Catch"].as_array().into_iter().flatten() {
                push(&c["Next"], true);
            }
            out.push(State {
                name: name.clone(),
                kind: s["Type"].as_str().unwrap_or_default().to_owned(),
                next,
            });
        }
    }
    (start, out)
}

/// Each state's row: the longest path from the start (bounded by the
/// number of states, so a loop cannot run forever).
fn layers(start: Option<&str>, states: &[State]) -> BTreeMap<String, usize> {
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(s) = start {
        depth.insert(s.to_owned(), 0);
    }
    for _ in 0..states.len() {
        let mut changed = false;
        for s in states {
            let Some(&d) = depth.get(&s.name) else {
                continue;
            };
            for (t, _) in &s.next {
                let entry = depth.entry(t.clone()).or_insert(0);
                if *entry < d + 1 && d + 1 < states.len() {
                    *entry = d + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for s in states {
        depth.entry(s.name.clone()).or_insert(0);
    }
    depth
}

/// What happened in one state during the execution.
#[derive(Default)]
struct Step<'a> {
    entered: Option<DateTime<Utc>>,
    exited: Option<DateTime<Utc>>,
    failed: bool,
    events: Vec<&'a ExecutionEvent>,
}

fn steps(execution: &ExecutionReport) -> BTreeMap<String, Step<'_>> {
    let mut out: BTreeMap<String, Step<'_>> = BTreeMap::new();
    for e in &execution.events {
        let Some(state) = &e.state else { continue };
        let step = out.entry(state.clone()).or_default();
        let at = DateTime::parse_from_rfc3339(&e.timestamp)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        if e.kind.ends_with("StateEntered") {
            step.entered = step.entered.or(at);
        } else if e.kind.ends_with("StateExited") {
            step.exited = at;
        } else if e.kind.ends_with("Failed") || e.kind.ends_with("TimedOut") {
            step.failed = true;
        } else if e.kind.ends_with("Succeeded") {
            step.failed = false;
        }
        step.events.push(e);
    }
    out
}

/// The class of a state's box: its part in this execution.
fn class_of(step: Option<&Step<'_>>, kind: &str) -> &'static str {
    match step {
        None => "node idle",
        Some(s) if s.failed || kind == "Fail" => "node failed",
        Some(s) if s.exited.is_some() || matches!(kind, "Succeed") => "node done",
        Some(_) => "node running",
    }
}

/// The graph and the steps of `execution` over the deployed `asl`.
/// `elapsed` holds the steps' span durations (ms) where the trace has
/// them: they time the whole state, including what runs after its last
/// event.
pub(super) fn render(
    asl: &Value,
    execution: &ExecutionReport,
    elapsed: &BTreeMap<String, f64>,
) -> Markup {
    const W: f64 = 560.0;
    const BOX_W: f64 = 150.0;
    const BOX_H: f64 = 28.0;
    const ROW: f64 = 58.0;
    let (start, states) = states(asl);
    let depth = layers(start.as_deref(), &states);
    let taken = steps(execution);
    let rows = depth.values().max().map_or(1, |d| d + 1);
    // Columns within a row, in the file's order.
    let mut per_row: BTreeMap<usize, Vec<&State>> = BTreeMap::new();
    for s in &states {
        per_row.entry(depth[&s.name]).or_default().push(s);
    }
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (row, list) in per_row.iter_mut() {
        // Each state under the mean column of the states leading to it
        // (rows above are placed already), which keeps edges short.
        let column = |s: &State| {
            let xs: Vec<f64> = states
                .iter()
                .filter(|p| p.next.iter().any(|(t, _)| *t == s.name))
                .filter_map(|p| at.get(p.name.as_str()).map(|a| a.0))
                .collect();
            if xs.is_empty() {
                W / 2.0
            } else {
                xs.iter().sum::<f64>() / xs.len() as f64
            }
        };
        list.sort_by(|a, b| column(a).total_cmp(&column(b)));
        for (i, s) in list.iter().enumerate() {
            let x = W * (i as f64 + 0.5) / list.len() as f64;
            let y = 10.0 + *row as f64 * ROW;
            at.insert(s.name.as_str(), (x, y));
        }
    }
    let height = 10.0 + rows as f64 * ROW;
    let mut in_order: Vec<(&State, &Step<'_>)> = states
        .iter()
        .filter_map(|s| taken.get(&s.name).map(|step| (s, step)))
        .collect();
    in_order.sort_by_key(|(_, step)| step.entered);
    html! {
        svg.graph viewBox={ "0 0 " (W) " " (height) } role="img" aria-label="Workflow graph" {
            @for s in &states {
                @let (x1, y1) = at[s.name.as_str()];
                @for (t, catch) in &s.next {
                    @if let Some(&(x2, y2)) = at.get(t.as_str()) {
                        @let used = taken.contains_key(&s.name) && taken.contains_key(t);
                        line class={ "edge" @if *catch { " catch" } @if used { " used" } }
                            x1=(format!("{x1:.1}")) y1=(format!("{:.1}", y1 + BOX_H))
                            x2=(format!("{x2:.1}")) y2=(format!("{y2:.1}")) {}
                    }
                }
            }
            @for s in &states {
                @let (x, y) = at[s.name.as_str()];
                @let class = class_of(taken.get(&s.name), &s.kind);
                g class=(class) data-state=(s.name) {
                    rect x=(format!("{:.1}", x - BOX_W / 2.0)) y=(format!("{y:.1}")) width=(BOX_W) height=(BOX_H) rx="4" {}
                    text x=(format!("{x:.1}")) y=(format!("{:.1}", y + 18.0)) text-anchor="middle" { (s.name) }
                    title { (s.name) " (" (s.kind) ")" }
                }
            }
        }
        p.legend.small {
            span.k.done { "done" } " " span.k.failed { "failed" } " "
            span.k.running { "in progress" } " " span.k.idle { "not taken" }
        }
        (scroll(html! {
            table.steps {
                tr { th { "Step" } th.num { "Started" } th.num { "Elapsed" } th { "Events: input, output, error" } }
                @for (s, step) in &in_order {
                    tr {
                        td data-label="Step" { span class=(class_of(Some(step), &s.kind)) { (s.name) } }
                        td.num data-label="Started" {
                            @if let Some(t) = step.entered {
                                "+" (duration_ms(ms_between(execution.started_at, t)))
                            }
                        }
                        td.num data-label="Elapsed" {
                            @if let Some(ms) = elapsed.get(&s.name) {
                                (duration_ms(*ms))
                            } @else if let (Some(a), Some(b)) = (step.entered, step.exited) {
                                (duration_ms(ms_between(a, b)))
                            } @else if step.entered.is_some() { "running" }
                        }
                        td data-label="Events" {
                            details {
                                summary { (step.events.len()) " event(s)" }
                                @for e in &step.events {
                                    p.small { b { (e.kind) } " " (after_entering(&e.timestamp, step.entered)) }
                                    @if !e.detail.is_null() && e.detail != Value::Object(Default::default()) {
                                        pre.mono.small { (serde_json::to_string_pretty(&e.detail).unwrap_or_default()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }))
    }
}

/// An event's time after its step was entered, the exact time on hover:
/// each event carries the time it happened, so a task's `TaskSucceeded`
/// shows how long the task took.
fn after_entering(at: &str, entered: Option<DateTime<Utc>>) -> Markup {
    match (DateTime::parse_from_rfc3339(at), entered) {
        (Ok(t), Some(entered)) => html! {
            span.muted title=(at) { "+" (duration_ms(ms_between(entered, t.with_timezone(&Utc)))) }
        },
        _ => html! { span.muted { (at) } },
    }
}

fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_workflow_is_laid_out_top_down() {
        let asl: Value = serde_json::from_str(crate::definitions::WORKFLOW_ASL).unwrap();
        let (start, states) = states(&asl);
        assert_eq!(start.as_deref(), Some("ValidateOrder"));
        let depth = layers(start.as_deref(), &states);
        assert_eq!(depth["ValidateOrder"], 0);
        assert!(depth["CheckVerdict"] > depth["ValidateOrder"]);
        assert!(depth["OrderEnqueued"] > depth["EnqueueOrder"]);
        assert!(depth["OrderFailed"] > depth["DeadLetter"]);
    }
}
