#!/usr/bin/env python3
"""Probe the Azure MCP Server (azmcp 2.0.5), through Warden or directly.

    .deps/venv/bin/python tests/interop/azmcp_probe.py URL [--header 'Authorization: Bearer X']...
    .deps/venv/bin/python tests/interop/azmcp_probe.py --stdio /path/to/azmcp [--env K=V]...

URL mode connects to a Streamable HTTP endpoint (the gateway in front of azmcp).
--stdio mode spawns `AZMCP server start --mode all` and talks to it over stdio
(no gateway), which is how the facts below were checked.

It initializes, lists every tool (following cursors), then calls one tool that
needs Azure credentials (default `subscription_list` with {}, which has no
required arguments) and prints one JSON object on stdout:

    {"server_name": ..., "tool_count": N,
     "tools": [{"name": ..., "annotations": {...}, "meta": {...}?}, ...],
     "call": {"tool": ..., "arguments": {...}, "is_error": bool, "text": "...",
              "jsonrpc_error": null | {"code": .., "message": ..},
              "transport_error": null | "...", "seconds": float}}

A JSON-RPC error answer to the call is data, not a failure of the script;
so is a failure of the connection during the call (`transport_error`: the
connection closed, the call timed out, or an HTTP error status came back).
Without credentials azmcp 2.0.5 answers within a fraction of a second with a
tool result isError=true whose text is azmcp's JSON envelope {"status":401,
"message":"Authentication failed. ...", ...}.

Exit codes: 0 ok; 1 failure (message on stderr); 2 bad arguments; 3 HTTP 401/403.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT  # noqa: E402

from _mcp_common import (  # noqa: E402
    EXIT_USAGE,
    ClientSession,
    HttpStatusLog,
    MCPError,
    ScriptError,
    describe_exception,
    first_text,
    jsonrpc_error_of,
    list_all_tools,
    make_http_client,
    parse_headers,
    quiet_sdk_logging,
    run_main,
    streamable_http_client,
)

PROG = "azmcp_probe"

# Environment for azmcp in --stdio mode (each can be overridden with --env); the
# same values scripts/install-test-deps.sh writes as WARDEN_AZMCP_ENV_* lines:
# no telemetry upload attempts, credential chain pinned to EnvironmentCredential
# (no browser/broker fallback, no managed-identity endpoint probing, fails in
# well under a second without AZURE_CLIENT_ID/AZURE_TENANT_ID/...), and ICU-free
# globalization so a machine without libicu can run it.
AZMCP_TEST_ENV = {
    "AZURE_MCP_COLLECT_TELEMETRY": "false",
    "AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
    "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT": "1",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("url", nargs="?", help="Streamable HTTP endpoint, e.g. http://127.0.0.1:8787/mcp")
    target.add_argument("--stdio", metavar="AZMCP", help="spawn this azmcp executable directly instead")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra HTTP header (URL mode), repeatable")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra child environment (--stdio mode), repeatable")
    parser.add_argument("--server-args", default="server start --mode all", help="azmcp arguments in --stdio mode (default: %(default)s)")
    parser.add_argument("--tool", default="subscription_list", help="tool to call (default: %(default)s)")
    parser.add_argument("--arguments", default="{}", help="JSON object of tool arguments (default: %(default)s)")
    parser.add_argument("--call-timeout", type=float, default=120.0, help="seconds to wait for the tool call (default 120)")
    parser.add_argument("--timeout", type=float, default=240.0, help="overall time limit in seconds (default 240)")
    return parser.parse_args(argv)


def tool_entry(tool: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": tool.name,
        "annotations": (
            tool.annotations.model_dump(by_alias=True, mode="json", exclude_none=True) if tool.annotations is not None else None
        ),
    }
    meta = getattr(tool, "meta", None)
    if meta:
        entry["meta"] = meta if isinstance(meta, dict) else json.loads(json.dumps(meta, default=str))
    return entry


def sdk_transport_error(exc: MCPError) -> str | None:
    """The errors the SDK makes up itself when the connection fails, rather than ones a server sent."""
    if exc.code == CONNECTION_CLOSED and exc.message == "Connection closed":
        return "connection closed before the answer arrived"
    if exc.code == REQUEST_TIMEOUT and exc.message.startswith("Request ") and exc.message.endswith("timed out"):
        return exc.message
    return None


async def probe_session(
    session: ClientSession,
    tool: str,
    arguments: dict[str, Any],
    call_timeout: float,
    statuses: HttpStatusLog | None = None,
) -> dict[str, Any]:
    init = await session.initialize()
    tools = await list_all_tools(session)

    call: dict[str, Any] = {
        "tool": tool,
        "arguments": arguments,
        "is_error": None,
        "text": None,
        "jsonrpc_error": None,
        "transport_error": None,
    }
    http_errors_before = len(statuses.errors) if statuses is not None else 0
    started = time.monotonic()
    try:
        result = await session.call_tool(tool, arguments, read_timeout_seconds=call_timeout)
    except MCPError as exc:
        transport = sdk_transport_error(exc)
        if transport is not None:
            call["transport_error"] = transport
        else:
            call["jsonrpc_error"] = jsonrpc_error_of(exc)
    except Exception as exc:  # noqa: BLE001 - a broken connection is a finding, not a crash
        call["transport_error"] = describe_exception(exc)
    else:
        call["is_error"] = bool(result.is_error)
        call["text"] = first_text(result.content)
    call["seconds"] = round(time.monotonic() - started, 3)
    if statuses is not None and len(statuses.errors) > http_errors_before:
        # e.g. an HTTP 502 for the POST, which the SDK reports as -32603 "Server returned an error response"
        seen = "; ".join(f"HTTP {code} for {where}" for code, where, _ in statuses.errors[http_errors_before:])
        call["transport_error"] = f"{call['transport_error']}; {seen}" if call["transport_error"] else seen

    return {
        "server_name": init.server_info.name,
        "server_version": init.server_info.version,
        "protocol_version": init.protocol_version,
        "tool_count": len(tools),
        "tools": [tool_entry(t) for t in tools],
        "call": call,
    }


async def probe_http(url: str, headers: dict[str, str], statuses: HttpStatusLog, **kw: Any) -> dict[str, Any]:
    async with make_http_client(headers, statuses) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                return await probe_session(session, statuses=statuses, **kw)


async def probe_stdio(azmcp: str, server_args: list[str], env: dict[str, str], **kw: Any) -> dict[str, Any]:
    from mcp import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=azmcp, args=server_args, env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return await probe_session(session, **kw)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    quiet_sdk_logging()
    try:
        headers = parse_headers(args.header)
        arguments = json.loads(args.arguments)
        if not isinstance(arguments, dict):
            raise ScriptError("--arguments must be a JSON object", EXIT_USAGE)
        env = dict(AZMCP_TEST_ENV)
        for item in args.env:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ScriptError(f"--env must look like K=V, got {item!r}", EXIT_USAGE)
            env[key] = value
    except json.JSONDecodeError as exc:
        print(f"{PROG}: error: --arguments is not JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ScriptError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code

    call = {"tool": args.tool, "arguments": arguments, "call_timeout": args.call_timeout}
    if args.stdio:
        body = lambda statuses: probe_stdio(args.stdio, args.server_args.split(), env, **call)  # noqa: E731
    else:
        body = lambda statuses: probe_http(args.url, headers, statuses, **call)  # noqa: E731
    return run_main(PROG, body, args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
