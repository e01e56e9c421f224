# Sourced by the bench and profile scripts: one Warden for measuring, with
# the whole pipeline on an allow-all policy, an anonymous principal and the
# stdio echo upstream (release builds in target/release).
#
# bench_warden DIR PORT [STORE_LINE]
#   Writes DIR/w.toml and DIR/policies (audit keys are DIR's: make them
#   first), starts `warden serve` on 127.0.0.1:PORT with RUST_LOG=warn, waits
#   until it is healthy, and leaves its pid in $BENCH_WARDEN_PID. STORE_LINE
#   defaults to the SQLite file DIR/warden.db.
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
  RUST_LOG=warn "$release/warden" serve --config "$dir/w.toml" 2>"$dir/warden.log" &
  BENCH_WARDEN_PID=$!
  for _ in $(seq 200); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "warden in $dir did not start:" >&2
  cat "$dir/warden.log" >&2
  return 1
}
