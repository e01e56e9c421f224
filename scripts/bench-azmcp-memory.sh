#!/usr/bin/env bash
# Memory per session with the official Azure MCP Server (azmcp) behind
# Warden, in both ways Warden can run it:
#
#   stdio   one azmcp child per client session (`command`, the default)
#   http    one shared azmcp serving every session over Streamable HTTP on a
#           private Unix socket (`serve = "http"`)
#
# For each, a `warden serve` (release build, allow-all policy, anonymous)
# with azmcp as its only upstream; `examples/loadgen --hold` opens SESSIONS
# concurrent MCP sessions (initialize, then tools/list, every page; at most
# OPEN_PARALLEL being opened at once) and keeps them open while the RSS and
# PSS of Warden and all its descendants are summed from /proc. azmcp runs
# offline: `warden dev --no-azure-mcp` provides the ARM simulator, the dev
# issuer and the egress proxy, and dev.json's `azmcp_env` is azmcp's
# environment.
#
#   scripts/bench-azmcp-memory.sh [SESSIONS] [OPEN_PARALLEL]
#
# Needs azmcp under .deps/ (scripts/install-test-deps.sh) and python3.
# BENCH_BIN_DIR=DIR takes warden and examples/loadgen from DIR instead of a
# release build.
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS=${1:-100}
OPEN_PARALLEL=${2:-4}
AZMCP=${AZMCP:-$PWD/.deps/node/node_modules/@azure/mcp-linux-x64/dist/azmcp}
[ -x "$AZMCP" ] || { echo "no azmcp at $AZMCP: run scripts/install-test-deps.sh" >&2; exit 1; }

if [ -n "${BENCH_BIN_DIR:-}" ]; then
  R=$BENCH_BIN_DIR   # binaries built elsewhere (e.g. a debug build, to try the script)
else
  cargo build --release --quiet --bin warden --example loadgen
  R=${CARGO_TARGET_DIR:-$PWD/target}/release
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The simulator, the issuer and the egress proxy.
"$R/warden" dev --data-dir "$WORK/dev" --no-azure-mcp --no-oauth \
  --listen "127.0.0.1:$(free_port)" --issuer-listen "127.0.0.1:$(free_port)" \
  --arm-listen "127.0.0.1:$(free_port)" >"$WORK/dev.out" 2>"$WORK/dev.log" &
PIDS+=($!)
for _ in $(seq 300); do [ -s "$WORK/dev/dev.json" ] && break; sleep 0.1; done
[ -s "$WORK/dev/dev.json" ] || { echo "warden dev did not start" >&2; cat "$WORK/dev.log" >&2; exit 1; }

# PID's descendants, PID included, one per line.
tree() {
  local all
  all=$(for stat in /proc/[0-9]*/stat; do
    awk '{sub(/.*\) /, ""); print FILENAME, $2}' "$stat" 2>/dev/null
  done | sed 's|/proc/\([0-9]*\)/stat|\1|')
  local queue=("$1") out=()
  while [ ${#queue[@]} -gt 0 ]; do
    local pid=${queue[0]}; queue=("${queue[@]:1}")
    out+=("$pid")
    while read -r child parent; do
      [ "$parent" = "$pid" ] && queue+=("$child")
    done <<<"$all"
  done
  printf '%s\n' "${out[@]}"
}

# "processes rss_kib pss_kib azmcp_processes" for PID and its descendants.
measure() {
  local procs=0 rss=0 pss=0 azmcp=0 pid r p
  for pid in $(tree "$1"); do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    p=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
    [ -n "$r" ] || continue
    procs=$((procs + 1)); rss=$((rss + r)); pss=$((pss + ${p:-0}))
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$AZMCP")" ] && azmcp=$((azmcp + 1))
  done
  echo "$procs $rss $pss $azmcp"
}

run_mode() {
  local mode=$1 dir="$WORK/$1" port
  port=$(free_port)
  mkdir -p "$dir/policies"
  "$R/warden" audit keygen --origin bench/azmcp --dir "$dir" >/dev/null 2>&1
  printf '@id("allow-all")\npermit (principal, action, resource);\n' >"$dir/policies/allow.cedar"
  python3 - "$WORK/dev/dev.json" "$AZMCP" "$mode" "$port" >"$dir/w.toml" <<'PY'
import json, sys
dev, azmcp, mode, port = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
q = json.dumps  # a TOML basic string is a JSON string
env = dict(dev["azmcp_env"])
args = ["server", "start", "--mode", "all"]
extra = ""
if mode == "http":
    args += ["--transport", "http", "--dangerously-disable-http-incoming-auth"]
    env["Kestrel__Endpoints__warden__Url"] = "http://unix:{socket}"
    env["AZURE_MCP_DANGEROUSLY_DISABLE_HTTPS_REDIRECTION"] = "true"
    extra = 'serve = "http"\nlisten = "unix"\nmcp_path = "/"\n'
print(f"""[server]
listen = "127.0.0.1:{port}"
max_sessions = 512
session_idle_timeout = "1h"
upstream_init_timeout = "300s"
[identity]
allow_anonymous = true
[store]
path = "warden.db"
[audit]
signing_key = "audit-signing.key"
hmac_key = "audit-hmac.key"
[policy]
dir = "policies"
[upstreams.azmcp]
command = {q(azmcp)}
args = [{", ".join(q(a) for a in args)}]
env = {{ {", ".join(f"{q(k)} = {q(v)}" for k, v in sorted(env.items()))} }}
{extra}""")
PY
  RUST_LOG=warn "$R/warden" serve --config "$dir/w.toml" 2>"$dir/warden.log" &
  local warden=$!
  PIDS+=("$warden")
  for _ in $(seq 600); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "127.0.0.1:$port/healthz" >/dev/null || { echo "warden ($mode) did not start" >&2; cat "$dir/warden.log" >&2; exit 1; }
  sleep 2
  read -r p0 rss0 pss0 _ <<<"$(measure "$warden")"

  mkfifo "$dir/hold"
  "$R/examples/loadgen" --url "http://127.0.0.1:$port/mcp" --concurrency "$SESSIONS" \
    --hold --open-parallel "$OPEN_PARALLEL" --timeout 600 <"$dir/hold" >"$dir/loadgen.out" &
  local loadgen=$!
  PIDS+=("$loadgen")
  exec 3>"$dir/hold"
  for _ in $(seq 6000); do [ -s "$dir/loadgen.out" ] && break; sleep 0.1; done
  sleep 5
  read -r procs rss pss azmcp <<<"$(measure "$warden")"
  local held
  held=$(head -1 "$dir/loadgen.out")
  exec 3>&-
  wait "$loadgen" || true
  kill "$warden"; wait "$warden" || true

  python3 - "$mode" "$SESSIONS" "$held" "$p0" "$rss0" "$pss0" "$procs" "$rss" "$pss" "$azmcp" <<'PY'
import json, sys
mode, n, held = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
p0, rss0, pss0, procs, rss, pss, azmcp = map(int, sys.argv[4:])
mib = lambda kib: kib / 1024
print(f"{mode:5}  sessions open {held['sessions']}/{n} (failed {held['failed']}, {held['tools']} tools each)")
print(f"       idle (0 sessions):  {p0} processes, RSS {mib(rss0):8.1f} MiB, PSS {mib(pss0):8.1f} MiB")
print(f"       {n} sessions:       {procs} processes ({azmcp} azmcp), RSS {mib(rss):8.1f} MiB, PSS {mib(pss):8.1f} MiB")
print(f"       per session:        RSS {mib(rss) / n:6.1f} MiB total/{n}, {mib(rss - rss0) / n:6.1f} MiB above idle; "
      f"PSS {mib(pss - pss0) / n:6.1f} MiB above idle")
if held.get("first_error"):
    print(f"       first error: {held['first_error']}")
PY
}

echo "machine: $(nproc) vCPU, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); azmcp $("$AZMCP" --version 2>/dev/null | head -1)"
for mode in stdio http; do
  run_mode "$mode"
done
