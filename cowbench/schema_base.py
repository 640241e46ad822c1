"""What every scenario section is made of: sizes in bytes and times in seconds, parsed from
human units (``64KiB``, ``10m``), names, and frozen models that refuse unknown keys (STYLE.md
point 2)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .units import parse_duration, parse_size

Bytes = Annotated[int, BeforeValidator(parse_size)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class Frozen(BaseModel):
    """A scenario section: immutable once loaded; an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
