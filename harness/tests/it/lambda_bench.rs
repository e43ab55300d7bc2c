//! `lambda_bench`, run tiny (2 cold starts, 3 warm invocations, debug
//! builds): every function has a Rust row, a Rust row with trace export off
//! and a Python row with every figure, and the ratios and the telemetry
//! cost are there. No timing assertion: the figures are what the benchmark
//! is for.

use dofs_lambda_harness::function::FUNCTIONS;
use dofs_lambda_harness::tools;
use serde_json::Value;

#[test]
fn lambda_bench_reports_every_figure_for_both_runtimes() {
    let test = "lambda_bench_reports_every_figure_for_both_runtimes";
    if tools::require("moto_server", test).is_none() || tools::require("python3", test).is_none() {
        return;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lambda_bench"))
        .args(["--runs", "2", "--invocations", "3", "--json", "--debug"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "lambda_bench failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["starts_per_row"], 2);
    assert_eq!(report["warm_invocations"], 3);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3 * FUNCTIONS.len(), "{report}");
    for (pair, function) in rows.chunks(3).zip(FUNCTIONS) {
        assert_eq!(pair[0]["runtime"], "rust (debug)");
        assert_eq!(pair[1]["runtime"], "rust (traces off)");
        assert_eq!(pair[2]["runtime"], "python+boto3");
        for row in pair {
            assert_eq!(row["function"], function, "{row}");
            assert_eq!(row["starts"], 2, "{row}");
            for spread in [
                "cold_start_ms",
                "first_invoke_ms",
                "peak_rss_after_first_kib",
            ] {
                let median = row[spread]["median"].as_f64().unwrap();
                let max = row[spread]["max"].as_f64().unwrap();
                assert!(median > 0.0 && median <= max, "{spread}: {row}");
            }
            let warm = &row["warm"];
            assert_eq!(warm["invocations"], 3, "{row}");
            assert_eq!(warm["errors"], 0, "every warm invocation answers: {row}");
            assert!(warm["p50_ms"].as_f64().unwrap() <= warm["p99_ms"].as_f64().unwrap());
            // The billed invocation ends after the response.
            assert!(
                warm["p50_ms"].as_f64().unwrap() <= warm["billed_p50_ms"].as_f64().unwrap(),
                "{row}"
            );
            assert!(warm["peak_rss_kib"].as_u64().unwrap() > 0, "{row}");
            // Fewer than 100 invocations: no reading at 100, so no growth.
            assert!(warm["rss_at_100_kib"].is_null(), "{row}");
            assert!(warm["rss_growth_kib"].is_null(), "{row}");
            assert!(warm["rss_at_end_kib"].as_u64().unwrap() > 0, "{row}");
        }
        // The Python handler is zipped as deployed; the Rust zip only when
        // packaged (never for a debug build).
        assert!(pair[2]["zip_bytes"].as_u64().unwrap() > 0);
        assert!(pair[0]["zip_bytes"].is_null());
    }
    let costs = report["telemetry_cost"].as_array().unwrap();
    assert_eq!(costs.len(), FUNCTIONS.len());
    for cost in costs {
        for key in [
            "cold_start_ms",
            "cold_start_traces_off_ms",
            "cold_start_delta_ms",
            "warm_p50_ms",
            "warm_p50_traces_off_ms",
            "warm_p50_overhead_pct",
            "billed_p50_ms",
            "billed_p50_traces_off_ms",
            "billed_p50_overhead_pct",
        ] {
            assert!(cost[key].as_f64().is_some_and(f64::is_finite), "{cost}");
        }
    }
    let ratios = report["python_over_rust"].as_array().unwrap();
    assert_eq!(ratios.len(), FUNCTIONS.len());
    for ratio in ratios {
        for key in ["cold_start", "first_invoke", "warm_p50", "peak_rss"] {
            assert!(ratio[key].as_f64().unwrap() > 0.0, "{ratio}");
        }
    }
}
