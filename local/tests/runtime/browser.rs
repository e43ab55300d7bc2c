//! The console in a real browser: headless Chromium over a `dofs serve`
//! seeded with a fulfilled, a retried, a dead-lettered, a rejected and an
//! in-flight order and one alarm in ALARM. Every page loads without a
//! console error (a CSP violation is one), fits a 390 px phone without
//! sideways scrolling (every table cell inside the screen), search finds
//! an order by prefix and by trace id, and the waterfall keeps every span
//! several pixels wide. Screenshots of
//! every page at 1400 px and 390 px go to `target/console-screenshots/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{fast_args, order_body, spawn_runtime, Harness as _, InProcess};
use crate::webdriver::{self, Browser};

async fn set_fault(dofs: &InProcess, spec: &str) {
    let response = dofs
        .client
        .put(dofs.url(&format!("/_dofs/api/faults/{spec}")))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "fault {spec}");
}

async fn clear_fault(dofs: &InProcess, function: &str) {
    let response = dofs
        .client
        .delete(dofs.url(&format!("/_dofs/api/faults/{function}")))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "clear {function}");
}

async fn submit(dofs: &InProcess, body: Value) -> String {
    let (status, reply) = dofs.post_order(&body, None).await;
    assert_eq!(status, 202, "{reply}");
    reply["order_id"].as_str().unwrap().to_owned()
}

/// Polls the order's JSON twin until `done` holds of it.
async fn wait_for(dofs: &InProcess, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let response = dofs
            .client
            .get(dofs.url(&format!("/_dofs/api/orders/{id}")))
            .send()
            .await
            .unwrap();
        let detail: Value = response.json().await.unwrap_or_default();
        if done(&detail) {
            return detail;
        }
        assert!(
            Instant::now() < until,
            "order {id} never {what}: {detail:#}\n{}",
            dofs.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |d| d["order"]["status"] == status
}

/// The seeded orders, by what happened to them.
struct Seeded {
    fulfilled: String,
    retried: String,
    dead_lettered: String,
    rejected: String,
    in_flight: String,
    trace_id: String,
}

async fn seed(dofs: &InProcess) -> Seeded {
    let fulfilled = submit(dofs, order_body(0)).await;
    let rejected = submit(
        dofs,
        json!({"customer_name": "Duplicate Lines",
               "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price": "9.99"},
                         {"sku": "BOOK-1", "quantity": 1, "unit_price": "9.99"}]}),
    )
    .await;
    dofs.wait_terminal(
        &[fulfilled.clone(), rejected.clone()],
        Duration::from_secs(30),
    )
    .await;
    // Retried: fails its first delivery, then the fault is lifted.
    set_fault(dofs, "fulfill_order=failing").await;
    let retried = submit(dofs, order_body(1)).await;
    wait_for(dofs, &retried, "failed a delivery", |d| {
        d["deliveries"]
            .as_array()
            .is_some_and(|ds| ds.iter().any(|x| x["outcome"] != "deleted"))
    })
    .await;
    clear_fault(dofs, "fulfill_order").await;
    wait_for(dofs, &retried, "fulfilled", status_is("FULFILLED")).await;
    // Dead-lettered: fails every delivery and ends FAILED through the DLQ.
    set_fault(dofs, "fulfill_order=failing").await;
    let dead_lettered = submit(dofs, order_body(2)).await;
    wait_for(dofs, &dead_lettered, "failed", status_is("FAILED")).await;
    // In flight: the DLQ's handler is down, so this one waits in the DLQ,
    // and the DLQ-depth alarm fires.
    set_fault(dofs, "dlq_handler=disabled").await;
    let in_flight = submit(dofs, order_body(3)).await;
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let alarms = dofs.cli_json(&["alarms"]);
        let firing = alarms["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "dofs-dlq-depth" && a["state"] == "ALARM");
        if firing {
            break;
        }
        assert!(Instant::now() < until, "no alarm fired: {alarms:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let detail = wait_for(dofs, &retried, "traced", |d| {
        d["trace"]["spans"].as_array().is_some_and(|s| s.len() > 3)
    })
    .await;
    let trace_id = detail["trace"]["trace_id"].as_str().unwrap().to_owned();
    Seeded {
        fulfilled,
        retried,
        dead_lettered,
        rejected,
        in_flight,
        trace_id,
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the page says about itself, read in the browser.
const PAGE_FACTS: &str = "return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    title: document.title,
    text: document.body.innerText,
    links: Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href')),
    bars: Array.from(document.querySelectorAll('svg.wf .bar')).map(r => r.getBoundingClientRect().width),
    sheets: document.styleSheets.length,
    charts: document.querySelectorAll('svg.chart').length,
    drawn: Array.from(document.querySelectorAll('svg.chart path.line')).map(p => p.getAttribute('data-label')),
    graph: Object.fromEntries(Array.from(document.querySelectorAll('svg.graph g.node'))
        .map(g => [g.getAttribute('data-state'), g.getAttribute('class')])),
    thresholds: document.querySelectorAll('svg.chart line.threshold').length,
    firing: Array.from(document.querySelectorAll('.alarm[data-state=ALARM] svg.chart')).map(c => c.closest('.alarm').id),
    legend: Array.from(document.querySelectorAll('ul.legend li')).map(li => li.textContent),
    axis: Array.from(document.querySelectorAll('svg.wfaxis text')).map(t => t.textContent),
    cut: Array.from(document.querySelectorAll('td'))
        .filter(td => td.getBoundingClientRect().right > window.innerWidth + 0.5)
        .map(td => (td.getAttribute('data-label') || '?') + ': ' + td.textContent.trim().slice(0, 40)),
}";

#[tokio::test]
async fn the_console_in_a_real_browser() {
    if !webdriver::available() {
        return;
    }
    let started = Instant::now();
    let mut args = fast_args(0.0);
    args.extend(
        [
            "--alarm-period-scale",
            "0.01",
            "--metrics-interval",
            "250ms",
        ]
        .map(str::to_owned),
    );
    let dofs = spawn_runtime(&args).await;
    let seeded = seed(&dofs).await;
    let seeded_in = started.elapsed();
    let browser = Browser::start().await;
    let dir = screenshots_dir();

    let order = |id: &str| format!("/_dofs/orders/{id}");
    let prefix = format!("/_dofs/orders?q={}", &seeded.fulfilled[..8]);
    let by_trace = format!("/_dofs/orders?q={}", seeded.trace_id);
    let pages: Vec<(&str, String)> = vec![
        ("overview", "/_dofs/".into()),
        ("orders", "/_dofs/orders".into()),
        ("search-prefix", prefix),
        ("search-trace", by_trace),
        ("order-fulfilled", order(&seeded.fulfilled)),
        ("order-retried", order(&seeded.retried)),
        ("order-dead-lettered", order(&seeded.dead_lettered)),
        ("order-rejected", order(&seeded.rejected)),
        ("order-in-flight", order(&seeded.in_flight)),
        ("metrics", "/_dofs/metrics?range=15m&period=10s".into()),
        ("alarms", "/_dofs/alarms".into()),
        ("queues", "/_dofs/queues".into()),
    ];
    let mut facts = std::collections::HashMap::new();
    for (width, height, mobile) in [(1400, 900, false), (390, 844, true)] {
        browser.viewport(width, height, mobile).await;
        for (name, path) in &pages {
            browser.goto(&dofs.url(path)).await;
            let f = browser.eval(PAGE_FACTS).await;
            let errors: Vec<Value> = browser
                .logs()
                .await
                .into_iter()
                .filter(|l| l["level"] == "SEVERE" || l["level"] == "WARNING")
                .collect();
            assert!(errors.is_empty(), "{name} at {width} px: {errors:#?}");
            assert_eq!(f["sheets"], 1, "{name}: the stylesheet loaded");
            let (sw, iw) = (f["scrollWidth"].as_u64(), f["innerWidth"].as_u64());
            assert!(
                sw <= iw,
                "{name} at {width} px scrolls sideways: {sw:?} > {iw:?}"
            );
            // On a phone every column of every table is on screen: the
            // tables reflow into cards instead of scrolling in a box.
            if width == 390 {
                assert_eq!(
                    f["cut"],
                    json!([]),
                    "{name} at {width} px: table cells past the screen's edge"
                );
            }
            for w in f["bars"].as_array().unwrap() {
                assert!(
                    w.as_f64().unwrap() >= 3.0,
                    "{name} at {width} px: a span {w} px wide"
                );
            }
            browser
                .screenshot(&dir.join(format!("{name}-{width}.png")))
                .await;
            facts.insert((*name, width), f);
        }
    }

    let text = |name: &str| facts[&(name, 1400)]["text"].as_str().unwrap().to_owned();
    let links = |name: &str| facts[&(name, 1400)]["links"].to_string();
    assert!(
        links("search-prefix").contains(&seeded.fulfilled),
        "prefix search"
    );
    assert!(
        links("search-trace").contains(&seeded.retried),
        "trace search"
    );
    assert!(text("order-fulfilled").contains("Fulfilled"));
    let failed = text("order-dead-lettered");
    assert!(failed.contains("Failed"), "{failed}");
    assert!(failed.contains("Dead-lettered"), "{failed}");
    assert!(text("order-rejected").contains("Rejected"));
    let waiting = text("order-in-flight");
    assert!(waiting.contains("In flight"), "{waiting}");
    assert!(waiting.contains("In the dead-letter queue"), "{waiting}");
    assert!(
        waiting
            .contains("the dlq_handler mapping is disabled (injected fault: dlq_handler=disabled)"),
        "{waiting}"
    );
    assert!(waiting.contains("reloads every"), "{waiting}");
    assert!(
        text("order-retried").contains("idle gap"),
        "{}",
        text("order-retried")
    );
    let axis = facts[&("order-retried", 1400)]["axis"].to_string();
    assert!(axis.contains("+0 µs") || axis.contains("+0 "), "{axis}");
    assert!(axis.contains("idle "), "the gap is labelled: {axis}");
    assert!(text("alarms").contains("ALARM"));
    // The workflow graph, the path coloured by what happened.
    let graph = |name: &str, state: &str| {
        facts[&(name, 1400)]["graph"][state]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(graph("order-fulfilled", "OrderEnqueued"), "node done");
    assert_eq!(graph("order-fulfilled", "RejectOrder"), "node idle");
    assert_eq!(graph("order-rejected", "OrderRejected"), "node done");
    assert_eq!(graph("order-rejected", "StoreOrder"), "node idle");
    let alarms = &facts[&("alarms", 1400)];
    assert!(alarms["thresholds"].as_u64().unwrap() >= 5, "{alarms:#}");
    assert!(
        alarms["firing"].to_string().contains("dofs-dlq-depth"),
        "the firing alarm is drawn: {alarms:#}"
    );
    assert!(
        text("alarms").contains("ALARM when"),
        "the condition in words"
    );
    // The deployed dashboard's twelve metric widgets, with their series.
    let metrics = &facts[&("metrics", 1400)];
    assert_eq!(metrics["charts"], 12, "{metrics:#}");
    let legend = metrics["legend"].to_string();
    for series in ["OrdersFulfilled", "p99", "order queue visible", "requests"] {
        assert!(legend.contains(series), "no {series} in {legend}");
    }
    let drawn = metrics["drawn"].to_string();
    for series in ["OrdersAccepted", "requests"] {
        assert!(drawn.contains(series), "no line of {series}: {drawn}");
    }
    assert!(text("overview").contains("dofs-dlq-depth"));

    // Zoom into one span of the retried order by its link, at both widths:
    // the waterfall re-renders for that window, every bar still wide.
    for (width, height, mobile) in [(1400, 900, false), (390, 844, true)] {
        browser.viewport(width, height, mobile).await;
        browser.goto(&dofs.url(&order(&seeded.retried))).await;
        let all = facts[&("order-retried", width)]["bars"]
            .as_array()
            .unwrap()
            .len();
        let clicked = browser
            .eval(
                "const links = document.querySelectorAll('a.zoom');
                   if (links.length < 4) return false;
                   links[3].click();
                   return true;",
            )
            .await;
        assert_eq!(clicked, true, "no zoom links");
        let until = Instant::now() + Duration::from_secs(10);
        while browser.eval("return location.search").await.as_str() == Some("") {
            assert!(Instant::now() < until, "the zoom link went nowhere");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let f = browser.eval(PAGE_FACTS).await;
        let page = f["text"].as_str().unwrap();
        assert!(page.contains("Reset zoom"), "{page}");
        let bars = f["bars"].as_array().unwrap();
        assert!(
            !bars.is_empty() && bars.len() < all,
            "zoomed: {} of {all} bars",
            bars.len()
        );
        for w in bars {
            assert!(
                w.as_f64().unwrap() >= 3.0,
                "zoomed at {width} px: a span {w} px wide"
            );
        }
        assert!(f["axis"].as_array().unwrap().len() >= 2, "{:#}", f["axis"]);
        assert_eq!(f["cut"], json!([]), "zoomed at {width} px");
        assert!(f["scrollWidth"].as_u64() <= f["innerWidth"].as_u64());
        browser
            .screenshot(&dir.join(format!("order-retried-zoomed-{width}.png")))
            .await;
    }

    // The in-flight order's message waits in the DLQ: redrive it from the
    // queue page (the form's confirmation ticked, as a person would) once
    // fulfil_order works again, and the order is fulfilled.
    assert!(
        text("queues").contains(&seeded.in_flight),
        "{}",
        text("queues")
    );
    clear_fault(&dofs, "fulfill_order").await;
    browser.viewport(1400, 900, false).await;
    browser.goto(&dofs.url("/_dofs/queues")).await;
    let clicked = browser
        .eval(&format!(
            "const row = Array.from(document.querySelectorAll('tr.message'))
                 .find(r => r.textContent.includes('{}'));
             if (!row) return false;
             row.querySelector('input[name=confirm]').click();
             row.querySelector('button[type=submit]').click();
             return true;",
            seeded.in_flight
        ))
        .await;
    assert_eq!(clicked, true, "no DLQ row for the in-flight order");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let done = browser
            .eval("return document.querySelector('.done') ? document.querySelector('.done').textContent : ''")
            .await;
        if done.as_str().is_some_and(|d| d.contains("Moved 1 message")) {
            break;
        }
        assert!(Instant::now() < until, "the redrive never reported: {done}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(browser.logs().await.iter().all(|l| l["level"] != "SEVERE"));
    browser
        .screenshot(&dir.join("queues-after-redrive-1400.png"))
        .await;
    wait_for(
        &dofs,
        &seeded.in_flight,
        "fulfilled after the redrive",
        status_is("FULFILLED"),
    )
    .await;
    // Without the page's token the same POST is refused.
    let forged = dofs
        .client
        .post(dofs.url("/_dofs/queues/purge"))
        .header("origin", "http://evil.example")
        .form(&[("token", "guess"), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);

    browser.quit().await;
    dofs.stop().await.unwrap();
    eprintln!(
        "browser test: seeded in {seeded_in:.1?}, {} pages × 2 widths, {:.1?} in all; screenshots in {}",
        pages.len(),
        started.elapsed(),
        dir.display()
    );
}
