"""Temporal gaze following: clips over VideoAttentionTarget tracks (padding at a track's
start), a fresh temporal model equal to the single-frame one on the target frame, the video
world in the VAT layout, and a 2-step run through the VAT protocol."""
import numpy as np
import pytest
import torch

from gazefollow.following.data.build import build_datasets
from gazefollow.following.data.dataset import clip_positions
from gazefollow.following.data.instances import HeadInstance
from gazefollow.following.data.synthetic_video import write_video_world
from gazefollow.following.data.vat import read_vat
from gazefollow.following.models.gaze_model import build_model
from main import main
from tests.conftest import TINY, tiny_config


def _instance(track: str, line: int) -> HeadInstance:
    return HeadInstance(index=line, path="x.jpg", head_box=np.zeros(4),
                        gaze_points=np.zeros((0, 2)), inout=0, rows=[f"{track}:{line}"])


def test_clips_follow_their_track_and_pad_at_its_start():
    instances = [_instance("a.txt", k) for k in range(5)] + [_instance("b.txt", k)
                                                             for k in range(3)]
    clips = clip_positions(instances, 3, spacing=2)
    assert clips[0] == [0, 0, 0] and clips[1] == [0, 0, 1]  # the first frame repeats
    assert clips[4] == [0, 2, 4]  # every second frame up to the target
    assert clips[5] == [5, 5, 5] and clips[7] == [5, 5, 7]  # a new track starts afresh


@pytest.fixture(scope="module")
def video_world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("video")
    config = tiny_config(tmp, "synthetic.num_train=48", "synthetic.num_test=16")
    return write_video_world(config.synthetic, tmp / "video", frames_per_clip=8,
                             clips_per_show=1, log=lambda *_: None), tmp


def test_video_world_is_a_coherent_vat_layout(video_world, tmp_path):
    root, tmp = video_world
    instances, report = read_vat(root / "annotations" / "train")
    assert len(instances) == 48 and report.instances == 48
    boxes = np.array([i.head_box for i in instances[:8]])
    assert np.abs(np.diff(boxes, axis=0)).max() < 6  # heads move smoothly along a track
    config = tiny_config(tmp, "synthetic.num_train=48", "synthetic.num_test=16")
    again = write_video_world(config.synthetic, tmp_path / "again", frames_per_clip=8,
                              clips_per_show=1, log=lambda *_: None)
    first = root / "images" / "train_show002" / "clip0002" / "00000005.jpg"
    assert first.read_bytes() == (again / first.relative_to(root)).read_bytes()


def test_a_fresh_temporal_model_is_the_single_frame_model(video_world):
    root, tmp = video_world
    common = ["data.source_dataset=videoattentiontarget", f"data.dataset_dir={root}",
              "data.clip_length=3", "data.val_fraction=0.34"]
    single = tiny_config(tmp, *common)
    batch_single = build_datasets(single, splits=("test",), log=lambda *_: None)["test"][5]
    for kind in ("convlstm", "attention"):
        config = tiny_config(tmp, *common, f"model.temporal={kind}")
        dataset = build_datasets(config, splits=("test",), log=lambda *_: None)["test"]
        sample = dataset[5]
        assert sample["clip_image"].shape[0] == 3
        assert torch.equal(sample["clip_image"][-1], batch_single["image"])
        torch.manual_seed(0)
        temporal = build_model(config).eval()
        torch.manual_seed(0)
        plain = build_model(single).eval()
        plain.load_state_dict({k: v for k, v in temporal.state_dict().items()
                               if not k.startswith("temporal.")})
        batch = {k: v.unsqueeze(0) for k, v in sample.items() if torch.is_tensor(v)}
        with torch.no_grad():
            fused, alone = temporal.encode(batch), plain.encode(batch)
        for key in ("context", "inout_logit"):
            assert torch.allclose(fused[key], alone[key], atol=1e-5), (kind, key)
        batch["clip_image"][:, 0] = 0  # an earlier frame changes nothing before training
        with torch.no_grad():
            assert torch.allclose(temporal.encode(batch)["context"], fused["context"])


def test_temporal_models_train_and_evaluate_through_the_vat_protocol(video_world):
    root, tmp = video_world  # attention runs the same path (the test above builds both)
    results = main(["--experiment", str(TINY), "--source_dataset", "videoattentiontarget",
                    "--source_dataset_dir", str(root), f"run.output_dir={tmp / 'out'}",
                    "--max_steps", "2", "model.temporal=convlstm", "data.clip_length=3",
                    "data.val_fraction=0.34", "data.augment=true"])
    assert results["info"]["protocol"] == "vat"
    assert 0 <= results["model"]["auc"] <= 1 and 0 <= results["model"]["inout_ap"] <= 1
    assert (tmp / "out" / "videoattentiontarget-diffusion-x0-convlstm").is_dir()
