"""Gaze-LLE: its released decoder files (generated in their exact layout, random values) load
by their key names, and the predictor gives what Gaze-LLE's own forward gives, written here
as a slow reference from its description (preprocessing, DINOv2 in its hub layout, the
prompt, the blocks, the heads). DINOv2 ViT-B/14 is cut to one block so the test runs at the
released 448 px on a CPU; the decoder is full size."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gazefollow.backbones import dinov2
from gazefollow.config import ConfigError
from gazefollow.following.encoders.gazelle import head_box_maps, sincos_position_map
from gazefollow.following.predict import GazePredictor
from tests.conftest import ROOT, TINY
from tests.test_dinov2 import reference_features, to_hub

DIM, LAYERS, HEADS = 256, 3, 8
QUIET = dict(log=lambda *_: None)


def reference_positions(dim: int, height: int, width: int) -> np.ndarray:
    """Gaze-LLE's position buffer, one entry at a time (float64)."""
    half = dim // 2
    out = np.zeros((dim, height, width))
    for i in range(0, half, 2):
        frequency = math.exp(i * -(math.log(10000.0) / half))
        for y in range(height):
            for x in range(width):
                out[i, y, x], out[i + 1, y, x] = math.sin(x * frequency), math.cos(x * frequency)
                out[half + i, y, x] = math.sin(y * frequency)
                out[half + i + 1, y, x] = math.cos(y * frequency)
    return out


def released_decoder(backbone_width: int, inout: bool, seed: int = 0) -> dict:
    """A state dict in the layout of gazelle_dinov2_*.pt: names, shapes, float32."""
    g = torch.Generator().manual_seed(seed)
    def rand(*shape, scale=0.05):
        return torch.randn(*shape, generator=g) * scale
    state = {"linear.weight": rand(DIM, backbone_width, 1, 1), "linear.bias": rand(DIM),
             "head_token.weight": rand(1, DIM, scale=1.0),
             "pos_embed": torch.from_numpy(reference_positions(DIM, 32, 32)).float()}
    for i in range(LAYERS):
        block = {"norm1.weight": 1 + rand(DIM), "norm1.bias": rand(DIM),
                 "attn.qkv.weight": rand(3 * DIM, DIM), "attn.proj.weight": rand(DIM, DIM),
                 "attn.proj.bias": rand(DIM), "norm2.weight": 1 + rand(DIM),
                 "norm2.bias": rand(DIM), "mlp.fc1.weight": rand(4 * DIM, DIM),
                 "mlp.fc1.bias": rand(4 * DIM), "mlp.fc2.weight": rand(DIM, 4 * DIM),
                 "mlp.fc2.bias": rand(DIM)}
        state.update({f"transformer.{i}.{k}": v for k, v in block.items()})
    state.update({"heatmap_head.0.weight": rand(DIM, DIM, 2, 2),
                  "heatmap_head.0.bias": rand(DIM), "heatmap_head.1.weight": rand(1, DIM, 1, 1)})
    if inout:
        state.update({"inout_token.weight": rand(1, DIM, scale=1.0),
                      "inout_head.0.weight": rand(128, DIM), "inout_head.0.bias": rand(128),
                      "inout_head.3.weight": rand(1, 128), "inout_head.3.bias": rand(1)})
    return state


def reference_gazelle(decoder: dict, hub: dict, image: Image.Image, boxes: list) -> tuple:
    """Gaze-LLE's forward for one image and its people: (heatmaps [P, 64, 64], in/out [P])."""
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    pixels = (pixels - mean[:, None, None]) / std[:, None, None]
    pixels = F.interpolate(pixels[None], size=(448, 448), mode="bilinear", antialias=True)
    heads = dinov2.DINOV2_SIZES["base"][2]
    features = reference_features(hub, pixels, 0, heads)  # [1, 1024, 768]
    features = features.reshape(1, 32, 32, -1).permute(0, 3, 1, 2)
    x = F.conv2d(features, decoder["linear.weight"], decoder["linear.bias"]) + decoder["pos_embed"]
    width, height = image.size
    maps, inouts = [], []
    for box in boxes:
        x1, y1, x2, y2 = box[0] / width, box[1] / height, box[2] / width, box[3] / height
        head = torch.zeros(32, 32)
        head[round(y1 * 32):round(y2 * 32), round(x1 * 32):round(x2 * 32)] = 1
        tokens = (x[0] + head * decoder["head_token.weight"][0][:, None, None]).flatten(1).t()
        if "inout_token.weight" in decoder:
            tokens = torch.cat([decoder["inout_token.weight"], tokens])
        for i in range(LAYERS):
            tokens = reference_block(decoder, f"transformer.{i}.", tokens)
        if "inout_token.weight" in decoder:
            hidden = F.relu(F.linear(tokens[0], decoder["inout_head.0.weight"],
                                     decoder["inout_head.0.bias"]))
            inouts.append(torch.sigmoid(F.linear(hidden, decoder["inout_head.3.weight"],
                                                 decoder["inout_head.3.bias"]))[0])
            tokens = tokens[1:]
        grid = tokens.t().reshape(1, DIM, 32, 32)
        up = F.conv_transpose2d(grid, decoder["heatmap_head.0.weight"],
                                decoder["heatmap_head.0.bias"], stride=2)
        maps.append(torch.sigmoid(F.conv2d(up, decoder["heatmap_head.1.weight"]))[0, 0])
    return torch.stack(maps), (torch.stack(inouts) if inouts else None)


def reference_block(decoder: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    """timm's Block (pre-norm, no qkv bias, exact GELU, nn.LayerNorm eps 1e-5), at evaluation."""
    def norm(name, v):
        return F.layer_norm(v, (DIM,), decoder[p + name + ".weight"], decoder[p + name + ".bias"],
                            eps=1e-5)
    n = x.shape[0]
    q, k, v = F.linear(norm("norm1", x), decoder[p + "attn.qkv.weight"]).reshape(
        n, 3, HEADS, DIM // HEADS).permute(1, 2, 0, 3)
    attention = ((q @ k.transpose(-2, -1)) / math.sqrt(DIM // HEADS)).softmax(-1) @ v
    x = x + F.linear(attention.transpose(0, 1).reshape(n, DIM), decoder[p + "attn.proj.weight"],
                     decoder[p + "attn.proj.bias"])
    h = F.gelu(F.linear(norm("norm2", x), decoder[p + "mlp.fc1.weight"],
                        decoder[p + "mlp.fc1.bias"]))
    return x + F.linear(h, decoder[p + "mlp.fc2.weight"], decoder[p + "mlp.fc2.bias"])


@pytest.fixture
def one_block_base(monkeypatch, tmp_path):
    """DINOv2 ViT-B/14 (768 wide, 12 heads) cut to one block, saved in DINOv2's hub layout
    (released 518 px: a 37 x 37 position grid) -> (file, its hub state dict)."""
    from transformers import Dinov2Model
    monkeypatch.setitem(dinov2.DINOV2_SIZES, "base", (768, 1, 12))
    torch.manual_seed(0)
    model = Dinov2Model(dinov2.dinov2_hf_config("base", 0, 518))
    with torch.no_grad():
        for name, value in model.named_parameters():
            if "lambda1" in name or "token" in name or "position" in name:
                value.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "hf")
    from safetensors.torch import load_file
    hub = to_hub(load_file(str(tmp_path / "hf" / "model.safetensors")))
    torch.save(hub, tmp_path / "dinov2_vitb14_pretrain.pth")
    return tmp_path / "dinov2_vitb14_pretrain.pth", hub


def test_position_encoding_and_head_prompt_are_gazelles():
    ours = sincos_position_map(DIM, 5, 7).double().numpy()
    np.testing.assert_allclose(ours, reference_positions(DIM, 5, 7), atol=2e-6)
    boxes = torch.tensor([[0.015625, 0.046875, 0.203125, 0.5], [0.1, 0.2, 0.31, 0.9]])
    maps = head_box_maps(boxes, 32, 32)
    for box, head in zip(boxes.double().tolist(), maps):
        expected = torch.zeros(32, 32)  # Python's round: halves to even (0.5 -> 0, 1.5 -> 2)
        expected[round(box[1] * 32):round(box[3] * 32), round(box[0] * 32):round(box[2] * 32)] = 1
        assert torch.equal(head, expected)


@pytest.mark.parametrize("inout", [True, False])
def test_a_released_file_predicts_what_gazelles_forward_gives(one_block_base, tmp_path, inout):
    hub_file, hub = one_block_base
    decoder = released_decoder(768, inout)
    name = f"gazelle_dinov2_vitb14{'_inout' if inout else ''}.pt"
    torch.save(decoder, tmp_path / name)
    predictor = GazePredictor.from_pretrained(tmp_path / name, device="cpu",
                                              backbone_weights=str(hub_file))
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    boxes = [(40.0, 30.0, 90.0, 85.0), (200.0, 100.0, 251.0, 160.0)]
    people = predictor.predict([image, image], [boxes, boxes[:1]])
    maps, inouts = reference_gazelle(decoder, hub, image, boxes)
    for person, expected in zip(people[0] + people[1], [*maps, maps[0]]):
        assert person.heatmap.shape == (64, 64)
        np.testing.assert_allclose(person.heatmap, expected.numpy(), atol=1e-4, rtol=0)
    got_inout = [p.inout for p in people[0]]
    if inout:
        np.testing.assert_allclose(got_inout, inouts.numpy(), atol=1e-4)
    else:  # released without an in/out head: every person in frame, as its evaluation assumes
        assert min(got_inout) > 0.999


def test_an_export_of_a_released_model_holds_its_backbone(one_block_base, tmp_path):
    """save_pretrained writes DINOv2 with the decoder: the export predicts the same without
    the backbone file."""
    hub_file, _ = one_block_base
    torch.save(released_decoder(768, True), tmp_path / "gazelle_dinov2_vitb14_inout.pt")
    predictor = GazePredictor.from_pretrained(tmp_path / "gazelle_dinov2_vitb14_inout.pt",
                                              device="cpu", backbone_weights=str(hub_file))
    predictor.save_pretrained(tmp_path / "export")
    hub_file.unlink()
    exported = GazePredictor.from_pretrained(tmp_path / "export", device="cpu")
    image = np.random.default_rng(2).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    box = [[(30.0, 20.0, 80.0, 70.0)]]
    first, again = predictor.predict([image], box)[0][0], exported.predict([image], box)[0][0]
    np.testing.assert_array_equal(first.heatmap, again.heatmap)
    assert first.inout == again.inout


def test_eval_weights_scores_a_released_file_and_wants_its_backbone(one_block_base, tmp_path):
    from main import main
    hub_file, _ = one_block_base
    torch.save(released_decoder(768, True), tmp_path / "gazelle_dinov2_vitb14_inout.pt")
    world = ["--config", str(ROOT / "configs" / "data" / "synthetic.yaml"),
             f"data.dataset_dir={tmp_path / 'world'}", "synthetic.num_train=8",
             "synthetic.num_test=3", "synthetic.annotators=2", "data.num_workers=0",
             "logging.wandb=disabled"]
    with pytest.raises(ConfigError, match="model.backbone_weights=<a facebook/dinov2-base"):
        main(["--eval_weights", str(tmp_path / "gazelle_dinov2_vitb14_inout.pt"), *world])
    results = main(["--eval_weights", str(tmp_path / "gazelle_dinov2_vitb14_inout.pt"), *world,
                    f"model.backbone_weights={hub_file}"])
    assert 0 <= results["model"]["auc"] <= 1 and "inout_ap" in results["model"]
    assert (tmp_path / "gazefollow-eval").is_dir()


def test_the_inout_recipe_starts_from_the_gazefollow_decoder(one_block_base, tmp_path):
    """run.init_weights reads a released file: the in/out token and head are new."""
    from gazefollow.following.models.gaze_model import build_model
    from gazefollow.following.published import ARCHITECTURES, init_from_file
    from gazefollow.tasks import build_config
    hub_file, _ = one_block_base
    torch.save(released_decoder(768, False), tmp_path / "gazelle_dinov2_vitb14.pt")
    config = build_config([], [*ARCHITECTURES["gazelle_dinov2_vitb14_inout"],
                               f"model.backbone_weights={hub_file}",
                               f"run.init_weights={tmp_path / 'gazelle_dinov2_vitb14.pt'}"])
    model = build_model(config)
    report = init_from_file(model, config.run, **QUIET)
    assert report["new"] == ["gaze.inout_token.weight", "inout_head.net.0.bias",
                             "inout_head.net.0.weight", "inout_head.net.3.bias",
                             "inout_head.net.3.weight"]


@pytest.mark.parametrize("name", ["gazelle_vitb14", "gazelle_vitl14", "gazelle_vitb14_inout",
                                  "gazelle_vitl14_inout"])
def test_each_configuration_is_the_released_architecture(name):
    from gazefollow.config import to_dict
    from gazefollow.following.published import ARCHITECTURES
    from gazefollow.tasks import build_config
    released = "gazelle_dinov2_" + name.removeprefix("gazelle_")
    recipe = to_dict(build_config([ROOT / "configs" / "experiments" / f"{name}.yaml"]))
    for item in ARCHITECTURES[released]:
        key, value = item.split("=", 1)
        section, field = key.split(".")
        assert str(recipe[section][field]).lower() == value.lower(), key


@pytest.mark.parametrize("experiment, extra", [
    ("gazelle_vitb14", []), ("gazelle_vitl14", []), ("gazelle_vitb14_inout", []),
    ("gazelle_vitl14_inout", []), ("dinov2_diffusion", []),
    ("dinov2_diffusion", ["model.head=regression", "model.freeze_backbone=false"])])
def test_each_configuration_trains_and_evaluates(tmp_path, experiment, extra):
    """Two steps and an evaluation on the built-in world, each experiment file with a tiny
    DINOv2 and decoder (the tiny test settings layered on top)."""
    from main import main
    results = main(["--experiment", str(ROOT / "configs" / "experiments" / f"{experiment}.yaml"),
                    "--config", str(TINY), f"data.dataset_dir={tmp_path / 'world'}",
                    f"run.output_dir={tmp_path / 'out'}", "--max_steps", "2",
                    "model.dinov2_size=tiny", "data.input_size=28", "model.gazelle_dim=16",
                    "model.gazelle_heads=2", *extra])
    assert 0 <= results["model"]["auc"] <= 1


def test_damaged_or_foreign_released_files_are_named(tmp_path):
    """A released file with a key of no decoder, a decoder of another width, a file that
    runs code when unpickled, a truncated file: each one named error, nothing run."""
    import pickle

    from gazefollow.engine.checkpoint import CheckpointError
    from gazefollow.engine.untrusted import UntrustedFileError
    cases = {}
    odd = released_decoder(768, False)
    odd["gaze_head.weight"] = torch.zeros(1)
    cases["odd.pt"] = (odd, "is not a key of Gaze-LLE's decoder")
    cases["narrow.pt"] = (released_decoder(640, False), "640-wide backbone")
    for name, (state, message) in cases.items():
        torch.save(state, tmp_path / name)
        with pytest.raises(CheckpointError, match=message):
            GazePredictor.from_pretrained(tmp_path / name, device="cpu",
                                          backbone_weights="unused")

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))
    (tmp_path / "payload.pt").write_bytes(pickle.dumps({"linear.weight": Payload()}))
    with pytest.raises((UntrustedFileError, CheckpointError)):
        GazePredictor.from_pretrained(tmp_path / "payload.pt", device="cpu")
    assert not (tmp_path / "ran").exists()
    torch.save(released_decoder(768, True), tmp_path / "cut.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "cut.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cannot read"):
        GazePredictor.from_pretrained(tmp_path / "cut.pt", device="cpu")
