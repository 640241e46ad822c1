"""Scenario keys in their old spellings, read and moved to the new ones with a warning.

When timelines and fleets were given one language (issue 17), keys without their unit
(``mean``, ``capacity``, ``sample_interval``, ``interval``, ``daily_write`` ...) took the house
spelling (``mean_s``, ``capacity_bytes``, ``sample_interval_s``, ``every_s``,
``write_bytes_per_day`` ...). A file in the old spelling still loads: :func:`upgrade` moves each
old key to its new place before the scenario is validated and warns once per key (a
FutureWarning naming the full key path as written and the new one). Giving a setting in both
spellings is an error naming the old key's path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .nova.schema import BothSpellings, renamed

#: ``fleet.hosts`` when a fleet gave none: one host of 4 TiB named host-001.
OLD_POOL = {"count": 1, "prefix": "host", "capacity_bytes": 4 << 40}

HOST = {"capacity": "capacity_bytes", "reserved_host_disk": "reserved_host_disk_bytes"}
LIFETIME = {"mean": "mean_s"}
IMAGE_CACHE = {"manager_interval": "manager_interval_s",
               "remove_unused_original_minimum_age": "remove_unused_original_minimum_age_s",
               "remove_unused_resized_minimum_age": "remove_unused_resized_minimum_age_s"}
FLEET = {"sample_interval": "sample_interval_s"}
PERIODIC = {"interval": "every_s"}
WORKLOAD_CLASS = {"boot_read": "boot_read_bytes", "daily_write": "write_bytes_per_day",
                  "growth_per_day": "growth_bytes_per_day"}

Step = Callable[[Any, str], Any]


def _each(data: Any, key: str, where: str, step: Step) -> Any:
    """``data`` with ``step`` applied to every element of its list ``key``."""
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        return data
    return {**data, key: [step(v, f"{where}{key}[{i}]") for i, v in enumerate(data[key])]}


def _at(data: Any, key: str, where: str, step: Step) -> Any:
    """``data`` with ``step`` applied to its mapping ``key``."""
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        return data
    return {**data, key: step(data[key], f"{where}{key}")}


def _values(data: Any, where: str, step: Step) -> Any:
    """A mapping of named sections (``fleet.classes``) with ``step`` applied to each."""
    if not isinstance(data, dict):
        return data
    return {k: step(v, f"{where}.{k}") for k, v in data.items()}


def _keys(table: dict[str, str]) -> Step:
    return lambda data, where: renamed(data, f"{where}.", table)


def _arrival(data: Any, where: str) -> Any:
    return _at(data, "lifetime", f"{where}.", _keys(LIFETIME))


def _fleet(data: Any, where: str) -> Any:
    out = renamed(data, f"{where}.", FLEET)
    out = _at(out, "hosts", f"{where}.", _keys(HOST))
    out = _at(out, "lifetime", f"{where}.", _keys(LIFETIME))
    out = _at(out, "image_cache", f"{where}.", _keys(IMAGE_CACHE))
    for key in ("snapshots", "migrations"):
        out = _at(out, key, f"{where}.", _keys(PERIODIC))
    return _at(out, "classes", f"{where}.",
               lambda c, w: _values(c, w, _keys(WORKLOAD_CLASS)))


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A scenario mapping with every old key in its new spelling and place (a FutureWarning
    for each); both spellings of one setting raise :class:`~cowbench.nova.schema.BothSpellings`."""
    out = _each(data, "hosts", "", _keys(HOST))
    out = _at(out, "nova", "", lambda n, w: _at(n, "image_cache", f"{w}.", _keys(IMAGE_CACHE)))
    out = _at(out, "timeline", "", lambda t, w: _each(t, "arrivals", f"{w}.", _arrival))
    out = _at(out, "fleet", "", _fleet)
    return _flavors_place(_hosts_place(_image_cache_place(out)))


def _image_cache_place(data: dict[str, Any]) -> dict[str, Any]:
    """A fleet's old ``fleet.image_cache`` is the scenario's ``nova.image_cache``."""
    fleet = data.get("fleet")
    if not isinstance(fleet, dict) or "image_cache" not in fleet:
        return data
    nova = data.get("nova") or {}
    if not isinstance(nova, dict) or "image_cache" in nova:
        raise BothSpellings("fleet.image_cache", "fleet.image_cache and nova.image_cache are "
                            "the same settings (fleet.image_cache is their old place): give "
                            "only nova.image_cache")
    warnings.warn("fleet.image_cache is now nova.image_cache", FutureWarning, stacklevel=2)
    rest = {k: v for k, v in fleet.items() if k != "image_cache"}
    return {**data, "fleet": rest, "nova": {**nova, "image_cache": fleet["image_cache"]}}



def _hosts_place(data: dict[str, Any]) -> dict[str, Any]:
    """A fleet's old host pool ``fleet.hosts`` (count, prefix, disk) is the scenario's
    ``hosts``: one entry ``{name: PREFIX, count: N, ...}`` (a pool of one keeps its old name,
    ``PREFIX-001``). Over a scenario that has one ``hosts`` entry (a sweep's old key path on a
    new file), each key goes to ``hosts[0]``."""
    fleet = data.get("fleet")
    if not isinstance(fleet, dict) or ("hosts" not in fleet and "hosts" in data):
        return data
    pool = fleet.get("hosts", {})
    rest = {k: v for k, v in fleet.items() if k != "hosts"}
    if not isinstance(pool, dict):
        return data  # refused where it stands (fleet.hosts: unknown key)
    if "hosts" in data:
        return {**data, "fleet": rest, "hosts": _into_first(data["hosts"], pool)}
    if "hosts" in fleet:
        warnings.warn("fleet.hosts is now hosts (a list; {name: host, count: N, ...} "
                      "describes N alike hosts host-001 ...)", FutureWarning, stacklevel=2)
    else:
        warnings.warn("a fleet without hosts had one host of 4 TiB (host-001): now give it in "
                      "hosts", FutureWarning, stacklevel=2)
    entry = {**OLD_POOL, **pool}
    prefix = entry.pop("prefix")
    entry = {"name": prefix, **entry}
    if entry["count"] == 1:
        entry["name"] = f"{prefix}-001"
        del entry["count"]
    return {**data, "fleet": rest, "hosts": [entry]}


def _into_first(hosts: Any, pool: dict[str, Any]) -> Any:
    if not isinstance(hosts, list) or len(hosts) != 1 or not isinstance(hosts[0], dict):
        raise BothSpellings("fleet.hosts", "fleet.hosts is the old place of hosts: give only "
                            "hosts")
    first = dict(hosts[0])
    for old, value in pool.items():
        new = "name" if old == "prefix" else old
        if new in first:
            raise BothSpellings(f"fleet.hosts.{old}", f"fleet.hosts.{old} and hosts[0].{new} "
                                "are the same setting (fleet.hosts is the old place of hosts): "
                                f"give only hosts[0].{new}")
        warnings.warn(f"fleet.hosts.{old} is now hosts[0].{new}", FutureWarning, stacklevel=3)
        first[new] = value
    return [first]


def _flavors_place(data: dict[str, Any]) -> dict[str, Any]:
    """A fleet's old ``fleet.flavors`` (each with its ``share``) are the scenario's
    ``flavors`` and ``fleet.flavor_mix`` (name: share), in the same order."""
    fleet = data.get("fleet")
    if not isinstance(fleet, dict) or not isinstance(fleet.get("flavors"), list):
        return data
    old = fleet["flavors"]
    if not all(isinstance(fl, dict) and isinstance(fl.get("name"), str) for fl in old):
        return data  # refused where it stands (fleet.flavors: unknown key)
    if "flavors" in data or "flavor_mix" in fleet:
        raise BothSpellings("fleet.flavors", "fleet.flavors is the old place of flavors and "
                            "fleet.flavor_mix: give only those two")
    warnings.warn("fleet.flavors is now flavors, their shares fleet.flavor_mix (name: share)",
                  FutureWarning, stacklevel=2)
    rest = {k: v for k, v in fleet.items() if k != "flavors"}
    mix = {fl["name"]: fl.get("share", 1.0) for fl in old}
    flavors = [{k: v for k, v in fl.items() if k != "share"} for fl in old]
    return {**data, "flavors": flavors, "fleet": {**rest, "flavor_mix": mix}}
