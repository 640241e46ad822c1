"""Resolving a scenario against the machine: facts about user-supplied image files.

A ``path`` image is opened under cowbench's policy for files users name
(``cowbench.imagefile``) and inspected through that descriptor, with its *declared* format,
under Nova's resource limits (info and map alike, output capped, with a timeout); it is
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
from .imagefile import PROTOCOL_RE, ImagePolicyError, open_user_image, protocol_refusal
from .iolog import Trace, TraceError, read_iolog
from .profile import load_profile
from .scenario import Extent, Image, Scenario, as_written_in, parse_scenario
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
        path = _scenario_relative_checked(img, f"images[{i}].path", source)
        data["images"][i]["path"] = str(path)
        vsize, extents = _inspect_path_image(img, str(path), f"images[{i}]", source)
        data["images"][i]["virtual_size"] = vsize
        data["images"][i]["data_map"] = [Extent(offset=s, length=n).model_dump()
                                         for s, n in extents]
    return parse_scenario(data, source)


def _scenario_relative_checked(img: Image, where: str, source: str) -> Path:
    """The image's path, absolute; a qemu protocol or ``json:`` spelling is refused first (a
    relative ``json:{...}`` would otherwise become a plain file name)."""
    assert img.path is not None
    if PROTOCOL_RE.match(img.path):
        raise ScenarioError(source, [(where, protocol_refusal(img.path))])
    return _scenario_relative(img.path, source)


def _inspect_path_image(img: Image, path: str, where: str, source: str
                        ) -> tuple[int, list[tuple[int, int]]]:
    """Open the file under the policy (``cowbench.imagefile``), inspect it through its
    descriptor; its virtual size and data extents, or a :class:`ScenarioError`."""
    try:
        with open_user_image(path, img.allow_untrusted_path) as f:
            require_tools(("qemu-img",))
            return check_image(f.proc_path, img, where, source, (f.fd,))
    except ImagePolicyError as err:
        raise ScenarioError(source, [(f"{where}.path", str(err))]) from None


def check_image(path: str, img: Image, where: str, source: str,
                pass_fds: tuple[int, ...] = ()) -> tuple[int, list[tuple[int, int]]]:
    """Inspect an image file with its *declared* format under Nova's limits: refuse a backing
    file, an external data file, or raw that is not raw; its virtual size and data extents."""
    try:
        vsize, extents, problems = _inspect(path, img.format, pass_fds)
    except ToolError as err:
        raise ScenarioError(source, [(f"{where}.path", _inspection_failed(img.format, err))]) \
            from None
    found = [(f"{where}.path", why) for why in problems]
    if vsize <= 0:  # named where the user wrote it, not at virtual_size, filled in from it
        found.append((f"{where}.path", f"its virtual size is {vsize} bytes (an empty file); "
                                       "an image needs at least one byte"))
    if img.virtual_size is not None and img.virtual_size != vsize:
        found.append((f"{where}.virtual_size",
                      f"{img.virtual_size} differs from the file's {vsize}"))
    if found:
        raise ScenarioError(source, found)
    return vsize, extents


def _inspect(path: str, fmt: str, pass_fds: tuple[int, ...]
             ) -> tuple[int, list[tuple[int, int]], list[str]]:
    info = qemu_img_info(path, fmt, untrusted=True, pass_fds=pass_fds)
    problems = []
    if info.get("backing-filename") or info.get("full-backing-filename"):
        problems.append("the image names a backing file; refused (untrusted images must be "
                        "standalone)")
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        problems.append("the image names an external data file; refused")
    if fmt == "raw":
        probed = qemu_img_info(path, untrusted=True, pass_fds=pass_fds).get("format")
        if probed != "raw":
            problems.append(f"declared raw but the content is {probed}; refused")
    if problems:
        return int(info["virtual-size"]), [], problems
    entries = qemu_img_map(path, fmt, untrusted=True, pass_fds=pass_fds)
    return int(info["virtual-size"]), data_extents_from_map(entries), []


def _inspection_failed(fmt: str, err: ToolError) -> str:
    """One line: what qemu-img said, or that the resource limits stopped it."""
    if err.returncode < 0 and err.returncode != -1:
        name = signal.Signals(-err.returncode).name
        return (f"inspecting it as {fmt} was stopped by {name} (limits: {tools.UNTRUSTED_CPU_S} s "
                f"of CPU, {tools.UNTRUSTED_ADDRESS_SPACE >> 20} MiB of memory, "
                f"{tools.UNTRUSTED_OUTPUT >> 20} MiB of output); refused")
    if err.returncode == -1 and "timed out" in err.stderr:
        return f"inspecting it as {fmt} took longer than {tools.INSPECT_TIMEOUT_S} s; refused"
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


def _iolog_problem(source: str, name: str, reason: str) -> ScenarioError:
    """A workload's bad trace, named by the job file's section where it came from one."""
    key = f"workloads.{name}.read_iolog"
    if Path(source).is_file():
        source, key = as_written_in(source, key)
    return ScenarioError(source, [(key, reason)])


def _trace_misfit(s: Scenario, name: str, traces: list[Trace]) -> str | None:
    """Why a replayed trace cannot run as workload ``name``: it names several files (fio would
    open each; a VM has one disk), or it reaches past the disk of a VM whose workload it is."""
    if len(traces) > 1:
        return (f"it names {len(traces)} files with I/O; cowbench replays one file onto a "
                f"VM's disk")
    end = max(t.end for t in traces)
    for vm in s.vms:
        if vm.workload == name and end > s.root_size(vm):
            return (f"it reaches byte {end}, past the end of vm {vm.name}'s "
                    f"{s.root_size(vm)}-byte disk")
    return None


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
        if wl.read_iolog and not path.exists() and not path.is_symlink():
            raise _iolog_problem(source, name, f"no such file: {path}")  # else read_iolog says
        if wl.read_iolog:
            try:
                traces = read_iolog(path)  # refuse a bad trace now, before any run exists
            except TraceError as err:
                raise _iolog_problem(source, name, str(err)) from None
            problem = _trace_misfit(scenario, name, traces)
            if problem:
                raise _iolog_problem(source, name, f"{path}: {problem}")
    return parse_scenario(data, source) if changed else scenario
