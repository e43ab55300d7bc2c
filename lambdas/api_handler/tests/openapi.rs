//! Checks the handler against `openapi.yaml`, both ways:
//!
//! - every documented (path, method, status) is produced by the handler for a
//!   representative request, and the handler produces no undocumented one;
//! - every body produced validates against the documented JSON Schema
//!   (OpenAPI 3.1 schemas are JSON Schema 2020-12), and every documented
//!   required header is present and matches its schema.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::collections::BTreeSet;
use std::sync::Arc;

use api_handler::ApiHandler;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use dofs_core::testkit::{
    sample_order, sample_request_json, sample_time, FixedClock, MemoryOrderStore, MemoryWorkflow,
};
use dofs_core::{ErrorKind, OrderStatus, OrderStore};
use http::{HeaderName, HeaderValue, Method};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// Escapes one JSON-pointer token.
fn token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Follows a local `$ref` (`#/components/...`) if `value` is one.
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => spec
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {reference}")),
        None => value,
    }
}

/// Validates `instance` against the schema at `pointer` in the spec; the
/// whole spec is the root resource, so `#/components/schemas/..` resolves.
fn check_schema(spec: &Value, pointer: &str, instance: &Value, what: &str) {
    let mut root = spec.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    // A `$ref` is a URI: path templates' braces must be percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    root["$ref"] = json!(format!("#{fragment}"));
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: body does not match {pointer}: {errors:?}\n{instance:#}"
    );
}

struct Setup {
    handler: ApiHandler,
    workflow: Arc<MemoryWorkflow>,
    orders: Arc<MemoryOrderStore>,
}

fn setup() -> Setup {
    let clock = Arc::new(FixedClock(sample_time()));
    let workflow = Arc::new(MemoryWorkflow::new(clock.clone()));
    let orders = Arc::new(MemoryOrderStore::new());
    Setup {
        handler: ApiHandler::new(workflow.clone(), orders.clone(), clock),
        workflow,
        orders,
    }
}

fn request(
    method: Method,
    path: &str,
    headers: &[(&'static str, &str)],
    body: Option<String>,
) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let mut request = ApiGatewayV2httpRequest::default();
    request.request_context.http.method = method;
    request.request_context.http.path = Some(path.to_owned());
    request.raw_path = Some(path.to_owned());
    for (name, value) in headers {
        request.headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    request.body = body;
    let mut context = Context::default();
    context.request_id = "req-openapi".into();
    context.xray_trace_id =
        Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into());
    LambdaEvent::new(request, context)
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn post(body: &Value, extra: &[(&'static str, &str)]) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let mut headers = vec![JSON];
    headers.extend_from_slice(extra);
    request(Method::POST, "/orders", &headers, Some(body.to_string()))
}

fn get(path: &str) -> LambdaEvent<ApiGatewayV2httpRequest> {
    request(Method::GET, path, &[], None)
}

fn head(path: &str) -> LambdaEvent<ApiGatewayV2httpRequest> {
    request(Method::HEAD, path, &[], None)
}

/// One representative request: what it exercises and the documented
/// operation it should land on (`None` for the undocumented catch-all).
struct Case {
    name: &'static str,
    template: Option<&'static str>,
    method: &'static str,
    status: u16,
    response: ApiGatewayV2httpResponse,
}

async fn run_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    macro_rules! case {
        ($name:expr, $template:expr, $method:expr, $status:expr, $setup:expr, $event:expr) => {{
            let response = $setup.handler.handle($event).await.unwrap();
            cases.push(Case {
                name: $name,
                template: $template,
                method: $method,
                status: $status,
                response,
            });
        }};
    }

    // POST /orders
    let s = setup();
    case!(
        "accepted",
        Some("/orders"),
        "post",
        202,
        s,
        post(&sample_request_json(), &[])
    );
    case!(
        "first with key",
        Some("/orders"),
        "post",
        202,
        s,
        post(&sample_request_json(), &[("idempotency-key", "k-1")])
    );
    case!(
        "replay",
        Some("/orders"),
        "post",
        202,
        s,
        post(&sample_request_json(), &[("idempotency-key", "k-1")])
    );
    let mut other = sample_request_json();
    other["customer_name"] = json!("Grace Hopper");
    case!(
        "key reused",
        Some("/orders"),
        "post",
        409,
        s,
        post(&other, &[("idempotency-key", "k-1")])
    );
    case!(
        "malformed",
        Some("/orders"),
        "post",
        400,
        s,
        request(Method::POST, "/orders", &[JSON], Some("{".into()))
    );
    case!(
        "schema",
        Some("/orders"),
        "post",
        400,
        s,
        post(
            &json!({"customer_name": "", "items": [{"sku": "-", "quantity": 0}], "x": 1}),
            &[]
        )
    );
    let long_key = "k".repeat(256);
    case!(
        "bad key",
        Some("/orders"),
        "post",
        400,
        s,
        post(
            &sample_request_json(),
            &[("idempotency-key", long_key.as_str())]
        )
    );
    let mut huge = sample_request_json();
    huge["customer_name"] = json!("x".repeat(70_000));
    case!(
        "too large",
        Some("/orders"),
        "post",
        413,
        s,
        post(&huge, &[])
    );
    case!(
        "text",
        Some("/orders"),
        "post",
        415,
        s,
        request(
            Method::POST,
            "/orders",
            &[("content-type", "text/plain")],
            Some(sample_request_json().to_string())
        )
    );
    case!(
        "wrong method",
        Some("/orders"),
        "get",
        405,
        s,
        get("/orders")
    );
    case!(
        "wrong method on collection",
        Some("/orders"),
        "delete",
        405,
        s,
        request(Method::DELETE, "/orders", &[], None)
    );
    s.workflow.faults.fail_with(ErrorKind::Internal);
    case!(
        "broken workflow",
        Some("/orders"),
        "post",
        500,
        s,
        post(&sample_request_json(), &[])
    );
    s.workflow.faults.fail_with(ErrorKind::Transient);
    case!(
        "throttled workflow",
        Some("/orders"),
        "post",
        503,
        s,
        post(&sample_request_json(), &[])
    );

    // GET /orders/{order_id}
    let s = setup();
    let stored = sample_order(OrderStatus::Rejected);
    s.orders.insert(&stored).await.unwrap();
    case!(
        "stored",
        Some("/orders/{order_id}"),
        "get",
        200,
        s,
        get(&format!("/orders/{}", stored.order_id))
    );
    let accepted = s
        .handler
        .handle(post(&sample_request_json(), &[]))
        .await
        .unwrap();
    let Some(Body::Text(text)) = &accepted.body else {
        panic!("no body")
    };
    let id = serde_json::from_str::<Value>(text).unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    case!(
        "not yet stored",
        Some("/orders/{order_id}"),
        "get",
        200,
        s,
        get(&format!("/orders/{id}"))
    );
    case!(
        "bad id",
        Some("/orders/{order_id}"),
        "get",
        400,
        s,
        get("/orders/not%20an%20id")
    );
    case!(
        "unknown",
        Some("/orders/{order_id}"),
        "get",
        404,
        s,
        get("/orders/unknown-order")
    );
    case!(
        "head of an order",
        Some("/orders/{order_id}"),
        "head",
        200,
        s,
        head(&format!("/orders/{id}"))
    );
    case!(
        "head, bad id",
        Some("/orders/{order_id}"),
        "head",
        400,
        s,
        head("/orders/not%20an%20id")
    );
    case!(
        "head, unknown",
        Some("/orders/{order_id}"),
        "head",
        404,
        s,
        head("/orders/unknown-order")
    );
    case!(
        "wrong method on order",
        Some("/orders/{order_id}"),
        "post",
        405,
        s,
        request(Method::POST, "/orders/abc", &[JSON], Some("{}".into()))
    );
    s.orders.faults.fail_with(ErrorKind::Internal);
    case!(
        "broken table",
        Some("/orders/{order_id}"),
        "get",
        500,
        s,
        get("/orders/abc")
    );
    case!(
        "head, broken table",
        Some("/orders/{order_id}"),
        "head",
        500,
        s,
        head("/orders/abc")
    );
    s.orders.faults.fail_with(ErrorKind::Transient);
    case!(
        "throttled table",
        Some("/orders/{order_id}"),
        "get",
        503,
        s,
        get("/orders/abc")
    );
    case!(
        "head, throttled table",
        Some("/orders/{order_id}"),
        "head",
        503,
        s,
        head("/orders/abc")
    );

    // $default
    case!("unrouted", None, "get", 404, s, get("/nothing/here"));
    cases
}

fn body_of(response: &ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        other => panic!("expected a JSON text body, got {other:?}"),
    }
}

#[tokio::test]
async fn the_handler_implements_the_documented_api() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let cases = run_cases().await;

    // Every case got the status it exercises.
    for case in &cases {
        assert_eq!(
            case.response.status_code,
            i64::from(case.status),
            "{}: {}",
            case.name,
            body_of(&case.response)
        );
        assert_eq!(
            case.response.headers.get("content-type").unwrap(),
            "application/json",
            "{}",
            case.name
        );
    }

    // Documented operations and codes == produced ones.
    let mut documented = BTreeSet::new();
    for (template, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
                continue; // path-level `parameters`
            };
            for (status, response) in responses {
                // The local gateway's own answers (421, 408), which
                // api_handler never gives.
                if resolve(&spec, response).get("x-dofs-serve-only") == Some(&Value::Bool(true)) {
                    continue;
                }
                documented.insert((
                    template.clone(),
                    method.clone(),
                    status.parse::<u16>().unwrap(),
                ));
            }
        }
    }
    // Methods the path does not document are answered 405 by design and
    // documented as the path's 405; count them under the documented method.
    let produced: BTreeSet<(String, String, u16)> = cases
        .iter()
        .filter_map(|c| {
            let template = c.template?;
            let item = &spec["paths"][template];
            let method = if item.get(c.method).is_some() {
                c.method.to_owned()
            } else {
                assert_eq!(c.status, 405, "{}: undocumented method must be 405", c.name);
                item.as_object()
                    .unwrap()
                    .keys()
                    .find(|k| *k != "parameters")
                    .unwrap()
                    .clone()
            };
            Some((template.to_owned(), method, c.status))
        })
        .collect();
    assert_eq!(
        documented, produced,
        "documented responses (left) differ from those the handler produced (right)"
    );

    // Bodies and headers match the documented response.
    for case in &cases {
        let body = body_of(&case.response);
        let Some(template) = case.template else {
            check_schema(&spec, "/components/x-unrouted/response", &body, case.name);
            continue;
        };
        let item = &spec["paths"][template];
        let method = if item.get(case.method).is_some() {
            case.method
        } else {
            item.as_object()
                .unwrap()
                .keys()
                .find(|k| *k != "parameters")
                .unwrap()
                .as_str()
        };
        if method == "head" {
            continue; // no body on the wire
        }
        let status = case.status.to_string();
        let raw = &item[method]["responses"][status.as_str()];
        let response = resolve(&spec, raw);
        let pointer = match raw.get("$ref").and_then(Value::as_str) {
            Some(reference) => format!(
                "{}/content/application~1json/schema",
                reference.trim_start_matches('#')
            ),
            None => format!(
                "/paths/{}/{method}/responses/{status}/content/application~1json/schema",
                token(template)
            ),
        };
        assert!(
            spec.pointer(&pointer).is_some(),
            "{}: no schema at {pointer}",
            case.name
        );
        check_schema(&spec, &pointer, &body, case.name);

        for (name, header) in response
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let value = case
                .response
                .headers
                .get(name.to_ascii_lowercase().as_str());
            let required = header["required"].as_bool().unwrap_or(false);
            match value {
                Some(value) => {
                    let value = json!(value.to_str().unwrap());
                    let mut root = header["schema"].clone();
                    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
                    assert!(
                        jsonschema::draft202012::new(&root)
                            .unwrap()
                            .is_valid(&value),
                        "{}: header {name}: {value} does not match {}",
                        case.name,
                        header["schema"]
                    );
                }
                None => assert!(!required, "{}: required header {name} missing", case.name),
            }
        }
    }

    // The replay is marked as such; the first acceptance is not.
    let replay = cases.iter().find(|c| c.name == "replay").unwrap();
    assert_eq!(
        replay.response.headers.get("idempotent-replay").unwrap(),
        "true"
    );
    let first = cases.iter().find(|c| c.name == "first with key").unwrap();
    assert!(first.response.headers.get("idempotent-replay").is_none());
    assert_eq!(
        body_of(&first.response)["order_id"],
        body_of(&replay.response)["order_id"]
    );
}

#[test]
fn the_documented_request_example_is_accepted_by_the_schema() {
    let spec = spec();
    let pointer = "/paths/~1orders/post/requestBody/content/application~1json";
    let example = spec.pointer(&format!("{pointer}/example")).unwrap().clone();
    check_schema(&spec, &format!("{pointer}/schema"), &example, "example");
    check_schema(
        &spec,
        &format!("{pointer}/schema"),
        &sample_request_json(),
        "sample",
    );
    assert!(dofs_core::validation::validate_order_request(&example).is_ok());
}

#[test]
fn the_schema_refuses_what_the_handler_refuses() {
    let spec = spec();
    let pointer = "/components/schemas/OrderRequest";
    let mut root = spec.clone();
    root["$ref"] = json!(format!("#{pointer}"));
    let validator = jsonschema::draft202012::new(&root).unwrap();
    for bad in [
        json!({}),
        json!({"customer_name": "Ada", "items": []}),
        json!({"customer_name": "Ada", "items": [{"sku": "A", "quantity": 0, "unit_price": "1"}]}),
        json!({"customer_name": "Ada", "items": [{"sku": "A", "quantity": 1, "unit_price": "1.001"}]}),
        json!({"customer_name": "Ada", "items": [{"sku": "A", "quantity": 1, "unit_price": "1"}], "extra": 1}),
    ] {
        assert!(!validator.is_valid(&bad), "schema accepts {bad}");
        assert!(
            dofs_core::validation::validate_order_request(&bad).is_err(),
            "handler accepts {bad}"
        );
    }
}

/// The schema and the handler agree, both ways, on the edge cases of every
/// field: what one accepts the other accepts.
#[test]
fn the_schema_and_the_handler_agree_on_edge_cases() {
    let spec = spec();
    let mut root = spec.clone();
    root["$ref"] = json!("#/components/schemas/OrderRequest");
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let order = |name: Value, quantity: Value, price: Value| json!({"customer_name": name, "items": [{"sku": "A-1", "quantity": quantity, "unit_price": price}]});
    let mut cases = Vec::new();
    for price in [
        "0",
        "0.0",
        "0.00",
        "0.01",
        "0.1",
        "00.5",
        ".5",
        "5.",
        "1",
        "1.5",
        "1.50",
        "1.500",
        "0009.99",
        "999999.99",
        "1000000",
        "1000000.0",
        "1000000.00",
        "1000000.01",
        "1000001",
        "99999999",
        "1e2",
        "+1",
        "-1",
        " 1",
        "1 ",
        "1_000",
        "1,5",
        "\u{661}",
    ] {
        cases.push(order(json!("Ada"), json!(1), json!(price)));
    }
    for price in [json!(1), json!(9.99), json!(null), json!(true)] {
        cases.push(order(json!("Ada"), json!(1), price));
    }
    for name in [
        "Ada",
        " Ada ",
        "",
        " ",
        "\u{200B}",
        "\u{200B}\u{FEFF}\u{2060}",
        "\u{00A0}\u{3000}",
        "Zo\u{200D}e",
        "Ada\u{202E}x",
        "\u{2066}Ada",
        "Ada\u{200F}",
        "Ada\u{7}",
        "Ada\t",
        "\u{85}Ada",
        "\u{AD}",
        "é",
        "\u{1F600}",
    ] {
        cases.push(order(json!(name), json!(1), json!("1")));
    }
    cases.push(order(json!("a".repeat(200)), json!(1), json!("1")));
    cases.push(order(
        json!(format!(" {}", "a".repeat(200))),
        json!(1),
        json!("1"),
    ));
    for quantity in [
        json!(0),
        json!(1),
        json!(33.0),
        json!(1000),
        json!(1001),
        json!(1.5),
        json!(-1),
    ] {
        cases.push(order(json!("Ada"), quantity, json!("1")));
    }
    for case in cases {
        // As the handler reads a body: from its text.
        let parsed = dofs_core::validation::parse_json_body(case.to_string().as_bytes()).unwrap();
        assert_eq!(
            validator.is_valid(&case),
            dofs_core::validation::validate_order_request(&parsed).is_ok(),
            "schema and handler disagree on {case}"
        );
    }
}
