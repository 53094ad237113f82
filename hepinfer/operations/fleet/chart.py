"""SuperSONIC's Helm chart, as values are checked against it: the chart's own ``Chart.yaml``,
``values.yaml`` and ``values.schema.json`` (release 0.3.1, shipped in ``supersonic/`` beside this
module with the chart's Apache-2.0 ``LICENSE``), or those of another copy of the chart.

:func:`check` does what ``helm install`` does with a user's values before it renders anything:
merge them over the chart's defaults (:func:`merge`: maps key by key, lists and scalars replaced, a
null removes the key) and validate the result against the schema (JSON Schema draft 7, with
``jsonschema``).  The schema allows keys it does not name, and Helm ignores them silently, so
:func:`check` also refuses a key that neither the schema nor the defaults hold (a key of another
release of the chart), except under a subchart (``Chart.yaml``'s dependencies take their own
values) and where the chart's ``values.yaml`` invites more in its comments (:data:`INVITED`).
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hepinfer.errors import ConfigError

SHIPPED = "supersonic"  # the chart's files, package data of this package
# Keys the chart's values.yaml invites in its comments, not in its schema: the model repository's
# storage options (storageType pvc / cvmfs-pvc / cvmfs / nfs, pvc.claimName, nfs.server, nfs.path),
# and any resource of triton.resources ("You can add necessary GPU request here"); None: any key.
INVITED: dict[tuple[str, ...], tuple[str, ...] | None] = {
    ("triton", "modelRepository"): ("storageType", "pvc", "nfs"),
    ("triton", "resources", "limits"): None,
    ("triton", "resources", "requests"): None,
}
STORAGE_TYPES = ("pvc", "cvmfs-pvc", "cvmfs", "nfs")  # the storageType options of those comments


@dataclass(frozen=True)
class Chart:
    """A chart's name and version (``Chart.yaml``), its default values and its values schema."""

    source: str
    name: str
    version: str
    defaults: dict
    schema: dict
    subcharts: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"the {self.name} chart {self.version}"


@functools.lru_cache(maxsize=8)
def load_chart(directory=None) -> Chart:
    """The chart whose files are in ``directory`` (default: the shipped copy of SuperSONIC 0.3.1);
    read once per directory."""
    yaml = yaml_module()
    root = resources.files(__package__).joinpath(SHIPPED) if directory is None else Path(directory)
    parsed = {}
    for name in ("Chart.yaml", "values.yaml", "values.schema.json"):
        try:
            text = root.joinpath(name).read_text(encoding="utf-8")
            parsed[name] = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as err:
            raise ConfigError(f"Helm chart {root}: cannot read {name}: {err}") from err
        if not isinstance(parsed[name], dict):
            raise ConfigError(f"Helm chart {root}: {name} is not a mapping")
    meta = parsed["Chart.yaml"]
    if not meta.get("name") or not meta.get("version"):
        raise ConfigError(f"Helm chart {root}: Chart.yaml names no chart name or version")
    return Chart(
        source=str(root),
        name=str(meta["name"]),
        version=str(meta["version"]),
        defaults=parsed["values.yaml"],
        schema=parsed["values.schema.json"],
        subcharts=tuple(str(d["name"]) for d in meta.get("dependencies") or () if d.get("name")),
    )


def yaml_module():
    """PyYAML (the ``fleet`` extra), or a ConfigError naming the extra."""
    try:
        import yaml
    except ImportError as err:
        raise ConfigError("SuperSONIC values are YAML, which needs PyYAML: pip install 'hepinfer[fleet]'") from err
    return yaml


def merge(defaults: dict, values: dict) -> dict:
    """``values`` over ``defaults`` as Helm merges them: maps merged key by key, lists and scalars
    replaced, a null (None) removing the key."""
    out = copy.deepcopy(defaults)
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def dotted(path) -> str:
    """A key path as Helm's documentation writes it: ``a.b."c.d"``, list items as ``[i]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = f'"{part}"' if "." in part else part
            text += f".{part}" if text else part
    return text or "(the top level)"


def schema_errors(values: dict, chart: Chart) -> list[str]:
    """What the chart's schema says of ``values`` merged over its defaults: a line per complaint,
    ``key.path: the schema's message``."""
    try:
        from jsonschema import Draft7Validator
    except ImportError as err:
        raise ConfigError("checking SuperSONIC values needs jsonschema: pip install 'hepinfer[fleet]'") from err
    errors = Draft7Validator(chart.schema).iter_errors(merge(chart.defaults, values))
    return [f"{dotted(e.absolute_path)}: {e.message}" for e in sorted(errors, key=lambda e: list(map(str, e.path)))]


def unknown_keys(values: dict, chart: Chart) -> list[str]:
    """Keys of ``values`` the chart has no place for: a line per key, with the keys it knows there.
    A subchart's values (under its name) are the subchart's own: not looked into."""
    found: list[str] = []

    def walk(given: dict, schema: dict, defaults: Any, path: tuple[str, ...]) -> None:
        props = schema.get("properties") or {}
        known = set(props) | (set(defaults) if isinstance(defaults, dict) else set())
        invited = INVITED.get(path, ())
        for key, value in given.items():
            here = (*path, str(key))
            if invited is None or key in invited or (not path and key in chart.subcharts):
                continue
            if key not in known:
                given_key, inner = here, value
                while isinstance(inner, dict) and inner:  # the key as it was given, down to its first leaf
                    leaf, inner = next(iter(inner.items()))
                    given_key = (*given_key, str(leaf))
                where = f"under {dotted(path)}" if path else "at the top"
                found.append(
                    f"{dotted(given_key)}: {dotted(here)} is not a value of {chart.label} (neither its values.yaml "
                    f"nor its schema has it; known {where}: {', '.join(sorted(known | set(invited)))})"
                )
                continue
            sub_schema = props.get(key) or {}
            sub_defaults = defaults.get(key) if isinstance(defaults, dict) else None
            free_form = not sub_schema.get("properties") and not (isinstance(sub_defaults, dict) and sub_defaults)
            if isinstance(value, dict) and not free_form:
                walk(value, sub_schema, sub_defaults, here)

    walk(values, chart.schema, chart.defaults, ())
    return found


def check(values: dict, chart: Chart | None = None) -> dict:
    """``values`` merged over the chart's defaults, or a ConfigError naming each key at fault with
    the schema's complaint (or the keys the chart knows there)."""
    chart = chart or load_chart()
    problems = unknown_keys(values, chart) + schema_errors(values, chart)
    if problems:
        raise ConfigError(
            f"SuperSONIC values refused by {chart.label} ({chart.source}):\n" + "\n".join(f"  {p}" for p in problems)
        )
    return merge(chart.defaults, values)
