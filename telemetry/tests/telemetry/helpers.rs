//! Captured output and a fake X-Ray daemon for the tests.

use std::net::UdpSocket;

pub use dofs_telemetry::testing::Capture;
use dofs_telemetry::{
    init_scoped_with_writer, MetricsExport, ScopeGuard, Telemetry, TelemetryConfig, TraceExport,
};
use serde_json::Value;

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
    let output = Capture::new();
    let config = TelemetryConfig {
        function_name: function.to_owned(),
        metric_dimension: None,
        log_level: log_level.to_owned(),
        traces,
        metrics,
        log_sink: None,
    };
    let (telemetry, guard) = init_scoped_with_writer(config, output.clone()).unwrap();
    Setup {
        telemetry,
        output,
        _guard: guard,
    }
}

pub fn with_daemon(function: &str) -> (Setup, Daemon) {
    with_daemon_named(function, None)
}

/// [`with_daemon`] with segments named `segment_name` (the deployed name).
pub fn with_daemon_named(function: &str, segment_name: Option<&str>) -> (Setup, Daemon) {
    let daemon = Daemon::start();
    let setup = setup(
        function,
        "info",
        TraceExport::XrayDaemon {
            addr: daemon.addr(),
            segment_name: segment_name.map(str::to_owned),
        },
        MetricsExport::Emf,
    );
    (setup, daemon)
}
