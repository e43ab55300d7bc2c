//! An order's traces on its page: what X-Ray would hold (the rows of
//! `dofs trace`) and every local span as a waterfall (`dofs trace --full`).
//!
//! The waterfall collapses idle gaps. An order that retried spends seconds
//! waiting for a visibility timeout (a redriven one, minutes) between
//! milliseconds of work; drawn to scale, the work would be 1-px slivers.
//! So the time axis is piecewise: the stretches where some leaf span runs
//! keep their proportions, and each idle stretch longer than
//! [`min_gap_ns`] becomes a fixed-width marked gap, labelled with how long
//! it was. Bars are SVG rectangles (no inline `style`, which the
//! Content-Security-Policy forbids), and every span is a `<details>` whose
//! body holds its attributes and events.

use maud::{html, Markup};

use super::html::{compact, duration_ms, fields, scroll, status};
use crate::observability::traces::{document_rows, OrderTrace, Waterfall, XrayView};

/// Width of the SVG's coordinate space (it is stretched to the cell).
const WIDTH: f64 = 1000.0;
/// The narrowest a bar is drawn, in [`WIDTH`] units (3 %: several pixels
/// even in a phone's column).
const MIN_BAR: f64 = 30.0;
/// What a collapsed gap is drawn as, in [`WIDTH`] units.
const GAP: f64 = 24.0;

/// Maps a time (ns since the epoch) to an x in `0..=WIDTH`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Timeline {
    /// Busy stretches, `(start_ns, end_ns, x0, x1)`, in time order.
    blocks: Vec<(i64, i64, f64, f64)>,
    /// The idle stretches collapsed between them: `(x, duration_ns)`.
    pub gaps: Vec<(f64, i64)>,
}

/// An idle stretch is collapsed when it is longer than 50 ms and than a
/// quarter of the busy time: a normal order keeps its real proportions.
fn min_gap_ns(busy_ns: i64) -> i64 {
    (busy_ns / 4).max(50_000_000)
}

impl Timeline {
    /// The timeline of spans given as `(start_ns, end_ns, is_leaf)`.
    pub(super) fn of(spans: &[(i64, i64, bool)]) -> Self {
        // Leaves are the work; a parent's own bounds are points, so that a
        // parent waiting across a retry does not make the wait look busy.
        let mut intervals: Vec<(i64, i64)> = spans
            .iter()
            .flat_map(|&(s, e, leaf)| {
                if leaf {
                    vec![(s, e.max(s))]
                } else {
                    vec![(s, s), (e, e)]
                }
            })
            .collect();
        intervals.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (s, e) in intervals {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let busy: i64 = merged.iter().map(|(s, e)| e - s).sum();
        let threshold = min_gap_ns(busy);
        // Blocks separated by short gaps are one block (the gap kept to scale).
        let mut blocks: Vec<(i64, i64)> = Vec::new();
        for (s, e) in merged {
            match blocks.last_mut() {
                Some(last) if s - last.1 <= threshold => last.1 = last.1.max(e),
                _ => blocks.push((s, e)),
            }
        }
        let n_gaps = blocks.len().saturating_sub(1);
        let gap = if n_gaps == 0 {
            0.0
        } else {
            GAP.min(WIDTH * 0.3 / n_gaps as f64)
        };
        let span_total: i64 = blocks.iter().map(|(s, e)| e - s).sum();
        let room = WIDTH - gap * n_gaps as f64;
        let mut x = 0.0;
        let mut out = Timeline {
            blocks: Vec::new(),
            gaps: Vec::new(),
        };
        for (i, &(s, e)) in blocks.iter().enumerate() {
            if i > 0 {
                out.gaps.push((x, s - blocks[i - 1].1));
                x += gap;
            }
            let w = if span_total > 0 {
                room * (e - s) as f64 / span_total as f64
            } else {
                room / blocks.len() as f64
            };
            out.blocks.push((s, e, x, x + w));
            x += w;
        }
        out
    }

    /// The x of time `t` (clamped to the nearest block when it falls in a
    /// gap, which only a span's rounding can do).
    pub(super) fn x(&self, t: i64) -> f64 {
        for (i, &(s, e, x0, x1)) in self.blocks.iter().enumerate() {
            if t <= e || i + 1 == self.blocks.len() {
                if t <= s {
                    return x0;
                }
                let f = if e > s {
                    (t - s) as f64 / (e - s) as f64
                } else {
                    1.0
                };
                return x0 + (x1 - x0) * f.min(1.0);
            }
        }
        0.0
    }

    /// The bar of a span: `(x, width)`, at least [`MIN_BAR`] wide and
    /// inside the drawing.
    pub(super) fn bar(&self, start: i64, end: i64) -> (f64, f64) {
        let (x0, x1) = (self.x(start), self.x(end));
        let w = (x1 - x0).max(MIN_BAR);
        (x0.min(WIDTH - w).max(0.0), w)
    }

    /// The gap width this timeline draws.
    fn gap_width(&self) -> f64 {
        match (self.gaps.first(), self.blocks.get(1)) {
            (Some(&(x, _)), Some(&(_, _, next, _))) => next - x,
            _ => 0.0,
        }
    }
}

/// What X-Ray would hold of the order, each subsegment indented under its
/// parent.
pub(super) fn xray(view: &XrayView) -> Markup {
    html! {
        h2 { "X-Ray trace " code { (view.trace_id) } }
        @if !view.sampled {
            p { "Not sampled: X-Ray holds no trace of this order." }
        } @else {
            p.muted { (view.documents.len()) " document(s), as X-Ray would hold them." }
            (scroll(html! {
                table {
                    tr { th { "Document" } th { "Origin" } th.num { "Duration" } th { "Flags" }
                         th { "Annotations" } th { "Cause" } th { "Metadata" } }
                    @for row in document_rows(view) {
                        tr {
                            td class=(depth_class(row.depth)) data-label="Document" { (row.kind) " " (row.name) }
                            td data-label="Origin" { (row.origin.or(row.namespace).unwrap_or_default()) }
                            td.num data-label="Duration" { (duration_ms(row.duration_ms)) }
                            td data-label="Flags" { (status(row.flags.first().copied().unwrap_or("ok"))) }
                            td.mono data-label="Annotations" { (compact(&row.doc["annotations"])) }
                            td data-label="Cause" { (row.cause.unwrap_or_default()) }
                            td.mono data-label="Metadata" { (compact(&row.doc["metadata"]["default"])) }
                        }
                    }
                }
            }))
        }
    }
}

/// Indentation by depth, as a class (the policy forbids `style=`).
fn depth_class(depth: usize) -> String {
    format!("d{}", depth.min(6))
}

/// Every local span as a waterfall on a [`Timeline`].
pub(super) fn waterfall(trace: &OrderTrace) -> Markup {
    let waterfall = Waterfall::of(trace);
    let parents: std::collections::HashSet<&str> = trace
        .spans
        .iter()
        .filter_map(|s| s.parent_span_id.as_deref())
        .collect();
    let spans: Vec<(i64, i64, bool)> = trace
        .spans
        .iter()
        .map(|s| (s.start, s.end, !parents.contains(s.span_id.as_str())))
        .collect();
    let timeline = Timeline::of(&spans);
    let gap_w = timeline.gap_width();
    let idle: i64 = timeline.gaps.iter().map(|g| g.1).sum();
    html! {
        h2 { "All local spans " code { (trace.trace_id) } }
        p.muted {
            (waterfall.rows.len()) " span(s) over "
            (duration_ms(waterfall.duration_ns as f64 / 1e6))
            ", richer than X-Ray (" code { "dofs trace --full" } ")."
            @if !timeline.gaps.is_empty() {
                " " (timeline.gaps.len()) " idle gap(s) of " (duration_ms(idle as f64 / 1e6))
                " in all are collapsed (the grey bands) so that the work stays readable."
            }
            " Open a span for its attributes and events."
        }
        (scroll(html! {
            table.waterfall {
                // The bars second, so that a phone shows them without scrolling.
                tr { th { "Span" } th.wfhead { "Waterfall" } th.num { "Duration" } th.num { "Start" }
                     th { "Function" } th { "Status" } }
                @for row in &waterfall.rows {
                    @let s = row.span;
                    @let (x, w) = timeline.bar(s.start, s.end);
                    @let class = match s.status.as_str() {
                        "error" => "bar error",
                        "warn" => "bar warn",
                        _ => "bar",
                    };
                    tr {
                        td class=(depth_class(row.depth)) data-label="Span" {
                            details {
                                summary { (s.name) }
                                (span_details(s))
                            }
                        }
                        td.wfcell data-label="Waterfall" {
                            svg.wf viewBox={ "0 0 " (WIDTH) " 14" } preserveAspectRatio="none"
                                role="img" aria-label={ (s.name) " " (duration_ms(s.duration_ms)) } {
                                rect.track x="0" y="0" width=(WIDTH) height="14" {}
                                @for (gx, ns) in &timeline.gaps {
                                    rect.gap x=(format!("{gx:.1}")) y="0" width=(format!("{gap_w:.1}")) height="14" {
                                        title { (duration_ms(*ns as f64 / 1e6)) " idle" }
                                    }
                                }
                                rect class=(class) x=(format!("{x:.1}")) y="2" width=(format!("{w:.1}")) height="10" {
                                    title { (s.name) ": " (duration_ms(s.duration_ms)) }
                                }
                            }
                        }
                        td.num data-label="Duration" { (duration_ms(s.duration_ms)) }
                        td.num data-label="Start" { "+" (duration_ms(row.offset_ns as f64 / 1e6)) }
                        td data-label="Function" { (s.component) }
                        td data-label="Status" { (status(&s.status)) }
                    }
                }
            }
        }))
    }
}

/// A span's attributes and events, what answers "why did attempt 2
/// fail?" (reason, receive count, message id).
fn span_details(s: &crate::observability::traces::SpanRecord) -> Markup {
    html! {
        div.small {
            p.muted { "span " code { (s.span_id) } }
            (fields(&serde_json::Value::Object(s.attributes.clone())))
            @for event in &s.events {
                p { b { "event" } }
                (fields(event))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn idle_gaps_collapse_and_every_bar_stays_wide() {
        // Three 5 ms attempts 2 s and 270 s apart, under one root span.
        let t0 = 1_000_000 * MS;
        let spans = [
            (t0, t0 + 272_010 * MS, false),
            (t0, t0 + 5 * MS, true),
            (t0 + 2_005 * MS, t0 + 2_010 * MS, true),
            (t0 + 272_005 * MS, t0 + 272_010 * MS, true),
        ];
        let timeline = Timeline::of(&spans);
        assert_eq!(timeline.gaps.len(), 2, "{timeline:?}");
        for &(s, e, _) in &spans[1..] {
            let (x, w) = timeline.bar(s, e);
            assert!(w >= MIN_BAR && x + w <= WIDTH + 1e-6, "{x} {w}");
        }
        // A real attempt takes a real share of the width, not a sliver.
        let (x0, _) = timeline.bar(spans[1].0, spans[1].1);
        let (x1, _) = timeline.bar(spans[2].0, spans[2].1);
        assert!(x1 - x0 > 200.0, "{x0} {x1}");
    }

    #[test]
    fn a_trace_without_idle_time_keeps_its_proportions() {
        let spans = [
            (0, 40 * MS, false),
            (0, 10 * MS, true),
            (30 * MS, 40 * MS, true),
        ];
        let timeline = Timeline::of(&spans);
        assert!(timeline.gaps.is_empty());
        assert!((timeline.x(20 * MS) - 500.0).abs() < 1.0);
    }
}
