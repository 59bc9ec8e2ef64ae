"""Table renderers for `report.py`: each public function turns results lines into markdown.

A function takes the marker's arguments (`args`) and `where` filters and returns the table; it
reads results only through `results_log` (newest line per filter), so a table always shows one
measured run and names it.
"""

from __future__ import annotations

from results_log import newest


def _machine(row: dict) -> str:
    m = row.get("machine", {})
    return f"{m.get('cores')} cores, {m.get('ram_gib')} GiB RAM, GPU: {m.get('gpu', 'none')}, load {m.get('load_1min', '?')}"


def provenance(args: dict, where: list[str]) -> str:
    """Command, commit, date and machine of the newest matching line: the footnote under a figure."""
    row = newest(args["file"], where)
    return f"`{row['command']}` — commit `{row['commit']}`, {row['date'][:10]}, {_machine(row)}"


_MIB = 1024 ** 2
_GIB = 1024 ** 3


def memory_weights(args: dict, where: list[str]) -> str:
    """Weights memory per precision: measured for the embedded default, computed for larger LMs."""
    row = newest(args.get("file", "memory"), where)
    f = row["figures"]
    m = f["weights_measured"]
    out = ["| model | params | fp32 | bf16 | 8-bit | 4-bit (nf4, double quant) |", "|---|---|---|---|---|---|",
           f"| embedded default: SmolLM2-135M-Instruct reward model (measured) | {m['fp32']['params'] / 1e6:.1f} M | "
           + " | ".join(f"{m[k]['bytes'] / _MIB:.0f} MiB" for k in ("fp32", "bf16", "8bit", "4bit")) + " |"]
    for name, c in f["weights_computed"].items():
        out.append(f"| {name} (computed) | {c['counts']['total'] / 1e9:.2f} B | "
                   + " | ".join(f"{c['bytes'][k] / _GIB:.2f} GiB" for k in ("fp32", "bf16", "8bit", "4bit")) + " |")
    return "\n".join(out) + f"\n\n{provenance(args | {'file': args.get('file', 'memory')}, where)}"


def memory_scoring(args: dict, where: list[str]) -> str:
    """Peak RSS of scoring, full precision vs 4-bit (quantised while loading), per model, with ratios."""
    row = newest(args.get("file", "memory"), where)
    f = row["figures"]
    out = ["| model | setting | weights | RSS before loading | peak RSS while loading | peak RSS | "
           "4-bit / full (peak) | 4-bit / full (above RSS before loading) |", "|---|---|---|---|---|---|---|---|"]
    for p in f["scoring_peaks"].values():
        name = p["label"]
        for quant in ("none", "4bit"):
            r = p[quant]
            ratio = (f"{p['ratio_peak_4bit_over_full']:.2f}", f"{p['ratio_above_start_4bit_over_full']:.2f}") \
                if quant == "4bit" else ("", "")
            out.append(f"| {name} | {'fp32' if quant == 'none' else '4-bit'} | {r['weights_mib']:.0f} MiB | "
                       f"{r['rss_before_load_mib']:.0f} MiB | {r['peak_rss_loading_mib']:.0f} MiB | "
                       f"{r['peak_rss_mib']:.0f} MiB | {ratio[0]} | {ratio[1]} |")
    return (f"{f['scoring_records']} pairs of the text demo's `test.jsonl`, batch size {f['batch_size']}, one "
            "fresh process per row.\n\n" + "\n".join(out)
            + f"\n\n{provenance(args | {'file': args.get('file', 'memory')}, where)}")
