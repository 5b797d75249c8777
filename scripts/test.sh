#!/usr/bin/env bash
# Runs every test of lora-files on a fresh machine: installs and starts what
# the tests need, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    log "cargo is missing: install Rust (https://rustup.rs) and run again"
    exit 1
  fi
}

run_tests() {
  log "running the tests"
  if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doctests; run them first so the summary of the
    # whole suite is the last thing printed.
    cargo test --workspace --doc --quiet
    cargo nextest run --workspace --all-targets --no-fail-fast
  else
    cargo test --workspace --all-targets --no-fail-fast
  fi
}

ensure_rust
run_tests
