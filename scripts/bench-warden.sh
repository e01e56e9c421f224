# Sourced by the bench and profile scripts: one Warden for measuring
# (release builds in target/release).
#
# bench_warden DIR PORT [STORE_LINE]
#   The whole pipeline on an allow-all policy, an anonymous principal and
#   the stdio echo upstream. Writes DIR/w.toml and DIR/policies (audit keys
#   are DIR's: make them first), then starts it with bench_warden_start.
#   STORE_LINE defaults to the SQLite file DIR/warden.db.
#
# bench_warden_start DIR PORT
#   Starts `warden serve --config DIR/w.toml` with RUST_LOG=warn, waits
#   until 127.0.0.1:PORT is healthy, and leaves its pid in
#   $BENCH_WARDEN_PID. The executable is $BENCH_WARDEN_BIN when set (to
#   measure another build), else target/release/warden.
bench_warden() {
  local dir=$1 port=$2 store=${3:-'path = "warden.db"'}
  local release=$PWD/target/release
  mkdir -p "$dir/policies"
  printf '@id("allow-all")\npermit (principal, action, resource);\n' > "$dir/policies/allow.cedar"
  cat > "$dir/w.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
max_sessions = 512
[identity]
allow_anonymous = true
[store]
$store
[audit]
signing_key = "audit-signing.key"
hmac_key = "audit-hmac.key"
[policy]
dir = "policies"
[upstreams.echo]
command = "$release/examples/echo_upstream"
TOML
  bench_warden_start "$dir" "$port"
}

bench_warden_start() {
  local dir=$1 port=$2
  RUST_LOG=warn "${BENCH_WARDEN_BIN:-$PWD/target/release/warden}" serve --config "$dir/w.toml" 2>"$dir/warden.log" &
  BENCH_WARDEN_PID=$!
  for _ in $(seq 200); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "warden in $dir did not start:" >&2
  cat "$dir/warden.log" >&2
  return 1
}
