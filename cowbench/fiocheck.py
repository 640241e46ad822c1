"""``cowbench fio-check JOB.fio``: per job section, what cowbench does with each option."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from .jobfile import read_sections
from .jobopts import MODEL, WAITS, Handling, workload_of
from .scenario import Workload

#: How each kind of handling is printed.
LABELS = {"model": "both backends", "fio": "fio only, with offsets: auto or fio",
          "replaced": "replaced by the backend", "refused": "refused"}


def _validated(handled: list[Handling], wl: dict[str, object]) -> list[Handling]:
    """The handling with options the workload's own checks refuse marked refused."""
    try:
        Workload.model_validate({**wl, "offsets": "fio"})
        return handled
    except ValidationError as err:
        bad: dict[str, str] = {}
        for e in err.errors(include_url=False):
            field = str(e["loc"][0]) if e["loc"] else ""
            bad[field] = e["msg"].removeprefix("Value error, ")
        out = []
        for h in handled:
            field = MODEL.get(h.option, ("", None))[0] if h.kind == "model" else ""
            if field and field in bad:
                out.append(Handling(h.option, h.value, "refused", bad.pop(field)))
            else:
                out.append(h)
        out += [Handling(f or "(job)", None, "refused", msg) for f, msg in bad.items()]
        return out


def check(path: Path) -> tuple[list[str], bool]:
    """The lines ``fio-check`` prints, and whether any option is refused."""
    lines = [str(path)]
    refused = False
    sections = read_sections(path)
    for section in sections:
        wl, handled = workload_of(section, offsets_fio=True)
        handled = _validated(handled, wl)
        if len(sections) > 1:  # the file whole: several jobs of one VM, in turn where asked
            handled = [Handling(h.option, h.value, "model", "stonewall=True: starts once the "
                                "jobs before it have finished (the file's jobs run on one VM)")
                       if h.option in WAITS else h for h in handled]
        lines.append(f"[{section.name}]")
        for h in handled:
            opt = h.option if h.value is None else f"{h.option}={h.value}"
            lines.append(f"  {opt:<28} {LABELS[h.kind]}: {h.detail}")
            refused |= h.kind == "refused"
    return lines, refused
