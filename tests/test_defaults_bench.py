"""benchmarks/defaults.py's `--tree`: the train and score processes run the other checkout's code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import defaults  # noqa: E402


def test_tree_runs_that_checkouts_package_not_this_ones(tmp_path, monkeypatch):
    """`python -c` puts its working folder ahead of PYTHONPATH: a child started from this repository
    imported this repository's package whatever PYTHONPATH named, so bisecting compared the tree
    with itself. The child now starts inside the tree."""
    tree = tmp_path / "other"
    (tree / "omnireward" / "cli").mkdir(parents=True)
    (tree / "omnireward" / "__init__.py").write_text("")
    (tree / "omnireward" / "cli" / "__init__.py").write_text("")
    (tree / "omnireward" / "cli" / "app.py").write_text("def main():\n    print(__file__)\n")
    monkeypatch.chdir(ROOT)  # where the benchmark is run from
    env, cwd = defaults.child(str(tree))
    out = subprocess.run(defaults.EXE, env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).resolve() == (tree / "omnireward" / "cli" / "app.py").resolve()
    env, cwd = defaults.child(None)  # no tree: this checkout's package
    out = subprocess.run(
        [*defaults.EXE[:2], "import omnireward; print(omnireward.__file__)"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(out.strip()).resolve() == (ROOT / "omnireward" / "__init__.py").resolve()
