//! The X-Ray trace header, `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`:
//! what API Gateway, Lambda (`_X_AMZN_TRACE_ID`), Step Functions
//! (`traceHeader`) and SQS (`AWSTraceHeader`) carry between hops.
//!
//! A value type of our own: `opentelemetry-aws`'s propagator parses the same
//! text into an OpenTelemetry `SpanContext`, but the local runtime and the
//! handlers also need to read, store and forward the header itself.
//! Format: <https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// A parsed X-Ray trace header. `root` is the trace id (`1-{8 hex time}-{24 hex}`),
/// `parent` the 16-hex id of the calling segment, if any.
///
/// `lineage` is the header's `Lineage` field, kept as it came: Lambda's
/// recursive loop detection counts an event's trips through a function in
/// it ("Lambda uses an AWS X-Ray trace header primitive called Lineage to
/// track the number of times a function has been invoked with an event",
/// <https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html#invocation-recursion-concepts>),
/// so a header we forward in place of Lambda's must carry it on
/// ([`TraceHeader::with_lineage_of`]). It is not ours to interpret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceHeader {
    pub root: String,
    pub parent: Option<String>,
    pub sampled: Option<bool>,
    pub lineage: Option<String>,
}

/// Why a header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceHeaderError {
    #[error("trace header has no Root=")]
    MissingRoot,
    #[error("invalid X-Ray trace id {0:?} (expected 1-{{8 hex}}-{{24 hex}})")]
    InvalidRoot(String),
    #[error("invalid X-Ray parent id {0:?} (expected 16 hex digits)")]
    InvalidParent(String),
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `root` is a well-formed X-Ray trace id.
pub fn is_trace_id(root: &str) -> bool {
    let mut parts = root.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("1"), Some(time), Some(unique), None) if is_hex(time, 8) && is_hex(unique, 24)
    )
}

impl TraceHeader {
    /// A new sampled trace with a fresh X-Ray trace id and no parent.
    pub fn new_root() -> Self {
        Self {
            root: new_trace_id(),
            parent: None,
            sampled: Some(true),
            lineage: None,
        }
    }

    /// The same trace, with `parent` as the calling segment.
    pub fn with_parent(&self, parent: impl Into<String>) -> Self {
        Self {
            root: self.root.clone(),
            parent: Some(parent.into()),
            sampled: self.sampled,
            lineage: self.lineage.clone(),
        }
    }

    /// When the trace began: the epoch seconds in its `Root`
    /// (`1-{8 hex}-…`, "the time of the original request, in Unix epoch
    /// time", <https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html#xray-api-traceids>).
    pub fn started_at(&self) -> Option<SystemTime> {
        let secs = self.root.strip_prefix("1-")?.get(..8)?;
        let secs = u64::from_str_radix(secs, 16).ok()?;
        Some(UNIX_EPOCH + std::time::Duration::from_secs(secs))
    }

    /// This header, carrying `from`'s `Lineage` (when it has one): for a
    /// header sent on in place of the one Lambda gave the invocation, so
    /// Lambda's loop detection still sees the event's lineage.
    pub fn with_lineage_of(mut self, from: Option<&TraceHeader>) -> Self {
        if let Some(lineage) = from.and_then(|h| h.lineage.clone()) {
            self.lineage = Some(lineage);
        }
        self
    }
}

/// A fresh X-Ray trace id: `1-` + epoch seconds (8 hex) + `-` + 96 random bits.
pub fn new_trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("1-{:08x}-{:024x}", secs as u32, random_u128() >> 32)
}

/// A fresh 64-bit segment/span id as 16 hex digits.
pub fn new_segment_id() -> String {
    format!("{:016x}", (random_u128() as u64).max(1))
}

fn random_u128() -> u128 {
    // RandomState is seeded from the OS per instance; two hashes give 128 bits
    // without another dependency.
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut high = RandomState::new().build_hasher();
    high.write_u64(0x9e37_79b9_7f4a_7c15);
    let mut low = RandomState::new().build_hasher();
    low.write_u64(0x2545_f491_4f6c_dd1d);
    (u128::from(high.finish()) << 64) | u128::from(low.finish())
}

impl FromStr for TraceHeader {
    type Err = TraceHeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut root = None;
        let mut parent = None;
        let mut sampled = None;
        let mut lineage = None;
        for part in s.split(';') {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            match key.trim() {
                "Root" => root = Some(value.trim().to_owned()),
                "Parent" => parent = Some(value.trim().to_owned()),
                "Sampled" => {
                    sampled = match value.trim() {
                        "1" => Some(true),
                        "0" => Some(false),
                        _ => None,
                    }
                }
                "Lineage" => lineage = Some(value.trim().to_owned()).filter(|l| !l.is_empty()),
                _ => {} // Self and future keys are not ours to interpret.
            }
        }
        let root = root.ok_or(TraceHeaderError::MissingRoot)?;
        if !is_trace_id(&root) {
            return Err(TraceHeaderError::InvalidRoot(root));
        }
        if let Some(p) = &parent {
            if !is_hex(p, 16) {
                return Err(TraceHeaderError::InvalidParent(p.clone()));
            }
        }
        Ok(Self {
            root,
            parent,
            sampled,
            lineage,
        })
    }
}

impl fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root={}", self.root)?;
        if let Some(parent) = &self.parent {
            write!(f, ";Parent={parent}")?;
        }
        if let Some(sampled) = self.sampled {
            write!(f, ";Sampled={}", u8::from(sampled))?;
        }
        if let Some(lineage) = &self.lineage {
            write!(f, ";Lineage={lineage}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_a_lambda_header() {
        let text = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let header: TraceHeader = text.parse().unwrap();
        assert_eq!(header.root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(header.parent.as_deref(), Some("53995c3f42cd8ad8"));
        assert_eq!(header.sampled, Some(true));
        assert_eq!(header.to_string(), text);
    }

    #[test]
    fn ignores_unknown_keys_and_rejects_bad_ids() {
        let header: TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a:1"
            .parse()
            .unwrap();
        assert_eq!(header.parent, None);
        assert!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Self=1-x;Foo=bar"
                .parse::<TraceHeader>()
                .is_ok(),
            "unknown keys are ignored"
        );
        assert!("Parent=53995c3f42cd8ad8".parse::<TraceHeader>().is_err());
        assert!("Root=abc".parse::<TraceHeader>().is_err());
        assert!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz"
            .parse::<TraceHeader>()
            .is_err());
    }

    #[test]
    fn lineage_round_trips_and_is_carried_on() {
        let text = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5";
        let lambda: TraceHeader = text.parse().unwrap();
        assert_eq!(lambda.lineage.as_deref(), Some("a87bd80c:1|68fd508a:5"));
        assert_eq!(lambda.to_string(), text);
        assert_eq!(lambda.to_string().parse::<TraceHeader>().unwrap(), lambda);
        let child = lambda.with_parent("1111111111111111");
        assert_eq!(child.lineage, lambda.lineage);
        let ours = TraceHeader::new_root().with_lineage_of(Some(&lambda));
        assert_eq!(ours.lineage, lambda.lineage);
        assert!(ours.to_string().ends_with(";Lineage=a87bd80c:1|68fd508a:5"));
        let without = TraceHeader::new_root().with_lineage_of(None);
        assert_eq!(without.lineage, None);
        assert!(!without.to_string().contains("Lineage"));
    }

    #[test]
    fn a_trace_starts_at_its_roots_epoch() {
        let header: TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
        assert_eq!(
            header.started_at(),
            Some(UNIX_EPOCH + std::time::Duration::from_secs(0x5759_e988))
        );
    }

    #[test]
    fn fresh_ids_are_well_formed_and_distinct() {
        let a = TraceHeader::new_root();
        let b = TraceHeader::new_root();
        assert!(is_trace_id(&a.root));
        assert_ne!(a.root, b.root);
        let child = a.with_parent(new_segment_id());
        assert_eq!(child.to_string().parse::<TraceHeader>().unwrap(), child);
    }
}
