"""`omnireward probe`: how a model folder's reward moves under perturbations that should not help.

    result = run_probes("runs/x", "pairs.jsonl", "probe_out/")   # writes probe.json, index.html, plots/

Reward folders (BT, Gaussian, multi-head): every response a probe applies to is changed (all of
a record's responses at once: each is rewarded on its own) and its reward compared with the
unchanged one, in units of the folder's reward standard deviation (reward_stats.json, else the
spread of the unchanged rewards). Record-level probes (criteria) compare the margin of the
gold-preferred response over the other. Multi-head folders add the same figures per dimension.

Judge folders: pairs only. A response probe changes the side the judge did not prefer (its lower
P) and reports how P of that side moves (probability units) and how often the verdict flips to
it; criteria probes report P of the gold side; `order_swapped` shows the pair the other way round
and reports how often the verdict, in content terms, changes.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

from omnireward.data.prep import read_pairs
from omnireward.data.records import Item, Pair, Record, responses_of
from omnireward.errors import ConfigError, DataFormatError, ModelError
from omnireward.probe.probes import Probe, ProbeContext, ProbeSet, RecordProbe

PROBE_JSON = "probe.json"
DEFAULT_PROBES = "default"
# A change the model is indifferent to raises the reward in about half the cases by little: the
# defaults flag only a clear majority and a quarter of a standard deviation on average.
FLAG_SHARE = 0.75
MIN_EFFECT = 0.25


# ---- building the probes -------------------------------------------------------------------------
def probe_files() -> dict[str, Path]:
    """The packaged probe sets (conf/probe/*.yaml) by name."""
    from importlib import resources

    root = resources.files("omnireward.conf").joinpath("probe")
    return {p.name[:-5]: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def load_probes(sources: list[str | Path] = (), only: list[str] = ()) -> list[Probe]:
    """Probes from YAML files (a packaged set's name or a path): each holds `probes: [...]` (or one
    component). `only` keeps the probes with those names, in that order."""
    import sys

    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    # deferred: hydra loads only when probes are read from YAML
    from omnireward.config import build

    packaged = probe_files()
    probes: list[Probe] = []
    for src in list(sources) or [DEFAULT_PROBES]:
        path = packaged.get(str(src)) or Path(src)
        if not path.is_file():
            raise ConfigError(
                f"no such probe file (packaged sets: {', '.join(sorted(packaged))})", field="--probes", file=src
            )
        try:
            doc = OmegaConf.load(path)
        except (OmegaConfBaseException, ValueError) as e:
            raise ConfigError(f"not valid YAML: {str(e).strip().splitlines()[0]}", file=path) from None
        if OmegaConf.is_list(doc):
            entries = list(doc)
        elif "probes" in doc:
            entries = list(doc.probes) if OmegaConf.is_list(doc.probes) else None
        else:
            entries = [doc]  # one component
        if entries is None:
            raise ConfigError("expected `probes:` with a list of components", file=path, field="probes")
        if str(path.parent.resolve()) not in sys.path:  # a user module beside the YAML can be a _target_
            sys.path.insert(0, str(path.parent.resolve()))
        for k, entry in enumerate(entries):
            if not OmegaConf.is_dict(entry) or "_target_" not in entry:
                raise ConfigError("each probe needs a `_target_`", file=path, field=f"probes[{k}]")
            try:
                probe = build(entry)
            except ConfigError as e:
                cause = e.__cause__.__cause__ if e.__cause__ is not None else None
                if cause is not None:  # hydra's first line only says which call failed: say why
                    e = ConfigError(f"{entry['_target_']}: {str(cause).strip().splitlines()[0]}")
                raise e.at(file=path, field=f"probes[{k}]") from None
            probes.append(probe)
    ProbeSet(probes)  # checks types and unique names
    if only:
        by_name = {p.name: p for p in probes}
        missing = [n for n in only if n not in by_name]
        if missing:
            raise ConfigError(f"no probe named {', '.join(missing)} (known: {', '.join(by_name)})", field="--only")
        probes = [by_name[n] for n in only]
    return probes


# ---- scoring -------------------------------------------------------------------------------------
class RewardScorer:
    """Rewards per response (and per dimension) from a reward folder, loaded once."""

    kind = "reward"

    def __init__(self, model_dir, *, device: str = "auto", batch_size: int = 16):
        # deferred: torch loads only when a model scores
        from omnireward.scoring.load import load_for_scoring

        self.model = load_for_scoring(model_dir, device=device)
        self.batch_size = batch_size

    def __call__(self, records: list[Record], description: str) -> list[dict]:
        # deferred: torch loads only when a model scores
        from omnireward.scoring.bt import reward_records

        out = []
        for rec, line in zip(records, reward_records(self.model, records, self.batch_size, show_progress=False)):
            if isinstance(rec, Pair):
                rewards, dims = [line["reward1"], line["reward2"]], [line.get("dimensions1"), line.get("dimensions2")]
            elif isinstance(rec, Item):
                rewards, dims = [line["reward"]], [line.get("dimensions")]
            else:
                rewards, dims = list(line["rewards"]), list(line.get("dimensions") or [None] * len(line["rewards"]))
            out.append({"rewards": rewards, "dimensions": dims})
        return out


class JudgeScorer:
    """P(response1), P(response2), P(tie) and the verdict per pair from a judge folder."""

    kind = "judge"

    def __init__(
        self, model_dir, *, device: str = "auto", batch_size: int = 8, max_new_tokens: int = 64, seed: int = 0
    ):
        # deferred: torch loads only when a model scores
        from omnireward.scoring.judge import JudgeFactory, template_for

        self.judge = JudgeFactory(
            str(model_dir),
            template_for(None, model_dir),
            device=device,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )().judge
        self.seed = seed

    def __call__(self, records: list[Record], description: str) -> list[dict]:
        import torch

        torch.manual_seed(self.seed)
        lines = self.judge.judge_pairs(records, show_progress=False)
        return [
            {
                "p": {"response1": x["p_response1"], "response2": x["p_response2"], "tie": x["p_tie"]},
                "verdict": x["verdict"],
            }
            for x in lines
        ]


# ---- figures -------------------------------------------------------------------------------------
def _stats(changes: list[float], rose: list[bool], flips: list[bool] | None = None) -> dict:
    n = len(changes)
    out = {
        "n": n,
        "share_rose": sum(rose) / n if n else None,
        "mean_change": statistics.fmean(changes) if n else None,
        "median_change": statistics.median(changes) if n else None,
        "changes": changes,
    }
    if flips is not None:
        out["flip_share"] = sum(flips) / len(flips) if flips else None
    return out


def _std(values: list[float]) -> float | None:
    return statistics.pstdev(values) if len(values) > 1 and statistics.pstdev(values) > 0 else None


def _gold(rec: Pair) -> int:
    return 0 if rec.preference == "response1" else 1


def _record_perturbations(
    probe: Probe, records: list[Record], ctx: ProbeContext, kind: str, base: list[dict]
) -> tuple[list[int], list[Record], list[list[int]]]:
    """(indices of changed records, the changed records, per record the response indices changed)."""
    idx, changed, sides = [], [], []
    for i, rec in enumerate(records):
        if isinstance(probe, RecordProbe):
            if probe.judge_only and kind != "judge":
                continue
            new = probe.perturb_record(rec, ctx)
            if new is None:
                continue
            idx.append(i)
            changed.append(new)
            sides.append([])
            continue
        resps = responses_of(rec)
        which = [k for k, r in enumerate(resps) if probe.applies(rec, r)]
        if kind == "judge":  # one side: the one the judge did not prefer
            p = base[i]["p"]
            lower = 0 if p["response1"] < p["response2"] else 1
            which = [lower] if lower in which else []
        if not which:
            continue
        new_resps = [probe.apply(rec, r, ctx) if k in which else r for k, r in enumerate(resps)]
        if isinstance(rec, Pair):
            new = replace(rec, response1=new_resps[0], response2=new_resps[1])
        elif isinstance(rec, Item):
            new = replace(rec, response=new_resps[0])
        else:
            new = replace(rec, responses=new_resps)
        idx.append(i)
        changed.append(new)
        sides.append(which)
    return idx, changed, sides


def _reward_figures(probe: Probe, records, base, idx, new, sides, std: float) -> dict:
    changes, rose = [], []
    dims: dict[str, tuple[list[float], list[bool]]] = {}
    for i, after, which in zip(idx, new, sides):
        before = base[i]
        if probe.measures == "gold_margin":
            g = _gold(records[i])
            d = (after["rewards"][g] - after["rewards"][1 - g]) - (before["rewards"][g] - before["rewards"][1 - g])
            changes.append(d / std)
            rose.append(d > 0)
            continue
        for k in which:
            d = after["rewards"][k] - before["rewards"][k]
            changes.append(d / std)
            rose.append(d > 0)
            for name, v in (after["dimensions"][k] or {}).items():
                dd = v - before["dimensions"][k][name]
                dims.setdefault(name, ([], []))
                dims[name][0].append(dd)
                dims[name][1].append(dd > 0)
    out = _stats(changes, rose)
    if dims:
        spread = _dimension_spread(base)
        out["dimensions"] = {}
        for name, (ch, r) in dims.items():
            s = spread.get(name) or 1.0
            part = _stats([c / s for c in ch], r)
            part.pop("changes")
            part["unit_std"] = spread.get(name)
            out["dimensions"][name] = part
    return out


def _dimension_spread(base: list[dict]) -> dict[str, float | None]:
    values: dict[str, list[float]] = {}
    for b in base:
        for d in b["dimensions"]:
            for name, v in (d or {}).items():
                values.setdefault(name, []).append(v)
    return {name: _std(v) for name, v in values.items()}


def _judge_figures(probe: Probe, records, base, idx, new, sides) -> dict:
    changes, rose, flips = [], [], []
    labels = ("response1", "response2")
    # deferred: torch loads only for a judge
    from omnireward.judge.templates import SWAP_LABEL

    for i, after, which in zip(idx, new, sides):
        before = base[i]
        if probe.measures == "content":  # the pair was shown swapped: response1's content is now response2
            d = after["p"]["response2"] - before["p"]["response1"]
            flips.append(SWAP_LABEL.get(after["verdict"], after["verdict"]) != before["verdict"])
        else:
            side = labels[_gold(records[i])] if probe.measures == "gold_margin" else labels[which[0]]
            d = after["p"][side] - before["p"][side]
            flips.append(before["verdict"] != side and after["verdict"] == side)
        changes.append(d)
        rose.append(d > 0)
    return _stats(changes, rose, flips)


# ---- the run -------------------------------------------------------------------------------------
def _reward_std(model_dir, base: list[dict], kind: str) -> tuple[float, str]:
    if kind == "judge":
        return 1.0, "probability (judge: P of the changed side)"
    # deferred: torch and safetensors load only when a model folder is read
    from omnireward.model_folder import reward_stats

    stats = reward_stats(model_dir) or {}
    if stats.get("std"):
        return float(stats["std"]), "reward_stats.json"
    spread = _std([r for b in base for r in b["rewards"]])
    if spread:
        return spread, "the unchanged responses' rewards"
    return 1.0, "raw reward (no spread to normalise by)"


def run_probes(
    model_dir: str | Path,
    path: str | Path,
    out: str | Path,
    *,
    probes: list[Probe] | None = None,
    flag_share: float = FLAG_SHARE,
    min_effect: float = MIN_EFFECT,
    batch_size: int = 16,
    device: str = "auto",
    media_root=None,
    max_records: int | None = None,
    seed: int = 0,
    max_new_tokens: int = 64,
    report: bool = True,
) -> dict:
    """Run `probes` (default: conf/probe/default.yaml) on the records of `path` with the folder
    `model_dir`; write OUT/probe.json (and OUT/index.html with a plot per probe); return the result."""
    # deferred: torch and safetensors load only when a model folder is read
    from omnireward.model_folder import folder_objective, is_model_folder

    if not 0 <= flag_share < 1:
        raise ConfigError(f"must be in [0, 1), got {flag_share}", field="--flag-share")
    if max_records is not None and max_records < 1:
        raise ConfigError(f"must be at least 1, got {max_records}", field="--max-records")
    model_dir, out = Path(model_dir), Path(out)
    if not is_model_folder(model_dir):
        raise ModelError(f"{model_dir} is not an omnireward model folder (no omnireward.yaml)")
    probes = load_probes() if probes is None else probes
    ProbeSet(probes)
    records = read_pairs(path, media_root=media_root)
    if max_records is not None:
        records = records[:max_records]
    kind = "judge" if folder_objective(model_dir) == "judge" else "reward"
    if kind == "judge":
        records = [r for r in records if isinstance(r, Pair)]
        if not records:
            raise DataFormatError("a judge folder probes pairs, and the file holds none", file=path)
        scorer = JudgeScorer(
            model_dir, device=device, batch_size=max(1, batch_size // 2), max_new_tokens=max_new_tokens, seed=seed
        )
    else:
        scorer = RewardScorer(model_dir, device=device, batch_size=batch_size)
    out.mkdir(parents=True, exist_ok=True)
    ctx = ProbeContext(out / "media", seed=seed)
    base = scorer(records, "unchanged")
    std, std_source = _reward_std(model_dir, base, kind)
    results, skipped = [], {}
    for probe in probes:
        idx, changed, sides = _record_perturbations(probe, records, ctx, kind, base)
        if not idx:
            skipped[probe.name] = _why_skipped(probe, kind)
            continue
        after = scorer(changed, probe.name)
        if kind == "judge":
            figures = _judge_figures(probe, records, base, idx, after, sides)
        else:
            figures = _reward_figures(probe, records, base, idx, after, sides, std)
        flagged = probe.flagged(figures, flag_share, min_effect)
        results.append(
            {
                "name": probe.name,
                "modality": probe.modality,
                "description": probe.description,
                "target": f"{type(probe).__module__}.{type(probe).__qualname__}",
                "measures": probe.measures,
                "n_records": len(idx),
                **figures,
                "flagged": flagged,
            }
        )
    result = {
        "model": str(model_dir),
        "input": str(path),
        "kind": kind,
        "n_records": len(records),
        "unit": "reward standard deviations" if kind == "reward" else "probability",
        "reward_std": std if kind == "reward" else None,
        "std_source": std_source,
        "flag_share": flag_share,
        "min_effect": min_effect,
        "seed": seed,
        "probes": results,
        "skipped": skipped,
        "flagged": [r["name"] for r in results if r["flagged"]],
    }
    (out / PROBE_JSON).write_text(json.dumps(result, indent=2))
    if report:
        # deferred: matplotlib loads only when the report is written
        from omnireward.report.probe import write_probe_report

        write_probe_report(result, out)
    return result


def _why_skipped(probe: Probe, kind: str) -> str:
    if probe.judge_only and kind != "judge":
        return "judges only"
    if probe.measures == "gold_margin":
        return "no labelled pair with criteria"
    if getattr(probe, "media_type", None):
        return f"no response with {probe.media_type} media"
    return "no response it applies to"
