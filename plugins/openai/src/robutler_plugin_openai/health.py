"""The openai skill's health check: ``GET {base_url}/models``, cached, informative unless
``health.required`` (see :class:`robutler_specs.health.ProviderHealth`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from robutler_specs import RequestError
from robutler_specs.health import CachedCheck

from .errors import map_error

if TYPE_CHECKING:
    from .skill import OpenAISkill


def provider_checks(skill: OpenAISkill) -> Mapping[str, Callable[[], Awaitable[Any]]]:
    """``openai:<base_url>``: the models the key may use, asked at most once per
    ``health.cache_seconds`` (the key never appears in the name or the answer)."""
    cfg = skill.config
    if not cfg.health.check:
        return {}
    cached: CachedCheck | None = getattr(skill, "_health_check", None)
    if cached is None:

        async def probe() -> dict[str, Any]:
            direct = skill._direct_transport()
            try:
                if direct is not None:  # the skill's own session: the SDK stays unimported
                    models = await direct.count_models(cfg.health.timeout)
                else:
                    client = skill.client.with_options(timeout=cfg.health.timeout, max_retries=0)
                    models = len((await client.models.list()).data)
            except RequestError as refused:
                raise RuntimeError(f"GET {cfg.base_url}/models: {refused.message}") from None
            except Exception as exc:
                error = map_error(exc, model="(the models list)", base_url=cfg.base_url,
                                  timeout=cfg.health.timeout, connect_timeout=cfg.connect_timeout)
                raise RuntimeError(f"GET {cfg.base_url}/models: {error.message}") from None
            return {"base_url": cfg.base_url, "models": models, "required": cfg.health.required}

        cached = CachedCheck(probe, cfg.health.cache_seconds, required=cfg.health.required)
        skill._health_check = cached  # type: ignore[attr-defined]
    return {f"openai:{cfg.base_url}": cached}


__all__ = ["provider_checks"]
