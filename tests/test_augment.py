"""Augmentations: consistent on image, head box and gaze points; seeded; non-accumulating."""
import numpy as np
import pytest
import torch

from gazefollow.following.data.augment import AugmentSettings
from gazefollow.following.data.build import build_datasets
from gazefollow.following.data.dataset import HeadDataset
from tests.conftest import tiny_config

ALL_ON = AugmentSettings(box_jitter=1.0, crop=1.0, flip=1.0, color=1.0)


def _train_dataset(tiny_world, augment, output_size=64):
    _, config = tiny_world
    instances = build_datasets(config, splits=("train",), log=lambda *_: None)["train"].instances
    return HeadDataset(config.data.dataset_dir, instances, input_size=64,
                       output_size=output_size, face_size=16, augment=augment)


@pytest.mark.parametrize("settings", [ALL_ON, AugmentSettings(),
                                      AugmentSettings(crop=1.0, flip=0.0)])
def test_heatmap_argmax_lies_on_the_transformed_gaze_point(tiny_world, settings):
    dataset = _train_dataset(tiny_world, settings)
    checked = 0
    for position in range(len(dataset)):
        for epoch in range(3):
            sample = dataset[(position, epoch)]
            if sample["inout"] == 0:
                assert sample["heatmap"].max() == 0 and (sample["gaze_points"] == -1).all()
                continue
            heatmap = sample["heatmap"][0]
            row, col = divmod(int(heatmap.argmax()), heatmap.shape[1])
            x, y = sample["gaze_points"][0].tolist()
            assert 0 <= x <= 1 and 0 <= y <= 1  # the crop kept the target
            assert abs(col - x * 64) <= 1 and abs(row - y * 64) <= 1
            x0, y0, x1, y1 = sample["head_box"].tolist()
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1  # the crop kept the head
            checked += 1
    assert checked > 20


def test_flip_mirrors_image_box_and_point(tiny_world):
    plain = _train_dataset(tiny_world, None)
    flipped = _train_dataset(tiny_world, AugmentSettings(box_jitter=0, crop=0, flip=1, color=0))
    position = next(k for k, i in enumerate(plain.instances) if i.inout == 1)
    a, b = plain[position], flipped[(position, 0)]
    assert torch.equal(a["image"].flip(-1), b["image"]) and a["image"].dtype == torch.uint8
    assert b["gaze_points"][0, 0] == pytest.approx(1 - a["gaze_points"][0, 0])
    x0, _, x1, _ = a["head_box"].tolist()
    assert b["head_box"][[0, 2]].tolist() == pytest.approx([1 - x1, 1 - x0], abs=1e-6)


def test_seeded_by_epoch_and_sample_and_never_accumulating(tiny_world):
    dataset = _train_dataset(tiny_world, ALL_ON)
    stored = [i.head_box.copy() for i in dataset.instances]
    first = dataset[(2, 7)]
    for epoch in range(30):  # many draws in between must not move the stored boxes
        dataset[(2, epoch)]
    again = dataset[(2, 7)]
    assert torch.equal(first["image"], again["image"])
    assert torch.equal(first["head_box"], again["head_box"])
    assert all(np.array_equal(a, i.head_box) for a, i in zip(stored, dataset.instances))
    assert not torch.equal(dataset[(2, 8)]["image"], first["image"])  # a new epoch, a new view


def test_validation_and_test_are_never_augmented(tiny_world, tmp_path):
    _, config = tiny_world
    config = tiny_config(tmp_path, f"data.dataset_dir={config.data.dataset_dir}",
                         "data.augment=true")
    datasets = build_datasets(config, log=lambda *_: None)
    assert datasets["train"].augment is not None
    assert datasets["val"].augment is None and datasets["test"].augment is None


def test_color_jitter_is_pil_image_enhance_in_order():
    from PIL import Image, ImageEnhance

    from gazefollow.engine.images import color_jitter
    rng = np.random.default_rng(4)
    for _ in range(5):
        image = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
        seed = int(rng.integers(1 << 30))
        draws, expected = np.random.default_rng(seed), image
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            expected = enhancer(expected).enhance(draws.uniform(0.5, 1.5))
        jittered = color_jitter(image, np.random.default_rng(seed), 0.5)
        assert np.array_equal(np.asarray(jittered), np.asarray(expected))


def test_jitter_after_the_resizes_stays_close_to_jittering_the_whole_image(tiny_world):
    """The training view jitters its resized scene and face (cheaper) with the contrast of
    the whole view: within about a grey level of jittering the image first."""
    from PIL import Image

    from gazefollow.engine.images import ColorJitter
    from gazefollow.following.data.preprocess import model_inputs
    root, _ = tiny_world
    image = Image.open(next(iter(sorted(root.rglob("*.jpg"))))).convert("RGB")
    image = image.resize((320, 240), Image.BILINEAR)
    box, rng = np.array([100.0, 60.0, 160.0, 130.0]), np.random.default_rng(1)
    for _ in range(4):
        color = ColorJitter.draw(rng, 0.5)
        later = model_inputs(image, box, 64, 32, 0.1, color=color)
        first = model_inputs(color.apply(image), box, 64, 32, 0.1)
        for key in ("image", "face"):
            levels = (later[key].int() - first[key].int()).abs().float()
            assert levels.mean() < 1.5, key
        unjittered = model_inputs(image, box, 64, 32, 0.1)
        assert not torch.equal(later["image"], unjittered["image"])


@pytest.mark.parametrize("shape", [(480, 640), (72, 96), (300, 200)])
def test_the_torch_scene_resize_is_pil_within_one_grey_level(shape):
    from PIL import Image

    from gazefollow.engine.images import pixels
    from gazefollow.following.data.preprocess import resized_scene, scene_tensor
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*shape, 3),
                                                              dtype=np.uint8))
    for size in (224, 64):
        pil = np.asarray(resized_scene(image, size, "pil")).astype(int)
        fast = np.asarray(resized_scene(image, size, "torch")).astype(int)
        assert fast.shape == (size, size, 3) and np.abs(fast - pil).max() <= 1
        # the tensor path (no jitter) gives the same bytes without a PIL round trip
        assert torch.equal(scene_tensor(image, size, "torch"),
                           pixels(resized_scene(image, size, "torch")))


def test_a_torch_resized_training_view_matches_the_pil_one(tiny_world):
    from PIL import Image

    from gazefollow.engine.images import ColorJitter
    from gazefollow.following.data.preprocess import model_inputs
    root, _ = tiny_world
    image = Image.open(next(iter(sorted(root.rglob("*.jpg"))))).convert("RGB")
    box = np.array([30.0, 20.0, 50.0, 40.0])
    # a grey level of the resize, grown by the jitter's factors (and its mean grey, by one)
    for jitter, scene_levels, face_levels in ((None, 1, 1), (ColorJitter(1.2, 0.8, 1.1), 3, 3)):
        pil = model_inputs(image, box, 64, 32, 0.1, "pil", color=jitter)
        fast = model_inputs(image, box, 64, 32, 0.1, "torch", color=jitter)
        for key, bound in (("image", scene_levels), ("face", face_levels)):
            assert (pil[key].int() - fast[key].int()).abs().max() <= bound, key


@pytest.mark.parametrize("scene_resize", ["pil", "torch", "antialias"])
@pytest.mark.parametrize("head_inputs", ["ours", "chong", "chong_demo"])
def test_a_mirrored_view_is_the_mirrored_image_byte_for_byte(scene_resize, head_inputs):
    """model_inputs mirrors the resized scene and face instead of the whole image: the bytes
    must be those of the mirrored image, for odd and even widths, enlarged and reduced."""
    from PIL import Image

    from gazefollow.engine.images import ColorJitter
    from gazefollow.following.data.augment import mirror
    from gazefollow.following.data.preprocess import model_inputs
    rng = np.random.default_rng(3)
    for width, height in ((640, 480), (97, 61), (301, 200), (40, 90)):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for _ in range(6):
            x0, y0 = rng.uniform(0, width - 8), rng.uniform(0, height - 8)
            box = np.array([x0, y0, rng.uniform(x0 + 4, width), rng.uniform(y0 + 4, height)])
            color = ColorJitter.draw(rng, 0.5) if rng.uniform() < 0.5 else None
            seen, _ = mirror(box, np.zeros((0, 2)), width)
            expected = model_inputs(image.transpose(Image.FLIP_LEFT_RIGHT), seen, 64, 32, 0.1,
                                    scene_resize, head_inputs, color=color)
            got = model_inputs(image, seen, 64, 32, 0.1, scene_resize, head_inputs,
                               color=color, mirrored=True)
            for key in expected:
                assert torch.equal(got[key], expected[key]), (key, width, box)


def test_a_batch_of_bytes_is_normalised_as_its_samples_were(tiny_world):
    """The datasets give 8-bit pictures; GazeModel.encode normalises the batch at once, to the
    float inputs each sample had before."""
    from PIL import Image

    from gazefollow.engine.images import to_tensor
    from gazefollow.engine.samples import collate_samples
    from gazefollow.following.models.gaze_model import normalised_pictures
    dataset = _train_dataset(tiny_world, None)
    samples = [dataset[p] for p in range(3)]
    batch = normalised_pictures(collate_samples(samples))
    for k, sample in enumerate(samples):
        for key in ("image", "face"):
            picture = Image.fromarray(sample[key].permute(1, 2, 0).numpy())
            assert torch.equal(batch[key][k], to_tensor(picture))
    assert normalised_pictures(batch)["image"] is batch["image"]  # floats pass as given


def test_the_scene_and_face_jittered_as_one_picture_are_each_jittered_alone():
    from PIL import Image

    from gazefollow.engine.images import ColorJitter, pixels
    from gazefollow.following.data.preprocess import _jittered
    rng = np.random.default_rng(7)
    for scene_size, face_size in ((64, 32), (48, 48), (32, 56)):
        scene = Image.fromarray(rng.integers(0, 256, (scene_size, scene_size, 3), np.uint8))
        face = Image.fromarray(rng.integers(0, 256, (face_size, face_size, 3), np.uint8))
        color = ColorJitter.draw(rng, 0.5)
        brightened = color.brighten(scene)
        mean = color.grey_mean(brightened)
        got_scene, got_face = _jittered(color, scene, face)
        assert torch.equal(got_scene, pixels(color.apply(brightened, mean, brightened=True)))
        assert torch.equal(got_face, pixels(color.apply(face, mean)))


def test_an_empty_face_window_gives_pils_black_face_with_either_resize():
    from PIL import Image

    from gazefollow.following.data.preprocess import resized_face
    image = Image.fromarray(np.full((40, 60, 3), 200, dtype=np.uint8))
    for window in ((5, 5, 5, 20), (10, 30, 30, 30)):
        pil = resized_face(image, window, 16, "pil")
        fast = resized_face(image, window, 16, "torch", np.array(image))
        assert pil.shape == (3, 16, 16) and torch.equal(pil, fast) and pil.max() == 0
