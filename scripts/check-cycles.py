#!/usr/bin/env python3
"""Fails on an import cycle between the switch crate's top-level modules.

A top-level module is a unit: switch/src/X.rs and everything under
switch/src/X/ are one node, X. Module X depends on module Y when a file of X
names Y by path: `use crate::Y...` (also inside `use crate::{..}` groups),
`crate::Y::...` anywhere in the code, or a `super::` path that climbs out of
X into Y. Comments and string literals do not count. A path that starts with
another name (a child module, an extern crate) never leaves X.

On a cycle it prints each cycle group (strongly connected modules), one
cycle through it with the file:line that makes every edge, and the group's
other edges, and exits 1. Code under `#[cfg(test)]` counts too (it is code
of the crate); its edges are marked "test", and --ignore-tests leaves them
out.

    scripts/check-cycles.py                  # switch/src; exit 0 or 1
    scripts/check-cycles.py --edges          # also every edge, cycle or not
    scripts/check-cycles.py --root DIR       # another crate's src/
    scripts/check-cycles.py --self-test      # checks the checker on a fake tree

A short script instead of `cargo modules dependencies --acyclic`: that
builds rust-analyzer, which takes very long on the 2-core build machines,
and what matters here (use paths between top-level modules) needs no type
information.
"""

import os
import re
import sys
import tempfile

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def tokens(src):
    """(token, line) pairs of Rust source, without comments and literals.

    Enough of Rust's lexer for paths and braces: identifiers, `::` and
    single punctuation characters. String, char and number literals become
    one "lit" token, so that what they hold is never read as code.
    """
    out = []
    i, n, line = 0, len(src), 1
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += src[i] == "\n"
                    i += 1
        elif c == '"':
            i, line = skip_string(src, i, line)
            out.append(("lit", line))
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if i + 1 < n and src[i + 1] == "\\":
                j = i + 3  # past the escaped character, which may be '
                while j < n and src[j] != "'":
                    j += 1
                i = j + 1
                out.append(("lit", line))
            elif i + 2 < n and src[i + 2] == "'":
                i += 3
                out.append(("lit", line))
            else:
                i += 1  # a lifetime: its name follows as an identifier
        elif c.isdigit():
            m = re.compile(r"[0-9][0-9A-Za-z_]*").match(src, i)
            i = m.end()
            out.append(("lit", line))
        elif c.isalpha() or c == "_":
            m = IDENT.match(src, i)
            if not m:  # a letter outside ASCII: not in any path we read
                i += 1
                continue
            word, j = m.group(), m.end()
            raw = re.compile(r"#*\"").match(src, j)
            if word in ("r", "br", "b", "c", "cr") and raw:
                i, line = skip_string(src, i, line)
                out.append(("lit", line))
            elif word == "b" and src.startswith("'", j):
                k = j + 1
                if src.startswith("\\", k):
                    k += 1
                i = src.find("'", k + 1) + 1
                out.append(("lit", line))
            elif word == "r" and src.startswith("#", j) and IDENT.match(src, j + 1):
                m = IDENT.match(src, j + 1)  # a raw identifier, r#type
                out.append((m.group(), line))
                i = m.end()
            else:
                out.append((word, line))
                i = j
        elif src.startswith("::", i):
            out.append(("::", line))
            i += 2
        else:
            out.append((c, line))
            i += 1
    return out


def skip_string(src, i, line):
    """Past the string literal at i (plain, byte, raw with any #s)."""
    while src[i] != '"' and src[i] != "#":
        i += 1  # the prefix: r, b, br, c, cr
    hashes = 0
    while src[i] == "#":
        hashes, i = hashes + 1, i + 1
    raw = hashes > 0 or src[i - 1 - hashes] in "r"
    i += 1
    end = '"' + "#" * hashes
    while i < len(src):
        if src[i] == "\n":
            line += 1
        if not raw and src[i] == "\\":
            line += src[i + 1 : i + 2] == "\n"
            i += 2
            continue
        if src.startswith(end, i):
            return i + len(end), line
        i += 1
    return i, line


def use_paths(toks):
    """The paths of a use tree (the tokens between `use` and `;`), each a
    list of segments: `crate::{a, b::{c, d}}` gives crate::a, crate::b::c,
    crate::b::d."""
    paths = []

    def tree(k, prefix):
        path = list(prefix)
        while k < len(toks):
            t = toks[k]
            if t == "{":
                k += 1
                while k < len(toks) and toks[k] != "}":
                    k = tree(k, path)
                    if k < len(toks) and toks[k] == ",":
                        k += 1
                return k + 1
            if t in (",", "}"):
                break
            if t == "as":
                k += 2  # the alias
                continue
            if t != "::":
                path.append(t)
            k += 1
        paths.append(path)
        return k

    k = 0
    while k < len(toks):
        k = tree(k, [])
        if k < len(toks) and toks[k] == ",":
            k += 1
    return paths


def resolve(path, module):
    """The absolute module path that `path` names from `module`, or None
    when it does not start at the crate (an extern crate, a child)."""
    if not path:
        return None
    if path[0] in ("crate", "$crate"):
        return path[1:]
    if path[0] == "self":
        return list(module) + path[1:]
    if path[0] == "super":
        base, k = list(module), 0
        while k < len(path) and path[k] == "super":
            if not base:
                return None  # above the crate root: not valid Rust
            base.pop()
            k += 1
        return base + path[k:]
    return None


def scan_file(text, module):
    """References and `mod x;` declarations of one file whose module path is
    `module`: ([(absolute path, line, test)], [(child name, test)])."""
    toks = tokens(text)
    words = [t for t, _ in toks]
    refs, decls = [], []
    # Scopes opened by `{`: (brace depth, inline module name or None, test).
    scopes = [(0, None, False)]
    depth = 0
    pending_test = False  # a #[cfg(test)] waits for its item
    i = 0

    def here():
        return [m for _, m, _ in scopes if m is not None]

    def in_test():
        return pending_test or scopes[-1][2]

    while i < len(toks):
        t, line = toks[i]
        if t == "#" and words[i + 1 : i + 7] == ["[", "cfg", "(", "test", ")", "]"]:
            pending_test = True
            i += 7
            continue
        if t == "mod" and i + 2 < len(toks) and IDENT.fullmatch(words[i + 1]):
            if words[i + 2] == ";":
                decls.append((words[i + 1], in_test()))
                pending_test = False
                i += 3
                continue
            if words[i + 2] == "{":
                depth += 1
                scopes.append((depth, words[i + 1], in_test()))
                pending_test = False
                i += 3
                continue
        if t == "use":
            j = i + 1
            while j < len(toks) and words[j] != ";":
                j += 1
            for p in use_paths(words[i + 1 : j]):
                if len(p) > 1 and p[-1] == "self":
                    p = p[:-1]  # `use x::{self}` names x itself
                absolute = resolve(p, module + here())
                if absolute:
                    refs.append((absolute, line, in_test()))
            pending_test = False
            i = j + 1
            continue
        starts_path = t in ("crate", "super") and (i == 0 or words[i - 1] != "::")
        if starts_path and i + 1 < len(toks) and words[i + 1] == "::":
            if t == "crate" and i > 0 and words[i - 1] == "in":
                i += 1  # pub(in crate::x): a visibility, not a use
                continue
            if t == "crate" and i > 0 and words[i - 1] == "$":
                t = "$crate"
            p, j = [t], i + 1
            while j + 1 < len(toks) and words[j] == "::" and IDENT.fullmatch(words[j + 1]):
                p.append(words[j + 1])
                j += 2
            absolute = resolve(p, module + here())
            if absolute:
                refs.append((absolute, line, in_test()))
            i = j
            continue
        if t == "{":
            depth += 1
            scopes.append((depth, None, in_test()))
            pending_test = False
        elif t == "}":
            if len(scopes) > 1 and scopes[-1][0] == depth:
                scopes.pop()
            depth -= 1
        elif t == ";":
            pending_test = False
        i += 1
    return refs, decls


def module_of(rel):
    """The module path of a file, from its path below src/."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts.pop()
    return parts


def analyze(root, ignore_tests=False):
    """The edges between the top-level modules of the crate at `root` (its
    src/): {(from, to): [(file, line, test)]}, and the set of modules."""
    files = {}
    for d, _, names in os.walk(root):
        for f in names:
            if f.endswith(".rs"):
                path = os.path.join(d, f)
                files[os.path.relpath(path, root)] = path
    units = set()
    for rel in files:
        top = rel.split(os.sep)[0]
        if rel != "lib.rs" and rel != "main.rs":
            units.add(top[:-3] if top.endswith(".rs") else top)
    scanned = {}
    test_modules = set()
    for rel, path in sorted(files.items()):
        with open(path, encoding="utf-8") as fh:
            module = [] if rel in ("lib.rs", "main.rs") else module_of(rel)
            scanned[rel] = (module,) + scan_file(fh.read(), module)
        for child, test in scanned[rel][2]:
            if test:
                test_modules.add(tuple(module + [child]))
    edges = {}
    for rel, (module, refs, _) in sorted(scanned.items()):
        if not module:
            continue  # the crate root belongs to no top-level module
        file_test = any(tuple(module[:k]) in test_modules for k in range(1, len(module) + 1))
        for absolute, line, test in refs:
            test = test or file_test
            to = absolute[0] if absolute else None
            if to is None or to == module[0] or to not in units:
                continue
            if test and ignore_tests:
                continue
            places = edges.setdefault((module[0], to), [])
            if (files[rel], line, test) not in places:  # one line, one place
                places.append((files[rel], line, test))
    return edges, units


def cycle_groups(edges, units):
    """Strongly connected groups of more than one module (Tarjan)."""
    graph = {u: sorted({b for (a, b) in edges if a == u}) for u in units}
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(units):
        if v not in index:
            visit(v)
    return sorted(groups)


def shortest_cycle(start, group, edges):
    """A shortest cycle from `start` back to it inside `group` (BFS)."""
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for (a, b) in sorted(edges):
                if a != v or b not in group:
                    continue
                if b == start:
                    path = [v]  # back from v to start
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if b not in prev:
                    prev[b] = v
                    nxt.append(b)
        frontier = nxt
    return [start]


def where(places, shown=lambda p: p):
    """`file:line`, the first place that makes an edge, and how many more."""
    f, line, test = places[0]
    more = len(places) - 1
    s = f"{shown(f)}:{line}"
    if all(t for _, _, t in places):
        s += " (test)"
    if more:
        s += f" (and {more} more)"
    return s


def report(edges, units, show_edges, out, shown):
    groups = cycle_groups(edges, units)
    if show_edges:
        for (a, b), places in sorted(edges.items()):
            print(f"edge {a} -> {b}: {where(places, shown)}", file=out)
    if not groups:
        print(
            f"check-cycles: no import cycle between the {len(units)} top-level modules "
            f"({len(edges)} edges)",
            file=out,
        )
        return 0
    print(f"check-cycles: {len(groups)} import cycle group(s) between top-level modules", file=out)
    for g in groups:
        cyc = shortest_cycle(g[0], set(g), edges)
        print(f"\ncycle: {' -> '.join(cyc)}", file=out)
        on_cycle = set(zip(cyc, cyc[1:]))
        for a, b in zip(cyc, cyc[1:]):
            print(f"  {a} -> {b}: {where(edges[(a, b)], shown)}", file=out)
        rest = [(a, b) for (a, b) in sorted(edges) if a in g and b in g and (a, b) not in on_cycle]
        if rest:
            print(f"  the other edges among {{{', '.join(g)}}}:", file=out)
            for a, b in rest:
                print(f"  {a} -> {b}: {where(edges[(a, b)], shown)}", file=out)
    return 1


FAKE = {
    "lib.rs": "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub mod e;\n",
    # a -> b (line 2), a -> d and a -> e through one group (line 3).
    "a.rs": "//! a\nuse crate::b::X;\nuse crate::{d, e::{F, G as H}};\n"
    "pub fn g() {}\n",
    "b/mod.rs": "mod inner;\npub struct X;\n",
    # b -> a through super::super (line 3): the cycle a -> b -> a.
    "b/inner.rs": "// crate::c::nothing: a comment\n"
    'const S: &str = "crate::c::nothing, a string";\n'
    "pub fn f() { super::super::a::g() }\n",
    # c -> a only in test code; `use super::*` of an inline module stays in c.
    "c.rs": "pub fn c() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n"
    "    use crate::a::g;\n}\n",
    "d.rs": "pub struct D;\n",
    # A char literal, a lifetime and a raw string hold no path.
    "e/mod.rs": "pub struct F;\npub struct G;\n"
    "fn f<'a>(x: &'a str) -> char { let _ = r#\"crate::a::g\"#; '{' }\n",
}


def self_test():
    """The checker on a fake tree with one cycle, then without it."""
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in FAKE.items():
            path = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        shown = lambda f: os.path.relpath(f, tmp)
        edges, units = analyze(tmp)
        got = {k: [(shown(f), line, t) for f, line, t in v] for k, v in edges.items()}
        want = {
            ("a", "b"): [("a.rs", 2, False)],
            ("a", "d"): [("a.rs", 3, False)],
            ("a", "e"): [("a.rs", 3, False)],
            ("b", "a"): [(os.path.join("b", "inner.rs"), 3, False)],
            ("c", "a"): [("c.rs", 5, True)],
        }
        assert got == want, f"edges: {got}"
        assert units == {"a", "b", "c", "d", "e"}, units
        assert cycle_groups(edges, units) == [["a", "b"]]

        class Out:
            text = ""

            def write(self, s):
                self.text += s

        out = Out()
        assert report(edges, units, False, out, shown) == 1
        assert "cycle: a -> b -> a" in out.text, out.text
        assert "a -> b: a.rs:2" in out.text, out.text
        assert f"b -> a: {os.path.join('b', 'inner.rs')}:3" in out.text, out.text
        edges, _ = analyze(tmp, ignore_tests=True)
        assert ("c", "a") not in edges
        # Without b -> a there is no cycle.
        with open(os.path.join(tmp, "b", "inner.rs"), "w", encoding="utf-8") as fh:
            fh.write("pub fn f() {}\n")
        edges, units = analyze(tmp)
        out = Out()
        assert report(edges, units, False, out, shown) == 0, out.text
        assert "no import cycle" in out.text
    print("check-cycles: self-test passed")
    return 0


def main(argv):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = os.path.join(repo, "switch", "src")
    show_edges = ignore_tests = False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--self-test":
            return self_test()
        elif a == "--edges":
            show_edges = True
        elif a == "--ignore-tests":
            ignore_tests = True
        elif a == "--root" and args:
            root = args.pop(0)
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    if not os.path.isdir(root):
        print(f"check-cycles: {root}: no such folder", file=sys.stderr)
        return 2
    edges, units = analyze(root, ignore_tests)
    shown = lambda f: os.path.relpath(f, repo) if f.startswith(repo + os.sep) else f
    return report(edges, units, show_edges, sys.stdout, shown)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
