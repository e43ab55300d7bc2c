//! The web console of the real `dofs serve`: pages answer on the API's own
//! listener under /_dofs/ and show the orders that went through.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{fast_args, spawn_runtime, Harness as _, Served};

async fn get(dofs: &Served, path: &str) -> (u16, String) {
    let response = dofs.client.get(dofs.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn console_pages_show_orders_traces_metrics_and_alarms() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let ids = dofs.submit(3).await;
    dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    let id = &ids[0];

    let (status, html) = get(&dofs, "/_dofs/orders").await;
    assert_eq!(status, 200);
    for id in &ids {
        assert!(html.contains(id.as_str()), "order {id} not listed");
    }
    let (status, html) = get(&dofs, "/_dofs/orders?status=fulfilled").await;
    assert_eq!(status, 200);
    assert!(html.contains(id.as_str()));
    let (_, html) = get(&dofs, "/_dofs/orders?status=FAILED").await;
    assert!(
        !html.contains(id.as_str()),
        "the filter keeps other statuses out"
    );

    let (status, html) = get(&dofs, &format!("/_dofs/orders/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(id.as_str()));
    assert!(html.contains("FULFILLED"));
    assert!(html.contains("Status history"));
    assert!(html.contains("Workflow execution"));
    assert!(html.contains("Queue deliveries"));

    // The trace reaches the data directory shortly after the order ends.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let detail = loop {
        let response = dofs
            .client
            .get(dofs.url(&format!("/_dofs/api/orders/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let detail: Value = response.json().await.unwrap();
        let names: Vec<&str> = detail["trace"]["spans"]
            .as_array()
            .map(|s| s.iter().filter_map(|s| s["name"].as_str()).collect())
            .unwrap_or_default();
        if names.iter().any(|n| n.contains("fulfill_order")) || std::time::Instant::now() > until {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let spans = detail["trace"]["spans"].as_array().expect("a stored trace");
    assert!(spans.len() >= 3, "{detail:#}");
    assert!(spans.iter().all(|s| s["depth"].is_u64()));
    let (_, html) = get(&dofs, &format!("/_dofs/orders/{id}")).await;
    assert!(html.contains("class=\"wf\""), "the waterfall is drawn");
    // And what X-Ray would hold, as `dofs trace` shows it.
    assert!(html.contains("X-Ray trace"), "{html}");
    assert!(html.contains("segment dofs-api_handler"), "{html}");
    assert!(html.contains("AWS::Lambda::Function"), "{html}");

    // Metrics and alarms pages (metrics are stored every second).
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, html) = get(&dofs, "/_dofs/metrics").await;
        assert_eq!(status, 200);
        // The series table (below the charts, whose legends are always
        // there) lists only series with data.
        if html.contains("<td data-label=\"Metric\">OrdersFulfilled</td>")
            && html.contains("<td data-label=\"Metric\">ApproximateNumberOfMessagesVisible</td>")
            && html.contains("<td data-label=\"Namespace\">AWS/ApiGateway</td>")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "metrics never shown:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, html) = get(&dofs, "/_dofs/alarms").await;
    assert_eq!(status, 200);
    assert!(html.contains("dofs-dlq-depth"));
    assert!(html.contains("dofs-fulfill_order-lambda-error-rate"));
    let (status, html) = get(&dofs, "/_dofs/").await;
    assert_eq!(status, 200);
    assert!(html.contains("FULFILLED"));

    // The same data on the command line, for humans.
    for (args, expected) in [
        (["metrics"], "AWS/ApiGateway"),
        (["alarms"], "dofs-dlq-depth"),
    ] {
        let output = std::process::Command::new(crate::helpers::DOFS)
            .arg("--data-dir")
            .arg(&dofs.data_dir)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "dofs {args:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains(expected), "dofs {args:?}:\n{text}");
    }

    let (status, _) = get(&dofs, "/_dofs/orders/no-such-order").await;
    assert_eq!(status, 404);
    // The API on the same listener is untouched.
    let (status, body) = dofs.get_order(id).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&dofs, "/_dofs").await;
    assert_eq!(status, 200, "redirect followed to the overview");
}

/// `GET /_dofs/health` answers with the console on or off, and nothing
/// under `/_dofs/` is API traffic: after health checks and unknown console
/// paths, the gateway's `Count` is exactly the one API request made.
#[tokio::test]
async fn health_answers_and_nothing_under_the_prefix_counts_as_api_traffic() {
    for console in ["on", "off"] {
        let mut args = fast_args(0.0);
        args.extend(["--console", console, "--metrics-interval", "100ms"].map(str::to_owned));
        let dofs = spawn_runtime(&args).await;
        for _ in 0..3 {
            let (status, body) = get(&dofs, "/_dofs/health").await;
            assert_eq!(status, 200, "console {console}: {body}");
            let health: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(health["status"], "ok", "{health}");
            assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "{health}");
            assert_eq!(health["listening"], dofs.base.as_str(), "{health}");
            let data_dir = std::path::absolute(&dofs.data_dir).unwrap();
            assert_eq!(health["data_dir"], data_dir.to_str().unwrap(), "{health}");
        }
        let (status, body) = get(&dofs, "/_dofs/no-such-page").await;
        assert_eq!(status, 404, "console {console}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "not_found", "{body}");
        // The one API request: a 404 of the API's own.
        let (status, _) = dofs.get_order("no-such-order").await;
        assert_eq!(status, 404);

        let until = std::time::Instant::now() + Duration::from_secs(30);
        let count = loop {
            let metrics = dofs.cli_json(&["metrics", "--since", "10m"]);
            let count = metrics["series"].as_array().unwrap().iter().find_map(|s| {
                (s["namespace"] == "AWS/ApiGateway" && s["name"] == "Count")
                    .then(|| s["window"]["sum"].as_f64().unwrap())
            });
            if let Some(count) = count {
                break count;
            }
            assert!(std::time::Instant::now() < until, "no Count: {metrics:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(count, 1.0, "console {console}");
        dofs.stop().await.unwrap();
    }
}

/// The AWS CLI or an SDK pointed at `dofs serve` (SigV4, `X-Amz-Target`,
/// a presigned URL) is told in JSON that `dofs` is not an AWS endpoint,
/// not given the API's bare 404, and none of it is API traffic: `Count`
/// and `4xx` see only the one real API request.
#[tokio::test]
async fn aws_tools_are_told_dofs_is_not_an_aws_endpoint_and_are_not_api_traffic() {
    let mut args = fast_args(0.0);
    args.extend(["--metrics-interval", "100ms"].map(str::to_owned));
    let dofs = spawn_runtime(&args).await;
    let sigv4 =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0123abcd";
    let requests = [
        // `aws dynamodb list-tables --endpoint-url ...`
        dofs.client
            .post(dofs.url("/"))
            .header("authorization", sigv4)
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .header("content-type", "application/x-amz-json-1.0")
            .body("{}"),
        // `aws s3 ls --endpoint-url ...`
        dofs.client
            .get(dofs.url("/"))
            .header("authorization", sigv4),
        // a signed request to an API path is still an AWS tool's
        dofs.client
            .post(dofs.url("/orders"))
            .header("authorization", sigv4)
            .body("Action=ListQueues&Version=2012-11-05"),
        // a presigned URL
        dofs.client
            .get(dofs.url("/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab")),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "NotAnAwsEndpoint",
            "{response:?}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_an_aws_endpoint", "{body}");
        assert_eq!(body["__type"], "NotAnAwsEndpoint", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("not an AWS endpoint"), "{message}");
        assert!(message.contains("moto"), "{message}");
    }
    // The one API request: a 404 of the API's own.
    let (status, _) = dofs.get_order("no-such-order").await;
    assert_eq!(status, 404);

    let until = std::time::Instant::now() + Duration::from_secs(30);
    let sum_of = |metrics: &Value, name: &str| {
        metrics["series"].as_array().unwrap().iter().find_map(|s| {
            (s["namespace"] == "AWS/ApiGateway" && s["name"] == name)
                .then(|| s["window"]["sum"].as_f64().unwrap())
        })
    };
    let (count, client_errors) = loop {
        let metrics = dofs.cli_json(&["metrics", "--since", "10m"]);
        if let (Some(count), Some(errors)) = (sum_of(&metrics, "Count"), sum_of(&metrics, "4xx")) {
            break (count, errors);
        }
        assert!(std::time::Instant::now() < until, "no Count: {metrics:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(count, 1.0);
    assert_eq!(client_errors, 1.0);
    dofs.stop().await.unwrap();
}

/// The sum of an `AWS/ApiGateway` series over the last ten minutes (0 when
/// it has no data).
fn api_sum(dofs: &Served, name: &str) -> f64 {
    let metrics = dofs.cli_json(&["metrics", "--since", "10m"]);
    metrics["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["namespace"] == "AWS/ApiGateway" && s["name"] == name)
        .map(|s| s["window"]["sum"].as_f64().unwrap())
        .sum()
}

/// Browsing the console (every page, its static files, and what a browser
/// asks for on its own: `/favicon.ico`, `/robots.txt`, the touch icons)
/// moves no API metric and no alarm: the favicon once went to the API,
/// whose 404 flapped `api-4xx-rate` while nobody used the API.
#[tokio::test]
async fn browsing_every_console_page_moves_no_api_metric_and_no_alarm() {
    let mut args = fast_args(0.0);
    args.extend(["--metrics-interval", "100ms"].map(str::to_owned));
    let dofs = spawn_runtime(&args).await;
    let ids = dofs.submit(2).await;
    dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    // The API's own requests (the POSTs, wait_terminal's polls) settle
    // first: the same Count over several flushes.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = -1.0;
    loop {
        let count = api_sum(&dofs, "Count");
        if count >= 2.0 && count == last {
            break;
        }
        last = count;
        assert!(
            std::time::Instant::now() < until,
            "the API's Count never settled"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let before = (api_sum(&dofs, "Count"), api_sum(&dofs, "4xx"));

    let order = format!("/_dofs/orders/{}", ids[0]);
    let search = format!("/_dofs/orders?q={}", &ids[0][..8]);
    let pages = [
        "/_dofs/",
        "/_dofs/orders",
        "/_dofs/orders?status=FULFILLED",
        &search,
        &order,
        "/_dofs/metrics",
        "/_dofs/alarms",
        "/_dofs/static/console.css?v=1",
        "/_dofs/static/favicon.svg",
    ];
    for path in pages {
        let (status, body) = get(&dofs, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    for (path, expected) in [
        ("/favicon.ico", 200),
        ("/robots.txt", 200),
        ("/apple-touch-icon.png", 404),
        ("/apple-touch-icon-precomposed.png", 404),
        ("/apple-touch-icon-120x120.png", 404),
    ] {
        let (status, _) = get(&dofs, path).await;
        assert_eq!(status, expected, "{path}");
    }
    let (_, html) = get(&dofs, &order).await;
    assert!(
        html.contains(r#"rel="icon""#) && html.contains("/_dofs/static/favicon.svg"),
        "the pages link the console's icon: {html}"
    );

    // Several metric flushes later, the API's series are where they were.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = (api_sum(&dofs, "Count"), api_sum(&dofs, "4xx"));
    assert_eq!(before, after, "(Count, 4xx) before and after browsing");
    let report = dofs.cli_json(&["alarms"]);
    let firing: Vec<&Value> = report["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "ALARM")
        .collect();
    assert!(firing.is_empty(), "{firing:#?}");
    dofs.stop().await.unwrap();
}

async fn set_fault(dofs: &Served, spec: &str) {
    let response = dofs
        .client
        .put(dofs.url(&format!("/_dofs/api/faults/{spec}")))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "fault {spec}");
}

/// The order page's sentence about where the order is, once it says `what`.
async fn place_once(dofs: &Served, id: &str, what: &str) -> String {
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, html) = get(dofs, &format!("/_dofs/orders/{id}")).await;
        let place = html
            .split("<p class=\"place\">")
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap_or_default()
            .to_owned();
        if place.contains(what) {
            return place;
        }
        assert!(
            std::time::Instant::now() < until,
            "order {id} never said “{what}”; last: {place}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_waiting_order_says_which_mapping_is_off_and_which_fault_is_injected() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    // fulfill_order's mapping off: the order waits in the order queue.
    set_fault(&dofs, "fulfill_order=disabled").await;
    let id = dofs.submit(1).await.remove(0);
    let place = place_once(
        &dofs,
        &id,
        "the fulfill_order mapping is disabled (injected fault: fulfill_order=disabled)",
    )
    .await;
    assert!(
        place.starts_with("In the queue dofs-order-queue"),
        "{place}"
    );
    // fulfill_order failing and dlq_handler's mapping off: it goes to the
    // dead-letter queue and stays there.
    set_fault(&dofs, "dlq_handler=disabled").await;
    set_fault(&dofs, "fulfill_order=failing").await;
    let place = place_once(
        &dofs,
        &id,
        "In the dead-letter queue dofs-order-dlq (waiting to be received",
    )
    .await;
    assert!(
        place.contains(
            "; the dlq_handler mapping is disabled (injected fault: dlq_handler=disabled), \
             so it stays here"
        ),
        "{place}"
    );
    assert!(!place.contains("failing or"), "no guessing: {place}");
    // dlq_handler polled again but failing: said so, by its fault.
    set_fault(&dofs, "dlq_handler=failing").await;
    place_once(
        &dofs,
        &id,
        "; dlq_handler is failing (injected fault: dlq_handler=failing)",
    )
    .await;
    dofs.stop().await.unwrap();
}
