#!/usr/bin/env bash
# Where a tools/call's time goes inside Warden: a CPU profile of one Warden
# running its whole pipeline, as scripts/bench-peers.sh measures it (RS256
# tokens from the dev issuer for a Reader, the baseline policies of
# policies/, risk scoring on, SQLite on disk, a stdio echo upstream),
# under the load generator at concurrency 64, sampled with perf and drawn
# as a flame graph. Prints the load's figures and each part's share.
# Usage: scripts/profile-call.sh [OUT.svg]   (default docs/profile-call.svg)
#   Needs: release builds of warden, echo_upstream and loadgen; Debian's
#   linux-perf; inferno (cargo install inferno --root .deps/inferno).
set -euo pipefail
cd "$(dirname "$0")/.."
R=$PWD/target/release
OUT=${1:-docs/profile-call.svg}
INFERNO=${INFERNO:-.deps/inferno/bin}
DIR=$PWD/target/profile-call
rm -rf "$DIR"; mkdir -p "$DIR/dev" "$DIR/warden"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

. scripts/bench-warden.sh
# The dev issuer (inside an otherwise idle `warden dev`) signs the token.
bench_dev_issuer "$DIR/dev" 19035 19034 19036
pids+=("$BENCH_ISSUER_PID")
TOKEN=$BENCH_TOKEN
bench_warden_pipeline "$DIR/warden" 19030 "command = \"$R/examples/echo_upstream\""
pid=$BENCH_WARDEN_PID
pids+=("$pid")
$R/examples/loadgen --url http://127.0.0.1:19030/mcp --header "Authorization: Bearer $TOKEN" \
  --concurrency 64 --calls 60000 --warmup 20 --json > "$DIR/load.json" &
load=$!
sleep 3
perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$DIR/perf.data" -- sleep 8 2>"$DIR/perf.log"
wait "$load" || true
perf script -i "$DIR/perf.data" 2>/dev/null | "$INFERNO/inferno-collapse-perf" > "$DIR/stacks.folded"
# Frames under 0.2 % of the samples are left out (they would make the file
# large and the picture no clearer).
"$INFERNO/inferno-flamegraph" --minwidth 0.2 \
  --title "Warden: tools/call at concurrency 64 (Reader token, baseline policies, risk on, SQLite on disk, stdio echo upstream)" \
  < "$DIR/stacks.folded" > "$OUT"
echo "load: $(cat "$DIR/load.json")"
echo "flame graph: $OUT"
# The share of samples with each part on their stack (shares overlap).
total=$(awk '{n += $NF} END {print n}' "$DIR/stacks.folded")
for part in 'warden::pipeline' 'warden::policy' 'warden::gateway' 'rmcp::transport' 'rmcp::service' \
            'warden::audit' 'serde_json' 'mi_|malloc|free' 'write' 'fsync|fdatasync' 'warden-store-wr' \
            'warden::executor' 'warden::risk' 'warden::catalog' 'warden::identity' 'hyper::'; do
  n=$({ grep -E "$part" "$DIR/stacks.folded" || true; } | awk '{n += $NF} END {print n + 0}')
  printf '%-20s %5.1f %%\n' "$part" "$(echo "100 * $n / $total" | bc -l)"
done
