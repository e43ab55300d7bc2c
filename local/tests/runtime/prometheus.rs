//! `GET /_dofs/prometheus`, scraped by a real Prometheus (Debian's
//! `prometheus`, which `scripts/tools.sh` installs): the target is up with
//! no scrape error, so the text parses as Prometheus parses it, and the
//! series it stores are the runtime's own figures. Scrapes are not API
//! traffic.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{fast_args, spawn_runtime};

/// A Prometheus server on a free port, stopped on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Prometheus scraping `target` (`host:port`) every second, or
/// `None` (loudly; a failure under `CI=true`) when it is not installed.
fn start_prometheus(dir: &Path, target: &str) -> Option<Prometheus> {
    let binary = Path::new("/usr/bin/prometheus");
    if !binary.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus is not installed (scripts/tools.sh installs Debian's `prometheus`)"
        );
        eprintln!("--- SKIPPED: /usr/bin/prometheus not found; `. scripts/tools.sh` installs it (this would fail under CI=true)");
        return None;
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: dofs\n    metrics_path: /_dofs/prometheus\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Some(Prometheus {
        child,
        url: format!("http://{listen}"),
    })
}

/// The one sample of an instant query, or `None` while it has none.
async fn query(client: &reqwest::Client, prometheus: &str, promql: &str) -> Option<f64> {
    let response = client
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    let value = body["data"]["result"].as_array()?.first()?["value"][1].as_str()?;
    value.parse().ok()
}

/// Our own endpoint's value of one sample line (`name{labels}`).
async fn exposed(client: &reqwest::Client, url: &str, series: &str) -> Option<f64> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_runtime_and_stores_its_figures() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let dir = tempfile::tempdir().unwrap();
    let target = dofs.url("").trim_start_matches("http://").to_owned();
    let Some(prometheus) = start_prometheus(dir.path(), &target) else {
        return;
    };
    let ids = dofs.submit(5).await;
    dofs.poll_terminal(&ids, Duration::from_secs(30))
        .await
        .unwrap();

    let client = reqwest::Client::new();
    let own = dofs.url("/_dofs/prometheus");
    let response = client.get(&own).send().await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );

    // Every order fulfilled, once: the counter Prometheus stored.
    let fulfilled = "dofs_orders_fulfilled_total{function=\"dofs-fulfill_order\"}";
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let up = query(&client, &prometheus.url, "up{job=\"dofs\"}").await;
        let stored = query(&client, &prometheus.url, fulfilled).await;
        if up == Some(1.0) && stored == Some(5.0) {
            break;
        }
        let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
        let targets: Value = match client
            .get(format!("{}/api/v1/targets", prometheus.url))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        assert!(
            Instant::now() < until,
            "up = {up:?}, {fulfilled} = {stored:?}\ntargets: {targets}\nprometheus log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let targets: Value = client
        .get(format!("{}/api/v1/targets", prometheus.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let active = &targets["data"]["activeTargets"][0];
    assert_eq!(active["health"], "up", "{targets}");
    assert_eq!(active["lastError"], "", "{targets}");

    // The AWS service metrics too: each order was validated once.
    let validator = "aws_lambda_invocations_total{function_name=\"dofs-validator\"}";
    assert_eq!(query(&client, &prometheus.url, validator).await, Some(5.0));
    let durations = "aws_lambda_duration_seconds_count{function_name=\"dofs-validator\"}";
    assert_eq!(query(&client, &prometheus.url, durations).await, Some(5.0));

    // And the queue gauges: both queues sampled, the order queue drained.
    let visible = "aws_sqs_approximate_number_of_messages_visible{queue_name=\"dofs-order-queue\"}";
    assert_eq!(query(&client, &prometheus.url, visible).await, Some(0.0));
    let dlq = "aws_sqs_approximate_number_of_messages_visible{queue_name=\"dofs-order-dlq\"}";
    assert_eq!(query(&client, &prometheus.url, dlq).await, Some(0.0));

    // Scrapes are not API requests: the gateway's count stands still while
    // Prometheus goes on scraping.
    let api = "aws_api_gateway_count_total{api_id=\"local\"}";
    let before = exposed(&client, &own, api).await;
    assert!(before.is_some_and(|n| n >= 5.0), "{api}: {before:?}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(exposed(&client, &own, api).await, before);
}
