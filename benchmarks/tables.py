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


_AUDIO_RULES = {"content": "spoken content (clip says the prompt's sentence)", "transcript": "transcript (text answers)",
                "noise": "noise", "flip_speed": "speed flips", "flip_pitch": "pitch flips",
                "flip_volume": "volume flips", "all": "all pairs"}


def audio_transcript(args: dict, where: list[str]) -> str:
    """Audio demo accuracy per rule, Whisper states only vs + transcript, on unseen and seen sources."""
    row = newest("audio_transcript", where)
    f = row["figures"]
    off, on = f["without_transcript"], f["with_transcript"]
    out = ["| rule | unseen sources: n | states only | + transcript | seen sources (val): n | states only | + transcript |",
           "|---|---|---|---|---|---|---|"]
    for key, label in _AUDIO_RULES.items():
        cells = []
        for part in ("unseen_sources", "seen_sources"):
            a, b = off[part].get(key), on[part].get(key)
            cells += [str(a["n"]) if a else "—"] + [f"{r['accuracy']:.2f}" if r else "—" for r in (a, b)]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += ["", f"{f['n_pairs']} training pairs, {f['epochs']} epochs, SmolLM2's first {f['lm_layers']} of 30 layers; "
            f"transcript word error rate on the bundled test clips {f['wer_test_clips']:.2f}.", "",
            provenance({"file": "audio_transcript"}, where)]
    return "\n".join(out)
