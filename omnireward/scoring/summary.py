"""The summary of a scores file, read line by line: pair accuracy (with and without ties, per task),
for groups best-of-N win rate and ranking agreement, for head=gaussian scores the accuracy of
confident against unconfident pairs, for head=multi scores each dimension's accuracy, and for
ensemble scores (lines with `ensemble`) the members' spread and each member's accuracy."""

from __future__ import annotations

from collections.abc import Iterable

from omnireward.metrics import LABEL_SIGN, kendall_tau_b, summarize


def summarize_lines(lines: Iterable[dict]) -> dict:
    """Pairs: n, accuracies, tie ε, per task (labelled pair lines only). Groups (when any): see
    `GroupStats.summary`. `n_scored` counts every line. Only numbers are kept, not the lines."""
    margins, labels, tasks = [], [], []
    task_names: dict[str, str] = {}
    groups = GroupStats()
    uncertainty = UncertaintyStats()
    dimensions = DimensionStats()
    ensemble = EnsembleStats()
    n = 0
    for x in lines:
        n += 1
        if isinstance(x.get("ensemble"), dict):
            ensemble.add(x)
        if "rewards" in x:
            groups.add(x)
            continue
        if x.get("preference") is not None and "margin" in x:
            margins.append(x["margin"])
            labels.append(x["preference"])
            t = x.get("task")
            tasks.append(task_names.setdefault(t, t) if t is not None else None)
            if "reward1_std" in x:
                uncertainty.add(x)
        if "preference_dimensions" in x and "dimensions1" in x:
            dimensions.add(x)
    s = summarize(margins, labels, tasks)
    s["n_scored"] = n
    if uncertainty.rows:
        s["uncertainty"] = uncertainty.summary()
    if dimensions.margins:
        s["dimensions"] = dimensions.summary()
    if ensemble.k:
        s["ensemble"] = ensemble.summary()
    if groups.n:
        s["groups"] = groups.summary()
    return s


class UncertaintyStats:
    """Labelled non-tie pair lines with reward1_std / reward2_std (head=gaussian): accuracy on the
    half of the pairs the model is surest of (smallest combined std √(std1² + std2²)) against the
    other half. The split is by the pair's uncertainty alone, not by its margin."""

    def __init__(self):
        self.rows: list[tuple[float, bool]] = []  # (combined std, ranked right)

    def add(self, line: dict) -> None:
        y = LABEL_SIGN[line["preference"]]
        if y == 0:
            return
        std = (line["reward1_std"] ** 2 + line["reward2_std"] ** 2) ** 0.5
        self.rows.append((std, (line["margin"] > 0) == (y > 0) and line["margin"] != 0))

    def summary(self) -> dict:
        rows = sorted(self.rows, key=lambda r: r[0])
        half = (len(rows) + 1) // 2
        confident, unconfident = rows[:half], rows[half:]

        def part(rs):
            return {
                "n": len(rs),
                "accuracy_without_ties": sum(r[1] for r in rs) / len(rs) if rs else None,
                "mean_combined_std": sum(r[0] for r in rs) / len(rs) if rs else None,
            }

        return {
            "split": "median of the pair's combined std sqrt(reward1_std^2 + reward2_std^2)",
            "threshold": rows[half - 1][0],
            "confident": part(confident),
            "unconfident": part(unconfident),
        }


class EnsembleStats:
    """Lines of an ensemble (`scoring/ensemble.py`): the rule, the number of members, the mean
    standard deviation of the members' normalised rewards over every response (and over the
    labelled pairs the combined margin ranks right against those it ranks wrong), and each
    member's own accuracy without ties on the labelled pairs."""

    def __init__(self):
        self.k = 0
        self.rule = self.lam = None
        self.std_sum, self.n_responses = 0.0, 0
        self.pair_std = {True: [], False: []}
        self.member_right: list[int] = []
        self.n_pairs = 0

    def add(self, line: dict) -> None:
        e = line["ensemble"]
        stds = e["std"] if isinstance(e["std"], list) else [e["std"]]
        members = e["members"] if isinstance(e["std"], list) else [e["members"]]
        if not members or not members[0]:
            return
        self.k = self.k or len(members[0])
        self.rule, self.lam = e.get("rule"), e.get("lambda")
        self.std_sum += sum(stds)
        self.n_responses += len(stds)
        y = LABEL_SIGN.get(line.get("preference")) if "margin" in line and len(members) == 2 else None
        if not y:
            return
        margin = line["margin"]
        self.pair_std[(margin > 0) == (y > 0) and margin != 0].append(sum(stds) / 2)
        self.n_pairs += 1
        if len(self.member_right) < len(members[0]):
            self.member_right += [0] * (len(members[0]) - len(self.member_right))
        for j, (a, b) in enumerate(zip(members[0], members[1])):
            self.member_right[j] += int((a - b > 0) == (y > 0) and a != b)

    def summary(self) -> dict:
        def mean(v):
            return sum(v) / len(v) if v else None

        return {
            "k": self.k,
            "rule": self.rule,
            "lambda": self.lam,
            "n_responses": self.n_responses,
            "mean_std": self.std_sum / self.n_responses if self.n_responses else None,
            "n_pairs": self.n_pairs,
            "mean_std_ranked_right": mean(self.pair_std[True]),
            "mean_std_ranked_wrong": mean(self.pair_std[False]),
            "member_accuracy": [r / self.n_pairs for r in self.member_right] if self.n_pairs else None,
        }


class DimensionStats:
    """Pair lines with per-dimension rewards (head=multi) and per-dimension gold labels: each
    dimension's accuracy with and without ties, from dimensions1[d] - dimensions2[d]."""

    def __init__(self):
        self.margins: dict[str, list[float]] = {}
        self.labels: dict[str, list[str]] = {}

    def add(self, line: dict) -> None:
        for name, label in line["preference_dimensions"].items():
            if name in line["dimensions1"] and name in line["dimensions2"]:
                self.margins.setdefault(name, []).append(line["dimensions1"][name] - line["dimensions2"][name])
                self.labels.setdefault(name, []).append(label)

    def summary(self) -> dict:
        return {name: summarize(self.margins[name], self.labels[name]) for name in sorted(self.margins)}


class GroupStats:
    """Group lines: predicted `best`/`rewards` against `gold_best` and `gold_ranking`."""

    def __init__(self):
        self.n = 0
        self.n_best = self.wins = 0
        self.chance = 0.0
        self.n_ranked = 0
        self.pairs_right = self.pairs_total = 0
        self.tau_sum = 0.0
        self.n_tau = 0

    def add(self, line: dict) -> None:
        self.n += 1
        rewards = line["rewards"]
        gold = line.get("gold_best")
        if gold is not None:
            self.n_best += 1
            self.wins += int(line["best"] == gold)
            self.chance += 1 / len(rewards)
        ranking = line.get("gold_ranking")
        if ranking:
            self.n_ranked += 1
            for a in range(len(ranking)):
                for b in range(a + 1, len(ranking)):
                    self.pairs_total += 1
                    self.pairs_right += int(rewards[ranking[a]] > rewards[ranking[b]])
            position = {idx: -k for k, idx in enumerate(ranking)}  # higher is better
            tau = kendall_tau_b([position[i] for i in range(len(rewards))], rewards)
            if tau is not None:
                self.tau_sum += tau
                self.n_tau += 1

    def summary(self) -> dict:
        """n; with a gold best: best_of_n_win_rate (the top-rewarded response is the gold best) and
        its chance level (mean 1/N); with a gold ranking: ranking_pair_accuracy (gold-ordered pairs
        whose rewards agree, equal rewards wrong) and mean Kendall τ-b."""
        out: dict = {"n": self.n, "n_with_best": self.n_best}
        if self.n_best:
            out["best_of_n_win_rate"] = self.wins / self.n_best
            out["best_of_n_chance"] = self.chance / self.n_best
        out["n_with_ranking"] = self.n_ranked
        if self.n_ranked:
            out["ranking_pair_accuracy"] = self.pairs_right / self.pairs_total
            out["ranking_kendall_tau"] = self.tau_sum / self.n_tau if self.n_tau else None
        return out
