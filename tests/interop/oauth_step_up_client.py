#!/usr/bin/env python3
"""Interop client: the official MCP Python SDK steps up through Warden's facade, on its own.

    .deps/venv/bin/python tests/interop/oauth_step_up_client.py URL --persona NAME --tool TOOL \
        [--arguments JSON]

Signs in as `oauth_client.py` does (the SDK's `OAuthClientProvider`, the same headless
browser), then calls TOOL twice on one session. The first call is expected to be denied by a
policy that asks for multi-factor authentication: a tool error, and Warden marks the grant.
The second call's request is answered `403` with `WWW-Authenticate: Bearer
error="insufficient_scope", scope="..."`; the SDK's own step-up handling (MCP authorization,
"Step-Up Authorization Flow") authorizes again with the challenged scopes, the browser signs
in again, and the SDK retries the same request with the new token. Nothing in this script
reacts to the 403. It prints one JSON object on stdout:

    {"first": {"is_error": true, "text": ...}, "second": {"is_error": false, "text": ...},
     "scope": ..., "http_errors": [[status, "METHOD URL", "WWW-Authenticate"], ...],
     "authorizations": [{"hops": [...], "entra_query": {...}}, ...]}

Exit codes as `oauth_client.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2  # noqa: E402
from _mcp_common import (  # noqa: E402
    HTTP_TIMEOUT,
    ClientSession,
    HttpStatusLog,
    ScriptError,
    first_text,
    quiet_sdk_logging,
    run_main,
    streamable_http_client,
)
from mcp.client.auth import OAuthClientProvider  # noqa: E402
from mcp.shared.auth import OAuthClientMetadata  # noqa: E402
from oauth_client import REDIRECT_URI, Browser, MemoryStorage  # noqa: E402

PROG = "oauth_step_up_client"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="gateway MCP endpoint, e.g. http://127.0.0.1:8787/mcp")
    parser.add_argument("--persona", required=True, help="user the dev issuer signs in (login_hint)")
    parser.add_argument("--tool", required=True, help="tool whose first call policy denies with a step-up")
    parser.add_argument("--arguments", default="{}", help="its arguments, as JSON (default {})")
    parser.add_argument("--timeout", type=float, default=90.0, help="overall time limit in seconds (default 90)")
    return parser.parse_args(argv)


class RecordingBrowser(Browser):
    """`oauth_client.Browser`, remembering each authorization's hops and where it sent the user at the issuer."""

    def __init__(self, warden_origin: str, persona: str) -> None:
        super().__init__(warden_origin, persona)
        self.authorizations: list[dict[str, Any]] = []

    async def _send(self, http: httpx2.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        if not url.startswith(self.warden_origin + "/"):
            query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
            self.authorizations[-1]["entra_query"] = query
        return await super()._send(http, method, url, **kwargs)

    async def redirect_handler(self, authorization_url: str) -> None:
        query = {k: v[0] for k, v in parse_qs(urlparse(authorization_url).query).items()}
        self.authorizations.append({"scope": query.get("scope"), "entra_query": None})
        start = len(self.hops)
        await super().redirect_handler(authorization_url)
        self.authorizations[-1]["hops"] = self.hops[start:]


async def step_up(args: argparse.Namespace, statuses: HttpStatusLog) -> dict[str, Any]:
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        raise ScriptError(f"--arguments is not JSON: {exc}", 2) from exc
    parsed = urlparse(args.url)
    browser = RecordingBrowser(f"{parsed.scheme}://{parsed.netloc}", args.persona)
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=args.url,
        client_metadata=OAuthClientMetadata(
            client_name="MCP Python SDK (Warden step-up interop)",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=HTTP_TIMEOUT, event_hooks={"response": [statuses.hook]}) as http:
        async with streamable_http_client(args.url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                first = await session.call_tool(args.tool, arguments)
                second = await session.call_tool(args.tool, arguments)
    tokens = storage.tokens
    if tokens is None:
        raise ScriptError("the SDK stored no tokens")
    return {
        "first": {"is_error": bool(first.is_error), "text": first_text(first.content)},
        "second": {"is_error": bool(second.is_error), "text": first_text(second.content)},
        "scope": tokens.scope,
        "http_errors": [list(error) for error in statuses.errors],
        "authorizations": browser.authorizations,
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    quiet_sdk_logging()
    return run_main(PROG, lambda statuses: step_up(args, statuses), args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
