# syntax=docker/dockerfile:1
#
# The spinlift CLI in a small image: `docker build -t spinlift .`
# deploy/kubernetes/README.md tells how to run it as a sharded Kubernetes Job.
#
# The builder matches the workspace's toolchain (Cargo.toml: edition 2024, rust-version 1.95) and
# the runtime's Debian release, so the binary's glibc is the runtime's.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
# The release profile keeps line tables (Cargo.toml), which make the binary 90 MB instead of 21 MB;
# the image drops them and keeps the symbols (function names in backtraces). For line numbers:
# --build-arg CARGO_PROFILE_RELEASE_STRIP=none
ARG CARGO_PROFILE_RELEASE_STRIP=debuginfo
WORKDIR /src
COPY . .
# Cache mounts keep the crates.io downloads and the compiled dependencies between builds (BuildKit),
# so a change to spinlift's own code recompiles only the workspace crates. --locked: exactly the
# versions of Cargo.lock. Only the `spinlift` binary is built; the copy leaves the cached target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package spinlift --bin spinlift \
    && cp target/release/spinlift /usr/local/bin/spinlift

FROM ${RUNTIME_IMAGE} AS runtime
RUN groupadd --gid 65532 spinlift \
    && useradd --uid 65532 --gid 65532 --no-log-init --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin spinlift
# reqwest uses rustls with rustls-platform-verifier, which on Linux reads the system's roots
# (rustls-native-certs; no webpki-roots compiled in): without a CA bundle no https connection to
# FileSpin or S3 verifies. The builder's bundle (Debian's ca-certificates) is all that is needed.
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /usr/local/bin/spinlift /usr/local/bin/spinlift
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd
# (deploy/kubernetes/job.yaml runs as the same uid and gid).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/spinlift"]
CMD ["--help"]
