"""The agent store: agents kept as rows of a PostgreSQL table, answered to the kernel's
``robutler_resolve_agent`` hook.

A row is one agent: ``name`` (its URL name), ``config`` (JSONB, the shape of one entry of
``agents:`` in the config file) and ``updated_at``. A row is validated by the same rules
as a file (``robutler_specs.agentcheck``), its errors naming the table and the agent.

The kernel asks again about a loaded agent at most once a second while it is requested;
the store answers from memory and looks at the row at most once per
``refresh_seconds``: one query, which returns ``config`` only when ``updated_at`` moved.
A changed row is validated again and the kernel rebuilds the agent; a deleted row is an
agent removed (404). When the database cannot be reached, an agent the store knows keeps
its last answer (logged); one it does not know is a 503.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import asyncpg
import msgspec

from robutler_specs import AgentSpec, ConfigError, KernelAPI, ServiceUnavailable, hookimpl
from robutler_specs.agentcheck import agent_from_data
from robutler_specs.errors import AgentConfigError

log = logging.getLogger("robutler.agentstore")

#: The plugin's name: its entry point and its ``plugins:`` key.
PLUGIN = "agentstore"
#: ``name`` or ``schema.name``: the only text put into SQL, so checked.
TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")
#: Answers kept in memory at most (unknown names included); the oldest go first.
MAX_CACHED = 10_000

#: Errors that mean the database (or the way to it) failed, not the data.
BACKEND_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PluginSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``plugins.agentstore`` section (``robutler-kernel check`` validates it).

    :ivar dsn: ``postgresql://user:password@host:5432/db``.
    :ivar table: the table of agents, ``name`` or ``schema.name``.
    :ivar refresh_seconds: how long an answer is reused before the row is looked at again
        (a changed or new row is seen at most this late).
    :ivar create_table: create the table (and schema) on start-up when absent.
    :ivar min_pool: connections opened at start-up.
    :ivar max_pool: connections at most.
    :ivar timeout: seconds to connect, and for each query.
    """

    dsn: str
    table: str = "robutler_agents"
    refresh_seconds: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    create_table: bool = True
    min_pool: Annotated[int, msgspec.Meta(ge=0)] = 1
    max_pool: Annotated[int, msgspec.Meta(ge=1)] = 5
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0

    def __post_init__(self) -> None:
        if not TABLE_RE.fullmatch(self.table):
            raise ValueError(f"table `{self.table}` is not `name` or `schema.name` (letters, digits, `_`)")
        if self.min_pool > self.max_pool:
            raise ValueError(f"min_pool ({self.min_pool}) is more than max_pool ({self.max_pool})")


def ddl(table: str) -> list[str]:
    """The statements that create the table (and its schema), when absent."""
    schema, _, _ = table.rpartition(".")
    return [
        *([f"CREATE SCHEMA IF NOT EXISTS {schema}"] if schema else []),
        f"""CREATE TABLE IF NOT EXISTS {table} (
            name text PRIMARY KEY,
            config jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
    ]


def describe_dsn(dsn: str) -> str:
    """``host:port/database`` of a DSN, without user or password (for errors and health)."""
    try:
        parts = urlsplit(dsn)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    except ValueError:
        return "(unparsable dsn)"


class _Answer:
    """What the store last answered for one name, and when to look at the row again."""

    __slots__ = ("error", "next_check", "spec", "updated_at")

    def __init__(self, spec: AgentSpec | None, error: AgentConfigError | None, updated_at: datetime | None, next_check: float) -> None:
        self.spec, self.error, self.updated_at, self.next_check = spec, error, updated_at, next_check

    def give(self) -> AgentSpec | None:
        if self.error is not None:
            raise AgentConfigError(self.error.message)
        return self.spec


class AgentStore:
    """The plugin's state and hooks. The entry point registers one (the module's
    ``store``); tests and applications running several kernels in one process register
    their own: ``Kernel(config, plugins=[AgentStore()])``.

    :param clock: a monotonic clock (tests pass their own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        #: The plugin's name when registered as an object.
        self.__name__ = PLUGIN
        self.clock = clock
        self.settings: PluginSettings | None = None
        self.pool: asyncpg.Pool | None = None
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        #: Rows validated so far (first loads and changes), for tests and debugging.
        self.validations = 0

    # -- kernel hooks ----------------------------------------------------------------------

    @hookimpl
    async def robutler_startup(self, kernel: KernelAPI) -> None:
        """Open the pool and create the table, when ``plugins.agentstore`` is configured."""
        raw = kernel.plugin_settings(PLUGIN)
        if not raw:
            return  # installed, not configured: it resolves nothing
        try:
            settings = msgspec.convert(raw, PluginSettings, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"plugins.{PLUGIN}: {exc}") from None
        try:
            pool = await asyncpg.create_pool(
                settings.dsn,
                min_size=settings.min_pool,
                max_size=settings.max_pool,
                timeout=settings.timeout,
                command_timeout=settings.timeout,
            )
        except BACKEND_ERRORS as exc:
            raise ConfigError(
                f"plugins.{PLUGIN}: cannot connect to {describe_dsn(settings.dsn)}: {type(exc).__name__}: {exc}"
            ) from None
        try:
            if settings.create_table:
                async with pool.acquire() as conn, conn.transaction():
                    # Replicas starting together must not race to create the table.
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"robutler:{settings.table}")
                    for statement in ddl(settings.table):
                        await conn.execute(statement)
        except BACKEND_ERRORS as exc:
            await pool.close()
            raise ConfigError(f"plugins.{PLUGIN}: cannot create table {settings.table}: {type(exc).__name__}: {exc}") from None
        self.settings, self.pool = settings, pool
        log.info("agent store: table %s on %s", settings.table, describe_dsn(settings.dsn))

    @hookimpl
    async def robutler_shutdown(self, kernel: KernelAPI) -> None:
        """Close the pool and forget every answer."""
        pool, self.pool = self.pool, None
        self._answers.clear()
        if pool is not None:
            await pool.close()

    @hookimpl
    async def robutler_resolve_agent(self, name: str) -> AgentSpec | None:
        """The agent of row ``name``, validated; ``None`` when there is no such row.

        :raises AgentConfigError: the row does not validate (table, agent, key and problem).
        :raises ServiceUnavailable: the database cannot be reached and the agent is unknown.
        """
        settings, pool = self.settings, self.pool
        if settings is None or pool is None:
            return None
        now = self.clock()
        known = self._answers.get(name)
        if known is not None and now < known.next_check:
            return known.give()
        next_check = now + settings.refresh_seconds
        try:
            row = await pool.fetchrow(
                f"SELECT updated_at, CASE WHEN updated_at IS DISTINCT FROM $2 THEN config END AS config "
                f"FROM {settings.table} WHERE name = $1",
                name,
                None if known is None else known.updated_at,
            )
        except BACKEND_ERRORS as exc:
            if known is not None and known.spec is not None:
                log.warning("agent store unavailable (%s); agent %r keeps its last version", exc, name)
                known.next_check = next_check
                return known.spec
            raise ServiceUnavailable(
                f"{PLUGIN}: the agent store ({describe_dsn(settings.dsn)}) is unavailable: {type(exc).__name__}: {exc}",
                plugin=PLUGIN,
            ) from None
        if row is None:
            answer = _Answer(None, None, None, next_check)
        elif known is not None and row["config"] is None:  # updated_at has not moved
            known.next_check = next_check
            return known.give()
        else:
            answer = self._validate(name, row["config"], row["updated_at"], next_check, settings.table)
        self._remember(name, answer)
        return answer.give()

    @hookimpl
    def robutler_health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]] | None:
        """``agentstore``: the database answers."""
        if self.pool is None:
            return None
        return {PLUGIN: self._ping}

    # -- helpers ---------------------------------------------------------------------------

    async def _ping(self) -> dict[str, Any]:
        assert self.pool is not None and self.settings is not None
        count = await self.pool.fetchval(f"SELECT count(*) FROM {self.settings.table}")
        return {"table": self.settings.table, "agents": count}

    def _validate(self, name: str, config: Any, updated_at: datetime, next_check: float, table: str) -> _Answer:
        self.validations += 1
        source = f"{PLUGIN} table {table}, agent {name!r}"
        try:
            data = msgspec.json.decode(config) if isinstance(config, (str, bytes)) else config
            spec = agent_from_data(name, data, source)
        except msgspec.DecodeError as exc:
            return _Answer(None, AgentConfigError(f"{source}: config: not JSON: {exc}"), updated_at, next_check)
        except ConfigError as exc:
            log.error("agent %r in the store does not validate:\n%s", name, exc)
            return _Answer(None, AgentConfigError(str(exc)), updated_at, next_check)
        return _Answer(spec, None, updated_at, next_check)

    def _remember(self, name: str, answer: _Answer) -> None:
        self._answers[name] = answer
        self._answers.move_to_end(name)
        while len(self._answers) > MAX_CACHED:
            self._answers.popitem(last=False)

    async def put(self, name: str, config: Mapping[str, Any]) -> None:
        """Insert or replace agent ``name`` (``updated_at`` set to now). Not validated here:
        the next request for it is."""
        assert self.pool is not None and self.settings is not None, "the store is not started"
        await self.pool.execute(
            f"INSERT INTO {self.settings.table} (name, config, updated_at) VALUES ($1, $2::jsonb, clock_timestamp()) "
            "ON CONFLICT (name) DO UPDATE SET config = EXCLUDED.config, updated_at = EXCLUDED.updated_at",
            name,
            msgspec.json.encode(dict(config)).decode(),
        )

    async def delete(self, name: str) -> bool:
        """Delete agent ``name``; whether there was one."""
        assert self.pool is not None and self.settings is not None, "the store is not started"
        result: str = await self.pool.execute(f"DELETE FROM {self.settings.table} WHERE name = $1", name)
        return result.endswith(" 1")

    async def names(self) -> list[str]:
        """The names of the stored agents, sorted."""
        assert self.pool is not None and self.settings is not None, "the store is not started"
        rows = await self.pool.fetch(f"SELECT name FROM {self.settings.table} ORDER BY name")
        return [row["name"] for row in rows]


__all__ = ["BACKEND_ERRORS", "MAX_CACHED", "PLUGIN", "AgentStore", "PluginSettings", "ddl", "describe_dsn"]
