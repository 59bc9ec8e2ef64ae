"""Table renderers for `report.py`: each public function turns results lines into markdown.

A function takes the marker's arguments (`args`) and `where` filters and returns the table; it
reads results only through `results_log` (newest line per filter), so a table always shows one
measured run and names it.
"""

from __future__ import annotations

import re

from results_log import ReportError, newest


def _machine(row: dict) -> str:
    m = row.get("machine", {})
    return f"{m.get('cores')} cores, {m.get('ram_gib')} GiB RAM, GPU: {m.get('gpu', 'none')}, load {m.get('load_1min', '?')}"


def provenance(args: dict, where: list[str]) -> str:
    """Command, commit, date and machine of the newest matching line: the footnote under a figure."""
    row = newest(args["file"], where)
    return f"`{row['command']}` — commit `{row['commit']}`, {row['date'][:10]}, {_machine(row)}"


def _f(v, spec=".3f"):
    return "—" if v is None else format(v, spec)


def judge_zero_shot(args: dict, where: list[str]) -> str:
    """docs/judge.md: the zero-shot judge settings of the newest `judge_runs.py zero-shot` line."""
    row = newest("judge_runs", ["run:zero-shot", *where])
    fig = row["figures"]
    out = [
        "| setting | accuracy w/o ties | pairs | valid Flex JSON | orders agree | time |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in fig["settings"].items():
        out.append(
            f"| {name} | {_f(r['accuracy'])} | {r['n']} | {_f(r.get('flex_valid_share'), '.0%')} | "
            f"{_f(r.get('order_agreement'), '.0%')} | {r['seconds']:.0f} s |"
        )
    out.append("")
    out.append(f"{fig['model']}; {fig['data']}. " + provenance({"file": "judge_runs"}, ["run:zero-shot", *where]))
    return "\n".join(out)


def judge_joint_vs_bt(args: dict, where: list[str]) -> str:
    """docs/judge.md: BT vs joint on the text demo (newest `judge_runs.py joint-vs-bt` line)."""
    row = newest("judge_runs", ["run:joint-vs-bt", *where])
    fig = row["figures"]
    out = ["| model | test accuracy | best val accuracy (epoch) | train time |", "|---|---|---|---|"]
    for name, r in fig["runs"].items():
        label = "`model=joint` (α = 0.7)" if name == "joint" else f"`model={name}`"
        out.append(
            f"| {label} | {_f(r['test_accuracy'])} ({r['n_test']} pairs) | {_f(r['best_val_acc'])} "
            f"({r['best_epoch']}) | {r['train_seconds']:.0f} s |"
        )
    out.append("")
    out.append(
        f"SmolLM2 cut to {fig['layers']} layers, {fig['epochs']} epochs, batch 8; {fig['data']}. "
        + provenance({"file": "judge_runs"}, ["run:joint-vs-bt", *where])
    )
    return "\n".join(out)


def serve_load(args: dict, where: list[str]) -> str:
    """benchmarks/serve_load.py: throughput, latency and batches formed per number of concurrent clients;
    for lines that measured it, the bound (offline `omnireward score` on the same records) beside them."""
    row = newest("serve_load", where)
    f = row["figures"]
    if "offline" not in f:  # lines written before serve_load.py measured the offline bound
        out = [
            "| clients | requests | requests/s | vs 1 client | p50 latency | p99 latency | sequences per forward pass (mean / max) | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for n, lv in sorted(f["levels"].items(), key=lambda kv: int(kv[0])):
            speed = f["speedup"].get(n)
            mean = f"{lv['mean_batch']:.1f}" if lv["mean_batch"] is not None else "—"
            out.append(
                f"| {n} | {lv['ok']} | {lv['requests_per_s']:.2f} | {speed:.2f}× | {lv['p50_s']:.2f} s | "
                f"{lv['p99_s']:.2f} s | {mean} / {lv['max_batch']} | {lv['errors']} |"
            )
        return "\n".join(out)
    off, ref = f["offline"], f["one_client_full_batch"]
    sec = lambda v: "—" if v is None else f"{v:.2f} s"  # noqa: E731 (a level with no answered request)
    out = [
        "| clients | requests | rollouts/s | vs 1 client | vs offline | p50 latency | p99 latency | "
        "p99 vs one client sending full batches | sequences per forward pass: count | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, lv in sorted(f["levels"].items(), key=lambda kv: int(kv[0])):
        hist = ", ".join(f"{k}: {v}" for k, v in sorted(lv["batch_sizes"].items(), key=lambda kv: -int(kv[0])))
        p99 = f["p99_vs_one_client_full_batch"].get(n)
        out.append(
            f"| {n} | {lv['ok']} | {lv['rollouts_per_s']:.2f} | {f['speedup'][n]:.2f}× | "
            f"{f['served_vs_offline'][n]:.2f} | {sec(lv['p50_s'])} | {sec(lv['p99_s'])} | "
            f"{'—' if p99 is None else f'{p99:.2f}×'} | {hist} | {lv['errors']} |"
        )
    runs = " and ".join(f"{r['records_per_s']:.2f}" for r in off["runs"])
    diff = f["max_abs_reward_diff"]
    out += [
        "",
        f"Offline bound: `omnireward score` on the same {off['records']} records, model and batch size "
        f"({off['batch_size']}), {off['records_per_s']:.2f} records/s (steady rate, mean of a run before the "
        f"served levels and one after: {runs}). One client sending {ref['rollouts_per_request']} rollouts per "
        f"request: {ref['ok']} of {ref['requests']} answered, {ref['rollouts_per_s']:.2f} rollouts/s, p99 "
        f"{sec(ref['p99_s'])}. Served and offline "
        f"rewards of the same records differ by at most "
        f"{'—' if diff is None else f'{diff:.1e}'} ({f['rewards_compared']} compared).",
    ]
    return "\n".join(out)


_RULE_NAMES = {"criteria_flip": "criteria flips", "temporal": "frame order", "quality": "mesh quality"}


def _rule_name(rule: str) -> str:
    """`criteria_flip:subject` -> "subject flips"."""
    return f"{rule.split(':')[1]} flips" if ":" in rule else _RULE_NAMES.get(rule, rule)


def _acc(block: dict | None) -> str:
    return "—" if not block else f"{block['accuracy']:.2f} ({block['n']})"


def _label_layers(tag: str) -> int | None:
    """Rows written before demo_runs recorded `train_layers`: a `-tN` label names it; none trained every layer."""
    m = re.search(r"-t(\d+)$", tag)
    return int(m.group(1)) if m else None


def demo_runs(args: dict, where: list[str]) -> str:
    """One row per tag in `tags=` (comma-separated) from results/demo_runs.jsonl: held-out accuracy on
    unseen sources (test split and a larger fresh sample) beside new draws of the training sources,
    per rule as "unseen / seen (n unseen / n seen)", then each row's command, commit and machine."""
    rows, notes = [], []
    head = (
        "| modality | train pairs, epochs | training time | test, unseen sources | fresh, unseen sources "
        "| fresh, seen sources | criteria flips, unseen / seen | per rule: unseen / seen (n) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for tag in args["tags"].split(","):
        row = newest("demo_runs", [f"tag:{tag}", *where])
        f = row["figures"]
        unseen, seen = f.get("fresh_unseen") or {}, f.get("fresh_seen") or {}
        rules = []
        for rule, u in unseen.get("per_rule", {}).items():
            s = seen.get("per_rule", {}).get(rule)
            rules.append(
                f"{_rule_name(rule)} {u['accuracy']:.2f} / "
                + (f"{s['accuracy']:.2f} ({u['n']}/{s['n']})" if s else f"— ({u['n']}/0)")
            )
        flips = (
            f"{unseen['flips']['accuracy']:.2f} / {seen['flips']['accuracy']:.2f}"
            if unseen.get("flips") and seen.get("flips")
            else "—"
        )
        layers = "" if f["layers"] == 30 else f", {f['layers']} LM layers"
        trained = f.get("train_layers", _label_layers(row.get("tag", "")))
        layers += f", top {trained} layers train" if trained is not None and trained < f["layers"] else ""
        rows.append(
            f"| {f['modality']}{layers} | {f['n_pairs']}, {f['epochs']} | {f['train_s'] / 60:.1f} min "
            f"| {f['test']['accuracy']:.2f} ({f['test']['n']}) | {_acc(unseen and {'accuracy': unseen['accuracy'], 'n': unseen['n']})} "
            f"| {_acc(seen and {'accuracy': seen['accuracy'], 'n': seen['n']})} | {flips} | {'; '.join(rules)} |"
        )
        notes.append(
            f"- {f['modality']}: `{row['command']}` — commit `{row['commit']}`, {row['date'][:10]}, {_machine(row)}"
        )
    return "\n".join([head, *rows, "", *notes])


_MIB = 1024**2
_GIB = 1024**3


def memory_weights(args: dict, where: list[str]) -> str:
    """Weights memory per precision: measured for the embedded default, computed for larger LMs."""
    row = newest(args.get("file", "memory"), where)
    f = row["figures"]
    m = f["weights_measured"]
    out = [
        "| model | params | fp32 | bf16 | 8-bit | 4-bit (nf4, double quant) |",
        "|---|---|---|---|---|---|",
        f"| embedded default: SmolLM2-135M-Instruct reward model (measured) | {m['fp32']['params'] / 1e6:.1f} M | "
        + " | ".join(f"{m[k]['bytes'] / _MIB:.0f} MiB" for k in ("fp32", "bf16", "8bit", "4bit"))
        + " |",
    ]
    for name, c in f["weights_computed"].items():
        out.append(
            f"| {name} (computed) | {c['counts']['total'] / 1e9:.2f} B | "
            + " | ".join(f"{c['bytes'][k] / _GIB:.2f} GiB" for k in ("fp32", "bf16", "8bit", "4bit"))
            + " |"
        )
    return "\n".join(out) + f"\n\n{provenance(args | {'file': args.get('file', 'memory')}, where)}"


def memory_scoring(args: dict, where: list[str]) -> str:
    """Peak RSS of scoring, full precision vs 4-bit (quantised while loading), per model, with ratios."""
    row = newest(args.get("file", "memory"), where)
    f = row["figures"]
    out = [
        "| model | setting | weights | RSS before loading | peak RSS while loading | peak RSS | "
        "4-bit / full (peak) | 4-bit / full (above RSS before loading) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in f["scoring_peaks"].values():
        name = p["label"]
        for quant in ("none", "4bit"):
            r = p[quant]
            ratio = (
                (f"{p['ratio_peak_4bit_over_full']:.2f}", f"{p['ratio_above_start_4bit_over_full']:.2f}")
                if quant == "4bit"
                else ("", "")
            )
            out.append(
                f"| {name} | {'fp32' if quant == 'none' else '4-bit'} | {r['weights_mib']:.0f} MiB | "
                f"{r['rss_before_load_mib']:.0f} MiB | {r['peak_rss_loading_mib']:.0f} MiB | "
                f"{r['peak_rss_mib']:.0f} MiB | {ratio[0]} | {ratio[1]} |"
            )
    return (
        f"{f['scoring_records']} pairs of the text demo's `test.jsonl`, batch size {f['batch_size']}, one "
        "fresh process per row.\n\n"
        + "\n".join(out)
        + f"\n\n{provenance(args | {'file': args.get('file', 'memory')}, where)}"
    )


_AUDIO_RULES = {
    "content": "spoken content (clip says the prompt's sentence)",
    "transcript": "transcript (text answers)",
    "noise": "noise",
    "flip_speed": "speed flips",
    "flip_pitch": "pitch flips",
    "flip_volume": "volume flips",
    "all": "all pairs",
}


def audio_transcript(args: dict, where: list[str]) -> str:
    """Audio demo accuracy per rule, Whisper states only vs + transcript, on unseen and seen sources."""
    row = newest("audio_transcript", where)
    f = row["figures"]
    off, on = f["without_transcript"], f["with_transcript"]
    out = [
        "| rule | unseen sources: n | states only | + transcript | seen sources (val): n | states only | + transcript |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in _AUDIO_RULES.items():
        cells = []
        for part in ("unseen_sources", "seen_sources"):
            a, b = off[part].get(key), on[part].get(key)
            cells += [str(a["n"]) if a else "—"] + [f"{r['accuracy']:.2f}" if r else "—" for r in (a, b)]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += [
        "",
        f"{f['n_pairs']} training pairs, {f['epochs']} epochs, SmolLM2's first {f['lm_layers']} of 30 layers; "
        f"transcript word error rate on the bundled test clips {f['wer_test_clips']:.2f}.",
        "",
        provenance({"file": "audio_transcript"}, where),
    ]
    return "\n".join(out)


def _vs_trl_layers(f: dict) -> str:
    n = {s["train"]["omnireward"].get("train_layers") for s in f["sets"].values()}
    return (
        f"; omnireward trains the LM's top {n.pop()} of 30 layers (its default)"
        if len(n) == 1 and None not in n
        else ""
    )


def vs_trl(args: dict, where: list[str]) -> str:
    """README: training vs TRL's RewardTrainer and scoring vs HF two-pass (newest `vs_trl.py` line)."""
    row = newest("vs_trl", where)
    f = row["figures"]
    if "settings" in f:  # lines with rows (a) all layers, (b) top layers, (c) defaults and scoring the same weights
        return vs_trl_rows(f) + "\n\n" + provenance({"file": "vs_trl"}, where)
    out = [
        "| set | train pairs/s: omnireward / TRL (ratio) | held-out accuracy: omnireward / TRL | "
        "train peak RSS MiB: omnireward / TRL | batches not grouped by length: pairs/s (ratio), accuracy | "
        "every LM layer training: pairs/s (ratio), accuracy, peak RSS MiB | "
        "score pairs/s: omnireward / HF two-pass (ratio) | "
        "score pairs/s without prefix sharing | score peak RSS MiB: omnireward / HF | "
        "best-of-N groups/s: omnireward / HF (ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in f["sets"].items():
        t, c = s["train"], s["score"]
        every = t.get("omnireward_all_layers")
        every_cell = (
            f"{every['pairs_per_s']:.2f} ({t['all_layers_ratio']:.2f}×), {_f(every['test_accuracy'])}, "
            f"{every['peak_rss_mib']}"
            if every
            else "—"
        )
        g = s.get("score_groups")
        group_cell = (
            f"N={g['group_size']}: {g['omnireward']['groups_per_s']:.2f} / {g['hf']['groups_per_s']:.2f} "
            f"({g['ratio']:.2f}×)"
            if g
            else "—"
        )
        plain = t.get("omnireward_ungrouped")
        plain_cell = (
            f"{plain['pairs_per_s']:.2f} ({t['ungrouped_ratio']:.2f}×), {_f(plain['test_accuracy'])}" if plain else "—"
        )
        out.append(
            f"| {name} | {t['omnireward']['pairs_per_s']:.2f} / {t['trl']['pairs_per_s']:.2f} "
            f"({t['ratio']:.2f}×) | {_f(t['omnireward']['test_accuracy'])} / {_f(t['trl']['test_accuracy'])} | "
            f"{t['omnireward']['peak_rss_mib']} / {t['trl']['peak_rss_mib']} | {plain_cell} | {every_cell} | "
            f"{c['omnireward']['pairs_per_s']:.2f} / {c['hf_two_pass']['pairs_per_s']:.2f} ({c['ratio']:.2f}×) | "
            f"{c['omnireward_no_prefix_sharing']['pairs_per_s']:.2f} | "
            f"{c['omnireward']['peak_rss_mib']} / {c['hf_two_pass']['peak_rss_mib']} | {group_cell} |"
        )
    out.append("")
    out.append(
        f"{f['pairs']} training pairs, {f['epochs']} epoch, batch {f['batch']}, CPU fp32, the embedded "
        "SmolLM2-135M-Instruct for both tools" + _vs_trl_layers(f) + ". " + provenance({"file": "vs_trl"}, where)
    )
    return "\n".join(out)


def defaults(args: dict, where: list[str]) -> str:
    """docs/defaults.md: candidate settings per set (benchmarks/defaults.py), mean and worst seed."""
    import defaults as bench

    sets = args["sets"].split(",") if args.get("sets") else None
    return bench.table(sets)


_VS_TRL_ROWS = {
    "all_layers": "(a) every layer + embeddings",
    "top_layers": "(b) top {n} layers",
    "defaults": "(c) defaults",
}


def vs_trl_rows(f: dict) -> str:
    """The training and scoring tables of a `vs_trl.py` line that has `settings` (see its docstring)."""
    st = f["settings"]
    out = [
        "| set | row | train pairs/s: omnireward / TRL (ratio) | trainable parameters: omnireward / TRL | "
        "held-out accuracy: omnireward / TRL | train peak RSS MiB: omnireward / TRL |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in f["sets"].items():
        for key, label in _VS_TRL_ROWS.items():
            r = s["train"][key]
            if key == "defaults":
                o, t = r["mean"]["omnireward"], r["mean"]["trl"]
                po, pt = r["omnireward"][0]["trainable_params"], r["trl"][0]["trainable_params"]
                acc = (
                    f"{o['test_accuracy']:.3f} ({_f(o['test_accuracy_range'][0])}–{_f(o['test_accuracy_range'][1])}) / "
                    f"{t['test_accuracy']:.3f} ({_f(t['test_accuracy_range'][0])}–{_f(t['test_accuracy_range'][1])})"
                )
                label += f", {len(r['seeds'])} seed{'s' if len(r['seeds']) != 1 else ''}"
            else:
                o, t = r["omnireward"], r["trl"]
                po, pt = o["trainable_params"], t["trainable_params"]
                acc = f"{_f(o['test_accuracy'])} / {_f(t['test_accuracy'])}"
            label = label.format(n=st["top_layers"]).replace("top 1 layers", "top layer")
            out.append(
                f"| {name} | {label} | {o['pairs_per_s']:.2f} / {t['pairs_per_s']:.2f} "
                f"({r['ratio']:.2f}×) | {po / 1e6:.1f} M / {pt / 1e6:.1f} M | {acc} | "
                f"{round(o['peak_rss_mib'])} / {round(t['peak_rss_mib'])} |"
            )
    out += [
        "",
        "| set | HF fp32 two-pass pairs/s | omnireward fp32 (ratio) | without prefix sharing | "
        "int8: pairs/s (ratio), signs kept | bf16: pairs/s (ratio), signs kept | best-of-N groups/s: "
        "omnireward / HF (ratio) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in f["sets"].items():
        p, g = s["score"]["pairs"], s["score"]["groups"]

        def low(key, p=p):
            r = p[key]
            if "skipped" in r:
                return "not run: " + r["skipped"].split(" (")[0].split(";")[0]
            return f"{r['pairs_per_s']:.2f} ({r['ratio']:.2f}×), {_f(r['agreement_with_hf_fp32']['sign_agreement'])}"

        out.append(
            f"| {name} | {p['hf_two_pass']['pairs_per_s']:.2f} | {p['omnireward']['pairs_per_s']:.2f} "
            f"({p['omnireward']['ratio']:.2f}×) | {p['omnireward_no_prefix_sharing']['pairs_per_s']:.2f} | "
            f"{low('omnireward_int8')} | {low('omnireward_bf16')} | N={g['group_size']}: "
            f"{g['omnireward']['groups_per_s']:.2f} / {g['hf']['groups_per_s']:.2f} ({g['ratio']:.2f}×) |"
        )
    out += [
        "",
        f"{st['pairs']} training pairs, batch {st['batch']}, CPU, {st['precision']}, the {st['lm']} "
        f"({st['lm_layers']} layers) on both sides, TRL {st['trl']}; rows (a) and (b): {st['epochs']} epoch(s), "
        f"learning rate {st['lr']:g} for every parameter, activation recomputation {st['recompute']} on both; "
        f"row (c): each tool's defaults, seeds {st['seeds']}. Held-out accuracy on {st['heldout_pairs']} pairs "
        f"of unseen topics per set. Scoring: the weights row (c) trained with the first seed, omnireward's "
        f"folder against its export in transformers (margins agree within {st['margin_agreement_tolerance']:g}); "
        "signs kept: the share of HF fp32 margins whose sign the lower precision keeps.",
    ]
    return "\n".join(out)


def probe_runs(args: dict, where: list[str]) -> str:
    """One block of rows per tag in `tags=` (comma-separated) from results/probe_runs.jsonl: each
    probe's records, share of records whose reward rose, mean and median change in the folder's
    reward standard deviations, and verdict; then each line's model settings, command, commit and
    machine."""
    head = (
        "| model | probe | records | share rose | mean change (σ) | median change (σ) | flagged |\n"
        "|---|---|---|---|---|---|---|"
    )
    rows, notes = [], []
    for tag in args["tags"].split(","):
        row = newest("probe_runs", [f"tag:{tag}", *where])
        f = row["figures"]
        g = f.get("given") or {}
        layers = g.get("train_layers", f.get("layers"))
        kind = {"reward": "BT", "judge": "judge"}.get(f["kind"], f["kind"])
        model = f"{f['modality']} {kind}, " + ("every layer" if layers is None else f"top {layers} layers")
        for name, p in f["probes"].items():
            rows.append(
                f"| {model} | `{name}` | {p['n_records']} | {_f(p['share_rose'], '.2f')} "
                f"| {_f(p['mean_change'], '+.2f')} | {_f(p['median_change'], '+.2f')} | {'**yes**' if p['flagged'] else 'no'} |"
            )
        trained = (
            f"trained {g.get('epochs')} epochs on {g.get('train_pairs')} pairs, seed {g.get('seed')}, "
            f"lr {g.get('lr')}, LM lr {g.get('lm_lr')}"
            if g
            else f"trained here: {f['epochs']} epochs, {f['n_pairs']} pairs, seed {f['seed']}"
        )
        notes.append(
            f"- {model}: {trained}; reward σ {f['reward_std']:.3f} ({f['std_source']}); flagged when more "
            f"than {f['flag_share']:.0%} of the records rose and the mean rose by more than {f['min_effect']} σ — "
            f"`{row['command']}`, commit "
            f"`{row['commit']}`, {row['date'][:10]}, {_machine(row)}"
        )
    return "\n".join([head, *rows, "", *notes])


def plain_command(args: dict, where: list[str]) -> str:
    """The README's per-modality table: for each `set:candidate` in `rows=` (comma-separated; the
    candidate whose settings are the modality's configuration defaults), its benchmarks/defaults.py
    runs: seeds, unseen-source accuracy (mean and worst seed), criteria flips on unseen sources
    (mean) and training time (mean)."""
    import statistics

    import defaults as bench

    out = [
        "| modality | demo set: train pairs, epochs | seeds | unseen-source accuracy: mean (worst seed) "
        "| criteria flips, unseen (mean) | training time (mean) |",
        "|---|---|---|---|---|---|",
    ]
    commits, loads = set(), []
    for item in args["rows"].split(","):
        set_name, cand = item.split(":")
        rows = []
        for seed in range(10):
            try:
                rows.append(newest("defaults", [f"tag:{set_name}-{cand}-s{seed}", *where]))
            except ReportError:
                continue
        if not rows:
            raise ReportError(f"defaults: no line tagged {set_name}-{cand}-s*")
        accs = [bench.unseen_accuracy(r["figures"]) for r in rows]
        flips = [((r["figures"].get("fresh_unseen") or {}).get("flips") or {}).get("accuracy") for r in rows]
        flips = [x for x in flips if x is not None]
        f0 = rows[0]["figures"]
        commits.update(r["commit"] for r in rows)
        loads += [r["machine"].get("load_1min") for r in rows]
        out.append(
            f"| {f0['modality']} | {f0['n_pairs']}, {f0['epochs']} | {', '.join(str(r['figures']['seed']) for r in rows)} "
            f"| {statistics.mean(accs):.3f} ({min(accs):.3f}) | {_f(statistics.mean(flips) if flips else None, '.2f')} "
            f"| {statistics.mean(r['figures']['train_s'] for r in rows) / 60:.0f} min |"
        )
    out += [
        "",
        f"`benchmarks/defaults.py`, commits {', '.join(f'`{c}`' for c in sorted(commits))}; 2-core CPU, load "
        f"{min(loads)}–{max(loads)} at the runs' ends (other runs shared the cores: training times are rough).",
    ]
    return "\n".join(out)
