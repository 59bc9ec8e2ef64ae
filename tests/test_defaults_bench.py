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


def test_the_table_leaves_out_tree_lines_that_ran_this_trees_code(tmp_path, monkeypatch):
    import json

    import results_log

    def line(tag, acc, **extra):
        figures = {"set": "tones", "candidate": "base", "seed": 0, "overrides": [], "train_s": 60.0}
        figures["test"] = {"accuracy": acc}
        return {
            "bench": "defaults",
            "commit": "abc",
            "machine": {"load_1min": 1.0},
            "tag": tag,
            "figures": figures,
            **extra,
        }

    rows = [
        line("tones-base-s0", 0.9),
        line("tones-base-s0@d026aaeb73", 0.9, tree_commit="d026aaeb73"),  # before `child`: this tree's code
        line("tones-base-s1@d026aaeb73", 0.7, tree_commit="d026aaeb73", tree_isolated=True),
    ]
    rows[2]["figures"]["seed"] = 1
    (tmp_path / "defaults.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(results_log, "RESULTS", tmp_path)
    table = defaults.table(["tones"])
    assert "| tones | base @ d026aaeb73 | `(the defaults)` | 1 | 0.700 |" in table
    assert "| tones | base | `(the defaults)` | 0 | 0.900 |" in table
