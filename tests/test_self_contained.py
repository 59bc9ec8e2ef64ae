"""The repository stands alone: no test, module or config reads a path outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("tests", "omnireward", "cli", "conf", "benchmarks", "scripts", "Makefile", ".ci")
# The shared folder beside a checkout, or an absolute path of one machine's layout. (Relative
# "../.." paths in tests are media paths that the readers must refuse, so they are not flagged.)
OUTSIDE = re.compile(r"""\.\./shared|["'](/work|/home|/root|/Users|/mnt)/""")
PARENT_HOPS = re.compile(r"\.parents\[(\d+)\]")


def _files():
    for name in SCANNED:
        p = ROOT / name
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        for f in files:
            if (
                f.suffix in (".py", ".yaml", ".sh", ".md", "")
                and "__pycache__" not in f.parts
                and f.stat().st_size < 2e6
            ):
                yield f


def test_no_path_outside_the_repository():
    found = []
    for f in _files():
        depth = len(f.relative_to(ROOT).parts) - 1  # folders between the file and the repository root
        for n, line in enumerate(f.read_text(errors="ignore").splitlines(), 1):
            if line.lstrip().startswith("#") or f == Path(__file__):
                continue
            if OUTSIDE.search(line):
                found.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
            for m in PARENT_HOPS.finditer(line):
                if "__file__" in line and int(m.group(1)) > depth:  # parents[depth] is the root itself
                    found.append(f"{f.relative_to(ROOT)}:{n}: climbs above the repository: {line.strip()}")
    assert not found, "paths outside the repository:\n" + "\n".join(found)


def test_the_check_catches_an_outside_path(tmp_path):
    # Lines a module must not hold, assembled here so that this file holds no such path itself.
    absolute, relative = "/".join(["", "work", "shared", "samples"]), "/".join(["..", "shared", "samples"])
    assert OUTSIDE.search(f'SAMPLES = Path("{absolute}")')
    assert OUTSIDE.search(f"root / '{relative}'")
    assert not OUTSIDE.search('Path(__file__).resolve().parent / "fixtures"')
    assert PARENT_HOPS.search("Path(__file__).resolve().parents[2]").group(1) == "2"
