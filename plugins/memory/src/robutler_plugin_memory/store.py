"""What a short-term memory backend does: load, append and replace one conversation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from robutler_specs import Message


class StoreUnavailable(Exception):
    """The backend cannot be reached or did not answer in time.

    :param backend: what failed, for people (``redis at redis://host:6379/0``).
    :param cause: why, in a few words.
    """

    def __init__(self, backend: str, cause: str) -> None:
        super().__init__(f"{backend}: {cause}")
        self.backend = backend
        self.cause = cause


class Store(Protocol):
    """A conversation store. Every write is atomic: all of it or nothing.

    Keys are full keys (prefix included). Writes keep the window (``max_messages``,
    ``max_tokens``, tool results with their calls) and reset the conversation's TTL.
    """

    #: ``memory`` or ``redis``.
    kind: str

    async def start(self) -> None:
        """Open connections."""

    async def stop(self) -> None:
        """Close what :meth:`start` opened."""

    async def load(self, key: str) -> list[Message]:
        """The stored conversation (oldest first), ``[]`` when unknown or expired.

        :raises StoreUnavailable: the backend is down.
        """

    async def append(self, key: str, messages: list[Message]) -> None:
        """Add ``messages`` at the end, then keep the window and reset the TTL.

        :raises StoreUnavailable: the backend is down (nothing was written).
        """

    async def replace(self, key: str, messages: list[Message]) -> None:
        """Make ``messages`` the whole conversation (windowed), resetting the TTL.

        :raises StoreUnavailable: the backend is down (nothing was written).
        """

    def write_soon(self, key: str, messages: list[Message], *, replace: bool,
                   failed: Callable[[StoreUnavailable], None]) -> bool:
        """:meth:`append` (or, with ``replace``, :meth:`replace`) without waiting for the
        backend's answer: the write is applied, or on its way, before this returns, and
        every later :meth:`load` of this store sees it. A failure found later calls
        ``failed``; :meth:`stop` waits for the writes in flight.

        :return: ``False`` when nothing was written: await :meth:`append` /
            :meth:`replace` instead.
        """

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """Named async checks of the backend."""


__all__ = ["Store", "StoreUnavailable"]
