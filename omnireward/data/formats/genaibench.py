"""GenAI-Bench text-to-video human votes (`prompt`, `video_left`, `video_right`, `vote_type`).

`video_left` → response1, `video_right` → response2; `leftvote` → response1, `rightvote` →
response2, `tievote` and `bothbad_vote` → tie (neither is preferred; the original vote stays
in `meta.vote_type` so an evaluation can separate them). Video paths are relative to the
metadata file's folder, or to `media_root` when given.
"""

from __future__ import annotations

from omnireward.data.formats.common import Source, file_reader, record_id, req_str
from omnireward.data.records import Pair, Response
from omnireward.errors import DataFormatError

VOTES = {"leftvote": "response1", "rightvote": "response2", "tievote": "tie", "bothbad_vote": "tie"}


def convert(raw: dict, line: int | None, source: Source) -> Pair:
    """One GenAI-Bench vote as a text_to_video Pair."""
    prompt = req_str(raw, "prompt")
    vote = raw.get("vote_type")
    if vote not in VOTES:
        raise DataFormatError(f"unknown vote {vote!r} (expected one of {', '.join(VOTES)})", field="vote_type")
    left = source.media("video", raw.get("video_left"), "video_left")
    right = source.media("video", raw.get("video_right"), "video_right")
    return Pair(
        id=record_id(raw, line, source),
        task="text_to_video",
        prompt=prompt,
        response1=Response(media=[left]),
        response2=Response(media=[right]),
        preference=VOTES[vote],
        meta={"vote_type": vote},
    )


read = file_reader(convert)
