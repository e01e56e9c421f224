#!/usr/bin/env bash
# The end-to-end latency the policy stage adds to a tools/call, measured with
# the load generator against two `warden dev` gateways that differ only in
# their policy set: one trivial permit (`allow-all`) and the baseline
# policies (`baseline`, the 12 policies of `policies/` over the full catalog schema). Both
# validate the same kind of token (a Reader) and keep their store on tmpfs,
# so that the difference is the resolve and authorize stages.
# Usage: scripts/bench-policy.sh   (cargo build --release --bin warden --example loadgen first)
set -euo pipefail
cd "$(dirname "$0")/.."
R=target/release
BASE=/dev/shm/warden-bench-policy
rm -rf "$BASE"; mkdir -p "$BASE/allow-all/policies"
printf '@id("allow-all")\npermit (principal, action, resource);\n' > "$BASE/allow-all/policies/allow.cedar"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start() { # name port issuer_port arm_port [warden dev options]
  local name=$1 port=$2 issuer=$3 arm=$4; shift 4
  RUST_LOG=warn $R/warden dev --listen "127.0.0.1:$port" --issuer-listen "127.0.0.1:$issuer" \
    --arm-listen "127.0.0.1:$arm" --data-dir "$BASE/$name" "$@" 2>"$BASE/$name.log" &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
}
start allow-all 19020 19021 19024 --policies "$BASE/allow-all/policies"
start baseline 19022 19023 19025
for c in "1 5000" "16 20000"; do
  set -- $c
  for target in "allow-all 19020 19021" "baseline 19022 19023"; do
    set -- $c $target
    token=$($R/warden dev token --user bench --role Reader --issuer-url "http://127.0.0.1:$5" --data-dir "$BASE/$3")
    printf '%s c=%s: ' "$3" "$1"
    $R/examples/loadgen --url "http://127.0.0.1:$4/mcp" --tool sample__echo --header "Authorization: Bearer $token" \
      --concurrency "$1" --calls "$2" --warmup 50 --json
  done
done
for target in "allow-all 19020" "baseline 19022"; do
  set -- $target
  echo "# $1: resolve + authorize (stages 2 and 4)"
  curl -s "127.0.0.1:$2/metrics" | grep -E '^warden_policy_decision_duration_seconds_(sum|count|bucket)'
done
