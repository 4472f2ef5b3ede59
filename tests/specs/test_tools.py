"""Tests for robutler_specs.tools: ``@tool``, ``build_tool_spec``, ``parse_docstring``, ``@pricing``."""

import enum
import keyword
from typing import Any, Literal, Optional

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robutler_specs import (
    AgentSpec,
    Pricing,
    RequestContext,
    Skill,
    build_tool_spec,
    handoff,
    pricing,
    prompt,
    tool,
)
from robutler_specs.tools import parse_docstring


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(msgspec.Struct):
    street: str
    zip: int = 0


class Order(msgspec.Struct):
    items: list[str]
    ship_to: Address


# -- schema from type hints --------------------------------------------------------------


def test_scalar_and_container_types_map_to_json_schema_types() -> None:
    @tool
    def f(a: str, b: int, c: float, d: bool, e: list[str], g: dict[str, int]) -> str:
        """Scalars."""
        return ""

    props = build_tool_spec(f).parameters["properties"]
    assert props["a"] == {"type": "string"}
    assert props["b"] == {"type": "integer"}
    assert props["c"] == {"type": "number"}
    assert props["d"] == {"type": "boolean"}
    assert props["e"] == {"type": "array", "items": {"type": "string"}}
    assert props["g"]["type"] == "object"
    assert props["g"]["additionalProperties"] == {"type": "integer"}


def test_top_level_schema_is_a_closed_object_with_required_list() -> None:
    @tool
    def f(a: str, b: int = 2) -> str:
        """Closed."""
        return ""

    params = build_tool_spec(f).parameters
    assert params["type"] == "object"
    assert params["additionalProperties"] is False
    assert params["required"] == ["a"]
    assert "title" not in params


def test_tool_without_parameters_has_empty_properties_and_required() -> None:
    @tool
    def now() -> str:
        """The time."""
        return "noon"

    params = build_tool_spec(now).parameters
    assert params["properties"] == {}
    assert params["required"] == []
    assert params["additionalProperties"] is False


def test_optional_and_defaulted_parameters_are_not_required() -> None:
    @tool
    def f(a: str, b: int | None = None, c: int | None = None, d: str = "x") -> str:
        """Optional."""
        return ""

    params = build_tool_spec(f).parameters
    assert params["required"] == ["a"]
    b_types = {alt.get("type") for alt in params["properties"]["b"]["anyOf"]}
    assert b_types == {"integer", "null"}
    assert params["properties"]["d"]["default"] == "x"


def test_literal_becomes_enum() -> None:
    @tool
    def f(unit: Literal["celsius", "fahrenheit"]) -> str:
        """Units."""
        return ""

    prop = build_tool_spec(f).parameters["properties"]["unit"]
    assert sorted(prop["enum"]) == ["celsius", "fahrenheit"]


def test_enum_becomes_a_def_referenced_from_the_property() -> None:
    @tool
    def f(color: Color) -> str:
        """Enum."""
        return ""

    params = build_tool_spec(f).parameters
    assert params["properties"]["color"] == {"$ref": "#/$defs/Color"}
    assert sorted(params["$defs"]["Color"]["enum"]) == ["blue", "red"]


def test_nested_structs_land_in_defs_and_refs_resolve_inside_the_schema() -> None:
    @tool
    def place(order: Order) -> str:
        """Place an order."""
        return ""

    params = build_tool_spec(place).parameters
    defs = params["$defs"]
    assert params["properties"]["order"] == {"$ref": "#/$defs/Order"}
    assert defs["Order"]["properties"]["ship_to"] == {"$ref": "#/$defs/Address"}
    assert defs["Address"]["required"] == ["street"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(params):
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in defs, f"dangling {ref}"
    # The argument struct itself is not leaked into $defs.
    assert all(not name.endswith("_arguments") for name in defs)


def test_no_defs_key_when_no_nested_types() -> None:
    @tool
    def f(a: int) -> str:
        """Plain."""
        return ""

    assert "$defs" not in build_tool_spec(f).parameters


def test_nested_struct_arguments_are_validated_into_structs() -> None:
    @tool
    def place(order: Order) -> str:
        """Place an order."""
        return ""

    kwargs = build_tool_spec(place).parse_arguments(
        '{"order": {"items": ["tea"], "ship_to": {"street": "Main"}}}'
    )
    assert kwargs["order"] == Order(items=["tea"], ship_to=Address(street="Main"))


# -- descriptions --------------------------------------------------------------------------


def test_google_docstring_gives_description_and_parameter_descriptions() -> None:
    @tool
    def weather(city: str, days: int = 1) -> str:
        """Current weather for a city.

        Uses the public forecast service.

        Args:
            city: the city name,
                for example Paris.
            days (int): how many days ahead.

        Returns:
            days: not a parameter description.
        """
        return ""

    spec = build_tool_spec(weather)
    assert spec.description == "Current weather for a city."
    props = spec.parameters["properties"]
    assert props["city"]["description"] == "the city name, for example Paris."
    assert props["days"]["description"] == "how many days ahead."


def test_sphinx_docstring_gives_parameter_descriptions() -> None:
    @tool
    def weather(city: str, days: int = 1) -> str:
        """Current weather
        for a city.

        :param city: the city name,
            for example Paris.
        :param int days: how many days ahead.
        :return: the forecast.
        """
        return ""

    spec = build_tool_spec(weather)
    assert spec.description == "Current weather for a city."
    props = spec.parameters["properties"]
    assert props["city"]["description"] == "the city name, for example Paris."
    assert props["days"]["description"] == "how many days ahead."


def test_explicit_description_and_name_override_the_function() -> None:
    @tool(name="forecast", description="Weather forecast.")
    def weather(city: str) -> str:
        """Docstring description."""
        return ""

    spec = build_tool_spec(weather)
    assert spec.name == "forecast"
    assert spec.description == "Weather forecast."
    assert spec.definition.function.name == "forecast"
    assert spec.definition.function.description == "Weather forecast."
    assert spec.definition.function.parameters == spec.parameters


def test_undocumented_tool_falls_back_to_its_name() -> None:
    def ping() -> str:
        return "pong"

    spec = build_tool_spec(ping)
    assert spec.name == "ping"
    assert spec.description == "ping"


def test_parse_docstring_empty_and_none() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("") == ("", {})


# -- RequestContext injection ----------------------------------------------------------------


def test_request_context_parameter_is_excluded_and_recorded() -> None:
    @tool
    def whoami(ctx: RequestContext, greeting: str) -> str:
        """Who am I."""
        return ""

    spec = build_tool_spec(whoami)
    assert spec.context_param == "ctx"
    assert set(spec.parameters["properties"]) == {"greeting"}
    assert spec.parameters["required"] == ["greeting"]
    # The model can never pass the context itself.
    with pytest.raises(ValueError, match="ctx"):
        spec.parse_arguments({"greeting": "hi", "ctx": {}})


def test_context_param_is_none_without_request_context() -> None:
    @tool
    def f(a: int) -> int:
        """F."""
        return a

    assert build_tool_spec(f).context_param is None


def test_request_context_imported_only_for_type_checking_is_still_injected() -> None:
    # A plugin module using `from __future__ import annotations` and importing
    # RequestContext under `if TYPE_CHECKING:` leaves the annotation as an unresolvable
    # string; it must still be recognised as the injected context, not fail the tool.
    namespace: dict[str, Any] = {}
    exec(
        "def lookup(ctx: 'RequestContext', query: str) -> str:\n"
        "    '''Look something up.'''\n"
        "    return query\n",
        namespace,
    )
    spec = build_tool_spec(namespace["lookup"])
    assert spec.context_param == "ctx"
    assert set(spec.parameters["properties"]) == {"query"}


def test_skill_method_tools_skip_self_and_are_stamped_with_the_skill_name() -> None:
    class Weather(Skill):
        name = "weather"

        @tool(scope="owner")
        def forecast(self, ctx: RequestContext, city: str) -> str:
            """Forecast for a city."""
            return f"sunny in {city}"

        @prompt()
        def not_a_tool(self) -> str:
            return "prompt"

    (spec,) = Weather(None, AgentSpec(name="a")).tools()
    assert spec.name == "forecast"
    assert spec.plugin == "weather"
    assert spec.scope == "owner"
    assert spec.context_param == "ctx"
    assert set(spec.parameters["properties"]) == {"city"}
    assert spec.fn(None, city="Rome") == "sunny in Rome"  # bound to the instance


def test_async_tools_are_flagged_async() -> None:
    @tool
    async def fetch(url: str) -> str:
        """Fetch."""
        return url

    @tool
    def compute(x: int) -> int:
        """Compute."""
        return x

    assert build_tool_spec(fetch).is_async is True
    assert build_tool_spec(compute).is_async is False


def test_handoff_is_a_tool_marked_as_handoff() -> None:
    @handoff(name="to_human", description="Hand off to a human.")
    def escalate(reason: str) -> str:
        return reason

    spec = build_tool_spec(escalate)
    assert spec.is_handoff is True
    assert spec.name == "to_human"


# -- name and signature validation ---------------------------------------------------------------


@pytest.mark.parametrize("bad", ["has space", "dots.not.ok", "x" * 65, "ünïcode", "a/b"])
def test_invalid_tool_names_are_rejected(bad: str) -> None:
    @tool(name=bad)
    def f() -> str:
        """F."""
        return ""

    with pytest.raises(ValueError, match="tool name"):
        build_tool_spec(f)


@pytest.mark.parametrize("good", ["a", "get_weather", "get-weather-2", "x" * 64])
def test_valid_tool_names_are_accepted(good: str) -> None:
    @tool(name=good)
    def f() -> str:
        """F."""
        return ""

    assert build_tool_spec(f).name == good


def test_lambda_needs_an_explicit_name() -> None:
    with pytest.raises(ValueError, match="<lambda>"):
        build_tool_spec(lambda: "x")
    assert build_tool_spec(lambda: "x", name="constant").name == "constant"


def test_var_args_and_kwargs_are_rejected_naming_the_tool() -> None:
    def star(*args: int) -> int:
        """Star."""
        return 0

    def double_star(**kwargs: int) -> int:
        """Double star."""
        return 0

    with pytest.raises(ValueError, match=r"'star'.*\*args"):
        build_tool_spec(star)
    with pytest.raises(ValueError, match="'double_star'"):
        build_tool_spec(double_star)


def test_keyword_only_parameters_are_fine() -> None:
    def f(a: int, *, b: str, c: bool = False) -> str:
        """F."""
        return ""

    assert build_tool_spec(f).parameters["required"] == ["a", "b"]


def test_unresolvable_type_hint_is_a_value_error_naming_the_tool() -> None:
    namespace: dict[str, Any] = {}
    exec("def broken(x: 'NoSuchType') -> str:\n    return ''\n", namespace)
    with pytest.raises(ValueError, match="'broken'"):
        build_tool_spec(namespace["broken"])


def test_type_without_json_schema_is_a_value_error_naming_the_tool() -> None:
    class Opaque:
        pass

    def f(x: Opaque) -> str:
        """F."""
        return ""

    with pytest.raises(ValueError, match="'f'"):
        build_tool_spec(f)


# -- scope ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["all", "owner", "admin"])
def test_known_scopes_are_accepted(scope: str) -> None:
    @tool(scope=scope)  # type: ignore[arg-type]
    def f() -> str:
        """F."""
        return ""

    assert build_tool_spec(f).scope == scope


@pytest.mark.parametrize("decorator", [tool, prompt, handoff])
def test_unknown_scope_is_rejected_listing_the_valid_ones(decorator: Any) -> None:
    with pytest.raises(ValueError, match="all, owner, admin"):
        decorator(scope="root")


def test_build_tool_spec_validates_the_scope_keyword() -> None:
    def f() -> str:
        """F."""
        return ""

    with pytest.raises(ValueError, match="scope"):
        build_tool_spec(f, scope="superuser")


# -- pricing ----------------------------------------------------------------------------------


def test_pricing_below_tool() -> None:
    @tool
    @pricing(credits=2, per="call")
    def f() -> str:
        """F."""
        return ""

    assert build_tool_spec(f).pricing == Pricing(2.0, "call")


def test_pricing_above_tool() -> None:
    @pricing(credits=0.5, per="1k tokens")
    @tool(name="priced")
    def f() -> str:
        """F."""
        return ""

    spec = build_tool_spec(f)
    assert spec.name == "priced"
    assert spec.pricing == Pricing(0.5, "1k tokens")


def test_unpriced_tool_has_no_pricing() -> None:
    @tool
    def f() -> str:
        """F."""
        return ""

    assert build_tool_spec(f).pricing is None


def test_negative_price_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        pricing(credits=-1)


# -- parse_arguments ----------------------------------------------------------------------------


@tool
def _book(city: str, nights: int, budget: float = 100.0, breakfast: bool = False) -> str:
    """Book a hotel."""
    return ""


BOOK = build_tool_spec(_book)


def test_parse_arguments_from_json_string_and_dict_agree() -> None:
    from_json = BOOK.parse_arguments('{"city": "Rome", "nights": 2}')
    from_dict = BOOK.parse_arguments({"city": "Rome", "nights": 2})
    assert from_json == from_dict == {
        "city": "Rome",
        "nights": 2,
        "budget": 100.0,
        "breakfast": False,
    }


def test_parse_arguments_is_lenient_with_stringified_numbers() -> None:
    kwargs = BOOK.parse_arguments('{"city": "Rome", "nights": "3", "budget": "99.5"}')
    assert kwargs["nights"] == 3 and isinstance(kwargs["nights"], int)
    assert kwargs["budget"] == 99.5


def test_empty_argument_string_means_no_arguments() -> None:
    @tool
    def now() -> str:
        """Now."""
        return ""

    assert build_tool_spec(now).parse_arguments("") == {}


def test_missing_field_names_the_tool_and_the_field() -> None:
    with pytest.raises(ValueError, match=r"_book.*nights"):
        BOOK.parse_arguments('{"city": "Rome"}')


def test_extra_field_names_the_tool_and_the_field() -> None:
    with pytest.raises(ValueError, match=r"_book.*pets"):
        BOOK.parse_arguments({"city": "Rome", "nights": 1, "pets": 2})


def test_wrong_type_names_the_tool() -> None:
    with pytest.raises(ValueError, match=r"_book.*nights"):
        BOOK.parse_arguments({"city": "Rome", "nights": "many"})


def test_malformed_json_names_the_tool() -> None:
    with pytest.raises(ValueError, match="_book"):
        BOOK.parse_arguments('{"city": "Rome", ')


@pytest.mark.parametrize("payload", ["[1, 2]", "null"])
def test_non_object_arguments_are_a_value_error_naming_the_tool(payload: str) -> None:
    with pytest.raises(ValueError, match="_book"):
        BOOK.parse_arguments(payload)


# -- properties -----------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.text())
def test_parse_docstring_never_raises_on_arbitrary_text(text: str) -> None:
    description, params = parse_docstring(text)
    assert isinstance(description, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())


_identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in {"self", "ctx"}
)
# Description text: printable, single line, no leading/trailing blanks, and not a
# section header or a sphinx field on its own.
_words = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=12,
)
_line = st.lists(_words, min_size=1, max_size=6).map(" ".join)


@given(
    st.dictionaries(_identifiers, st.lists(_line, min_size=1, max_size=3), min_size=1, max_size=6),
    st.booleans(),
)
def test_google_args_section_round_trips(args: dict[str, list[str]], typed: bool) -> None:
    lines = ["Summary line.", "", "Args:"]
    for name, (first, *rest) in args.items():
        kind = " (str)" if typed else ""
        lines.append(f"    {name}{kind}: {first}")
        lines.extend(f"        {more}" for more in rest)
    lines += ["", "Returns:", "    something: not a parameter."]
    description, params = parse_docstring("\n".join(lines))
    assert description == "Summary line."
    assert params == {name: " ".join(parts) for name, parts in args.items()}


@given(st.dictionaries(_identifiers, st.lists(_line, min_size=1, max_size=3), min_size=1, max_size=6))
def test_sphinx_params_round_trip(args: dict[str, list[str]]) -> None:
    lines = ["Summary line.", ""]
    for name, (first, *rest) in args.items():
        lines.append(f":param {name}: {first}")
        lines.extend(f"    {more}" for more in rest)
    lines.append(":return: something.")
    description, params = parse_docstring("\n".join(lines))
    assert description == "Summary line."
    assert params == {name: " ".join(parts) for name, parts in args.items()}


_TYPES: dict[str, tuple[str, Any]] = {
    # annotation source -> a default value source
    "int": ("int", "3"),
    "str": ("str", "'x'"),
    "float": ("float", "1.5"),
    "bool": ("bool", "True"),
    "list[int]": ("list[int]", "None"),
    "Optional[str]": ("Optional[str]", "None"),
    "Literal['a', 'b']": ("Literal['a', 'b']", "'a'"),
    "Color": ("Color", "Color.RED"),
    "Address": ("Address", "None"),
}


@given(
    st.lists(
        st.tuples(_identifiers, st.sampled_from(sorted(_TYPES)), st.booleans()),
        max_size=8,
        unique_by=lambda p: p[0],
    ),
    st.booleans(),
)
def test_generated_signature_required_equals_params_without_defaults(
    params: list[tuple[str, str, bool]], with_context: bool
) -> None:
    parts = ["ctx: RequestContext"] if with_context else []
    parts.append("*")  # keyword-only: defaults may come in any order
    for name, type_key, has_default in params:
        annotation, default = _TYPES[type_key]
        parts.append(f"{name}: {annotation}" + (f" = {default}" if has_default else ""))
    if parts[-1] == "*":
        parts.pop()
    source = f"def generated({', '.join(parts)}) -> str:\n    return ''\n"
    namespace: dict[str, Any] = {
        "RequestContext": RequestContext,
        "Optional": Optional,
        "Literal": Literal,
        "Color": Color,
        "Address": Address,
    }
    exec(source, namespace)
    spec = build_tool_spec(namespace["generated"])
    schema = spec.parameters
    assert schema["required"] == [name for name, _, has_default in params if not has_default]
    assert list(schema["properties"]) == [name for name, _, _ in params]
    assert schema["additionalProperties"] is False
    assert spec.context_param == ("ctx" if with_context else None)
