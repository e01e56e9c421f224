#!/usr/bin/env bash
# What the resource-facts stage costs: a Reader's `azure__arm_vm_get`
# through `warden dev` (no Azure MCP Server), where each call's VM is looked
# up in the ARM simulator with Warden's own credential (GET by id) and its
# answer cached for `[facts] ttl`. The load generator times whole calls;
# Warden's histogram `warden_facts_lookup_duration_seconds` times each
# lookup that missed the cache, and `warden_facts_cache_total` counts hits
# and misses. The store is on tmpfs.
# Usage: scripts/bench-facts.sh   (cargo build --release --bin warden --example loadgen first)
set -euo pipefail
cd "$(dirname "$0")/.."
R=target/release
BASE=/dev/shm/warden-bench-facts
rm -rf "$BASE"; mkdir -p "$BASE"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
RUST_LOG=warn $R/warden dev --no-azure-mcp --no-oauth --listen 127.0.0.1:19030 \
  --issuer-listen 127.0.0.1:19031 --arm-listen 127.0.0.1:19032 --data-dir "$BASE/dev" 2>"$BASE/dev.log" &
pids+=($!)
for _ in $(seq 200); do curl -sf 127.0.0.1:19030/healthz >/dev/null && break; sleep 0.1; done
token=$($R/warden dev token --user bench --role Reader --issuer-url http://127.0.0.1:19031 --data-dir "$BASE/dev")
sub=6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c   # the simulator's Contoso Dev (src/azure/sim/seed.rs)
args="{\"subscription\":\"$sub\",\"resource-group\":\"dev-web\",\"vm-name\":\"web-01\"}"
for c in "1 3000" "16 12000"; do
  set -- $c
  # Side by side: a call with no Azure resource (no lookup, no ARM call).
  printf 'sample__echo c=%s: ' "$1"
  $R/examples/loadgen --url http://127.0.0.1:19030/mcp --tool sample__echo \
    --header "Authorization: Bearer $token" --concurrency "$1" --calls "$2" --warmup 20 --json
  printf 'arm_vm_get c=%s: ' "$1"
  $R/examples/loadgen --url http://127.0.0.1:19030/mcp --tool azure__arm_vm_get --args "$args" \
    --header "Authorization: Bearer $token" --concurrency "$1" --calls "$2" --warmup 20 --json
done
echo "# facts: lookups that missed the cache, cache results, completeness"
curl -s 127.0.0.1:19030/metrics | grep -E '^warden_facts_(lookup_duration_seconds_(sum|count|bucket)|cache_total|operations_total)'
