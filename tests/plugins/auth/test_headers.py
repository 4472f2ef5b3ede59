"""Reading credentials from headers: examples, and properties of the parser."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from robutler_plugin_auth.headers import MAX_TOKEN_LENGTH, bearer, challenge, credentials
from robutler_specs import Unauthorized

tokens = st.from_regex(r"[\x21-\x7e]{1,300}", fullmatch=True)
blanks = st.text(alphabet=" \t", max_size=3)
bearer_words = st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR"])


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"authorization": "Bearer abc.def.ghi"}, "abc.def.ghi"),
        ({"authorization": "  bearer   sk-123  "}, "sk-123"),
        ({"authorization": "Bearer"}, None),  # an empty token is no credential
        ({"authorization": ""}, None),
        ({"x-api-key": "key-1"}, "key-1"),
        ({"x-api-key": "key-1", "authorization": "Bearer key-1"}, "key-1"),
        ({"x-api-key": "  ", "authorization": "Bearer tok"}, "tok"),
    ],
)
def test_credentials_examples(headers: dict[str, str], expected: str | None) -> None:
    assert credentials(headers) == expected


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"authorization": "Basic dXNlcjpwYXNz"}, "must use the Bearer scheme"),
        ({"authorization": "sk-live-secret-key"}, "must use the Bearer scheme"),
        ({"authorization": "Bearer two words"}, "characters a key or token cannot have"),
        ({"authorization": "Bearer caf\u00e9"}, "characters a key or token cannot have"),
        ({"authorization": "Bearer " + "a" * (MAX_TOKEN_LENGTH + 1)}, "longer than"),
        ({"authorization": "Bearer one", "x-api-key": "two"}, "two different credentials"),
        ({"x-api-key": "a\nb"}, "X-API-Key header contains characters"),
    ],
)
def test_malformed_headers_are_401_invalid_request(headers: dict[str, str], words: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        credentials(headers, realm="r")
    error = caught.value
    assert error.status == 401 and error.code == "invalid_request"
    assert words in error.message
    assert error.headers["WWW-Authenticate"].startswith('Bearer realm="r", error="invalid_request"')
    # the credential itself is never echoed back
    assert "secret-key" not in error.message and "dXNlcjpwYXNz" not in error.message


def test_challenge_is_rfc6750_and_quotes_safely() -> None:
    assert challenge("robutler") == 'Bearer realm="robutler"'
    value = challenge("robutler", "invalid_token", 'say "hi" \\ caf\u00e9', scope="admin")
    assert value == (
        'Bearer realm="robutler", error="invalid_token", '
        "error_description=\"say 'hi' ? caf?\", scope=\"admin\""
    )


@given(st.dictionaries(st.sampled_from(["authorization", "x-api-key", "other"]), st.text(max_size=60)))
@example({"authorization": "\n"})
@example({"authorization": "Bearer\n"})
@example({"authorization": "\x00"})
def test_parser_never_raises_anything_but_unauthorized(headers: dict[str, str]) -> None:
    try:
        token = credentials(headers)
    except Unauthorized as exc:
        assert exc.status == 401 and "WWW-Authenticate" in exc.headers
    else:
        # what it returns is always a clean token, or nothing
        assert token is None or (0 < len(token) <= MAX_TOKEN_LENGTH and token.isascii() and " " not in token)


@given(bearer_words, blanks, st.text(alphabet=" \t", min_size=1, max_size=3), tokens, blanks)
def test_well_formed_bearer_headers_round_trip(scheme: str, lead: str, gap: str, token: str, trail: str) -> None:
    header = f"{lead}{scheme}{gap}{token}{trail}"
    assert bearer(header) == token
    assert credentials({"authorization": header}) == token
    assert credentials({"x-api-key": f"{lead}{token}{trail}"}) == token
    assert credentials({"authorization": header, "x-api-key": token}) == token


@given(st.text(min_size=1, max_size=40).filter(lambda s: s.strip(" \t") != ""), tokens)
def test_any_other_scheme_is_refused(scheme: str, token: str) -> None:
    if scheme.strip(" \t").lower() == "bearer":
        return
    with pytest.raises(Unauthorized):
        credentials({"authorization": f"{scheme} {token}"})
