"""Score pairs with a generative judge (critique + verdict); group win-rates for RL loops.

The work lives in modules by job; this module keeps their public names in one place:

- `scoring.judge_infer`: the Judge (critiques, verdict probabilities, sampled judgements that
  vote, pointwise scores), Sampling, record_seed, majority;
- `scoring.judge_file`: judge_file (`omnireward score --judge`), judge_records, JudgeFactory,
  JudgeScorer;
- `scoring.judge_groups`: group_scores for RL loops, DEFAULT_WEIGHTS;
- `scoring.judge_load`: load_judge_backbone, trained_judge, template_for, JUDGES.

A judge line's `margin` is p_response1 - p_response2 (with p_response2 = 1 - p_response1 -
p_tie), so the BT summary applies unchanged: its sign is the verdict without ties, and the
tie-calibrated accuracy calls a pair a tie when |margin| <= ε.
"""

from __future__ import annotations

from omnireward.scoring.judge_file import JudgeFactory, JudgeScorer, judge_file, judge_records
from omnireward.scoring.judge_groups import DEFAULT_WEIGHTS, group_scores
from omnireward.scoring.judge_infer import LABELS3, Judge, Sampling, majority, record_seed
from omnireward.scoring.judge_load import JUDGES, load_judge_backbone, template_for, trained_judge

__all__ = [
    "DEFAULT_WEIGHTS",
    "JUDGES",
    "LABELS3",
    "Judge",
    "JudgeFactory",
    "JudgeScorer",
    "Sampling",
    "group_scores",
    "judge_file",
    "judge_records",
    "load_judge_backbone",
    "majority",
    "record_seed",
    "template_for",
    "trained_judge",
]
