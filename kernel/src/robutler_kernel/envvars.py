"""``${VAR}`` / ``${VAR:-default}`` substitution in configuration strings.

The grammar, deliberately small (a subset of POSIX shell / docker compose):

- ``${NAME}``: the value of ``NAME``; an error if it is not set.
- ``${NAME:-default}``: the value of ``NAME``, or ``default`` when it is unset or empty.
  ``default`` is literal text up to the first ``}``; it may contain ``:``, ``/``, ``-`` and
  spaces, but not ``}`` or a nested ``${``.
- ``$${`` is a literal ``${``. Any other ``$`` is left alone.

``NAME`` is ``[A-Za-z_][A-Za-z0-9_]*``. Every malformed reference is a
:class:`~robutler_specs.ConfigError`; nothing else is ever raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from robutler_specs import ConfigError

# One token: an escape, or a reference (``close`` is empty when the ``}`` is missing).
_TOKEN = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)(?P<close>\}?)")
_REFERENCE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


def expand_env(value: str, env: Mapping[str, str]) -> str:
    """Return ``value`` with every ``${...}`` reference replaced from ``env``.

    :param value: a configuration string, e.g. ``"http://${HOST:-localhost}:8000"``.
    :param env: the variables to substitute (usually ``os.environ``).
    :raises ConfigError: a variable is unset and has no default, or a reference is
        malformed; the message names the variable but not the file (the caller adds that).
    """
    parts: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(value):
        parts.append(value[pos : match.start()])
        pos = match.end()
        if match.group(0) == "$${":
            parts.append("${")
            continue
        body = match.group("body")
        if not match.group("close"):
            raise ConfigError(f"unclosed `${{` in {value!r}; close it with `}}` or write `$${{` for a literal `${{`")
        parts.append(_resolve(body, env))
    parts.append(value[pos:])
    return "".join(parts)


def is_single_reference(value: str) -> bool:
    """True when ``value`` is exactly one ``${...}`` reference and nothing else.

    Such a value takes the type its field needs (``port: ${PORT:-8000}`` gives an int);
    anything longer stays a string.
    """
    match = _TOKEN.fullmatch(value)
    return match is not None and match.group(0) != "$${" and bool(match.group("close"))


def _resolve(body: str, env: Mapping[str, str]) -> str:
    ref = _REFERENCE.fullmatch(body)
    if ref is None:
        raise ConfigError(
            f"invalid reference `${{{body}}}`: write `${{NAME}}` or `${{NAME:-default}}` "
            "(NAME is letters, digits and `_`), or `$${` for a literal `${`"
        )
    name, default = ref.group("name"), ref.group("default")
    if default is None:
        if name not in env:
            raise ConfigError(
                f"environment variable `{name}` is not set; set it or give a default: `${{{name}:-default}}`"
            )
        return env[name]
    if "${" in default:
        raise ConfigError(f"nested `${{` in the default of `${{{body}}}` is not supported")
    return env.get(name) or default


__all__ = ["expand_env", "is_single_reference"]
