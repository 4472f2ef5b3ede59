"""An MCP tool result as the text a model reads (the kernel's tool results are text).

* text blocks: as they are, one after another (blank line between);
* images and audio: a placeholder naming the type and size (``[image/png image, 2.1 kB:
  not shown to the model]``): models read tool results as text, and base64 in a prompt
  costs tokens without being seen;
* embedded resources: a text resource's text under its URI; a binary one as a placeholder;
  resource links as ``[resource: uri (name)]``;
* structured content: the JSON, unless a text block already holds the same value (the
  specification asks servers to send both; SDK servers send ``{"result": value}`` beside
  the value's text, which counts as the same);
* ``isError``: the tool result is an error (the model reads ``Error: ...``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import mcp_types as types


def _size(data: str) -> str:
    try:
        count = len(base64.b64decode(data, validate=False))
    except ValueError:
        count = len(data)
    return f"{count} bytes" if count < 1024 else f"{count / 1024:.1f} kB"


def _block(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent):
        return f"[{block.mime_type} image, {_size(block.data)}: not shown to the model]"
    if isinstance(block, types.AudioContent):
        return f"[{block.mime_type} audio, {_size(block.data)}: not shown to the model]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return f"[resource {resource.uri}]\n{resource.text}"
        mime = resource.mime_type or "binary"
        return f"[resource {resource.uri}: {mime}, {_size(resource.blob)}: not shown to the model]"
    if isinstance(block, types.ResourceLink):
        return f"[resource: {block.uri} ({block.name})]"
    return f"[{getattr(block, 'type', 'unknown')} content: not shown to the model]"


def _same(text: str, value: Any) -> bool:
    """Whether ``text`` already says ``value``: its JSON, or (SDK servers wrap a plain
    return value as ``{"result": value}``) the wrapped value itself."""
    try:
        if json.loads(text) == value:
            return True
    except ValueError:
        pass
    if isinstance(value, dict) and len(value) == 1 and "result" in value:
        inner = value["result"]
        return text == inner if isinstance(inner, str) else _same(text, inner)
    return False


def render(result: types.CallToolResult) -> str:
    """The text of a tool result (see the module)."""
    parts = [_block(block) for block in result.content]
    structured = result.structured_content
    if structured is not None and not any(
        isinstance(b, types.TextContent) and _same(b.text, structured) for b in result.content
    ):
        parts.append(json.dumps(structured, ensure_ascii=False, separators=(",", ":")))
    return "\n\n".join(parts) if parts else "(no content)"


__all__ = ["render"]
