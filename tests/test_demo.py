"""Demo sets: every modality builds fast, parses, decodes, is balanced and holds honest criteria flips."""

import json
import time
from collections import Counter, defaultdict
from importlib.metadata import packages_distributions
from pathlib import Path

import numpy as np
import pytest
import tomllib

from omnireward.data.demo import FLIP, audio, build_demo, build_split, image, mesh, text, video
from omnireward.data.demo.pairs import INSTALL_HINT, package_file, split_sizes
from omnireward.data.media import load_audio, load_image, load_mesh, load_mesh_trimesh, load_video
from omnireward.data.records import TASK_MODALITY, Pair, record_from_dict
from omnireward.errors import ConfigError, DependencyError

LOADERS = {
    "image": load_image,
    "video": lambda p: load_video(p, num_frames=4),
    "audio": load_audio,
    "mesh": lambda p: load_mesh(p, num_points=256),
}


def _read(root, split):
    lines = (root / f"{split}.jsonl").read_text().splitlines()
    return [record_from_dict(json.loads(line)) for line in lines]


def _all(root):
    return [p for split in ("train", "val", "test") for p in _read(root, split)]


def _twins(pairs):
    """Criteria-flip twins: records sharing prompt and both responses, grouped."""
    groups = defaultdict(list)
    for p in pairs:
        if p.meta["rule"] == FLIP:
            key = (p.prompt, json.dumps(p.response1.to_json()), json.dumps(p.response2.to_json()))
            groups[key].append(p)
    return list(groups.values())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each modality built once at a small size (14 train, 10 val, 10 test), with its build time."""
    cache = {}

    def get(modality, n_pairs=14):
        if (modality, n_pairs) not in cache:
            out = tmp_path_factory.mktemp(f"demo_{modality}")
            start = time.perf_counter()
            build_demo(modality, out, n_pairs=n_pairs, seed=0)
            cache[modality, n_pairs] = out, time.perf_counter() - start
        return cache[modality, n_pairs]

    return get


@pytest.mark.parametrize("modality", ["text", "image", "video", "audio", "3d"])
def test_each_modality_builds_parses_and_decodes(built, modality):
    root, seconds = built(modality)
    assert seconds < 20
    sizes = {s: len(_read(root, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 14, "val": 10, "test": 10}
    ids = set()
    for split in sizes:
        pairs = _read(root, split)
        assert all(isinstance(p, Pair) for p in pairs)
        assert {TASK_MODALITY[p.task] for p in pairs} == {modality}
        labels = Counter(p.preference for p in pairs)
        assert abs(labels["response1"] - labels["response2"]) <= 1 and not labels["tie"]
        for p in pairs:
            assert p.id not in ids
            ids.add(p.id)
            for m in p.prompt_media + p.response1.media + p.response2.media:
                assert m.path.startswith(f"media/{modality}/{split}/")
                LOADERS[m.type](root / m.path)  # decodes, or raises MediaError
            if modality != "text":
                assert p.prompt_media or (p.response1.media and p.response2.media)


@pytest.mark.parametrize("modality", ["text", "image", "video", "audio", "3d"])
def test_criteria_flip_twins_exist_and_disagree(built, modality):
    root, _ = built(modality)
    for split in ("train", "val", "test"):
        twins = _twins(_read(root, split))
        assert twins, f"{split} has no criteria-flip pair"
        for group in twins:
            assert len(group) == 2
            a, b = group
            assert a.criteria and b.criteria and a.criteria != b.criteria
            assert {a.preference, b.preference} == {"response1", "response2"}


WORDED = {"text": text, "image": image, "video": video, "audio": audio, "3d": mesh}


@pytest.mark.parametrize("modality", list(WORDED))
def test_test_split_words_half_its_flips_in_paraphrases_training_never_shows(built, modality, tmp_path):
    module = WORDED[modality]
    root, _ = built(modality, 40)
    trained = {c for v in module.CRITERIA.values() for c in v}
    paraphrased = {c for v in module.PARAPHRASES.values() for c in v}
    assert not trained & paraphrased
    seen_forms = {c.format(x="").lower() for c in trained}
    assert not {c.format(x="").lower() for c in paraphrased} & seen_forms
    for split in ("train", "val"):
        flips = [p for p in _read(root, split) if p.meta["rule"] == FLIP]
        assert flips and all(p.meta["wording"] == "trained" for p in flips)
    used = Counter()
    test = build_split(modality, tmp_path, "test", 40, seed=0)
    for group in _twins([record_from_dict(json.loads(x)) for x in test.read_text().splitlines()]):
        a, b = group
        how = a.meta["wording"]
        assert b.meta["wording"] == how  # both criteria of a twin in the same wording
        pool = trained if how == "trained" else paraphrased
        for p in group:
            assert any(_fills(c, p.criteria) for c in pool), (how, p.criteria)
        used[how] += 1
    assert used["trained"] and used["paraphrase"], used


def _fills(template: str, criteria: str) -> bool:
    """`criteria` is `template` as it stands, or with its {x} filled in."""
    head, _, tail = template.partition("{x}")
    return criteria == template or (bool(_) and criteria.startswith(head) and criteria.endswith(tail))


def _said(module, key: str) -> list[str]:
    """A flip's criteria in every wording a split may use: the rule's own, and the test split's paraphrases."""
    return module.CRITERIA[key] + module.PARAPHRASES[key]


def _winner_loser(pair, root):
    win = pair.response1 if pair.preference == "response1" else pair.response2
    lose = pair.response2 if pair.preference == "response1" else pair.response1
    return root / win.media[0].path, root / lose.media[0].path


def test_image_flips_follow_their_criteria(built):
    root, _ = built("image", 40)
    checked = Counter()
    for p in _all(root):
        if p.meta["rule"] != FLIP:
            continue
        win, lose = (np.asarray(load_image(x), dtype=float) for x in _winner_loser(p, root))
        if p.meta["flip"] == "subject":
            # an open prompt, and criteria that name one of the two subjects
            assert not any(x.subject in p.prompt for x in image.SEEN + image.UNSEEN)
            named = [x for x in image.SEEN + image.UNSEEN if p.criteria.endswith(f" {x.subject}.")]
            assert len(named) == 1, p.criteria
            assert (win != lose).any()
        elif p.meta["flip"] == "brightness":
            brighter_wins = p.criteria in _said(image, "bright")
            assert brighter_wins != (p.criteria in _said(image, "dark"))
            assert (win.mean() > lose.mean()) == brighter_wins, p.criteria
        else:
            gray_wins = p.criteria in _said(image, "gray")
            assert gray_wins != (p.criteria in _said(image, "colour"))
            is_gray = [np.abs(a[..., 0] - a[..., 2]).max() == 0 for a in (win, lose)]
            assert is_gray == [gray_wins, not gray_wins], p.criteria
        checked[p.meta["flip"]] += 1
    assert checked["brightness"] and checked["colour"] and checked["subject"]


def test_video_subject_flips_name_the_winning_clip(built):
    root, _ = built("video", 40)
    subjects = {x.name: x.subject for x in video.SEEN + video.UNSEEN}
    seen = 0
    for group in _twins([p for p in _all(root) if p.meta.get("flip") == "subject"]):
        for p in group:
            assert not any(w in p.prompt for w in subjects.values())  # an open prompt
            named = [n for n, w in subjects.items() if p.criteria.endswith(f" {w}.")]
            assert len(named) == 1, p.criteria
        a, b = group  # the two criteria name the two sources, one of them the pair's `other`, and disagree
        named_a = next(n for n, w in subjects.items() if a.criteria.endswith(f" {w}."))
        named_b = next(n for n, w in subjects.items() if b.criteria.endswith(f" {w}."))
        assert named_a != named_b and a.meta["other"] in (named_a, named_b)
        assert a.preference != b.preference
        seen += 1
    assert seen


def test_audio_flips_follow_their_criteria(built):
    root, _ = built("audio", 40)
    checked = Counter()

    def voiced_seconds(x):
        frames = x[: len(x) // 160 * 160].reshape(-1, 160)
        energy = np.sqrt((frames**2).mean(axis=1))
        return np.sum(energy > 0.1 * energy.max()) * 0.01

    def pitch_hz(x):
        # Median autocorrelation pitch over voiced 64 ms frames: espeak's -p 90 and -p 10 differ ~2x.
        found = []
        for start in range(0, len(x) - 1024, 320):
            seg = x[start : start + 1024]
            if np.sqrt(np.mean(seg**2)) < 0.3 * np.abs(x).max() / 3:
                continue
            ac = np.correlate(seg, seg, "full")[1023:]
            lo, hi = 16000 // 400, 16000 // 60
            found.append(16000 / (lo + np.argmax(ac[lo:hi])))
        return np.median(found)

    for p in _all(root):
        if p.meta["rule"] != FLIP:
            continue
        win, lose = (load_audio(x) for x in _winner_loser(p, root))
        kind = p.meta["flip"]
        first, second = {"volume": ("loud", "quiet"), "speed": ("fast", "slow"), "pitch": ("high", "low")}[kind]
        first_wins = p.criteria in _said(audio, first)
        assert first_wins != (p.criteria in _said(audio, second))
        if kind == "volume":
            assert (np.sqrt(np.mean(win**2)) > np.sqrt(np.mean(lose**2))) == first_wins, p.criteria
        elif kind == "speed":
            assert (voiced_seconds(win) < voiced_seconds(lose)) == first_wins, p.criteria
        else:
            assert (pitch_hz(win) > 1.2 * pitch_hz(lose)) == first_wins, p.criteria
        checked[kind] += 1
    assert len(checked) == 3


def test_3d_flips_follow_their_criteria(built):
    root, _ = built("3d", 40)
    checked = Counter()
    for p in _all(root):
        if p.meta["rule"] != FLIP:
            continue
        win, lose = (load_mesh_trimesh(x) for x in _winner_loser(p, root))
        if p.meta["flip"] == "object":
            # an open prompt; the criteria name the object whose mesh won (its faces are that base mesh's)
            named = [n for n, (what, v, _) in mesh._base_meshes().items() if p.criteria.endswith(f" {what}.")]
            assert len(named) == 1 and not any(m[0] in p.prompt for m in mesh._base_meshes().values())
            faces = mesh._base_meshes()[named[0]][2]
            assert np.array_equal(win.faces, faces) and not np.array_equal(lose.faces, faces)
        elif p.meta["flip"] == "height":
            tall_wins = p.criteria in _said(mesh, "tall")
            assert tall_wins != (p.criteria in _said(mesh, "flat"))
            aspect = [m.extents[2] / max(m.extents[:2]) for m in (win, lose)]
            assert (aspect[0] > aspect[1]) == tall_wins, p.criteria
        else:
            # Same faces; noise on the vertices bends neighbouring faces away from each other.
            smooth_wins = p.criteria in _said(mesh, "smooth")
            assert smooth_wins != (p.criteria in _said(mesh, "rough"))
            bend = [float(np.mean(m.face_adjacency_angles)) for m in (win, lose)]
            assert (bend[0] < bend[1]) == smooth_wins, p.criteria
        checked[p.meta["flip"]] += 1
    assert checked["height"] and checked["roughness"] and checked["object"]


# modality -> (sources train and val may show, sources only test shows)
POOLS = {
    "text": (text.SEEN_FAMILIES + ["unsafe"], text.UNSEEN_FAMILIES + ["unsafe-unseen"]),
    "image": ([x.name for x in image.SEEN], [x.name for x in image.UNSEEN]),
    "video": ([x.name for x in video.SEEN], [x.name for x in video.UNSEEN]),
    "3d": (mesh.SEEN, mesh.UNSEEN),
}


@pytest.mark.parametrize("modality", list(POOLS))
def test_test_split_shows_only_sources_train_never_shows(built, modality):
    root, _ = built(modality, 40)
    seen, unseen = POOLS[modality]
    assert not set(seen) & set(unseen)
    used = {s: Counter(x for p in _read(root, s) for x in p.meta["sources"]) for s in ("train", "val", "test")}
    assert set(used["train"]) | set(used["val"]) <= set(seen), used
    assert set(used["test"]) <= set(unseen), used
    assert len(used["train"]) >= 4 and len(used["test"]) >= 4, used  # several sources on both sides
    if modality != "text":
        # Images of the unseen photos, and clips over them, are not pixel copies of a seen photo's crops.
        assert all(x.split(":")[-1] not in {y.split(":")[-1] for y in seen} for x in used["test"])


def test_fresh_samples_of_a_pool_come_from_build_split(tmp_path):
    unseen_path = build_split("image", tmp_path, "test", 30, seed=1000)
    seen_path = build_split("image", tmp_path, "val", 30, seed=1000)
    names = {x.name for x in image.UNSEEN}
    assert all(set(json.loads(x)["meta"]["sources"]) <= names for x in unseen_path.read_text().splitlines())
    assert not any(set(json.loads(x)["meta"]["sources"]) & names for x in seen_path.read_text().splitlines())
    assert len(unseen_path.read_text().splitlines()) == 30
    with pytest.raises(ConfigError, match="split"):
        build_split("image", tmp_path, "holdout", 10)


def test_missing_media_package_names_what_installs_it(monkeypatch):
    """The install line the error prints names a real extra that holds every media package."""
    with pytest.raises(DependencyError, match=r"omnireward\[demo\]") as err:
        package_file("no_such_media_package", "x.png")
    assert "pip install --no-deps pyvista" in str(err.value)
    extra = INSTALL_HINT.split("'")[1].split("[")[1].rstrip("]")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    required = {
        r.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for r in pyproject["project"]["optional-dependencies"][extra]
    }
    modules = {w[0] for w in [x.where for x in image.SEEN + image.UNSEEN]} | {"skvideo", "av"}
    dists = packages_distributions()
    for module in modules - {"pyvista"}:  # pyvista is installed with --no-deps, as the hint says
        assert {d.lower() for d in dists[module]} & required, (module, dists[module], required)


def test_text_held_out_prompts_are_unseen_and_rules_are_mixed(built):
    root, _ = built("text", 80)
    train = {p.prompt for p in _read(root, "train")}
    for split in ("val", "test"):
        pairs = _read(root, split)
        assert not train & {p.prompt for p in pairs}
    rules = Counter(p.meta["rule"] for p in _read(root, "train"))
    assert set(rules) == {"relevance", "politeness", "safety", "helpfulness", FLIP}
    for p in _read(root, "train"):
        good = p.response1.text if p.preference == "response1" else p.response2.text
        bad = p.response2.text if p.preference == "response1" else p.response1.text
        if p.meta["rule"] == "safety":
            assert any(w in good for w in ("can't", "won't", "not able")) and good.split()[0] != "Sure!"
        if p.meta["rule"] == "helpfulness":
            assert "sorry" in bad.lower() or "can't" in bad
        if p.meta["rule"] == FLIP and p.meta["flip"] == "length":
            assert (len(good) < len(bad)) == (p.criteria in _said(text, "concise"))
        if p.meta["rule"] == FLIP and p.meta["flip"] == "format":
            assert good.startswith("- ") == (p.criteria in _said(text, "list"))


def test_omni_is_task_balanced(built):
    root, _ = built("omni", 20)
    pairs = _read(root, "train")
    assert len(pairs) == 20
    per_modality = Counter(TASK_MODALITY[p.task] for p in pairs)
    assert per_modality == {"text": 4, "image": 4, "video": 4, "audio": 4, "3d": 4}
    assert len({p.id for p in pairs}) == 20
    for p in pairs:
        for m in p.prompt_media + p.response1.media + p.response2.media:
            assert (root / m.path).is_file()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = build_demo("image", tmp_path / "a", n_pairs=6, seed=5)
    b = build_demo("image", tmp_path / "b", n_pairs=6, seed=5)
    c = build_demo("image", tmp_path / "c", n_pairs=6, seed=6)
    assert (a / "train.jsonl").read_text() == (b / "train.jsonl").read_text()
    assert (a / "train.jsonl").read_text() != (c / "train.jsonl").read_text()
    for line in (a / "train.jsonl").read_text().splitlines()[:3]:
        rel = json.loads(line)["response1"]["media"][0]["path"]
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    # Rebuilding in place replaces the media instead of piling up stale files.
    build_demo("image", tmp_path / "a", n_pairs=6, seed=7)
    referenced = {
        m.path
        for s in ("train", "val", "test")
        for p in _read(a, s)
        for m in p.prompt_media + p.response1.media + p.response2.media
    }
    on_disk = {str(f.relative_to(a)) for f in (a / "media").rglob("*") if f.is_file()}
    assert on_disk == referenced


def test_bad_arguments():
    with pytest.raises(ConfigError, match="modality"):
        build_demo("smell", "/tmp/never-written")
    with pytest.raises(ConfigError, match="n_pairs"):
        split_sizes(2)
    assert split_sizes(None) == {"train": 300, "val": 60, "test": 60}
    assert split_sizes(100) == {"train": 100, "val": 20, "test": 20}


def test_held_out_refuses_an_empty_split():
    from omnireward.data.demo.pairs import held_out
    from omnireward.errors import ConfigError

    items = list(range(25))
    assert held_out(items, "val") == [0, 10, 20] and held_out(items, "test") == [1, 11, 21]
    with pytest.raises(ConfigError, match="test split empty"):
        held_out([0], "test")  # a fallback to every item would leak the training item into test
