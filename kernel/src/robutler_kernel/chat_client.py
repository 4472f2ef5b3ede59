"""The terminal chat of ``robutler-kernel chat``: prints tokens as they stream."""

from __future__ import annotations

import http.client
import json
import sys
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlsplit

from robutler_specs import RequestError

from .config import KernelConfig
from .kernel import Kernel


def _prompts(once: str | None) -> Iterator[str]:
    if once is not None:
        yield once
        return
    print("(empty line or Ctrl-D to quit)")
    while True:
        try:
            line = input("you> ")
        except EOFError:
            return
        if not line.strip():
            return
        yield line


async def chat_local(
    config: KernelConfig, agent_name: str, messages: list[dict[str, Any]], *, once: str | None,
    model: str | None = None,
) -> int:
    """Chat with an agent run in this process."""
    kernel = Kernel(config)
    agent = kernel.agent(agent_name)
    if agent is None:
        print(f"error: no agent named {agent_name!r} (agents: {', '.join(kernel.agent_names)})", file=sys.stderr)
        return 1
    await kernel.startup()
    try:
        for text in _prompts(once):
            messages.append({"role": "user", "content": text})
            print(f"{agent_name}> ", end="", flush=True)
            reply: list[str] = []
            try:
                async with aclosing(agent.run_streaming(messages, model=model)) as chunks:
                    async for chunk in chunks:
                        for choice in chunk.choices:
                            if choice.delta.content:
                                reply.append(choice.delta.content)
                                print(choice.delta.content, end="", flush=True)
            except RequestError as exc:
                print(f"\nerror ({exc.status}): {exc.message}", file=sys.stderr)
                messages.pop()
                if once is not None:
                    return 1
                continue
            print()
            messages.append({"role": "assistant", "content": "".join(reply)})
    finally:
        await kernel.shutdown()
    return 0


def chat_remote(
    url: str, agent_name: str, messages: list[dict[str, Any]], *, once: str | None, model: str | None = None
) -> int:
    """Chat with an agent on a running server, reading its SSE stream line by line."""
    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    base = parts.path.rstrip("/")
    for text in _prompts(once):
        messages.append({"role": "user", "content": text})
        conn = conn_cls(parts.netloc, timeout=300)
        body = json.dumps({"messages": messages, "stream": True, **({"model": model} if model else {})})
        conn.request("POST", f"{base}/{agent_name}/chat/completions", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            error = json.loads(response.read() or b"{}").get("error", {})
            print(f"error ({response.status}): {error.get('message', response.reason)}", file=sys.stderr)
            messages.pop()
            conn.close()
            if once is not None:
                return 1
            continue
        print(f"{agent_name}> ", end="", flush=True)
        reply = []
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                print(f"\nerror: {event['error']['message']}", file=sys.stderr)
                break
            for choice in event.get("choices", []):
                content = choice.get("delta", {}).get("content")
                if content:
                    reply.append(content)
                    print(content, end="", flush=True)
        print()
        conn.close()
        messages.append({"role": "assistant", "content": "".join(reply)})
    return 0
