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
# Prints one JSON line per run and then the table BENCHMARKS.md records,
# with the CPU time each path spends per call: on the server side (the
# relay, if any, and its upstream: for Warden → stdio, its children) and in
# the load generator. On a machine whose cores are all busy, a path keeps
# half of direct throughput only if its server side spends no more per
# call than direct's server side and load generator together.
#
# The paths take turns: each round runs every path once at concurrency 1
# and once at 64, and the table gives each figure's median over the rounds
# (ratios and differences are taken within a round, then their median and
# range), since one run's latency at concurrency 1 moves by ±0.15 ms here.
#
# Usage: scripts/bench-peers.sh [CALLS_AT_1 [CALLS_AT_64 [ROUNDS]]]   (default 5000 20000 3)
# BENCH_WARDEN_BIN=PATH measures another build of `warden serve` (an
# earlier commit's, say) with everything else from this checkout;
# BENCH_BIN_DIR=DIR takes every executable from DIR and builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS1=${1:-5000}
CALLS64=${2:-20000}
ROUNDS=${3:-3}
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
ECHO_PID=$!
pids+=($ECHO_PID)
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
PROXY_PID=$!
pids+=($PROXY_PID)
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
HAPROXY_PID=$!
pids+=($HAPROXY_PID)
wait_for http://127.0.0.1:19057/mcp "haproxy" "$B/haproxy.log"

# CPU time (clock ticks: user + system, children reaped included) of the
# process trees under the pids given: the server side of a path.
tree_ticks() {
  python3 - "$@" <<'PY'
import os, sys
stats = {}
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the name: state, ppid, ..., utime, stime, cutime, cstime.
        stats[int(pid)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
todo, seen = [int(p) for p in sys.argv[1:]], set()
while todo:
    pid = todo.pop()
    if pid in seen or pid not in stats:
        continue
    seen.add(pid)
    todo.extend(child for child, (ppid, _) in stats.items() if ppid == pid)
print(sum(stats[pid][1] for pid in seen))
PY
}
# Children's CPU time of this shell, in milliseconds, into CHILD_MS (what
# `times` prints on its second line: the load generator's, once it has been
# waited for). `times` must run in this shell, not in a subshell of a pipe
# or a command substitution, which would report its own children only; and
# nothing here starts a process, which would count too.
HZ=$(getconf CLK_TCK)
child_ms() {
  local line ms=0 part
  times > "$B/times"
  { read -r _; read -r line; } < "$B/times"
  for part in $line; do # user, then system: "1m2.345s"
    [[ $part =~ ^([0-9]+)m([0-9]+)\.([0-9]{3})s$ ]] || { echo "times: $line" >&2; return 1; }
    ms=$((ms + 10#${BASH_REMATCH[1]} * 60000 + 10#${BASH_REMATCH[2]} * 1000 + 10#${BASH_REMATCH[3]}))
  done
  CHILD_MS=$ms
}

RESULTS=$B/results.jsonl
: > "$RESULTS"
for round in $(seq "$ROUNDS"); do
for run in "1 $CALLS1" "64 $CALLS64"; do
  set -- $run
  c=$1 calls=$2
  for path in direct haproxy warden-http warden-stdio warden-stdio-pg warden-stdio-nolane mcp-proxy; do
    auth=()
    # The server side of each path: the relay (if any) and its upstream.
    case $path in
      direct) url=http://127.0.0.1:19051/mcp; side=($ECHO_PID) ;;
      warden-http) url=http://127.0.0.1:19052/mcp; side=($(cat "$B/http/pid") $ECHO_PID) ;;
      warden-stdio) url=http://127.0.0.1:19053/mcp; side=($(cat "$B/stdio/pid")) ;;
      warden-stdio-pg) url=http://127.0.0.1:19058/mcp; side=($(cat "$B/stdio-pg/pid")) ;;
      warden-stdio-nolane) url=http://127.0.0.1:19059/mcp; side=($(cat "$B/stdio-nolane/pid")) ;;
      mcp-proxy) url=http://127.0.0.1:19054/mcp; side=($PROXY_PID) ;;
      haproxy) url=http://127.0.0.1:19057/mcp; side=($HAPROXY_PID $ECHO_PID) ;;
    esac
    case $path in warden-*) auth=(--header "Authorization: Bearer $TOKEN") ;; esac
    server0=$(tree_ticks "${side[@]}"); child_ms; load0=$CHILD_MS
    line=$($R/examples/loadgen --url "$url" "${auth[@]}" --concurrency "$c" --calls "$calls" --warmup 20 --json)
    child_ms; load1=$CHILD_MS; server1=$(tree_ticks "${side[@]}")
    # CPU per measured call, in µs (warm-up calls and session set-up are
    # counted too: a few percent at these call counts).
    cpu=$(python3 -c "print(f'{{\"server_us\":{($server1 - $server0) * 1e6 / $HZ / $calls:.1f},\"load_us\":{($load1 - $load0) * 1e3 / $calls:.1f}}}')")
    echo "{\"round\":$round,\"path\":\"$path\",\"result\":$line,\"cpu_per_call\":$cpu}" | tee -a "$RESULTS"
  done
done
done
for path in http stdio stdio-pg stdio-nolane; do
  echo "{\"path\":\"warden-$path\",\"rss_kb\":$(awk '/VmRSS/ {print $2}' /proc/$(cat "$B/$path/pid")/status)}" | tee -a "$RESULTS"
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
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
rounds = sorted({r["round"] for r in runs})
# Each path's figures in each round, beside direct's of the same round.
by = {(r["round"], r["path"], r["result"]["concurrency"]): r for r in runs}
def figures(path, c):
    out = []
    for n in rounds:
        r, d = by[(n, path, c)], by[(n, "direct", c)]
        l, dl = r["result"]["latency_us"], d["result"]["latency_us"]
        out.append({
            "calls": r["result"]["throughput_per_s"],
            "ratio": r["result"]["throughput_per_s"] / d["result"]["throughput_per_s"],
            "p50": l["p50"], "p99": l["p99"],
            "extra50": l["p50"] - dl["p50"], "extra99": l["p99"] - dl["p99"],
            "errors": r["result"]["errors"],
            "server": r["cpu_per_call"]["server_us"], "load": r["cpu_per_call"]["load_us"],
        })
    return out
med = lambda xs: statistics.median(xs)
def spread(xs, fmt):
    return fmt(med(xs)) if len(xs) == 1 else f"{fmt(med(xs))} ({fmt(min(xs))} to {fmt(max(xs))})"
ms = lambda us: f"{us / 1000:.2f} ms"
plus = lambda us: ("+" if us >= 0 else "−") + ms(abs(us))
print()
print(f"Medians over {len(rounds)} round(s); ranges in brackets.")
print()
print("| path | concurrency | calls/s | × direct | p50 | p99 | + p50 | + p99 | errors | CPU µs/call: server side | load generator |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
paths = list(dict.fromkeys(r["path"] for r in runs))
for c in sorted({r["result"]["concurrency"] for r in runs}):
    for path in paths:
        f = figures(path, c)
        col = lambda k: [x[k] for x in f]
        ratio, extra = ("1.00", ("", "")) if path == "direct" else (
            spread(col("ratio"), lambda v: f"{v:.2f}"),
            (spread(col("extra50"), plus), spread(col("extra99"), plus)))
        print(f"| {names[path]} | {c} | {med(col('calls')):,.0f} | {ratio} | "
              f"{ms(med(col('p50')))} | {ms(med(col('p99')))} | {extra[0]} | {extra[1]} | "
              f"{sum(col('errors'))} | {med(col('server')):.0f} | {med(col('load')):.0f} |")
print()
for path, kb in rss.items():
    print(f"{names[path]}: RSS {kb / 1024:.1f} MB after the runs")
PY
