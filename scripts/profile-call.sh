#!/usr/bin/env bash
# Where a tools/call's time goes inside Warden: a CPU profile of one Warden
# (stdio echo upstream, store on the project disk, risk scoring on, an
# allow-all policy, anonymous principal) under the load generator at
# concurrency 64, sampled with perf and drawn as a flame graph.
# Usage: scripts/profile-call.sh [OUT.svg]   (default docs/profile-call.svg)
#   Needs: release builds of warden, echo_upstream and loadgen; Debian's
#   linux-perf; inferno (cargo install inferno --root .deps/inferno).
set -euo pipefail
cd "$(dirname "$0")/.."
R=target/release
OUT=${1:-docs/profile-call.svg}
INFERNO=${INFERNO:-.deps/inferno/bin}
DIR=target/profile-call
rm -rf "$DIR"; mkdir -p "$DIR/policies"
$R/warden audit keygen --origin profile/audit --dir "$DIR" >/dev/null 2>&1
printf '@id("allow-all")\npermit (principal, action, resource);\n' > "$DIR/policies/allow.cedar"
cat > "$DIR/w.toml" <<TOML
[server]
listen = "127.0.0.1:19030"
max_sessions = 512
[identity]
allow_anonymous = true
[store]
path = "warden.db"
[audit]
signing_key = "audit-signing.key"
hmac_key = "audit-hmac.key"
[policy]
dir = "policies"
[upstreams.echo]
command = "$PWD/$R/examples/echo_upstream"
TOML
RUST_LOG=warn $R/warden serve --config "$DIR/w.toml" 2>"$DIR/warden.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf 127.0.0.1:19030/healthz >/dev/null && break; sleep 0.1; done
$R/examples/loadgen --url http://127.0.0.1:19030/mcp --concurrency 64 --calls 60000 --warmup 20 --json > "$DIR/load.json" &
load=$!
sleep 3
perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$DIR/perf.data" -- sleep 8 2>"$DIR/perf.log"
wait "$load" || true
perf script -i "$DIR/perf.data" 2>/dev/null | "$INFERNO/inferno-collapse-perf" > "$DIR/stacks.folded"
# Frames under 0.2 % of the samples are left out (they would make the file
# large and the picture no clearer).
"$INFERNO/inferno-flamegraph" --minwidth 0.2 --title "Warden: tools/call at concurrency 64 (stdio echo upstream, SQLite on disk)" \
  < "$DIR/stacks.folded" > "$OUT"
echo "load: $(cat "$DIR/load.json")"
echo "flame graph: $OUT"
# The share of samples under each pipeline stage's entry point.
total=$(awk '{n += $NF} END {print n}' "$DIR/stacks.folded")
for stage in 'Authenticator::authenticate' 'Catalog::resolve' 'Lookup::describe' 'Risk::assess' \
             'Engine::authorize' 'Audit::intent' 'Audit::outcome' 'store::writer' 'rmcp::' 'hyper::' 'serde_json::'; do
  n=$({ grep -F "$stage" "$DIR/stacks.folded" || true; } | awk '{n += $NF} END {print n + 0}')
  printf '%-30s %5.1f %%\n' "$stage" "$(echo "100 * $n / $total" | bc -l)"
done
