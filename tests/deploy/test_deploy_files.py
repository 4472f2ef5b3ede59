"""Static checks of the deployment files in ``deploy/`` (Dockerfile, compose, Kubernetes,
Prometheus, Grafana) and ``docs/deployment.md``.

Nothing here builds an image or talks to a cluster: the files are parsed and cross-checked so
that ports, paths, probe endpoints, metric names and the config stay consistent with each other
and with the kernel's HTTP surface. Only the standard library, ruamel.yaml and pytest are used.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
CONFIG = DEPLOY / "robutler.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "robutler.json"
DOC = ROOT / "docs" / "deployment.md"

API_PORT = 8000
METRICS_PORT = 9090
CONFIG_PATH = "/etc/robutler/robutler.yaml"
SERVE_CMD = ["robutler-kernel", "serve", "--config", CONFIG_PATH, "--host", "0.0.0.0"]

# The kernel's Prometheus metrics (the seed's Ch6 names and the LLM, tool and upstream ones):
# the dashboard may use nothing else, and shows each.
METRICS = {
    "robutler_requests_total",
    "robutler_request_duration_seconds",
    "robutler_active_connections",
    "robutler_skill_usage_total",
    "robutler_tokens_total",
    "robutler_llm_calls_total",
    "robutler_agent_health",
    "robutler_dynamic_agents_active",
    "robutler_llm_latency_seconds",
    "robutler_llm_time_to_first_token_seconds",
    "robutler_upstream_errors_total",
    "robutler_tool_calls_total",
    "robutler_tool_duration_seconds",
}
HISTOGRAMS = {"robutler_request_duration_seconds", "robutler_llm_latency_seconds",
              "robutler_llm_time_to_first_token_seconds", "robutler_tool_duration_seconds"}
ALLOWED_SERIES = METRICS | {m + s for m in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
AGENTS_DIR = DEPLOY / "agents"
HEALTH_ENDPOINTS = ["/", "/health", "/health/detailed", "/ready", "/live"]
ENV_VARS = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "ROBUTLER_LOAD_PLUGINS",
    "ROBUTLER_DISABLE_PLUGINS",
    "ROBUTLER_LOG_LEVEL",
]


# ---------------------------------------------------------------------------------- helpers


def load_all(path: Path) -> list[Any]:
    """Every non-empty YAML document in ``path`` (multi-document aware)."""
    return [doc for doc in YAML(typ="safe", pure=True).load_all(path.read_text()) if doc is not None]


def load_one(path: Path) -> Any:
    docs = load_all(path)
    assert len(docs) == 1, f"{path.relative_to(ROOT)}: expected one YAML document, got {len(docs)}"
    return docs[0]


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.y*ml") if p.name != "kustomization.yaml")


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in k8s_files() for doc in load_all(path)]


def k8s_object(kind: str) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o.get("kind") == kind]
    assert len(found) == 1, f"expected exactly one {kind} in deploy/k8s, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    containers = k8s_object("Deployment")["spec"]["template"]["spec"]["containers"]
    matching = [c for c in containers if c["name"] == "robutler"]
    assert matching, "the Deployment has no container named 'robutler'"
    return matching[0]


def container_ports() -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container()["ports"]}


def resolve_port(port: int | str) -> int:
    """A port given by number or by the container port's name, as a number."""
    if isinstance(port, int):
        return port
    ports = container_ports()
    assert port in ports, f"port name {port!r} is not a containerPort name ({sorted(ports)})"
    return ports[port]


def service_target(name: str) -> int:
    ports = {p["name"]: p for p in k8s_object("Service")["spec"]["ports"]}
    assert name in ports, f"the Service has no port named {name!r}"
    return resolve_port(ports[name].get("targetPort", ports[name]["port"]))


def config() -> dict[str, Any]:
    return load_one(CONFIG)


def agents_of(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The config's agents by name, whether written as a list or a mapping."""
    agents = cfg["agents"]
    if isinstance(agents, dict):
        return {name: {**(spec or {}), "name": name} for name, spec in agents.items()}
    return {a["name"]: a for a in agents}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def compose() -> dict[str, Any]:
    return load_one(COMPOSE)


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def compose_depends(service: dict[str, Any]) -> set[str]:
    deps = service.get("depends_on", [])
    return set(deps) if isinstance(deps, list) else set(deps.keys())


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path relative to deploy/, container path) of the service's bind mounts."""
    mounts = []
    for vol in service.get("volumes", []):
        if isinstance(vol, dict):
            if vol.get("type") == "bind":
                mounts.append((vol["source"], vol["target"]))
            continue
        source, target = vol.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "atan2", "inf", "nan"}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a small tokenizer, enough for dashboards)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"\{[^}]*\}", "{}", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "[]", s)  # range selectors (may hold $__rate_interval)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        if s[m.end() :].lstrip().startswith("(") or word.lower() in KEYWORDS | AGGREGATIONS:
            continue  # a function call, aggregation or operator keyword
        names.add(word)
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    d = dashboard()
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", []) if "expr" in t]
    for var in d.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if var.get("type") == "query" and query:
            m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*", query)
            exprs.append(m.group(1) if m else query)
    return exprs


# ------------------------------------------------------------------------------------- YAML


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    assert load_all(path), f"{path.relative_to(ROOT)} has no YAML document"


def test_expected_files_exist() -> None:
    for path in [DOCKERFILE, DOCKERIGNORE, COMPOSE, CONFIG, PROMETHEUS, DASHBOARD, DOC,
                 GRAFANA / "provisioning" / "datasources" / "prometheus.yml",
                 GRAFANA / "provisioning" / "dashboards" / "robutler.yml",
                 K8S / "kustomization.yaml"]:  # fmt: skip
        assert path.is_file(), f"missing {path.relative_to(ROOT)}"


# ---------------------------------------------------------------------------------- config


def agent_files() -> dict[str, dict[str, Any]]:
    """The agents of ``deploy/agents/`` (the config's ``agents_dir``) by name."""
    return {p.stem: {**load_one(p), "name": p.stem} for p in sorted(AGENTS_DIR.glob("*.yaml"))}


def test_config_has_the_example_agents() -> None:
    cfg = config()
    assert (DEPLOY / cfg["agents_dir"]).resolve() == AGENTS_DIR
    agents = agents_of(cfg)
    models = {name: a.get("model") for name, a in agents.items()}
    assert set(models.values()) == {"scripted/echo"}, "the config's own agents must need no provider key"
    files = agent_files()
    assert files["assistant"]["model"] == "openai/gpt-4o-mini"
    assert "${OPENAI_API_KEY}" in (AGENTS_DIR / "assistant.yaml").read_text(), "the key must come from the environment"
    text = CONFIG.read_text()
    for var in ("${REDIS_URL}", "${DATABASE_URL}", "${MILVUS_URI"):
        assert var in text, f"deploy/robutler.yaml does not use {var}"
    skills = {s for a in agents.values() for s in a.get("skills", {})}
    assert {"short_term_memory", "long_term_memory", "vector_memory", "rate_limit", "payments"} <= skills
    assert cfg["server"]["host"] == "0.0.0.0"
    assert cfg["server"].get("port", API_PORT) == API_PORT
    assert cfg["server"].get("metrics_port", METRICS_PORT) == METRICS_PORT


def test_config_agents_match_the_agent_spec() -> None:
    """Each agent entry is a valid ``robutler_specs.AgentSpec`` (when the contract is installed)."""
    specs = pytest.importorskip("robutler_specs.agent")
    msgspec = pytest.importorskip("msgspec")
    for name, agent in {**agents_of(config()), **agent_files()}.items():
        spec = msgspec.convert(agent, specs.AgentSpec)
        assert spec.name == name


def test_config_loads_with_the_kernel_loader() -> None:
    """The kernel's own loader accepts the file (when the kernel is installed): sections, agent
    names, models and ``${...}`` substitution. Skill configs are checked by the plugins, at
    ``robutler-kernel check`` time, which needs the plugins installed."""
    kernel_config = pytest.importorskip("robutler_kernel.config")
    env = {"OPENAI_API_KEY": "test-key", "DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r:6379/0"}
    loaded = kernel_config.parse_config(CONFIG.read_text(), source=str(CONFIG), env=env)
    assert set(loaded.agents) == set(agents_of(config()))
    assert loaded.server.host == "0.0.0.0"
    assert (loaded.server.port, loaded.server.metrics_port) == (API_PORT, METRICS_PORT)
    assert loaded.agents["echo"].skills["short_term_memory"]["redis_url"] == "redis://r:6379/0"
    assert loaded.plugins["payments"]["dsn"] == "postgresql://db/x"
    agent = kernel_config.parse_agent_file((AGENTS_DIR / "assistant.yaml").read_text(), "assistant",
                                           source="assistant.yaml", env=env)
    assert agent.skills["openai"]["api_key"] == "test-key"


def test_config_holds_no_secret() -> None:
    text = CONFIG.read_text()
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", text)
    assert not re.search(r"://[^/\s:@]+:[^/\s@$]+@", text), "credentials in a URL"


# ------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    args = {}
    for kw, rest in instructions:
        if kw == "FROM":
            break
        if kw == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    images = []
    for kw, rest in instructions:
        if kw == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
            images.append(image)
    assert len(images) >= 2, "expected a builder stage and a runtime stage"
    assert all(i == "python:3.11-slim" for i in images), images
    assert any(kw == "COPY" and "--from=" in rest for kw, rest in instructions)


def test_dockerfile_copies_every_local_package() -> None:
    sources = set()
    for kw, rest in dockerfile_instructions():
        if kw == "COPY" and "--from=" not in rest:
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            sources.update(p.rstrip("/") for p in parts[:-1])
    for package in ("plugin_specs", "kernel", "plugins"):
        assert package in sources, f"the Dockerfile does not COPY {package}/"
    assert "deploy/robutler.yaml" in sources
    run = " ".join(rest for kw, rest in dockerfile_instructions() if kw == "RUN")
    assert "pip wheel" in run and "plugins/*/" in run, "wheels must be built for every plugin"


def test_dockerfile_cmd_serves_the_config() -> None:
    cmds = [rest for kw, rest in dockerfile_instructions() if kw == "CMD"]
    assert cmds, "no CMD"
    assert json.loads(cmds[-1]) == SERVE_CMD


def test_dockerfile_healthcheck_uses_live_without_curl() -> None:
    checks = [rest for kw, rest in dockerfile_instructions() if kw == "HEALTHCHECK"]
    assert len(checks) == 1
    assert f"127.0.0.1:{API_PORT}/live" in checks[0] or f"localhost:{API_PORT}/live" in checks[0]
    assert "urllib" in checks[0] and "curl" not in checks[0]


def test_dockerfile_runs_as_non_root() -> None:
    users = [rest for kw, rest in dockerfile_instructions() if kw == "USER"]
    assert users, "no USER line: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    k8s_uid = k8s_object("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    if user.isdigit():
        assert int(user) == k8s_uid, "the image's uid and the pod's runAsUser differ"


def test_dockerfile_exposes_api_and_metrics_ports() -> None:
    exposed = {
        int(p.split("/")[0]) for kw, rest in dockerfile_instructions() if kw == "EXPOSE" for p in rest.split()
    }
    assert exposed == {API_PORT, METRICS_PORT}


def _ignored(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore ``patterns`` exclude ``path`` (last match wins, ``!`` re-includes)."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        variants = {pat, pat.replace("**/", "")} if pat.startswith("**/") else {pat}
        if any(fnmatch.fnmatchcase(pre, v) for pre in prefixes for v in variants):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_sources_and_drops_the_rest() -> None:
    patterns = [
        ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    needed = ["plugin_specs/pyproject.toml", "plugin_specs/README.md", "plugin_specs/src/robutler_specs/__init__.py",
              "kernel/pyproject.toml", "kernel/src/robutler_kernel/__init__.py", "deploy/robutler.yaml"]  # fmt: skip
    needed += [str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/pyproject.toml")]
    for path in needed:
        assert not _ignored(patterns, path), f"Dockerfile.dockerignore excludes {path}, which the build needs"
    for path in [".git/HEAD", "tests/deploy/test_deploy_files.py", ".env", "kernel/src/x/__pycache__/a.pyc"]:
        assert _ignored(patterns, path), f"Dockerfile.dockerignore should exclude {path}"


# ---------------------------------------------------------------------------------- compose


def test_compose_services_have_image_or_build_and_healthchecks() -> None:
    services = compose()["services"]
    assert {"robutler", "postgres", "redis", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"compose service {name} has neither image nor build"
        assert "healthcheck" in svc, f"compose service {name} has no healthcheck"


def test_compose_robutler_service() -> None:
    svc = compose()["services"]["robutler"]
    assert {"postgres", "redis"} <= compose_depends(svc)
    build = svc["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    env = compose_env(svc)
    for var in ("OPENAI_API_KEY", "DATABASE_URL", "REDIS_URL", "ROBUTLER_DISABLE_PLUGINS"):
        assert var in env, f"compose robutler service does not set {var}"
    assert "@postgres:" in env["DATABASE_URL"] and env["REDIS_URL"].startswith("redis://redis:")
    assert any(str(p).split(":")[-1] == str(API_PORT) for p in svc["ports"])
    assert "/live" in " ".join(svc["healthcheck"]["test"])
    assert ("./robutler.yaml", CONFIG_PATH) in bind_mounts(svc)
    if "command" in svc:
        assert svc["command"] == SERVE_CMD


def test_compose_bind_mounts_and_volumes_exist() -> None:
    doc = compose()
    declared = set(doc.get("volumes") or {})
    for name, svc in doc["services"].items():
        for source, _ in bind_mounts(svc):
            assert (DEPLOY / source).exists(), f"compose service {name} mounts missing {source}"
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith((".", "/")):
                assert source in declared, f"named volume {source} is not declared"


# -------------------------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_the_metrics_port() -> None:
    jobs = {j["job_name"]: j for j in load_one(PROMETHEUS)["scrape_configs"]}
    job = jobs["robutler"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets
    services = compose()["services"]
    for target in targets:
        host, _, port = target.rpartition(":")
        assert host in services, f"scrape target host {host} is not a compose service"
        assert int(port) == METRICS_PORT == container_ports()["metrics"] == config()["server"]["metrics_port"]


# ----------------------------------------------------------------------------------- Grafana


def test_kernel_exports_the_dashboard_metrics() -> None:
    """The kernel registers the seed's metrics with the seed's labels (when it is installed)."""
    metrics = pytest.importorskip("robutler_kernel.metrics")
    prometheus_client = pytest.importorskip("prometheus_client")
    found = {}
    for obj in vars(metrics).values():
        if isinstance(obj, prometheus_client.metrics.MetricWrapperBase):
            family = obj.describe()[0]
            name = family.name + ("_total" if family.type == "counter" else "")
            found[name] = tuple(getattr(obj, "_labelnames", ()))
    expected = {
        "robutler_agent_health": ("agent",),
        "robutler_dynamic_agents_active": (),
        "robutler_llm_latency_seconds": ("provider", "model"),
        "robutler_llm_time_to_first_token_seconds": ("provider", "model"),
        "robutler_upstream_errors_total": ("provider", "status"),
        "robutler_tool_calls_total": ("agent", "tool", "outcome"),
        "robutler_tool_duration_seconds": ("agent", "tool"),
        "robutler_requests_total": ("agent", "method", "status"),
        "robutler_request_duration_seconds": ("agent",),
        "robutler_active_connections": (),
        "robutler_skill_usage_total": ("skill", "agent"),
        "robutler_tokens_total": ("agent", "type"),
        "robutler_llm_calls_total": ("agent", "model", "outcome"),
    }
    assert set(expected) == METRICS
    for name, labels in expected.items():
        assert found.get(name) == labels, (
            f"{name}: kernel has labels {found.get(name)}, dashboard expects {labels}"
        )


def test_grafana_dashboard_is_valid_json_with_panels() -> None:
    d = dashboard()
    assert d["title"] and d["uid"] and d["panels"]
    titles = " ".join(p["title"].lower() for p in d["panels"])
    for word in ("request rate", "latency", "active connections", "tokens", "skill"):
        assert word in titles, f"the dashboard has no panel about {word}"


def test_promql_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, agent) (rate(robutler_request_duration_seconds_bucket'
            '{agent=~"$agent"}[$__rate_interval]))) / on(agent) group_left foo_total offset 5m')  # fmt: skip
    assert promql_metric_names(expr) == {"robutler_request_duration_seconds_bucket", "foo_total"}


def test_dashboard_uses_only_the_seed_metric_names() -> None:
    used: set[str] = set()
    for expr in dashboard_exprs():
        names = promql_metric_names(expr)
        assert names, f"expression selects no metric: {expr}"
        unknown = names - ALLOWED_SERIES
        assert not unknown, f"unknown metric(s) {sorted(unknown)} in: {expr}"
        used |= names
    base = {re.sub(r"_(bucket|sum|count)$", "", n) if n not in METRICS else n for n in used}
    assert base == METRICS, f"metrics not on the dashboard: {sorted(METRICS - base)}"
    exprs = " ".join(dashboard_exprs())
    assert "histogram_quantile(0.50" in exprs and "histogram_quantile(0.99" in exprs
    assert re.search(r"by \([^)]*agent[^)]*status|by \([^)]*status[^)]*agent", exprs)
    assert re.search(r"sum by \([^)]*type", exprs)


def test_grafana_provisioning_matches_compose() -> None:
    ds = load_one(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    uids = {d["uid"] for d in ds}
    prom = next(d for d in ds if d["type"] == "prometheus")
    assert prom["url"] == "http://prometheus:9090" and "prometheus" in compose()["services"]
    refs = set()
    d = dashboard()
    for item in d["panels"] + [t for p in d["panels"] for t in p.get("targets", [])]:
        if isinstance(item.get("datasource"), dict):
            refs.add(item["datasource"]["uid"])
    variables = {"${" + v["name"] + "}" for v in d["templating"]["list"] if v["type"] == "datasource"}
    assert refs and refs <= uids | variables, refs
    provider = load_one(GRAFANA / "provisioning" / "dashboards" / "robutler.yml")["providers"][0]
    mounts = dict(bind_mounts(compose()["services"]["grafana"]))
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


# -------------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("path", k8s_files(), ids=lambda p: p.name)
def test_every_k8s_object_has_identity(path: Path) -> None:
    for obj in load_all(path):
        for key in ("apiVersion", "kind"):
            assert isinstance(obj.get(key), str) and obj[key], f"{path.name}: missing {key}"
        assert obj.get("metadata", {}).get("name"), f"{path.name}: {obj['kind']} has no metadata.name"


def test_kustomization_lists_exactly_the_files_present() -> None:
    kust = load_one(K8S / "kustomization.yaml")
    assert kust["kind"] == "Kustomization"
    resources = kust["resources"]
    assert len(resources) == len(set(resources)), "duplicate resources"
    assert set(resources) == {p.name for p in k8s_files()}


def test_k8s_kinds_and_api_versions() -> None:
    kinds = {o["kind"]: o["apiVersion"] for o in k8s_objects()}
    assert kinds == {
        "Namespace": "v1",
        "ConfigMap": "v1",
        "Secret": "v1",
        "Deployment": "apps/v1",
        "Service": "v1",
        "HorizontalPodAutoscaler": "autoscaling/v2",
        "PodDisruptionBudget": "policy/v1",
        "Ingress": "networking.k8s.io/v1",
    }
    namespace = k8s_object("Namespace")["metadata"]["name"]
    assert load_one(K8S / "kustomization.yaml").get("namespace") == namespace
    for obj in k8s_objects():
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace", namespace) == namespace


def test_deployment_ports_and_probes() -> None:
    ports = container_ports()
    assert ports.get("http") == API_PORT and ports.get("metrics") == METRICS_PORT
    c = container()
    http = service_target("http")
    assert http == API_PORT
    assert service_target("metrics") == METRICS_PORT
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/live"), ("startupProbe", None)):
        assert probe in c, f"the container has no {probe}"
        get = c[probe]["httpGet"]
        if path:
            assert get["path"] == path, f"{probe} hits {get['path']}, expected {path}"
        assert get["path"] in HEALTH_ENDPOINTS
        assert resolve_port(get["port"]) == http, f"{probe} is not on the port the Service targets"


def test_deployment_runs_the_serve_command_with_the_mounted_config() -> None:
    c = container()
    argv = c.get("command", []) + c.get("args", [])
    assert not argv or argv == SERVE_CMD
    pod = k8s_object("Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_vols = [n for n, v in volumes.items() if "configMap" in v]
    assert len(config_vols) == 1
    vol = volumes[config_vols[0]]
    assert vol["configMap"]["name"] == k8s_object("ConfigMap")["metadata"]["name"]
    assert mounts[config_vols[0]].rstrip("/") + "/robutler.yaml" == CONFIG_PATH
    assert "/tmp" in mounts.values(), "readOnlyRootFilesystem needs a writable /tmp"


def test_deployment_security_resources_and_secrets() -> None:
    deployment = k8s_object("Deployment")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    c = container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert "ALL" in sc["capabilities"]["drop"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    refs = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
    assert refs == [k8s_object("Secret")["metadata"]["name"]]


def test_prometheus_annotations_point_at_the_metrics_port() -> None:
    for meta in (k8s_object("Deployment")["spec"]["template"]["metadata"], k8s_object("Service")["metadata"]):
        ann = meta["annotations"]
        assert ann["prometheus.io/scrape"] == "true"
        assert int(ann["prometheus.io/port"]) == container_ports()["metrics"] == METRICS_PORT
        assert ann.get("prometheus.io/path", "/metrics") == "/metrics"


def test_selectors_match_the_pods() -> None:
    deployment = k8s_object("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        k8s_object("Service")["spec"]["selector"],
        k8s_object("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector and selector.items() <= labels.items(), selector
    target = k8s_object("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    hpa = k8s_object("HorizontalPodAutoscaler")["spec"]
    assert hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]


def test_configmap_embeds_the_example_config() -> None:
    data = k8s_object("ConfigMap")["data"]
    embedded = YAML(typ="safe", pure=True).load(StringIO(data["robutler.yaml"]))
    assert "agents" in embedded and agents_of(embedded)
    assert embedded == config(), "deploy/k8s/configmap.yaml drifted from deploy/robutler.yaml"
    for path in AGENTS_DIR.glob("*.yaml"):
        assert data.get(path.name) == path.read_text(), f"deploy/k8s/configmap.yaml drifted from deploy/agents/{path.name}"
    items = {i["key"]: i["path"] for v in k8s_object("Deployment")["spec"]["template"]["spec"]["volumes"]
             if "configMap" in v for i in v["configMap"]["items"]}
    assert items == {"robutler.yaml": "robutler.yaml", **{p.name: f"agents/{p.name}" for p in AGENTS_DIR.glob("*.yaml")}}


def test_secret_is_a_template_without_real_values() -> None:
    secret = k8s_object("Secret")
    assert "data" not in secret, "use stringData placeholders in the template"
    values = secret["stringData"]
    assert {"OPENAI_API_KEY", "DATABASE_URL", "REDIS_URL"} <= set(values)
    assert values["OPENAI_API_KEY"] == "REPLACE_ME"
    for key, value in values.items():
        assert not re.search(r"sk-[A-Za-z0-9]{8,}", value), key
        creds = re.search(r"://[^/\s:@]+:([^/\s@]+)@", value)
        assert not creds or creds.group(1) == "REPLACE_ME", f"{key} holds a password"


# ------------------------------------------------------------------------------------- docs


def test_deployment_doc_covers_commands_env_and_metrics() -> None:
    text = DOC.read_text()
    for needle in ("docker build -f deploy/Dockerfile", "docker compose -f deploy/compose.yaml up",
                   "kubectl apply -k deploy/k8s", *ENV_VARS, *METRICS, *HEALTH_ENDPOINTS[1:]):  # fmt: skip
        assert needle in text, f"docs/deployment.md does not mention {needle}"
