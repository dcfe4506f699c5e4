"""A real MCP server for the tests and the bench: the official Python SDK (`mcp` on PyPI), Streamable
HTTP on loopback. `python3 tests/support/mcp_server.py PORT [--stateless]`; prints `ready` once it
listens.

Its tools: `whoami` answers the headers the request came with (so a test proves whose credentials
reached the call), `add`, `echo`, `sleep` (a slow server), `big` (a huge answer) and `fail` (a
tool error)."""

import asyncio
import json
import sys

from mcp.server.mcpserver import Context, MCPServer

port = int(sys.argv[1])
stateless = "--stateless" in sys.argv[2:]

server = MCPServer("codechat-test-tools")


@server.tool()
def whoami(ctx: Context) -> str:
    """The Authorization and X-Api-Key headers this call arrived with."""
    headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
    return json.dumps({"authorization": headers.get("authorization"), "x-api-key": headers.get("x-api-key")})


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two whole numbers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Answers the text it is given."""
    return text


@server.tool()
async def sleep(seconds: float) -> str:
    """Waits, then answers."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}s"


@server.tool()
def big(chars: int) -> str:
    """Answers that many characters."""
    return "x" * chars


@server.tool()
def fail(message: str) -> str:
    """Always fails with the message."""
    raise ValueError(message)


if __name__ == "__main__":
    import uvicorn

    app = server.streamable_http_app(stateless_http=stateless)

    class Ready(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            print("ready", flush=True)

    Ready(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).run()
