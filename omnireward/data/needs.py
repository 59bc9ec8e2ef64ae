"""What a model needs from the data: one object the LightningModule hands the datamodule.

The module says how its batches are collated, which records it trains on (a reward model also
trains on rankings and per-dimension labels; a judge on labelled pairs only), and what every
training and validation record must carry (a margin for a margin loss; per-dimension labels that
name a dimension of the head). The datamodule checks the data against it after reading, naming the
file and line of the first record that falls short, before a step is taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omnireward.data.records import Pair, Record


def is_labelled_pair(record: Record) -> bool:
    """What training reads unless the module says otherwise: pairs with an overall label."""
    return isinstance(record, Pair) and record.preference is not None


@dataclass(frozen=True)
class DataNeeds:
    """`collate` turns a list of records into the module's batch; `trains_on` picks the records it
    trains on; `margins`, when set, is why every record needs a `margin` (shown in the error);
    `dimensions` are the head's dimensions, which per-dimension labels must name (empty: unchecked)."""

    collate: Callable[[list[Record]], Any]
    trains_on: Callable[[Record], bool] = is_labelled_pair
    margins: str | None = None
    dimensions: tuple[str, ...] = ()
