"""Reading input files a hostile or careless user wrote: bounded, and only from regular files.

Every scenario, sweep, calibration profile and run-directory file cowbench reads goes through
here, so one set of limits holds for all of them:

- a file is opened with ``O_NONBLOCK`` and checked with ``fstat`` before a byte is read: a FIFO,
  a device (``/dev/zero``), a socket or a directory is refused at once, never read until it
  blocks or fills memory; a regular file larger than :data:`MAX_INPUT_BYTES` is refused;
- YAML goes through one safe loader (PyYAML's safe composer and constructor, over libyaml's
  parser when PyYAML has it, else PyYAML's pure-Python one: the same limits either way) that
  refuses nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_ALIASES` aliases, a
  document whose aliases would expand to more than :data:`MAX_NODES` nodes (the "billion
  laughs"), and a key given twice in one mapping (YAML says keys are unique; PyYAML keeps the
  last silently);
- a run directory's own ``scenario.yaml`` (``resolved=True``) is read with
  :data:`MAX_RESOLVED_BYTES` and :data:`MAX_RESOLVED_NODES` instead.

Errors are :class:`~cowbench.errors.ScenarioError` (exit 2) naming the file, the line and the
reason, never a traceback.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

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
#: The same two caps for a run directory's own ``scenario.yaml``, which cowbench wrote: the
#: resolved form of the largest scenario the bounds admit (10^5 VMs, each with its own
#: strategy) holds about 4.5 million nodes in 40 MiB. Parsing that many takes a few GiB.
MAX_RESOLVED_BYTES = 64 << 20
MAX_RESOLVED_NODES = 8_000_000

_KIND = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK:
         "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def _refuse(source: str, reason: str) -> ScenarioError:
    return ScenarioError(source, [("", reason)])


def _a(what: str) -> str:
    return f"{'an' if what[:1] in tuple('aeiou') else 'a'} {what}"


def read_input(path: str | Path, what: str = "input", limit: int = MAX_INPUT_BYTES, *,
               for_user: bool = True, cache: bool = False) -> str:
    """The text of ``path``, a regular file of at most ``limit`` bytes (UTF-8).

    ``for_user``: a file a user named (a scenario, a sweep, a job file and its includes, a
    trace, a profile), held to the image rule before a byte is read
    (:func:`cowbench.imagefile.check_policy`: not under ``/etc``, ``/proc``, ``/sys``,
    ``/dev``, and readable by the invoking user, ``SUDO_UID`` under sudo), so an error quoting
    it never shows that user what they could not read. ``False`` only for what cowbench
    itself wrote into a run directory (``run.json``, the resolved ``scenario.yaml``, fio's
    own logs): opened with ``O_NOFOLLOW`` (cowbench never writes a symlink there; one planted
    by the directory's owner, ``scenario.yaml -> /etc/shadow``, is refused) and held to
    :func:`cowbench.imagefile.invoker_may_read_own` (a hardlink to a file the invoking user
    cannot read is refused). ``cache``: a file of cowbench's own cache (the profile cache,
    root's under sudo), ``for_user=False`` without the invoking user's rule."""
    source = str(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags if for_user else flags | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise _refuse(source, "no such file") from None
    except OSError as err:
        if not for_user and os.path.islink(path):
            raise _refuse(source, "is a symlink, which cowbench never writes in a run or "
                                  "sweep directory; refused") from None
        raise _refuse(source, f"cannot read: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KIND.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise _refuse(source, f"is {kind}, not a regular file; refused")
        if for_user:
            _check_user_may_read(fd, st, source)
        elif not cache:
            refuse_unless_invoker_may_read(st, source)
        if st.st_size > limit:
            raise _refuse(source, f"{st.st_size} bytes: larger than the {limit >> 20} MiB "
                                  f"{_a(what)} file may be")
        data = _read_at_most(fd, limit + 1)
    except OSError as err:
        raise _refuse(source, f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # grew while being read
        raise _refuse(source, f"larger than the {limit >> 20} MiB {_a(what)} file may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _refuse(source, f"not UTF-8 text (byte {err.start})") from None


def _check_user_may_read(fd: int, st: os.stat_result, source: str) -> None:
    from .imagefile import ImagePolicyError, check_policy

    try:
        check_policy(st, os.readlink(f"/proc/self/fd/{fd}"), allow_untrusted=True)
    except ImagePolicyError as err:
        raise _refuse(source, str(err)) from None


def refuse_unless_invoker_may_read(st: os.stat_result, source: str) -> None:
    """Raise :class:`ScenarioError` naming ``source`` unless the file cowbench reads back from a
    run or sweep directory (``st``: its open descriptor's) may be read for the invoking user
    (:func:`cowbench.imagefile.invoker_may_read_own`)."""
    from .imagefile import invoker_may_read_own, invoking_user

    if not invoker_may_read_own(st):
        raise _refuse(source, f"is not readable by the invoking user (uid {invoking_user()[0]})"
                              " and not a file cowbench wrote (owner uid "
                              f"{st.st_uid}, {st.st_nlink} links); refused")


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


class LongInteger(ValueError):
    """An integer literal longer than Python converts from or to text
    (``sys.get_int_max_str_digits()``, 4300 digits): refused where it is written."""

    def __init__(self, node: Node, digits: int) -> None:
        super().__init__(f"an integer of {digits} digits: more than the "
                         f"{_max_digits()} digits Python reads or prints; refused")
        self.node = node


def _max_digits() -> int:
    return sys.get_int_max_str_digits() or 4300


def _construct_int(loader: Any, node: ScalarNode) -> int:
    """PyYAML's int, but an integer over :func:`_max_digits` digits (in any base: a long hex
    literal would fail later, when an error message prints it) is :class:`LongInteger`."""
    text = str(node.value).replace("_", "").lstrip("+-")
    text = text[2:] if text[:2] in ("0x", "0o", "0b") else text  # the digits, in their base
    limit = _max_digits()
    if len(text) > limit:
        raise LongInteger(node, len(text))
    try:
        value: int = SafeConstructor.construct_yaml_int(loader, node)
    except ValueError:  # a sexagesimal part over the limit
        raise LongInteger(node, len(text)) from None
    if abs(value) >= 10 ** limit:  # more than ``limit`` decimal digits
        raise LongInteger(node, int(value.bit_length() * 0.30103) + 1)
    return value


def node_path(root: Node, target: Node) -> str | None:
    """The key path (``a.b[0].c``) of ``target`` in the document ``root``, as written; a
    key names its mapping's path and itself (cut to 20 characters)."""
    seen: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack += reversed([(child, f"{path}[{i}]") for i, child in enumerate(node.value)])
        elif isinstance(node, MappingNode):
            for key, value in reversed(node.value):  # popped in the document's order
                name = str(key.value)[:20] if isinstance(key, ScalarNode) else "?"
                if key is target:
                    return f"{path}.{name}..." if path else f"{name}..."
                stack.append((value, f"{path}.{name}" if path else name))
    return None


class _Limits:
    """Depth and alias limits while composing, duplicate keys refused while constructing:
    mixed into a loader whose composer is PyYAML's ``Composer``."""

    _depth = 0
    _aliases = 0
    yaml_constructors = {**SafeConstructor.yaml_constructors,
                         "tag:yaml.org,2002:int": _construct_int}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        loader: Any = self
        if loader.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases; refused",
                    loader.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} deep; refused",
                    loader.peek_event().start_mark)
            node: Node | None = Composer.compose_node(loader, parent, index)
            return node
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        loader: Any = self
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: PyYAML reports it itself
                continue
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line "
                                f"{first.start_mark.line + 1}); refused", key_node.start_mark)
        mapping: dict[Any, Any] = SafeConstructor.construct_mapping(loader, node, deep=deep)
        return mapping


class _PyLoader(_Limits, yaml.SafeLoader):
    """Pure Python: PyYAML's own reader, scanner and parser."""


def _loader(text: str) -> Any:
    """A bounded loader for ``text``: libyaml parses the events when PyYAML has it (several
    times faster on a large resolved scenario), the composition and construction are
    PyYAML's Python, with the limits above."""
    if not yaml.__with_libyaml__:
        return _PyLoader(text)
    from yaml.cyaml import CParser  # type: ignore[attr-defined]

    class _CLoader(_Limits, CParser, SafeConstructor, Resolver):
        get_single_node = Composer.get_single_node
        compose_document = Composer.compose_document
        compose_scalar_node = Composer.compose_scalar_node
        compose_sequence_node = Composer.compose_sequence_node
        compose_mapping_node = Composer.compose_mapping_node

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.anchors: dict[str, Node] = {}

    return _CLoader(text)


def _expanded_nodes(root: Node, cap: int) -> int:
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
        sizes[key] = n = min(n, cap + 1)
        return n

    return size(root)


def load_yaml(text: str, source: str, max_nodes: int = MAX_NODES) -> Any:
    """One YAML document from ``text``, under the limits above."""
    try:
        loader = _loader(text)
    except yaml.YAMLError as err:  # the reader refuses control characters at once
        raise _refuse(source, f"not valid YAML: {_yaml_reason(err)}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            if _expanded_nodes(node, max_nodes) > max_nodes:
                raise _refuse(source, f"not valid YAML: its aliases expand to more than "
                                      f"{max_nodes} nodes; refused")
        except ValueError as err:
            raise _refuse(source, f"not valid YAML: {err}") from None
        try:
            return loader.construct_document(node)
        except LongInteger as err:
            where = node_path(node, err.node) or ""
            mark = err.node.start_mark
            raise ScenarioError(source, [(where, f"line {mark.line + 1}: {err}")]) from None
    except yaml.YAMLError as err:
        raise _refuse(source, f"not valid YAML: {_yaml_reason(err)}") from None
    finally:
        loader.dispose()


def _yaml_reason(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{where}{problem}"


def load_yaml_file(path: str | Path, what: str = "input", resolved: bool = False) -> Any:
    """Read and parse a YAML file under every limit of this module (``resolved``: the larger
    caps of a run directory's own ``scenario.yaml``, which cowbench wrote)."""
    if resolved:
        return load_yaml(read_input(path, what, MAX_RESOLVED_BYTES, for_user=False), str(path),
                         MAX_RESOLVED_NODES)
    return load_yaml(read_input(path, what), str(path))


def load_json_file(path: str | Path, what: str = "input", *, for_user: bool = True,
                   cache: bool = False) -> Any:
    """Read and parse a JSON file (a regular file, size capped); JSON nests at most as deep as
    Python's recursion allows, and a deeper document is refused. ``for_user``, ``cache``: as
    for :func:`read_input`."""
    text = read_input(path, what, for_user=for_user, cache=cache)
    try:
        return json.loads(text)
    except RecursionError:
        raise _refuse(str(path), "not JSON: nested too deep; refused") from None
    except ValueError as err:
        raise _refuse(str(path), f"not JSON: {err}") from None
