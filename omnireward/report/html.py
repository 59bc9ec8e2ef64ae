"""The report's two pages as HTML strings: index.html (figures and tables) and pairs.html
(pairs with their media). Self-contained: inline CSS, no scripts, relative links only."""

from __future__ import annotations

from html import escape

from omnireward.report import bias
from omnireward.report.media import MediaShelf

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:.5em}
figure img{max-width:560px;border:1px solid #ddd}.note{color:#666;font-size:.9em}
.card{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.6em 1em}.card.wrong{border-left:6px solid #c33}
.card.right{border-left:6px solid #3a3}.sides{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.side{background:#fafafa;padding:.5em;border-radius:4px}.side.gold{outline:2px solid #3a3}
pre{white-space:pre-wrap;word-wrap:break-word;margin:.3em 0}
.media{max-width:100%;max-height:320px;display:block;margin:.3em 0}
.turntable{display:flex;gap:2px;flex-wrap:wrap}.turntable .view{width:24%;min-width:90px;border:1px solid #eee}
.missing{color:#c33}.meta{font-size:.9em;color:#444}
"""


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _ci(ci) -> str:
    return "" if not ci else f" <span class='note'>[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]</span>"


def page(title: str, body: str) -> str:
    # The empty icon keeps browsers from asking for a favicon the folder does not have.
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n<h1>{escape(title)}</h1>\n"
        f"{body}\n</body></html>\n"
    )


def accuracy_table(acc: dict) -> str:
    rows = list(acc["per_task"].items()) + [("overall", acc["overall"])]
    out = [
        "<table><tr><th>task</th><th>pairs</th><th>ties</th><th>accuracy w/o ties [95 % CI]</th>"
        "<th>accuracy w/ ties [95 % CI]</th><th>tie ε</th></tr>"
    ]
    for name, p in rows:
        eps = "—" if p.get("tie_threshold") is None else f"{p['tie_threshold']:.4g}"
        out.append(
            f"<tr><td>{escape(name)}</td><td>{p['n']}</td><td>{p['n_ties']}</td>"
            f"<td>{_pct(p['accuracy_without_ties'])}{_ci(p['ci_without_ties'])}</td>"
            f"<td>{_pct(p['accuracy_with_ties'])}{_ci(p['ci_with_ties'])}</td><td>{eps}</td></tr>"
        )
    return "".join(out) + "</table>"


def headline_section(head: dict | None) -> str:
    if not head:
        return ""
    out = [
        f"<h2>{escape(head['benchmark'])}: its own headline metric</h2>",
        f"<p>{escape(head['metric'])}: <b>{_pct(head.get('value'))}</b></p>",
    ]
    for key in ("sections", "groups", "subsets"):
        if head.get(key):
            out.append(
                f"<table><tr><th>{key[:-1]}</th><th>accuracy</th></tr>"
                + "".join(f"<tr><td>{escape(k)}</td><td>{_pct(v)}</td></tr>" for k, v in head[key].items())
                + "</table>"
            )
    if head.get("overall") and isinstance(head["overall"], dict):
        o = head["overall"]
        out.append(f"<p>Overall with ties {_pct(o['with_ties'])}, without ties {_pct(o['without_ties'])}.</p>")
    for dim, v in (head.get("dimensions") or {}).items():
        out.append(
            f"<p>{escape(dim)}: with ties {_pct(v['with_ties'])}, without ties {_pct(v['without_ties'])}"
            f" <span class='note'>({escape(head.get('dimensions_note', ''))})</span></p>"
        )
    if head.get("macro") is not None:
        out.append(f"<p>Macro average {_pct(head['macro'])}.</p>")
    return "\n".join(out)


def published_section(comp: dict | None) -> str:
    if not comp:
        return ""
    cols = sorted({c for r in comp["rows"] for c in r["values"]})
    out = [
        f"<h2>Published results on {escape(comp['title'])}</h2>",
        "<table><tr><th>model</th><th>metric</th>"
        + "".join(f"<th>{escape(c)}</th>" for c in cols)
        + "<th>source</th></tr>",
    ]
    for r in comp["rows"]:
        out.append(
            f"<tr><td>{escape(r['model'])}</td><td>{escape(comp['metrics'].get(r['metric'], r['metric']))}</td>"
            + "".join(f"<td>{_pct(r['values'].get(c))}</td>" for c in cols)
            + f"<td>{escape(r['source'])}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def judge_section(js: dict | None) -> str:
    if not js:
        return ""
    items = [("pairs judged", str(js["n"])), ("parseable verdicts", _pct(js["parseable_share"]))]
    if "flex_valid_share" in js:
        items.append(("valid Flex critiques", _pct(js["flex_valid_share"])))
    if "position_consistency" in js:
        items += [
            ("position consistency (same verdict in both orders)", _pct(js["position_consistency"])),
            ("verdict flips when the responses swap", _pct(js["flip_rate"])),
        ]
        if "mean_p_response1_shift" in js:
            items.append(("mean |ΔP(response1)| between orders", f"{js['mean_p_response1_shift']:.3f}"))
    else:
        items.append(("position consistency", "— (score with --both-orders to measure it)"))
    return (
        "<h2>Judge</h2><table>" + "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in items) + "</table>"
    )


FIGURE_CAPTIONS = {
    "accuracy": "Accuracy with and without ties per task; whiskers are bootstrap 95 % intervals.",
    "published": "This run beside published rows measured in the same terms.",
    "tie_curve": "Three-way accuracy as the tie threshold ε grows; the red mark is the chosen ε.",
    "margins": "Margins per gold label: well separated curves mean confident, correct rankings.",
    "calibration": "Reliability of σ(margin / T) with T fitted on these pairs; ECE = expected calibration error.",
    "judge": "A judge's parseable verdicts, position consistency and verdict mix.",
}
FIGURE_CAPTIONS.update(bias.CAPTIONS)


def index_page(summary: dict, plots: dict[str, str], pairs_href: str | None) -> str:
    """index.html: provenance, tables, figures, published rows and a link to the pairs page."""
    acc = summary["accuracy"]
    cal = summary.get("calibration")
    body = [
        f"<p class='meta'>scores: {escape(str(summary.get('input')))}"
        f"<br>model: {escape(str(summary.get('model')))}"
        f"<br>benchmark: {escape(str(summary.get('benchmark') or 'not a known benchmark'))}"
        f"<br>{summary['n_labelled_pairs']} labelled pairs of {summary['n_lines']} lines</p>"
    ]
    if pairs_href:
        body.append(f"<p><a href='{escape(pairs_href)}'>The pairs it gets wrong, with their media →</a></p>")
    body += ["<h2>Accuracy</h2>", accuracy_table(acc)]
    if cal:
        body.append(
            f"<p>Calibration over {cal['n']} non-tie pairs: fitted temperature T = {cal['temperature']:.4g}, "
            f"ECE {cal['ece']:.3f} (ECE at T = 1: {cal['ece_at_t1']:.3f}).</p>"
        )
    body.append(headline_section(summary.get("headline")))
    body.append(judge_section(summary.get("judge")))
    body.append(bias.section(summary.get("bias")))
    body.append("<h2>Figures</h2>")
    body += [
        f"<figure><img src='plots/{escape(f)}' alt='{escape(name)} plot'><figcaption class='note'>"
        f"{escape(FIGURE_CAPTIONS[name])}</figcaption></figure>"
        for name, f in plots.items()
    ]
    body.append(published_section(summary.get("published")))
    body.append("<p class='note'>Every number above is in summary.json.</p>")
    return page("Reward model evaluation", "\n".join(b for b in body if b))


def _side(name: str, resp, shelf: MediaShelf, gold: bool, reward) -> str:
    reward_s = "" if reward is None else f" — reward {reward:.4g}"
    text = f"<pre>{escape(resp.text)}</pre>" if resp.text else ""
    media = "".join(shelf.html(m) for m in resp.media)
    return (
        f"<div class='side{' gold' if gold else ''}'><b>{name}</b>{reward_s}{' (preferred)' if gold else ''}"
        f"{text}{media}</div>"
    )


def pair_card(line: dict, record, shelf: MediaShelf, kind: str) -> str:
    """One pair: numbers, prompt, criteria, both responses with media, the judge's critique."""
    m = float(line["margin"])
    facts = [
        f"gold <b>{escape(line['preference'])}</b>",
        f"predicted <b>{escape(line['predicted'])}</b>",
        f"margin {m:.4g}",
    ]
    if "verdict" in line:
        facts.append(f"P(r1) {line['p_response1']:.3f} · P(r2) {line['p_response2']:.3f} · P(tie) {line['p_tie']:.3f}")
    pid = escape(str(line.get("id")))
    head = (
        f"<div class='card {kind}' id='pair-{pid}'><b>{pid}</b> "
        f"<span class='meta'>{escape(str(line.get('task')))} · {' · '.join(facts)}</span>"
    )
    if record is None:
        return head + "<p class='missing'>record not found in the input file</p></div>"
    parts = [head, f"<h4>Prompt</h4><pre>{escape(record.prompt)}</pre>"]
    parts += [shelf.html(mm) for mm in record.prompt_media]
    if record.criteria:
        parts.append(f"<h4>Criteria</h4><pre>{escape(record.criteria)}</pre>")
    parts.append(
        "<div class='sides'>"
        + _side("Response 1", record.response1, shelf, line["preference"] == "response1", line.get("reward1"))
        + _side("Response 2", record.response2, shelf, line["preference"] == "response2", line.get("reward2"))
        + "</div>"
    )
    if line.get("critique"):
        parts.append(f"<details open><summary>Critique</summary><pre>{escape(line['critique'])}</pre></details>")
    return "\n".join(parts) + "</div>"


def pairs_page(wrong: list[dict], right: list[dict], records: dict, shelf: MediaShelf, *, note: str = "") -> str:
    """pairs.html: the most confidently wrong pairs, then a random sample of right ones."""
    body = [
        f"<p class='note'>{escape(note)}</p>" if note else "",
        f"<h2>Most confidently wrong ({len(wrong)})</h2>",
        *[pair_card(x, records.get(x.get("id")), shelf, "wrong") for x in wrong],
        f"<h2>A random sample of right ones ({len(right)})</h2>",
        *[pair_card(x, records.get(x.get("id")), shelf, "right") for x in right],
    ]
    return page("Pairs: where the reward model is wrong", "\n".join(b for b in body if b))
