#!/usr/bin/env python3
"""A demo MCP server built with the official MCP Python SDK (MCPServer).

    .deps/venv/bin/python tests/interop/py_demo_server.py                   # stdio
    .deps/venv/bin/python tests/interop/py_demo_server.py --http PORT       # Streamable HTTP at http://127.0.0.1:PORT/mcp

It mirrors the demo upstream the interop tests expect: tool `echo` (returns its
`text`), resource `demo://greeting` ("hello from demo") and prompt `greet`
(one user message "Please greet {name}."). Useful to check py_client.py
without the gateway, and as a Python-SDK upstream behind the gateway.
"""

from __future__ import annotations

import argparse
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer(name="py-demo", version="0.1.0")


@server.tool(description="Echo the given text back.")
def echo(text: str) -> str:
    return text


@server.resource("demo://greeting", name="greeting", mime_type="text/plain")
def greeting() -> str:
    return "hello from demo"


@server.prompt(description="Ask the assistant to greet someone.")
def greet(name: str) -> str:
    return f"Please greet {name}."


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve Streamable HTTP on 127.0.0.1:PORT/mcp instead of stdio")
    args = parser.parse_args(argv)
    if args.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
