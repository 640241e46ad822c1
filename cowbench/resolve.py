"""Resolving a scenario against the machine: facts about user-supplied image files.

A ``path`` image is inspected with its *declared* format, under Nova's resource limits, and
refused if it names a backing file or an external data file (the class of CVE-2015-5162 and
CVE-2022-47951), or if a file declared raw is really another format. Its virtual size and the
map of where it holds data (``qemu-img map``) are filled into the resolved scenario, so the model
knows the base as well as the real backend does.
"""

from __future__ import annotations

import signal
from pathlib import Path

from . import tools
from .errors import ScenarioError, ToolError, UsageError
from .iolog import TraceError, read_iolog
from .profile import load_profile
from .scenario import Extent, Scenario, parse_scenario
from .tools import (
    absolute,
    data_extents_from_map,
    qemu_img_info,
    qemu_img_map,
    require_tools,
)


def resolve(scenario: Scenario, source: str = "<scenario>") -> Scenario:
    """Return ``scenario`` with every path image's size and data map filled in, and every
    path image and ``read_iolog`` made absolute (relative paths are relative to the scenario
    file), so the tools they are handed to find them from any working directory."""
    scenario = _absolute_iologs(scenario, source)
    scenario = _calibration(scenario, source)
    if all(img.path is None for img in scenario.images):
        return scenario
    data = scenario.model_dump(mode="json")
    for i, img in enumerate(scenario.images):
        if img.path is None:
            continue
        where = f"images[{i}].path"
        path = _scenario_relative(img.path, source)
        data["images"][i]["path"] = str(path)
        if not path.is_file():
            raise ScenarioError(source, [(where, f"no such file: {path}")])
        require_tools(("qemu-img",))
        try:
            info = qemu_img_info(path, img.format, untrusted=True)
        except ToolError as err:
            raise ScenarioError(source, [(where, _inspection_failed(img.format, err))]) from None
        problems = []
        if info.get("backing-filename") or info.get("full-backing-filename"):
            problems.append((where, "the image names a backing file; refused (untrusted images "
                                    "must be standalone)"))
        specific = (info.get("format-specific") or {}).get("data") or {}
        if specific.get("data-file"):
            problems.append((where, "the image names an external data file; refused"))
        if img.format == "raw":
            probed = qemu_img_info(path, untrusted=True).get("format")
            if probed != "raw":
                problems.append((where, f"declared raw but the content is {probed}; refused"))
        vsize = int(info["virtual-size"])
        if img.virtual_size is not None and img.virtual_size != vsize:
            problems.append((f"images[{i}].virtual_size",
                             f"{img.virtual_size} differs from the file's {vsize}"))
        if problems:
            raise ScenarioError(source, problems)
        extents = data_extents_from_map(qemu_img_map(path, img.format))
        data["images"][i]["virtual_size"] = vsize
        data["images"][i]["data_map"] = [Extent(offset=s, length=n).model_dump()
                                         for s, n in extents]
    return parse_scenario(data, source)


def _inspection_failed(fmt: str, err: ToolError) -> str:
    """One line: what qemu-img said, or that the resource limits stopped it."""
    if err.returncode < 0 and err.returncode != -1:
        name = signal.Signals(-err.returncode).name
        return (f"inspecting it as {fmt} was stopped by {name} (limits: {tools.UNTRUSTED_CPU_S} s "
                f"of CPU, {tools.UNTRUSTED_ADDRESS_SPACE >> 20} MiB of memory); refused")
    last = (err.stderr.strip().splitlines() or [str(err)])[-1]
    return f"not a valid {fmt} image: {last}"


def _calibration(scenario: Scenario, source: str) -> Scenario:
    """``device.profile`` and every ``hosts[].profile`` loaded (relative to the scenario file)
    into ``device.calibrated`` and ``hosts[].calibrated``."""
    named = [("device.profile", scenario.device.profile)] + [
        (f"hosts[{i}].profile", h.profile) for i, h in enumerate(scenario.hosts)]
    if all(name is None for _, name in named):
        return scenario
    if scenario.fleet is not None:
        key = next(k for k, name in named if name is not None)
        raise ScenarioError(source, [(key, "a fleet scenario has no I/O figures to "
                                      "calibrate")])
    here = Path(source).parent if Path(source).is_file() else Path.cwd()
    data = scenario.model_dump(mode="json")
    for key, name in named:
        if name is None:
            continue
        path = Path(name) if Path(name).is_absolute() else (here / name).resolve()
        try:
            profile = load_profile(path)
        except UsageError as err:
            raise ScenarioError(source, [(key, str(err))]) from None
        where = data["device"] if key == "device.profile" else \
            data["hosts"][int(key.split("[")[1].split("]")[0])]
        where["profile"] = str(path)
        where["calibrated"] = profile.params.model_dump(mode="json")
    return parse_scenario(data, source)


def with_profile(scenario: Scenario, profile: Path, source: str) -> Scenario:
    """``scenario`` with ``device.profile`` set to ``profile`` for every host
    (``cowbench run --profile``: it wins over the hosts' own profiles too)."""
    data = scenario.model_dump(mode="json")
    data["device"]["profile"] = str(profile.resolve())
    data["device"]["calibrated"] = None
    for host in data["hosts"]:
        host["profile"] = host["calibrated"] = None
    return _calibration(parse_scenario(data, source), source)


def _scenario_relative(name: str, source: str) -> Path:
    """``name`` as an absolute path; a relative one is relative to the scenario file."""
    here = Path(source).parent if Path(source).is_file() else Path.cwd()
    return Path(name) if Path(name).is_absolute() else absolute(here / name)


def with_host_profiles(scenario: Scenario, paths: dict[str, Path], source: str) -> Scenario:
    """``scenario`` with ``hosts[name].profile`` set to ``paths[name]`` (the cached profiles
    ``cowbench run`` chose for the hosts that name none)."""
    data = scenario.model_dump(mode="json")
    for host in data["hosts"]:
        if host["name"] in paths:
            host["profile"] = str(paths[host["name"]])
            host["calibrated"] = None
    return _calibration(parse_scenario(data, source), source)


def without_profiles(scenario: Scenario, source: str) -> Scenario:
    """``scenario`` with no profile anywhere (``cowbench run --uncalibrated``)."""
    data = scenario.model_dump(mode="json")
    data["device"]["profile"] = data["device"]["calibrated"] = None
    for host in data["hosts"]:
        host["profile"] = host["calibrated"] = None
    return parse_scenario(data, source)


def _absolute_iologs(scenario: Scenario, source: str) -> Scenario:
    here = Path(source).parent if Path(source).is_file() else Path.cwd()
    data = scenario.model_dump(mode="json")
    changed = False
    for name, wl in scenario.workloads.items():
        if wl.read_iolog and not Path(wl.read_iolog).is_absolute():
            path = (here / wl.read_iolog).resolve()
            data["workloads"][name]["read_iolog"] = str(path)
            changed = True
        path = Path(data["workloads"][name]["read_iolog"] or ".")
        if wl.read_iolog and not path.is_file():
            raise ScenarioError(source, [(f"workloads.{name}.read_iolog",
                                          f"no such file: {path}")])
        if wl.read_iolog:
            try:
                read_iolog(path)  # refuse a bad trace now, before any run directory exists
            except TraceError as err:
                raise ScenarioError(source, [(f"workloads.{name}.read_iolog", str(err))]) \
                    from None
    return parse_scenario(data, source) if changed else scenario
