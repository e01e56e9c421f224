# Sourced by the bench and profile scripts: one Warden for measuring
# (release builds in target/release).
#
# bench_warden DIR PORT [STORE_LINE]
#   The whole pipeline on an allow-all policy, an anonymous principal and
#   the stdio echo upstream. Writes DIR/w.toml and DIR/policies (audit keys
#   are DIR's: make them first), then starts it with bench_warden_start.
#   STORE_LINE defaults to the SQLite file DIR/warden.db.
#
# bench_dev_issuer DIR ISSUER_PORT GATEWAY_PORT SIMULATOR_PORT
#   Starts an otherwise idle `warden dev` whose dev issuer listens on
#   127.0.0.1:ISSUER_PORT (its gateway and ARM simulator on the other two
#   ports), waits for it, and leaves its URL in $BENCH_ISSUER, its pid in
#   $BENCH_ISSUER_PID and a Reader's RS256 token in $BENCH_TOKEN.
#
# bench_warden_pipeline DIR PORT UPSTREAM_TOML [STORE_LINE [SERVER_EXTRA]]
#   The whole pipeline as a deployment runs it: tokens of the dev issuer
#   started by bench_dev_issuer, the baseline policies of policies/, risk
#   scoring on, SQLite on disk (or STORE_LINE's store); UPSTREAM_TOML is
#   the body of [upstreams.echo], SERVER_EXTRA more [server] lines. Makes
#   DIR's audit keys, writes DIR/w.toml, starts it with bench_warden_start.
#
# bench_warden_start DIR PORT
#   Starts `warden serve --config DIR/w.toml` with RUST_LOG=warn, waits
#   until 127.0.0.1:PORT is healthy, and leaves its pid in
#   $BENCH_WARDEN_PID. The executable is $BENCH_WARDEN_BIN when set (to
#   measure another build), else target/release/warden.
# Every rate limit is checked (its cost is part of what is measured) but
# set far above any load a benchmark makes (docs/LIMITS.md).
BENCH_LIMITS='[limits]
principal = { rate = 1000000, per = "1s", burst = 1000000 }
principal_tool = { rate = 1000000, per = "1s", burst = 1000000 }
client_app = { rate = 1000000, per = "1s", burst = 1000000 }
source_address = { rate = 1000000, per = "1s", burst = 1000000 }'

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
$BENCH_LIMITS
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

bench_dev_issuer() {
  local dir=$1 port=$2 gateway=$3 simulator=$4
  local bin=${BENCH_WARDEN_BIN:-$PWD/target/release/warden}
  BENCH_ISSUER=http://127.0.0.1:$port
  mkdir -p "$dir"
  RUST_LOG=warn "$bin" dev --no-azure-mcp --no-oauth --listen "127.0.0.1:$gateway" \
    --issuer-listen "127.0.0.1:$port" --arm-listen "127.0.0.1:$simulator" \
    --data-dir "$dir" 2>"$dir/dev.log" &
  BENCH_ISSUER_PID=$!
  for _ in $(seq 300); do
    if curl -s -o /dev/null "$BENCH_ISSUER/.well-known/openid-configuration"; then
      BENCH_TOKEN=$("$bin" dev token --user bench --role Reader --issuer-url "$BENCH_ISSUER" --data-dir "$dir")
      return 0
    fi
    sleep 0.1
  done
  echo "the dev issuer did not start:" >&2
  cat "$dir/dev.log" >&2
  return 1
}

bench_warden_pipeline() {
  local dir=$1 port=$2 upstream=$3 store=${4:-'path = "warden.db"'} server_extra=${5:-}
  mkdir -p "$dir"
  "${BENCH_WARDEN_BIN:-$PWD/target/release/warden}" audit keygen --origin bench/pipeline --dir "$dir" >/dev/null
  cat > "$dir/w.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
max_sessions = 512
$server_extra
[identity]
authority = "$BENCH_ISSUER"
v1_issuer_base = "$BENCH_ISSUER/sts"
tenants = ["11111111-2222-4333-8444-555555555555"]
audiences = ["api://warden-dev"]
required_scopes = ["access_as_user"]
mfa_auth_contexts = ["c1"]
[store]
$store
[audit]
signing_key = "audit-signing.key"
hmac_key = "audit-hmac.key"
[policy]
dir = "$PWD/policies"
[risk]
enabled = true
$BENCH_LIMITS
[upstreams.echo]
$upstream
TOML
  bench_warden_start "$dir" "$port"
}
