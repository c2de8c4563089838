"""Every bad-input case: a named error in strict mode, a counted skip in skip mode."""
import json
import shutil

import pytest
from torch.utils.data import DataLoader

from gazefollow.engine.samples import BAD_KEY, BadInput, collate_samples
from gazefollow.following.data.build import build_datasets
from gazefollow.following.data.synthetic import TEST_FILE, TRAIN_FILE
from main import main
from tests.conftest import TINY, tiny_config

GOOD = "train/{:06d}.jpg,{},0.1,0.1,0.2,0.2,0.3,0.3,0.5,0.5,10,10,20,20,1,src,meta"
BAD_ROWS = {
    "wrong column count": "train/000001.jpg,1,0.1,0.1,0.2,0.2,0.3,0.3,0.5,0.5,10,10,20,20",
    "non-numeric field": "train/000002.jpg,2,0.1,0.1,0.2,0.2,0.3,0.3,x,0.5,10,10,20,20,1,s,m",
    "NaN or infinite value": "train/000003.jpg,3,0.1,0.1,0.2,0.2,0.3,0.3,nan,0.5,10,10,20,20,1,s,m",
    "impossible head box": "train/000004.jpg,4,0.1,0.1,0.2,0.2,0.3,0.3,0.5,0.5,10,10,10,20,1,s,m",
    "missing image": GOOD.format(99999, 5),
    "empty (0-byte) image": GOOD.format(6, 6),
    "unreadable image": GOOD.format(14, 14),  # no image header: found when loading starts
}


@pytest.fixture()
def broken_world(tiny_world, tmp_path):
    root, _ = tiny_world
    world = tmp_path / "broken"
    shutil.copytree(root, world)
    (world / "train" / "000006.jpg").write_bytes(b"")
    # a truncated JPEG: its header reads (size known at load time), decoding it fails later
    whole = (world / "train" / "000007.jpg").read_bytes()
    (world / "train" / "000007.jpg").write_bytes(whole[:len(whole) // 2])
    (world / "train" / "000014.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rows = [GOOD.format(i, i) for i in (0, 7, 8, 9, 10, 11, 12, 13)] + list(BAD_ROWS.values())
    (world / TRAIN_FILE).write_text("\n".join(rows) + "\n")
    return world


def _config(tmp_path, world, policy):
    return tiny_config(tmp_path, f"data.dataset_dir={world}", "data.source_dataset=gazefollow",
                       f"data.on_bad_input={policy}")


def test_strict_mode_names_file_row_and_reason(broken_world, tmp_path):
    with pytest.raises(BadInput, match=r"train_annotations_release.txt, row 9: wrong column"):
        build_datasets(_config(tmp_path, broken_world, "strict"), splits=("train", "val"),
                       log=lambda *_: None)


def test_skip_mode_counts_every_reason(broken_world, tmp_path):
    lines = []
    datasets = build_datasets(_config(tmp_path, broken_world, "skip"), splits=("train", "val"),
                              log=lines.append)
    summary = "\n".join(lines)
    for reason in BAD_ROWS:
        assert f"SKIPPED 1 x {reason}" in summary, reason
    assert len(datasets["train"]) + len(datasets["val"]) == 8


def _only_the_corrupt_image(tmp_path, world, policy):
    """The train dataset (read in skip mode: the rows are bad too) reduced to the corrupt
    image and a good one, with the image policy under test."""
    datasets = build_datasets(_config(tmp_path, world, "skip"), splits=("train", "val"),
                              log=lambda *_: None)
    every = datasets["train"].instances + datasets["val"].instances
    dataset = datasets["train"]
    dataset.instances = [i for i in every if i.path.endswith("000007.jpg")] + [
        i for i in every if i.path.endswith("000008.jpg")]
    dataset.on_bad_input = policy
    return dataset


def test_corrupt_jpeg_raises_naming_the_file_in_a_worker(broken_world, tmp_path):
    """strict: the worker's error reaches the loop with the file name; nothing hangs."""
    dataset = _only_the_corrupt_image(tmp_path, broken_world, "strict")
    loader = DataLoader(dataset, batch_size=2, num_workers=1, collate_fn=collate_samples,
                        timeout=60)
    with pytest.raises(BadInput, match=r"cannot read image .*000007.jpg"):
        next(iter(loader))


def test_corrupt_jpeg_is_dropped_and_named_in_skip_mode(broken_world, tmp_path):
    dataset = _only_the_corrupt_image(tmp_path, broken_world, "skip")
    assert "000007.jpg" in dataset[0][BAD_KEY]
    batch = next(iter(DataLoader(dataset, batch_size=2, collate_fn=collate_samples)))
    assert batch["image"].shape[0] == 1 and batch["path"] == ["train/000008.jpg"]
    assert len(batch[BAD_KEY]) == 1 and "000007.jpg" in batch[BAD_KEY][0]
    dataset.instances = dataset.instances[:1]
    with pytest.raises(BadInput, match="every sample of a batch failed to load"):
        next(iter(DataLoader(dataset, batch_size=2, collate_fn=collate_samples)))


def test_skip_mode_run_reports_the_unreadable_image(broken_world, tmp_path):
    """A whole run in skip mode: training and evaluation count the corrupt JPEG."""
    results = main(["--experiment", str(TINY), "--source_dataset", "gazefollow",
                    "--source_dataset_dir", str(broken_world), f"run.output_dir={tmp_path}",
                    "data.on_bad_input=skip", "data.batch_size=2", "data.val_fraction=0.25",
                    "--max_steps", "3", "optim.epochs=3"])
    stats = json.loads(next(tmp_path.rglob("train_stats.json")).read_text())
    assert results["info"]["skipped_unreadable"] + stats["skipped_unreadable"] >= 1
    assert any("000007.jpg" in m for m in
               results["info"]["skipped_examples"] + stats["skipped_examples"])


def test_test_file_rows_are_checked_too(tiny_world, tmp_path):
    root, _ = tiny_world
    world = tmp_path / "w"
    shutil.copytree(root, world)
    with (world / TEST_FILE).open("a") as handle:
        handle.write("test/000000.jpg,0,0.1\n")
    with pytest.raises(BadInput, match="test_annotations_release.txt, row 25"):
        build_datasets(_config(tmp_path, world, "strict"), splits=("test",), log=lambda *_: None)


def test_two_process_skip_mode_reports_every_process_skips(broken_world, tmp_path):
    """With two processes the corrupt JPEG may sit in either process's shard: training and
    evaluation gather the skipped samples of both before reporting."""
    from tests.test_distributed import _free_port, _launch
    _launch(["torch.distributed.run", "--nproc_per_node", "2", "--master_port",
             str(_free_port())],
            ["--experiment", str(TINY), "--source_dataset", "gazefollow",
             "--source_dataset_dir", str(broken_world), f"run.output_dir={tmp_path}",
             "data.on_bad_input=skip", "data.batch_size=2", "data.val_fraction=0.25",
             "optim.epochs=2"])
    stats = json.loads(next(tmp_path.rglob("train_stats.json")).read_text())
    metrics = json.loads(next(tmp_path.rglob("metrics.json")).read_text())
    assert stats["processes"] == 2 and metrics["info"]["processes"] == 2
    assert any("000007.jpg" in m for m in
               metrics["info"]["skipped_examples"] + stats["skipped_examples"])
