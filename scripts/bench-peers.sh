#!/usr/bin/env bash
# Warden beside its peers, side by side in one run: the echo upstream
# called directly, through Warden to the same upstream over HTTP, through
# Warden to a stdio child per session, and through Python `mcp-proxy` (a
# bare relay with no security) to a stdio child, and through HAProxy (a
# relay in C that does no work on the message: the ceiling any proxy
# reaches on the same cores); each at concurrency 1 and 64. Warden runs its
# whole pipeline: RS256 tokens from the dev issuer (a Reader), the baseline
# policies of policies/, risk scoring on, and its SQLite store on disk
# (every intent fsync'd before the call runs). Two more Wardens show what
# one setting changes, on the stdio path: the store on PostgreSQL
# ($WARDEN_BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/test,
# where a database warden_bench_peers is dropped and made again; every
# intent committed before the call runs), and the fast lane off.
# Prints one JSON line per run and then the table BENCHMARKS.md records.
#
# Usage: scripts/bench-peers.sh [CALLS_AT_1 [CALLS_AT_64]]   (default 5000 20000)
# BENCH_WARDEN_BIN=PATH measures another build of `warden serve` (an
# earlier commit's, say) with everything else from this checkout;
# BENCH_BIN_DIR=DIR takes every executable from DIR and builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS1=${1:-5000}
CALLS64=${2:-20000}
MCP_PROXY_VERSION=0.13.0
MCP_FOR_PROXY=1.27.1 # the mcp SDK mcp-proxy 0.13.0 is tested against (it needs mcp<2)

if [ -n "${BENCH_BIN_DIR:-}" ]; then
  R=$BENCH_BIN_DIR
  mkdir -p "$R/examples"
else
  cargo build --release --bin warden --example echo_upstream --example loadgen
  R=$PWD/target/release
fi
export BENCH_WARDEN_BIN=${BENCH_WARDEN_BIN:-$R/warden}

# Python mcp-proxy, pinned, in its own virtual environment under .deps/.
PROXY_ENV=$PWD/.deps/mcp-proxy
if ! "$PROXY_ENV/bin/python" -c "import importlib.metadata as m; assert m.version('mcp-proxy') == '$MCP_PROXY_VERSION'" 2>/dev/null; then
  rm -rf "$PROXY_ENV"
  python3 -m venv "$PROXY_ENV"
  "$PROXY_ENV/bin/pip" install --quiet "mcp-proxy==$MCP_PROXY_VERSION" "mcp==$MCP_FOR_PROXY"
fi

B=$PWD/target/bench-peers
rm -rf "$B"; mkdir -p "$B/http" "$B/stdio" "$B/stdio-pg" "$B/stdio-nolane" "$B/dev"
ADMIN=${WARDEN_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
PG_DB=warden_bench_peers
psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
wait_for() { # url what log
  for _ in $(seq 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$2 did not start:" >&2; cat "$3" >&2; return 1
}

# The upstream (called directly, and by the HTTP-upstream Warden).
$R/examples/echo_upstream --http 127.0.0.1:19051 2>"$B/echo.log" &
pids+=($!)
wait_for http://127.0.0.1:19051/mcp "echo upstream" "$B/echo.log"

. scripts/bench-warden.sh
# The dev issuer (inside an otherwise idle `warden dev`) signs the tokens.
bench_dev_issuer "$B/dev" 19055 19050 19056
pids+=("$BENCH_ISSUER_PID")
TOKEN=$BENCH_TOKEN

warden_for() { # dir port upstream-toml [store-line [server-extra]]
  bench_warden_pipeline "$@"
  pids+=("$BENCH_WARDEN_PID")
  echo "$BENCH_WARDEN_PID" > "$1/pid"
}
STDIO="command = \"$R/examples/echo_upstream\""
warden_for "$B/http" 19052 'url = "http://127.0.0.1:19051/mcp"'
warden_for "$B/stdio" 19053 "$STDIO"
warden_for "$B/stdio-pg" 19058 "$STDIO" "url = \"${ADMIN%/*}/$PG_DB\""
warden_for "$B/stdio-nolane" 19059 "$STDIO" 'path = "warden.db"' 'fast_lane = false'

# mcp-proxy: Streamable HTTP on /mcp in front of one stdio child.
"$PROXY_ENV/bin/mcp-proxy" --host 127.0.0.1 --port 19054 -- "$R/examples/echo_upstream" >"$B/mcp-proxy.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:19054/mcp "mcp-proxy" "$B/mcp-proxy.log"

# HAProxy (Debian's package, installed by scripts/install-test-deps.sh):
# plain HTTP relay with keep-alive on both sides, to the same upstream.
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
cat > "$B/haproxy.cfg" <<CFG
global
  maxconn 1024
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend relay
  bind 127.0.0.1:19057
  default_backend echo
backend echo
  server echo 127.0.0.1:19051
CFG
"$HAPROXY" -f "$B/haproxy.cfg" -db >"$B/haproxy.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:19057/mcp "haproxy" "$B/haproxy.log"

RESULTS=$B/results.jsonl
: > "$RESULTS"
for run in "1 $CALLS1" "64 $CALLS64"; do
  set -- $run
  c=$1 calls=$2
  for path in direct haproxy warden-http warden-stdio warden-stdio-pg warden-stdio-nolane mcp-proxy; do
    auth=()
    case $path in
      direct) url=http://127.0.0.1:19051/mcp ;;
      warden-http) url=http://127.0.0.1:19052/mcp; auth=(--header "Authorization: Bearer $TOKEN") ;;
      warden-stdio) url=http://127.0.0.1:19053/mcp; auth=(--header "Authorization: Bearer $TOKEN") ;;
      warden-stdio-pg) url=http://127.0.0.1:19058/mcp; auth=(--header "Authorization: Bearer $TOKEN") ;;
      warden-stdio-nolane) url=http://127.0.0.1:19059/mcp; auth=(--header "Authorization: Bearer $TOKEN") ;;
      mcp-proxy) url=http://127.0.0.1:19054/mcp ;;
      haproxy) url=http://127.0.0.1:19057/mcp ;;
    esac
    line=$($R/examples/loadgen --url "$url" "${auth[@]}" --concurrency "$c" --calls "$calls" --warmup 20 --json)
    echo "{\"path\":\"$path\",\"result\":$line}" | tee -a "$RESULTS"
  done
done
for path in http stdio stdio-pg stdio-nolane; do
  echo "{\"path\":\"warden-$path\",\"rss_kb\":$(awk '/VmRSS/ {print $2}' /proc/$(cat "$B/$path/pid")/status)}" | tee -a "$RESULTS"
done

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
runs = [r for r in rows if "result" in r]
rss = {r["path"]: r["rss_kb"] for r in rows if "rss_kb" in r}
names = {
    "direct": "direct to the upstream (HTTP)",
    "haproxy": "HAProxy → HTTP upstream (a C relay, no work on the message)",
    "warden-http": "Warden → HTTP upstream",
    "warden-stdio": "Warden → stdio upstream",
    "warden-stdio-pg": "Warden → stdio upstream, store on PostgreSQL",
    "warden-stdio-nolane": "Warden → stdio upstream, fast lane off",
    "mcp-proxy": "Python `mcp-proxy` 0.13.0 → stdio (no security)",
}
print()
print("| path | concurrency | calls/s | × direct | p50 | p99 | + p50 | + p99 | errors |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
ms = lambda us: f"{us / 1000:.2f} ms"
for c in sorted({r["result"]["concurrency"] for r in runs}):
    at = {r["path"]: r["result"] for r in runs if r["result"]["concurrency"] == c}
    d = at["direct"]
    for path, r in at.items():
        l, dl = r["latency_us"], d["latency_us"]
        extra = ("", "") if path == "direct" else (
            "+" + ms(l["p50"] - dl["p50"]), "+" + ms(l["p99"] - dl["p99"]))
        print(f"| {names[path]} | {c} | {r['throughput_per_s']:,.0f} | "
              f"{r['throughput_per_s'] / d['throughput_per_s']:.2f} | {ms(l['p50'])} | "
              f"{ms(l['p99'])} | {extra[0]} | {extra[1]} | {r['errors']} |")
print()
for path, kb in rss.items():
    print(f"{names[path]}: RSS {kb / 1024:.1f} MB after the runs")
PY
