"""Reading input files a hostile or careless user wrote: bounded, and only from regular files.

Every scenario, sweep, calibration profile and run-directory file cowbench reads goes through
here, so one set of limits holds for all of them:

- a file is opened with ``O_NONBLOCK`` and checked with ``fstat`` before a byte is read: a FIFO,
  a device (``/dev/zero``), a socket or a directory is refused at once, never read until it
  blocks or fills memory; a regular file larger than :data:`MAX_INPUT_BYTES` is refused;
- YAML goes through one safe loader (PyYAML's ``SafeLoader``, pure Python) that refuses
  nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_ALIASES` aliases, a document
  whose aliases would expand to more than :data:`MAX_NODES` nodes (the "billion laughs"), and
  a key given twice in one mapping (YAML says keys are unique; PyYAML keeps the last silently).

Errors are :class:`~cowbench.errors.ScenarioError` (exit 2) naming the file, the line and the
reason, never a traceback.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import ScenarioError

#: Largest input file read (scenario files are a few KiB; a resolved scenario with 10^5 VMs
#: and data maps stays well under this).
MAX_INPUT_BYTES = 16 << 20
#: Deepest nesting of YAML collections (a scenario nests six deep).
MAX_DEPTH = 64
#: Most aliases (``*name``) in one document.
MAX_ALIASES = 1000
#: Most nodes a document may hold once every alias is expanded.
MAX_NODES = 2_000_000

_KIND = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK:
         "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def _refuse(source: str, reason: str) -> ScenarioError:
    return ScenarioError(source, [("", reason)])


def read_input(path: str | Path, what: str = "input", limit: int = MAX_INPUT_BYTES) -> str:
    """The text of ``path``, a regular file of at most ``limit`` bytes (UTF-8)."""
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise _refuse(source, "no such file") from None
    except OSError as err:
        raise _refuse(source, f"cannot read: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KIND.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise _refuse(source, f"is {kind}, not a regular file; refused")
        if st.st_size > limit:
            raise _refuse(source, f"{st.st_size} bytes: larger than the {limit >> 20} MiB "
                                  f"an {what} file may be")
        data = _read_at_most(fd, limit + 1)
    except OSError as err:
        raise _refuse(source, f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # grew while being read
        raise _refuse(source, f"larger than the {limit >> 20} MiB an {what} file may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _refuse(source, f"not UTF-8 text (byte {err.start})") from None


def _read_at_most(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = os.read(fd, min(1 << 20, n - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with depth and alias limits, and duplicate keys refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases; refused",
                    self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} deep; refused",
                    self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: PyYAML reports it itself
                continue
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line "
                                f"{first.start_mark.line + 1}); refused", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _expanded_nodes(root: Node) -> int:
    """Nodes of the document with every alias expanded, counted without expanding them."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in busy:
            raise ValueError("an alias refers to the collection that holds it; refused")
        busy.add(key)
        n = 1
        if isinstance(node, SequenceNode):
            n += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            n += sum(size(k) + size(v) for k, v in node.value)
        busy.discard(key)
        sizes[key] = n = min(n, MAX_NODES + 1)
        return n

    return size(root)


def load_yaml(text: str, source: str) -> Any:
    """One YAML document from ``text``, under the limits above."""
    try:
        loader = _BoundedLoader(text)
    except yaml.YAMLError as err:  # the reader refuses control characters at once
        raise _refuse(source, f"not valid YAML: {_yaml_reason(err)}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            if _expanded_nodes(node) > MAX_NODES:
                raise _refuse(source, f"not valid YAML: its aliases expand to more than "
                                      f"{MAX_NODES} nodes; refused")
        except ValueError as err:
            raise _refuse(source, f"not valid YAML: {err}") from None
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise _refuse(source, f"not valid YAML: {_yaml_reason(err)}") from None
    finally:
        loader.dispose()


def _yaml_reason(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{where}{problem}"


def load_yaml_file(path: str | Path, what: str = "input") -> Any:
    """Read and parse a YAML file under every limit of this module."""
    return load_yaml(read_input(path, what), str(path))


def load_json_file(path: str | Path, what: str = "input") -> Any:
    """Read and parse a JSON file (a regular file, size capped); JSON nests at most as deep as
    Python's recursion allows, and a deeper document is refused."""
    text = read_input(path, what)
    try:
        return json.loads(text)
    except RecursionError:
        raise _refuse(str(path), "not JSON: nested too deep; refused") from None
    except ValueError as err:
        raise _refuse(str(path), f"not JSON: {err}") from None
