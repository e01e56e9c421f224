#!/usr/bin/env bash
# The project's one test command (README quick start, .ci/run):
#   1. installs the pinned non-Rust test dependencies into .deps/ (scripts/install-test-deps.sh)
#   2. builds the example binaries the integration tests spawn (target/debug/examples)
#   3. runs every test target (all failures reported, --no-fail-fast):
#      cargo-nextest when installed, else cargo test;
#      doc tests with `cargo test --doc` (nextest cannot run them) when the crate has a lib.
#
# Usage: scripts/test.sh [extra args for the test runner]
#   e.g. scripts/test.sh relay            (a test-name filter)
#        scripts/test.sh -- --nocapture   (with cargo test; nextest takes --no-capture)
# Environment: WARDEN_TEST_RUNNER=cargo    use cargo test even when nextest is installed
#              CARGO_* as usual; the default target dir (target/) is used.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { echo "==> $*" >&2; }

step "installing test dependencies"
scripts/install-test-deps.sh

# Tests read .deps/paths.env themselves; exporting it too lets a test (or a
# command run under this script) find the same paths through the environment.
while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" == *=* && "$line" != \#* ]] || continue
    export "${line%%=*}=${line#*=}"
done < .deps/paths.env

step "cargo build --examples"
cargo build --examples

# The Azure MCP Server tests list the ARM routes azmcp called (and fail on any
# the simulator did not serve); start from an empty list.
AZMCP_ROUTES=target/tmp/azmcp-routes
rm -rf "$AZMCP_ROUTES"

if [[ "${WARDEN_TEST_RUNNER:-}" != cargo ]] && cargo nextest --version >/dev/null 2>&1; then
    # Criterion benches are not tests: they run once each in test mode below.
    # --workspace: Warden and its crates (crates/warden-tlog).
    step "cargo nextest run --workspace --lib --bins --tests --examples --no-fail-fast $*"
    cargo nextest run --workspace --lib --bins --tests --examples --no-fail-fast "$@" || failed=$?
    runner=nextest
else
    step "cargo test --workspace --lib --bins --tests --examples --no-fail-fast $*"
    cargo test --workspace --lib --bins --tests --examples --no-fail-fast "$@" || failed=$?
    runner=cargo
fi

if compgen -G "$AZMCP_ROUTES/*.txt" >/dev/null; then
    step "ARM routes the Azure MCP Server called during the suite (method, pattern, api-version)"
    sort -u "$AZMCP_ROUTES"/*.txt >&2
fi
if [[ ${failed:-0} -ne 0 ]]; then
    exit "$failed"
fi

if [[ -f src/lib.rs ]]; then
    if [[ $runner == cargo ]]; then
        step "cargo test --workspace --doc $*"
        cargo test --workspace --doc "$@"
    elif [[ $# -eq 0 ]]; then
        step "cargo test --workspace --doc"
        cargo test --workspace --doc
    else
        # nextest arguments do not fit cargo test; a narrowed run skips doc tests.
        step "skipping doc tests (extra arguments were given to nextest)"
    fi
fi

if [[ $# -eq 0 ]]; then
    # Each benchmark once, in test mode: they build and their checks hold.
    step "cargo test --benches"
    cargo test --benches
fi
