# Conveniences over cargo; cargo alone does everything these do.

# Upload a sample set into the in-process FileSpin emulator and verify it.
demo:
    cargo run --release -- demo

# The test suite CI runs.
test:
    cargo test --workspace

# Formatting and lints as CI checks them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# The end-to-end benchmark: each workload through the raw reference client and spinlift, in the same
# run, against emulators in separate processes; table on stdout, JSON in target/bench.json.
# `just bench small` (or large, mixed, huge, entries) runs one workload.
bench *WORKLOADS:
    cargo run --release -- bench {{WORKLOADS}} --json target/bench.json

# Micro-benchmarks (criterion): state machine, manifest parsing, journal, the upload pipeline vs MD5.
microbench:
    cargo bench --workspace

# Fuzz each target for FUZZ_SECS seconds (needs the nightly toolchain and cargo-fuzz).
fuzz FUZZ_SECS="300":
    cd fuzz && for t in manifest_parse journal_replay policy_decode; do cargo +nightly fuzz run $t -- -max_total_time={{FUZZ_SECS}} -rss_limit_mb=2048 -timeout=10; done

# What CI runs.
ci:
    bash .ci/run
