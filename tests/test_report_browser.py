"""The report in a real browser: headless Chromium opens index.html and pairs.html from a
loopback server; every image decodes (naturalWidth > 0, no broken-image icons), the plots are
there, the players load their clips and sounds, nothing 404s and the console stays silent.
Skipped only when no Chromium is installed (`.ci/run` installs Debian's `chromium`)."""

import pytest
from _browser import find_chromium, open_page
from _report_data import media_set
from PIL import Image

from omnireward.report.build import write_report

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    _, scores = media_set(folder, n=25, judge=False)
    return write_report(scores, folder / "report", n_boot=100).parent, folder


def _check(found, requests, console):
    assert found is not None, "the harness did not report back"
    assert found["images"], "no images on the page"
    broken = [i for i in found["images"] if not i["complete"] or i["width"] == 0]
    assert broken == []
    failed = [(p, code) for p, code in requests if not isinstance(code, int) or code >= 400]
    assert failed == []
    assert console == []


def test_index_shows_every_plot_and_no_errors(report):
    out, folder = report
    res = open_page(CHROMIUM, out, "index.html", folder / "profile", screenshot=folder / "index.png")
    _check(res["found"], res["requests"], res["console"])
    plots = sorted(i["src"] for i in res["found"]["images"] if i["src"].startswith("plots/"))
    assert plots == sorted(f"plots/{p.name}" for p in (out / "plots").glob("*.png"))
    assert len(plots) >= 4 and all(i["width"] > 300 for i in res["found"]["images"])
    assert "pairs.html" in res["found"]["links"]
    shot = Image.open(folder / "index.png").convert("L")
    assert shot.size == (1280, 1600)
    assert shot.getextrema()[0] < 100  # text and plots drawn, not a blank page


def test_pairs_page_loads_images_meshes_clips_and_sounds(report):
    out, folder = report
    res = open_page(CHROMIUM, out, "pairs.html", folder / "profile", screenshot=folder / "pairs.png")
    _check(res["found"], res["requests"], res["console"])
    srcs = {i["src"] for i in res["found"]["images"]}
    assert any("-view0.png" in s for s in srcs)  # the mesh's rendered views
    players = res["found"]["players"]
    assert {p["tag"] for p in players} == {"video", "audio"}
    for p in players:
        assert p["error"] is None and p["ready"] >= 1 and p["duration"] > 0, p


def test_the_check_sees_a_broken_image_a_missing_file_and_a_console_error(report, tmp_path):
    import shutil

    out, folder = report
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    first = sorted((bad / "plots").glob("*.png"))[0]
    first.write_bytes(b"not a png")
    (bad / "plots" / "margins.png").unlink()
    (bad / "index.html").write_text(
        (bad / "index.html").read_text().replace("</body>", "<script>console.error('boom')</script></body>")
    )
    res = open_page(CHROMIUM, bad, "index.html", tmp_path / "profile")
    widths = {i["src"]: i["width"] for i in res["found"]["images"]}
    assert widths[f"plots/{first.name}"] == 0 and widths["plots/margins.png"] == 0
    assert ("/plots/margins.png", 404) in res["requests"]
    assert len(res["console"]) == 1 and '"boom"' in res["console"][0]
    with pytest.raises(AssertionError):
        _check(res["found"], res["requests"], res["console"])
