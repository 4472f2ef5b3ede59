"""Meta-tests: the hook specs are a documented, tested API; the kernel stays a microkernel."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import robutler_kernel
import robutler_specs
from robutler_specs import ENTRY_POINT_GROUP, KERNEL_HOOKS, PROJECT_NAME, SKILL_HOOKS, KernelHooks, SkillHooks

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir() and not p.name.startswith((".", "_")))

ALL_HOOKS = [(name, SkillHooks) for name in SKILL_HOOKS] + [(name, KernelHooks) for name in KERNEL_HOOKS]

#: Provider SDKs and database drivers the kernel and the contract must never import.
FORBIDDEN = {"openai", "anthropic", "asyncpg", "redis", "pymilvus", "aiohttp", "httpx", "psycopg", "psycopg2", "sqlalchemy"}


def _spec(owner: type, name: str) -> tuple[object, dict[str, object]]:
    fn = getattr(owner, name)
    opts = getattr(fn, f"{PROJECT_NAME}_spec", None)
    assert opts is not None, f"{owner.__name__}.{name} is not marked with @hookspec"
    return fn, opts


def test_spec_hook_lists_are_complete() -> None:
    assert SKILL_HOOKS and KERNEL_HOOKS
    assert not set(SKILL_HOOKS) & set(KERNEL_HOOKS)
    for name, owner in ALL_HOOKS:
        _spec(owner, name)


# -- (a) every hook is documented --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "owner"), ALL_HOOKS, ids=[n for n, _ in ALL_HOOKS])
def test_every_hook_documents_each_parameter_and_its_return(name: str, owner: type) -> None:
    fn, opts = _spec(owner, name)
    doc = inspect.getdoc(fn) or ""
    assert doc, f"hook {name} has no docstring"
    params = [p for p in inspect.signature(fn).parameters if p != "self"]  # type: ignore[arg-type]
    missing = [p for p in params if not re.search(rf"^:param {p}:", doc, re.M)]
    assert not missing, f"hook {name}: no ':param <name>:' for {missing}"
    documented = re.findall(r"^:param (\w+):", doc, re.M)
    stale = sorted(set(documented) - set(params))
    assert not stale, f"hook {name}: documents parameters it does not take: {stale}"
    assert re.search(r"^:return:", doc, re.M), f"hook {name}: no ':return:' line"
    if opts.get("firstresult"):
        assert "Stops at first non-None result" in " ".join(doc.split()), (
            f"firstresult hook {name} must say 'Stops at first non-None result'"
        )


# -- (b) every hook is tested -------------------------------------------------------------------------


def _test_functions() -> set[str]:
    names: set[str] = set()
    for path in TESTS.rglob("*.py"):
        names.update(re.findall(r"^\s*(?:async\s+)?def (test_hook_\w+)\s*\(", path.read_text(), re.M))
    return names


def test_every_hook_has_a_test_hook_function() -> None:
    defined = _test_functions()
    missing = sorted(name for name, _ in ALL_HOOKS if f"test_hook_{name}" not in defined)
    assert not missing, "hooks without a test_hook_<name> under tests/: " + ", ".join(missing)


# -- (c) no provider SDK or database driver in the kernel or the contract --------------------------------


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _sources(package: object) -> list[Path]:
    root = Path(package.__file__).parent  # type: ignore[attr-defined]
    return sorted(root.rglob("*.py"))


@pytest.mark.parametrize("package", [robutler_kernel, robutler_specs], ids=["kernel", "specs"])
def test_kernel_and_specs_import_no_provider_sdk_or_driver(package: object) -> None:
    root = Path(package.__file__).parent  # type: ignore[attr-defined]
    testing = root / "testing"
    offences = []
    for path in _sources(package):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top not in FORBIDDEN:
                continue
            if top == "httpx" and testing in path.parents:
                continue  # the test kit's ASGI client; never imported when serving
            offences.append(f"{path.relative_to(root.parent)}:{line}: import {module}")
    assert not offences, "\n".join(offences)


def test_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import redis.asyncio\n    from openai import AsyncOpenAI\n")
    assert [m for _, m in _imports(sample)] == ["redis.asyncio", "openai"]


def test_serving_the_kernel_loads_no_provider_sdk_or_driver() -> None:
    code = (
        "import robutler_kernel, robutler_kernel.server.app, robutler_kernel.cli, robutler_kernel.kernel\n"
        "import sys\n"
        f"forbidden = {sorted(FORBIDDEN)!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in forbidden))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"loaded when serving: {out.stdout.strip()}"


# -- (d) plugins never import the kernel ----------------------------------------------------------------


@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.name for p in PLUGINS])
def test_plugins_never_import_the_kernel(plugin: Path) -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line}: import {module}"
        for path in sorted((plugin / "src").rglob("*.py"))
        for line, module in _imports(path)
        if module.split(".")[0] == "robutler_kernel"
    ]
    assert not offences, "a plugin depends on robutler_specs only:\n" + "\n".join(offences)


# -- (e) every plugin is its own distribution with an entry point ----------------------------------------


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_there_are_plugins() -> None:
    assert "scripted" in [p.name for p in PLUGINS]


@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.name for p in PLUGINS])
def test_plugin_pyproject_declares_its_entry_point_and_the_contract(plugin: Path) -> None:
    pyproject = plugin / "pyproject.toml"
    assert pyproject.is_file(), f"{plugin.relative_to(ROOT)} has no pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    module = f"robutler_plugin_{plugin.name}"
    assert project["name"] == f"robutler-plugin-{plugin.name}"
    entry_points = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    assert entry_points, f"{pyproject.relative_to(ROOT)}: no [project.entry-points.\"{ENTRY_POINT_GROUP}\"]"
    for name, target in entry_points.items():
        target_module = target.split(":")[0]
        assert target_module.split(".")[0] == module, f"entry point {name} = {target!r} is not in {module}"
        assert (plugin / "src" / Path(*target_module.split("."))).is_dir() or (
            plugin / "src" / (str(Path(*target_module.split("."))) + ".py")
        ).is_file(), f"entry point {name} = {target!r} names no module under src/"
    dependencies = {_requirement_name(r) for r in project.get("dependencies", [])}
    assert "robutler-specs" in dependencies, f"{pyproject.relative_to(ROOT)} must depend on robutler-specs"
    assert "robutler-kernel" not in dependencies, "a plugin depends on the contract, not on the kernel"


# -- (f) a plugin's packaging brings the plugins its skills require ----------------------------------------


def _plugin_skills(plugin: Path) -> list[type[robutler_specs.Skill]]:
    """The Skill classes the plugin's entry point modules provide (``robutler_skills``)."""
    import importlib

    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    skills: list[type[robutler_specs.Skill]] = []
    for target in project["entry-points"][ENTRY_POINT_GROUP].values():
        module = importlib.import_module(target.split(":")[0])
        provider = getattr(module, "robutler_skills", None)
        skills.extend(provider() if provider else [])
    return skills


def _skill_distributions() -> dict[str, str]:
    """Skill name -> the distribution (``robutler-plugin-<dir>``) whose entry point provides it."""
    return {skill.name: f"robutler-plugin-{plugin.name}" for plugin in PLUGINS for skill in _plugin_skills(plugin)}


def test_every_plugin_provides_a_skill_or_kernel_hooks() -> None:
    providers = _skill_distributions()
    assert providers["payments"] == "robutler-plugin-payments" and providers["auth"] == "robutler-plugin-auth"


@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.name for p in PLUGINS])
def test_plugin_dependencies_cover_the_skills_its_skills_require(plugin: Path) -> None:
    providers = _skill_distributions()
    own = f"robutler-plugin-{plugin.name}"
    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    dependencies = {_requirement_name(r) for r in project.get("dependencies", [])}
    missing = []
    for skill in _plugin_skills(plugin):
        for required in skill.requires:
            assert required in providers, f"skill {skill.name!r} requires {required!r}, which no plugin here provides"
            if providers[required] != own and providers[required] not in dependencies:
                missing.append(f"{providers[required]} (skill {skill.name!r} requires {required!r})")
    assert not missing, f"{plugin.name}/pyproject.toml: add to [project] dependencies: " + ", ".join(missing)
