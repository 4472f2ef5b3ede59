"""The schedule of tries of one LLM call: retries with backoff, then the next model."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from robutler_specs import RequestError, RetryPolicy


class Tries:
    """Which model to try next, and how long to wait first.

    One instance serves one LLM call (one tool-loop round). ``model`` and ``attempt`` name
    the current try; after a failure, :meth:`after_failure` either returns the seconds to
    wait before the next try (which may be of the next model) or re-raises the error when
    none is left or the error is not worth another try.

    :param models: the models in the order they are tried (the agent's fallback list).
    :param policy: the agent's retry settings.
    :param rand: a ``random()``-like source of jitter (tests pass a fixed one).
    """

    __slots__ = ("_index", "_rand", "_tries_of_model", "attempt", "failures", "models", "policy")

    def __init__(
        self, models: Sequence[str], policy: RetryPolicy, rand: Callable[[], float] = random.random
    ) -> None:
        if not models:
            raise ValueError("no model to try")
        self.models = list(models)
        self.policy = policy
        self._rand = rand
        self._index = 0
        self._tries_of_model = 1
        #: The try number across all models, starting at 1.
        self.attempt = 1
        #: ``(model, error)`` of every failed try so far.
        self.failures: list[tuple[str, RequestError]] = []

    @property
    def model(self) -> str:
        """The model of the current try."""
        return self.models[self._index]

    def after_failure(self, error: RequestError) -> float:
        """Account for a failed try; return the seconds to wait before the next one.

        Raises ``error`` itself when it is not retryable or no try is left (its message
        then lists the tries, when there was more than one).
        """
        self.failures.append((self.model, error))
        if not error.retryable:
            raise error
        policy = self.policy
        retry_after = error.retry_after
        patient = retry_after is None or retry_after <= policy.max_retry_after
        if patient and self._tries_of_model < policy.attempts:
            self._tries_of_model += 1
            self.attempt += 1
            return self.backoff(self._tries_of_model - 1, retry_after)
        if self._index + 1 < len(self.models):
            self._index += 1
            self._tries_of_model = 1
            self.attempt += 1
            return 0.0
        if len(self.failures) > 1:
            summary = ", ".join(f"{model} x{n}" for model, n in self._counts())
            error.message = f"{error.message} [after {len(self.failures)} tries: {summary}]"
            error.args = (error.message,)
        raise error

    def backoff(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds before retry number ``retry`` (1 for the first) of one model."""
        policy = self.policy
        delay = min(policy.max_delay, policy.initial_delay * policy.multiplier ** (retry - 1))
        delay *= 1.0 - policy.jitter * self._rand()
        return max(delay, retry_after or 0.0)

    def _counts(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for model, _ in self.failures:
            counts[model] = counts.get(model, 0) + 1
        return list(counts.items())


__all__ = ["Tries"]
