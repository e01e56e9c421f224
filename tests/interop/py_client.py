#!/usr/bin/env python3
"""Interop client: the official MCP Python SDK against Warden's Streamable HTTP front.

    .deps/venv/bin/python tests/interop/py_client.py URL [--header 'Authorization: Bearer X']...

Connects with `mcp.client.streamable_http.streamable_http_client`, initializes,
lists every tool (following cursors), calls `echo` with {"text": "from python"},
reads `demo://greeting`, gets prompt `greet` with {"name": "Ada"}, and prints one
JSON object on stdout:

    {"server_name": ..., "tools": [...], "echo": ..., "resource": ..., "prompt": ...}

Exit codes: 0 ok; 1 failure (message on stderr); 2 bad arguments; 3 HTTP 401/403.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _mcp_common import (  # noqa: E402
    EXIT_USAGE,
    ClientSession,
    HttpStatusLog,
    ScriptError,
    first_text,
    list_all_tools,
    make_http_client,
    parse_headers,
    quiet_sdk_logging,
    run_main,
    streamable_http_client,
)

PROG = "py_client"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="gateway MCP endpoint, e.g. http://127.0.0.1:8787/mcp")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra HTTP header, repeatable")
    parser.add_argument("--timeout", type=float, default=60.0, help="overall time limit in seconds (default 60)")
    return parser.parse_args(argv)


async def interop(url: str, headers: dict[str, str], statuses: HttpStatusLog) -> dict[str, Any]:
    async with make_http_client(headers, statuses) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = await list_all_tools(session)

                echo = await session.call_tool("echo", {"text": "from python"})
                echo_text = first_text(echo.content)
                if echo.is_error:
                    raise ScriptError(f"tools/call echo returned isError=true: {echo_text!r}")
                if echo_text is None:
                    raise ScriptError(f"tools/call echo returned no text content: {echo!r}")

                resource = await session.read_resource("demo://greeting")
                resource_text = first_text(resource.contents)
                if resource_text is None:
                    raise ScriptError(f"resources/read demo://greeting returned no text contents: {resource!r}")

                prompt = await session.get_prompt("greet", {"name": "Ada"})
                if not prompt.messages:
                    raise ScriptError("prompts/get greet returned no messages")
                prompt_text = first_text([prompt.messages[0].content])
                if prompt_text is None:
                    raise ScriptError(f"prompts/get greet: first message has no text: {prompt.messages[0]!r}")

                return {
                    "server_name": init.server_info.name,
                    "tools": [tool.name for tool in tools],
                    "echo": echo_text,
                    "resource": resource_text,
                    "prompt": prompt_text,
                }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    quiet_sdk_logging()
    try:
        headers = parse_headers(args.header)
    except ScriptError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_main(PROG, lambda statuses: interop(args.url, headers, statuses), args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
