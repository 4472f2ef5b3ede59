"""How deep JSON may nest: one limit for request bodies and tool-call arguments.

Python's JSON decoders recurse, and a document nested a thousand levels deep ends in a
``RecursionError`` somewhere, in the decoder or in whatever walks the value later (an
encoder on its way to a provider, a schema converter). So every JSON the kernel takes in is
held to :data:`MAX_JSON_DEPTH` levels of objects and arrays before it is used: a request
body (a 400 naming the field), and the arguments a model writes for a tool (an error the
model reads).

The check costs two ``bytes.count`` calls for almost every document: nesting can be no
deeper than the number of ``{`` and ``[`` in it. Only a document with more brackets than the
limit is scanned, and the scan skips string contents in C (a regular expression).
"""

from __future__ import annotations

import re

#: How many levels of objects and arrays a JSON document may nest (the document itself is
#: level 1). Far above what a tool schema or structured output needs (OpenAI's structured
#: outputs allow 10 levels of nesting), far below what would exhaust Python's stack.
MAX_JSON_DEPTH = 64

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:,]', re.DOTALL)


def _key(raw: bytes) -> str:
    text = raw[1:-1].decode("utf-8", "replace")
    return text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) else repr(text)


def too_deep(document: bytes | str, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Where ``document`` (JSON text) nests deeper than ``limit`` levels, as a path
    (``metadata.a[0].b``; ``""`` for the top level), or ``None`` when it does not.

    Malformed JSON is not judged here (the decoder will say what is wrong with it): the
    scan only counts brackets outside strings.
    """
    data = document.encode() if isinstance(document, str) else document
    if data.count(b"{") + data.count(b"[") <= limit:
        return None
    # The path to where we are: for each open container, its key (objects) or index (arrays).
    path: list[str | int] = []
    kinds: list[bytes] = []
    last_string: bytes | None = None
    for match in _TOKENS.finditer(data):
        token = match.group()
        first = token[:1]
        if first == b'"':
            last_string = token
        elif first in (b"{", b"["):
            if len(kinds) >= limit:
                return _render(path)
            kinds.append(first)
            path.append(0 if first == b"[" else "")
            last_string = None
        elif first in (b"}", b"]"):
            if kinds:
                kinds.pop()
                path.pop()
        elif first == b":":
            if kinds and kinds[-1] == b"{" and last_string is not None:
                path[-1] = _key(last_string)
        elif first == b",":
            if kinds and kinds[-1] == b"[":
                index = path[-1]
                path[-1] = index + 1 if isinstance(index, int) else 0
    return None


def _render(path: list[str | int], shown: int = 6) -> str:
    out = ""
    for part in path[:shown]:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part:
            out += f".{part}" if out else part
    return out + ("..." if len(path) > shown else "")


__all__ = ["MAX_JSON_DEPTH", "too_deep"]
