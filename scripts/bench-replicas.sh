#!/usr/bin/env bash
# End-to-end tools/call throughput and latency through several Warden
# replicas on one PostgreSQL behind HAProxy, against one replica, with the
# embedded SQLite store beside them for reference. Every Warden runs the
# whole pipeline (anonymous principal, an allow-all policy, risk scoring on,
# stdio echo upstream); the load generator drives one target at a time.
#
# Targets:
#   sqlite         one Warden on the embedded store (project disk)
#   pg-1           replica 1 of 3 on PostgreSQL, directly
#   pg-1-haproxy   replica 1 alone behind HAProxy (the balancer's own cost)
#   pg-3-haproxy   the three replicas behind HAProxy (sessions stick by Mcp-Session-Id)
#
# Usage: scripts/bench-replicas.sh   [WARDEN_BENCH_RUNS="1:3000 64:12000" (concurrency:calls ...)]
#   (release builds of warden, echo_upstream and loadgen first; PostgreSQL at
#   $WARDEN_BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/test,
#   where a database warden_bench_replicas is dropped and made again; HAProxy
#   from Debian's package, as scripts/install-test-deps.sh installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
R=target/release
ADMIN=${WARDEN_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
DB=warden_bench_replicas
STORE_URL="${ADMIN%/*}/$DB"
HAPROXY=${WARDEN_TEST_HAPROXY:-/usr/sbin/haproxy}
WORK=target/bench-replicas
rm -rf "$WORK"; mkdir -p "$WORK"
psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

$R/warden audit keygen --origin bench/replicas --dir "$WORK/keys" >/dev/null 2>&1

. scripts/bench-warden.sh
start() { # name port store-line
  mkdir -p "$WORK/$1"
  cp "$WORK"/keys/audit-* "$WORK/$1/"
  bench_warden "$WORK/$1" "$2" "$3"
  pids+=("$BENCH_WARDEN_PID")
}

start sqlite 19020 'path = "warden.db"'
start pg-1 19021 "url = \"$STORE_URL\""
start pg-2 19022 "url = \"$STORE_URL\""
start pg-3 19023 "url = \"$STORE_URL\""

cat > "$WORK/haproxy.cfg" <<CFG
global
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend one
  bind 127.0.0.1:19024
  default_backend one
frontend three
  bind 127.0.0.1:19025
  default_backend three
backend one
  server w1 127.0.0.1:19021
backend three
  balance roundrobin
  stick-table type string len 128 size 100k expire 30m
  stick on req.hdr(mcp-session-id)
  stick store-response res.hdr(mcp-session-id)
  server w1 127.0.0.1:19021
  server w2 127.0.0.1:19022
  server w3 127.0.0.1:19023
CFG
"$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:19025/healthz" && break; sleep 0.1; done

echo "# $(nproc) cores, $(uname -r); $("$HAPROXY" -v 2>/dev/null | sed -n 1p); $(psql -tA "$ADMIN" -c 'SHOW server_version')"
# concurrency:calls pairs
for run in ${WARDEN_BENCH_RUNS:-1:3000 64:12000}; do
  c=${run%%:*} n=${run##*:}
  for target in "sqlite 19020" "pg-1 19021" "pg-1-haproxy 19024" "pg-3-haproxy 19025"; do
    set -- $target
    printf '%s c=%s: ' "$1" "$c"
    $R/examples/loadgen --url "http://127.0.0.1:$2/mcp" --concurrency "$c" --calls "$n" --warmup 20 --json
  done
done
# Where the three replicas' work went (sessions stick to one replica each).
for port in 19021 19022 19023; do
  printf 'replica :%s audit records: ' "$port"
  curl -s "127.0.0.1:$port/metrics" | awk '/^warden_audit_records_total/ {n += $2} END {print n + 0}'
done
