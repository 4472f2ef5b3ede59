"""``robutler_embed``: embeddings through a live ``openai`` skill's client (see :mod:`.registry`)."""

from __future__ import annotations

import msgspec

from robutler_specs import KernelAPI

from . import registry
from .config import DEFAULT_EMBEDDING_MODEL
from .errors import PLUGIN, map_error, sdk_error
from .upstream import parse_embeddings, post

_encode = msgspec.json.Encoder().encode


async def embed(texts: list[str], model: str | None, kernel: KernelAPI) -> list[list[float]] | None:
    """Embed ``texts``; ``None`` when ``model`` names another provider or no skill is live.

    :param texts: the texts, in order.
    :param model: ``"openai/<model>"``, or ``None`` for the configured (or default) model.
    :param kernel: the kernel asking; its live openai skills are the candidates.
    """
    name: str | None = None
    if model is not None:
        provider, _, name = model.partition("/")
        if provider != PLUGIN or not name:
            return None
    skill = registry.choose(kernel.state, name)
    if skill is None:
        return None
    name = name or skill.config.embedding_model or DEFAULT_EMBEDDING_MODEL
    if not texts:
        return []
    body = _encode({"model": name, "input": texts, "encoding_format": "float"})
    try:
        response = await post(skill.client, "/embeddings", body)
    except sdk_error() as exc:
        raise map_error(exc, model=name, base_url=skill.config.base_url,
                        timeout=skill.config.timeout) from exc
    return parse_embeddings(response.content, len(texts))


__all__ = ["embed"]
