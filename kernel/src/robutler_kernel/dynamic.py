"""Dynamic agents: the files of ``agents_dir`` and what ``robutler_resolve_agent`` answers.

This module owns every agent that is not in the config file: it loads one on its first
request, keeps the build, notices when its source changed, rebuilds it, and retires the
old build. The sources, in the order a name is looked up:

1. the config file's ``agents:`` (the kernel answers those itself, never asking here);
2. ``<agents_dir>/<name>.yaml``: a file owns its name, broken or not;
3. the plugins' ``robutler_resolve_agent`` hook.

A loaded agent's source is looked at again at most once per :attr:`DynamicAgents.refresh`
seconds (1 s), and only when the agent is requested: a file by its modification time,
size and inode (one ``stat``); a resolver by asking it again, the build being kept while
it answers an equal spec. A changed source is rebuilt (skills started) before it serves;
requests that already hold the old build finish on it. The old build's skills are stopped
once nothing refers to it any more (looked at every 0.2 s), and at the latest after
``server.request_timeout`` (no request lives longer). A source that is gone (file removed, resolver says ``None``)
removes the agent: 404 from then on.

A broken source (a file that does not validate, a spec that does not build) is an
:class:`~robutler_specs.AgentConfigError` for that agent alone (500, the file and line in
its message), cached like a build until the source changes.

One lock per name: concurrent first requests build an agent once. While one request
checks a loaded agent's source, the others go on with the build they have.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

import msgspec

from robutler_specs import AgentSpec, ConfigError, PluginError, RequestError, Skill
from robutler_specs.agentcheck import (
    AGENT_NAME_RE,
    RESERVED_AGENT_NAMES,
    format_key,
    name_problem,
    spec_problems,
)
from robutler_specs.errors import AgentConfigError

from .config import parse_agent_file
from .metrics import DYNAMIC_AGENTS

if TYPE_CHECKING:
    from .agent import Agent
    from .kernel import Kernel

log = logging.getLogger("robutler.dynamic")

#: The suffix of an agent file: ``<agents_dir>/<name>.yaml``.
AGENT_FILE_SUFFIX = ".yaml"
#: Seconds between two looks at a loaded agent's source (only when it is requested).
REFRESH_SECONDS = 1.0
#: How often a retired build is looked at, to stop its skills once it is unused.
RETIRE_POLL_SECONDS = 0.2

Source = Literal["file", "resolver"]
Signature = tuple[int, int, int]


class Entry:
    """One dynamic agent: its build (or why there is none), where it came from, and when
    to look at its source again."""

    __slots__ = ("agent", "error", "next_check", "signature", "source", "spec")

    def __init__(
        self,
        source: Source,
        *,
        agent: Agent | None = None,
        error: AgentConfigError | None = None,
        spec: AgentSpec | None = None,
        signature: Signature | None = None,
        next_check: float = 0.0,
    ) -> None:
        self.source = source
        self.agent = agent
        self.error = error
        self.spec = spec
        self.signature = signature
        self.next_check = next_check

    def result(self) -> Agent:
        """The build, or its error raised."""
        if self.agent is None:
            assert self.error is not None
            # A fresh copy: a door adds headers (x-request-id) to the error it answers.
            raise AgentConfigError(self.error.message, plugin=self.error.plugin)
        return self.agent


class _NameLocks:
    """One ``asyncio.Lock`` per name, dropped when nobody holds or waits for it (so that
    requests for unknown names leave nothing behind)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def busy(self, name: str) -> bool:
        """Whether someone holds or waits for ``name``'s lock."""
        return name in self._locks

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(name) or (asyncio.Lock(), 0)
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


def folder_of(agents_dir: str | None, base_dir: str | None) -> str | None:
    """The absolute folder of ``agents_dir`` (relative to the config file's folder, else
    to the working directory); ``None`` when there is none."""
    if agents_dir is None:
        return None
    return os.path.abspath(os.path.join(base_dir or os.getcwd(), os.path.expanduser(agents_dir)))


def agent_files(folder: str) -> list[tuple[str, str]]:
    """``(name, path)`` of every agent file in ``folder``, sorted by name: the regular
    files (or links to them) named ``*.yaml``, not hidden (editors' and Kubernetes'
    bookkeeping files start with a dot). An unreadable or missing folder has none."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.name.endswith(AGENT_FILE_SUFFIX):
                    continue
                try:
                    if not entry.is_file():
                        continue
                except OSError:
                    continue
                found.append((entry.name[: -len(AGENT_FILE_SUFFIX)], entry.path))
    except OSError:
        return []
    return sorted(found)


def _signature(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class DynamicAgents:
    """The kernel's dynamic agents (see the module's documentation).

    :param kernel: the kernel they belong to (it builds them, and holds the config).
    :param refresh: seconds between two looks at a loaded agent's source.
    :param clock: a monotonic clock (tests pass their own).
    """

    def __init__(self, kernel: Kernel, *, refresh: float = REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.kernel = kernel
        self.refresh = refresh
        self.clock = clock
        config = kernel.config
        #: The absolute folder of ``agents_dir``, or ``None``.
        self.folder = folder_of(config.agents_dir, config.base_dir)
        self._entries: dict[str, Entry] = {}
        self._locks = _NameLocks()
        self._retiring: set[asyncio.Task[None]] = set()
        #: How many builds were made (first loads and reloads), for tests and debugging.
        self.builds = 0

    # -- what the kernel asks ---------------------------------------------------------------

    def loaded(self, name: str) -> Agent | None:
        """The build of ``name`` if it is loaded (no source is looked at)."""
        entry = self._entries.get(name)
        return None if entry is None else entry.agent

    def names(self) -> list[str]:
        """The names of the dynamic agents loaded now."""
        return [name for name, entry in self._entries.items() if entry.agent is not None]

    def file_names(self) -> list[str]:
        """The names of ``agents_dir``'s files that may serve an agent (valid, not reserved,
        not an agent of the config file), whether loaded or not; one ``scandir``."""
        if self.folder is None:
            return []
        static = self.kernel.config.agents
        return [name for name, _ in agent_files(self.folder) if name not in static and name_problem(name) is None]

    def path_of(self, name: str) -> str | None:
        """The file that would hold agent ``name``."""
        return None if self.folder is None else os.path.join(self.folder, name + AGENT_FILE_SUFFIX)

    def shown_path(self, name: str) -> str:
        """The file of ``name`` as errors show it: as the config writes ``agents_dir``
        (relative to the config's folder), not the server's absolute path."""
        agents_dir = self.kernel.config.agents_dir or ""
        return os.path.join(agents_dir, name + AGENT_FILE_SUFFIX)

    async def get(self, name: str) -> Agent | None:
        """The agent called ``name`` (not one of the config file's), loading, reloading or
        removing it as its source says; ``None`` when no source knows it.

        :raises AgentConfigError: its source is broken.
        """
        entry = self._entries.get(name)
        if entry is not None and (self.clock() < entry.next_check or self._locks.busy(name)):
            return entry.result()
        if entry is None and ((self.folder is None and not self.kernel.hooks.resolves_agents) or not AGENT_NAME_RE.fullmatch(name)):
            return None
        async with self._locks.hold(name):
            entry = self._entries.get(name)
            if entry is None or self.clock() >= entry.next_check:
                entry = await self._refresh(name, entry)
        return None if entry is None else entry.result()

    def startup(self) -> None:
        """Check ``agents_dir`` before serving: the folder exists; files named like an agent
        of the config file are reported (the config's agent serves).

        :raises ConfigError: ``agents_dir`` is not a folder.
        """
        if self.folder is None:
            return
        if not os.path.isdir(self.folder):
            raise ConfigError(
                f"agents_dir: `{self.kernel.config.agents_dir}` is not a folder ({self.folder}); create it or fix the path"
            )
        for name, path in agent_files(self.folder):
            if name in self.kernel.config.agents:
                log.error("%s is ignored: agent %r is defined in the config file, which wins; rename or remove the file", path, name)

    async def close(self) -> None:
        """Stop every dynamic agent's skills (loaded and retired builds) and forget them."""
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for name, entry in list(self._entries.items()):
            self._install(name, entry, None, retire=False)
            if entry.agent is not None:
                await _stop(name, entry.agent.skills)

    # -- loading ---------------------------------------------------------------------------

    async def _refresh(self, name: str, old: Entry | None) -> Entry | None:
        """Look at ``name``'s sources (the file first) and install what they say."""
        now = self.clock()
        path = self.path_of(name)
        signature = None if path is None else _signature(path)
        if path is not None and signature is not None:
            if old is not None and old.source == "file" and old.signature == signature:
                old.next_check = now + self.refresh
                return old
            new = await self._from_file(name, path, signature)
            return self._install(name, old, new)
        if self.kernel.hooks.resolves_agents and name.lower() not in RESERVED_AGENT_NAMES:
            try:
                spec = await self.kernel.hooks.robutler_resolve_agent(name)
            except AgentConfigError as exc:
                return self._install(name, old, Entry("resolver", error=exc, next_check=now + self.refresh))
            except Exception:
                if old is None or old.agent is None or old.source != "resolver":
                    raise
                log.warning("agent %r: its resolver failed; serving the build it has", name, exc_info=True)
                old.next_check = now + self.refresh
                return old
            if spec is not None:
                if not spec.name:
                    spec = msgspec.structs.replace(spec, name=name)
                if old is not None and old.source == "resolver" and old.spec == spec:
                    old.next_check = now + self.refresh
                    return old
                return self._install(name, old, await self._from_resolver(name, spec))
        return self._install(name, old, None)

    async def _from_file(self, name: str, path: str, signature: Signature) -> Entry:
        shown = self.shown_path(name)
        next_check = self.clock() + self.refresh
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            spec = parse_agent_file(text, name, shown)
        except (OSError, UnicodeDecodeError) as exc:
            return Entry("file", error=self._broken(name, f"{shown}: cannot read the agent file: {exc}"), signature=signature, next_check=next_check)
        except ConfigError as exc:
            return Entry("file", error=self._broken(name, str(exc)), signature=signature, next_check=next_check)
        return await self._build("file", name, spec, shown, signature=signature)

    async def _from_resolver(self, name: str, spec: AgentSpec) -> Entry:
        where = "the spec a plugin resolved"
        next_check = self.clock() + self.refresh
        problems = [f"{where}: {format_key(key)}: {message}" for key, message in spec_problems(spec)]
        if spec.name != name:
            problems.insert(0, f"{where}: name: asked for agent `{name}`, a plugin answered with agent `{spec.name}`")
        if problems:
            return Entry("resolver", error=self._broken(name, "\n".join(problems)), spec=spec, next_check=next_check)
        return await self._build("resolver", name, spec, where)

    async def _build(self, source: Source, name: str, spec: AgentSpec, where: str, *, signature: Signature | None = None) -> Entry:
        """Build ``spec`` and start its skills; what fails is that agent's error."""
        next_check = self.clock() + self.refresh
        self.builds += 1
        try:
            agent = self.kernel.build_agent(spec)
        except (ConfigError, PluginError, ValueError, ImportError) as exc:
            error = self._broken(name, f"{where}: {exc}")
            return Entry(source, error=error, spec=spec, signature=signature, next_check=next_check)
        started: list[Skill] = []
        try:
            for skill in agent.skills:
                await skill.start()
                started.append(skill)
        except Exception as exc:
            await _stop(name, started)
            message = exc.message if isinstance(exc, RequestError) else f"{type(exc).__name__}: {exc}"
            error = self._broken(name, f"{where}: skill {skill.name!r} failed to start: {message}")
            return Entry(source, error=error, spec=spec, signature=signature, next_check=next_check)
        return Entry(source, agent=agent, spec=spec, signature=signature, next_check=next_check)

    @staticmethod
    def _broken(name: str, message: str) -> AgentConfigError:
        log.error("agent %r cannot be loaded:\n%s", name, message)
        return AgentConfigError(f"agent {name!r} cannot be loaded: {message}")

    def _install(self, name: str, old: Entry | None, new: Entry | None, *, retire: bool = True) -> Entry | None:
        """Make ``new`` the entry of ``name`` (``None``: forget it); a build it replaces is
        retired, and the gauge and ``kernel.agents`` follow."""
        if old is not None and old.agent is not None:
            DYNAMIC_AGENTS.dec()
            self.kernel.agents.pop(name, None)
            if retire:
                self._retire(name, old.agent)
                log.info("agent %r: %s", name, "reloaded" if new is not None and new.agent is not None else "unloaded")
        if new is None:
            self._entries.pop(name, None)
            return None
        if new.agent is not None:
            DYNAMIC_AGENTS.inc()
            assert new.spec is not None
            self.kernel.agents[name] = new.spec
            if old is None or old.agent is None:
                log.info("agent %r loaded (%s)", name, new.source)
        self._entries[name] = new
        return new

    def _retire(self, name: str, agent: Agent) -> None:
        """Stop ``agent``'s skills once nothing refers to it (in-flight requests are done),
        and at the latest after ``server.request_timeout``."""
        task = asyncio.create_task(self._stop_when_unused(name, weakref.ref(agent), list(agent.skills)))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _stop_when_unused(self, name: str, ref: weakref.ref[Agent], skills: list[Skill]) -> None:
        started = self.clock()
        deadline = started + self.kernel.config.server.request_timeout
        collect_at = started + 1.0
        try:
            while ref() is not None and self.clock() < deadline:
                await asyncio.sleep(RETIRE_POLL_SECONDS)
                if self.clock() >= collect_at:
                    # A finished request's objects may hold the build in a reference
                    # cycle; a long request's have reached the oldest generation, which
                    # Python collects rarely. Collect at 1, 2, 4, 8... s: a few
                    # collections per retired build at most.
                    gc.collect()
                    collect_at = started + 2 * (collect_at - started)
        finally:
            # Also when cancelled (the kernel shuts down): the skills are stopped either way.
            await asyncio.shield(_stop(name, skills))


async def _stop(name: str, skills: Sequence[Skill]) -> None:
    for skill in reversed(skills):
        try:
            await skill.stop()
        except Exception:
            log.exception("skill %r of agent %r failed to stop", skill.name, name)


__all__ = ["AGENT_FILE_SUFFIX", "REFRESH_SECONDS", "DynamicAgents", "Entry", "agent_files", "folder_of"]
