//! End-to-end cost of the checkpoint journal: the same small-file workload through the engine with the
//! journal off and on, against the in-process emulator. Small files make the run request-bound, where
//! the journal's fsyncs would show most.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spinlift::sample::{SampleSet, SampleSpec};
use spinlift::{Checkpoint, Engine, EngineConfig, Manifest, RunOptions, Secret, Silent};
use spinlift_emulator::{Emulator, EmulatorConfig};

const FILES: usize = 200;

fn journal_cost(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime.block_on(Emulator::start(EmulatorConfig::default())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![16 * 1024; FILES], seed: 1 }).unwrap();
    let manifest = Manifest::load(&set.manifest).unwrap();
    let mut config = EngineConfig::new(emulator.api_url(), Secret::new(emulator.api_key()));
    config.concurrency = 16;
    config.api_rps = None;
    let engine = Engine::new(config).unwrap();
    let checkpoint = dir.path().join("bench.checkpoint");

    let mut group = c.benchmark_group("e2e_200_files_16KiB");
    group.throughput(Throughput::Elements(FILES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, journal) in [("journal_off", false), ("journal_on", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let _ = std::fs::remove_file(&checkpoint);
                    let mut options = RunOptions::default();
                    options.checkpoint =
                        if journal { Checkpoint::At(checkpoint.clone()) } else { Checkpoint::Off };
                    let started = Instant::now();
                    let report = runtime
                        .block_on(engine.run(
                            &manifest,
                            &options,
                            std::sync::Arc::new(Silent),
                            Default::default(),
                        ))
                        .unwrap();
                    total += started.elapsed();
                    assert_eq!(report.registered(), FILES);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, journal_cost);
criterion_main!(benches);
