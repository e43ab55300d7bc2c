//! The cost card beside the dashboard: what an order costs on AWS, from the
//! units the runtime metered and the built-in us-east-1 price table, for
//! STANDARD and EXPRESS side by side (what `dofs cost` prints; the
//! what-ifs are the CLI's).

use maud::{html, Markup};

use crate::observability::usage::CostSummary;

/// Dollars per million orders, and per order when that reads better.
fn dollars(per_million: f64) -> String {
    format!("${per_million:.2}")
}

fn per_order(per_million: f64) -> String {
    format!("${:.6}", per_million / 1_000_000.0)
}

pub(super) fn cost_card(summary: &CostSummary) -> Markup {
    let report = &summary.report;
    html! {
        div.card.cost data-title="What an order costs on AWS" {
            h2 { "What an order costs on AWS" }
            @if report.orders == 0 {
                p.muted { "No orders metered yet." }
            } @else {
                p.muted.small {
                    (report.region) " list prices of " (report.as_of) ", measured over "
                    (report.orders) " orders"
                    @if summary.orders_in_flight > 0 {
                        " (" (summary.orders_in_flight) " still in flight)"
                    }
                    "."
                }
                (super::html::scroll(html! { table {
                    tr { th { "Service" } th.num { "Standard $/1M orders" } th.num { "Express $/1M orders" } }
                    @for service in &report.services {
                        tr {
                            td data-label="Service" { (service.service) }
                            td.num data-label="Standard $/1M orders" { (dollars(service.standard_per_million)) }
                            td.num data-label="Express $/1M orders" { (dollars(service.express_per_million)) }
                        }
                    }
                    tr.total {
                        td data-label="Service" { "Total" }
                        td.num data-label="Standard $/1M orders" { (dollars(report.standard_total_per_million)) }
                        td.num data-label="Express $/1M orders" { (dollars(report.express_total_per_million)) }
                    }
                    tr.total {
                        td data-label="Service" { "Per order" }
                        td.num data-label="Standard $/1M orders" { (per_order(report.standard_total_per_million)) }
                        td.num data-label="Express $/1M orders" { (per_order(report.express_total_per_million)) }
                    }
                } }))
                @if report.express_total_per_million > 0.0 {
                    p.small {
                        "Express costs " (format!("{:.1}", report.standard_to_express_ratio))
                        "× less than Standard for the same work. "
                        span.muted { "What-ifs (trace sampling, log level): " code { "dofs cost --help" } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_order_figures_are_the_per_million_ones_over_a_million() {
        assert_eq!(per_order(140.47), "$0.000140");
        assert_eq!(dollars(2.414), "$2.41");
    }
}
