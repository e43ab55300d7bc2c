//! A stand-in for the X-Ray daemon, and a validator for what it receives.
//!
//! [`XrayDaemon`] binds a UDP socket on 127.0.0.1:0 and collects datagrams
//! with the time they were taken off the socket. It has no reader thread:
//! [`XrayDaemon::drain`] reads whatever the kernel holds, and the test wires
//! it to [`crate::runtime_api::RuntimeApi::on_response`], so the daemon is
//! drained at the very moment a `/response` arrives. A datagram stamped at
//! or before that moment was therefore sent before the response was posted
//! (loopback UDP is in the receiver's buffer once `send` returns); one sent
//! later can only be stamped later. A reader thread would instead stamp
//! whenever the scheduler lets it run, which on a loaded machine can be
//! after the response and would make the ordering check flaky.
//!
//! [`segments`] checks each datagram against the daemon protocol (a
//! `{"format":"json","version":1}` header line, then one document) and the
//! fields X-Ray requires of segments and subsegments, and flattens nested
//! subsegments so tests can look spans up by name.
//!
//! [`AwsSegments`] and [`AssembledTrace`] go one step further, to how X-Ray
//! *assembles* a trace: the harness plays Lambda's and Step Functions' parts
//! (it passes the trace headers they would pass), so it also records the
//! segments they would send themselves — Lambda's `AWS::Lambda` and
//! `AWS::Lambda::Function` segments for each invocation it samples
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html>), Step
//! Functions' execution segment and its per-state subsegments
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/concepts-xray-tracing.html>)
//! — with the ids it hands on as `Parent`. A trace is then our documents and
//! those nodes; [`AssembledTrace::check_one_tree`] says whether every
//! parent resolves inside it and it has one root, as one connected journey
//! must.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use crate::HarnessError;

/// One datagram as it arrived.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub bytes: Vec<u8>,
    /// When the harness took it off the socket (an upper bound of its arrival).
    pub received_at: Instant,
}

/// A UDP socket standing in for the X-Ray daemon; cheap to clone (one socket).
#[derive(Debug, Clone)]
pub struct XrayDaemon {
    socket: Arc<UdpSocket>,
    received: Arc<Mutex<Vec<Datagram>>>,
}

/// The largest datagram X-Ray's daemon accepts is 64 KiB.
const MAX_DATAGRAM: usize = 65_536;

impl XrayDaemon {
    /// Binds 127.0.0.1 on a free port.
    pub fn start() -> Result<XrayDaemon, HarnessError> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(HarnessError::io("binding the X-Ray daemon socket"))?;
        socket.set_nonblocking(true).map_err(HarnessError::io(
            "making the X-Ray daemon socket non-blocking",
        ))?;
        Ok(XrayDaemon {
            socket: Arc::new(socket),
            received: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// `host:port`, the value of `AWS_XRAY_DAEMON_ADDRESS`.
    pub fn address(&self) -> String {
        self.socket
            .local_addr()
            .map(|addr| addr.to_string())
            .unwrap_or_default()
    }

    /// The variable that points a function at this daemon; as an extra
    /// variable it overrides the one in [`crate::function::lambda_env`].
    pub fn env(&self) -> (String, String) {
        ("AWS_XRAY_DAEMON_ADDRESS".to_owned(), self.address())
    }

    /// Takes every datagram waiting on the socket, stamping each with now.
    pub fn drain(&self) {
        let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => received.push(Datagram {
                    bytes: buf[..n].to_vec(),
                    received_at: Instant::now(),
                }),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(err) => {
                    // Nothing to stamp; a test sees the datagram missing.
                    eprintln!("X-Ray daemon stand-in: recv failed: {err}");
                    return;
                }
            }
        }
    }

    /// Drains, then returns every datagram received so far.
    pub fn received(&self) -> Vec<Datagram> {
        self.drain();
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Drains, then forgets every datagram received so far.
    pub fn clear(&self) {
        self.drain();
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// A segment or subsegment from a datagram. A nested subsegment gets its
/// trace id from the document it travels in and its parent from its
/// container.
#[derive(Debug, Clone)]
pub struct Segment {
    pub doc: Value,
    pub trace_id: String,
    pub parent_id: Option<String>,
    /// Whether it was the top-level document of its datagram.
    pub top_level: bool,
    pub received_at: Instant,
}

impl Segment {
    pub fn name(&self) -> &str {
        self.doc["name"].as_str().unwrap_or_default()
    }

    pub fn id(&self) -> &str {
        self.doc["id"].as_str().unwrap_or_default()
    }

    /// `annotations.order_id`, if any.
    pub fn order_id(&self) -> Option<&str> {
        self.doc
            .get("annotations")
            .and_then(|a| a.get("order_id"))
            .and_then(Value::as_str)
    }
}

/// Why a datagram is not a valid X-Ray daemon message.
#[derive(Debug, thiserror::Error)]
#[error("invalid X-Ray datagram ({reason}): {text}")]
pub struct InvalidSegment {
    pub reason: String,
    pub text: String,
}

fn is_hex(value: &Value, len: usize) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `1-` + 8 hex digits (epoch seconds) + `-` + 24 hex digits.
pub fn is_trace_id(text: &str) -> bool {
    let mut parts = text.split('-');
    let ok = |part: Option<&str>, len: usize| {
        part.is_some_and(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    parts.next() == Some("1")
        && ok(parts.next(), 8)
        && ok(parts.next(), 24)
        && parts.next().is_none()
}

/// Every segment and subsegment in `datagrams`, after checking each
/// datagram's protocol header and each document's required fields.
pub fn segments(datagrams: &[Datagram]) -> Result<Vec<Segment>, InvalidSegment> {
    let mut out = Vec::new();
    for datagram in datagrams {
        let text = String::from_utf8_lossy(&datagram.bytes).into_owned();
        let invalid = |reason: &str| InvalidSegment {
            reason: reason.to_owned(),
            text: text.clone(),
        };
        let (header, body) = text
            .split_once('\n')
            .ok_or_else(|| invalid("no header line"))?;
        let header: Value =
            serde_json::from_str(header).map_err(|_| invalid("header line is not JSON"))?;
        if header != serde_json::json!({"format": "json", "version": 1}) {
            return Err(invalid("header is not {\"format\":\"json\",\"version\":1}"));
        }
        let doc: Value = serde_json::from_str(body).map_err(|_| invalid("document is not JSON"))?;
        let trace_id = doc["trace_id"]
            .as_str()
            .filter(|t| is_trace_id(t))
            .ok_or_else(|| invalid("trace_id is not 1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx"))?
            .to_owned();
        if doc["type"] == "subsegment" && !is_hex(&doc["parent_id"], 16) {
            return Err(invalid("an independent subsegment must name its parent_id"));
        }
        let parent_id = doc["parent_id"].as_str().map(str::to_owned);
        walk(
            &doc,
            &trace_id,
            parent_id,
            true,
            datagram.received_at,
            &mut out,
        )
        .map_err(|reason| invalid(&reason))?;
    }
    Ok(out)
}

fn walk(
    doc: &Value,
    trace_id: &str,
    parent_id: Option<String>,
    top_level: bool,
    received_at: Instant,
    out: &mut Vec<Segment>,
) -> Result<(), String> {
    if !is_hex(&doc["id"], 16) {
        return Err(format!("id is not 16 hex digits in {doc}"));
    }
    if doc["name"].as_str().is_none_or(str::is_empty) {
        return Err(format!("no name in {doc}"));
    }
    let start = doc["start_time"].as_f64();
    let end = doc["end_time"].as_f64();
    let in_progress = doc["in_progress"] == true;
    match (start, end) {
        (Some(start), Some(end)) if end >= start => {}
        (Some(_), None) if in_progress => {}
        _ => {
            return Err(format!(
                "start_time/end_time missing or end < start in {doc}"
            ))
        }
    }
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    for child in doc["subsegments"].as_array().into_iter().flatten() {
        walk(child, trace_id, Some(id.clone()), false, received_at, out)?;
    }
    out.push(Segment {
        doc: doc.clone(),
        trace_id: trace_id.to_owned(),
        parent_id,
        top_level,
        received_at,
    });
    Ok(())
}

/// A segment AWS records itself (Lambda's, Step Functions'), played by the
/// harness: its `id` is the `Parent` the harness passes to the next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsNode {
    pub trace_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    /// `AWS::Lambda`, `AWS::Lambda::Function`, `AWS::StepFunctions::StateMachine`, …
    pub origin: String,
}

/// The segments the harness says AWS owns; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct AwsSegments {
    nodes: Arc<Mutex<Vec<AwsNode>>>,
}

/// A fresh 16-hex segment id.
pub fn new_segment_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// A fresh X-Ray trace id.
pub fn new_trace_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("1-{:08x}-{}", secs as u32, &unique[..24])
}

impl AwsSegments {
    /// Records AWS's segment `name` (`origin`) in `trace_id` under
    /// `parent_id`; returns its id.
    pub fn add(&self, trace_id: &str, parent_id: Option<&str>, name: &str, origin: &str) -> String {
        let id = new_segment_id();
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(AwsNode {
                trace_id: trace_id.to_owned(),
                id: id.clone(),
                parent_id: parent_id.map(str::to_owned),
                name: name.to_owned(),
                origin: origin.to_owned(),
            });
        id
    }

    /// Lambda invoking `function` in `trace_id` for a caller whose segment
    /// is `caller` (none for an event source mapping, whose invocation
    /// starts a trace): Lambda's service and function segments, and the
    /// header Lambda gives the function (`Lambda-Runtime-Trace-Id`).
    pub fn lambda_invoke(&self, trace_id: &str, caller: Option<&str>, function: &str) -> String {
        let service = self.add(trace_id, caller, function, "AWS::Lambda");
        let segment = self.add(trace_id, Some(&service), function, "AWS::Lambda::Function");
        format!("Root={trace_id};Parent={segment};Sampled=1")
    }

    pub fn nodes(&self) -> Vec<AwsNode> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One trace as X-Ray assembles it: our documents in it and AWS's nodes.
#[derive(Debug, Clone)]
pub struct AssembledTrace {
    pub trace_id: String,
    pub ours: Vec<Segment>,
    pub aws: Vec<AwsNode>,
}

impl AssembledTrace {
    pub fn assemble(trace_id: &str, ours: &[Segment], aws: &AwsSegments) -> AssembledTrace {
        AssembledTrace {
            trace_id: trace_id.to_owned(),
            ours: ours
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect(),
            aws: aws
                .nodes()
                .into_iter()
                .filter(|n| n.trace_id == trace_id)
                .collect(),
        }
    }

    /// Our top-level segment documents (not subsegments).
    pub fn segments(&self) -> Vec<&Segment> {
        self.ours
            .iter()
            .filter(|s| s.top_level && s.doc.get("type").is_none())
            .collect()
    }

    /// The id of the one root, if every node's parent resolves inside the
    /// trace and exactly one node has none; else why not.
    pub fn check_one_tree(&self) -> Result<String, String> {
        let mut ids: Vec<(&str, Option<&str>, String)> = self
            .ours
            .iter()
            .map(|s| (s.id(), s.parent_id.as_deref(), format!("our {}", s.name())))
            .collect();
        ids.extend(self.aws.iter().map(|n| {
            (
                n.id.as_str(),
                n.parent_id.as_deref(),
                format!("AWS {} ({})", n.name, n.origin),
            )
        }));
        let known: std::collections::HashSet<&str> = ids.iter().map(|(id, _, _)| *id).collect();
        if known.len() != ids.len() {
            return Err(format!("duplicate ids in trace {}", self.trace_id));
        }
        let mut roots = Vec::new();
        let mut dangling = Vec::new();
        for (id, parent, what) in &ids {
            match parent {
                None => roots.push(format!("{what} {id}")),
                Some(parent) if !known.contains(parent) => {
                    dangling.push(format!("{what} {id} -> {parent}"))
                }
                Some(_) => {}
            }
        }
        if !dangling.is_empty() {
            return Err(format!(
                "trace {}: parents not in the trace: {dangling:?}",
                self.trace_id
            ));
        }
        match roots.as_slice() {
            [root] => Ok(root.rsplit(' ').next().unwrap_or_default().to_owned()),
            _ => Err(format!(
                "trace {} has {} roots: {roots:?}",
                self.trace_id,
                roots.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_is_one_tree_when_every_parent_resolves_to_ours_or_aws() {
        let aws = AwsSegments::default();
        let trace = "1-5759e988-bd862e3fe1be46a994272793";
        let header = aws.lambda_invoke(trace, Some("53995c3f42cd8ad8"), "validator");
        let parent = header.split("Parent=").nth(1).unwrap()[..16].to_owned();
        let root = format!(
            r#"{{"id":"53995c3f42cd8ad8","trace_id":"{trace}","name":"api","start_time":1.0,"end_time":2.0}}"#
        );
        let child = format!(
            r#"{{"id":"0000000000000002","trace_id":"{trace}","parent_id":"{parent}","name":"validator","start_time":1.0,"end_time":2.0}}"#
        );
        let found = segments(&[
            datagram(&format!("{HEADER}{root}")),
            datagram(&format!("{HEADER}{child}")),
        ])
        .unwrap();
        let assembled = AssembledTrace::assemble(trace, &found, &aws);
        assert_eq!(assembled.check_one_tree().unwrap(), "53995c3f42cd8ad8");
        assert_eq!(assembled.segments().len(), 2);
        // Without Lambda's segments the validator's parent dangles.
        let alone = AssembledTrace::assemble(trace, &found, &AwsSegments::default());
        assert!(alone
            .check_one_tree()
            .unwrap_err()
            .contains("not in the trace"));
    }

    fn datagram(text: &str) -> Datagram {
        Datagram {
            bytes: text.as_bytes().to_vec(),
            received_at: Instant::now(),
        }
    }

    const HEADER: &str = "{\"format\":\"json\",\"version\":1}\n";

    #[test]
    fn flattens_nested_subsegments_with_their_containers_trace_and_parent() {
        let doc = r#"{"id":"53995c3f42cd8ad8","trace_id":"1-5759e988-bd862e3fe1be46a994272793","name":"api","start_time":1700000000.1,"end_time":1700000000.2,"parent_id":"aaaaaaaaaaaaaaaa","subsegments":[{"id":"0000000000000001","name":"db","start_time":1700000000.1,"end_time":1700000000.15}]}"#;
        let found = segments(&[datagram(&format!("{HEADER}{doc}"))]).unwrap();
        assert_eq!(found.len(), 2);
        let db = found.iter().find(|s| s.name() == "db").unwrap();
        assert_eq!(db.trace_id, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(db.parent_id.as_deref(), Some("53995c3f42cd8ad8"));
        assert!(!db.top_level);
        let api = found.iter().find(|s| s.name() == "api").unwrap();
        assert_eq!(api.parent_id.as_deref(), Some("aaaaaaaaaaaaaaaa"));
        assert!(api.top_level);
    }

    #[test]
    fn rejects_what_x_ray_would_reject() {
        let good = r#"{"id":"53995c3f42cd8ad8","trace_id":"1-5759e988-bd862e3fe1be46a994272793","name":"x","start_time":1.0,"end_time":2.0}"#;
        assert!(segments(&[datagram(&format!("{HEADER}{good}"))]).is_ok());
        let cases = [
            good.to_owned(),
            format!("{{\"format\":\"json\",\"version\":2}}\n{good}"),
            format!("{HEADER}{}", good.replace("53995c3f42cd8ad8", "xyz")),
            format!("{HEADER}{}", good.replace("1-5759e988-", "2-5759e988-")),
            format!(
                "{HEADER}{}",
                good.replace("\"end_time\":2.0", "\"end_time\":0.5")
            ),
            format!(
                "{HEADER}{}",
                good.replace("\"name\":\"x\"", "\"name\":\"\"")
            ),
            format!(
                "{HEADER}{}",
                good.replace("\"name\"", "\"type\":\"subsegment\",\"name\"")
            ),
        ];
        for case in cases {
            assert!(segments(&[datagram(&case)]).is_err(), "accepted: {case}");
        }
    }

    #[test]
    fn the_daemon_stamps_what_was_sent_before_a_drain_no_later_than_the_drain() {
        let daemon = XrayDaemon::start().unwrap();
        let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sender.send_to(b"one", daemon.address()).unwrap();
        daemon.drain();
        let drained_at = Instant::now();
        sender.send_to(b"two", daemon.address()).unwrap();
        let received = daemon.received();
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].bytes, b"one");
        assert!(received[0].received_at <= drained_at);
        assert!(received[1].received_at >= drained_at);
        daemon.clear();
        assert!(daemon.received().is_empty());
        assert_eq!(daemon.env().1, daemon.address());
    }
}
