"""Shared helpers for the interop scripts in this folder.

Only the official MCP Python SDK (`mcp`, pinned by scripts/install-test-deps.sh)
and the standard library are used. The scripts are run with the project venv:
`.deps/venv/bin/python tests/interop/<script>.py ...`.

Exit codes shared by the scripts:
  0  success, one JSON object on stdout
  1  any MCP-level or unexpected failure (message on stderr, nothing on stdout)
  2  bad command line
  3  the server answered with HTTP 401 or 403 (message on stderr names the status)
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import PaginatedRequestParams, Tool

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_HTTP_AUTH = 3

# The SDK's defaults (shared/_httpx_utils.py): 30 s connect/write/pool, 300 s read.
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class ScriptError(Exception):
    """A failure with a message meant for a person; `exit_code` is the process exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


def parse_headers(values: list[str]) -> dict[str, str]:
    """Turn repeated `--header 'Name: value'` arguments into a dict."""
    headers: dict[str, str] = {}
    for raw in values:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise ScriptError(f"--header must look like 'Name: value', got {raw!r}", EXIT_USAGE)
        headers[name.strip()] = value.strip()
    return headers


class HttpStatusLog:
    """Remembers HTTP error statuses seen by the client.

    The SDK's Streamable HTTP transport turns a non-2xx answer without a JSON-RPC
    error body into MCPError(-32603, "Server returned an error response"), so the
    status itself is lost; this response hook keeps it for the error message.
    """

    def __init__(self) -> None:
        self.errors: list[tuple[int, str, str]] = []

    async def hook(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            www = response.headers.get("www-authenticate", "")
            self.errors.append((response.status_code, f"{response.request.method} {response.request.url}", www))

    def auth_failure(self) -> tuple[int, str, str] | None:
        for status, where, www in self.errors:
            if status in (401, 403):
                return status, where, www
        return None

    def describe(self) -> str:
        return "; ".join(
            f"HTTP {status} for {where}" + (f" (WWW-Authenticate: {www})" if www else "")
            for status, where, www in self.errors
        )


def make_http_client(headers: dict[str, str], statuses: HttpStatusLog) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        headers=headers or None,
        timeout=HTTP_TIMEOUT,
        event_hooks={"response": [statuses.hook]},
    )


async def list_all_tools(session: ClientSession, max_pages: int = 1000) -> list[Tool]:
    """tools/list, following nextCursor until the server stops sending one."""
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(max_pages):
        params = PaginatedRequestParams(cursor=cursor) if cursor is not None else None
        result = await session.list_tools(params=params)
        tools.extend(result.tools)
        cursor = result.next_cursor
        if not cursor:
            return tools
    raise ScriptError(f"tools/list still returned a cursor after {max_pages} pages")


def first_text(blocks: Any) -> str | None:
    """Text of the first block that has text (content blocks, resource contents)."""
    for block in blocks or []:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            return text
    return None


def jsonrpc_error_of(exc: BaseException) -> dict[str, Any] | None:
    if isinstance(exc, MCPError):
        return {"code": exc.code, "message": exc.message}
    return None


def _leaves(exc: BaseException) -> list[BaseException]:
    """Flatten (nested) exception groups raised out of anyio task groups."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(_leaves(inner))
        return out
    return [exc]


def describe_exception(exc: BaseException) -> str:
    parts = []
    for leaf in _leaves(exc):
        if isinstance(leaf, MCPError):
            parts.append(f"JSON-RPC error {leaf.code}: {leaf.message}")
        else:
            text = str(leaf) or repr(leaf)
            parts.append(f"{type(leaf).__name__}: {text}")
    return "; ".join(parts)


def quiet_sdk_logging() -> None:
    """Keep the SDK's own log records on stderr short (no tracebacks for expected noise)."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s", stream=sys.stderr)
    # azmcp 2.0.5 prints "No X display available. Running in headless mode." on stdout
    # (its WindowHandleProvider); the SDK logs each unparsable stdout line with a traceback.
    logging.getLogger("mcp.client.stdio").setLevel(logging.CRITICAL)


def run_main(
    prog: str,
    body: Callable[[HttpStatusLog], Awaitable[dict[str, Any]]],
    overall_timeout: float,
) -> int:
    """Run `body`, print its dict as one JSON line, map failures to exit codes."""
    statuses = HttpStatusLog()

    async def guarded() -> dict[str, Any]:
        with anyio.fail_after(overall_timeout):
            return await body(statuses)

    try:
        result = anyio.run(guarded)
    except ScriptError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except BaseException as exc:  # noqa: BLE001 - report everything, including exception groups
        leaves = _leaves(exc)
        if any(isinstance(leaf, SystemExit) for leaf in leaves):
            raise
        message = describe_exception(exc)
        if any(isinstance(leaf, TimeoutError) for leaf in leaves):
            message = f"gave up after {overall_timeout:g} s ({message})"
        auth = statuses.auth_failure()
        if auth is not None:
            status, where, www = auth
            extra = f" (WWW-Authenticate: {www})" if www else ""
            print(f"{prog}: error: HTTP {status} for {where}{extra}; {message}", file=sys.stderr)
            return EXIT_HTTP_AUTH
        if statuses.errors:
            message = f"{message}; {statuses.describe()}"
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_FAILURE
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


__all__ = [
    "EXIT_FAILURE",
    "EXIT_HTTP_AUTH",
    "EXIT_USAGE",
    "ClientSession",
    "HttpStatusLog",
    "MCPError",
    "ScriptError",
    "describe_exception",
    "first_text",
    "jsonrpc_error_of",
    "list_all_tools",
    "make_http_client",
    "parse_headers",
    "quiet_sdk_logging",
    "run_main",
    "streamable_http_client",
]
