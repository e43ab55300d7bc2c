//! The answer for an AWS tool pointed at `dofs serve` (`aws dynamodb
//! list-tables --endpoint-url http://127.0.0.1:3000`, an SDK with
//! `AWS_ENDPOINT_URL`): `dofs` is not an AWS emulator. It runs DOFS's own
//! handlers and workflow behind DOFS's own API, not the AWS service APIs,
//! so such a request gets a JSON error that says so (and where to go: moto,
//! which the tests point the AWS SDKs at), instead of the API's bare 404.
//!
//! An AWS request is told by what every AWS SDK and the AWS CLI send: a
//! SigV4 `Authorization: AWS4-HMAC-SHA256 ...` header
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>),
//! a presigned URL's `X-Amz-Algorithm` query parameter, or the JSON
//! protocols' `X-Amz-Target` header. DOFS's API takes none of them (its
//! deployed routes use no authorizer or a JWT one, never IAM), so nothing a
//! DOFS client sends is refused. The layer sits outside the API Gateway
//! stand-in, whose metrics layer therefore never sees these requests: a
//! misdirected tool does not move the API's `Count` or `4xx`, nor its
//! alarms.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The error type an AWS SDK reads from `x-amzn-ErrorType` or `__type`.
pub const ERROR_TYPE: &str = "NotAnAwsEndpoint";

/// What the error says.
pub const MESSAGE: &str = "dofs is not an AWS endpoint: it runs DOFS's own API \
     (POST /orders, GET /orders/{order_id}) and console (/_dofs/), not the AWS service \
     APIs. Point AWS tools and SDKs at moto (moto_server) or at AWS instead; see \
     \"What dofs is not\" in the README.";

/// Whether `request` comes from an AWS SDK or the AWS CLI.
pub fn is_aws_request(request: &Request) -> bool {
    let headers = request.headers();
    let signed = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("AWS4-HMAC-SHA256"));
    let presigned = request.uri().query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.starts_with("X-Amz-Algorithm="))
    });
    signed || presigned || headers.contains_key("x-amz-target")
}

/// The body: DOFS's error shape, plus the `__type` and `message` AWS's JSON
/// protocols carry, so the AWS CLI prints the message rather than a parse
/// error.
#[derive(Debug, Serialize)]
struct Refusal {
    error: ErrorBody,
    #[serde(rename = "__type")]
    aws_type: &'static str,
    message: &'static str,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    code: &'static str,
    message: &'static str,
    details: [(); 0],
}

/// The refusal of an AWS request: 400, JSON.
pub fn refusal() -> Response {
    let body = Refusal {
        error: ErrorBody {
            code: "not_an_aws_endpoint",
            message: MESSAGE,
            details: [],
        },
        aws_type: ERROR_TYPE,
        message: MESSAGE,
    };
    let mut response = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(ERROR_TYPE));
    response
}

/// Middleware: an AWS request is refused before any route (and the
/// gateway's metrics) sees it; every other request passes.
pub async fn refuse_aws_requests(request: Request, next: Next) -> Response {
    if is_aws_request(&request) {
        tracing::info!(
            method = %request.method(),
            path = request.uri().path(),
            "refused a request from an AWS tool: dofs is not an AWS endpoint"
        );
        return refusal();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], uri: &str) -> Request {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn aws_requests_are_told_from_dofs_clients() {
        let sigv4 = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert!(is_aws_request(&request(&[("authorization", sigv4)], "/")));
        assert!(is_aws_request(&request(
            &[("x-amz-target", "DynamoDB_20120810.ListTables")],
            "/"
        )));
        assert!(is_aws_request(&request(
            &[],
            "/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x"
        )));
        assert!(!is_aws_request(&request(&[], "/orders")));
        assert!(!is_aws_request(&request(
            &[("authorization", "Bearer eyJhbGciOi")],
            "/orders"
        )));
    }
}
