//! `spinlift bench` as a user runs it to size a migration: every pass uploads the whole workload, the
//! figures come out as a table and as JSON, spinlift's as a ratio of the raw client's in the same run.

fn bench(args: &[&str], dir: &std::path::Path) -> (std::process::Output, serde_json::Value) {
    let json = dir.join("bench.json");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_spinlift"))
        .arg("bench")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .arg("--json")
        .arg(&json)
        .env_remove("FILESPIN_API_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let results = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (output, results)
}

#[test]
fn a_small_workload_is_uploaded_by_each_client_and_compared_in_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let (output, results) = bench(&["small", "--count", "40", "--concurrency", "4"], dir.path());

    let workload = &results["workloads"][0];
    assert_eq!(workload["workload"], "small");
    assert_eq!(workload["files"], 40);
    let clients: Vec<&str> =
        workload["clients"].as_array().unwrap().iter().map(|c| c["client"].as_str().unwrap()).collect();
    assert_eq!(clients, ["raw", "spinlift", "spinlift-no-journal"]);
    for client in workload["clients"].as_array().unwrap() {
        // Each pass uploaded and registered the whole workload (4 KiB a file) and measured itself.
        assert_eq!((client["files"].as_u64(), client["failed"].as_u64()), (Some(40), Some(0)), "{client}");
        assert_eq!(client["bytes"], 40 * 4096);
        assert!(client["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{client}");
        assert!(client["latency_p50_ms"].as_f64().unwrap() <= client["latency_p99_ms"].as_f64().unwrap());
    }
    let spinlift_rate = workload["clients"][1]["files_per_s"].as_f64().unwrap();
    let raw_rate = workload["clients"][0]["files_per_s"].as_f64().unwrap();
    let ratio = workload["ratio_to_raw"].as_f64().unwrap();
    assert!((ratio - spinlift_rate / raw_rate).abs() < 1e-9, "the ratio is of the same run's figures");
    // One round: its own figures are the result.
    assert_eq!(workload["ratio_to_raw_rounds"], serde_json::json!([ratio]));
    let cost = workload["journal_cost_percent"].as_f64().unwrap();
    assert_eq!(workload["journal_cost_percent_rounds"], serde_json::json!([cost]));

    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("spinlift ÷ raw:"), "{table}");
    // The generated files stay for the next run (same sizes: not written again).
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_spinlift"))
        .args(["bench", "small", "--count", "40", "--concurrency", "4", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&again.stderr).contains("generating"));
}

#[test]
fn several_rounds_report_the_median_and_each_round_so_noise_can_be_told_from_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (output, results) =
        bench(&["small", "--count", "20", "--concurrency", "4", "--repeat", "3"], dir.path());

    let workload = &results["workloads"][0];
    let values = |key: &str| -> Vec<f64> {
        workload[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    let ratios = values("ratio_to_raw_rounds");
    let costs = values("journal_cost_percent_rounds");
    assert_eq!((ratios.len(), costs.len()), (3, 3), "{workload}");
    assert_eq!(workload["ratio_to_raw"].as_f64().unwrap(), median(ratios.clone()));
    assert_eq!(workload["journal_cost_percent"].as_f64().unwrap(), median(costs));
    let table = String::from_utf8(output.stdout).unwrap();
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(table.contains(&format!("(rounds {low:.2}× …")), "{table}");
}

#[test]
fn a_finished_batch_is_resumed_and_its_memory_per_entry_measured() {
    let dir = tempfile::tempdir().unwrap();
    let (_, results) = bench(&["entries", "--count", "5000"], dir.path());
    let entries = &results["entries"];
    assert_eq!(entries["count"], 5000);
    assert!(entries["peak_rss_bytes"].as_u64().unwrap() >= entries["baseline_rss_bytes"].as_u64().unwrap());
    assert!(entries["bytes_per_entry"].as_f64().is_some(), "{entries}");
}
