//! Captured output and a fake X-Ray daemon for the tests.

use std::io::Write;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};

use dofs_telemetry::{
    init_scoped_with_writer, MetricsExport, ScopeGuard, Telemetry, TelemetryConfig, TraceExport,
};
use serde_json::Value;

/// Everything written as logs or EMF, line by line.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

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
    /// Every line, parsed; panics on a line that is not one JSON object.
    pub fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("{text}");
        }
        text.lines()
            .map(|line| {
                let value: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(value.is_object(), "not an object: {line}");
                value
            })
            .collect()
    }

    /// Log lines (EMF lines have `_aws`).
    pub fn logs(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("_aws").is_none())
            .collect()
    }

    pub fn emf(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("_aws").is_some())
            .collect()
    }
}

/// A UDP socket on 127.0.0.1:0 standing in for the X-Ray daemon.
pub struct Daemon {
    socket: UdpSocket,
}

/// One datagram: the protocol header line and the segment document.
#[derive(Debug)]
pub struct Datagram {
    pub header: Value,
    pub segment: Value,
}

impl Daemon {
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        Self { socket }
    }

    pub fn addr(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    /// The datagrams already received (loopback UDP is delivered by the
    /// time `send` returns, so this sees everything sent before the call).
    pub fn received(&self) -> Vec<Datagram> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let text = std::str::from_utf8(&buf[..n]).unwrap();
                    let (header, segment) = text.split_once('\n').expect("header line");
                    out.push(Datagram {
                        header: serde_json::from_str(header).unwrap(),
                        segment: serde_json::from_str(segment).unwrap(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
                Err(e) => panic!("daemon socket: {e}"),
            }
        }
    }
}

pub struct Setup {
    pub telemetry: Telemetry,
    pub output: Capture,
    _guard: ScopeGuard,
}

/// Telemetry for this thread, logs+EMF captured.
pub fn setup(
    function: &str,
    log_level: &str,
    traces: TraceExport,
    metrics: MetricsExport,
) -> Setup {
    let output = Capture::default();
    let writer = output.clone();
    let config = TelemetryConfig {
        function_name: function.to_owned(),
        log_level: log_level.to_owned(),
        traces,
        metrics,
    };
    let (telemetry, guard) = init_scoped_with_writer(config, move || writer.clone()).unwrap();
    Setup {
        telemetry,
        output,
        _guard: guard,
    }
}

pub fn with_daemon(function: &str) -> (Setup, Daemon) {
    let daemon = Daemon::start();
    let setup = setup(
        function,
        "info",
        TraceExport::XrayDaemon {
            addr: daemon.addr(),
        },
        MetricsExport::Emf,
    );
    (setup, daemon)
}
