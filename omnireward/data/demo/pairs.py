"""Shared machinery of the demo builders: judgements, split plans, source pools, label balancing, package media.

Held-out means unseen: the `test` split draws its media and topics from sources the `train` split
never shows (other photos, clips, meshes, question families); `val` draws new crops, windows and
fillers of the training sources, so it picks the best epoch on the training distribution while
`test` measures how far the model carries what it learned.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from omnireward.data.records import Media, Pair, Response
from omnireward.errors import ConfigError, DependencyError

DEFAULT_TRAIN_PAIRS = 300
# What installs every package the demo media come from (pyvista only for its example files: --no-deps).
INSTALL_HINT = "pip install 'omnireward[demo]' && pip install --no-deps pyvista"
FLIP = "criteria_flip"  # the rule whose units are twins: two records over the same two responses
UNSEEN_SPLITS = ("test",)  # splits drawn from the sources train never shows


def unseen(split: str) -> bool:
    """Whether a split draws from the unseen source pool (test) or the training sources (train, val)."""
    return split in UNSEEN_SPLITS


@dataclass
class Choice:
    """One judgement: `good` beats `bad` for this prompt (and criteria, when given)."""

    task: str
    prompt: str
    good: Response
    bad: Response
    rule: str
    criteria: str | None = None
    prompt_media: list[Media] = field(default_factory=list)
    detail: dict = field(default_factory=dict)


@dataclass
class Ctx:
    out: Path
    modality: str
    split: str
    rng: np.random.Generator
    _names: set = field(default_factory=set)

    @property
    def unseen(self) -> bool:
        """This split draws from the sources the training split never shows."""
        return unseen(self.split)

    def new_media(self, ext: str) -> tuple[Path, str]:
        """A fresh (absolute path, path relative to the JSONL folder) under media/<modality>/<split>/."""
        # Random names: numbered files would leak which response was made first (the better one).
        while True:
            name = f"{int(self.rng.integers(2**40)):010x}{ext}"
            if name not in self._names:
                break
        self._names.add(name)
        rel = f"media/{self.modality}/{self.split}/{name}"
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, rel

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def maybe(self, options: list[str], p: float = 0.3) -> str | None:
        """One of the rule's own criteria on a share `p` of the pairs, so sets mix criteria and none."""
        return self.pick(options) if self.rng.random() < p else None


def split_sizes(n_pairs: int | None) -> dict[str, int]:
    """Train gets `n_pairs`; val and test a fifth of it each (at least 10)."""
    n = DEFAULT_TRAIN_PAIRS if n_pairs is None else int(n_pairs)
    if n < 4:
        raise ConfigError(f"n_pairs must be at least 4, got {n}", field="n_pairs")
    held = max(10, n // 5)
    return {"train": n, "val": held, "test": held}


def _allocate(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Split `n` by `shares` with largest remainders, so the counts add up to exactly `n`."""
    raw = {r: n * s / sum(shares.values()) for r, s in shares.items()}
    counts = {r: int(v) for r, v in raw.items()}
    for r in sorted(raw, key=lambda r: raw[r] - counts[r], reverse=True)[: n - sum(counts.values())]:
        counts[r] += 1
    return counts


def plan(n: int, shares: dict[str, float], rng: np.random.Generator) -> list[str]:
    """Unit rules whose records add up to `n`; a FLIP unit yields two records, and every set has one."""
    counts = _allocate(n, shares)
    if FLIP in counts:
        flips = min(n - n % 2, max(2, counts[FLIP] - counts[FLIP] % 2))
        counts = {**_allocate(n - flips, {r: s for r, s in shares.items() if r != FLIP}), FLIP: flips // 2}
    units = [r for r, c in counts.items() for _ in range(c)]
    rng.shuffle(units)
    return units


def assemble(units: list[list[Choice]], rng: np.random.Generator, prefix: str) -> list[Pair]:
    """Pairs with the better side balanced between response1 and response2."""
    n_single = sum(len(u) == 1 for u in units)
    first_good = iter(rng.permutation(np.arange(n_single) % 2 == 0))
    pairs = []
    for unit in units:
        head = unit[0]
        swap = not next(first_good) if len(unit) == 1 else bool(rng.random() < 0.5)
        r1, r2 = (head.bad, head.good) if swap else (head.good, head.bad)
        for c in unit:
            meta = {"rule": c.rule, **c.detail}
            pairs.append(
                Pair(
                    id=f"{prefix}-{len(pairs):05d}",
                    task=c.task,
                    prompt=c.prompt,
                    response1=r1,
                    response2=r2,
                    preference="response1" if c.good is r1 else "response2",
                    criteria=c.criteria,
                    prompt_media=list(c.prompt_media),
                    meta=meta,
                )
            )
    return pairs


def twin(base: Choice, criteria_good: str, criteria_bad: str) -> list[Choice]:
    """The same two responses judged under two opposite criteria."""
    a = Choice(**{**base.__dict__, "criteria": criteria_good})
    b = Choice(**{**base.__dict__, "criteria": criteria_bad, "good": base.bad, "bad": base.good})
    return [a, b]


# How a flip twin's criteria are worded (`meta.wording`): in one of the rule's own phrasings, which
# train and val use, or in a paraphrase that only the unseen split (test) uses, as a user would write it.
TRAINED, PARAPHRASE = "trained", "paraphrase"


def wording(ctx: Ctx, trained: list[str], paraphrases: list[str]) -> tuple[str, str]:
    """A criterion (or template) for a flip twin, and how it is worded.

    Train and val pick one of the `trained` phrasings. The unseen split picks from both lists with
    equal chances for the two wordings, so its figures can be read per wording. Either way this is
    one draw of the split's generator: the records that follow are the same ones in every build.
    """
    if not ctx.unseen or not paraphrases:
        return ctx.pick(trained), TRAINED
    options = [(c, TRAINED) for c in trained] * len(paraphrases) + [(c, PARAPHRASE) for c in paraphrases] * len(trained)
    return ctx.pick(options)


def worded_twin(
    ctx: Ctx, base: Choice, criteria: dict[str, list[str]], paraphrases: dict[str, list[str]], good: str, bad: str
) -> list[Choice]:
    """`twin` under criteria[good] and criteria[bad] (or, in the unseen split, both in paraphrase for half
    the twins), with `meta.wording` saying which."""
    first, how = wording(ctx, criteria[good], paraphrases.get(good, []))
    second = ctx.pick(criteria[bad] if how == TRAINED else paraphrases[bad])
    return twin(Choice(**{**base.__dict__, "detail": {**base.detail, "wording": how}}), first, second)


def held_out(items: list, split: str) -> list:
    """The items of a split: every 10th item goes to val, the next to test, the rest to train.

    A split that comes out empty is refused: falling back to every item would put training items
    into val or test."""
    keep = [x for i, x in enumerate(items) if _split_of_index(i) == split]
    if not keep:
        raise ConfigError(
            f"{len(items)} items leave the {split} split empty (every 10th goes to val, the "
            "next to test): give the demo more items"
        )
    return keep


def _split_of_index(i: int) -> str:
    return "val" if i % 10 == 0 else "test" if i % 10 == 1 else "train"


def split_of(key: str) -> str:
    """The split of a generated item, by a stable hash of its key (one in ten each to val and test)."""
    return _split_of_index(zlib.crc32(key.encode()))


def package_file(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            f"the demo needs the package {package!r} for its media; install the demo "
            f"extra and pyvista's example files: {INSTALL_HINT}"
        )
    path = Path(list(spec.submodule_search_locations)[0], *parts)
    if not path.is_file():
        raise DependencyError(f"{path} is missing from the installed {package!r} package")
    return path
