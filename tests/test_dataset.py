import numpy as np
import pytest
import torch

from gazefollow.engine.samples import BadInput
from gazefollow.following.data.build import build_datasets, split_by_image, subsample_heads
from gazefollow.following.data.gazefollow import read_annotations
from gazefollow.following.data.synthetic import TEST_FILE, TRAIN_FILE
from main import main
from tests.conftest import TINY


def _argmax_xy(heatmap):
    size = heatmap.shape[-1]
    iy, ix = np.unravel_index(int(heatmap.reshape(-1).argmax()), (size, size))
    return ix, iy


def test_sample_shapes_and_types(tiny_world):
    _, config = tiny_world
    datasets = build_datasets(config, log=lambda *_: None)
    d = config.data
    sample = datasets["train"][0]
    assert sample["image"].shape == (3, d.input_size, d.input_size)
    assert sample["head_channel"].shape == (1, d.input_size, d.input_size)
    assert sample["face"].shape == (3, d.face_size, d.face_size)
    assert sample["heatmap"].shape == (1, d.output_size, d.output_size)
    assert sample["gaze_points"].shape == (20, 2)
    assert sample["head_channel"].sum() > 0
    assert isinstance(sample["index"], int) and sample["path"].endswith(".jpg")
    assert set(datasets) == {"train", "val", "test"}


def test_heatmap_argmax_is_on_the_gaze_point(tiny_world):
    _, config = tiny_world
    dataset = build_datasets(config, splits=("train",), log=lambda *_: None)["train"]
    size = config.data.output_size
    checked = 0
    for i in range(len(dataset)):
        sample = dataset[i]
        if sample["inout"] == 0:
            assert sample["heatmap"].max() == 0  # out of frame: no target
            continue
        gx, gy = sample["gaze_points"][0].tolist()
        ix, iy = _argmax_xy(sample["heatmap"])
        assert abs(ix - gx * size) <= 0.5 + 1e-6 and abs(iy - gy * size) <= 0.5 + 1e-6
        assert sample["heatmap"].max() == pytest.approx(1.0, abs=0.05)
        checked += 1
    assert checked > 10


def test_validation_split_is_by_image_and_seeded(tiny_world):
    root, _ = tiny_world
    instances, _ = read_annotations(root / TRAIN_FILE, "train")
    train, val = split_by_image(instances, 0.25, seed=3)
    assert {i.path for i in train}.isdisjoint({i.path for i in val})
    assert len(train) + len(val) == len(instances) and len(val) == 12
    again, _ = split_by_image(instances, 0.25, seed=3)
    assert [i.path for i in again] == [i.path for i in train]


def test_subsample_keeps_whole_heads(tiny_world):
    root, config = tiny_world
    instances, _ = read_annotations(root / TEST_FILE, "test")
    subset = subsample_heads(instances, 3, seed=0)
    assert len(subset) == 3
    assert all(len(i.gaze_points) == config.synthetic.annotators for i in subset)
    assert [i.index for i in subset] == [i.index for i in subsample_heads(instances, 3, seed=0)]


def test_malformed_row_names_file_and_row(tmp_path):
    good = "a.jpg,0,0.1,0.1,0.2,0.2,0.3,0.3,0.5,0.5,10,10,20,20,1,src,meta"
    path = tmp_path / "train.txt"
    path.write_text(good + "\n" + good.replace(",1,src", ",src") + "\n")
    with pytest.raises(BadInput, match=r"train.txt, row 2: wrong column count: expected 17 "
                                       r"columns, found 16"):
        read_annotations(path, "train")
    path.write_text(good.replace("0.5,0.5", "nan,0.5") + "\n")
    with pytest.raises(BadInput, match="row 1: NaN"):
        read_annotations(path, "train")


def test_invalid_inout_rows_are_dropped_and_counted(tmp_path):
    rows = ["a.jpg,0,0.1,0.1,0.2,0.2,0.3,0.3,0.5,0.5,10,10,20,20,1,src,meta",
            "b.jpg,1,0.1,0.1,0.2,0.2,0.3,0.3,0.5,0.5,30,10,20,20,-1,src,meta",
            "c.jpg,2,0.1,0.1,0.2,0.2,0.3,0.3,0.5,0.5,30,10,20,20,1,src,meta"]
    path = tmp_path / "train.txt"
    path.write_text("\n".join(rows) + "\n")
    instances, report = read_annotations(path, "train")
    assert [i.path for i in instances] == ["a.jpg", "c.jpg"]
    assert report.fixed == {"dropped inout=-1 row": 1, "swapped head box (min > max)": 1}
    assert "fixed 1 x dropped inout=-1 row" in report.summary()


def test_missing_image_names_the_file(tiny_world):
    _, config = tiny_world
    dataset = build_datasets(config, splits=("test",), log=lambda *_: None)["test"]
    dataset.instances[0].path = "test/does_not_exist.jpg"
    with pytest.raises(BadInput, match="does_not_exist.jpg"):
        dataset[0]


def test_batches_collate(tiny_world):
    _, config = tiny_world
    dataset = build_datasets(config, splits=("test",), log=lambda *_: None)["test"]
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch["gaze_points"].shape == (3, 20, 2) and len(batch["path"]) == 3


def test_empty_head_box_names_file_and_rows(tiny_world):
    _, config = tiny_world
    dataset = build_datasets(config, splits=("test",), log=lambda *_: None)["test"]
    dataset.instances[0].head_box = np.array([500.0, 500.0, 600.0, 600.0])  # outside the image
    with pytest.raises(ValueError, match=r"000000.jpg \(annotation rows \[1, 2, 3\]\).*empty"):
        dataset[0]


def test_gazefollow_layout_trains_and_evaluates_through_main(tiny_world, tmp_path):
    root, _ = tiny_world
    results = main(["--experiment", str(TINY), "--source_dataset", "gazefollow",
                    "--source_dataset_dir", str(root), f"run.output_dir={tmp_path}",
                    "--max_steps", "2", "data.augment=true"])
    info = results["info"]
    assert info["dataset"] == "gazefollow" and info["protocol"] == "gazefollow"
    assert info["inout_ap_split"] == "val"  # the GazeFollow test split is all in frame
    assert set(results["model"]) == {"auc", "avg_l2", "min_l2", "avg_angle", "min_angle",
                                     "heatmap_ap", "inout_ap"}
