"""The circuit breaker per model (``robutler_kernel.breaker``): unit cases, and a property
test that drives it with arbitrary failures, successes and time against a plain model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from robutler_kernel.breaker import CircuitBreaker

MODELS = ["a/1", "b/2", "c/3"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_model_that_keeps_failing_is_tried_last_then_given_one_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=2, cooldown=10, clock=clock)
    assert breaker.failed("a/1") is False
    assert breaker.order(MODELS) == MODELS
    assert breaker.failed("a/1") is True  # the second failure in a row opens it
    assert breaker.order(MODELS) == ["b/2", "c/3", "a/1"]
    assert breaker.open_models() == {"a/1": 10.0}
    clock.now = 10.0
    assert breaker.order(MODELS) == MODELS  # the cooldown is over: this caller's trial
    assert breaker.order(MODELS) == ["b/2", "c/3", "a/1"]  # everyone else waits for it
    breaker.succeeded("a/1")
    assert breaker.order(MODELS) == MODELS and breaker.open_models() == {}


def test_a_success_resets_the_count_and_zero_turns_it_off() -> None:
    breaker = CircuitBreaker(failures=2, cooldown=10, clock=Clock())
    breaker.failed("a/1")
    breaker.succeeded("a/1")
    breaker.failed("a/1")
    assert breaker.order(MODELS) == MODELS
    off = CircuitBreaker(failures=0, cooldown=10)
    for _ in range(10):
        off.failed("a/1")
    assert off.order(MODELS) == MODELS


def test_when_every_model_is_open_they_keep_their_order() -> None:
    breaker = CircuitBreaker(failures=1, cooldown=10, clock=Clock())
    for model in MODELS:
        breaker.failed(model)
    assert breaker.order(MODELS) == MODELS


step = st.one_of(
    st.tuples(st.just("fail"), st.sampled_from(MODELS)),
    st.tuples(st.just("ok"), st.sampled_from(MODELS)),
    st.tuples(st.just("wait"), st.floats(0, 15)),
    st.tuples(st.just("order"), st.just("")),
)


@given(threshold=st.integers(1, 3), steps=st.lists(step, max_size=40))
def test_any_history_matches_the_plain_model(threshold: int, steps: list[tuple[str, object]]) -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=threshold, cooldown=10, clock=clock)
    failures = dict.fromkeys(MODELS, 0)
    until = dict.fromkeys(MODELS, 0.0)
    for kind, arg in steps:
        if kind == "fail":
            assert isinstance(arg, str)
            failures[arg] += 1
            opened = breaker.failed(arg)
            assert opened == (failures[arg] == threshold)
            if failures[arg] >= threshold:
                until[arg] = clock.now + 10
        elif kind == "ok":
            assert isinstance(arg, str)
            failures[arg] = 0
            breaker.succeeded(arg)
        elif kind == "wait":
            assert isinstance(arg, float)
            clock.now += arg
        else:
            order = breaker.order(MODELS)
            assert sorted(order) == sorted(MODELS)  # nothing lost, nothing refused
            held = [m for m in MODELS if failures[m] >= threshold and clock.now < until[m]]
            granted = [m for m in MODELS if failures[m] >= threshold and clock.now >= until[m]]
            assert order == [m for m in MODELS if m not in held] + held
            for model in granted:  # one trial each: the next callers wait for its result
                until[model] = clock.now + 10
    assert set(breaker.open_models()) == {m for m in MODELS if failures[m] >= threshold}
