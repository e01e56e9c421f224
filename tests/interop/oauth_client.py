#!/usr/bin/env python3
"""Interop client: the official MCP Python SDK's OAuth client through Warden's facade, headless.

    .deps/venv/bin/python tests/interop/oauth_client.py URL [--persona NAME] [--tool whoami]
        [--client-metadata-url https://HOST/PATH]

`mcp.client.auth.OAuthClientProvider` does what a real MCP client does on its first 401:
protected-resource metadata, authorization-server metadata, dynamic client registration
(or, with `--client-metadata-url` and a server that advertises
`client_id_metadata_document_supported`, that URL as its client id: a Client ID Metadata
Document, which the server fetches; this script never does), PKCE, the authorization
request, the code exchange at `/token`. Where a real client opens
a browser, `redirect_handler` plays the browser with httpx2 (no automatic redirects,
cookies kept by hand):

    GET  Warden /authorize             -> Warden's consent page (hidden `consent`, `csrf`;
                                          cookie `warden_oauth_csrf`)
    POST Warden /authorize/decision    -> 302 to the dev issuer (cookie `warden_oauth_browser`)
    GET  dev issuer ...&login_hint=P   -> 302 to Warden's /oauth/callback (persona P signs in)
    GET  Warden /oauth/callback        -> 302 to the client's loopback redirect URI

The last Location is not fetched (nothing listens there): its `code`, `state` and `iss`
are what `callback_handler` returns to the SDK. The script then lists the tools and calls
one, and prints one JSON object on stdout:

    {"server_name": ..., "tools": [...], "tool": ..., "text": ..., "is_error": ...,
     "client_id": ..., "scope": ..., "token_type": ..., "access_token_prefix": "wdn_at_",
     "refresh_token": true, "hops": ["GET warden /authorize 200", ...]}

Exit codes: 0 ok; 1 failure (message on stderr); 2 bad arguments; 3 HTTP 401/403.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2  # noqa: E402
from _mcp_common import (  # noqa: E402
    HTTP_TIMEOUT,
    ClientSession,
    HttpStatusLog,
    ScriptError,
    first_text,
    list_all_tools,
    quiet_sdk_logging,
    run_main,
    streamable_http_client,
)
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider  # noqa: E402
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken  # noqa: E402

PROG = "oauth_client"

# The client's loopback redirect URI. Nothing listens on it: the browser stand-in reads the
# code off the last redirect instead of following it.
REDIRECT_URI = "http://127.0.0.1:53682/callback"

CSRF_COOKIE = "warden_oauth_csrf"
BROWSER_COOKIE = "warden_oauth_browser"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="gateway MCP endpoint, e.g. http://127.0.0.1:8787/mcp")
    parser.add_argument("--persona", default="developer", help="user the dev issuer signs in (login_hint)")
    parser.add_argument("--tool", default="whoami", help="tool to call after signing in (default whoami)")
    parser.add_argument("--arguments", default="{}", help="its arguments, as JSON (default {})")
    parser.add_argument(
        "--client-metadata-url",
        default=None,
        help="sign in with this Client ID Metadata Document URL as the client id instead of registering",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="overall time limit in seconds (default 60)")
    return parser.parse_args(argv)


class MemoryStorage:
    """The SDK's `TokenStorage`, in memory: one run, one sign-in."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def hidden_field(page: str, name: str) -> str:
    match = re.search(r'name="' + re.escape(name) + r'"\s+value="([^"]*)"', page)
    if match is None:
        raise ScriptError(f"the consent page has no hidden field {name!r}: {page[:500]!r}")
    return html.unescape(match.group(1))


def cookie_of(response: httpx2.Response, name: str) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        pair = header.split(";", 1)[0]
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None


def location_of(response: httpx2.Response, step: str) -> str:
    if response.status_code not in (301, 302, 303, 307, 308):
        raise ScriptError(f"{step}: expected a redirect, got HTTP {response.status_code}: {response.text[:500]!r}")
    location = response.headers.get("location")
    if not location:
        raise ScriptError(f"{step}: HTTP {response.status_code} without Location")
    return location


class Browser:
    """Plays the user's browser for one authorization request."""

    def __init__(self, warden_origin: str, persona: str) -> None:
        self.warden_origin = warden_origin
        self.persona = persona
        self.hops: list[str] = []
        self.result: AuthorizationCodeResult | None = None

    def _where(self, url: str) -> str:
        parsed = urlparse(url)
        who = "warden" if f"{parsed.scheme}://{parsed.netloc}" == self.warden_origin else "issuer"
        return f"{who} {parsed.path}"

    async def _send(self, http: httpx2.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        response = await http.request(method, url, **kwargs)
        self.hops.append(f"{method} {self._where(url)} {response.status_code}")
        return response

    async def redirect_handler(self, authorization_url: str) -> None:
        if not authorization_url.startswith(self.warden_origin + "/"):
            raise ScriptError(f"the SDK was sent to {authorization_url}, not to Warden ({self.warden_origin})")
        async with httpx2.AsyncClient(follow_redirects=False, timeout=HTTP_TIMEOUT) as http:
            # Warden's consent page (or, for a remembered consent, straight to the issuer).
            consent = await self._send(http, "GET", authorization_url)
            browser_cookie: str | None = None
            if consent.status_code == 200:
                csrf_cookie = cookie_of(consent, CSRF_COOKIE)
                if csrf_cookie is None:
                    raise ScriptError(f"the consent page set no {CSRF_COOKIE} cookie")
                page = consent.text
                decided = await self._send(
                    http,
                    "POST",
                    f"{self.warden_origin}/authorize/decision",
                    headers={"cookie": f"{CSRF_COOKIE}={csrf_cookie}"},
                    data={
                        "consent": hidden_field(page, "consent"),
                        "csrf": hidden_field(page, "csrf"),
                        "decision": "approve",
                    },
                )
                to_issuer = location_of(decided, "the consent decision")
                browser_cookie = cookie_of(decided, BROWSER_COOKIE)
            else:
                to_issuer = location_of(consent, "the authorization request")
                browser_cookie = cookie_of(consent, BROWSER_COOKIE)
            if to_issuer.startswith(REDIRECT_URI):
                query = parse_qs(urlparse(to_issuer).query)
                raise ScriptError(
                    f"Warden sent the browser back to the client: {query.get('error', ['?'])[0]}: "
                    f"{query.get('error_description', [''])[0]} (authorization URL {authorization_url})"
                )
            if browser_cookie is None:
                raise ScriptError(f"Warden set no {BROWSER_COOKIE} cookie before sending the browser to sign in")
            if to_issuer.startswith(self.warden_origin + "/"):
                raise ScriptError(f"expected the sign-in at the dev issuer, was sent to {to_issuer}")
            # The dev issuer: the persona picks their account (as with login_hint at Entra).
            separator = "&" if urlparse(to_issuer).query else "?"
            signed_in = await self._send(
                http, "GET", f"{to_issuer}{separator}{urlencode({'login_hint': self.persona})}"
            )
            callback = location_of(signed_in, "the sign-in at the dev issuer")
            if not callback.startswith(self.warden_origin + "/oauth/callback"):
                raise ScriptError(f"the dev issuer sent the browser to {callback}, not to Warden's callback")
            back = await self._send(http, "GET", callback, headers={"cookie": f"{BROWSER_COOKIE}={browser_cookie}"})
            to_client = location_of(back, "Warden's callback")
        if not to_client.startswith(REDIRECT_URI):
            raise ScriptError(f"Warden sent the browser to {to_client}, not to the client's {REDIRECT_URI}")
        self.hops.append("-> client redirect URI (not fetched)")
        query = parse_qs(urlparse(to_client).query)
        if "error" in query:
            raise ScriptError(f"the authorization ended with {query['error'][0]}: {query.get('error_description', [''])[0]}")
        if "code" not in query:
            raise ScriptError(f"no code in the redirect to the client: {to_client}")
        self.result = AuthorizationCodeResult(
            code=query["code"][0],
            state=query.get("state", [None])[0],
            iss=query.get("iss", [None])[0],
        )

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise ScriptError("the callback came before the browser reached the client's redirect URI")
        return self.result


async def interop(args: argparse.Namespace, statuses: HttpStatusLog) -> dict[str, Any]:
    import json

    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        raise ScriptError(f"--arguments is not JSON: {exc}", 2) from exc
    parsed = urlparse(args.url)
    browser = Browser(f"{parsed.scheme}://{parsed.netloc}", args.persona)
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=args.url,
        client_metadata=OAuthClientMetadata(
            client_name="MCP Python SDK (Warden interop)",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
        client_metadata_url=args.client_metadata_url,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=HTTP_TIMEOUT, event_hooks={"response": [statuses.hook]}) as http:
        async with streamable_http_client(args.url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = await list_all_tools(session)
                result = await session.call_tool(args.tool, arguments)
    tokens = storage.tokens
    if tokens is None:
        raise ScriptError("the SDK stored no tokens")
    return {
        "server_name": init.server_info.name,
        "tools": [tool.name for tool in tools],
        "tool": args.tool,
        "text": first_text(result.content),
        "is_error": bool(result.is_error),
        "client_id": storage.client_info.client_id if storage.client_info else None,
        "scope": tokens.scope,
        "token_type": tokens.token_type,
        "access_token_prefix": tokens.access_token[:7],
        "refresh_token": tokens.refresh_token is not None,
        "hops": browser.hops,
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    quiet_sdk_logging()
    return run_main(PROG, lambda statuses: interop(args, statuses), args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
