"""The shared rule for who a request is for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from robutler_specs import AgentSpec, Identity, Message, RequestContext
from robutler_specs.caller import caller, caller_key, describe_source


def ctx(user_id: str | None = None, user: str | None = None, headers: dict[str, str] | None = None) -> RequestContext:
    context = RequestContext(AgentSpec(name="a"), [Message(role="user", content="x")], params={"user": user} if user else {}, headers=headers)
    context.identity = Identity(user_id=user_id)
    return context


def test_first_source_that_names_a_user_wins() -> None:
    assert caller(ctx("alice", "mallory")) == ("identity", "alice")
    assert caller(ctx(None, "bob")) == ("param", "bob")
    assert caller(ctx(None, None, {"x-user-id": "carol"}), ("identity", "header:X-User-Id")) == ("header:X-User-Id", "carol")
    assert caller(ctx(None, "  ")) is None


def test_claimed_ids_never_collide_with_authenticated_ones() -> None:
    assert caller_key("identity", "alice") != caller_key("param", "alice")
    assert describe_source("param") == "the request's `user` field"


@given(st.text(min_size=1).filter(str.strip), st.text(min_size=1).filter(str.strip))
def test_keys_are_distinct_per_source(a: str, b: str) -> None:
    assert (caller_key("identity", a) == caller_key("param", b)) is False
