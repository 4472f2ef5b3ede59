"""``robutler-kernel migrate``: V1 agent configurations to V2 kernel configs.

V1 files (JSON or YAML; one agent, a list, or a folder of them) are read with the line of
every key (:mod:`.v1`), each agent is mapped field by field (:mod:`.agent`, with the tables
of :mod:`.tables` and :mod:`.pricing`; tools in :mod:`.tools`), and the V2 files are
rendered with ruamel.yaml's round-trip dumper, so a YAML input keeps its comments and key
order, then written all or nothing (:mod:`.plan`). Every V1 field is either mapped or
reported with the reason (:class:`Finding`). ``docs/migration.md`` is the user's guide.
"""

from __future__ import annotations

from .agent import Installed, MigratedAgent
from .findings import Finding
from .plan import DEFAULT_OUTPUT, Migration, Output, installed_skills, plan, write
from .tools import v1_tool
from .v1 import V1Agent, V1Error

__all__ = [
    "DEFAULT_OUTPUT",
    "Finding",
    "Installed",
    "MigratedAgent",
    "Migration",
    "Output",
    "V1Agent",
    "V1Error",
    "installed_skills",
    "plan",
    "v1_tool",
    "write",
]
