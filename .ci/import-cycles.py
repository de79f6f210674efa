#!/usr/bin/env python3
"""Import circles between the files of each crate.

A file depends on another when it names an item defined there (`use crate::a::b::C`,
`super::x::f()`, `crate::Thing` in code). A name that a module only re-exports (`pub use`)
is followed to the file that defines it, so a crate root or a `mod.rs` that gathers its
public names does not join every file into one circle. The strongly connected components of
that graph are the circles; a crate passes when none spans more than MAX_FILES files.

Usage: import-cycles.py [--max N] CRATE_DIR...   (prints every circle; exit 1 on a breach)
"""

import re
import sys
from pathlib import Path

MAX_FILES = 3

USE = re.compile(r"\buse\s+([A-Za-z_][^;]*);", re.S)
INLINE = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
PUB_USE = re.compile(r"\bpub(?:\([a-z]+\))?\s+use\s+([^;]*);", re.S)
COMMENT = re.compile(r"//[^\n]*")


def without_tests(text):
    """A file without its trailing `#[cfg(test)] mod tests { ... }`: test code is not what
    the module depends on, and its `super` is the file itself."""
    m = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod [a-z_]+ \{", text, re.M)
    return text[: m.start()] if m else text


def expand(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (aliases dropped)."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [re.sub(r"as[A-Za-z_0-9]+$", "", tree.split(" as ")[0])]
    head, rest = tree.split("{", 1)
    if "}" not in rest:
        # Not a use tree: prose that says "use" inside a string literal ("callers use the
        # APIs ... {"), which the regular expressions cannot tell from code.
        return []
    body = rest[: rest.rindex("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    out = []
    for p in parts:
        for e in expand(p):
            out.append(head + e if e != "self" else head.rstrip(":"))
    return out


class Crate:
    def __init__(self, src: Path):
        self.src = src
        self.files = {}  # module path tuple -> file
        for f in src.rglob("*.rs"):
            rel = f.relative_to(src).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] in ("lib", "main", "mod"):
                parts = parts[:-1]
            self.files[tuple(parts)] = f
        self.text = {m: without_tests(COMMENT.sub("", f.read_text())) for m, f in self.files.items()}
        self.reexports = {m: self._reexports(m) for m in self.files}

    def _reexports(self, module):
        names = {}
        for tree in PUB_USE.findall(self.text[module]):
            for path in expand(tree):
                path = self.local(module, path)
                if path:
                    names[path.rsplit("::", 1)[-1]] = path
        return names

    def resolve(self, module, path, depth=0):
        """The file (module) that defines what `path`, written in `module`, names."""
        segs = path.split("::")
        if segs[0] == "crate":
            full = segs[1:]
        else:
            base = list(module)
            if segs[0] == "self":
                segs = segs[1:]
            while segs and segs[0] == "super":
                base, segs = base[:-1], segs[1:]
            full = base + segs
        # Longest prefix that is a module file.
        for n in range(len(full), -1, -1):
            mod = tuple(full[:n])
            if mod in self.files:
                rest = full[n:]
                if rest and depth < 8 and rest[0] in self.reexports.get(mod, {}):
                    target = self.reexports[mod][rest[0]]
                    if not target.startswith(("crate::", "super::", "self::")):
                        target = "self::" + target
                    return self.resolve(mod, target, depth + 1)
                return mod
        return None

    def local(self, module, path):
        """A use path, made explicit: `child::x` in a module with that child is `self::child::x`."""
        first = path.split("::", 1)[0]
        if first in ("crate", "super", "self"):
            return path
        if module + (first,) in self.files:
            return "self::" + path
        return None

    def graph(self):
        edges = {m: set() for m in self.files}
        for m, text in self.text.items():
            paths = []
            # A `pub use` is the module's public face, not something its own code needs; a
            # name used through it is followed to its definition instead (`resolve`).
            own = PUB_USE.sub("", text)
            for tree in USE.findall(own):
                paths.extend(p for p in map(lambda e: self.local(m, e), expand(tree)) if p)
            paths.extend(INLINE.findall(own))
            for p in paths:
                t = self.resolve(m, p)
                if t is not None and t != m:
                    edges[m].add(t)
        return edges


def components(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main(argv):
    limit = MAX_FILES
    verbose = argv[:1] == ["-v"]
    if verbose:
        argv = argv[1:]
    if argv[:1] == ["--max"]:
        limit, argv = int(argv[1]), argv[2:]
    worst = 0
    for d in argv:
        crate = Crate(Path(d) / "src")
        for comp in components(crate.graph()):
            if len(comp) > 1:
                names = sorted(str(crate.files[m].relative_to(crate.src)) for m in comp)
                print(f"{d}: {len(comp)} files: {' '.join(names)}")
                if verbose:
                    edges = crate.graph()
                    for m in comp:
                        inside = sorted(str(crate.files[t].relative_to(crate.src)) for t in edges[m] if t in comp)
                        print(f"    {crate.files[m].relative_to(crate.src)} -> {' '.join(inside)}")
                worst = max(worst, len(comp))
    if worst > limit:
        print(f"an import circle spans {worst} files (at most {limit} allowed)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
