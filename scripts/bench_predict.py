"""Prediction speed on this machine: ms per person through GazePredictor.

    python scripts/bench_predict.py [--batch 8] [--repeats 3] [--threads 2]

Rows: the default experiment's model and the full-size model (configs/diffusion.yaml +
gaze.yaml, 224 px) at 1, 4 and 10 DDIM steps, the full-size model with the UNet it had
before (64x64, two blocks per level), the full-size regression head, Gaze-LLE ViT-B/14 and
our diffusion head on DINOv2 ViT-B/14 (448 px; with ``--device cuda`` also with DINOv2 in
bfloat16); their encoders alone and
one UNet call alone; as the physical reference, two plain ResNet-50 forward passes at 224 px
built with our own ResNet class (what the classic two-branch gaze-following model costs); and
the face detector's ms per 640x480 image; for every model also the preparation of its inputs
alone (images read, scenes resized, faces cropped). ``--only`` keeps the model rows whose
name holds it; ``--compile MODE`` adds each diffusion model sampled with
``sampling.compile=MODE`` (its compilation falls in the warm-up call). A second table
times one UNet call for each full-size UNet shape (UNET_SHAPES): where its time goes. A
third times the other tasks' predictors per face: each gaze estimator
(GazeEstimator.estimate with the normalisation, and the model alone; the normalisation
alone) and Looking-At-Me per face per frame (LookingPredictor.predict on 8 frames). Weights
are freshly initialised: speed does not depend on them. Each number is the best of
``--repeats`` timed calls after one warm-up call, on ``--batch`` people in one image. Prints
markdown tables.
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gazefollow.backbones.resnet import ResNet  # noqa: E402
from gazefollow.following.models.gaze_model import build_model  # noqa: E402
from gazefollow.following.predict import GazePredictor  # noqa: E402
from gazefollow.tasks import build_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE = [ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml"]
MODELS = {
    "default experiment (64 px)": (BASE + [ROOT / "configs" / "experiments" /
                                           "synthetic_cpu.yaml"], []),
    "full size (224 px)": (BASE, []),
    # the full-size UNet before this speed work: at the 64x64 heatmap, 2 blocks per level,
    # widths 64/128/256
    "full size, earlier UNet": (BASE, ["model.unet_patch_size=1",
                                       "model.unet_layers_per_block=2",
                                       "model.unet_inplanes=64", "model.unet_norm_groups=32"]),
    "full size, regression head": (BASE, ["model.head=regression"]),
    # frozen DINOv2 ViT-B/14 at 448 px (random weights: speed does not depend on them)
    "Gaze-LLE ViT-B/14 (448 px)": (BASE + [ROOT / "configs" / "experiments" /
                                           "gazelle_vitb14_inout.yaml"], []),
    "DINOv2 ViT-B/14 + diffusion (448 px)": (BASE + [ROOT / "configs" / "experiments" /
                                                     "dinov2_diffusion.yaml"], []),
}
# with --device cuda also these in bfloat16 (DINOv2 under autocast)
BF16 = ("Gaze-LLE ViT-B/14 (448 px)", "DINOv2 ViT-B/14 + diffusion (448 px)")


def best_ms(call, repeats: int) -> float:
    def timed() -> float:
        start = time.perf_counter()
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - start
    timed()  # warm-up
    return 1000 * min(timed() for _ in range(repeats))


def people(batch: int, rng) -> tuple[np.ndarray, list]:
    image = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    boxes = [(20 + 60 * (i % 8), 40 + 100 * (i // 8), 70 + 60 * (i % 8), 100 + 100 * (i // 8))
             for i in range(batch)]
    return image, boxes


def model_settings(device: str, only: str = "", compile_mode: str = "none"):
    """(row name, YAML layers, overrides) of every model row on this device (those whose
    name holds ``only``); with a ``compile_mode``, each diffusion model again with it."""
    for name, (layers, overrides) in MODELS.items():
        if only not in name:
            continue
        yield name, layers, overrides
        if device == "cuda" and name in BF16:
            yield f"{name}, bf16 DINOv2", layers, [*overrides, "model.dinov2_bf16=true"]
        if compile_mode != "none" and "regression" not in name and "Gaze-LLE" not in name:
            yield (f"{name}, sampling.compile={compile_mode}", layers,
                   [*overrides, f"sampling.compile={compile_mode}"])


def model_rows(batch: int, repeats: int, rng, device: str, only: str = "",
               compile_mode: str = "none") -> list[tuple[str, float]]:
    rows = []
    image, boxes = people(batch, rng)
    for name, layers, overrides in model_settings(device, only, compile_mode):
        config = build_config(layers, [*overrides, f"eval.batch_size={batch}",
                                       f"run.device={device}"])
        torch.manual_seed(0)
        predictor = GazePredictor(build_model(config).to(device), config, device, "raw")
        steps = [1] if not config.model.head == "diffusion" else [1, 4, 10]
        for count in steps:
            ms = best_ms(lambda: predictor.predict([image], [boxes], steps=count), repeats)
            label = "" if config.model.head != "diffusion" else f", {count} step(s)"
            rows.append((f"{name}{label}", ms / batch))
        ms = best_ms(lambda: predictor._inputs([image], [boxes]), repeats)
        rows.append((f"{name}: preparing the inputs only", ms / batch))
        if "sampling.compile" in name:
            continue
        stacked = stacked_inputs(predictor, image, boxes)
        with torch.no_grad():
            ms = best_ms(lambda: predictor.model.encode(stacked), repeats)
            rows.append((f"{name}: encoders and in/out head only", ms / batch))
            if config.model.head == "diffusion":
                rows.append((f"{name}: one UNet call", unet_ms(predictor, stacked, repeats)
                             / batch))
    return rows


def stacked_inputs(predictor: GazePredictor, image: np.ndarray, boxes: list) -> dict:
    """The people of one image as one batch of model inputs."""
    inputs, _ = predictor._inputs([image], [boxes])
    return {k: torch.stack([p[k] for p in inputs]).to(predictor.device) for k in inputs[0]}


def unet_ms(predictor: GazePredictor, stacked: dict, repeats: int) -> float:
    """One denoiser call on encoded people: the cost each extra sampling step adds."""
    cond = predictor.model.encode(stacked)
    size = predictor.config.data.output_size
    x_t = torch.randn(len(stacked["face"]), 1, size, size, device=predictor.device)
    t = torch.full((len(x_t),), 500, device=predictor.device)
    return best_ms(lambda: predictor.model.head.denoise(x_t, t, cond), repeats)


# Where the full-size UNet's time goes: one denoiser call per shape (configs/gaze.yaml widths).
WIDTH_64 = ["model.unet_inplanes=64", "model.unet_norm_groups=32"]
UNET_SHAPES = {
    "earlier: 64x64, 2 blocks/level, width 64, attention at 16x16 + mid":
        [*WIDTH_64, "model.unet_patch_size=1", "model.unet_layers_per_block=2"],
    "earlier without attention (the mid block keeps one)":
        [*WIDTH_64, "model.unet_patch_size=1", "model.unet_layers_per_block=2",
         "model.unet_attention_levels=[]"],
    "64x64, 1 block/level, width 64": [*WIDTH_64, "model.unet_patch_size=1"],
    "patch 2 (32x32), 2 blocks/level, width 64": [*WIDTH_64, "model.unet_layers_per_block=2"],
    "patch 2 (32x32), 1 block/level, width 64": WIDTH_64,
    "patch 2 (32x32), 1 block/level, width 48": ["model.unet_inplanes=48"],
    "patch 2 (32x32), 1 block/level, width 32 (the default)": [],
    "patch 4 (16x16), 1 block/level, width 64, attention at 8x8 + mid":
        [*WIDTH_64, "model.unet_patch_size=4", "model.unet_attention_levels=[1]"],
}


def unet_shape_rows(batch: int, repeats: int, rng) -> list[tuple[str, float, float]]:
    """(shape, ms per person per UNet call, parameters in millions) of each UNET_SHAPES."""
    image, boxes = people(batch, rng)
    rows = []
    for name, overrides in UNET_SHAPES.items():
        config = build_config(BASE, [*overrides, f"eval.batch_size={batch}", "run.device=cpu"])
        torch.manual_seed(0)
        predictor = GazePredictor(build_model(config), config, "cpu", "raw")
        with torch.no_grad():
            ms = unet_ms(predictor, stacked_inputs(predictor, image, boxes), repeats) / batch
        size = sum(p.numel() for p in predictor.model.head.denoiser.parameters()) / 1e6
        rows.append((name, ms, size))
    return rows


def reference_row(batch: int, repeats: int, device: str) -> tuple[str, float]:
    torch.manual_seed(0)
    scene = ResNet([3, 4, 6, 3], block="bottleneck", in_channels=4).eval().to(device)
    face = ResNet([3, 4, 6, 3], block="bottleneck").eval().to(device)
    x4 = torch.randn(batch, 4, 224, 224, device=device)
    x3 = torch.randn(batch, 3, 224, 224, device=device)
    with torch.no_grad():
        ms = best_ms(lambda: (scene(x4), face(x3)), repeats)
    return "reference: two ResNet-50 forward passes at 224 px (our ResNet)", ms / batch


def detector_row(repeats: int, rng) -> tuple[str, float] | None:
    try:
        from gazefollow.following.heads_found import FaceHeadDetector
        detector = FaceHeadDetector()
    except ImportError:
        return None
    image = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    return "face detector (yuface), ms per 640x480 image", best_ms(lambda: detector(image),
                                                                    repeats)


ESTIMATORS = {  # configs/estimation/<file>: the estimators a user predicts with
    "GazeNet (MobileNetV2, 112 px)": ["base.yaml"],
    "ResNet-18 (224 px)": ["base.yaml", "resnet18.yaml"],
    "ResNet-50 (224 px)": ["base.yaml", "resnet50.yaml"],
    "UniGaze ViT-B/16 (224 px)": ["base.yaml", "unigaze_b16.yaml"],
    "GEFF (ResNet-18 + eyes, 224 px)": ["base.yaml", "geff.yaml"],
}
LOOKERS = {  # configs/lam/<file>
    "GazeLSTM (7 x 224 px)": (["base.yaml"], []),
    "GazePose, landmark prior only (7 x 224 px)": (["base.yaml", "gazepose.yaml"],
                                                  ["lam.gazepose_head_prior=false"]),
}


def _task_config(files: list, overrides: list, task: str):
    return build_config([ROOT / "configs" / task / f for f in files],
                        [f"run.task={'estimation' if task == 'estimation' else 'lam'}",
                         *overrides])


def estimation_rows(batch: int, repeats: int, rng) -> list[tuple[str, float]]:
    """Per face on a 640x480 picture of ``batch`` faces (given boxes and landmarks, so the
    normalisation runs: ETH-XGaze's virtual camera): the whole estimate, the normalisation
    alone, the model alone."""
    import cv2

    from gazefollow.estimation.models import build_estimator, estimate
    from gazefollow.estimation.normalise import FACE_MODEL, default_camera, normalise_face
    from gazefollow.estimation.predict import ETH_XGAZE, GazeEstimator

    picture = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    camera = default_camera(640, 480)
    boxes, marks = [], []
    for k in range(batch):  # faces side by side, 650 mm away, turned a little
        rotation = cv2.Rodrigues(np.array([0.1, 0.2 * (k % 3 - 1), 0.0]))[0]
        where = np.array([-250.0 + 500.0 * k / max(batch - 1, 1), 0.0, 650.0])
        points = cv2.projectPoints(FACE_MODEL, cv2.Rodrigues(rotation)[0], where, camera,
                                   np.zeros(4))[0].reshape(5, 2)
        marks.append(points)
        boxes.append((*(points.min(axis=0) - 20), *(points.max(axis=0) + 20)))
    rows = [("normalisation (solvePnP + warp to 224 px), per face",
             best_ms(lambda: [normalise_face(picture, m, camera, ETH_XGAZE) for m in marks],
                     repeats) / batch)]
    for name, files in ESTIMATORS.items():
        config = _task_config(files, [], "estimation")
        model = build_estimator(config).eval()
        estimator = GazeEstimator(model, config, "cpu", normalisation=ETH_XGAZE)
        size = config.data.face_size
        faces = {"face": torch.randn(batch, 3, size, size),
                 "eye_landmarks": torch.rand(batch, 6, 2)}
        with torch.no_grad():
            alone = best_ms(lambda: estimate(model, faces), repeats) / batch
        whole = best_ms(lambda: estimator.estimate([picture], [boxes], [marks]), repeats) / batch
        rows += [(f"{name}: estimate (normalisation included)", whole),
                 (f"{name}: the model alone", alone)]
    return rows


def looking_rows(batch: int, repeats: int, rng, frames: int = 8) -> list[tuple[str, float]]:
    """Per face per frame: ``frames`` frames of 640x480 with ``batch`` faces each (given
    boxes), through LookingPredictor.predict (crops, windows, the model)."""
    from gazefollow.social.predict import LookingPredictor
    from gazefollow.social.task import build_lam_model

    video = [rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8) for _ in range(frames)]
    boxes = [[(20 + 75 * k, 200, 90 + 75 * k, 280) for k in range(batch)]] * frames
    rows = []
    for name, (files, overrides) in LOOKERS.items():
        config = _task_config(files, overrides, "lam")
        predictor = LookingPredictor(build_lam_model(config).eval(), config, "cpu")
        rows.append((f"Looking-At-Me {name}",
                     best_ms(lambda: predictor.predict(video, boxes), repeats)
                     / (frames * batch)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--only", default="", help="only the model rows whose name holds this")
    parser.add_argument("--compile", default="none", help="also each diffusion model with "
                        "this sampling.compile mode (default, reduce-overhead, ...)")
    parser.add_argument("--no_other_tables", action="store_true",
                        help="the first table only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = (model_rows(args.batch, args.repeats, rng, args.device, args.only, args.compile)
            + [reference_row(args.batch, args.repeats, args.device)])
    detector = detector_row(args.repeats, rng)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.threads} threads, torch {torch.__version__}, {args.device}; batch {args.batch}, "
          "people of one image (the DINOv2 models run their backbone once for them); best "
          f"of {args.repeats} after a warm-up\n")
    print("| what | ms per person |")
    print("|---|---|")
    for name, ms in rows + ([detector] if detector else []):
        print(f"| {name} | {ms:.1f} |")
    if args.device != "cpu" or args.no_other_tables:  # the other tables are a CPU study
        return
    print("\n| gaze estimation and Looking-At-Me (detection apart: the row above) | "
          "ms per face (per frame) |")
    print("|---|---|")
    for name, ms in (estimation_rows(args.batch, args.repeats, rng)
                     + looking_rows(args.batch, args.repeats, rng)):
        print(f"| {name} | {ms:.1f} |")
    print("\n| full-size UNet shape | ms per person per call | UNet parameters (M) |")
    print("|---|---|---|")
    for name, ms, size in unet_shape_rows(args.batch, args.repeats, rng):
        print(f"| {name} | {ms:.1f} | {size:.2f} |")


if __name__ == "__main__":
    main()
