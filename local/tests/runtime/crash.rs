//! `kill -9` at arbitrary moments under load, twenty times over: every
//! accepted order still ends FULFILLED or FAILED exactly once after the
//! restarts.

use std::time::Duration;

use rand::Rng;

use crate::helpers::{fast_args, order_body, Dofs, Harness as _};

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_order_survives_repeated_kill_9() {
    let args = fast_args(0.3);
    let mut dofs = Dofs::spawn(&args);
    let data_dir = dofs.data_dir.clone();
    // Outlives every restart's handle.
    let _dir = dofs.take_dir();
    let mut accepted: Vec<String> = Vec::new();
    let mut rng = rand::rng();
    let started = std::time::Instant::now();
    const ROUNDS: usize = 20;
    for round in 0..ROUNDS {
        // Submit concurrently, crash while requests and work are in flight.
        let submit = {
            let client = dofs.client.clone();
            let url = dofs.url("/orders");
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..25 {
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(order_body(round * 1000 + i).to_string())
                        .send()
                        .await;
                    let Ok(response) = sent else { break };
                    if response.status().as_u16() != 202 {
                        continue;
                    }
                    if let Ok(body) = response.json::<serde_json::Value>().await {
                        if let Some(id) = body["order_id"].as_str() {
                            ids.push(id.to_owned());
                        }
                    }
                }
                ids
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
        dofs.crash();
        accepted.extend(submit.await.unwrap());
        dofs = Dofs::spawn_in(&data_dir, &args);
    }
    assert!(!accepted.is_empty());
    dofs.wait_terminal(&accepted, Duration::from_secs(180))
        .await;
    // A crash can land after an order was committed but before its 202
    // reached the client: the server accepted it all the same, so the
    // guarantees are checked on every order it holds, and every order the
    // client saw accepted must be among them.
    let held: Vec<String> = dofs.cli_json(&["orders"])["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_owned())
        .collect();
    for id in &accepted {
        assert!(held.contains(id), "{id} got a 202 but is not stored");
    }
    let done = dofs.wait_terminal(&held, Duration::from_secs(180)).await;
    let mut failed = 0;
    for id in &held {
        let status = &done[id];
        assert!(
            status == "FULFILLED" || status == "FAILED",
            "{id}: {status}"
        );
        let report = dofs.cli_json(&["order", id]);
        let history = report["order"]["history"].as_array().unwrap();
        let terminal = history
            .iter()
            .filter(|h| h["status"] == "FULFILLED" || h["status"] == "FAILED")
            .count();
        assert_eq!(
            terminal, 1,
            "{id} reached a terminal status {terminal} times"
        );
        if status == "FAILED" {
            failed += 1;
            assert_eq!(report["failed_order"]["order_id"], id.as_str());
        } else {
            assert!(
                report["failed_order"].is_null(),
                "{id} fulfilled yet in failed_orders"
            );
        }
    }
    let failed_rows = dofs.cli_json(&["orders", "--status", "FAILED"]);
    assert_eq!(failed_rows["orders"].as_array().unwrap().len(), failed);
    eprintln!(
        "crash test: {ROUNDS} kill -9 rounds, {} orders accepted ({} held), {failed} FAILED, \
         none lost, none terminal twice, {:.1?}",
        accepted.len(),
        held.len(),
        started.elapsed()
    );
}
