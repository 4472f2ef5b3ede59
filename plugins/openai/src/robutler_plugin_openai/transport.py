"""The HTTP library under the openai SDK (``httpx2`` in the 3.x SDKs this plugin needs).

The plugin asks the SDK for raw responses (``cast_to=Response``) and reads stream bodies
itself, so it needs that library's ``Response`` type and its read errors. (``httpx`` is
the fallback should a later SDK return to it.)
"""

from __future__ import annotations

try:  # pragma: no cover - which branch runs depends on the installed SDK
    import httpx2 as httpx_module
except ImportError:  # pragma: no cover
    import httpx as httpx_module  # type: ignore[no-redef]

Limits = httpx_module.Limits
Response = httpx_module.Response
Timeout = httpx_module.Timeout
TimeoutException = httpx_module.TimeoutException
TransportError = httpx_module.TransportError

__all__ = ["Limits", "Response", "Timeout", "TimeoutException", "TransportError"]
