//! Lambda event payloads as the services send them: API Gateway HTTP API
//! (payload format 2.0) requests and SQS batches (with the system
//! attributes the event source mapping copies from the message).

use serde_json::{json, Value};

/// An HTTP API request event for `method path` with optional body.
pub fn http_request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Value {
    let mut header_map = serde_json::Map::new();
    header_map.insert(
        "host".into(),
        json!("abc123.execute-api.us-east-1.amazonaws.com"),
    );
    header_map.insert("user-agent".into(), json!("dofs-harness/1.0"));
    for (name, value) in headers {
        header_map.insert(name.to_ascii_lowercase(), json!(value));
    }
    let now = chrono::Utc::now();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": header_map,
        "requestContext": {
            "accountId": crate::moto::ACCOUNT,
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "dofs-harness/1.0"
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// `POST /orders` with a JSON body.
pub fn post_order(body: &Value, idempotency_key: Option<&str>) -> Value {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(key) = idempotency_key {
        headers.push(("idempotency-key", key));
    }
    http_request("POST", "/orders", &headers, Some(&body.to_string()))
}

/// `GET /orders/{order_id}`.
pub fn get_order(order_id: &str) -> Value {
    http_request("GET", &format!("/orders/{order_id}"), &[], None)
}

/// A valid order request body.
pub fn order_request() -> Value {
    json!({
        "customer_name": "Ada Lovelace",
        "items": [
            {"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"},
            {"sku": "PEN-7", "quantity": 1, "unit_price": "1.50"}
        ]
    })
}

/// One SQS record for an event source mapping batch.
#[derive(Debug, Clone)]
pub struct SqsRecord {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
    pub trace_header: Option<String>,
}

impl SqsRecord {
    /// A record that was never on a real queue.
    pub fn synthetic(body: impl Into<String>, receive_count: u32) -> Self {
        Self {
            message_id: uuid::Uuid::new_v4().to_string(),
            receipt_handle: uuid::Uuid::new_v4().simple().to_string(),
            body: body.into(),
            receive_count,
            trace_header: None,
        }
    }

    /// A record from a message received from moto (with
    /// `MessageSystemAttributeNames = All`).
    pub fn from_message(message: &aws_sdk_sqs::types::Message) -> Self {
        use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
        let attrs = message.attributes();
        let get = |name: Attr| attrs.and_then(|a| a.get(&name)).cloned();
        Self {
            message_id: message.message_id().unwrap_or_default().to_owned(),
            receipt_handle: message.receipt_handle().unwrap_or_default().to_owned(),
            body: message.body().unwrap_or_default().to_owned(),
            receive_count: get(Attr::ApproximateReceiveCount)
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            trace_header: get(Attr::AwsTraceHeader),
        }
    }
}

/// An SQS event for `records` from the queue `queue_arn`.
pub fn sqs_event(queue_arn: &str, records: &[SqsRecord]) -> Value {
    let now_ms = chrono::Utc::now().timestamp_millis().to_string();
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut attributes = json!({
                "ApproximateReceiveCount": r.receive_count.to_string(),
                "SentTimestamp": now_ms,
                "SenderId": "AROAEXAMPLE:states",
                "ApproximateFirstReceiveTimestamp": now_ms
            });
            if let Some(header) = &r.trace_header {
                attributes["AWSTraceHeader"] = json!(header);
            }
            json!({
                "messageId": r.message_id,
                "receiptHandle": r.receipt_handle,
                "body": r.body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": crate::moto::REGION
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The ARN of a moto queue from its URL (`.../<account>/<name>`).
pub fn queue_arn_from_url(url: &str) -> String {
    let name = url.rsplit('/').next().unwrap_or_default();
    format!(
        "arn:aws:sqs:{}:{}:{name}",
        crate::moto::REGION,
        crate::moto::ACCOUNT
    )
}
