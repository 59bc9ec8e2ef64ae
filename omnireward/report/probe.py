"""The probe report: a table of every probe's figures and a plot per probe, drawn only from probe.json.

    write_probe_report(result, "probe_out/")   # probe_out/index.html, probe_out/plots/probe_<name>.png

`probe_section` is the same table and figures as an HTML fragment, for any page that shows them.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import matplotlib

from omnireward.report.html import page

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402


def _f(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def probe_figure(p: dict, unit: str) -> Figure:
    """Histogram of one probe's changes, zero and the mean marked; the title carries share rose and verdict."""
    fig = Figure(figsize=(5.0, 3.2), layout="constrained")
    ax = fig.add_subplot()
    changes = p["changes"]
    bins = min(30, max(5, len(changes) // 3))
    ax.hist(changes, bins=bins, color="tab:red" if p["flagged"] else "tab:blue", alpha=0.75, label=f"{p['n']} changed")
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(p["mean_change"], color="tab:orange", lw=1.2, ls="--", label=f"mean {p['mean_change']:+.3g}")
    ax.set_xlabel(f"change ({unit})")
    ax.set_ylabel("responses" if p["measures"] == "reward" else "pairs")
    verdict = "FLAGGED" if p["flagged"] else "ok"
    extra = f", verdict flips {_pct(p['flip_share'])}" if p.get("flip_share") is not None else ""
    ax.set_title(f"{p['name']}: rose in {_pct(p['share_rose'])}{extra} — {verdict}", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def draw_probes(result: dict, folder: str | Path) -> dict[str, str]:
    """plots/probe_<name>.png for every probe that ran; returns name → file name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    drawn = {}
    for p in result["probes"]:
        name = f"probe_{p['name']}.png"
        probe_figure(p, result["unit"]).savefig(folder / name, dpi=100)
        drawn[p["name"]] = name
    return drawn


def probe_section(result: dict, plots: dict[str, str], plot_dir: str = "plots") -> str:
    """The probes as HTML: what was measured, one table row and one figure per probe, what was skipped."""
    judge = result["kind"] == "judge"
    out = [
        "<h2 id='probes'>Perturbation probes</h2>",
        f"<p class='meta'>model: {escape(result['model'])}<br>records: {escape(result['input'])} "
        f"({result['n_records']})<br>changes in {escape(result['unit'])}"
        + ("" if judge else f" (σ = {result['reward_std']:.4g}, from {escape(result['std_source'])})")
        + f"<br>flagged when the change is a rise in more than {_pct(result['flag_share'])} of cases"
        + f" and the mean change exceeds {result['min_effect']:g} (order_swapped: when the verdict flips in "
        f"more than {_pct(result['flag_share'])} of the pairs)</p>",
        "<table><tr><th>probe</th><th>modality</th><th>changed</th><th>rose</th><th>mean change</th>"
        "<th>median change</th>" + ("<th>verdict flips</th>" if judge else "") + "<th>verdict</th></tr>",
    ]
    for p in result["probes"]:
        verdict = "<b style='color:#c33'>flagged</b>" if p["flagged"] else "ok"
        flips = f"<td>{_pct(p.get('flip_share'))}</td>" if judge else ""
        out.append(
            f"<tr><td title='{escape(p['description'])}'>{escape(p['name'])}</td>"
            f"<td>{escape(p['modality'])}</td><td>{p['n']}</td><td>{_pct(p['share_rose'])}</td>"
            f"<td>{_f(p['mean_change'])}</td><td>{_f(p['median_change'])}</td>{flips}<td>{verdict}</td></tr>"
        )
        for dim, d in (p.get("dimensions") or {}).items():
            out.append(
                f"<tr><td class='note'>&nbsp;&nbsp;{escape(p['name'])} · {escape(dim)}</td><td></td>"
                f"<td>{d['n']}</td><td>{_pct(d['share_rose'])}</td><td>{_f(d['mean_change'])}</td>"
                f"<td>{_f(d['median_change'])}</td>{'<td></td>' if judge else ''}<td></td></tr>"
            )
    out.append("</table>")
    if result["skipped"]:
        out.append(
            "<p class='note'>Not run: "
            + "; ".join(f"{escape(k)} ({escape(v)})" for k, v in result["skipped"].items())
            + ".</p>"
        )
    for p in result["probes"]:
        if p["name"] in plots:
            out.append(
                f"<figure><img src='{escape(plot_dir)}/{escape(plots[p['name']])}' alt='{escape(p['name'])} "
                f"probe plot'><figcaption class='note'>{escape(p['description'])}</figcaption></figure>"
            )
    return "\n".join(out)


def write_probe_report(result: dict, out: str | Path) -> Path:
    """OUT/index.html and OUT/plots/; returns the page's path."""
    out = Path(out)
    plots = draw_probes(result, out / "plots")
    flagged = result["flagged"]
    head = (
        f"<p><b style='color:#c33'>{len(flagged)} probe(s) flagged:</b> {escape(', '.join(flagged))}</p>"
        if flagged
        else "<p>No probe flagged.</p>"
    )
    body = head + probe_section(result, plots) + "<p class='note'>Every number above is in probe.json.</p>"
    (out / "index.html").write_text(page("Reward model probes", body))
    return out / "index.html"
