"""A walk through Warden against `warden dev`, with the official MCP Python SDK.

    warden dev &                                   # in another terminal
    python examples/walkthrough.py [--dev-json .warden-dev/dev.json] [--warden PATH]

Steps (each printed as it passes; any failure exits 1 with the reason):

1. the reader lists the tools: reads are listed, writes and deletes are not;
2. the developer starts VM web-01 in resource group dev-web: allowed by the
   developer custom role (Microsoft.Compute/virtualMachines/* in dev-*),
   performed by Warden's built-in Azure tools against the ARM simulator;
3. the developer tries to delete VM web-02: denied by policy (the role's
   NotActions), never sent to Azure;
4. when `warden dev` runs the official Azure MCP Server (its tools are
   named `azmcp__*`), the same estate through it: the reader lists the VMs
   of dev-web; the developer updates web-01's tags, and azmcp's own consent
   prompt (an MCP elicitation) is relayed to this client, which accepts; the
   developer may not delete web-02; the security manager's Key Vault secret
   read is held for a security manager's approval (a JIT request), although
   azmcp's arguments name the vault without its resource group. Skipped,
   with a message, when azmcp is not running;
5. the audit log is checkpointed (SIGUSR1), exported as an evidence bundle
   and verified offline with the public key, as an auditor would.

Needs the `mcp` package (the test command installs it into .deps/venv).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx2
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PaginatedRequestParams


class Failed(Exception):
    pass


def step(text: str) -> None:
    print(f"ok  {text}", flush=True)


async def with_session(url: str, token: str, work, elicitation_callback=None):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0, read=120.0))
    async with http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, elicitation_callback=elicitation_callback) as session:
                await session.initialize()
                return await work(session)


def text_of(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def tool_name(tools: list[str], suffix: str) -> str:
    """The client-facing name of a built-in tool (namespaced when Warden fronts several upstreams)."""
    for name in tools:
        if name == suffix or name.endswith(f"__{suffix}"):
            return name
    raise Failed(f"no tool {suffix!r} among {sorted(tools)}")


async def walkthrough(dev: dict, warden: str) -> None:
    url = dev["mcp_url"]
    personas = dev["personas"]
    dev_sub = next(s["id"] for s in dev["subscriptions"] if s["name"] == "Contoso Dev")

    # 1. The reader's tools.
    async def list_tools(session: ClientSession) -> list[str]:
        names: list[str] = []
        cursor = None
        while True:
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            names.extend(t.name for t in page.tools)
            cursor = page.next_cursor
            if not cursor:
                return names

    reader_tools = await with_session(url, personas["reader"]["token"], list_tools)
    vm_get = tool_name(reader_tools, "arm_vm_get")
    if any(name.endswith("arm_vm_delete") or name.endswith("arm_vm_start") for name in reader_tools):
        raise Failed(f"the reader sees tools that change VMs: {sorted(reader_tools)}")
    step(f"reader lists {len(reader_tools)} tools, reads only (e.g. {vm_get})")

    # 2 and 3. The developer.
    developer_tools = await with_session(url, personas["developer"]["token"], list_tools)
    start = tool_name(developer_tools, "arm_vm_start")

    async def developer(session: ClientSession):
        args = {"subscription": dev_sub, "resource-group": "dev-web", "vm-name": "web-01"}
        started = await session.call_tool(start, args)
        if started.is_error:
            raise Failed(f"starting web-01 failed: {text_of(started)}")
        step(f"developer starts VM web-01 in dev-web ({start})")
        delete = start.replace("arm_vm_start", "arm_vm_delete")
        denied = await session.call_tool(delete, {**args, "vm-name": "web-02"})
        message = text_of(denied)
        if not denied.is_error or "Denied by Warden policy" not in message:
            raise Failed(f"deleting web-02 was not denied by policy: {message}")
        step(f"developer may not delete VM web-02: {message.splitlines()[0][:120]}...")

    await with_session(url, personas["developer"]["token"], developer)

    # 4. The same estate through the official Azure MCP Server.
    if any(name.startswith("azmcp__") for name in reader_tools):
        await through_azmcp(dev)
    else:
        print(
            "skip the Azure MCP Server steps: warden dev is not running it "
            "(install it with scripts/install-test-deps.sh, or pass --azure-mcp PATH)",
            flush=True,
        )

    # 5. Export and verify the audit log.
    store, key = dev["store"], dev["audit_public_key"]
    if dev.get("pid"):
        os.kill(int(dev["pid"]), signal.SIGUSR1)  # checkpoint now rather than at the next interval
    deadline = time.monotonic() + 30
    while True:
        check = subprocess.run([warden, "audit", "verify", "--db", store, "--key", key], capture_output=True, text=True)
        if check.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise Failed(f"the log did not verify: {check.stdout}{check.stderr}")
        time.sleep(0.5)
    with tempfile.TemporaryDirectory() as out:
        export = subprocess.run(
            [warden, "audit", "export", "--db", store, "--out", out, "--format", "bundle"],
            capture_output=True,
            text=True,
        )
        if export.returncode != 0:
            raise Failed(f"export failed: {export.stderr}")
        verify = subprocess.run(
            [warden, "audit", "verify", "--bundle", out, "--key", key, "--json"],
            capture_output=True,
            text=True,
        )
        if verify.returncode != 0:
            raise Failed(f"the bundle did not verify: {verify.stdout}{verify.stderr}")
        report = json.loads(verify.stdout)
        if not report.get("ok"):
            raise Failed(f"the bundle's report is not ok: {report}")
        step(f"audit bundle exported and verified offline: {report['records']} records, {report['checkpoints']} checkpoints")


async def through_azmcp(dev: dict) -> None:
    url = dev["mcp_url"]
    personas = dev["personas"]
    dev_sub = next(s["id"] for s in dev["subscriptions"] if s["name"] == "Contoso Dev")
    prod_sub = next(s["id"] for s in dev["subscriptions"] if s["name"] == "Contoso Prod")
    web = {"subscription": dev_sub, "resource-group": "dev-web"}

    async def reader(session: ClientSession):
        listed = await session.call_tool("azmcp__compute_vm_get", web)
        if listed.is_error or "web-01" not in text_of(listed):
            raise Failed(f"the reader's VM list through azmcp failed: {text_of(listed)}")
        step("reader lists the VMs of dev-web through the Azure MCP Server (azmcp__compute_vm_get)")

    await with_session(url, personas["reader"]["token"], reader)

    prompts: list[str] = []

    async def consent(context, params: types.ElicitRequestParams):
        # A person would read the prompt; the walkthrough accepts it.
        prompts.append(params.message)
        return types.ElicitResult(action="accept", content={})

    async def developer(session: ClientSession):
        updated = await session.call_tool("azmcp__compute_vm_update", {**web, "vm-name": "web-01", "tags": "reviewed=yes"})
        if updated.is_error:
            raise Failed(f"the developer's VM update through azmcp failed: {text_of(updated)}")
        if not prompts:
            raise Failed("azmcp's consent prompt did not reach the client")
        step(f"developer updates VM web-01 through azmcp after accepting its prompt: {prompts[0].splitlines()[0][:80]}")
        denied = await session.call_tool("azmcp__compute_vm_delete", {**web, "vm-name": "web-02"})
        message = text_of(denied)
        if not denied.is_error or "Denied by Warden policy" not in message:
            raise Failed(f"deleting web-02 through azmcp was not denied by policy: {message}")
        step("developer may not delete VM web-02 through azmcp either: Denied by Warden policy")

    await with_session(url, personas["developer"]["token"], developer, elicitation_callback=consent)

    async def security_manager(session: ClientSession):
        args = {"subscription": prod_sub, "vault": "kv-security", "secret": "db-password"}
        held = await session.call_tool("azmcp__keyvault_secret_get", args)
        message = text_of(held)
        if not held.is_error or not message.startswith("Held for approval"):
            raise Failed(f"the secret read through azmcp was not held for approval: {message}")
        step(f"security manager's Key Vault secret read through azmcp is held: {message.splitlines()[0][:100]}")

    await with_session(url, personas["security-manager"]["token"], security_manager)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev-json", default=".warden-dev/dev.json", help="the dev.json `warden dev` wrote")
    parser.add_argument("--warden", default="warden", help="the warden executable (for audit export/verify)")
    args = parser.parse_args()
    try:
        dev = json.loads(Path(args.dev_json).read_text())
    except OSError as e:
        print(f"cannot read {args.dev_json}: {e} (is `warden dev` running?)", file=sys.stderr)
        return 1
    try:
        anyio.run(walkthrough, dev, args.warden)
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except BaseException as e:  # anyio wraps failures in exception groups
        leaves = list(e.exceptions) if isinstance(e, BaseExceptionGroup) else [e]
        while any(isinstance(x, BaseExceptionGroup) for x in leaves):
            leaves = [y for x in leaves for y in (x.exceptions if isinstance(x, BaseExceptionGroup) else [x])]
        failed = [x for x in leaves if isinstance(x, Failed)]
        print(f"FAILED: {failed[0] if failed else '; '.join(repr(x) for x in leaves)}", file=sys.stderr)
        return 1
    print("walkthrough passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
