"""The schedule of tries (``robutler_kernel.retry.Tries``): retries with backoff, then
the next model; a property test drives it through arbitrary runs of failures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robutler_kernel.retry import Tries
from robutler_specs import BadRequest, ProviderError, RateLimited, RetryPolicy, ServiceUnavailable


def test_backoff_grows_to_its_cap_without_jitter() -> None:
    tries = Tries(["a/x"], RetryPolicy(initial_delay=0.5, multiplier=2, max_delay=3, jitter=0))
    assert [tries.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_takes_a_random_share_off() -> None:
    policy = RetryPolicy(initial_delay=1, jitter=0.5)
    assert Tries(["a/x"], policy, rand=lambda: 0.0).backoff(1) == 1.0
    assert Tries(["a/x"], policy, rand=lambda: 1.0).backoff(1) == 0.5


def test_retry_after_is_waited_for_then_the_next_model_is_tried() -> None:
    tries = Tries(["a/x", "b/y"], RetryPolicy(attempts=2, initial_delay=0, jitter=0))
    assert tries.after_failure(RateLimited("busy", headers={"Retry-After": "3"})) == 3.0
    assert (tries.model, tries.attempt) == ("a/x", 2)
    assert tries.after_failure(ServiceUnavailable("down")) == 0.0  # straight to the next model
    assert (tries.model, tries.attempt) == ("b/y", 3)


def test_a_long_retry_after_moves_on_at_once() -> None:
    tries = Tries(["a/x", "b/y"], RetryPolicy(attempts=3, max_retry_after=5))
    assert tries.after_failure(RateLimited("busy", headers={"Retry-After": "60"})) == 0.0
    assert tries.model == "b/y"


def test_an_error_another_try_cannot_fix_is_raised_at_once() -> None:
    tries = Tries(["a/x", "b/y"], RetryPolicy(attempts=3))
    error = ProviderError("bad key", retryable=False)
    with pytest.raises(ProviderError) as caught:
        tries.after_failure(error)
    assert caught.value is error and error.message == "bad key"


def test_the_last_error_lists_every_try() -> None:
    tries = Tries(["a/x", "b/y"], RetryPolicy(attempts=2, initial_delay=0))
    tries.after_failure(ServiceUnavailable("down"))
    tries.after_failure(ServiceUnavailable("down"))
    tries.after_failure(ServiceUnavailable("down"))
    with pytest.raises(ServiceUnavailable, match=r"down \[after 4 tries: a/x x2, b/y x2\]"):
        tries.after_failure(ServiceUnavailable("down"))


def test_policy_values_are_checked() -> None:
    for bad in ({"attempts": 0}, {"jitter": 2}, {"multiplier": 0.5}, {"initial_delay": -1}):
        with pytest.raises(ValueError, match="retry"):
            RetryPolicy(**bad)  # type: ignore[arg-type]


RETRYABLE = st.sampled_from(["503", "429", "429-soon", "429-late", "502", "timeout"])
failure = st.one_of(RETRYABLE, st.just("400"))


def make_error(kind: str) -> Exception:
    from robutler_specs import ProviderTimeout

    return {
        "503": lambda: ServiceUnavailable("down"),
        "429": lambda: RateLimited("busy"),
        "429-soon": lambda: RateLimited("busy", headers={"Retry-After": "1"}),
        "429-late": lambda: RateLimited("busy", headers={"Retry-After": "999"}),
        "502": lambda: ProviderError("broke"),
        "timeout": lambda: ProviderTimeout("slow"),
        "400": lambda: BadRequest("nope"),
    }[kind]()


@given(
    models=st.lists(st.sampled_from(["a/1", "b/2", "c/3"]), min_size=1, max_size=3, unique=True),
    attempts=st.integers(1, 4),
    jitter=st.floats(0, 1),
    failures=st.lists(failure, max_size=15),
)
def test_any_run_of_failures_follows_the_policy(
    models: list[str], attempts: int, jitter: float, failures: list[str]
) -> None:
    policy = RetryPolicy(attempts=attempts, initial_delay=0.5, max_delay=4, jitter=jitter, max_retry_after=10)
    tries = Tries(models, policy)
    seen: list[str] = [tries.model]
    for kind in failures:
        error = make_error(kind)
        before = tries.model
        try:
            delay = tries.after_failure(error)  # type: ignore[arg-type]
        except type(error):
            # Raised: not retryable, or every try of every model is spent.
            assert kind == "400" or (
                tries.model == models[-1]
                and (seen.count(before) == attempts or kind == "429-late")
            )
            break
        assert tries.attempt == len(seen) + 1
        seen.append(tries.model)
        if tries.model == before:  # a retry of the same model: a backoff, at least Retry-After
            assert kind != "429-late"
            assert delay >= (1.0 if kind == "429-soon" else 0.0)
            assert delay <= max(4.0, 1.0)
        else:  # the next model, in order, at once
            assert models.index(tries.model) == models.index(before) + 1 and delay == 0.0
    # Models are tried in order, each at most ``attempts`` times.
    assert seen == sorted(seen, key=models.index)
    assert all(seen.count(m) <= attempts for m in models)
