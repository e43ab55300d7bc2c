//! An order's traces on its page: what X-Ray would hold (the rows of
//! `dofs trace`) and every local span as a waterfall (`dofs trace --full`).
//!
//! The waterfall collapses idle gaps. An order that retried spends seconds
//! waiting for a visibility timeout (a redriven one, minutes) between
//! milliseconds of work; drawn to scale, the work would be 1-px slivers.
//! So the time axis is piecewise: the stretches where some leaf span runs
//! keep their proportions, and each idle stretch longer than
//! [`min_gap_ns`] becomes a fixed-width marked gap, labelled with how long
//! it was. A time axis above the bars labels ticks (offsets from the
//! trace's start) and each collapsed gap ("idle 2.0 s"). Zooming needs no
//! script: each span's "zoom" link (`?zoom=<span_id>`) and the range form
//! (`?from_ms=&to_ms=`, offsets from the trace's start) re-render the
//! waterfall for that window on the server. Bars are SVG rectangles (no inline `style`, which the
//! Content-Security-Policy forbids), and every span is a `<details>` whose
//! body holds its attributes and events.

use maud::{html, Markup};
use serde::Deserialize;

use super::html::{compact, duration_ms, fields, scroll, status, url_encode};
use crate::observability::traces::{document_rows, OrderTrace, SpanRecord, Waterfall, XrayView};

/// Width of the SVG's coordinate space (it is stretched to the cell).
const WIDTH: f64 = 1000.0;
/// The narrowest a bar is drawn, in [`WIDTH`] units (3 %: several pixels
/// even in a phone's column).
const MIN_BAR: f64 = 30.0;
/// What a collapsed gap is drawn as, in [`WIDTH`] units (wide enough to
/// see its band under the axis label).
const GAP: f64 = 40.0;
/// The closest two axis ticks are drawn, in [`WIDTH`] units, so that their
/// labels do not run into each other on a phone.
const TICK_SPACING: f64 = 220.0;
const NS_PER_MS: f64 = 1e6;

/// `?zoom=<span_id>` or `?from_ms=&to_ms=` (offsets from the trace's
/// start) on the order page: the part of the trace the waterfall shows.
/// Strings, so that a range form left blank reads as "no bound" rather
/// than a rejected request.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ZoomQuery {
    #[serde(default)]
    zoom: Option<String>,
    #[serde(default)]
    from_ms: Option<String>,
    #[serde(default)]
    to_ms: Option<String>,
}

/// A zoomed part of a trace, in ns since the epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Window {
    from: i64,
    to: i64,
}

impl ZoomQuery {
    /// The window asked for inside the trace `[start, end]`: a span's own
    /// bounds, or the range clamped to the trace. `None` is the whole trace
    /// (nothing asked, an unknown span, or an empty range).
    pub(super) fn window(&self, spans: &[SpanRecord], start: i64, end: i64) -> Option<Window> {
        if let Some(id) = self.zoom.as_deref().filter(|id| !id.is_empty()) {
            let span = spans.iter().find(|s| s.span_id == id)?;
            return Some(Window {
                from: span.start,
                to: span.end.max(span.start),
            });
        }
        let offset = |ms: &Option<String>| {
            let ms: f64 = ms.as_deref()?.trim().parse().ok()?;
            ms.is_finite().then(|| start + (ms * NS_PER_MS) as i64)
        };
        let from = offset(&self.from_ms).unwrap_or(start).max(start);
        let to = offset(&self.to_ms).unwrap_or(end).min(end);
        (from < to && (from > start || to < end)).then_some(Window { from, to })
    }
}

impl Window {
    /// A span's part inside the window, if it has one.
    fn clip(self, start: i64, end: i64) -> Option<(i64, i64)> {
        (end >= self.from && start <= self.to).then(|| (start.max(self.from), end.min(self.to)))
    }
}

/// The smallest of 1, 2 and 5 times a power of ten that is at least `ns`:
/// tick steps people read at a glance.
fn nice_step(ns: f64) -> i64 {
    let mut step: i64 = 1;
    loop {
        for m in [1, 2, 5] {
            if (step * m) as f64 >= ns {
                return step * m;
            }
        }
        match step.checked_mul(10) {
            Some(next) => step = next,
            None => return step,
        }
    }
}

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

    /// The axis ticks: `(x, ns since origin)`, in x order. The start of
    /// each busy stretch comes first (it says where the work resumed after
    /// a gap), then round offsets from `origin` where there is room; none
    /// is closer than [`TICK_SPACING`] to another.
    pub(super) fn ticks(&self, origin: i64) -> Vec<(f64, i64)> {
        let mut ticks: Vec<(f64, i64)> = Vec::new();
        let mut add = |x: f64, t: i64| {
            if ticks
                .iter()
                .all(|&(other, _)| (x - other).abs() >= TICK_SPACING)
            {
                ticks.push((x, t - origin));
            }
        };
        for &(s, _, x0, _) in &self.blocks {
            add(x0, s);
        }
        for &(s, e, x0, x1) in &self.blocks {
            if x1 - x0 < TICK_SPACING || e <= s {
                continue;
            }
            let step = nice_step((e - s) as f64 * TICK_SPACING / (x1 - x0));
            let mut t = origin + (s - origin).div_euclid(step) * step + step;
            while t <= e {
                add(self.x(t), t);
                t += step;
            }
        }
        ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
        ticks
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

/// An x in [`WIDTH`] units as a percentage of the axis, which has no
/// `viewBox` so that its labels are not stretched with it.
fn percent(x: f64) -> String {
    format!("{:.2}%", x / WIDTH * 100.0)
}

/// Every local span as a waterfall on a [`Timeline`], zoomed to `zoom`'s
/// window if it names one; `page` is the order page's path, which the
/// zoom links and the range form go back to.
pub(super) fn waterfall(trace: &OrderTrace, zoom: &ZoomQuery, page: &str) -> Markup {
    let waterfall = Waterfall::of(trace);
    let (start, end) = (
        waterfall.start_ns,
        waterfall.start_ns + waterfall.duration_ns,
    );
    let window = zoom.window(&trace.spans, start, end);
    let parents: std::collections::HashSet<&str> = trace
        .spans
        .iter()
        .filter_map(|s| s.parent_span_id.as_deref())
        .collect();
    // Each span shown, as much of it as is inside the window.
    let shown: Vec<(&crate::observability::traces::WaterfallRow<'_>, i64, i64)> = waterfall
        .rows
        .iter()
        .filter_map(|row| {
            let (s, e) = (row.span.start, row.span.end);
            match window {
                Some(w) => w.clip(s, e).map(|(s, e)| (row, s, e)),
                None => Some((row, s, e)),
            }
        })
        .collect();
    let mut spans: Vec<(i64, i64, bool)> = shown
        .iter()
        .map(|(row, s, e)| (*s, *e, !parents.contains(row.span.span_id.as_str())))
        .collect();
    if let Some(w) = window {
        // The window's own bounds, so that the axis spans all of it.
        spans.extend([(w.from, w.from, false), (w.to, w.to, false)]);
    }
    let timeline = Timeline::of(&spans);
    let gap_w = timeline.gap_width();
    let idle: i64 = timeline.gaps.iter().map(|g| g.1).sum();
    let ms_of = |ns: i64| ns as f64 / NS_PER_MS;
    let (from_ms, to_ms) = window.map_or((0.0, ms_of(end - start)), |w| {
        (ms_of(w.from - start), ms_of(w.to - start))
    });
    html! {
        h2 #waterfall { "All local spans " code { (trace.trace_id) } }
        p.muted {
            @if window.is_some() {
                (shown.len()) " of " (waterfall.rows.len()) " span(s), zoomed to +"
                (duration_ms(from_ms)) " – +" (duration_ms(to_ms)) " ("
                (duration_ms(to_ms - from_ms)) ") of "
            } @else {
                (waterfall.rows.len()) " span(s) over "
            }
            (duration_ms(ms_of(waterfall.duration_ns)))
            ", richer than X-Ray (" code { "dofs trace --full" } ")."
            @if !timeline.gaps.is_empty() {
                " " (timeline.gaps.len()) " idle gap(s) of " (duration_ms(ms_of(idle)))
                " in all are collapsed (the grey bands) so that the work stays readable."
            }
            " Open a span for its attributes and events; “zoom” shows only its time."
        }
        form.zoom method="get" action={ (page) "#waterfall" } {
            label { "From " input type="number" name="from_ms" step="any" min="0" value=(format!("{from_ms:.3}")); }
            " "
            label { "to " input type="number" name="to_ms" step="any" min="0" value=(format!("{to_ms:.3}")); " ms" }
            " "
            button type="submit" { "Zoom" }
            @if window.is_some() {
                " " a.reset href={ (page) "#waterfall" } { "Reset zoom" }
            }
        }
        (scroll(html! {
            table.waterfall {
                // The bars second, so that a phone shows them without scrolling.
                tr { th { "Span" } th.wfhead { "Waterfall" } th.num { "Duration" } th.num { "Start" }
                     th { "Function" } th { "Status" } }
                tr.timeaxis {
                    td {}
                    td.wfcell data-label="Time" {
                        svg.wfaxis width="100%" height="32" role="img" aria-label="time axis" {
                            @for (x, t) in timeline.ticks(start) {
                                line.tick x1=(percent(x)) x2=(percent(x)) y1="0" y2="6" {}
                                text x=(percent(x)) y="16" text-anchor=(if x > WIDTH * 0.8 { "end" } else { "start" }) {
                                    "+" (duration_ms(ms_of(t)))
                                }
                            }
                            @for (gx, ns) in &timeline.gaps {
                                rect.gap x=(percent(*gx)) y="20" width=(percent(gap_w)) height="12" {}
                                text.idle x=(percent(gx + gap_w / 2.0)) y="30" text-anchor="middle" {
                                    "idle " (duration_ms(ms_of(*ns)))
                                }
                            }
                        }
                    }
                    td {} td {} td {} td {}
                }
                @for (row, clipped_start, clipped_end) in &shown {
                    @let s = row.span;
                    @let (x, w) = timeline.bar(*clipped_start, *clipped_end);
                    @let class = match s.status.as_str() {
                        "error" => "bar error",
                        "warn" => "bar warn",
                        _ => "bar",
                    };
                    tr {
                        td class=(depth_class(row.depth)) data-label="Span" {
                            details {
                                summary {
                                    (s.name) " "
                                    a.zoom href={ (page) "?zoom=" (url_encode(&s.span_id)) "#waterfall" }
                                        title="Show only this span's time" { "zoom" }
                                }
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
    fn tick_steps_are_round_and_ticks_are_labelled_from_the_origin() {
        assert_eq!(nice_step(0.0), 1);
        assert_eq!(nice_step(3.0), 5);
        assert_eq!(nice_step(7.0 * MS as f64), 10 * MS);
        assert_eq!(nice_step(1.5 * MS as f64), 2 * MS);
        // 40 ms to scale across the width: ticks at +0 and round offsets.
        let timeline = Timeline::of(&[(0, 40 * MS, true)]);
        let ticks = timeline.ticks(0);
        assert_eq!(ticks[0], (0.0, 0));
        assert!(ticks.len() >= 3, "{ticks:?}");
        for pair in ticks.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= TICK_SPACING, "{ticks:?}");
            assert_eq!(pair[1].1 % (10 * MS), 0, "{ticks:?}");
        }
        // Each busy stretch after a collapsed gap starts with its own tick,
        // labelled with its real offset.
        let t0 = 1_000 * MS;
        let retried = Timeline::of(&[
            (t0, t0 + 5 * MS, true),
            (t0 + 2_005 * MS, t0 + 2_010 * MS, true),
        ]);
        assert_eq!(retried.gaps.len(), 1);
        assert_eq!(retried.gaps[0].1, 2_000 * MS, "the gap's label: idle 2 s");
        let ticks = retried.ticks(t0);
        assert_eq!(ticks.first().map(|t| t.1), Some(0));
        assert!(ticks.iter().any(|t| t.1 == 2_005 * MS), "{ticks:?}");
    }

    fn span(id: &str, start: i64, end: i64) -> SpanRecord {
        SpanRecord {
            trace_id: "1-00000000-000000000000000000000000".into(),
            span_id: id.into(),
            parent_span_id: (id != "a").then(|| "a".into()),
            name: id.into(),
            component: "c".into(),
            order_id: None,
            start,
            end,
            duration_ms: (end - start) as f64 / 1e6,
            status: "ok".into(),
            attributes: Default::default(),
            events: Vec::new(),
        }
    }

    #[test]
    fn a_zoom_is_a_span_or_a_range_inside_the_trace() {
        let spans = [span("a", 0, 100 * MS), span("b", 40 * MS, 60 * MS)];
        let q = |zoom: Option<&str>, from: Option<&str>, to: Option<&str>| ZoomQuery {
            zoom: zoom.map(str::to_owned),
            from_ms: from.map(str::to_owned),
            to_ms: to.map(str::to_owned),
        };
        let window = |z: ZoomQuery| z.window(&spans, 0, 100 * MS);
        assert_eq!(window(q(None, None, None)), None, "the whole trace");
        assert_eq!(
            window(q(Some("b"), None, None)),
            Some(Window {
                from: 40 * MS,
                to: 60 * MS
            })
        );
        assert_eq!(window(q(Some("nope"), None, None)), None);
        assert_eq!(
            window(q(None, Some("10"), Some("20.5"))),
            Some(Window {
                from: 10 * MS,
                to: 20 * MS + MS / 2
            })
        );
        // Clamped to the trace; blank or nonsense bounds are no bound.
        assert_eq!(
            window(q(None, Some(""), Some("500"))),
            None,
            "all of it is no zoom"
        );
        assert_eq!(
            window(q(None, Some("x"), Some("50"))),
            Some(Window {
                from: 0,
                to: 50 * MS
            })
        );
        assert_eq!(window(q(None, Some("60"), Some("50"))), None, "empty");
        let w = Window {
            from: 40 * MS,
            to: 60 * MS,
        };
        assert_eq!(w.clip(0, 100 * MS), Some((40 * MS, 60 * MS)));
        assert_eq!(w.clip(50 * MS, 55 * MS), Some((50 * MS, 55 * MS)));
        assert_eq!(w.clip(61 * MS, 70 * MS), None);
    }

    #[test]
    fn a_zoomed_waterfall_shows_only_the_window_with_a_reset_link() {
        let trace = OrderTrace {
            order_id: "o1".into(),
            trace_id: "1-00000000-000000000000000000000000".into(),
            spans: vec![
                span("a", 0, 100 * MS),
                span("b", 40 * MS, 60 * MS),
                span("c", 80 * MS, 90 * MS),
            ],
            depths: vec![0, 1, 1],
            other_traces: Vec::new(),
        };
        let page = "/_dofs/orders/o1";
        let whole = waterfall(&trace, &ZoomQuery::default(), page).into_string();
        assert!(whole.contains("?zoom=b#waterfall"), "{whole}");
        assert!(!whole.contains("Reset zoom"));
        let zoomed = ZoomQuery {
            zoom: Some("b".into()),
            ..ZoomQuery::default()
        };
        let html = waterfall(&trace, &zoomed, page).into_string();
        assert!(html.contains("2 of 3 span(s)"), "{html}");
        assert!(html.contains("Reset zoom"), "{html}");
        assert!(!html.contains("aria-label=\"c "), "c is outside: {html}");
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
