"""A circuit breaker per model: a model that keeps failing is tried last for a while.

Retries and fallback make one request survive a failing provider, but each request would
still spend its tries (and their timeouts) on the failing model before reaching the next.
So the kernel remembers, per agent and model, how many tries in a row failed with an error
another try might fix. After ``failures`` of them the model is *open*: for ``cooldown``
seconds requests try it after the agent's other models. When the cooldown is over, one
request tries it first again (the others still skip it meanwhile); a success closes it, a
failure opens it for another cooldown. A model is never refused outright: when every model
is open, they are tried in the configured order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float = 0.0


class CircuitBreaker:
    """Per-model failure memory of one agent.

    :param failures: failed tries in a row that open a model (0: never).
    :param cooldown: seconds an open model is tried last.
    :param clock: a monotonic clock (tests pass their own).
    """

    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self._states: dict[str, _State] = {}

    def order(self, models: Sequence[str]) -> list[str]:
        """``models`` with the open ones moved to the end (order kept otherwise). A model
        whose cooldown is over is granted to this caller as the one trial, and stays
        behind the others for everyone else until that trial ends."""
        if not self.threshold or not self._states:
            return list(models)
        now = self.clock()
        ready: list[str] = []
        held: list[str] = []
        for model in models:
            state = self._states.get(model)
            if state is None or state.failures < self.threshold:
                ready.append(model)
            elif now >= state.open_until:
                state.open_until = now + self.cooldown  # the trial: others wait for its result
                ready.append(model)
            else:
                held.append(model)
        return ready + held

    def failed(self, model: str) -> bool:
        """Count a failed try of ``model``; ``True`` when this failure opened it."""
        if not self.threshold:
            return False
        state = self._states.setdefault(model, _State())
        state.failures += 1
        if state.failures >= self.threshold:
            state.open_until = self.clock() + self.cooldown
            return state.failures == self.threshold
        return False

    def succeeded(self, model: str) -> None:
        """A try of ``model`` answered: it is closed again."""
        if self._states:
            self._states.pop(model, None)

    def open_models(self) -> dict[str, float]:
        """Open models and the seconds left before they are tried first again."""
        now = self.clock()
        return {
            model: round(max(state.open_until - now, 0.0), 3)
            for model, state in self._states.items()
            if state.failures >= self.threshold
        }


__all__ = ["CircuitBreaker"]
