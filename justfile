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

# Micro-benchmarks (criterion).
bench:
    cargo bench --workspace

# What CI runs.
ci:
    bash .ci/run
