"""``robutler-kernel migrate``: V1 agent configs to V2 configs that pass ``check`` and serve.

The design's example V1 agent (the customer-service bot with memory, guardrails, google
search and pricing) is migrated and served end to end, paid with a payment token, over a
real socket with the official client and a fake OpenAI behind it; a folder of varied V1
configs (JSON and YAML, comments, tools with access levels, prices) migrates into configs
that pass ``check``; generated V1 configs never crash the tool and every field is mapped or
reported; malformed files are ``file:line`` errors and nothing is written.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from robutler_kernel.check import check_file
from robutler_kernel.cli import main
from robutler_kernel.migrate import Installed, installed_skills, plan, write
from robutler_kernel.testing import FakeOpenAI, ServeProcess

ROOT = Path(__file__).resolve().parents[2]
V1_DIR = Path(__file__).parent / "v1_agents"
#: The plugins ``check`` is given (the ones a migration maps to, when installed).
PLUGINS = [
    importlib.import_module(f"robutler_plugin_{name}")
    for name in ("openai", "anthropic", "memory", "longterm", "vector", "guardrails", "auth", "payments", "scripted")
    if importlib.util.find_spec(f"robutler_plugin_{name}") is not None
]
ENV = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}


@pytest.fixture(scope="module")
def installed() -> Installed:
    return installed_skills()


@pytest.fixture(autouse=True)
def _keep_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # tools are imported from the V1 folder


def check(path: Path) -> list[str]:
    report = check_file(path, env={**os.environ, **ENV}, plugins=PLUGINS, discover=False)
    return report.errors


# -- the design's example, end to end ------------------------------------------------------------


def test_design_example_migrated_and_served_end_to_end(tmp_path: Path) -> None:
    shutil.copy(V1_DIR / "customer-service-bot.json", tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "robutler_kernel.cli", "migrate", "customer-service-bot.json"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "google_search" in run.stdout and "wrote robutler.yaml" in run.stdout
    config = tmp_path / "robutler.yaml"
    text = config.read_text()
    assert "google_search" in text  # what was not migrated is a comment in the config
    assert check(config) == []
    token = subprocess.run(
        [sys.executable, "-m", "robutler_kernel.cli", "payments", "token", "create", "--balance", "100"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, **ENV},
    )
    assert token.returncode == 0, token.stderr
    payment_token = re.search(r"rpt_\S+", token.stdout).group(0)  # type: ignore[union-attr]
    with FakeOpenAI() as fake, ServeProcess(
        config, cwd=tmp_path, env={**ENV, "OPENAI_BASE_URL": fake.base_url}
    ) as server:
        client = openai.OpenAI(
            base_url=f"{server.url}/v1", api_key="unused", max_retries=0, default_headers={"X-Payment-Token": payment_token, "Authorization": ""},
        )
        completion = client.completions.create(model="customer-service-bot", prompt="Where is my order?")
        assert completion.choices[0].text and completion.usage is not None
        assert fake.requests[-1].json["model"] == "gpt-4"
        system = fake.requests[-1].json["messages"][0]
        assert system["role"] == "system" and "customer service" in system["content"]
        chunks = list(client.completions.create(model="customer-service-bot", prompt="And now?", stream=True))
        assert "".join(c.choices[0].text for c in chunks if c.choices)
        chat = client.chat.completions.create(model="customer-service-bot", messages=[{"role": "user", "content": "Hi"}])
        assert chat.usage is not None and getattr(chat.usage, "cost", 0) >= 5  # the V1 per_call price
        # A V1 client named no model: the only agent answers.
        legacy = httpx.post(f"{server.url}/v1/completions", json={"prompt": "hi"}, headers={"X-Payment-Token": payment_token})
        assert legacy.status_code == 200 and legacy.json()["model"] == "customer-service-bot"
        assert float(legacy.headers["x-robutler-cost"]) >= 5
        unpaid = httpx.post(f"{server.url}/v1/completions", json={"prompt": "hi"})
        assert unpaid.status_code == 402


# -- a folder of varied V1 configs ---------------------------------------------------------------


def test_a_folder_of_varied_configs_passes_check(tmp_path: Path, installed: Installed) -> None:
    out = tmp_path / "v2" / "robutler.yaml"
    migration = plan(V1_DIR, out, installed=installed)
    assert not migration.blocked, migration.errors
    assert not migration.complete  # google_search, database, storage... are reported
    names = [a.name for a in migration.agents]
    assert names == ["customer-service-bot", "research-assistant", "triage", "escalation-desk"]
    write(migration.outputs)
    assert sorted(p.name for p in out.parent.iterdir()) == ["robutler.yaml", "robutler_v1_tools.py"]
    assert check(out) == []
    text = out.read_text()
    # YAML input: comments and key order kept.
    assert "# The research assistant of the shop's staff." in text and "instructions: |  # the system prompt" in text
    research = text.split("  research-assistant:")[1].split("\n  triage:")[0]
    keys = [line.strip().split(":")[0] for line in research.splitlines() if re.match(r"    \w", line)]
    assert keys == ["description", "instructions", "model", "skills", "owner", "tools", "intents", "metadata"]
    assert "default_agent: customer-service-bot" in text


def test_the_folder_per_file_with_tools_scoped(tmp_path: Path, installed: Installed) -> None:
    from robutler_kernel import Kernel
    from robutler_kernel.config import load_config

    out = tmp_path / "v2"
    out.mkdir()
    migration = plan(V1_DIR, out, installed=installed)
    write(migration.outputs)
    assert sorted(p.name for p in out.iterdir()) == [
        "customer-service-bot.yaml", "research-assistant.yaml", "research_assistant_v1_tools.py", "support-team.yaml",
    ]
    for config in out.glob("*.yaml"):
        assert check(config) == [], config
    os.environ.update(ENV)
    kernel = Kernel(load_config(out / "research-assistant.yaml"), plugins=PLUGINS, discover=False)
    tools = {t.name: t.scope for t in kernel.agent("research-assistant").tools.values()}  # type: ignore[union-attr]
    assert {k: tools[k] for k in ("lookup_order", "refund", "order_count")} == {"lookup_order": "owner", "refund": "admin", "order_count": "all"}
    spec = kernel.agents["research-assistant"]
    assert spec.skills["payments"]["tools"] == {"refund": 0.5}  # type: ignore[index]
    assert spec.skills["long_term_memory"] == {"path": "./research-facts.db", "recall_limit": 5}


def test_pricing_maps_to_payments(installed: Installed, tmp_path: Path) -> None:
    v1 = tmp_path / "priced.yaml"
    v1.write_text("name: priced\nmodel: gpt-4o\npricing: {per_token: 0.002, per_call: 1.5, min_balance: 2, markup: 0.1}\n")
    migration = plan(v1, tmp_path / "out.yaml", installed=installed)
    payments = migration.agents[0].node["skills"]["payments"]
    assert dict(payments["models"]["*"]) == {"prompt": 2, "completion": 2}
    assert (payments["request_fee"], payments["min_balance"], payments["markup"]) == (1.5, 2, 0.1)
    assert payments["default_reservation"] >= 2 + 1
    assert migration.agents[0].node["skills"]["auth"] == {"allow_anonymous": True}


# -- the command: --check, all or nothing, --force, -o --------------------------------------------


def test_check_prints_what_would_change_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", str(V1_DIR / "customer-service-bot.json"), "--check", "-o", str(tmp_path / "x.yaml")]) == 1
    out = capsys.readouterr().out
    assert "system_prompt: instructions" in out and "NOT MIGRATED" in out and "google_search" in out
    assert "would write:" in out and not (tmp_path / "x.yaml").exists()


def test_check_exits_0_when_everything_migrates(tmp_path: Path) -> None:
    v1 = tmp_path / "plain.json"
    v1.write_text(json.dumps({"name": "plain", "system_prompt": "Hi", "model": "gpt-4o-mini", "capabilities": ["memory"]}))
    assert main(["migrate", str(v1), "--check", "-o", str(tmp_path / "out.yaml")]) == 0


def test_nothing_is_overwritten_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "robutler.yaml"
    out.write_text("# mine\n")
    assert main(["migrate", str(V1_DIR), "-o", str(out)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "# mine\n" and not (tmp_path / "robutler_v1_tools.py").exists()
    assert main(["migrate", str(V1_DIR), "-o", str(out), "--force"]) == 0
    assert "customer-service-bot" in out.read_text() and (tmp_path / "robutler_v1_tools.py").exists()


def test_an_unknown_model_writes_nothing_and_model_map_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "a.yaml").write_text("name: a\nmodel: gpt-4o\n")
    (v1 / "b.yaml").write_text("name: b\nmodel: llama-3-70b\n")
    out = tmp_path / "out.yaml"
    assert main(["migrate", str(v1), "-o", str(out)]) == 1
    assert "b.yaml:2" in capsys.readouterr().out and not out.exists()  # all or nothing
    assert main(["migrate", str(v1), "-o", str(out), "--model-map", "llama-3-70b=scripted/echo"]) == 0
    assert "model: scripted/echo" in out.read_text()
    assert check(out) == []


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("bad.json", '{\n  "name": "x",\n  "model": "gpt-4"\n  "capabilities": []\n}\n', "bad.json:4: invalid JSON"),
        ("bad.yaml", "name: x\nsystem_prompt: [unclosed\nmodel: gpt-4\n", "bad.yaml:3: invalid YAML"),
        ("list.yaml", "name: x\nagents:\n  - name: a\n  - 42\n", "list.yaml:4: expected an agent"),
        ("empty.yaml", "", "empty.yaml:1: the file is empty"),
        ("scalar.json", "42", "scalar.json:1: expected a V1 agent"),
        ("model.yaml", "name: x\nmodel: 42\n", "model.yaml:2"),
    ],
)
def test_malformed_files_are_file_line_errors(tmp_path: Path, installed: Installed, name: str, text: str, error: str) -> None:
    (tmp_path / name).write_text(text)
    migration = plan(tmp_path / name, tmp_path / "out.yaml", installed=installed)
    problems = migration.errors + [str(f) for f in migration.findings if f.level == "error"]
    assert migration.blocked and migration.outputs == []
    assert any(error in p for p in problems), problems


# -- generated V1 configs -----------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False, allow_infinity=False), _text)
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=6)
_capability = st.sampled_from(["memory", "long_term_memory", "vector_db", "guardrails", "google_search", "database",
                               "storage", "litellm", "teleport"]) | _text
V1_AGENT = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(_text, st.sampled_from(["bot", "health", "a b c"]), _scalar),
        "system_prompt": st.one_of(_text, _value),
        "description": st.one_of(_text, _value),
        "model": st.one_of(st.sampled_from(["gpt-4", "o3-mini", "claude-3-haiku", "text-davinci-003", "llama"]), _value),
        "openai_api_key": _text,
        "anthropic_api_key": _text,
        "temperature": st.floats(0, 2),
        "capabilities": st.one_of(st.lists(_capability, max_size=4), st.dictionaries(_capability, _value, max_size=2), _value),
        "memory_config": st.one_of(st.fixed_dictionaries({}, optional={"max_messages": st.integers(-3, 500), "ttl": _value}), _value),
        "vector_db_config": st.one_of(st.fixed_dictionaries({}, optional={"milvus_host": _text, "milvus_port": _value}), _value),
        "pricing": st.one_of(st.dictionaries(st.sampled_from(["per_token", "per_call", "per_minute", "currency", "x"]), _value), _value),
        "tools": st.one_of(st.lists(st.one_of(_value, st.fixed_dictionaries({}, optional={
            "name": _value, "implementation": st.sampled_from(["v1_shop_tools:refund", "nowhere.fn", "x"]) | _value,
            "access_level": st.sampled_from(["owner", "admin", "staff"]) | _value,
        })), max_size=3), _value),
        "intents": _value,
        "owner": _value,
        "surprise": _value,
    },
)


def expected_fields(agent: dict[str, Any]) -> set[str]:
    """The V1 fields that must each be mapped or reported."""
    fields = {str(k) for k in agent if not (str(k).endswith("_config"))}
    caps = agent.get("capabilities")
    for key in ("memory_config", "vector_db_config"):
        if key in agent and isinstance(caps, list) and key.removesuffix("_config") in caps:
            fields.add(key)
    return fields


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(agent=V1_AGENT, as_json=st.booleans())
@example(agent={"capabilities": ["vector_db"], "vector_db_config": {"milvus_host": "", "milvus_port": None}}, as_json=False)
def test_generated_configs_never_crash_and_every_field_is_accounted_for(
    agent: dict[str, Any], as_json: bool, installed: Installed, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("gen")
    shutil.copy(V1_DIR / "v1_shop_tools.py", folder)
    if as_json:
        (folder / "agent.json").write_text(json.dumps(agent))
        source = folder / "agent.json"
    else:
        from ruamel.yaml import YAML

        with open(folder / "agent.yaml", "w") as f:
            YAML(typ="safe").dump(agent, f)
        source = folder / "agent.yaml"
    migration = plan(source, folder / "out.yaml", installed=installed, model_map={"llama": "scripted/echo"})
    if not agent:
        return
    if migration.errors:  # a file the YAML dumper wrote oddly: a file:line error, never a crash
        assert all(re.match(rf"{re.escape(str(source))}(:\d+)?: ", e) for e in migration.errors), migration.errors
        return
    assert len(migration.agents) == 1, migration.errors
    fields = {f.field.split(".")[0].split("[")[0] for f in migration.findings}
    missing = expected_fields(agent) - fields
    assert not missing, (missing, [str(f) for f in migration.findings])
    if not migration.blocked:
        write(migration.outputs)
        assert check(folder / "out.yaml") == [], (folder / "out.yaml").read_text()
