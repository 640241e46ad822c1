"""A sweep point's knobs as a person reads them: ``capacity 3 TiB, ratio 1.5``, ``cluster 64 KiB``.

A knob is a scenario field by its dotted key path (``strategy.cluster_size``,
``hosts[0].capacity_bytes``). Labels use short names (:data:`SHORT`), sizes in binary units with a
space (``64 KiB``, as the axes print them), switches as ``on``/``off``, and the strategy's kind
alone (``reflink_copy``, not ``kind=reflink_copy``). A strategy knob that a kind does not use
(a full copy's ``cluster_size``, an RBD clone's ``extended_l2``) is no knob of that point: it
is absent (NaN), so such points are never drawn "at 64 KiB" (:func:`applies`).

A point's knobs are its overrides' key paths (:func:`override_knobs`): a whole section set at
once (``{strategy: {kind: full_copy}}``) is as many knobs as the keys it sets, plus its
``kind`` (filled in by default where it names none), each valued as the point's resolved
scenario has it (bytes and seconds: ``16384``, not ``16KiB``), but for an item of a list
(``hosts[0].count``), valued as written (a host of ``count: 2`` is two hosts of count 1 once
resolved), its size in bytes or its time in seconds. As columns, a knob keeps its
type (:func:`knob_dtypes`): integers as pandas' nullable ``Int64`` and switches as its nullable
``boolean``, so a knob that some points lack stays ``16384``, not ``16384.0``. summary.csv and
``cowbench.load_results`` follow these two rules alike.

Labels are made once per point and mapped onto records by the ``point`` column: a sweep of
millions of records is labelled in one vectorised ``map``, never row by row.

**One rule labels a sweep's points**, in summary.csv (and the CSVs by cell), the reports and
``cowbench show`` alike (:func:`sweep_label_knobs`): a point's knobs are its resolved
strategy's fields that apply to its kind and its overrides' key paths (:func:`scenario_knobs`);
a label names those that vary between the points or that the sweep file sets
(:func:`varying_knobs`), and a kind's own
knob (a chain's depth, a full copy's sparseness, an RBD clone's object size) wherever a point
sets it to other than the default, in one order: the kind, then its own knobs, then the rest
in the order the points give them (``snapshot_chain, chain depth 4, cluster 64 KiB, extended
L2 off``: the chain takes ``extended_l2``, so where the sweep varies it, the chain's is said).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .units import parse_duration, parse_size

if TYPE_CHECKING:  # pandas is imported where a frame is made: validate names strategies
    import pandas as pd  # without loading it (tests/test_light.py)

#: Short names of the knobs a planner or a researcher varies most.
SHORT = {"hosts[0].capacity_bytes": "capacity", "hosts[0].disk_allocation_ratio": "ratio",
         "hosts[0].count": "hosts", "hosts[0].reserved_host_disk_bytes": "reserved",
         "fleet.hosts.capacity_bytes": "capacity", "fleet.hosts.capacity": "capacity",
         "fleet.hosts.disk_allocation_ratio": "ratio", "fleet.hosts.count": "hosts",
         "fleet.hosts.reserved_host_disk_bytes": "reserved",
         "fleet.hosts.reserved_host_disk": "reserved",
         "fleet.vms": "VMs", "strategy.cluster_size": "cluster",
         "strategy.extended_l2": "extended L2", "strategy.refcount_bits": "refcount bits",
         "strategy.chain_depth": "chain depth", "strategy.object_size": "object",
         "strategy.clone_depth": "clone depth", "strategy.max_clone_depth": "max clone depth",
         "strategy.detect_zeroes": "detect-zeroes", "strategy.kind": "", "duration": "duration",
         "seed": "seed"}
#: Strategy kinds in the order reports list them: Nova's default first, then by family.
KINDS = ("qcow2_overlay", "resized_base", "snapshot_chain", "internal_snapshot", "full_copy",
         "rbd_clone", "reflink_copy")
QCOW2_KINDS = ("qcow2_overlay", "resized_base", "snapshot_chain", "internal_snapshot")
#: strategy knobs that only some kinds use (every other strategy knob applies to all kinds)
ONLY_FOR = {"cluster_size": QCOW2_KINDS, "extended_l2": QCOW2_KINDS,
            "refcount_bits": QCOW2_KINDS, "preallocation": QCOW2_KINDS,
            "chain_depth": ("snapshot_chain",), "sparse": ("full_copy",),
            "object_size": ("rbd_clone",), "clone_depth": ("rbd_clone",),
            "max_clone_depth": ("rbd_clone",)}
_SIZED = ("cluster_size", "_bytes", "_size", "capacity", "reserved_host_disk", "root",
          "ephemeral", "swap")
_BIN = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def applies(key: str, kind: object) -> bool:
    """Whether strategy knob ``key`` means anything for a strategy of ``kind``."""
    field = key.removeprefix("strategy.")
    return not key.startswith("strategy.") or field not in ONLY_FOR or kind in ONLY_FOR[field]


_ABSENT = object()
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def resolved_at(data: Any, path: str) -> Any:
    """The value at key path ``path`` (``hosts[0].capacity_bytes``) in a resolved scenario
    mapping, or ``_ABSENT`` where it has none."""
    node = data
    for name, index in _STEP.findall(path):
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return _ABSENT
            node = node[int(index)]
        elif isinstance(node, Mapping) and name in node:
            node = node[name]
        else:
            return _ABSENT
    return node


def _cell(value: Any) -> Any:
    """A knob's value as one table cell: lists and mappings as JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def _flat(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flat(sub, f"{path}.{key}"))
        return out
    return {path: value}


def override_knobs(overrides: Mapping[str, Any], resolved: Mapping[str, Any]) -> dict[str, Any]:
    """A point's overrides as knobs, by key path, valued as ``resolved`` (the point's resolved
    scenario, bytes and seconds) has them, or as written where it has no such path. A section
    set whole (``strategy: {kind: full_copy}``) gives every key path it sets and its ``kind``
    (the default where it names none), so a grid's ``strategy.kind`` and a point's whole
    strategy land in one column. A knob that the point's strategy kind does not use is left
    out (:func:`applies`)."""
    written: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            kind = resolved_at(resolved, f"{key}.kind")
            if kind is not _ABSENT:
                written[f"{key}.kind"] = kind
        written.update(_flat(value, key))
    kind = resolved_at(resolved, "strategy.kind")
    out: dict[str, Any] = {}
    for key, value in written.items():
        if applies(key, None if kind is _ABSENT else kind):
            # a list's items are not where the file has them once resolved (a host of
            # `count: 2` is two hosts of count 1): such a knob is its value as written, in
            # bytes or seconds
            got = resolved_at(resolved, key) if "[" not in key else _ABSENT
            out[key] = _cell(_in_units(key, value) if got is _ABSENT else got)
    return out


def _in_units(key: str, value: Any) -> Any:
    """A value as written, a size in bytes or a time (a key ending in ``_s``) in seconds where
    it is one (``30GiB``, ``2h``); anything else as it is."""
    if not isinstance(value, str):
        return value
    from .units import parse_duration, parse_size

    try:
        return parse_duration(value) if key.endswith("_s") else parse_size(value)
    except ValueError:
        return value


def scenario_knobs(resolved: Mapping[str, Any],
                   overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The knobs of one point: its resolved strategy's fields that apply to its kind
    (:func:`applies`) and its overrides' key paths (:func:`override_knobs`), as resolved."""
    strategy = resolved.get("strategy")
    knobs = {k: _cell(v) for k, v in _flat(strategy, "strategy").items()} \
        if isinstance(strategy, Mapping) else {}
    kind = knobs.get("strategy.kind")
    knobs = {k: v for k, v in knobs.items() if applies(k, kind)}
    if overrides:
        knobs.update(override_knobs(overrides, resolved))
    return knobs


def varying_knobs(points: pd.DataFrame, columns: Iterable[str],
                  set_keys: Iterable[str] = ()) -> list[str]:
    """The knob columns whose values differ between the points, where they apply (a full
    copy's missing cluster size is no second value), and those the sweep file sets
    (``set_keys``, its overrides' key paths) though one value: a sweep of one ratio says it."""
    given = set(set_keys)
    return [c for c in columns if c in points.columns and (
        (c in given and points[c].notna().any())
        or points[c].dropna().astype(str).nunique() > 1)]


def label_knobs(points: pd.DataFrame, knobs: Iterable[str]) -> list[str]:
    """The knobs a label names, in label order: the kind, then each knob only one kind has
    (a chain's depth, a full copy's sparseness, an RBD clone's object size and clone depths)
    where it varies or some point sets it to other than the schema's default, then the others.

    Such a knob is what a kind *is* at that point: ``snapshot_chain`` four layers deep and one
    layer deep (the default) are different strategies (one layer is ``qcow2_overlay`` again),
    so a label without the depth would say less than the point is. At its default the knob
    says nothing the kind's name does not (``storage_schema.Strategy``), and a knob several
    kinds share (cluster size, refcount bits) is named only where it varies."""
    from .storage_schema import Strategy

    knobs = list(knobs)
    if "strategy.kind" not in knobs:
        return knobs
    own = []
    for field, kinds in ONLY_FOR.items():
        key = f"strategy.{field}"
        if len(kinds) != 1 or key not in points.columns:
            continue
        default = Strategy.model_fields[field].default
        if key in knobs or any(v != default for v in points[key].dropna()):
            own.append(key)
    rest = [k for k in knobs if k != "strategy.kind" and k not in own]
    return ["strategy.kind", *own, *rest]


def sweep_label_knobs(points: pd.DataFrame, columns: Iterable[str],
                      set_keys: Iterable[str] = ()) -> list[str]:
    """The knobs the labels of these points name (:func:`varying_knobs`, :func:`label_knobs`):
    the one rule of summary.csv, the reports and ``cowbench show``."""
    return label_knobs(points, varying_knobs(points, columns, set_keys))


def strategy_label(strategy: Mapping[str, Any]) -> str:
    """One strategy (a resolved ``strategy`` mapping) in the words of the labels, naming every
    knob it has that says something: the kind, the knobs only its kind has (``chain depth 4``,
    ``object 64 KiB``), the cluster size of a qcow2 kind, and any other knob it sets to other
    than the default (``extended L2 on``, ``refcount bits 8``): what ``validate`` says of a
    VM's disk."""
    from .storage_schema import Strategy

    knobs = scenario_knobs({"strategy": dict(strategy)})
    kind = knobs.get("strategy.kind")
    keys = ["strategy.kind"]
    for key, value in knobs.items():
        field = key.removeprefix("strategy.")
        if field == "kind" or field not in Strategy.model_fields:
            continue
        default = Strategy.model_fields[field].default
        said = len(ONLY_FOR.get(field, ())) == 1 or (field == "cluster_size"
                                                     and kind in QCOW2_KINDS)
        if said or value != default:
            keys.append(key)
    # label order (label_knobs): the kind, its own knobs, the rest
    own = [k for k in keys if len(ONLY_FOR.get(k.removeprefix("strategy."), ())) == 1]
    return knob_label(knobs, ["strategy.kind", *own, *[k for k in keys[1:] if k not in own]])


def vm_strategies(resolved: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each VM's resolved strategy in a resolved scenario, by entity (``vm:<name>``): its own
    (``vms[].strategy``), else the scenario's."""
    default = resolved.get("strategy")
    out = {}
    for vm in resolved.get("vms") or []:
        if isinstance(vm, Mapping):
            own = vm.get("strategy")
            st = own if isinstance(own, Mapping) else default
            out[f"vm:{vm.get('name')}"] = dict(st) if isinstance(st, Mapping) else {}
    return out


def vm_labels(points: pd.DataFrame) -> pd.DataFrame | None:
    """Where the VMs of a point have strategies of their own that differ (``vms[].strategy``),
    each VM's strategy label by the sweep's rule (:func:`sweep_label_knobs` over the VMs):
    ``point, entity, label``, and ``order`` (the labels in label order); None where every
    point's VMs share one strategy (its points' labels say it)."""
    rows = [{"point": pt, "entity": e, **scenario_knobs({"strategy": st})}
            for pt, per_vm in zip(points.get("point", []), points.get("vm_strategies", []),
                                  strict=False) if isinstance(per_vm, Mapping)
            for e, st in per_vm.items()]
    import pandas as pd

    frame = pd.DataFrame(rows)
    cols = [c for c in frame.columns if c.startswith("strategy.")]
    if frame.empty or not (frame[cols].astype(str).groupby(frame["point"]).nunique() > 1)\
            .to_numpy().any():
        return None
    keys = sweep_label_knobs(frame, cols, ["strategy.kind"])
    frame = frame.astype(knob_dtypes(rows, cols))
    labels = [knob_label(r, keys) for r in frame.to_dict("records")]
    keyed = frame.assign(point=frame["point"].astype(str) + "\0" + frame["entity"])
    out = frame[["point", "entity"]].assign(label=labels)
    out.attrs["order"] = label_order(keyed, keys)
    return out


def knob_dtypes(rows: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> dict[str, str]:
    """The pandas dtype that keeps each knob column's type where some points lack the knob:
    ``Int64`` for integers, ``boolean`` for switches (a frame built from rows would make them
    float64 with NaN, or objects). Columns of floats, text or mixed values are not named."""
    values: dict[str, list[Any]] = {c: [] for c in columns}
    for row in rows:
        for c, seen in values.items():
            if c in row and not _missing(row[c]):
                seen.append(row[c])
    dtypes: dict[str, str] = {}
    for c, seen in values.items():
        if seen and all(isinstance(v, bool) for v in seen):
            dtypes[c] = "boolean"
        elif seen and all(isinstance(v, int) and not isinstance(v, bool) for v in seen):
            dtypes[c] = "Int64"
    return dtypes


def knob_name(key: str) -> str:
    """``hosts[0].disk_allocation_ratio`` -> ``ratio``; unknown keys by their last part."""
    if key in SHORT:
        return SHORT[key]
    return key.rsplit(".", 1)[-1].replace("_", " ")


def is_sized(key: str) -> bool:
    return key.endswith(_SIZED)


def size_text(value: float) -> str:
    """``3298534883328`` -> ``3 TiB``; ``1.5 * 2**40`` -> ``1.5 TiB``."""
    for unit, size in _BIN:
        if value >= size:
            q = value / size
            return f"{q:.0f} {unit}" if q == round(q) else f"{q:.3g} {unit}"
    return f"{value:g} B"


def knob_value(key: str, value: Any) -> str:
    """A knob's value in human units: sizes binary, switches on/off, numbers plain."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and is_sized(key):
        try:
            value = parse_size(value)
        except ValueError:
            return str(value)
    if isinstance(value, int | float) and is_sized(key) and value > 0:
        return size_text(float(value))
    if isinstance(value, float) and value == round(value) and abs(value) < 1e15:
        return f"{value:g}"
    return str(value)


def knob_text(key: str, value: Any) -> str:
    """``capacity 3 TiB``, ``extended L2 on``, ``reflink_copy``: one knob in a label."""
    name = knob_name(key)
    text = knob_value(key, value)
    return f"{name} {text}" if name else text


def _missing(value: Any) -> bool:
    """No value: None, a float NaN, or pandas' NA (an ``Int64`` or ``boolean`` column's gap)."""
    return value is None or type(value).__name__ == "NAType" or (
        isinstance(value, float) and math.isnan(value))


def knob_label(row: Mapping[Any, Any] | pd.Series, knobs: list[str]) -> str:
    """A point's varying knobs in a legend label: ``capacity 3 TiB, ratio 1.5``; knobs that do
    not apply to the point (NaN) are left out."""
    parts = [knob_text(k, row[k]) for k in knobs if k in row and not _missing(row[k])]
    return ", ".join(parts) if parts else "all"


def point_labels(points: pd.DataFrame, knobs: list[str]) -> pd.Series:
    """The label of each point, indexed by ``point``: made once per point, not per record."""
    import pandas as pd

    if points.empty:
        return pd.Series(dtype=object)
    labels = [knob_label(r, knobs) for r in points.to_dict("records")]
    return pd.Series(labels, index=points["point"].to_numpy(), dtype=object)


def _as_numbers(col: pd.Series) -> pd.Series:
    """Sizes and durations as written (``8GiB``, ``12GiB``, ``30d``) by their value, so
    8 GiB comes before 12 GiB; a column with anything else as it is."""
    import pandas as pd

    if not col.map(lambda v: isinstance(v, str)).any():
        return col
    for parse in (parse_size, parse_duration):
        try:
            return pd.Series([_value(v, parse) for v in col], index=col.index, name=col.name)
        except (ValueError, TypeError):
            continue
    return col


def _value(v: Any, parse: Any) -> Any:
    return v if _missing(v) else float(parse(v))


def label_order(points: pd.DataFrame, knobs: list[str]) -> list[str]:
    """Labels in the order a reader expects: by the knobs' values (numbers as numbers)."""
    if points.empty:
        return []
    cols = [k for k in knobs if k in points.columns]
    kinds = {k: i for i, k in enumerate(KINDS)}

    def key(col: pd.Series) -> pd.Series:
        if col.name == "strategy.kind":
            return col.map(lambda v: kinds.get(v, len(kinds)))
        return _as_numbers(col)

    order = points.sort_values(cols, kind="stable", na_position="first", key=key) \
        if cols else points
    return list(dict.fromkeys(point_labels(order, knobs).tolist()))
