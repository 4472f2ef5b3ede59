"""Write docs/hooks.md from the hook specifications (the specs are the reference).

    python scripts/hook_docs.py          # rewrite docs/hooks.md
    python scripts/hook_docs.py --check  # exit 1 if docs/hooks.md is out of date
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from robutler_specs import hookspecs

DOC = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"

HEADER = """# Hook reference

Generated from `plugin_specs/src/robutler_specs/hookspecs.py` by `python scripts/hook_docs.py`;
a test fails when this page and the specs disagree. Read `docs/writing-plugins.md` first.

"""


def _signature(fn: object) -> str:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    params = [p for name, p in sig.parameters.items() if name != "self"]
    returns = str(sig.return_annotation).replace("'", "")
    args = ", ".join(str(p).replace("'", "") for p in params)
    return f"{fn.__name__}({args}) -> {returns}"  # type: ignore[attr-defined]


def render() -> str:
    """The Markdown for every hook, in lifecycle order."""
    parts = [HEADER, inspect.cleandoc(hookspecs.__doc__ or ""), "\n"]
    for cls, title in ((hookspecs.SkillHooks, "Skill hooks"), (hookspecs.KernelHooks, "Kernel hooks")):
        parts.append(f"\n## {title}\n\n{inspect.cleandoc(cls.__doc__ or '')}\n")
        for name in vars(cls):
            if name.startswith("_"):
                continue
            fn = getattr(cls, name)
            firstresult = getattr(fn, "robutler_spec", {}).get("firstresult", False)
            parts.append(f"\n### `{_signature(fn)}`\n")
            if firstresult:
                parts.append("\n*firstresult*\n")
            parts.append(f"\n{inspect.cleandoc(fn.__doc__ or '')}\n")
    return "".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run python scripts/hook_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
