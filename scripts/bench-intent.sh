#!/usr/bin/env bash
# The latency the durable intent write adds to a tools/call, measured with
# the load generator: the same Warden (stdio echo upstream) with its store on
# the project disk (fsync reaches the device) and on tmpfs (fsync is free).
# Usage: scripts/bench-intent.sh [DISK_DIR]   (release build of warden, echo_upstream, loadgen first)
set -euo pipefail
cd "$(dirname "$0")/.."
R=target/release
DISK=${1:-target/bench-intent}
SHM=/dev/shm/warden-bench-intent
rm -rf "$DISK" "$SHM"; mkdir -p "$DISK" "$SHM"
. scripts/bench-warden.sh
run() { # dir port
  local dir=$1 port=$2
  $R/warden audit keygen --origin bench/audit --dir "$dir" >/dev/null 2>&1
  bench_warden "$dir" "$port"
  echo "$BENCH_WARDEN_PID" > "$dir/pid"
}
run "$DISK" 19010
run "$SHM" 19011
trap 'kill $(cat "$DISK/pid") $(cat "$SHM/pid") 2>/dev/null || true' EXIT
for c in "1 5000" "64 20000"; do
  set -- $c
  for target in "disk 19010" "tmpfs 19011"; do
    set -- $c $target
    printf '%s c=%s: ' "$3" "$1"
    $R/examples/loadgen --url "http://127.0.0.1:$4/mcp" --concurrency "$1" --calls "$2" --warmup 20 --json
  done
done
for target in "disk 19010" "tmpfs 19011"; do
  set -- $target
  echo "# $1: intent write histogram"
  curl -s "127.0.0.1:$2/metrics" | grep -E '^warden_audit_(intent_duration_seconds|commit_batch_records)_(sum|count|bucket)'
done
