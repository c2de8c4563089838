"""GOO: a tiny pickle in the real layout loads, trains and evaluates through main.py."""
import pickle

import numpy as np
import pytest
from PIL import Image

from gazefollow.engine.samples import BadInput
from gazefollow.following.data.build import build_datasets
from gazefollow.following.data.goo import read_goo
from main import main
from tests.conftest import TINY, tiny_config


def _entry(i, folder):
    return {"filename": f"{folder}\\{i}.png", "width": 640, "height": 480,
            "ann": {"bboxes": np.zeros((1, 4)), "labels": np.zeros(1)}, "gaze_item": 0,
            "gazeIdx": 0, "gaze_cx": 100 + 40 * i, "gaze_cy": 300, "hx": 320 + i, "hy": 120,
            "seg": None, "occluded": False}


@pytest.fixture(scope="module")
def goo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("goo")
    for split, count in (("train", 12), ("test", 4)):
        (root / split).mkdir()
        for i in range(count):  # half-size images: the 640x480 basis must be rescaled
            Image.new("RGB", (320, 240), (i * 10, 80, 120)).save(root / split / f"{i}.png")
        entries = [_entry(i, split) for i in range(count)]
        (root / f"goosynth_{split}.pickle").write_bytes(pickle.dumps(entries))
    return root


def test_goo_reads_backslash_names_and_builds_head_boxes(goo_root):
    instances, report = read_goo(goo_root / "goosynth_test.pickle")
    assert [i.path for i in instances] == [f"test/{i}.png" for i in range(4)]
    assert instances[1].head_box.tolist() == [321 - 96, 120 - 72, 321 + 96, 120 + 72]
    assert np.allclose(instances[1].gaze_points, [[140 / 640, 300 / 480]])
    assert report.instances == 4 and all(i.inout == 1 for i in instances)


def test_goo_sample_scales_the_basis_to_the_image(goo_root, tmp_path):
    config = tiny_config(tmp_path, "data.source_dataset=goo", f"data.dataset_dir={goo_root}")
    sample = build_datasets(config, splits=("test",), log=lambda *_: None)["test"][1]
    assert sample["width"] == 320
    x0, y0, x1, y1 = sample["head_box"].tolist()  # normalised: the basis cancels out
    assert (x0, x1) == pytest.approx(((321 - 96) / 640, (321 + 96) / 640), abs=1e-6)
    assert (y0, y1) == pytest.approx(((120 - 72) / 480, (120 + 72) / 480), abs=1e-6)


def test_goo_bad_entry_is_named(tmp_path):
    path = tmp_path / "bad.pickle"
    path.write_bytes(pickle.dumps([_entry(0, "train"), {"filename": "x.png"}]))
    with pytest.raises(BadInput, match=r"bad.pickle, entry 1: missing keys"):
        read_goo(path)
    instances, report = read_goo(path, policy="skip")
    assert len(instances) == 1 and report.skipped["missing keys"] == 1


def test_goo_trains_and_evaluates_through_main(goo_root, tmp_path):
    results = main(["--experiment", str(TINY), "--source_dataset", "goo",
                    "--source_dataset_dir", str(goo_root), f"run.output_dir={tmp_path}",
                    "--max_steps", "2", "data.val_fraction=0.25"])
    assert results["info"]["dataset"] == "goo" and results["info"]["instances"] == 4
    assert 0 <= results["model"]["auc"] <= 1 and results["center_prior"]["avg_l2"] > 0


def test_a_folder_in_goo_synths_released_layout_needs_no_other_key(tmp_path):
    """picklefiles/trainpickle2to19human.pickle + 1person/GazeDatasets/, and
    picklefiles/testpickle120.pickle + test/ (the GOO authors' training commands)."""
    from gazefollow.following.config import SyntheticConfig
    from gazefollow.following.data.synthetic_layouts import write_goo_world
    root = write_goo_world(SyntheticConfig(num_train=24, num_test=4, width=96, height=72),
                           tmp_path / "goosynth")
    assert (root / "picklefiles" / "trainpickle2to19human.pickle").is_file()
    assert next((root / "1person" / "GazeDatasets").rglob("*.jpg")) and (root / "test").is_dir()
    results = main(["--experiment", str(TINY), "--source_dataset", "goo",
                    "--source_dataset_dir", str(root), f"run.output_dir={tmp_path / 'out'}",
                    "--max_steps", "2"])
    assert results["info"]["dataset"] == "goo" and results["info"]["instances"] == 4
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tiny_config(tmp_path, "data.source_dataset=goo", f"data.dataset_dir={empty}")
    with pytest.raises(FileNotFoundError, match="picklefiles/trainpickle2to19human.pickle.*"
                                                "oneshotrealhumansNew.pickle"):
        build_datasets(config, splits=("train",), log=lambda *_: None)


@pytest.mark.parametrize("release", ["GOO-Real release", "GOO-Real earlier release"])
def test_goo_real_as_released_is_found_from_its_root(tmp_path, release):
    """oneshotrealhumansNew.pickle / testrealhumansNew.pickle with finalrealdatasetImgsV3/
    (the Zenodo release's names), or the earlier names with finalrealdatasetImgsV2/."""
    from gazefollow.following.config import SyntheticConfig
    from gazefollow.following.data.goo import GOO_LAYOUTS
    from gazefollow.following.data.synthetic_layouts import write_goo_world
    root = write_goo_world(SyntheticConfig(num_train=8, num_test=3, width=96, height=72),
                           tmp_path / "gooreal", release=release)
    pickle_file, image_dir = GOO_LAYOUTS[release]["test"]
    assert (root / pickle_file).is_file() and (root / image_dir).is_dir()
    config = tiny_config(tmp_path, "data.source_dataset=goo", f"data.dataset_dir={root}")
    datasets = build_datasets(config, log=lambda *_: None)
    assert len(datasets["test"]) == 3 and datasets["test"][0]["image"].shape[0] == 3
