"""VideoAttentionTarget: tracks in the real layout, every quirk, the protocol, main.py."""
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from gazefollow.engine.samples import BadInput
from gazefollow.following import metrics
from gazefollow.following.data.build import build_datasets
from gazefollow.following.data.synthetic_layouts import write_vat_world
from gazefollow.following.data.vat import read_vat, smooth_track
from main import main
from tests.conftest import TINY, tiny_config

W, H = 160, 120


def _track(root, split, show, clip, rows, person="s00"):
    frames = root / "images" / show / clip
    frames.mkdir(parents=True, exist_ok=True)
    for row in rows:
        name = row.split(",")[0]
        if name != "missing.jpg" and not (frames / name).exists():
            Image.new("RGB", (W, H), (90, 120, 150)).save(frames / name)
    file = root / "annotations" / split / show / clip / f"{person}.txt"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("\n".join(rows) + "\n")
    return file


@pytest.fixture()
def vat_root(tmp_path):
    """A train track of 14 frames whose boxes move, with every quirk; a clean test track."""
    root = tmp_path / "vat"
    rows = [f"{i:08d}.jpg,{10 + i},{20 + i},{40 + i},{50 + i},80,60" for i in range(14)]
    rows[3] = "00000003.jpg,13,23,43,53,-1,-1"  # out of frame
    rows[4] = "00000004.jpg,14,24,44,54,-1,70"  # half-negative: clamped, in frame
    rows[5] = "00000005.jpg,45,25,15,55,80,60"  # swapped x: fixed by the dataset
    rows[6] = "00000006.jpg,150,100,200,140,80,60"  # runs outside the image: clamped
    _track(root, "train", "showA", "clip1", rows)
    _track(root, "train", "showB", "clip1", [f"{i:08d}.jpg,30,30,60,60,100,20" for i in range(4)])
    _track(root, "test", "showC", "clip9", ["00000000.jpg,30,30,60,60,100,20",
                                            "00000001.jpg,30,30,60,60,-1,-1"])
    return root


def test_smoothing_is_the_11_frame_edge_padded_moving_average():
    values = np.arange(14, dtype=float)[:, None] ** 2
    smoothed = smooth_track(values)
    assert smoothed[7, 0] == pytest.approx(np.mean(np.arange(2, 13) ** 2))
    padded = [0] * 5 + list(range(6))  # frame 0: five copies of the first frame, then 0..5
    assert smoothed[0, 0] == pytest.approx(np.mean(np.array(padded) ** 2))
    assert smoothed.shape == values.shape


def test_reader_applies_every_quirk(vat_root):
    instances, report = read_vat(vat_root / "annotations" / "train")
    track = [i for i in instances if "showA" in i.path]
    assert len(track) == 14 and track[0].path == "images/showA/clip1/00000000.jpg"
    assert track[3].inout == 0 and len(track[3].gaze_points) == 0
    assert track[4].inout == 1 and track[4].gaze_points.tolist() == [[0.0, 70.0]]
    assert report.fixed["half-negative gaze point clamped to 0"] == 1
    raw = np.array([[10 + i, 20 + i, 40 + i, 50 + i] for i in range(14)], dtype=float)
    raw[5], raw[6] = [45, 25, 15, 55], [150, 100, 200, 140]
    assert np.allclose(track[7].head_box, raw[2:13].mean(axis=0))  # frames 2..12
    assert track[7].rows == [f"{vat_root / 'annotations/train/showA/clip1/s00.txt'}:8"]


def test_stride_keeps_every_kth_frame_after_smoothing(vat_root):
    full, _ = read_vat(vat_root / "annotations" / "train")
    strided, _ = read_vat(vat_root / "annotations" / "train", frame_stride=3)
    by_path = {i.path: i for i in full}
    assert [i.path[-6:] for i in strided if "showA" in i.path] == \
        ["00.jpg", "03.jpg", "06.jpg", "09.jpg", "12.jpg"]
    assert all(np.allclose(i.head_box, by_path[i.path].head_box) for i in strided)


def test_dataset_normalises_pixels_and_fixes_boxes(vat_root, tmp_path):
    config = tiny_config(tmp_path, "data.source_dataset=videoattentiontarget",
                         f"data.dataset_dir={vat_root}", "data.val_fraction=0.5")
    datasets = build_datasets(config, log=lambda *_: None)
    test = datasets["test"]
    sample = test[0]
    assert sample["gaze_points"][0].tolist() == pytest.approx([100 / W, 20 / H])
    assert test[1]["inout"] == 0 and test[1]["heatmap"].max() == 0
    train_paths = {i.path.split("/")[1] for i in datasets["train"].instances}
    val_paths = {i.path.split("/")[1] for i in datasets["val"].instances}
    assert train_paths.isdisjoint(val_paths)  # whole shows are held out
    everything = datasets["train"].instances + datasets["val"].instances
    swapped = next(i for i in everything if i.path.endswith("showA/clip1/00000005.jpg"))
    x0, y0, x1, y1 = datasets["train"]._pixel_annotation(swapped, W, H)[0]
    assert x0 < x1 and y0 < y1 and x1 <= W - 1 and y1 <= H - 1


BAD_ROWS = {
    "wrong column count": "00000020.jpg,1,2,3,4,5",
    "non-numeric field": "00000021.jpg,1,2,3,four,5,6",
    "NaN or infinite value": "00000022.jpg,1,2,30,40,nan,6",
    "impossible head box": "00000023.jpg,10,20,10,40,5,6",
}


@pytest.mark.parametrize("reason", sorted(BAD_ROWS))
def test_bad_rows_named_in_strict_counted_in_skip(vat_root, reason):
    rows = ["00000000.jpg,10,10,40,40,80,60", BAD_ROWS[reason], "00000002.jpg,10,10,40,40,80,60"]
    file = _track(vat_root, "train", "showZ", "clipZ", rows)
    with pytest.raises(BadInput, match=f"{file}, row 2: {reason}"):
        read_vat(vat_root / "annotations" / "train")
    instances, report = read_vat(vat_root / "annotations" / "train", policy="skip")
    assert report.skipped[reason] == 1 and reason in report.summary()
    assert sum("showZ" in i.path for i in instances) == 2


def test_missing_and_corrupt_frames(vat_root, tmp_path):
    _track(vat_root, "test", "showC", "clip8", ["00000000.jpg,30,30,60,60,100,20",
                                                "missing.jpg,30,30,60,60,100,20"])
    # truncated: its header reads at load time, decoding it fails when the sample is read
    frame = vat_root / "images/showC/clip8/00000000.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(noise).save(frame)
    frame.write_bytes(frame.read_bytes()[:frame.stat().st_size // 2])
    strict = tiny_config(tmp_path, "data.source_dataset=videoattentiontarget",
                         f"data.dataset_dir={vat_root}")
    with pytest.raises(BadInput, match="missing image.*clip8/missing.jpg"):
        build_datasets(strict, splits=("test",), log=lambda *_: None)
    skip = tiny_config(tmp_path, "data.source_dataset=videoattentiontarget",
                       f"data.dataset_dir={vat_root}", "data.on_bad_input=skip")
    lines = []
    test = build_datasets(skip, splits=("test",), log=lines.append)["test"]
    assert "SKIPPED 1 x missing image" in "\n".join(lines)
    corrupt = [k for k, i in enumerate(test.instances) if "clip8" in i.path]
    assert "cannot read image" in test[corrupt[0]]["bad_input"]


def test_vat_target_is_the_truncated_19x19_square():
    target = metrics.vat_target([0.5, 0.5])  # 32.0 px: columns int(23.0)..int(42.0) - 1
    assert target.sum() == 19 * 19 and target[23, 23] and target[41, 41] and not target[42, 42]
    corner = metrics.vat_target([0.05, 0.0])  # x 3.2 px: cols 0..int(13.2)-1; y 0: rows 0..9
    assert corner.sum() == 13 * 10 and corner[9, 12] and not corner[10, 0] and not corner[0, 13]


def test_vat_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    for case in range(40):
        heatmap = rng.random((64, 64))
        if case % 4 == 0:
            heatmap = np.round(heatmap * 3) / 3  # many ties
        if case % 10 == 1:
            heatmap[:] = 0.5  # flat
        point = rng.random(2) if case % 5 else np.array([1.0, 0.0])  # border point
        target = metrics.vat_target(point)
        expected = roc_auc_score(target.ravel(), heatmap.ravel())
        assert metrics.vat_auc(heatmap, point) == pytest.approx(expected, abs=1e-12)
    assert metrics.vat_l2([0.25, 0.5], [0.25, 0.0]) == pytest.approx(0.5)


def test_vat_layout_trains_and_evaluates_through_main(tmp_path):
    config = tiny_config(tmp_path, "synthetic.num_test=20")  # 5 clips, one out of frame
    root = write_vat_world(config.synthetic, tmp_path / "vat_world", frames_per_clip=4,
                           clips_per_show=2)
    results = main(["--experiment", str(TINY), "--source_dataset", "videoattentiontarget",
                    "--source_dataset_dir", str(root), f"run.output_dir={tmp_path}",
                    "--max_steps", "2", "data.frame_stride=2", "data.augment=true"])
    info = results["info"]
    assert info["protocol"] == "vat" and info["inout_ap_split"] == "test"
    assert set(results["model"]) == {"auc", "l2", "inout_ap"}
    assert 0 <= results["model"]["auc"] <= 1 and 0 <= results["model"]["inout_ap"] <= 1
