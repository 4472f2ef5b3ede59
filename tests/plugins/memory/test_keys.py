"""Which conversation a request belongs to."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robutler_plugin_memory.keys import MAX_ID_LENGTH, conversation_key
from robutler_specs import ANONYMOUS, BadRequest, Identity

ALICE = Identity(user_id="alice")


def key(headers: dict[str, str] | None = None, identity: Identity = ANONYMOUS, user: object = None,
        **kw: str) -> str | None:
    return conversation_key("bot", headers or {}, identity, user, **kw)


def test_the_header_names_the_conversation_scoped_to_the_caller() -> None:
    assert key({"x-conversation-id": "c1"}) == "bot:c:anon:c1"
    assert key({"x-conversation-id": "c1"}, ALICE) == "bot:c:u=alice:c1"
    assert key({"x-conversation-id": "c1"}, user="bob") == "bot:c:f=bob:c1"
    # The authenticated identity wins over the user field.
    assert key({"x-conversation-id": "c1"}, ALICE, "bob") == "bot:c:u=alice:c1"


def test_without_the_header_the_identity_then_the_user_field() -> None:
    assert key(identity=ALICE) == "bot:u:alice"
    assert key(identity=ALICE, user="bob") == "bot:u:alice"
    assert key(user="bob") == "bot:f:bob"


def test_an_asserted_user_field_never_shares_an_authenticated_users_conversation() -> None:
    assert key(user="alice") != key(identity=ALICE)
    assert key({"x-conversation-id": "c"}, user="alice") != key({"x-conversation-id": "c"}, ALICE)


def test_an_anonymous_request_without_a_conversation_has_no_memory() -> None:
    assert key() is None
    assert key(user="") is None
    assert key(user=42) is None  # not a string: ignored


def test_the_agent_is_part_of_every_key() -> None:
    assert conversation_key("a", {"x-conversation-id": "c"}, ANONYMOUS, None) != conversation_key(
        "b", {"x-conversation-id": "c"}, ANONYMOUS, None
    )


def test_the_header_name_is_configurable() -> None:
    assert key({"x-session": "s1"}, header="X-Session") == "bot:c:anon:s1"
    assert key({"x-conversation-id": "c1"}, header="X-Session") is None


def test_an_empty_or_overlong_id_is_a_clear_400() -> None:
    with pytest.raises(BadRequest, match="X-Conversation-Id header is empty") as empty:
        key({"x-conversation-id": "  "})
    assert empty.value.status == 400 and empty.value.param == "X-Conversation-Id"
    with pytest.raises(BadRequest, match=f"limit is {MAX_ID_LENGTH}"):
        key({"x-conversation-id": "x" * (MAX_ID_LENGTH + 1)})
    assert key({"x-conversation-id": "x" * MAX_ID_LENGTH}) is not None


parts = st.text(min_size=1, max_size=20).filter(str.strip)


@given(parts, parts, parts, parts)
def test_property_different_callers_or_ids_never_share_a_key(user_a: str, user_b: str, conv_a: str,
                                                              conv_b: str) -> None:
    """Separators inside ids are encoded: no id can forge another caller's key."""
    a = key({"x-conversation-id": conv_a}, Identity(user_id=user_a))
    b = key({"x-conversation-id": conv_b}, Identity(user_id=user_b))
    assert (a == b) == (user_a == user_b and conv_a.strip() == conv_b.strip())
    assert (key(identity=Identity(user_id=user_a)) == key(identity=Identity(user_id=user_b))) == (user_a == user_b)
