"""The terminal chat of ``robutler-kernel chat``: prints tokens as they stream.

Remote chats (``--url``) fail with one line and exit code 1 when the URL is not an
``http(s)://`` URL, the host is unknown, nothing listens there, or the server does not speak
HTTP: no traceback for a mistake anyone makes.
"""

from __future__ import annotations

import http.client
import json
import socket
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
    config: KernelConfig | Kernel, agent_name: str, messages: list[dict[str, Any]], *, once: str | None,
    model: str | None = None,
) -> int:
    """Chat with an agent run in this process (of ``config``, or of a kernel already built)."""
    kernel = config if isinstance(config, Kernel) else Kernel(config)
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
    """Chat with an agent on a running server, reading its SSE stream line by line.

    :return: the exit code: 0, or 1 after one ``error: ...`` line on stderr.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        guess = f"http://{url}" if "://" not in url else "http://127.0.0.1:8000"
        return _error(f"--url {url!r} is not an http:// or https:// URL; write it in full, e.g. {guess}")
    try:
        parts.port  # noqa: B018 -- a port that is not a number raises here
    except ValueError:
        return _error(f"--url {url!r}: the port is not a number")
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    base = parts.path.rstrip("/")
    server = f"{parts.scheme}://{parts.netloc}"
    for text in _prompts(once):
        messages.append({"role": "user", "content": text})
        conn = conn_cls(parts.netloc, timeout=300)
        body = json.dumps({"messages": messages, "stream": True, **({"model": model} if model else {})})
        try:
            status = _exchange(conn, f"{base}/{agent_name}/chat/completions", body, agent_name)
        except socket.gaierror:
            return _error(f"cannot reach {server}: unknown host {parts.hostname!r} (check --url)")
        except ConnectionRefusedError:
            return _error(f"cannot connect to {server}: nothing is listening there (is `robutler-kernel serve` running?)")
        except TimeoutError:
            return _error(f"{server} did not answer in time")
        except (http.client.HTTPException, ValueError) as exc:
            return _error(f"{server} did not answer as a Robutler server ({type(exc).__name__}: {exc}); check --url")
        except OSError as exc:
            return _error(f"cannot reach {server}: {exc.strerror or exc}")
        finally:
            conn.close()
        if status is None:
            messages.pop()
            if once is not None:
                return 1
            continue
        messages.append({"role": "assistant", "content": status})
    return 0


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _exchange(conn: http.client.HTTPConnection, path: str, body: str, agent_name: str) -> str | None:
    """Send one chat request and print its streamed answer; returns the reply, or ``None``
    after printing the server's error."""
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raw = response.read()
        try:
            error = json.loads(raw or b"{}").get("error", {})
        except ValueError:  # not one of ours: a proxy's HTML page, another server
            error = {}
        print(f"error ({response.status}): {error.get('message', response.reason)}", file=sys.stderr)
        return None
    print(f"{agent_name}> ", end="", flush=True)
    reply = []
    for raw_line in response:
        line = raw_line.decode().strip()
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
    return "".join(reply)
