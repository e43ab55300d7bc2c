//! `dofs_telemetry::run` inside the real `lambda_runtime` loop, against a
//! fake Lambda Runtime API on 127.0.0.1: the spans and EMF lines of an
//! invocation are out before its response reaches the Runtime API (after
//! which Lambda may freeze the process), and errors keep their ASL names.
//!
//! Its own test binary: the runtime reads its configuration from process
//! environment variables, and this installs telemetry globally.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};

use dofs_core::PortError;
use dofs_telemetry::{
    metric, record_order_id, MetricsExport, TelemetryConfig, TraceExport, TraceHeader,
};
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// What the fake Runtime API saw when each invocation's outcome arrived.
#[derive(Debug)]
struct Outcome {
    path: String,
    body: Value,
    /// X-Ray documents the daemon had received by then.
    segments: Vec<Value>,
    /// Output lines written by then.
    output: Vec<Value>,
}

struct World {
    events: Vec<(String, Value, TraceHeader)>,
    next: usize,
    outcomes: Vec<Outcome>,
    daemon: UdpSocket,
    output: Capture,
}

impl World {
    fn drain_daemon(&self) -> Vec<Value> {
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::new();
        while let Ok(n) = self.daemon.recv(&mut buf) {
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            let (_, segment) = text.split_once('\n').unwrap();
            out.push(serde_json::from_str(segment).unwrap());
        }
        out
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &str) {
    let mut text = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
}

/// One keep-alive connection of the runtime's HTTP client.
fn serve(stream: TcpStream, world: Arc<Mutex<World>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
        let mut world = world.lock().unwrap();
        if path.ends_with("/invocation/next") {
            let index = world.next;
            world.next += 1;
            match world.events.get(index) {
                Some((request_id, payload, header)) => {
                    let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
                    respond(
                        &mut stream,
                        "200 OK",
                        &[
                            ("lambda-runtime-aws-request-id", request_id.clone()),
                            ("lambda-runtime-deadline-ms", deadline.to_string()),
                            (
                                "lambda-runtime-invoked-function-arn",
                                "arn:aws:lambda:eu-west-1:123456789012:function:dofs-validator"
                                    .to_owned(),
                            ),
                            ("lambda-runtime-trace-id", header.to_string()),
                        ],
                        &payload.to_string(),
                    );
                }
                // Hanging up on /next ends the runtime's loop with an error.
                None => return,
            }
        } else {
            let segments = world.drain_daemon();
            let output = world.output.lines();
            world.outcomes.push(Outcome {
                path,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                segments,
                output,
            });
            respond(&mut stream, "202 Accepted", &[], "{}");
        }
    }
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, PortError> {
    let order_id = event.payload["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    record_order_id(&tracing::Span::current(), &order_id);
    tracing::info!("validating");
    if event.payload["reject"] == true {
        return Err(PortError::rejected("total exceeds the limit"));
    }
    metrics::counter!(metric::ORDERS_VALIDATED).increment(1);
    Ok(json!({"order_id": order_id, "status": "VALIDATED"}))
}

#[tokio::test]
async fn run_flushes_spans_and_metrics_before_the_response_and_reports_errors_by_name() {
    let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon.set_nonblocking(true).unwrap();
    let daemon_addr = daemon.local_addr().unwrap().to_string();
    let output = Capture::default();
    let first = TraceHeader::new_root().with_parent(dofs_telemetry::trace_header::new_segment_id());
    let second =
        TraceHeader::new_root().with_parent(dofs_telemetry::trace_header::new_segment_id());
    let world = Arc::new(Mutex::new(World {
        events: vec![
            (
                "req-1".to_owned(),
                json!({"order_id": "ord-1"}),
                first.clone(),
            ),
            (
                "req-2".to_owned(),
                json!({"order_id": "ord-2", "reject": true}),
                second.clone(),
            ),
        ],
        next: 0,
        outcomes: Vec::new(),
        daemon,
        output: output.clone(),
    }));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let server_world = Arc::clone(&world);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let world = Arc::clone(&server_world);
            std::thread::spawn(move || serve(stream.unwrap(), world));
        }
    });
    std::env::set_var("AWS_LAMBDA_RUNTIME_API", &api);
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "dofs-validator");
    std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");

    let writer = output.clone();
    let telemetry = dofs_telemetry::init_with_writer(
        TelemetryConfig {
            function_name: "validator".to_owned(),
            log_level: "info".to_owned(),
            traces: TraceExport::XrayDaemon { addr: daemon_addr },
            metrics: MetricsExport::Emf,
        },
        move || writer.clone(),
    )
    .unwrap();
    let ended = dofs_telemetry::run(telemetry, handler).await;
    assert!(ended.is_err(), "the fake API ends the loop by hanging up");

    let world = world.lock().unwrap();
    assert_eq!(world.outcomes.len(), 2, "{:#?}", world.outcomes);

    let ok = &world.outcomes[0];
    assert_eq!(ok.path, "/2018-06-01/runtime/invocation/req-1/response");
    assert_eq!(ok.body, json!({"order_id": "ord-1", "status": "VALIDATED"}));
    let segment = ok
        .segments
        .iter()
        .find(|s| s["name"] == "validator")
        .expect("segment sent before the response");
    assert_eq!(segment["trace_id"], first.root.as_str());
    assert_eq!(segment["parent_id"], first.parent.clone().unwrap().as_str());
    assert_eq!(segment["annotations"]["order_id"], "ord-1");
    let emf = ok
        .output
        .iter()
        .find(|l| l.get(metric::ORDERS_VALIDATED).is_some())
        .expect("EMF before the response");
    assert_eq!(emf["order_id"], "ord-1");
    assert_eq!(emf["trace_id"], first.root.as_str());
    assert_eq!(emf["function"], "validator");
    let log = ok
        .output
        .iter()
        .find(|l| l["message"] == "validating")
        .unwrap();
    assert_eq!(log["request_id"], "req-1");
    assert_eq!(log["order_id"], "ord-1");
    assert_eq!(log["cold_start"], true);

    let failed = &world.outcomes[1];
    assert_eq!(failed.path, "/2018-06-01/runtime/invocation/req-2/error");
    assert_eq!(failed.body["errorType"], "OrderRejected");
    assert_eq!(failed.body["errorMessage"], "total exceeds the limit");
    let segment = failed
        .segments
        .iter()
        .find(|s| s["name"] == "validator")
        .expect("error segment before the response");
    assert_eq!(segment["trace_id"], second.root.as_str());
    assert!(
        segment["fault"] == true || segment["error"] == true,
        "the failed invocation is marked: {segment}"
    );
    let error_log = failed
        .output
        .iter()
        .find(|l| l["level"] == "ERROR" && l["request_id"] == "req-2")
        .unwrap();
    assert_eq!(error_log["order_id"], "ord-2");
    assert_eq!(error_log["cold_start"], false);
}
