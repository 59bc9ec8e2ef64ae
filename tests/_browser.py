"""Open report pages in headless Chromium (Debian's `chromium`) and read back what loaded.

The report is served from 127.0.0.1 by a small HTTP server that records every request and its
status; a harness page on the same origin loads a report page in an iframe, waits for its media,
and writes what it found (images with their natural width, plots, players' errors) into the DOM,
which `chromium --dump-dom` prints. Console messages come from Chromium's own log on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HARNESS = "__harness.html"
HARNESS_HTML = """<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body>
<pre id="out">pending</pre>
<iframe id="f" style="width:1200px;height:900px"></iframe>
<script>
const page = new URLSearchParams(location.search).get("page");
const f = document.getElementById("f");
function media(el) {
  return new Promise(done => {
    if (el.readyState >= 1 || el.error) return done();
    el.addEventListener("loadedmetadata", done, {once: true});
    el.addEventListener("error", done, {once: true});
    el.load();
  });
}
f.onload = async () => {
  const d = f.contentDocument;
  const players = [...d.querySelectorAll("video, audio")];
  await Promise.race([Promise.all(players.map(media)), new Promise(r => setTimeout(r, 15000))]);
  const out = {
    title: d.title,
    images: [...d.images].map(i => ({src: i.getAttribute("src"), complete: i.complete, width: i.naturalWidth})),
    players: players.map(p => ({tag: p.tagName.toLowerCase(), src: p.getAttribute("src"), ready: p.readyState,
                                error: p.error ? p.error.code : null, duration: p.duration})),
    links: [...d.querySelectorAll("a[href]")].map(a => a.getAttribute("href")),
    text: d.body.innerText.length,
  };
  document.getElementById("out").textContent = JSON.stringify(out);
};
f.src = page;
</script></body></html>"""


def find_chromium() -> str | None:
    """A Chromium or Chrome binary on PATH ($CHROMIUM first), or None."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, log: list, **kwargs):
        self._log = log
        super().__init__(*args, **kwargs)

    def log_request(self, code="-", size="-"):
        self._log.append((self.path, int(code) if str(code).isdigit() else code))

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """Serve `folder` on 127.0.0.1 (a free port); yields (base_url, request_log)."""
    log: list = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(folder), log=log))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()


def _run(chromium: str, args: list[str], profile: Path, timeout: int = 90) -> subprocess.CompletedProcess:
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--mute-audio",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


CONSOLE = re.compile(r"CONSOLE\(\d+\)\]? ?\"?(.*)")


def open_page(chromium: str, folder: Path, page: str, profile: Path, screenshot: Path | None = None) -> dict:
    """Load `page` of the report in `folder`; returns the harness findings plus `requests` (path,
    status), `console` (messages Chromium logged) and, when asked, writes a screenshot."""
    (folder / HARNESS).write_text(HARNESS_HTML)
    try:
        with serve(folder) as (base, log):
            res = _run(
                chromium, ["--virtual-time-budget=30000", "--dump-dom", f"{base}/{HARNESS}?page={page}"], profile
            )
            if screenshot is not None:
                _run(
                    chromium,
                    ["--window-size=1280,1600", "--hide-scrollbars", f"--screenshot={screenshot}", f"{base}/{page}"],
                    profile,
                )
            requests = list(log)
    finally:
        (folder / HARNESS).unlink()
    m = re.search(r'<pre id="out">(.*?)</pre>', res.stdout, re.S)
    found = json.loads(_unescape(m.group(1))) if m and m.group(1) != "pending" else None
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line]
    return {"found": found, "requests": requests, "console": console, "stderr": res.stderr[-3000:]}


def _unescape(s: str) -> str:
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
