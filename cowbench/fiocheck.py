"""``cowbench fio-check JOB.fio``: per job section, what cowbench does with each option, and
whether ``cowbench run`` accepts the file as a VM's workload (``{job_file: JOB.fio}``): the same
expansion and the same checks, so the two agree."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from .errors import ScenarioError, UsageError
from .iolog import TraceError, read_iolog
from .jobfile import Section, read_sections
from .jobopts import (
    MODEL,
    WAITS,
    Handling,
    as_written,
    expand,
    model_value,
    waits_on,
    workload_of,
)
from .scenario import Workload, validation_problems
from .space import log_cap_problem_of_a_job_file
from .workload_schema import increment_problem

#: How each kind of handling is printed.
LABELS = {"model": "both backends", "fio": "fio only, with offsets: auto or fio",
          "log": "the real run's fio",
          "replaced": "replaced by the backend", "refused": "refused"}
#: The key path of the file's workload in fio-check's messages (a scenario's is
#: ``workloads.NAME`` or ``vms[i].workload``).
WHERE = "workload"


def run_problems(path: Path) -> list[tuple[str, str]]:
    """What ``cowbench run`` refuses in the job file as a VM's whole workload, by key path (the
    job file's section and option where the problem comes from one)."""
    origins: dict[str, str] = {}
    try:
        wl = Workload.model_validate(expand({"job_file": path.name}, path.parent, WHERE,
                                            origins))
        if wl.read_iolog:  # as the run reads it before it starts (cowbench.resolve)
            read_iolog(Path(wl.read_iolog))
        for i, part in enumerate(wl.parts):  # no disk: uneven on some (validate: the VM's)
            if problem := increment_problem(part, None):
                key = f"jobs[{i}].fio_extra.offset_increment" if wl.jobs else \
                    "fio_extra.offset_increment"
                return [(as_written(origins, f"{WHERE}.{key}"), problem)]
        if logs := log_cap_problem_of_a_job_file(wl, WHERE):  # validate's and run's check
            return [(as_written(origins, logs[0]), logs[1])]
    except ScenarioError as err:
        return err.problems
    except ValidationError as err:
        return [(as_written(origins, f"{WHERE}.{k}" if k else WHERE), r)
                for k, r in validation_problems(err)]
    except (TraceError, UsageError, OSError) as err:
        return [(as_written(origins, f"{WHERE}.read_iolog"), str(err))]
    return []


def _field_checked(h: Handling, section: Section) -> Handling:
    """``h`` refused, with the workload's own reason, when its value fails the workload's
    check of that field alone (``rw=randwrte``, ``bs=4000``): an option is shown as carried
    only when its value is one the run takes."""
    if h.kind != "model" or h.option not in MODEL:
        return h
    field, value = model_value(section, h)
    try:
        Workload.model_validate({field: value})
    except ValidationError as err:
        for e in err.errors(include_url=False):
            if tuple(e["loc"][:1]) == (field,):
                why = str(e["msg"]).removeprefix("Value error, ")
                return Handling(h.option, h.value, "refused", why)
    return h


def _stonewall(h: Handling, several: bool) -> Handling:
    """A job of several with fio's stonewall on waits for the ones before it (jobopts)."""
    if not several or h.option not in WAITS or h.kind != "replaced":
        return h
    on = waits_on(h.value)
    if on is None:
        return h
    detail = ("stonewall=True: starts once the jobs before it have finished (the file's jobs "
              "run on one VM)" if on else "stonewall=False: starts with the jobs before it")
    return Handling(h.option, h.value, "model", detail)


def _logs_bounded(h: Handling, at: str, run: list[tuple[str, str]]) -> Handling:
    """A log option (``at.OPTION``) refused, with the run's reason, when the run refuses the
    file for the length of the logs that option makes (:mod:`cowbench.space`'s bound)."""
    if h.kind != "log":
        return h
    why = next((r for k, r in run if k == f"{at}.{h.option}"), None)
    return h if why is None else Handling(h.option, h.value, "refused", why)


def check(path: Path) -> tuple[list[str], bool]:
    """The lines ``fio-check`` prints, and whether the file is refused."""
    lines = [str(path)]
    sections = read_sections(path)
    shown: set[tuple[str, str]] = set()
    run = run_problems(path)
    for section in sections:
        _, handled = workload_of(section, offsets_fio=True)
        lines.append(f"[{section.key}]")
        for h in handled:
            h = _logs_bounded(_stonewall(_field_checked(h, section), len(sections) > 1),
                              f"{WHERE}.job_file[{section.key}]", run)
            opt = h.option if h.value is None else f"{h.option}={h.value}"
            lines.append(f"  {opt:<28} {LABELS[h.kind]}: {h.detail}")
            if h.kind == "refused":
                shown.add((f"{WHERE}.job_file[{section.key}].{h.option}", h.detail))
    problems = [p for p in run if p not in shown]
    if problems:
        lines.append("refused by cowbench run, as a VM's workload:")
        lines += [f"  {where}: {reason}" if where else f"  {reason}"
                  for where, reason in problems]
    return lines, bool(problems or shown)
