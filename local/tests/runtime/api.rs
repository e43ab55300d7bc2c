//! The HTTP contract through the real gateway and api_handler: accepted
//! orders, every client error, idempotency.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    fast_args, order_body, spawn_runtime, spawn_runtime_with_clock, Harness as _,
};

/// Asserts `response` is a `status` with the API's JSON error body of
/// `code`; returns the body.
async fn json_error(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors_never_5xx() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let client = &dofs.client;

    let malformed = client
        .post(dofs.url("/orders"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");

    let (status, body) = dofs
        .post_order(&json!({"customer_name": "", "items": [{"sku": "-x", "quantity": 0, "unit_price": "1.001"}]}), None)
        .await;
    assert_eq!(status, 400);
    let text = body.to_string();
    for field in ["customer_name", "quantity", "unit_price", "sku"] {
        assert!(text.contains(field), "{field} not listed in {body}");
    }

    let wrong_type = client
        .post(dofs.url("/orders"))
        .header("content-type", "text/plain")
        .body(order_body(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status().as_u16(), 415);
    assert!(wrong_type.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));

    let huge = client
        .post(dofs.url("/orders"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"customer_name\":\"{}\"}}",
            "x".repeat(70 * 1024)
        ))
        .send()
        .await
        .unwrap();
    // api_handler's own 413, as on AWS (the gateway's limit is 10 MB).
    json_error(huge, 413, "payload_too_large").await;

    // Past API Gateway's own quota the gateway answers, in JSON too.
    let too_huge = client
        .post(dofs.url("/orders"))
        .header("content-type", "application/json")
        .body(vec![
            b' ';
            dofs_local::services::api_gateway::BODY_LIMIT + 1
        ])
        .send()
        .await
        .unwrap();
    let body = json_error(too_huge, 413, "payload_too_large").await;
    assert_eq!(body["error"]["details"], serde_json::json!([]), "{body}");

    // API Gateway's 10,240-byte quota on the request line and header
    // values: JSON answers, not the HTTP layer's empty ones.
    let limit = dofs_local::services::api_gateway::HEAD_LIMIT;
    let long_uri = client
        .get(dofs.url(&format!("/orders/{}", "a".repeat(limit))))
        .send()
        .await
        .unwrap();
    let body = json_error(long_uri, 414, "uri_too_long").await;
    assert_eq!(body["error"]["details"], serde_json::json!([]), "{body}");
    let mut big_head = client.get(dofs.url("/orders/x"));
    for i in 0..150 {
        big_head = big_head.header(format!("x-filler-{i}"), "v".repeat(80));
    }
    let big_head = big_head.send().await.unwrap();
    json_error(big_head, 431, "request_header_fields_too_large").await;
    // Just under the quota is still the API's to answer.
    let under = client
        .get(dofs.url("/orders/0b4f8a36-0000-4000-8000-000000000000"))
        .header("x-filler", "v".repeat(limit - 200))
        .send()
        .await
        .unwrap();
    assert_eq!(under.status().as_u16(), 404);

    let (status, _) = dofs.get_order("0b4f8a36-0000-4000-8000-000000000000").await;
    assert_eq!(status, 404);

    let unknown = client.get(dofs.url("/nope")).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    let wrong_method = client.delete(dofs.url("/orders")).send().await.unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert!(wrong_method.headers().get("allow").is_some());
}

#[tokio::test]
async fn accepted_order_is_fulfilled_and_idempotency_key_replays_it() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let (status, first) = dofs.post_order(&order_body(1), Some("key-123")).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["status"], "RECEIVED");
    assert!(first["trace_id"].as_str().unwrap().starts_with("1-"));
    let id = first["order_id"].as_str().unwrap().to_owned();

    let (status, again) = dofs.post_order(&order_body(1), Some("key-123")).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["order_id"], first["order_id"]);
    assert_eq!(
        again["trace_id"], first["trace_id"],
        "a replay names the order's trace (the execution's traceHeader), not the retry's"
    );

    let done = dofs
        .wait_terminal(std::slice::from_ref(&id), Duration::from_secs(60))
        .await;
    assert_eq!(done[&id], "FULFILLED");
    let (_, order) = dofs.get_order(&id).await;
    let history: Vec<&str> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["RECEIVED", "VALIDATED", "PENDING", "FULFILLED"]);

    let orders = dofs.cli_json(&["orders"]);
    assert_eq!(
        orders["orders"].as_array().unwrap().len(),
        1,
        "one order for two POSTs: {orders}"
    );
    let report = dofs.cli_json(&["order", &id]);
    assert_eq!(report["execution"]["status"], "SUCCEEDED");
    assert_eq!(report["attempts"]["fulfill_order"], 1);

    // The same key with another body is a conflict, not a second order.
    let (status, _) = dofs.post_order(&order_body(2), Some("key-123")).await;
    assert_eq!(status, 409);
    // In process, a stop is as clean as SIGTERM's.
    dofs.stop().await.unwrap();
}

/// The money rules hold through the local gateway as in Lambda (one
/// api_handler): the client's scale is stored and returned, a JSON number
/// or a rounded spelling is a 400 naming the field, and a second
/// `Idempotency-Key` header is refused rather than joined into a new key.
#[tokio::test]
async fn money_is_exact_and_repeats_are_refused_through_the_gateway() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let (status, accepted) = dofs
        .post_order(
            &json!({"customer_name": "Ada", "items": [{"sku": "A", "quantity": 2, "unit_price": "5.00"}]}),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let order_id = accepted["order_id"].as_str().unwrap();
    let (_, order) = dofs.get_order(order_id).await;
    assert_eq!(order["items"][0]["unit_price"], "5.00");
    assert_eq!(order["total"], "10.00");
    // And in what ops read: `dofs order --json` and the console's twin.
    let report = crate::helpers::cli_json(&dofs.data_dir, &["order", order_id]);
    assert_eq!(
        report["order"]["items"][0]["unit_price"], "5.00",
        "{report}"
    );
    assert_eq!(report["order"]["total"], "10.00", "{report}");
    let twin: serde_json::Value = dofs
        .client
        .get(dofs.url(&format!("/_dofs/api/orders/{order_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(twin["order"]["items"][0]["unit_price"], "5.00", "{twin}");
    assert_eq!(twin["order"]["total"], "10.00", "{twin}");

    for price in ["9.999999999999999999", "\"1e2\"", "\"1_000\"", "\" 9.99 \""] {
        let response = dofs
            .client
            .post(dofs.url("/orders"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"customer_name":"Ada","items":[{{"sku":"A","quantity":1,"unit_price":{price}}}]}}"#
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{price}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["details"][0]["field"], "items[0].unit_price",
            "{price}"
        );
    }

    let repeated = dofs
        .client
        .post(dofs.url("/orders"))
        .header("content-type", "application/json")
        .header("idempotency-key", "one")
        .header("idempotency-key", "two")
        .body(order_body(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(repeated.status().as_u16(), 400);
    let body: serde_json::Value = repeated.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_idempotency_key");
}

/// DNS rebinding: a page whose host name re-resolved to 127.0.0.1 sends its
/// own name as `Host`; such requests are refused (421, JSON) before they
/// reach the API or the console, and every response carries the browser
/// protections.
#[tokio::test]
async fn foreign_host_names_are_refused_and_pages_are_protected() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    for path in ["/orders", "/_dofs/", "/_dofs/api/orders"] {
        let response = dofs
            .client
            .get(dofs.url(path))
            .header("host", "attacker.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 421, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "misdirected_request");
        assert_eq!(body["error"]["details"][0]["field"], "Host");
    }
    let refused = dofs
        .client
        .post(dofs.url("/orders"))
        .header("host", "attacker.example:3000")
        .header("content-type", "application/json")
        .body(order_body(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 421);
    assert_eq!(
        dofs.client
            .get(dofs.url("/_dofs/api/orders"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["orders"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "the refused order was not placed"
    );
    for path in ["/_dofs/", "/_dofs/api/orders", "/orders/x"] {
        let response = dofs
            .client
            .get(dofs.url(path))
            .header("host", "localhost")
            .send()
            .await
            .unwrap();
        assert_ne!(response.status().as_u16(), 421, "{path}");
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
            "{csp}"
        );
    }
}

/// A client's `X-Amzn-Trace-Id` naming another order's trace does not put
/// a new order into it.
#[tokio::test]
async fn a_client_trace_header_does_not_graft_an_order_into_another_trace() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let (_, first) = dofs.post_order(&order_body(1), None).await;
    let victim = first["trace_id"].as_str().unwrap().to_owned();
    let response = dofs
        .client
        .post(dofs.url("/orders"))
        .header("content-type", "application/json")
        .header(
            "x-amzn-trace-id",
            format!("Root={victim};Parent=53995c3f42cd8ad8;Sampled=1"),
        )
        .body(order_body(2).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let second: serde_json::Value = response.json().await.unwrap();
    let trace_id = second["trace_id"].as_str().unwrap();
    assert_ne!(trace_id, victim);
}

fn args_with(extra: &[&str]) -> Vec<String> {
    let mut args = fast_args(0.0);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn raw_connection(dofs: &crate::helpers::InProcess) -> tokio::net::TcpStream {
    let addr = dofs.base.trim_start_matches("http://").to_owned();
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

/// Reads until the server closes the connection; what it sent.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap_or_default();
    String::from_utf8_lossy(&out).into_owned()
}

/// Idle sockets up to the connection cap do not lock clients out: the
/// server closes them, and the next client is served.
#[tokio::test]
async fn idle_sockets_at_the_connection_cap_do_not_lock_clients_out() {
    let dofs = spawn_runtime(&args_with(&[
        "--max-connections",
        "4",
        "--idle-timeout",
        "1s",
        "--header-read-timeout",
        "1s",
    ]))
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(raw_connection(&dofs).await);
    }
    let (status, _) = dofs.get_order("not-there").await;
    assert_eq!(status, 404);
    for stream in &mut idle {
        // Closed by the server, having sent nothing (no request came).
        assert_eq!(read_to_close(stream).await, "");
    }
}

/// A body that stalls gets a JSON 408 after the body timeout; a malformed
/// chunked body is a JSON 400, not a 413.
#[tokio::test]
async fn slow_and_malformed_bodies_get_json_errors() {
    use tokio::io::AsyncWriteExt as _;
    let dofs = spawn_runtime(&args_with(&["--body-read-timeout", "300ms"])).await;
    let mut slow = raw_connection(&dofs).await;
    slow.write_all(
        b"POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"cust",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(answer.contains("\"details\":[]"), "{answer}");

    let mut malformed = raw_connection(&dofs).await;
    malformed
        .write_all(
            b"POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_to_close(&mut malformed).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("\"code\":\"malformed_request\""),
        "{answer}"
    );
}

/// A request head that never completes does not hold its connection.
#[tokio::test]
async fn a_request_head_that_never_completes_is_cut_off() {
    use tokio::io::AsyncWriteExt as _;
    let dofs = spawn_runtime(&args_with(&["--header-read-timeout", "300ms"])).await;
    let mut slowloris = raw_connection(&dofs).await;
    slowloris
        .write_all(b"GET /orders/x HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_to_close(&mut slowloris).await;
    assert!(!answer.contains("200"), "{answer}");
    let (status, _) = dofs.get_order("x").await;
    assert_eq!(status, 404);
}

/// The runtime reads "now" from the clock it is built with, not the
/// system's: an order accepted under a fixed clock is stamped with it.
#[tokio::test]
async fn the_runtime_stamps_orders_with_the_clock_it_is_given() {
    let at = chrono::DateTime::parse_from_rfc3339("2020-02-29T12:00:00Z")
        .unwrap()
        .to_utc();
    let clock = std::sync::Arc::new(dofs_core::testkit::FixedClock(at));
    let dofs = spawn_runtime_with_clock(&fast_args(0.0), clock).await;
    let (status, accepted) = dofs.post_order(&order_body(1), None).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["order_id"].as_str().unwrap();
    let (_, order) = dofs.get_order(id).await;
    // In the one machine spelling of a time (dofs_core::timestamp).
    assert_eq!(order["created_at"], "2020-02-29T12:00:00.000Z", "{order}");
    dofs.stop().await.unwrap();
}
