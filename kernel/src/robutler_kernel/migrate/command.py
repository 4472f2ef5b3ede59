"""The ``migrate`` sub-command: arguments, the report, exit codes.

Exit codes: ``0`` written (or, with ``--check``, everything can be migrated); ``1`` nothing
written: an error (a malformed file, a model with no known provider, an output that
exists), or with ``--check`` anything that cannot be migrated.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from robutler_specs import ConfigError

from ..config import MODEL_RE
from .plan import DEFAULT_OUTPUT, Migration, plan, printable, write

_SHOWN = {"mapped": "mapped", "note": "note", "not migrated": "NOT MIGRATED", "error": "ERROR"}


def add_parser(sub: Any) -> None:
    """Add ``migrate`` to the sub-command parsers ``sub``."""
    parser = sub.add_parser(
        "migrate",
        help="turn V1 agent configs (JSON or YAML, a file or a folder) into a V2 config",
        description="Read V1 agent configurations and write a V2 kernel config. Every V1 field is mapped "
        "or reported with the reason; nothing is written when something is wrong (all or nothing).",
    )
    parser.add_argument("source", metavar="V1_FILE_OR_DIR", help="a V1 agent file, or a folder of them")
    parser.add_argument(
        "-o", "--output", metavar="OUT",
        help=f"the V2 config to write (default: ./{DEFAULT_OUTPUT}); a folder (OUT/) gets one config per V1 file",
    )
    parser.add_argument("--check", action="store_true", help="dry run: show what would change and what cannot be migrated")
    parser.add_argument("--force", action="store_true", help="replace output files that exist")
    parser.add_argument(
        "--model-map", action="append", default=[], metavar="V1=PROVIDER/MODEL",
        help="serve a V1 model with this V2 model (repeatable; '*=...' for every model), e.g. gpt-4=openai/gpt-4o",
    )
    parser.set_defaults(func=run)


def model_map_of(pairs: list[str]) -> dict[str, str]:
    """``--model-map`` values as a mapping.

    :raises ConfigError: a value is not ``V1=provider/model``.
    """
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not MODEL_RE.fullmatch(new.strip()):
            raise ConfigError(f"--model-map {pair!r}: expected V1_MODEL=<provider>/<model>, e.g. gpt-4=openai/gpt-4o")
        mapping[old.strip()] = new.strip()
    return mapping


def report(migration: Migration, out: TextIO, *, verbose: bool) -> None:
    """Print the findings, agent by agent (all of them when ``verbose``, else what needs reading)."""
    for agent in migration.agents:
        shown = [f for f in agent.findings if verbose or f.level != "mapped"]
        print(printable(f"{agent.name} ({agent.source.source}):"), file=out)
        for finding in shown:
            line = f"  {_SHOWN[finding.level]:<13} {finding.where}  {finding.field}: {finding.message}"
            print(printable(line), file=out)
        if not shown:
            print("  every field mapped", file=out)


def run(args: argparse.Namespace) -> int:
    """Run ``robutler-kernel migrate``."""
    migration = plan(args.source, args.output, model_map=model_map_of(args.model_map), force=args.force)
    report(migration, sys.stdout, verbose=args.check)
    for error in migration.errors:
        print(printable(f"error: {error}"), file=sys.stderr)
    left = sum(f.level == "not migrated" for f in migration.findings)
    errors = len(migration.errors) + sum(f.level == "error" for f in migration.findings)
    if args.check:
        names = ", ".join(str(o.path) for o in migration.outputs) or "nothing"
        print(f"would write: {names}")
        print(f"{left} field(s) not migrated, {errors} error(s)")
        return 0 if migration.complete else 1
    if migration.blocked:
        print(f"error: nothing written: {errors} error(s) above", file=sys.stderr)
        return 1
    try:
        written = write(migration.outputs)
    except OSError as exc:
        print(f"error: nothing written: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    if left:
        print(f"{left} field(s) not migrated: listed above, and as comments in the config")
    config = migration.outputs[0].path
    print(f"next: robutler-kernel check {config} && robutler-kernel serve -c {config}")
    return 0


__all__ = ["add_parser", "model_map_of", "report", "run"]
