//! Unit tests of the routes and every error code, against the testkit fakes.

use super::*;
use dofs_core::testkit::{
    sample_order, sample_request_json, sample_submission, sample_time, FixedClock,
    MemoryOrderStore, MemoryWorkflow,
};
use dofs_core::StatusChange;
use lambda_runtime::Context;
use serde_json::{json, Value};

const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

struct Harness {
    handler: ApiHandler,
    workflow: Arc<MemoryWorkflow>,
    orders: Arc<MemoryOrderStore>,
}

fn harness() -> Harness {
    let clock = Arc::new(FixedClock(sample_time()));
    let workflow = Arc::new(MemoryWorkflow::new(clock.clone()));
    let orders = Arc::new(MemoryOrderStore::new());
    Harness {
        handler: ApiHandler::new(workflow.clone(), orders.clone(), clock),
        workflow,
        orders,
    }
}

struct Req {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    base64: bool,
    trace: Option<String>,
}

fn req(method: Method, path: &str) -> Req {
    Req {
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
        base64: false,
        trace: Some(TRACE.to_owned()),
    }
}

fn post_json(body: &Value) -> Req {
    let mut r = req(Method::POST, "/orders");
    r.headers.push(("content-type", "application/json".into()));
    r.body = Some(body.to_string());
    r
}

impl Req {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    fn event(self) -> LambdaEvent<ApiGatewayV2httpRequest> {
        let mut request = ApiGatewayV2httpRequest::default();
        request.request_context.http.method = self.method.clone();
        request.request_context.http.path = Some(self.path.clone());
        request.raw_path = Some(self.path);
        request.route_key = Some("$default".into());
        for (name, value) in self.headers {
            request.headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        request.body = self.body;
        request.is_base64_encoded = self.base64;
        let mut context = Context::default();
        context.request_id = "req-123".into();
        context.xray_trace_id = self.trace;
        LambdaEvent::new(request, context)
    }
}

struct Resp {
    status: i64,
    headers: HeaderMap,
    body: Value,
}

async fn send(h: &Harness, r: Req) -> Resp {
    let response = h.handler.handle(r.event()).await.unwrap();
    assert_eq!(
        response.headers.get("content-type").unwrap(),
        "application/json",
        "every response is JSON"
    );
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    };
    Resp {
        status: response.status_code,
        headers: response.headers,
        body,
    }
}

fn error_code(resp: &Resp) -> &str {
    resp.body["error"]["code"].as_str().unwrap()
}

#[tokio::test]
async fn post_accepts_an_order_and_starts_the_workflow() {
    let h = harness();
    let resp = send(&h, post_json(&sample_request_json())).await;
    assert_eq!(resp.status, 202);
    let order_id = resp.body["order_id"].as_str().unwrap();
    assert_eq!(resp.body["status"], "RECEIVED");
    assert_eq!(resp.body["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(
        resp.headers.get("location").unwrap(),
        &format!("/orders/{order_id}")
    );
    let started = h.workflow.started();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].name, order_id);
    assert_eq!(started[0].trace_header.as_deref(), Some(TRACE));
    assert_eq!(started[0].input.submitted_at, sample_time());
    assert_eq!(started[0].input.customer_name.as_str(), "Ada Lovelace");
}

#[tokio::test]
async fn the_workflow_header_carries_on_lambdas_lineage() {
    let lineage = "a87bd80c:1|68fd508a:5";
    for (lambda_sampled, rate) in [(true, 1.0), (false, 1.0), (true, 0.0)] {
        let h = harness();
        let handler = ApiHandler::new(
            h.workflow.clone(),
            h.orders.clone(),
            Arc::new(FixedClock(sample_time())),
        )
        .with_trace_sampling(TraceSampling::new(rate));
        let mut r = post_json(&sample_request_json());
        r.trace = Some(format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled={};Lineage={lineage}",
            u8::from(lambda_sampled)
        ));
        let response = handler.handle(r.event()).await.unwrap();
        assert_eq!(response.status_code, 202);
        let header = h.workflow.started()[0].trace_header.clone().unwrap();
        let header: TraceHeader = header.parse().unwrap();
        assert_eq!(
            header.lineage.as_deref(),
            Some(lineage),
            "Lambda sampled {lambda_sampled}, rate {rate}: {header}"
        );
    }
}

#[tokio::test]
async fn post_starts_a_new_trace_when_lambda_gives_none() {
    let h = harness();
    let mut r = post_json(&sample_request_json());
    r.trace = None;
    let resp = send(&h, r).await;
    assert_eq!(resp.status, 202);
    let trace_id = resp.body["trace_id"].as_str().unwrap();
    assert!(dofs_telemetry::trace_header::is_trace_id(trace_id));
    let header = h.workflow.started()[0].trace_header.clone().unwrap();
    assert_eq!(header.parse::<TraceHeader>().unwrap().root, trace_id);
}

#[tokio::test]
async fn an_order_not_sampled_gets_no_trace_id_and_the_workflow_is_told_sampled_0() {
    let clock = Arc::new(FixedClock(sample_time()));
    let workflow = Arc::new(MemoryWorkflow::new(clock.clone()));
    let h = Harness {
        handler: ApiHandler::new(workflow.clone(), Arc::new(MemoryOrderStore::new()), clock)
            .with_trace_sampling(TraceSampling::new(0.0)),
        workflow,
        orders: Arc::new(MemoryOrderStore::new()),
    };
    let resp = send(&h, post_json(&sample_request_json())).await;
    assert_eq!(resp.status, 202);
    assert!(resp.body.get("trace_id").is_none(), "{}", resp.body);
    let header: TraceHeader = h.workflow.started()[0]
        .trace_header
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(header.sampled, Some(false));
}

#[test]
fn trace_sampling_is_a_stable_share_of_order_ids() {
    let ids: Vec<OrderId> = (0..2_000)
        .map(|i| OrderId::from_idempotency_key(&format!("k-{i}")))
        .collect();
    let share = |rate: f64| {
        let sampling = TraceSampling::new(rate);
        ids.iter().filter(|id| sampling.traces(id)).count()
    };
    assert_eq!(share(1.0), ids.len());
    assert_eq!(share(0.0), 0);
    let quarter = share(0.25);
    assert!((400..600).contains(&quarter), "{quarter}");
    let sampling = TraceSampling::new(0.5);
    assert!(ids
        .iter()
        .all(|id| sampling.traces(id) == sampling.traces(id)));
    assert_eq!(TraceSampling::new(7.0).rate(), 1.0);
    assert_eq!(TraceSampling::new(f64::NAN).rate(), 0.0);
}

#[tokio::test]
async fn post_accepts_charset_and_base64_bodies() {
    let h = harness();
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(sample_request_json().to_string());
    let mut r =
        post_json(&sample_request_json()).header("content-type", "Application/JSON; charset=utf-8");
    r.body = Some(encoded);
    r.base64 = true;
    let resp = send(&h, r).await;
    assert_eq!(resp.status, 202, "{}", resp.body);
}

#[tokio::test]
async fn post_refuses_other_content_types_with_415() {
    let h = harness();
    for content_type in [None, Some("text/plain"), Some("application/jsonp")] {
        let mut r = post_json(&sample_request_json());
        r.headers.clear();
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let resp = send(&h, r).await;
        assert_eq!(resp.status, 415, "{content_type:?}");
        assert_eq!(error_code(&resp), "unsupported_media_type");
    }
    assert!(h.workflow.started().is_empty());
}

#[tokio::test]
async fn post_refuses_bodies_over_64_kib_with_413() {
    let h = harness();
    let mut body = sample_request_json();
    body["customer_name"] = json!("x".repeat(MAX_BODY_BYTES));
    let resp = send(&h, post_json(&body)).await;
    assert_eq!(resp.status, 413);
    assert_eq!(error_code(&resp), "payload_too_large");

    let mut r = post_json(&body);
    r.body = Some(base64::engine::general_purpose::STANDARD.encode(body.to_string()));
    r.base64 = true;
    assert_eq!(send(&h, r).await.status, 413);
}

#[tokio::test]
async fn post_refuses_malformed_json_with_400() {
    let h = harness();
    for body in ["{\"customer_name\": ", "", "not json"] {
        let mut r = post_json(&json!({}));
        r.body = Some(body.to_owned());
        let resp = send(&h, r).await;
        assert_eq!(resp.status, 400, "{body:?}");
        assert_eq!(error_code(&resp), "malformed_json");
    }
    let mut r = post_json(&json!({}));
    r.body = Some("%%% not base64".into());
    r.base64 = true;
    assert_eq!(error_code(&send(&h, r).await), "malformed_json");
}

#[tokio::test]
async fn post_lists_every_offending_field_with_400() {
    let h = harness();
    let resp = send(
        &h,
        post_json(&json!({
            "customer_name": "",
            "items": [{"sku": "", "quantity": 0, "unit_price": "1.001"}]
        })),
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(error_code(&resp), "validation_failed");
    let fields: Vec<&str> = resp.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "customer_name",
            "items[0].sku",
            "items[0].quantity",
            "items[0].unit_price"
        ]
    );
    assert!(h.workflow.started().is_empty());
}

#[tokio::test]
async fn idempotent_retry_replays_the_same_order() {
    let h = harness();
    let first = send(
        &h,
        post_json(&sample_request_json()).header("idempotency-key", "client-key-1"),
    )
    .await;
    assert_eq!(first.status, 202);
    assert!(first.headers.get(IDEMPOTENT_REPLAY).is_none());
    assert_eq!(
        first.body["order_id"],
        OrderId::from_idempotency_key("client-key-1").as_str()
    );

    let again = send(
        &h,
        post_json(&sample_request_json()).header("idempotency-key", "client-key-1"),
    )
    .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body["order_id"], first.body["order_id"]);
    assert_eq!(again.body["status"], "RECEIVED");
    assert_eq!(again.headers.get(IDEMPOTENT_REPLAY).unwrap(), "true");
    assert_eq!(again.headers.get("location"), first.headers.get("location"));
    assert_eq!(h.workflow.started().len(), 1, "no second execution");

    // The retry comes in another trace; the answer names the order's.
    let mut retry = post_json(&sample_request_json()).header("idempotency-key", "client-key-1");
    retry.trace =
        Some("Root=1-5759e988-00000000000000000000000a;Parent=53995c3f42cd8ad8;Sampled=1".into());
    let replay = send(&h, retry).await;
    assert_eq!(replay.body["trace_id"], first.body["trace_id"]);
}

#[tokio::test]
async fn idempotency_key_reused_for_another_order_is_409() {
    let h = harness();
    send(
        &h,
        post_json(&sample_request_json()).header("idempotency-key", "k"),
    )
    .await;
    let mut other = sample_request_json();
    other["items"][0]["quantity"] = json!(3);
    let resp = send(&h, post_json(&other).header("idempotency-key", "k")).await;
    assert_eq!(resp.status, 409);
    assert_eq!(error_code(&resp), "idempotency_conflict");
    assert_eq!(h.workflow.started().len(), 1);
}

/// Races with another instance: the rival's RECEIVED record lands between
/// our read and our conditional put, so the put is told `AlreadyExists`
/// and the handler answers as a replay of the rival's order.
#[tokio::test]
async fn a_record_race_is_decided_as_a_replay() {
    struct RacingStore {
        inner: MemoryOrderStore,
        rival: Order,
    }
    #[async_trait::async_trait]
    impl OrderStore for RacingStore {
        async fn get(&self, id: &OrderId) -> Result<Option<Order>, PortError> {
            self.inner.get(id).await
        }
        async fn insert(&self, order: &Order) -> Result<InsertOutcome, PortError> {
            // The rival's put lands first.
            self.inner.insert(&self.rival).await?;
            self.inner.insert(order).await
        }
        async fn transition(
            &self,
            id: &OrderId,
            expected: OrderStatus,
            change: StatusChange,
        ) -> Result<dofs_core::TransitionOutcome, PortError> {
            self.inner.transition(id, expected, change).await
        }
    }

    let id = OrderId::from_idempotency_key("raced");
    let clock = Arc::new(FixedClock(sample_time()));
    // Same request, a second earlier: a replay.
    let rival = sample_submission(&id).to_order();
    let workflow = Arc::new(MemoryWorkflow::default());
    let orders = Arc::new(RacingStore {
        inner: MemoryOrderStore::new(),
        rival,
    });
    let h = Harness {
        handler: ApiHandler::new(workflow.clone(), orders, clock),
        workflow: workflow.clone(),
        orders: Arc::new(MemoryOrderStore::new()),
    };
    let resp = send(
        &h,
        post_json(&sample_request_json()).header("idempotency-key", "raced"),
    )
    .await;
    assert_eq!(resp.status, 202);
    assert_eq!(resp.headers.get(IDEMPOTENT_REPLAY).unwrap(), "true");
    assert_eq!(resp.body["order_id"], id.as_str());
    assert_eq!(
        workflow.started().len(),
        1,
        "each request starts the workflow before recording (under Standard the rival's start is absorbed by the name)"
    );
}

/// The order is recorded before the 202, so a GET right after it finds the
/// order with no DescribeExecution (which Express lacks).
#[tokio::test]
async fn an_accepted_order_is_recorded_received_before_the_202() {
    let h = harness();
    let accepted = send(&h, post_json(&sample_request_json())).await;
    let id = OrderId::parse(accepted.body["order_id"].as_str().unwrap()).unwrap();
    let stored = h.orders.get(&id).await.unwrap().expect("recorded");
    assert_eq!(stored.status, OrderStatus::Received);
    assert_eq!(
        stored.trace_id.as_deref(),
        accepted.body["trace_id"].as_str()
    );
    let started = h.workflow.started();
    assert_eq!(started.len(), 1);
    assert_eq!(
        started[0].input,
        stored.submission(),
        "the execution input is the recorded order's submission"
    );
}

/// A failed start records nothing (no RECEIVED order that nothing would
/// settle), and the client's retry with the same key starts the order.
#[tokio::test]
async fn a_failed_start_records_nothing_and_a_retry_starts_the_order() {
    let h = harness();
    let keyed = || post_json(&sample_request_json()).header("idempotency-key", "lost-start");
    let id = OrderId::from_idempotency_key("lost-start");
    h.workflow.faults.fail_with(ErrorKind::Transient);
    assert_eq!(send(&h, keyed()).await.status, 503);
    h.workflow.faults.heal();
    assert_eq!(h.orders.get(&id).await.unwrap(), None);
    assert!(h.workflow.started().is_empty());

    let retry = send(&h, keyed()).await;
    assert_eq!(retry.status, 202);
    assert!(retry.headers.get(IDEMPOTENT_REPLAY).is_none());
    assert_eq!(h.workflow.started().len(), 1);
    let stored = h.orders.get(&id).await.unwrap().expect("recorded");
    assert_eq!(h.workflow.started()[0].input, stored.submission());
}

/// An order still RECEIVED after `RESTART_STUCK_AFTER` lost its execution
/// (an Express execution ended with no step run): a retry with its key
/// starts the workflow again, in the order's own trace; earlier it does not.
#[tokio::test]
async fn a_retry_restarts_the_workflow_of_an_order_stuck_received() {
    let clock = Arc::new(dofs_core::testkit::ManualClock::new(sample_time()));
    let workflow = Arc::new(MemoryWorkflow::new(clock.clone()));
    let orders = Arc::new(MemoryOrderStore::new());
    let h = Harness {
        handler: ApiHandler::new(workflow.clone(), orders.clone(), clock.clone()),
        workflow: workflow.clone(),
        orders,
    };
    let keyed = || post_json(&sample_request_json()).header("idempotency-key", "lost");
    let first = send(&h, keyed()).await;
    assert_eq!(first.status, 202);
    // The execution is lost: the memory workflow forgets it.
    let id = OrderId::from_idempotency_key("lost");
    let lost = h.workflow.started();
    assert_eq!(lost.len(), 1);
    h.workflow.forget(&id);

    clock.advance(RESTART_STUCK_AFTER - chrono::Duration::seconds(1));
    assert_eq!(send(&h, keyed()).await.status, 202);
    assert!(h.workflow.started().is_empty(), "too early to restart");

    clock.advance(chrono::Duration::seconds(1));
    let late = send(&h, keyed()).await;
    assert_eq!(late.status, 202);
    let restarted = h.workflow.started();
    assert_eq!(restarted.len(), 1, "the retry started the workflow again");
    assert_eq!(
        restarted[0].input, lost[0].input,
        "with the recorded submission"
    );
    let header: TraceHeader = restarted[0]
        .trace_header
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(Some(header.root.as_str()), first.body["trace_id"].as_str());
    assert_eq!(late.body["trace_id"], first.body["trace_id"]);
}

/// The workflow's first write may land before api_handler's record (an
/// Express execution runs at once): the record then finds the order
/// stored, leaves it, and the answer is a plain 202.
#[tokio::test]
async fn the_workflow_storing_first_is_still_a_plain_202() {
    struct StoresOnStart {
        inner: MemoryWorkflow,
        orders: Arc<MemoryOrderStore>,
    }
    #[async_trait::async_trait]
    impl Workflow for StoresOnStart {
        async fn start(
            &self,
            submission: &dofs_core::OrderSubmission,
            header: Option<&str>,
        ) -> Result<StartOutcome, PortError> {
            let outcome = self.inner.start(submission, header).await?;
            let mut order = submission.to_order();
            order
                .transition(StatusChange::new(OrderStatus::Rejected, sample_time()))
                .unwrap();
            self.orders.insert(&order).await?;
            Ok(outcome)
        }
        async fn describe_traced(
            &self,
            id: &OrderId,
        ) -> Result<Option<(dofs_core::ExecutionView, Option<String>)>, PortError> {
            self.inner.describe_traced(id).await
        }
    }
    let orders = Arc::new(MemoryOrderStore::new());
    let workflow = Arc::new(StoresOnStart {
        inner: MemoryWorkflow::default(),
        orders: orders.clone(),
    });
    let h = Harness {
        handler: ApiHandler::new(
            workflow,
            orders.clone(),
            Arc::new(FixedClock(sample_time())),
        ),
        workflow: Arc::new(MemoryWorkflow::default()),
        orders: orders.clone(),
    };
    let resp = send(&h, post_json(&sample_request_json())).await;
    assert_eq!(resp.status, 202);
    assert!(resp.headers.get(IDEMPOTENT_REPLAY).is_none());
    let id = OrderId::parse(resp.body["order_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        orders.get(&id).await.unwrap().unwrap().status,
        OrderStatus::Rejected,
        "the record never moves an order backwards"
    );
}

#[tokio::test]
async fn invalid_idempotency_keys_are_400() {
    let h = harness();
    let long = "k".repeat(256);
    for key in ["", long.as_str(), "tab\there", "a,b", " lead", "trail "] {
        let resp = send(
            &h,
            post_json(&sample_request_json()).header("idempotency-key", key),
        )
        .await;
        assert_eq!(resp.status, 400, "{key:?}");
        assert_eq!(error_code(&resp), "invalid_idempotency_key");
        assert_eq!(resp.body["error"]["details"][0]["field"], "Idempotency-Key");
    }
    let ok = send(
        &h,
        post_json(&sample_request_json()).header("idempotency-key", &"k".repeat(255)),
    )
    .await;
    assert_eq!(ok.status, 202);
}

#[tokio::test]
async fn a_repeated_idempotency_key_header_is_400() {
    let h = harness();
    let mut event = post_json(&sample_request_json()).event();
    for key in ["key-1", "key-2"] {
        event
            .payload
            .headers
            .append(IDEMPOTENCY_KEY, HeaderValue::from_static(key));
    }
    let response = h.handler.handle(event).await.unwrap();
    assert_eq!(response.status_code, 400);
    assert!(h.workflow.started().is_empty());
}

fn post_text(body: &str) -> Req {
    let mut r = post_json(&json!({}));
    r.body = Some(body.to_owned());
    r
}

#[tokio::test]
async fn a_repeated_json_key_is_400_naming_it() {
    let h = harness();
    // A second `items` must not replace a refused first one.
    let resp = send(
        &h,
        post_text(
            r#"{"customer_name":"Ada","items":[{"sku":"","quantity":0,"unit_price":"x"}],
                "items":[{"sku":"A","quantity":1,"unit_price":"1.00"}]}"#,
        ),
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(error_code(&resp), "malformed_json");
    assert_eq!(resp.body["error"]["details"][0]["field"], "items");
    assert!(h.workflow.started().is_empty());
}

#[tokio::test]
async fn prices_are_exact_strings_or_400_naming_the_field() {
    let h = harness();
    for price in [
        "\"1.000000000000000000000000000001\"",
        "9.999999999999999999",
        "9.99",
        "\"1_000\"",
        "\"1e2\"",
        "\"+9.99\"",
        "\".5\"",
        "\" 9.99 \"",
        "\"0\"",
        "\"1000000.01\"",
    ] {
        let body = format!(
            r#"{{"customer_name":"Ada","items":[{{"sku":"A","quantity":1,"unit_price":{price}}}]}}"#
        );
        let resp = send(&h, post_text(&body)).await;
        assert_eq!(resp.status, 400, "{price}");
        assert_eq!(error_code(&resp), "validation_failed");
        assert_eq!(
            resp.body["error"]["details"][0]["field"], "items[0].unit_price",
            "{price}"
        );
    }
    assert!(h.workflow.started().is_empty());
}

#[tokio::test]
async fn prices_keep_the_scale_the_client_sent() {
    let h = harness();
    let resp = send(
        &h,
        post_text(
            r#"{"customer_name":"Ada","items":[{"sku":"A","quantity":2,"unit_price":"5.00"},
                {"sku":"B","quantity":33.0,"unit_price":"1"}]}"#,
        ),
    )
    .await;
    assert_eq!(resp.status, 202);
    let order_id = resp.body["order_id"].as_str().unwrap().to_owned();
    let started = h.workflow.started();
    let stored = serde_json::to_value(&started[0].input).unwrap();
    assert_eq!(stored["items"][0]["unit_price"], "5.00");
    assert_eq!(stored["items"][1]["unit_price"], "1");
    assert_eq!(stored["items"][1]["quantity"], 33);
    let read = send(&h, req(Method::GET, &format!("/orders/{order_id}"))).await;
    assert_eq!(read.body["items"][0]["unit_price"], "5.00");
    assert_eq!(read.body["total"], "43.00");
}

#[tokio::test]
async fn names_of_invisible_or_reordering_characters_are_400() {
    let h = harness();
    for name in ["\u{200B}\u{2060}", "Ada\u{202E}gpj.exe"] {
        let resp = send(
            &h,
            post_json(&json!({"customer_name": name, "items": [{"sku": "A", "quantity": 1, "unit_price": "1"}]})),
        )
        .await;
        assert_eq!(resp.status, 400, "{name:?}");
        assert_eq!(resp.body["error"]["details"][0]["field"], "customer_name");
    }
}

#[tokio::test]
async fn get_returns_the_stored_order_with_history() {
    let h = harness();
    let order = sample_order(OrderStatus::Fulfilled);
    dofs_core::OrderStore::insert(h.orders.as_ref(), &order)
        .await
        .unwrap();
    let resp = send(&h, req(Method::GET, &format!("/orders/{}", order.order_id))).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, serde_json::to_value(&order).unwrap());
    for key in [
        "order_id",
        "customer_name",
        "items",
        "total",
        "status",
        "history",
        "created_at",
        "updated_at",
    ] {
        assert!(resp.body.get(key).is_some(), "{key}");
    }
    assert_eq!(resp.body["status"], "FULFILLED");
    assert_eq!(resp.body["history"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn get_shows_a_submitted_order_as_received_until_stored() {
    let h = harness();
    let accepted = send(&h, post_json(&sample_request_json())).await;
    let id = accepted.body["order_id"].as_str().unwrap();
    let resp = send(&h, req(Method::GET, &format!("/orders/{id}"))).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body["status"], "RECEIVED");
    assert_eq!(resp.body["total"], "21.48");
    assert_eq!(resp.body["history"][0]["status"], "RECEIVED");
    assert_eq!(resp.body["history"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn get_unknown_order_is_404_and_bad_id_is_400() {
    let h = harness();
    let resp = send(&h, req(Method::GET, "/orders/no-such-order")).await;
    assert_eq!(resp.status, 404);
    assert_eq!(error_code(&resp), "order_not_found");
    let resp = send(&h, req(Method::GET, &format!("/orders/{}", "x".repeat(81)))).await;
    assert_eq!(resp.status, 400);
    assert_eq!(error_code(&resp), "invalid_order_id");
    let resp = send(&h, req(Method::GET, "/orders/bad%20id")).await;
    assert_eq!(resp.status, 400);
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let h = harness();
    for (method, path) in [
        (Method::GET, "/"),
        (Method::POST, "/order"),
        (Method::GET, "/orders/a/b"),
        (Method::DELETE, "/ordersx"),
    ] {
        let resp = send(&h, req(method, path)).await;
        assert_eq!(resp.status, 404, "{path}");
        assert_eq!(error_code(&resp), "not_found");
    }
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let h = harness();
    for (method, path, allow) in [
        (Method::GET, "/orders", "POST"),
        (Method::DELETE, "/orders/", "POST"),
        (Method::POST, "/orders/abc", "GET, HEAD"),
        (Method::PUT, "/orders/abc", "GET, HEAD"),
    ] {
        let resp = send(&h, req(method.clone(), path)).await;
        assert_eq!(resp.status, 405, "{method} {path}");
        assert_eq!(error_code(&resp), "method_not_allowed");
        assert_eq!(resp.headers.get("allow").unwrap(), allow);
    }
}

#[tokio::test]
async fn port_errors_are_503_or_500_without_internals() {
    let h = harness();
    h.workflow.faults.fail_with(ErrorKind::Transient);
    let resp = send(&h, post_json(&sample_request_json())).await;
    assert_eq!(resp.status, 503);
    assert_eq!(error_code(&resp), "service_unavailable");
    assert_eq!(resp.body["error"]["request_id"], "req-123");
    assert_eq!(resp.headers.get("retry-after").unwrap(), "1");
    assert!(!resp.body.to_string().contains("injected"));
    assert!(h.orders.is_empty(), "a failed start records nothing");

    h.workflow.faults.heal();
    h.orders.faults.fail_with(ErrorKind::Internal);
    let resp = send(&h, req(Method::GET, "/orders/abc")).await;
    assert_eq!(resp.status, 500);
    assert_eq!(error_code(&resp), "internal_error");
    assert_eq!(resp.body["error"]["message"], "internal error");
    assert_eq!(resp.body["error"]["request_id"], "req-123");

    // Damage is its own code, and never "retry later".
    h.orders.faults.fail_with(ErrorKind::DataCorrupt);
    let resp = send(&h, req(Method::GET, "/orders/abc")).await;
    assert_eq!(resp.status, 500);
    assert_eq!(error_code(&resp), "storage_corrupt");
    assert!(resp.headers.get("retry-after").is_none());
    assert_eq!(resp.body["error"]["request_id"], "req-123");
}

#[test]
fn routes_are_matched_exactly() {
    assert_eq!(route("/orders"), Some(Route::Orders));
    assert_eq!(route("/orders/"), Some(Route::Orders));
    assert_eq!(route("/orders/a1"), Some(Route::Order("a1")));
    assert_eq!(route("/orders/a1/"), Some(Route::Order("a1")));
    assert_eq!(route("/orders/a/b"), None);
    assert_eq!(route("/ordersx"), None);
    assert_eq!(route("/"), None);
}
