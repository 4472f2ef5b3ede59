"""Tests for robutler_kernel.config and robutler_kernel.envvars."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robutler_kernel.config import (
    RESERVED_AGENT_NAMES,
    KernelConfig,
    ServerConfig,
    config_from_dict,
    default_config,
    load_config,
    parse_config,
)
from robutler_kernel.envvars import expand_env, is_single_reference
from robutler_specs import AgentSpec, ConfigError

GOOD = """\
server:
  host: 0.0.0.0
  port: 8080
  metrics_port: null
  cors_origins: ["https://example.com"]
agents:
  assistant:
    description: Helps
    instructions: You are helpful.
    model: [openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest]
    skills:
      openai: {api_key: "${OPENAI_API_KEY}", base_url: "${OPENAI_BASE_URL:-https://api.openai.com/v1}"}
      short_term_memory:
    max_tool_rounds: 3
  echo.bot-2: {}
plugins:
  auth: {keys: ["${ADMIN_KEY:-dev-key}"]}
"""


def parse(text: str, env: dict[str, str] | None = None) -> KernelConfig:
    return parse_config(textwrap.dedent(text), source="robutler.yaml", env=env or {})


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return str(info.value)


def test_good_config() -> None:
    config = parse(GOOD, {"OPENAI_API_KEY": "sk-test"})
    assert config.server == ServerConfig(host="0.0.0.0", port=8080, metrics_port=None, cors_origins=["https://example.com"])
    assistant = config.agents["assistant"]
    assert assistant.name == "assistant"
    assert assistant.models == ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"]
    assert assistant.skills == {
        "openai": {"api_key": "sk-test", "base_url": "https://api.openai.com/v1"},
        "short_term_memory": None,
    }
    assert assistant.max_tool_rounds == 3
    assert config.agents["echo.bot-2"] == AgentSpec(name="echo.bot-2")
    assert config.plugins == {"auth": {"keys": ["dev-key"]}}


def test_server_defaults() -> None:
    server = parse("agents: {}").server
    assert (server.host, server.port, server.metrics_port) == ("127.0.0.1", 8000, 9090)
    assert (server.max_body_bytes, server.request_timeout, server.cors_origins, server.log_level) == (1048576, 300.0, [], "info")


def test_empty_file_is_all_defaults() -> None:
    assert parse("") == KernelConfig(server=ServerConfig(), agents={}, plugins={})
    assert parse("server:\nagents:\n  a:\n").agents == {"a": AgentSpec(name="a")}


def test_load_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "robutler.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("OPENAI_API_KEY", "from-environ")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:1234/v1")
    skills = load_config(path).agents["assistant"].skills
    assert skills["openai"] == {"api_key": "from-environ", "base_url": "http://localhost:1234/v1"}


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_config(tmp_path / "nope.yaml")


# ---- ${...} substitution in the file


def test_env_with_and_without_default() -> None:
    text = 'server: {host: "${HOST:-localhost}"}\nagents: {a: {description: "http://${HOST:-localhost}:${PORT}/x"}}'
    config = parse(text, {"PORT": "9000"})
    assert config.server.host == "localhost"
    assert config.agents["a"].description == "http://localhost:9000/x"
    assert parse(text, {"PORT": "1", "HOST": "h"}).agents["a"].description == "http://h:1/x"


def test_empty_variable_takes_default() -> None:
    assert parse("server: {host: '${HOST:-localhost}'}", {"HOST": ""}).server.host == "localhost"


def test_single_reference_takes_the_field_type() -> None:
    text = """
        server: {port: "${PORT}", metrics_port: "${METRICS:-null}", request_timeout: "${T:-2.5}"}
        agents: {a: {description: "${PORT}", max_tool_rounds: "${R:-4}"}}
        plugins: {p: {n: "${PORT}"}}
    """
    config = parse(text, {"PORT": "8001"})
    assert (config.server.port, config.server.metrics_port, config.server.request_timeout) == (8001, None, 2.5)
    assert config.agents["a"].description == "8001"  # a str field keeps the string
    assert config.agents["a"].max_tool_rounds == 4
    assert config.plugins["p"] == {"n": "8001"}  # free-form: stays a string


def test_only_a_lone_reference_is_converted() -> None:
    message = error_of("server:\n  port: '80${P}'\n", {"P": "00"})
    assert message == "robutler.yaml:2: server.port: Expected `int`, got `str`"
    assert "server.port" in error_of("server: {port: '8000'}")  # a quoted literal stays a str


def test_env_values_cannot_break_yaml_quoting() -> None:
    evil = 'x"\n  port: 1\n: {'
    assert parse("agents: {a: {instructions: '${EVIL}'}}", {"EVIL": evil}).agents["a"].instructions == evil


def test_escape_gives_literal_reference() -> None:
    assert parse("agents: {a: {instructions: 'say $${NAME}'}}").agents["a"].instructions == "say ${NAME}"


def test_missing_env_var_names_file_line_key_and_variable() -> None:
    message = error_of(GOOD)
    assert message.startswith("robutler.yaml:12: agents.assistant.skills.openai.api_key: ")
    assert "`OPENAI_API_KEY` is not set" in message
    assert "${OPENAI_API_KEY:-default}" in message


def test_all_missing_variables_are_reported() -> None:
    message = error_of("server: {host: '${A}'}\nagents: {a: {tools: ['${B}']}}")
    assert message.splitlines()[0].startswith("robutler.yaml:1: server.host: environment variable `A`")
    assert message.splitlines()[1].startswith("robutler.yaml:2: agents.a.tools[0]: environment variable `B`")


def test_malformed_reference() -> None:
    assert "unclosed `${`" in error_of("server: {host: '${HOST'}")
    assert "invalid reference `${1X}`" in error_of("server: {host: '${1X}'}")


# ---- validation errors


WRONG_TYPE = """\
server:
  port: 8000

agents:
  assistant:
    model: openai/gpt-4o
    max_tool_rounds: ten
"""


def test_wrong_type_names_file_line_and_key() -> None:
    assert error_of(WRONG_TYPE) == "robutler.yaml:7: agents.assistant.max_tool_rounds: Expected `int`, got `str`"


def test_unknown_keys_suggest_the_right_one() -> None:
    assert error_of("agents:\n  a:\n    max_tool_round: 3\n") == (
        "robutler.yaml:3: agents.a.max_tool_round: unknown key (did you mean `max_tool_rounds`?)"
    )
    assert error_of("server:\n  prot: 1\n") == "robutler.yaml:2: server.prot: unknown key (did you mean `port`?)"
    assert error_of("agent:\n  a: {}\n").startswith("robutler.yaml:1: agent: unknown key (did you mean `agents`?)")


def test_errors_are_collected_per_agent_in_file_order() -> None:
    message = error_of("""\
        agents:
          one:
            model: gpt-4o
          two:
            tool_timeout: 0
            max_tool_rounds: -1
        server:
          port: 70000
    """)
    assert message.splitlines() == [
        "robutler.yaml:3: agents.one.model: `gpt-4o` is not `<provider>/<model>` (e.g. `openai/gpt-4o`)",
        "robutler.yaml:5: agents.two.tool_timeout: must be > 0 seconds, got 0.0",
        "robutler.yaml:6: agents.two.max_tool_rounds: must be >= 0, got -1",
        "robutler.yaml:8: server.port: Expected `int` <= 65535",
    ]


@pytest.mark.parametrize("name", [*sorted(RESERVED_AGENT_NAMES), "Health", "V1"])
def test_reserved_agent_name(name: str) -> None:
    message = error_of(f"agents:\n  '{name}': {{}}\n")
    assert message.startswith(f"robutler.yaml:2: agents.{name}: `{name}` is reserved")


@pytest.mark.parametrize("name", ["-lead", "_x", "a b", "a/b", "x" * 65, "", "é"])
def test_bad_agent_name(name: str) -> None:
    assert "invalid agent name" in error_of(f"agents:\n  '{name}': {{}}\n")


def test_non_string_agent_name() -> None:
    assert "agent names must be strings" in error_of("agents:\n  123: {}\n")


def test_agent_name_field_must_match_key() -> None:
    assert parse("agents: {a: {name: a}}").agents["a"].name == "a"
    assert error_of("agents:\n  a:\n    name: b\n").startswith("robutler.yaml:3: agents.a.name: `b` does not match")


@pytest.mark.parametrize("model", ["gpt-4o", "/gpt", "openai/", "open ai/x", ""])
def test_bad_model_string(model: str) -> None:
    assert error_of(f"agents:\n  a:\n    model: '{model}'\n").startswith("robutler.yaml:3: agents.a.model: ")


def test_bad_model_in_list_and_empty_list() -> None:
    assert error_of("agents:\n  a:\n    model:\n      - openai/x\n      - nope\n").startswith(
        "robutler.yaml:5: agents.a.model[1]: `nope` is not `<provider>/<model>`"
    )
    assert "agents.a.model: must not be an empty list" in error_of("agents: {a: {model: []}}")
    assert "agents.a.allowed_models[0]" in error_of("agents: {a: {allowed_models: [x]}}")


def test_model_may_contain_slashes() -> None:
    assert parse("agents: {a: {model: openrouter/meta-llama/llama-3-70b}}").agents["a"].model == "openrouter/meta-llama/llama-3-70b"


def test_port_zero_and_disabled_metrics() -> None:
    server = parse("server: {port: 0, metrics_port: null}").server
    assert (server.port, server.metrics_port) == (0, None)


def test_bad_log_level_and_tool_reference() -> None:
    assert "server.log_level: Invalid enum value 'loud'" in error_of("server: {log_level: loud}")
    assert "agents.a.tools[0]: `nocolon` is not a `module:function` reference" in error_of("agents: {a: {tools: [nocolon]}}")


def test_top_level_must_be_a_mapping() -> None:
    assert error_of("- a\n- b\n").startswith("robutler.yaml:1: the configuration must be a mapping")
    assert "plugins: expected a mapping, got a list" in error_of("plugins: [a]")


def test_yaml_syntax_error_names_file_and_line() -> None:
    assert error_of("agents:\n  a: {model: [x\n  b: 2\n").startswith("robutler.yaml:3: invalid YAML: ")
    assert error_of("agents: {}\nagents: {}\n").startswith("robutler.yaml:2: invalid YAML: found duplicate key")


def test_unsupported_tag() -> None:
    assert error_of("agents:\n  a: !custom x\n") == "robutler.yaml:2: agents.a: unsupported YAML tag `!custom`"


def test_config_from_dict_same_validation_without_lines() -> None:
    assert config_from_dict({"agents": {"a": {"model": "openai/x"}}}).agents["a"].name == "a"
    with pytest.raises(ConfigError) as info:
        config_from_dict({"agents": {"a": {"max_tool_rounds": "3"}}})
    assert str(info.value) == "<dict>: agents.a.max_tool_rounds: Expected `int`, got `str`"


def test_config_from_dict_accepts_structs() -> None:
    config = config_from_dict({"server": ServerConfig(port=1), "agents": {"a": AgentSpec(model="openai/x")}})
    assert (config.server.port, config.agents["a"].name) == (1, "a")
    with pytest.raises(ConfigError, match=r"^<dict>: agents\.v1: `v1` is reserved"):
        config_from_dict({"agents": {"v1": AgentSpec()}})


def test_default_config() -> None:
    config = default_config()
    assert list(config.agents) == ["assistant"]
    agent = config.agents["assistant"]
    assert (agent.name, agent.model, agent.skills) == ("assistant", "scripted/echo", {})
    assert agent.description == "A friendly offline demo agent"
    assert agent.instructions == "You are a helpful assistant."
    assert config.server == ServerConfig() and config.plugins == {}


# ---- the ${...} parser, property-based

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
DEFAULTS = st.text(st.characters(blacklist_characters="}", blacklist_categories=["Cs"])).filter(lambda d: "${" not in d)
TEXT = st.text(st.sampled_from("${}:-_aZ0 $\\\n"), max_size=30) | st.text(max_size=30)


@given(st.text().filter(lambda t: "${" not in t))
def test_text_without_references_is_unchanged(text: str) -> None:
    assert expand_env(text, {}) == text


@given(st.text())
def test_escaping_every_reference_round_trips(text: str) -> None:
    assert expand_env(text.replace("${", "$${"), {}) == text


@given(NAMES, DEFAULTS, st.none() | st.text())
def test_default_applies_when_unset_or_empty(name: str, default: str, value: str | None) -> None:
    env = {} if value is None else {name: value}
    assert expand_env(f"a${{{name}:-{default}}}b", env) == f"a{value or default}b"


@given(NAMES, st.text())
def test_values_are_inserted_verbatim(name: str, value: str) -> None:
    # a value is never expanded again, even if it looks like a reference
    assert expand_env(f"${{{name}}}/${{{name}}}", {name: value}) == f"{value}/{value}"
    assert is_single_reference(f"${{{name}}}") and not is_single_reference(f"${{{name}}}x")


@given(NAMES)
def test_unset_without_default_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"`{name}` is not set"):
        expand_env(f"x ${{{name}}}", {})


@given(TEXT, st.dictionaries(NAMES, st.text(max_size=5), max_size=3))
def test_never_raises_anything_but_config_error(text: str, env: dict[str, str]) -> None:
    try:
        assert isinstance(expand_env(text, env), str)
    except ConfigError:
        pass


YAMLISH = st.lists(
    st.sampled_from(["agents:", "server:", "plugins:", "\n", "  ", "a:", "port:", "model:", "- ", "[", "]", "{", "}",
                     ", ", "'", '"', "${X}", "${Y:-1}", "$${", "${", "null", "-1", "x/y", "&a ", "*a", "<<: ", "!t "]),
    max_size=25,
).map("".join)


@given(TEXT | YAMLISH)
def test_parse_config_never_raises_anything_but_config_error(text: str) -> None:
    try:
        parse_config(text, env={})
    except ConfigError:
        pass


def test_the_documented_example_loads() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    example = doc.split("## A complete example")[1].split("```yaml\n")[1].split("```")[0]
    config = parse_config(example, env={"OPENAI_API_KEY": "k", "LEDGER_DSN": "postgresql://db/ledger", "PORT": "8123"})
    assert config.server.port == 8123
    assert config.agents["assistant"].skills["openai"] == {"api_key": "k", "base_url": "https://api.openai.com/v1"}
    assert config.plugins == {"payments": {"backend": "postgres", "dsn": "postgresql://db/ledger"}}


def test_yaml_1_2_yes_is_a_string() -> None:
    assert parse("agents: {a: {description: yes}}").agents["a"].description == "yes"


def test_an_unset_variable_does_not_hide_the_other_problems() -> None:
    message = error_of(
        """\
        server:
          port: ${UNSET_PORT}
        agents:
          bot:
            max_tool_rounds: lots
            skills:
              openai: {api_key: "${UNSET_KEY}"}
          health: {}
        """
    )
    assert message.splitlines() == [
        "robutler.yaml:2: server.port: environment variable `UNSET_PORT` is not set; set it or give a default: `${UNSET_PORT:-default}`",
        "robutler.yaml:5: agents.bot.max_tool_rounds: Expected `int`, got `str`",
        "robutler.yaml:7: agents.bot.skills.openai.api_key: environment variable `UNSET_KEY` is not set; set it or give a default: `${UNSET_KEY:-default}`",
        "robutler.yaml:8: agents.health: `health` is reserved for a kernel route; reserved: " + ", ".join(sorted(RESERVED_AGENT_NAMES)),
    ]


def test_load_config_remembers_the_file_folder_and_base_dir_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "robutler.yaml"
    path.write_text("agents: {}\n")
    assert load_config(path).base_dir == str(tmp_path)
    assert parse("agents: {}\n").base_dir is None
    expected = "expected `server`, `agents`, `agents_dir`, `plugins`"
    assert error_of("base_dir: /tmp\n") == f"robutler.yaml:1: base_dir: unknown key (did you mean `agents_dir`?); {expected}"
    assert error_of("agent: {}\n") == f"robutler.yaml:1: agent: unknown key (did you mean `agents`?); {expected}"
