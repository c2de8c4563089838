"""Chong et al. 2020, ModelSpatioTemporal: a file in the exact layout of their
model_videoatttarget.pt ({"model": state dict}: ModelSpatial's keys, ``bn_ds`` in every block,
``convlstm_scene.{weight,bias}_{ih,hh}_l{0,1}``; random values, narrow stages of two blocks)
loads by its keys; the predictor, given track ids, and the evaluation, streaming each track
across batches, give what their model gives on a whole track at once (a slow reference written
here from their description: the second shortcut BatchNorm, the 2-layer ConvLSTM with zero
padding and gates i, f, g, o, from a zero state at the track's first frame)."""
import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gazefollow.following.data.synthetic_video import write_video_world
from gazefollow.following.data.vat import read_vat
from gazefollow.following.metrics import heatmap_argmax
from gazefollow.following.predict import GazePredictor
from main import main
from tests.conftest import ROOT, TINY, tiny_config
from tests.test_chong import (demo_inputs, reference_compress, reference_decode, reference_encoder,
                              released_spatial)


def reference_convlstm(sd: dict, frames: torch.Tensor) -> torch.Tensor:
    """Their Conv2dLSTM (2 layers) over one track's frames [T, C, g, g], from zeros."""
    state, outputs = [None, None], []
    for x in frames:
        x = x[None]
        for k in range(2):
            h, c = state[k] if state[k] is not None else (torch.zeros_like(x),) * 2

            def conv(t, kind):
                return F.conv2d(F.pad(t, [1, 1, 1, 1]), sd[f"convlstm_scene.weight_{kind}_l{k}"],
                                sd[f"convlstm_scene.bias_{kind}_l{k}"])
            i, f, g, o = (conv(x, "ih") + conv(h, "hh")).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            state[k], x = (h, c), h
        outputs.append(x)
    return torch.cat(outputs)


@torch.no_grad()
def reference_track(sd: dict, inputs: list) -> tuple[np.ndarray, np.ndarray]:
    """A whole track in one forward pass, as their evaluation runs it: (heatmaps [T, 64, 64],
    in/out logits [T])."""
    image, head, face = (torch.cat(parts) for parts in zip(*inputs))
    fused, inout = reference_encoder(sd, image, head, face)
    recurrent = reference_convlstm(sd, reference_compress(sd, fused))
    return reference_decode(sd, recurrent)[:, 0].numpy(), inout[:, 0].numpy()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chong_video")
    content = released_spatial(blocks=2, video=True)
    torch.save(content, folder / "model_videoatttarget.pt")
    torch.save(released_spatial(blocks=2), folder / "model_gazefollow.pt")
    return content["model"], folder


def test_the_predictor_carries_each_track_as_their_model(released):
    sd, folder = released
    predictor = GazePredictor.from_pretrained(folder / "model_videoatttarget.pt", device="cpu")
    assert predictor.config.model.temporal == "chong"
    assert predictor.config.model.scene_layers == [2] * 5
    rng = np.random.default_rng(3)
    frames = [Image.fromarray(rng.integers(0, 256, (200, 260, 3), dtype=np.uint8))
              for _ in range(4)]
    boxes = [[(40.0 + 3 * t, 30.5, 90.2 + 3 * t, 85.7), (170.4, 90.0 - 2 * t, 230.0, 150.3)]
             for t in range(4)]
    got = [predictor.predict([frame], [frame_boxes], tracks=[["a", "b"]])[0]
           for frame, frame_boxes in zip(frames, boxes)]
    for person, track in enumerate("ab"):
        inputs = [demo_inputs(frame, list(frame_boxes[person]), share=0.0)
                  for frame, frame_boxes in zip(frames, boxes)]
        heatmaps, logits = reference_track(sd, inputs)
        assert heatmaps.std(axis=(1, 2)).min() > 0.1
        assert np.abs(np.diff(heatmaps, axis=0)).max() > 0.1  # the frames differ
        for t in range(4):  # float32 rounding, grown by the test weights' statistics
            # (in float64 the two agree to 1e-6: the next test)
            np.testing.assert_allclose(got[t][person].heatmap, heatmaps[t], atol=1e-3)
            np.testing.assert_allclose(got[t][person].inout, 1 / (1 + np.exp(-logits[t])),
                                       atol=1e-4)
    # without track ids each person starts anew: the last frame alone is not the track's
    alone = predictor.predict([frames[3]], [boxes[3]])[0][0]
    assert np.abs(alone.heatmap - got[3][0].heatmap).max() > 1e-3


def test_in_float64_the_model_is_the_reference(released):
    """The same track through our modules and the reference in float64 (the heatmap head
    hands back float32): the streamed state, the ConvLSTM, the shortcut BatchNorms."""
    content, folder = released
    model = GazePredictor.from_pretrained(folder / "model_videoatttarget.pt",
                                          device="cpu").model.double().eval()
    sd = {k: v.double() if v.is_floating_point() else v for k, v in content.items()}
    rng = np.random.default_rng(4)
    frames = [Image.fromarray(rng.integers(0, 256, (180, 240, 3), dtype=np.uint8))
              for _ in range(3)]
    inputs = [tuple(x.double() for x in demo_inputs(frame, [30.0 + 4 * t, 20.0, 80.0, 70.0 + t]))
              for t, frame in enumerate(frames)]
    heatmaps, logits = reference_track(sd, inputs)
    model.keep_streams([])
    with torch.no_grad():
        for (image, head, face), heatmap, logit in zip(inputs, heatmaps, logits):
            cond = model.encode({"image": image, "head_channel": head, "face": face,
                                 "track": ["a"]})
            np.testing.assert_allclose(model.head.heatmap(cond)[0, 0].numpy(), heatmap,
                                       atol=1e-6)
            np.testing.assert_allclose(cond["inout_logit"].item(), logit, atol=1e-9)


@pytest.fixture(scope="module")
def video_world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chong_world")
    config = tiny_config(tmp, "synthetic.num_train=16", "synthetic.num_test=16")
    return write_video_world(config.synthetic, tmp / "video", frames_per_clip=8,
                             clips_per_show=1, log=lambda *_: None)


def test_evaluation_streams_each_track_across_batches(released, video_world, tmp_path):
    """--eval_weights on a VAT-layout world, 3 frames a batch (tracks of 8 frames cross
    batches): every frame's point and in/out score are the reference's over its track, with
    their VAT reader's inputs (the smoothed box, not enlarged, cropped at int())."""
    sd, folder = released
    main(["--eval_weights", str(folder / "model_videoatttarget.pt"),
          "--config", str(ROOT / "configs" / "data" / "videoattentiontarget.yaml"),
          f"data.dataset_dir={video_world}", "eval.batch_size=3", "data.num_workers=0",
          "logging.wandb=disabled", "eval.num_visualize=0"])
    written = next((folder / "gazefollow-eval").rglob("predictions.csv"))
    rows = list(csv.DictReader(written.open()))
    by_id = {int(row["id"]): row for row in rows}
    instances, _ = read_vat(video_world / "annotations" / "test")
    tracks = {}
    for instance in instances:
        tracks.setdefault(instance.rows[0].rsplit(":", 1)[0], []).append(instance)
    assert len(tracks) == 2 and len(by_id) == len(instances) == 16
    for track in tracks.values():
        frames = [Image.open(video_world / i.path).convert("RGB") for i in track]
        inputs = [demo_inputs(frame, list(i.head_box), share=0.0, integer_crop=True)
                  for frame, i in zip(frames, track)]
        heatmaps, logits = reference_track(sd, inputs)
        assert heatmaps.std(axis=(1, 2)).min() > 0.1  # maps with a place to point at
        for instance, heatmap, logit in zip(track, heatmaps, logits):
            row = by_id[instance.index]
            np.testing.assert_allclose(float(row["inout_score"]), 1 / (1 + np.exp(-logit)),
                                       atol=1e-4)
            if instance.inout:
                np.testing.assert_allclose([float(row["pred_x"]), float(row["pred_y"])],
                                           heatmap_argmax(heatmap), atol=1e-6)


def test_their_recipe_fine_tunes_from_a_gazefollow_file(released, video_world, tmp_path):
    """configs/experiments/chong2020_vat.yaml from a ModelSpatial file: two steps on clips,
    then the streamed evaluation; what the file lacks is the ConvLSTM and bn_ds, reported."""
    _, folder = released
    results = main([
        "--experiment", str(ROOT / "configs" / "experiments" / "chong2020_vat.yaml"),
        "--config", str(TINY), "data.source_dataset=videoattentiontarget",
        f"data.dataset_dir={video_world}", f"run.output_dir={tmp_path / 'out'}",
        "logging.wandb=disabled", "data.num_workers=0", "data.val_fraction=0.5",
        "--max_steps", "2", "model.scene_layers=[2,2,2,2,2]", "model.face_layers=[2,2,2,2,2]",
        "model.scene_inplanes=16", "model.face_inplanes=16", "model.context_dim=256",
        "model.inout_hidden=128", "data.input_size=224", "data.face_size=224",
        "data.output_size=64", "data.batch_size=2", "eval.batch_size=4",
        f"run.init_weights={folder / 'model_gazefollow.pt'}"])
    assert 0 <= results["model"]["auc"] <= 1
    report = next((tmp_path / "out").rglob("init_weights*.json")).read_text()
    new = __import__("json").loads(report)["new"]
    assert new and all(k.startswith("head.convlstm_scene.") or ".downsample.2." in k for k in new)
