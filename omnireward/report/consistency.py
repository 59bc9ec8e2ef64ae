"""What a generative judge's scores file says about the judge itself: position consistency
(does the verdict flip when the responses swap?) and how often it wrote a verdict that parses.

Reads the fields `omnireward score --judge` writes: `verdict`, `text_verdict` (present only
when the critique's own verdict parsed), `flex_valid` (Flex template), and with
`--both-orders` `order_agreement` and `p_response1_by_order`.
"""

from __future__ import annotations


def is_judge_line(line: dict) -> bool:
    return "verdict" in line and "p_response1" in line


def judge_stats(lines: list[dict]) -> dict | None:
    """Shares over the judged pairs; None when the file holds no judge lines."""
    judged = [x for x in lines if is_judge_line(x)]
    if not judged:
        return None
    n = len(judged)
    out = {
        "n": n,
        "parseable_share": sum("text_verdict" in x for x in judged) / n,
        "verdicts": {lab: sum(x["verdict"] == lab for x in judged) / n for lab in ("response1", "response2", "tie")},
    }
    flex = [x["flex_valid"] for x in judged if "flex_valid" in x]
    if flex:
        out["flex_valid_share"] = sum(bool(v) for v in flex) / len(flex)
    both = [x for x in judged if "order_agreement" in x]
    if both:
        out["both_orders_n"] = len(both)
        out["position_consistency"] = sum(bool(x["order_agreement"]) for x in both) / len(both)
        out["flip_rate"] = 1.0 - out["position_consistency"]
        shifts = [
            abs(x["p_response1_by_order"][0] - x["p_response1_by_order"][1])
            for x in both
            if len(x.get("p_response1_by_order") or []) == 2
        ]
        if shifts:
            # How far P(response1) moves when the same pair is shown in the other order.
            out["mean_p_response1_shift"] = sum(shifts) / len(shifts)
    return out
