"""Media of the shown pairs, copied into the report folder and rendered as HTML the browser plays.

Files are copied (never linked to their original place) under `media/` with relative links, so
the report folder can be zipped and shared. Images the browser cannot show (e.g. TIFF) are
converted to PNG; meshes are rendered to a turntable of views with the project's software
rasteriser; video the browser cannot decode is shown as a still of its middle frame with a link.
How a file is shown is its media kind's `view` (omnireward/data/kinds.py); a kind with a `preview`
is shown as that picture beside a link, and a kind with neither as a link.
"""

from __future__ import annotations

import hashlib
import shutil
from html import escape
from pathlib import Path

from omnireward.data import kinds
from omnireward.data.records import Media

BROWSER_IMAGE = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".avif", ".svg"}
BROWSER_AUDIO = {".wav", ".mp3", ".ogg", ".oga", ".flac", ".m4a", ".aac", ".opus", ".webm"}
BROWSER_VIDEO = {".mp4", ".webm", ".ogv", ".m4v"}
MESH_VIEWS = 4
MESH_VIEW_SIZE = 192


class MediaShelf:
    """Copies media into `root/media/` once each and returns the HTML that shows them."""

    def __init__(self, root: str | Path, folder: str = "media"):
        self.root = Path(root)
        self.folder = folder
        self._done: dict[str, str] = {}

    def _name(self, path: Path, suffix: str | None = None) -> str:
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        return f"{self.folder}/{digest}-{path.stem[:40]}{suffix or path.suffix.lower()}"

    def _target(self, rel: str) -> Path:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def copy(self, path: Path) -> str:
        """The report-relative path of a copy of `path`."""
        key = f"copy:{path}"
        if key not in self._done:
            rel = self._name(path)
            shutil.copyfile(path, self._target(rel))
            self._done[key] = rel
        return self._done[key]

    def image_png(self, path: Path) -> str:
        key = f"png:{path}"
        if key not in self._done:
            from PIL import Image

            rel = self._name(path, ".png")
            with Image.open(path) as im:
                im.convert("RGB").save(self._target(rel))
            self._done[key] = rel
        return self._done[key]

    def preview_png(self, path: Path, kind) -> str:
        """A kind's own picture of the file (its `preview`), saved as PNG."""
        key = f"preview:{path}"
        if key not in self._done:
            rel = self._name(path, "-preview.png")
            kind.preview(path).convert("RGB").save(self._target(rel))
            self._done[key] = rel
        return self._done[key]

    def mesh_views(self, path: Path) -> list[str]:
        key = f"mesh:{path}"
        if key not in self._done:
            # deferred: numpy and PIL load only when a mesh is rendered
            from omnireward.data.render import render_views

            rels = []
            for k, view in enumerate(render_views(path, n_views=MESH_VIEWS, size=MESH_VIEW_SIZE)):
                rel = self._name(path, f"-view{k}.png")
                view.save(self._target(rel))
                rels.append(rel)
            self._done[key] = "|".join(rels)
        return self._done[key].split("|")

    def video_still(self, path: Path) -> str:
        key = f"still:{path}"
        if key not in self._done:
            from PIL import Image

            # deferred: numpy loads only when a video is read
            from omnireward.data.video_io import VideoFile

            vr = VideoFile(str(path))
            rel = self._name(path, "-still.png")
            Image.fromarray(vr.frames([len(vr) // 2])[0]).save(self._target(rel))
            self._done[key] = rel
        return self._done[key]

    def html(self, media: Media) -> str:
        """HTML for one media item; a missing or unreadable file becomes a visible note, not a broken link."""
        path = Path(media.path)
        if not path.is_file():
            return f'<p class="missing">missing {escape(media.type)}: {escape(str(path))}</p>'
        suffix = path.suffix.lower()
        kind = kinds.get(media.type)
        view = kind.view if kind is not None else "link"
        try:
            if kind is not None and kind.preview is not None:
                return (
                    f'<img class="media" src="{escape(self.preview_png(path, kind))}" alt="{escape(path.name)}">'
                    f'<br><a href="{escape(self.copy(path))}">{escape(path.name)}</a>'
                )
            if view == "image":
                rel = self.copy(path) if suffix in BROWSER_IMAGE else self.image_png(path)
                return f'<img class="media" src="{escape(rel)}" alt="{escape(path.name)}" loading="eager">'
            if view == "audio":
                if suffix in BROWSER_AUDIO:
                    return f'<audio class="media" controls preload="metadata" src="{escape(self.copy(path))}"></audio>'
                return f'<a href="{escape(self.copy(path))}">{escape(path.name)}</a> (audio)'
            if view == "video":
                if suffix in BROWSER_VIDEO:
                    return (
                        f'<video class="media" controls muted preload="metadata" '
                        f'src="{escape(self.copy(path))}"></video>'
                    )
                return (
                    f'<img class="media" src="{escape(self.video_still(path))}" alt="middle frame of '
                    f'{escape(path.name)}"><br><a href="{escape(self.copy(path))}">{escape(path.name)}</a>'
                )
            if view == "turntable":
                views = "".join(
                    f'<img class="view" src="{escape(r)}" alt="view {k} of {escape(path.name)}">'
                    for k, r in enumerate(self.mesh_views(path))
                )
                return (
                    f'<div class="turntable" title="{escape(path.name)}">{views}</div>'
                    f'<a href="{escape(self.copy(path))}">{escape(path.name)}</a>'
                )
        except Exception as err:  # a corrupt file must not stop the report; say what happened instead
            return f'<p class="missing">cannot show {escape(path.name)}: {escape(str(err).splitlines()[0])}</p>'
        return f'<a href="{escape(self.copy(path))}">{escape(path.name)}</a>'
