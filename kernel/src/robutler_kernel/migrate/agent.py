"""One V1 agent to one V2 agent (an entry of ``agents:``), field by field.

Every V1 field ends up as a :class:`~.findings.Finding`: mapped, mapped with a note, not
migrated (with the reason, and written as a comment at the top of the agent so the V2
config keeps it), or an error. The V2 agent is built as a ruamel ``CommentedMap`` in the
V1 file's key order, each key carrying the comment its V1 key had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..config import AGENT_NAME_RE, RESERVED_AGENT_NAMES
from . import pricing as p
from .findings import Finding, Level
from .tables import (
    ACCESS_LEVELS,
    CAPABILITIES,
    LEGACY_MODELS,
    LLM_PARAMS,
    METADATA_FIELDS,
    MODEL_FAMILIES,
    PROVIDER_SETTINGS,
    V1_DEFAULT_MODEL,
)
from .tools import ToolPlan, as_ref, resolve
from .v1 import V1Agent, line_of


@dataclass
class Installed:
    """What is installed: skill name -> its ``Config`` type; model prefix -> skill name."""

    configs: Mapping[str, Any]
    providers: Mapping[str, str]


@dataclass
class MigratedAgent:
    """A V1 agent's V2 form: ``node`` (the ``agents:`` entry), ``findings``, ``tools``."""

    name: str
    source: V1Agent
    node: CommentedMap = field(default_factory=CommentedMap)
    findings: list[Finding] = field(default_factory=list)
    tools: list[ToolPlan] = field(default_factory=list)


class AgentMapper:
    """Maps one V1 agent; :meth:`run` returns the :class:`MigratedAgent`."""

    def __init__(self, v1: V1Agent, installed: Installed, model_map: Mapping[str, str], folders: list[str]) -> None:
        self.v1 = v1
        self.data = v1.data
        self.installed = installed
        self.model_map = model_map
        self.folders = folders
        self.out = MigratedAgent(self._name(), v1)
        self.provider: str | None = None

    # -- findings and output ------------------------------------------------------------

    def note(self, level: Level, key: str, message: str, node: Any = None, item: Any = None) -> None:
        where_node = self.data if node is None else node
        where_key = key.split(".")[0].split("[")[0] if item is None and node is None else item
        self.out.findings.append(Finding(level, self.v1.where(where_node, where_key), self.out.name, key, message))

    def put(self, key: str, value: Any, v1_key: str | None = None) -> None:
        node = self.out.node
        node[key] = value
        comment = self.data.ca.items.get(v1_key) if v1_key is not None else None
        if comment is not None and v1_key != "name":
            node.ca.items[key] = comment

    def skills(self) -> CommentedMap:
        if "skills" not in self.out.node:
            self.out.node["skills"] = CommentedMap()
        skills: CommentedMap = self.out.node["skills"]
        return skills

    # -- the agent ------------------------------------------------------------------------

    def _name(self) -> str:
        raw = self.data.get("name")
        name = raw if isinstance(raw, str) and raw.strip() else self.v1.stem
        clean = "-".join("".join(c if (c.isascii() and c.isalnum()) or c in "_.-" else " " for c in name).split())
        clean = clean.strip("._-") or "agent"
        clean = clean[:64]
        if clean.lower() in RESERVED_AGENT_NAMES:
            clean = f"{clean}-agent"
        assert AGENT_NAME_RE.fullmatch(clean), clean
        return clean

    def run(self) -> MigratedAgent:
        handlers = {
            "name": self._field_name,
            "system_prompt": self._instructions,
            "instructions": self._instructions,
            "description": self._text,
            "model": self._model,
            "capabilities": self._capabilities,
            "pricing": self._pricing,
            "tools": self._tools,
            "intents": self._strings,
            "owner": self._owner,
            "owner_id": self._owner,
            "metadata": self._metadata,
        }
        if "model" not in self.data:
            self._model("model")
        for key in list(self.data):
            if not isinstance(key, str):
                self.note("not migrated", str(key), "not a V1 field (field names are strings)")
                continue
            handler = handlers.get(key)
            if handler is not None:
                handler(key)
            elif key in LLM_PARAMS or key in PROVIDER_SETTINGS:
                pass  # read with the model
            elif key.endswith("_config") and key[: -len("_config")] in self._capability_names():
                pass  # read with its capability
            elif key.endswith("_config"):
                self.note("note", key, f"not carried over: `{key[:-7]}` is not in capabilities, so V1 did not use it either")
            elif key in METADATA_FIELDS:
                self._metadata_field(key)
            else:
                self.note("not migrated", key, "not a V1 field this tool knows; carry it over by hand if it mattered")
        self._tidy_payments()
        return self.out

    def _tidy_payments(self) -> None:
        """The payments settings in reading order, without an empty ``tools``."""
        payments = self.out.node.get("skills", {}).get("payments")
        if not isinstance(payments, CommentedMap):
            return
        if not payments.get("tools"):
            payments.pop("tools", None)
        order = ["request_fee", "min_balance", "markup", "models", "tools", "default_reservation"]
        for key in sorted(payments, key=lambda k: order.index(k) if k in order else len(order)):
            payments.move_to_end(key)

    def _field_name(self, key: str) -> None:
        raw = self.data[key]
        if raw == self.out.name:
            self.note("mapped", key, f"the agent's name: agents.{self.out.name}")
        else:
            self.note("note", key, f"{raw!r} is not a valid V2 agent name; the agent is `{self.out.name}` (its URL path)")

    def _instructions(self, key: str) -> None:
        value = self.data[key]
        if not isinstance(value, str):
            self.note("not migrated", key, f"expected text, got {type(value).__name__}")
            return
        if "instructions" in self.out.node:
            self.note("not migrated", key, "instructions were already given by another field")
            return
        self.put("instructions", value, key)
        self.note("mapped", key, "instructions" if key != "instructions" else "kept")

    def _text(self, key: str) -> None:
        value = self.data[key]
        if isinstance(value, str):
            self.put(key, value, key)
            self.note("mapped", key, "kept")
        else:
            self.note("not migrated", key, f"expected text, got {type(value).__name__}")

    def _strings(self, key: str) -> None:
        value = self.data[key]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            self.put(key, value, key)
            self.note("mapped", key, "kept")
        else:
            self.note("not migrated", key, "expected a list of strings")

    def _owner(self, key: str) -> None:
        value = self.data[key]
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value) and "owner" not in self.out.node:
            self.put("owner", str(value), key)
            self.note("mapped", key, "owner (callers authenticated as this user get the owner scope)")
        else:
            self.note("not migrated", key, "expected one user id")

    def _metadata(self, key: str) -> None:
        value = self.data[key]
        if not isinstance(value, dict):
            self.note("not migrated", key, "expected a mapping")
            return
        meta = self._meta()
        for k, v in value.items():
            meta[str(k)] = v
        self.note("mapped", key, "metadata (shown in GET /{agent})")

    def _metadata_field(self, key: str) -> None:
        self._meta()[key] = self.data[key]
        self.note("mapped", key, f"metadata.{key} (shown in GET /{{agent}})")

    def _meta(self) -> CommentedMap:
        if "metadata" not in self.out.node:
            self.out.node["metadata"] = CommentedMap()
        meta: CommentedMap = self.out.node["metadata"]
        return meta

    # -- the model and its provider ---------------------------------------------------------

    def _model(self, key: str) -> None:
        given = key in self.data
        v1_model = self.data.get(key) if given else V1_DEFAULT_MODEL
        if not isinstance(v1_model, str) or not v1_model.strip():
            self.note("error", key, "expected a model name such as gpt-4o or claude-3-5-sonnet-latest")
            self._model_settings_left()
            return
        v1_model = v1_model.strip()
        model, why = self._model_name(v1_model)
        if model is None:
            self.note("error", key, why)
            self._model_settings_left()
            return
        provider = model.split("/", 1)[0]
        self.provider = provider
        self.put("model", model, key if given else None)
        if given:
            self.note("mapped", key, f"{model}{why}")
        else:
            self.note("note", "model", f"V1 used {V1_DEFAULT_MODEL} when a config named no model: {model}")
        skill = self.installed.providers.get(provider)
        if skill is None:
            hint = f"pip install robutler-plugin-{provider}"
            self.note("error", key, f"no installed plugin serves {provider}/... models: {hint}, or pick another with --model-map")
            self._model_settings_left()
            return
        settings = CommentedMap()
        for v1_key, (owner, setting) in PROVIDER_SETTINGS.items():
            if v1_key not in self.data:
                continue
            if owner != provider:
                self.note("not migrated", v1_key, f"not used: the model is served by `{skill}`, not `{owner}`")
                continue
            settings[setting] = self.data[v1_key]
            if v1_key in self.data.ca.items:
                settings.ca.items[setting] = self.data.ca.items[v1_key]
            self.note("mapped", v1_key, f"skills.{skill}.{setting}")
        params = CommentedMap((k, self.data[k]) for k in LLM_PARAMS if k in self.data)
        if params:
            settings["default_params"] = params
            for k in params:
                self.note("mapped", k, f"skills.{skill}.default_params.{k} (sent with every model call; a request's own value wins)")
        if settings:
            self.skills()[skill] = self._fit(skill, settings, key, f"skills.{skill}", report=False)

    def _model_settings_left(self) -> None:
        for k in (*PROVIDER_SETTINGS, *LLM_PARAMS):
            if k in self.data:
                self.note("not migrated", k, "left out: the model above could not be migrated")

    def _model_name(self, v1_model: str) -> tuple[str | None, str]:
        mapped = self.model_map.get(v1_model, self.model_map.get("*"))
        if mapped is not None:
            return mapped, f" (--model-map, was {v1_model})"
        prefix, slash, _ = v1_model.partition("/")
        if slash and (prefix in self.installed.providers or prefix in ("openai", "anthropic")):
            return v1_model, ""
        if LEGACY_MODELS.fullmatch(v1_model):
            return None, (
                f"{v1_model} is a legacy completion model that a chat API cannot serve; choose a chat model: "
                f"--model-map {v1_model}=openai/gpt-4o-mini"
            )
        for pattern, provider in MODEL_FAMILIES:
            if pattern.fullmatch(v1_model):
                return f"{provider}/{v1_model}", ""
        return None, (
            f"no known provider serves {v1_model!r}; say which one with --model-map {v1_model}=<provider>/<model> "
            f"(an OpenAI-compatible server such as vLLM or Ollama: openai/{v1_model} with the openai skill's base_url)"
        )

    # -- capabilities --------------------------------------------------------------------

    def _capability_names(self) -> list[str]:
        caps = self.data.get("capabilities")
        if isinstance(caps, dict):
            return [str(k) for k in caps]
        if isinstance(caps, list):
            return [c for c in caps if isinstance(c, str)]
        return []

    def _capabilities(self, key: str) -> None:
        caps = self.data[key]
        if not caps:
            self.note("mapped", key, "none listed")
            return
        entries: list[tuple[str, Any, Any, Any, Any]]
        if isinstance(caps, dict):
            entries = [(f"{key}.{name}", str(name), caps[name], caps, name) for name in caps]
        elif isinstance(caps, list):
            entries = [(f"{key}[{i}]", c, None, caps, i) for i, c in enumerate(caps)]
        else:
            self.note("not migrated", key, "expected a list of capability names")
            return
        for field_name, name, inline, node, item in entries:
            if not isinstance(name, str):
                self.note("not migrated", field_name, f"expected a capability name, got {type(name).__name__}", node, item)
                continue
            config_key = f"{name}_config"
            settings = inline if inline is not None else self.data.get(config_key)
            self._capability(field_name, name, settings, config_key if config_key in self.data else None, node, item)

    def _capability(self, field_name: str, name: str, settings: Any, config_key: str | None, node: Any, item: Any) -> None:
        target = CAPABILITIES.get(name)
        if target is None:
            close = [k for k in CAPABILITIES if k.startswith(name[:4])] if len(name) >= 4 else []
            hint = f" (known: {', '.join(close)})" if close else ""
            self.note("not migrated", field_name, f"`{name}` is not a V1 capability this tool knows{hint}", node, item)
            if config_key:
                self.note("not migrated", config_key, f"settings of `{name}`, left out with it")
            return
        if target.skill is None:
            self.note("not migrated", field_name, f"`{name}`: {target.reason}", node, item)
            if config_key:
                self.note("not migrated", config_key, f"settings of `{name}`, left out with it")
            return
        if settings is not None and not isinstance(settings, dict):
            self.note("not migrated", config_key or field_name, "expected a mapping of settings")
            settings = None
        adapted = self._adapt(target.skill, CommentedMap(settings or {}), target.renames, config_key or field_name)
        if target.skill not in self.installed.configs:
            self.note(
                "not migrated", field_name,
                f"skill `{target.skill}` is not installed: pip install {target.distribution}, then add it under "
                f"skills (its settings are in the comment at the top of the agent)", node, item,
            )
            self.out.findings.append(
                Finding("note", self.v1.where(node, item), self.out.name, f"{field_name}.settings",
                        f"{target.skill}: {dict(adapted) or '{}'}")
            )
            if config_key:
                self.note("not migrated", config_key, f"settings of `{name}`, left out with it (in the comment)")
            return
        skills = self.skills()
        if target.skill in skills:
            self.note("note", field_name, f"`{name}` is `{target.skill}`, already configured", node, item)
            return
        where = config_key or field_name
        skills[target.skill] = self._fit(target.skill, adapted, where, f"skills.{target.skill}") or None
        self.note("mapped", field_name, f"skills.{target.skill} ({target.distribution})", node, item)
        if config_key and not any(f.field.startswith(config_key) for f in self.out.findings):
            self.note("mapped", config_key, f"skills.{target.skill} (no settings)")

    def _adapt(self, skill: str, settings: CommentedMap, renames: Mapping[str, str], where: str) -> CommentedMap:
        """V1 setting names to the skill's, and the few values whose shape changed."""
        out = CommentedMap()
        for k, v in settings.items():
            new = renames.get(str(k), str(k))
            out[new] = v
            if k in settings.ca.items:
                out.ca.items[new] = settings.ca.items[k]
            if new != k:
                self.note("mapped", f"{where}.{k}", f"skills.{skill}.{new}")
        if skill == "vector_memory" and "milvus_host" in out:
            host, port = out.pop("milvus_host"), out.pop("milvus_port", None)
            if port in (None, ""):
                port = 19530  # Milvus's own default, as V1 assumed
            if not isinstance(host, str) or not host.strip() or not str(port).isdigit():
                self.note("not migrated", f"{where}.milvus_host",
                          f"no usable Milvus host and port ({host!r}, {port!r}): set skills.vector_memory.uri "
                          "(default: an embedded milvus-lite file)")
            else:
                out["uri"] = f"http://{host.strip()}:{port}"
                self.note("mapped", f"{where}.milvus_host", f"skills.vector_memory.uri ({out['uri']})")
        if skill == "long_term_memory" and isinstance(out.get("dsn"), str) and out["dsn"].startswith("postgres"):
            out.setdefault("backend", "postgres")
        if skill == "short_term_memory" and isinstance(out.get("redis_url"), str):
            out.setdefault("backend", "redis")
        return out

    def _fit(self, skill: str, settings: CommentedMap, where: str, target: str, *, report: bool = True) -> CommentedMap:
        """``settings`` without what the installed skill's ``Config`` refuses (reported)."""
        config = self.installed.configs.get(skill)
        if config is None or not settings:
            return settings
        fields = {f.encode_name for f in msgspec.structs.fields(config)} if isinstance(config, type) and issubclass(
            config, msgspec.Struct) else None
        kept = CommentedMap()
        for k, v in settings.items():
            if fields is not None and k not in fields:
                self.note("not migrated", f"{where}.{k}", f"`{skill}` has no setting `{k}` (settings: {', '.join(sorted(fields))})")
                continue
            kept[k] = v
            if k in settings.ca.items:
                kept.ca.items[k] = settings.ca.items[k]
        for _ in range(len(kept) + 1):
            try:
                msgspec.convert(_plain(kept), config, strict=False)
                break
            except (msgspec.ValidationError, ValueError, TypeError) as exc:
                bad = _field_of(str(exc), kept)
                if bad is None:
                    self.note("not migrated", where, f"`{skill}` refuses these settings ({exc}); its defaults are used")
                    return CommentedMap()
                self.note("not migrated", f"{where}.{bad}", f"`{skill}` refuses it: {exc}")
                del kept[bad]
        for k in kept if report else ():
            if not any((f.field.startswith(f"{where}.") and f.message.endswith(f".{k}")) or f.field == f"{where}.{k}"
                       for f in self.out.findings):
                self.note("mapped", f"{where}.{k}", f"{target}.{k}")
        return kept

    # -- pricing -------------------------------------------------------------------------

    def _pricing(self, key: str) -> None:
        prices = self.data[key]
        if not isinstance(prices, dict):
            self.note("not migrated", key, "expected a mapping (per_token, per_call, ...)")
            return
        node = prices
        tokens: dict[str, Decimal] = {}
        settings: dict[str, Decimal] = {}
        tool_prices: dict[Any, Any] = prices["tools"] if isinstance(prices.get("tools"), dict) else {}
        for name, value in prices.items():
            field_name = f"{key}.{name}"
            if name == "currency":
                if str(value).lower() in ("credits", "credit"):
                    self.note("mapped", field_name, "credits")
                else:
                    self.note("note", field_name, f"V2 charges credits; one {value} of V1 is one credit here")
                continue
            if name == "tools" and isinstance(value, dict):
                continue
            if name in p.UNSUPPORTED:
                self.note("not migrated", field_name, p.UNSUPPORTED[name], node, name)
                continue
            number = p.amount(value)
            if name not in p.TOKEN_PRICES and name not in p.AMOUNTS:
                self.note("not migrated", field_name, "not a V1 price this tool knows (per_token, per_call, ...)", node, name)
                continue
            if number is None:
                self.note("not migrated", field_name, f"expected a non-negative number, got {value!r}", node, name)
                continue
            if name in p.TOKEN_PRICES:
                parts, factor = p.TOKEN_PRICES[name]
                for part in parts:
                    tokens[part] = number * factor
                per_1k = p.plain(number * factor)
                self.note("mapped", field_name, f"skills.payments.models['*'].{'/'.join(parts)}: {per_1k} credits per 1K tokens", node, name)
            else:
                setting = p.AMOUNTS[name]
                settings[setting] = number
                self.note("mapped", field_name, f"skills.payments.{setting}: {p.plain(number)}", node, name)
        per_tool: dict[str, Decimal] = {}
        for tool_name, value in tool_prices.items():
            number = p.amount(value)
            if number is None:
                self.note("not migrated", f"{key}.tools.{tool_name}", f"expected a non-negative number, got {value!r}")
                continue
            per_tool[str(tool_name)] = number
            self.note("mapped", f"{key}.tools.{tool_name}", f"skills.payments.tools.{tool_name}")
        if not (tokens or settings or per_tool):
            self.note("note", key, "no price to carry over: the agent is free, as it was")
            return
        payments = self._payments(key)
        if payments is None:
            return
        for tool_name, number in per_tool.items():
            payments["tools"][tool_name] = p.plain(number)
        for setting, number in settings.items():
            payments[setting] = p.plain(number)
        prices_1k = CommentedMap()
        prices_1k["prompt"] = p.plain(tokens.get("prompt", Decimal(0)))
        prices_1k["completion"] = p.plain(tokens.get("completion", Decimal(0)))
        payments["models"]["*"] = prices_1k
        fee, floor = settings.get("request_fee", Decimal(0)), settings.get("min_balance", Decimal(0))
        payments["default_reservation"] = p.plain(p.reservation(fee, floor, tokens.get("completion", Decimal(0))))

    def _payments(self, field_name: str) -> CommentedMap | None:
        """The agent's payments settings (created with auth on first use); ``None`` when
        the payments plugin is not installed (reported at ``field_name``)."""
        if "payments" not in self.installed.configs:
            if not any(f.field == field_name and "robutler-plugin-payments" in f.message for f in self.out.findings):
                self.note("not migrated", field_name, "prices need the payments skill, which is not installed: "
                          "pip install robutler-plugin-payments, then migrate again")
            return None
        skills = self.skills()
        if "payments" not in skills or skills["payments"] is None:
            payments = CommentedMap()
            payments["models"] = CommentedMap([("*", CommentedMap([("prompt", 0), ("completion", 0)]))])
            payments["tools"] = CommentedMap()
            payments["default_reservation"] = 1
            skills["payments"] = payments
            if "auth" not in skills:
                skills["auth"] = CommentedMap([("allow_anonymous", True)])
                self.out.findings.append(Finding(
                    "note", self.v1.where(self.data, field_name.split(".")[0].split("[")[0]), self.out.name, field_name,
                    "callers pay with a prepaid X-Payment-Token (robutler-kernel payments token create --balance N), "
                    "so skills.auth lets anonymous callers in (they must pay); give callers API keys under "
                    "skills.auth to charge their accounts instead (docs/plugins/auth.md, docs/plugins/payments.md)",
                ))
        payments_node: CommentedMap = skills["payments"]
        return payments_node

    # -- tools ---------------------------------------------------------------------------

    def _tools(self, key: str) -> None:
        entries = self.data[key]
        if not isinstance(entries, list):
            self.note("not migrated", key, "expected a list of tools")
            return
        if not entries:
            self.note("mapped", key, "none listed")
        for i, entry in enumerate(entries):
            self._tool(f"{key}[{i}]", entry, entries, i)
        if self.out.tools:  # filled in when the output's tools module is named
            self.put("tools", CommentedSeq(), key)
        if any(t.scope != "all" for t in self.out.tools) and "auth" not in self.skills():
            self.note("note", key, "tools with scope owner or admin are hidden from anonymous callers: add the auth skill "
                      "(API keys or JWT, docs/plugins/auth.md) and the agent's owner so they can be reached")

    def _tool(self, field_name: str, entry: Any, node: Any, item: int) -> None:
        if isinstance(entry, str):
            entry = {"implementation": entry}
        if not isinstance(entry, dict):
            self.note("not migrated", field_name, "expected a tool (a mapping with name, implementation, ...)", node, item)
            return
        line = line_of(node, item)
        where = f"{self.v1.source}:{line}" if line else self.v1.source
        for extra in entry:
            if extra not in ("name", "description", "implementation", "function", "access_level", "scope", "parameters", "price"):
                self.out.findings.append(Finding("not migrated", where, self.out.name, f"{field_name}.{extra}",
                                                 "not a V1 tool field this tool knows"))
        if "parameters" in entry:
            self.out.findings.append(Finding("note", where, self.out.name, f"{field_name}.parameters",
                                             "V2 builds the parameters' schema from the function's type hints and docstring"))
        impl_key = "implementation" if "implementation" in entry else "function"
        ref = as_ref(entry.get(impl_key))
        name = entry.get("name") if isinstance(entry.get("name"), str) else None
        description = entry.get("description") if isinstance(entry.get("description"), str) else None
        level_key = "access_level" if "access_level" in entry else "scope"
        level = str(entry.get(level_key, "all")).strip().lower()
        label = name or str(entry.get(impl_key))
        if ref is None:
            self.out.findings.append(Finding("not migrated", where, self.out.name, field_name,
                                             f"tool {label!r}: `{impl_key}` must name a Python function as module:function"))
            return
        scope = ACCESS_LEVELS.get(level)
        if scope is None:
            self.out.findings.append(Finding("not migrated", where, self.out.name, f"{field_name}.{level_key}",
                                             f"tool {label!r}: access_level {level!r} is none of all, owner, admin (public, private)"))
            return
        try:
            plan = resolve(ref, name, description, scope, self.folders)
        except ValueError as exc:
            self.out.findings.append(Finding("not migrated", where, self.out.name, field_name, f"tool {label!r}: {exc}"))
            return
        self.out.tools.append(plan)
        scoped = f", scope {scope}" if level_key in entry else ""
        how = "through the generated tools module" if plan.wrapped else ref
        if plan.near is not None:
            self.out.findings.append(Finding("note", where, self.out.name, f"{field_name}.{impl_key}",
                                             f"{ref} is imported from {plan.near} (beside the V1 file); move its module next "
                                             "to the V2 config, or install it, before you deploy"))
        self.out.findings.append(Finding("mapped", where, self.out.name, field_name, f"tool {plan.name}{scoped}: {how}"))
        if "price" in entry:
            number = p.amount(entry["price"])
            if number is None:
                self.out.findings.append(Finding("not migrated", where, self.out.name, f"{field_name}.price", "expected a non-negative number"))
            elif (payments := self._payments(field_name)) is not None:
                payments["tools"][plan.name] = p.plain(number)
                self.out.findings.append(Finding("mapped", where, self.out.name, f"{field_name}.price", f"skills.payments.tools.{plan.name}"))


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    return node


def _field_of(message: str, settings: Mapping[str, Any]) -> str | None:
    """The top-level setting a msgspec error names (``... - at `$.max_messages```)."""
    marker = "at `$."
    if marker in message:
        name = message.split(marker, 1)[1].split("`")[0].split(".")[0].split("[")[0]
        return name if name in settings else None
    return None


__all__ = ["AgentMapper", "Installed", "MigratedAgent"]
