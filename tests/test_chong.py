"""Chong et al. 2020 (ModelSpatial): a file in the exact layout of model_demo.pt /
model_gazefollow.pt ({"model": state dict} under their key names; random values, one block
per stage and narrow stages so it runs on a CPU) loads by its keys, and the predictor gives
what their model and demo preprocessing give, written here as a slow reference from their
description: the box enlarged in their order, the float crop, the truncated head channel,
the attention, the decoder."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gazefollow.following.predict import GazePredictor
from tests.conftest import ROOT, TINY

STRIDES = (1, 2, 2, 2, 1)
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def released_spatial(inplanes: int = 16, seed: int = 0, blocks: int = 1,
                     video: bool = False) -> dict:
    """{"model": ...} as Chong et al. save ModelSpatial (Bottleneck stages of ``blocks``
    blocks); with ``video`` as ModelSpatioTemporal: ``bn_ds`` in every block and a 2-layer
    ConvLSTM ``convlstm_scene``."""
    g = torch.Generator().manual_seed(seed)
    state = {}

    def conv(name, out, cin, k, bias=False):
        scale = (2 / (cin * k * k)) ** 0.5
        state[name + ".weight"] = torch.randn(out, cin, k, k, generator=g) * scale
        if bias:
            state[name + ".bias"] = torch.randn(out, generator=g) * 0.1

    def bn(name, c):
        state[name + ".weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        state[name + ".bias"] = 0.1 * torch.randn(c, generator=g)
        state[name + ".running_mean"] = 0.1 * torch.randn(c, generator=g)
        state[name + ".running_var"] = 0.5 + torch.rand(c, generator=g)
        state[name + ".num_batches_tracked"] = torch.tensor(1000)

    for branch, channels in (("scene", 4), ("face", 3)):
        conv(f"conv1_{branch}", inplanes, channels, 7)
        bn(f"bn1_{branch}", inplanes)
        cin = inplanes
        for stage, multiple in enumerate((1, 2, 4, 8, 4), start=1):
            planes = inplanes * multiple
            for block in range(blocks):
                p = f"layer{stage}_{branch}.{block}."
                conv(p + "conv1", planes, cin, 1), bn(p + "bn1", planes)
                conv(p + "conv2", planes, planes, 3), bn(p + "bn2", planes)
                conv(p + "conv3", 4 * planes, planes, 1), bn(p + "bn3", 4 * planes)
                if block == 0:
                    conv(p + "downsample.0", 4 * planes, cin, 1)
                    bn(p + "downsample.1", 4 * planes)
                if video:
                    bn(p + "bn_ds", 4 * planes)
                cin = 4 * planes
    c = 2 * cin
    state["attn.weight"] = torch.randn(49, 784 + cin, generator=g) * 0.05
    state["attn.bias"] = torch.randn(49, generator=g) * 0.05
    conv("compress_conv1", c // 2, c, 1), bn("compress_bn1", c // 2)
    conv("compress_conv2", c // 4, c // 2, 1), bn("compress_bn2", c // 4)
    conv("compress_conv1_inout", c // 4, c, 1), bn("compress_bn1_inout", c // 4)
    conv("compress_conv2_inout", 1, c // 4, 1), bn("compress_bn2_inout", 1)
    state["fc_inout.weight"] = torch.randn(1, 49, generator=g) * 0.1
    state["fc_inout.bias"] = torch.randn(1, generator=g) * 0.1
    for i, (cin_, out, k) in enumerate([(c // 4, c // 8, 3), (c // 8, c // 16, 3),
                                        (c // 16, 1, 4)], start=1):
        scale = (2 / (cin_ * k * k)) ** 0.5
        state[f"deconv{i}.weight"] = torch.randn(cin_, out, k, k, generator=g) * scale
        state[f"deconv{i}.bias"] = torch.randn(out, generator=g) * 0.1
        bn(f"deconv_bn{i}", out)
    conv("conv4", 1, 1, 1, bias=True)
    if video:
        for layer in range(2):
            for kind in ("ih", "hh"):
                state[f"convlstm_scene.weight_{kind}_l{layer}"] = 0.2 * torch.randn(
                    c, c // 4, 3, 3, generator=g)
                state[f"convlstm_scene.bias_{kind}_l{layer}"] = 0.1 * torch.randn(c, generator=g)
        for i in (1, 2, 3):  # statistics of the ConvLSTM's small outputs, so maps are not flat
            state[f"deconv_bn{i}.running_mean"].zero_()
            state[f"deconv_bn{i}.running_var"].fill_(0.25)
    return {"model": state}


def reference_bn(sd: dict, x: torch.Tensor, p: str) -> torch.Tensor:
    """A BatchNorm at evaluation, from the state dict's entries under ``p``."""
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], False, 0.0, 1e-5)


def reference_resnet(sd: dict, x: torch.Tensor, branch: str) -> torch.Tensor:
    """Their ResNet with a fifth stage; a block of the video model (``bn_ds`` in the file)
    normalises its shortcut twice (their BottleneckConvLSTM with more than one frame)."""
    def bn(x, p):
        return reference_bn(sd, x, p)
    x = F.relu(bn(F.conv2d(x, sd[f"conv1_{branch}.weight"], stride=2, padding=3),
                  f"bn1_{branch}"))
    x = F.max_pool2d(x, 3, 2, 1)
    for stage in range(1, 6):
        block = 0
        while f"layer{stage}_{branch}.{block}.conv1.weight" in sd:
            p, stride = f"layer{stage}_{branch}.{block}.", STRIDES[stage - 1] if not block else 1
            out = F.relu(bn(F.conv2d(x, sd[p + "conv1.weight"]), p + "bn1"))
            out = F.relu(bn(F.conv2d(out, sd[p + "conv2.weight"], stride=stride, padding=1),
                            p + "bn2"))
            out = bn(F.conv2d(out, sd[p + "conv3.weight"]), p + "bn3")
            shortcut = x
            if p + "downsample.0.weight" in sd:
                shortcut = bn(F.conv2d(x, sd[p + "downsample.0.weight"], stride=stride),
                              p + "downsample.1")
                if p + "bn_ds.weight" in sd:
                    shortcut = bn(shortcut, p + "bn_ds")
            x, block = F.relu(out + shortcut), block + 1
    return x


def reference_encoder(sd: dict, image: torch.Tensor, head: torch.Tensor,
                      face: torch.Tensor) -> tuple:
    """Their forward up to the decoder: (the fused map, the in/out logit [N, 1])."""
    def bn(x, p):
        return reference_bn(sd, x, p)
    face_feat = reference_resnet(sd, face, "face")
    head_reduced = F.max_pool2d(F.max_pool2d(F.max_pool2d(head, 3, 2, 1), 3, 2, 1), 3, 2, 1)
    attn = F.linear(torch.cat([head_reduced.view(-1, 784), F.avg_pool2d(face_feat, 7).flatten(1)],
                              1), sd["attn.weight"], sd["attn.bias"])
    attn = F.softmax(attn.view(-1, 1, 49), dim=2).view(-1, 1, 7, 7)
    scene = reference_resnet(sd, torch.cat([image, head], 1), "scene")
    fused = torch.cat([attn * scene, face_feat], 1)
    inout = F.relu(bn(F.conv2d(fused, sd["compress_conv1_inout.weight"]), "compress_bn1_inout"))
    inout = F.relu(bn(F.conv2d(inout, sd["compress_conv2_inout.weight"]), "compress_bn2_inout"))
    return fused, F.linear(inout.view(-1, 49), sd["fc_inout.weight"], sd["fc_inout.bias"])


def reference_compress(sd: dict, fused: torch.Tensor) -> torch.Tensor:
    x = F.relu(reference_bn(sd, F.conv2d(fused, sd["compress_conv1.weight"]), "compress_bn1"))
    return F.relu(reference_bn(sd, F.conv2d(x, sd["compress_conv2.weight"]), "compress_bn2"))


def reference_decode(sd: dict, x: torch.Tensor) -> torch.Tensor:
    for i in (1, 2, 3):
        x = F.conv_transpose2d(x, sd[f"deconv{i}.weight"], sd[f"deconv{i}.bias"], stride=2)
        x = F.relu(reference_bn(sd, x, f"deconv_bn{i}"))
    return F.conv2d(x, sd["conv4.weight"], sd["conv4.bias"])


def reference_forward(sd: dict, image: torch.Tensor, head: torch.Tensor, face: torch.Tensor):
    """ModelSpatial.forward at evaluation: (heatmap [1, 1, 64, 64], in/out logit [1, 1])."""
    fused, inout = reference_encoder(sd, image, head, face)
    return reference_decode(sd, reference_compress(sd, fused)), inout


def demo_inputs(frame: Image.Image, box: list, share: float = 0.1,
                integer_crop: bool = False) -> tuple:
    """Their demo.py: the box enlarged by ``share`` (left, then right from the new left, top,
    bottom), the float crop (``integer_crop``: at int() of the box, their datasets' crop),
    Resize((224, 224)) + ToTensor + Normalize, get_head_box_channel."""
    left, top, right, bottom = box
    left -= (right - left) * share
    right += (right - left) * share
    top -= (bottom - top) * share
    bottom += (bottom - top) * share
    def transform(picture):
        array = np.asarray(picture.resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255
        return torch.from_numpy(((array - MEAN) / STD).astype(np.float32)).permute(2, 0, 1)[None]
    width, height = frame.size
    corners = (np.array([left / width, top / height, right / width, bottom / height])
               * 224).astype(int)
    x1, y1, x2, y2 = np.clip(corners, 0, 223)
    channel = torch.zeros(1, 1, 224, 224)
    channel[0, 0, y1:y2, x1:x2] = 1
    crop = (left, top, right, bottom)
    crop = tuple(int(v) for v in crop) if integer_crop else crop
    return transform(frame), channel, transform(frame.crop(crop))


def test_a_released_spatial_file_predicts_what_their_demo_gives(tmp_path):
    released = released_spatial()
    torch.save(released, tmp_path / "model_demo.pt")
    predictor = GazePredictor.from_pretrained(tmp_path / "model_demo.pt", device="cpu")
    assert predictor.config.model.scene_layers == [1, 1, 1, 1, 1]
    rng = np.random.default_rng(1)
    frame = Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    boxes = [(41.3, 30.6, 92.2, 88.9), (200.0, 101.5, 255.7, 170.2)]
    people = predictor.predict([frame], [boxes])[0]
    for person, box in zip(people, boxes):
        with torch.no_grad():
            heatmap, inout = reference_forward(released["model"], *demo_inputs(frame, list(box)))
        assert person.heatmap.shape == (64, 64)
        np.testing.assert_allclose(person.heatmap, heatmap[0, 0].numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(person.inout, torch.sigmoid(inout).item(), atol=1e-5)


def test_a_released_file_evaluates_and_fine_tunes(tmp_path):
    """--eval_weights scores it on the built-in world; run.init_weights starts a run of the
    recipe from it (every weight in its place: nothing new)."""
    from main import main
    torch.save(released_spatial(), tmp_path / "model_gazefollow.pt")
    world = [f"data.dataset_dir={tmp_path / 'world'}", "synthetic.num_train=16",
             "synthetic.num_test=3", "synthetic.annotators=2", "data.num_workers=0",
             "logging.wandb=disabled"]
    results = main(["--eval_weights", str(tmp_path / "model_gazefollow.pt"),
                    "--config", str(ROOT / "configs" / "data" / "synthetic.yaml"), *world])
    assert 0 <= results["model"]["auc"] <= 1
    trained = main(["--experiment", str(ROOT / "configs" / "experiments" /
                                        "chong2020_gazefollow.yaml"),
                    "--config", str(TINY), *world, f"data.dataset_dir={tmp_path / 'tiny'}",
                    f"run.output_dir={tmp_path / 'out'}",
                    "--max_steps", "2", "model.scene_layers=[1,1,1,1,1]",
                    "model.face_layers=[1,1,1,1,1]", "model.scene_inplanes=16",
                    "model.face_inplanes=16", "model.context_dim=256", "model.inout_hidden=128",
                    "data.input_size=224", "data.face_size=224", "data.output_size=64",
                    "data.batch_size=4", "eval.batch_size=4",
                    f"run.init_weights={tmp_path / 'model_gazefollow.pt'}"])
    assert 0 <= trained["model"]["auc"] <= 1
    report = next((tmp_path / "out").rglob("init_weights*.json"))
    assert '"new": []' in report.read_text()


@pytest.mark.parametrize("recipe_name", ["chong2020_gazefollow", "chong2020_vat"])
def test_the_configuration_is_the_released_architecture(recipe_name):
    """configs/experiments/chong2020_{gazefollow,vat}.yaml build what the released files
    (ModelSpatial, ModelSpatioTemporal) are."""
    from gazefollow.config import to_dict
    from gazefollow.following.published.chong import chong_architecture
    from gazefollow.tasks import build_config
    layers = (3, 4, 6, 3, 2)
    shapes = {"conv1_scene.weight": (64, 4, 7, 7), "compress_conv1_inout.weight": (512, 2048, 1, 1)}
    shapes.update({f"layer{s}_{b}.{i}.conv1.weight": (1,) for b in ("scene", "face")
                   for s, n in enumerate(layers, start=1) for i in range(n)})
    if recipe_name == "chong2020_vat":
        shapes.update({f"convlstm_scene.weight_ih_l{k}": (1,) for k in (0, 1)})
    released = {key: torch.empty(shape) for key, shape in shapes.items()}
    recipe = to_dict(build_config([ROOT / "configs" / "experiments" / f"{recipe_name}.yaml"]))
    for item in chong_architecture(released):
        key, value = item.split("=", 1)
        section, field = key.split(".")
        assert str(recipe[section][field]).replace(" ", "").lower() == value.replace(" ", ""), key
