"""ext4's extent tree, grown the way ext4 grows it, to count its blocks in ``st_blocks``.

A file written in order (a qcow2 image without subclusters appends whole clusters) fills each
4 KiB leaf with 340 extents before it starts the next, which ``sim.storage.fs.extent_tree_bytes``
counts. A file written out of order (extended L2: subclusters land in clusters allocated long
before) splits full leaves where the new extent goes (``ext4_ext_split``, fs/ext4/extents.c),
leaving them part-full, so the same extents need more blocks: measured here, 3 729 extents
took 21 tree blocks where a packed tree needs 12.

The model follows ``ext4_ext_insert_extent``: a new block range that continues a neighbour in
the same leaf extends it (and joins the next extent when it closes the hole between them);
otherwise it needs an entry: in its leaf if there is room, at the head of the next leaf when
it goes after a full leaf's last extent and the next leaf has room, else the leaf splits at
the insertion point (entries to its right move to a new leaf, and index nodes above split
the same way up to the first with a free slot); a full root (4 entries in the inode) moves
into a new block and the tree grows a level (``ext4_ext_grow_indepth``). Physical placement
is assumed to follow the logical one (ext4's allocation goal is the left neighbour's physical
block plus the logical distance), so logically adjacent extents are mergeable.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

ROOT_SLOTS = 4
NODE_SLOTS = 340  # (4096 - 12) / 12


@dataclass
class _Node:
    leaf: bool
    keys: list[int] = field(default_factory=list)  # extent starts, or first key of children
    ends: list[int] = field(default_factory=list)  # leaf only: extent ends (exclusive)
    kids: list[_Node] = field(default_factory=list)  # index only


class ExtentTree:
    """An ext4 extent tree over a file's logical blocks; ``blocks`` is its on-disk size."""

    def __init__(self) -> None:
        self.root = _Node(leaf=True)
        self.blocks = 0

    def _cap(self, node: _Node) -> int:
        return ROOT_SLOTS if node is self.root else NODE_SLOTS

    def _path(self, lblk: int) -> list[tuple[_Node, int]]:
        """Root-to-leaf path to where ``lblk`` belongs: (node, index of the entry taken)."""
        path, node = [], self.root
        while not node.leaf:
            i = max(bisect_right(node.keys, lblk) - 1, 0)
            path.append((node, i))
            node = node.kids[i]
        path.append((node, bisect_right(node.keys, lblk) - 1))
        return path

    def add(self, start: int, end: int) -> None:
        """Blocks ``[start, end)`` were allocated (none of them was before)."""
        path = self._path(start)
        leaf, i = path[-1]
        if i >= 0 and leaf.ends[i] == start:  # continues the left neighbour
            leaf.ends[i] = end
            if i + 1 < len(leaf.keys) and leaf.keys[i + 1] == end:
                leaf.ends[i] = leaf.ends.pop(i + 1)
                leaf.keys.pop(i + 1)
            self._merge_up()
            return
        if i + 1 < len(leaf.keys) and leaf.keys[i + 1] == end:  # runs into the right one
            leaf.keys[i + 1] = start
            self._fix_keys(path)
            return
        self._insert(path, start, end)

    def _insert(self, path: list[tuple[_Node, int]], start: int, end: int) -> None:
        leaf, i = path[-1]
        if len(leaf.keys) >= self._cap(leaf) and i == len(leaf.keys) - 1:
            nxt = self._next_leaf(path)
            if nxt is not None and len(nxt.keys) < NODE_SLOTS:
                nxt.keys.insert(0, start)
                nxt.ends.insert(0, end)
                self._fix_all()
                return
        while len(leaf.keys) >= self._cap(leaf):
            self._make_room(path, start)
            path = self._path(start)
            leaf, i = path[-1]
        leaf.keys.insert(i + 1, start)
        leaf.ends.insert(i + 1, end)
        self._fix_keys(path)
        self._merge_up()

    def _make_room(self, path: list[tuple[_Node, int]], start: int) -> None:
        """``ext4_ext_create_new_leaf``: split below the deepest node with a free slot, or grow
        the tree by a level when even the root is full."""
        level = len(path) - 2
        while level >= 0 and len(path[level][0].keys) >= self._cap(path[level][0]):
            level -= 1
        if level < 0:
            self._grow_in_depth()
            return
        self._split(path, level, start)

    def _split(self, path: list[tuple[_Node, int]], at: int, start: int) -> None:
        """``ext4_ext_split``: every node below ``path[at]`` gives the entries right of the
        insertion point to a new node; the new nodes hang under ``path[at]``."""
        new_child: _Node | None = None
        border = start
        for level in range(len(path) - 1, at, -1):
            node, i = path[level]
            right = _Node(leaf=node.leaf)
            right.keys, node.keys = node.keys[i + 1:], node.keys[:i + 1]
            if node.leaf:
                right.ends, node.ends = node.ends[i + 1:], node.ends[:i + 1]
                border = right.keys[0] if right.keys else start
            else:
                right.kids, node.kids = node.kids[i + 1:], node.kids[:i + 1]
                assert new_child is not None
                right.keys.insert(0, border)
                right.kids.insert(0, new_child)
            new_child = right
            self.blocks += 1
        parent, j = path[at]
        assert new_child is not None
        parent.keys.insert(j + 1, border)
        parent.kids.insert(j + 1, new_child)

    def _grow_in_depth(self) -> None:
        root = self.root
        child = _Node(leaf=root.leaf, keys=root.keys, ends=root.ends, kids=root.kids)
        self.root = _Node(leaf=False, keys=[child.keys[0] if child.keys else 0], kids=[child])
        self.blocks += 1

    def _merge_up(self) -> None:
        """``ext4_ext_try_to_merge_up``: one leaf small enough goes back into the inode."""
        r = self.root
        if not r.leaf and len(r.kids) == 1 and r.kids[0].leaf and \
                len(r.kids[0].keys) <= ROOT_SLOTS:
            kid = r.kids[0]
            self.root = _Node(leaf=True, keys=kid.keys, ends=kid.ends)
            self.blocks -= 1

    def _next_leaf(self, path: list[tuple[_Node, int]]) -> _Node | None:
        for level in range(len(path) - 2, -1, -1):
            node, i = path[level]
            if i + 1 < len(node.kids):
                nxt = node.kids[i + 1]
                while not nxt.leaf:
                    nxt = nxt.kids[0]
                return nxt
        return None

    def _fix_keys(self, path: list[tuple[_Node, int]]) -> None:
        for level in range(len(path) - 2, -1, -1):
            node, i = path[level]
            child = node.kids[i]
            if child.keys and (i > 0 or node is not self.root):
                node.keys[i] = min(node.keys[i], child.keys[0])

    def _fix_all(self) -> None:
        def walk(node: _Node) -> int:
            if node.leaf:
                return node.keys[0] if node.keys else 0
            node.keys = [walk(k) for k in node.kids]
            return node.keys[0]
        walk(self.root)

    def punch(self, start: int, end: int) -> None:
        """Blocks ``[start, end)`` are freed (fallocate PUNCH_HOLE): extents shrink, vanish, or
        split in two (one more entry, inserted as :meth:`add` would); emptied leaves are
        freed, but the tree keeps its depth (measured: a punch from 5 extents to 3 left the
        file's tree block in place)."""
        self._punch(start, end)
        self._prune(self.root)

    def _prune(self, node: _Node) -> None:
        if node.leaf:
            return
        for k in node.kids:
            self._prune(k)
        keep = [i for i, k in enumerate(node.kids) if k.keys]
        self.blocks -= len(node.kids) - len(keep)
        node.kids = [node.kids[i] for i in keep]
        node.keys = [node.keys[i] for i in keep]

    def _punch(self, start: int, end: int) -> None:
        while True:
            path = self._path(end - 1)
            leaf, i = path[-1]
            if i < 0 or leaf.ends[i] <= start:
                return
            s0, e0 = leaf.keys[i], leaf.ends[i]
            if s0 < start and e0 > end:  # a hole in the middle: split
                leaf.ends[i] = start
                self._insert(self._path(end), end, e0)
                return
            if s0 < start:
                leaf.ends[i] = start
                return
            if e0 > end:
                leaf.keys[i] = end
            else:
                leaf.keys.pop(i)
                leaf.ends.pop(i)
            if s0 <= start:
                return

    @property
    def extents(self) -> int:
        def count(node: _Node) -> int:
            return len(node.keys) if node.leaf else sum(count(k) for k in node.kids)
        return count(self.root)
