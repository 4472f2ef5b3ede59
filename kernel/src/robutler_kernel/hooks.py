"""The async hook caller.

pluggy is synchronous: an ``async def`` implementation returns a coroutine, which is never
``None``, so pluggy's own ``firstresult`` cannot work for async hooks. :class:`HookCaller`
keeps pluggy as the registry and validator (specs, signatures, call order) and calls the
implementations itself: each result is awaited when it is awaitable, in pluggy's order, and
``firstresult`` is applied after awaiting.

The call order is fixed once per agent (skills are registered in ``priority`` order), so the
implementations of every hook are resolved once and kept in plain lists: a hook nobody
implements costs one dict lookup per request.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import pluggy

from robutler_specs import RequestError

log = logging.getLogger("robutler.hooks")

Impl = tuple[Callable[..., Any], tuple[str, ...], str]


class HookFailed(RequestError):
    """A hook implementation raised something other than a ``RequestError``.

    Rendered as a 500 ``server_error`` naming the plugin and hook, never a traceback.
    """

    status = 500
    type = "server_error"
    default_code = "hook_failed"


class HookCaller:
    """Calls the hooks of one plugin manager, awaiting async implementations.

    :param pm: the plugin manager whose registered plugins implement the hooks.
    :param names: the hook names to resolve.
    """

    def __init__(self, pm: pluggy.PluginManager, names: tuple[str, ...]) -> None:
        self.pm = pm
        self._impls: dict[str, list[Impl]] = {}
        for name in names:
            hook = getattr(pm.hook, name)
            # pluggy calls the last registered (and tryfirst) implementations first.
            self._impls[name] = [
                (impl.function, tuple(impl.argnames), impl.plugin_name)
                for impl in reversed(hook.get_hookimpls())
            ]

    def implemented(self, name: str) -> bool:
        """Whether any plugin implements hook ``name``."""
        return bool(self._impls[name])

    def plugins_implementing(self, name: str) -> list[str]:
        """The plugin names implementing hook ``name``, in call order."""
        return [plugin for _, _, plugin in self._impls[name]]

    async def _invoke(self, name: str, impl: Impl, kwargs: dict[str, Any]) -> Any:
        fn, argnames, plugin = impl
        try:
            result = fn(*[kwargs[a] for a in argnames])
            if inspect.isawaitable(result):
                result = await result
        except RequestError as exc:
            if exc.plugin is None:
                exc.plugin = plugin
            raise
        except Exception as exc:
            log.exception("plugin %r failed in hook %s", plugin, name)
            raise HookFailed(
                f"plugin {plugin!r} failed in hook {name}: {type(exc).__name__}: {exc}",
                plugin=plugin,
            ) from exc
        return result

    async def call(self, name: str, /, **kwargs: Any) -> list[Any]:
        """Call every implementation; return the non-``None`` results in call order."""
        results = []
        for impl in self._impls[name]:
            result = await self._invoke(name, impl, kwargs)
            if result is not None:
                results.append(result)
        return results

    async def first(self, name: str, /, **kwargs: Any) -> Any:
        """Call implementations until one returns non-``None``; return that (or ``None``)."""
        for impl in self._impls[name]:
            result = await self._invoke(name, impl, kwargs)
            if result is not None:
                return result
        return None

    async def chain(self, name: str, key: str, /, **kwargs: Any) -> Any:
        """Thread ``kwargs[key]`` through every implementation: a non-``None`` result
        replaces it for the next one. Returns the final value."""
        for impl in self._impls[name]:
            result = await self._invoke(name, impl, kwargs)
            if result is not None:
                kwargs[key] = result
        return kwargs[key]

    async def call_all_logged(self, name: str, /, **kwargs: Any) -> None:
        """Call every implementation even if some raise; errors are logged, not raised.

        Used for ``finalize_connection``, which must always run completely.
        """
        for fn, argnames, plugin in self._impls[name]:
            try:
                result = fn(*[kwargs[a] for a in argnames])
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("plugin %r failed in hook %s", plugin, name)
