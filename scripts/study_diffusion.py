"""The diffusion studies, each variant trained once on the synthetic world and sampled with
DDIM and DPM-Solver++ at 1, 2, 4, 10 and 50 steps.

    python scripts/study_diffusion.py [--out outputs/study] [--steps 1 2 4 10 50]
    python scripts/study_diffusion.py --suite unet [--max_steps 300] [--steps 1 4]

``--suite diffusion`` (default): prediction type, fixed vs learned sigma, diffusion vs
regression, on the default synthetic configuration. ``--suite foundation``: the gazelle
encoder (Gaze-LLE's prompt and blocks) on a small ViT trained with the model, under Gaze-LLE's
decoder, the diffusion head and the regression head, at equal training steps, beside the
default model. ``--suite unet``: the full-size UNet's
shapes (the earlier one at the 64x64 heatmap with two blocks per level, and the patched ones
with one) at the full-size data sizes, 224 px scene and face, 64x64 heatmap, on the default
experiment's small encoders so it fits a CPU (the encoders are the same in every variant).

Runs go to <out>/<variant>/ (a finished run is reused: rerunning only evaluates). Metrics come
from the evaluation code (GazeFollow protocol on the test split; in/out AP on the validation
split, which does not depend on the sampler). Milliseconds per image are measured apart, on
test batches already in memory, as encoders + sampler only (no data loading or scoring), in
one process, one setting after another. Prints one markdown table and the two checks of
issue 5: the best <= 4-step AUC against the 50-step AUC, and the time against regression.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gazefollow.engine.samples import BAD_KEY, collate_samples
from gazefollow.following.data.build import build_datasets  # noqa: E402
from gazefollow.following.evaluate import run_split  # noqa: E402
from gazefollow.tasks import build_config, load_for_eval, train

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml",
          ROOT / "configs" / "experiments" / "synthetic_cpu.yaml"]
VARIANTS = {  # name: (run tag, overrides)
    "x0 (default)": ("x0", []),
    "eps": ("eps", ["diffusion.prediction=eps"]),
    "v": ("v", ["diffusion.prediction=v"]),
    "x0, learned sigma": ("x0_learned_sigma", ["diffusion.learn_sigma=true",
                                               "diffusion.rescale_learned_sigmas=true"]),
    "regression": ("regression", ["model.head=regression"]),
}
# The full-size UNet at the full-size data sizes (configs/gaze.yaml) on small encoders.
FULL_SIZE_UNET = ["data.input_size=224", "data.face_size=224", "data.output_size=64",
                  "model.scene_stem_pool=true", "model.unet_multipliers=[1,2,4]",
                  "data.batch_size=8", "optim.warmup_steps=50"]


def unet_shape(patch: int, blocks: int, attention: int, width: int = 64,
               groups: int = 32) -> list[str]:
    return [f"model.unet_patch_size={patch}", f"model.unet_layers_per_block={blocks}",
            f"model.unet_attention_levels=[{attention}]", f"model.unet_inplanes={width}",
            f"model.unet_norm_groups={groups}"]


UNET_VARIANTS = {
    "earlier UNet: 64x64, 2 blocks/level, width 64": ("unet_p1_b2", unet_shape(1, 2, 2)),
    "patch 2 (32x32), 1 block/level, width 64": ("unet_p2_b1", unet_shape(2, 1, 2)),
    "patch 2, width 48 (16 norm groups)": ("unet_p2_b1_w48", unet_shape(2, 1, 2, 48, 16)),
    "patch 2, width 32 (16 norm groups)": ("unet_p2_b1_w32", unet_shape(2, 1, 2, 32, 16)),
    "patch 4 (16x16), 1 block/level, width 64": ("unet_p4_b1", unet_shape(4, 1, 1)),
}
# A prompted-token (gazelle) encoder on a small ViT trained with the model (DINOv2's design,
# no pretrained weights here), under its three heads; the default model for reference.
FOUNDATION = ["model.encoder=gazelle", "model.dinov2_size=tiny", "model.freeze_backbone=false",
              "data.input_size=112", "model.gazelle_dim=64", "model.gazelle_heads=4",
              "model.gazelle_inout_token=true"]
FOUNDATION_VARIANTS = {
    "ViT + Gaze-LLE decoder": ("vit_gazelle", [*FOUNDATION, "model.head=gazelle"]),
    "ViT + diffusion head (x0)": ("vit_diffusion", FOUNDATION),
    "ViT + regression head": ("vit_regression", [*FOUNDATION, "model.head=regression"]),
    "ResNet pair + diffusion (default)": ("x0", []),
    # the same decoder on 4x the tokens (16 x 16): does a finer grid let the ViT read heads?
    "ViT (224 px) + Gaze-LLE decoder": ("vit224_gazelle", [*FOUNDATION, "data.input_size=224",
                                                          "model.head=gazelle"]),
}
SUITES = {"diffusion": ([], VARIANTS, ["ddim", "dpm_solver"]),
          "unet": (FULL_SIZE_UNET, UNET_VARIANTS, ["ddim"]),
          "foundation": ([], FOUNDATION_VARIANTS, ["ddim"])}


def milliseconds_per_image(loaded: dict, batches: list[dict], steps: int) -> float:
    """Encoders + sampler over preloaded test batches, per image."""
    model, config = loaded["model"], loaded["config"]
    model.eval()
    start, count = time.perf_counter(), 0
    with torch.no_grad():
        for batch in batches:
            cond = model.encode(batch)
            model.head.predict(cond, batch["index"].tolist(), config.run.seed, steps,
                               config.sampling)
            count += len(batch["index"])
    return 1e3 * (time.perf_counter() - start) / count


def study_variant(name: str, tag: str, overrides: list[str], out: Path,
                  steps_list: list[int], samplers: list[str]) -> list:
    config = build_config(LAYERS, [f"run.output_dir={out}", f"run.tag={tag}",
                                   "logging.wandb=disabled", "eval.extra_steps=[]", *overrides])
    run_dir = train(config, log=lambda *_: None).run_dir
    # Data, the in/out AP (it does not depend on the sampler) and the timing batches: once.
    datasets = build_datasets(config, splits=("val", "test"), log=lambda *_: None)
    test = datasets["test"]
    batches = []
    for start in range(0, len(test), config.eval.batch_size):
        batch = collate_samples([test[i] for i in
                                 range(start, min(start + config.eval.batch_size, len(test)))])
        batch.pop(BAD_KEY)
        batches.append(batch)
    rows, ap = [], None
    for sampler in (samplers if config.model.head == "diffusion" else ["one pass"]):
        loaded = load_for_eval(run_dir, [] if sampler == "one pass" else
                               [f"sampling.sampler={sampler}"])
        common = dict(batch_size=config.eval.batch_size, seed=config.run.seed,
                      device=loaded["device"], prior_inout=0.5)
        sampling = loaded["config"].sampling
        if ap is None:
            ap = run_split(loaded["model"], datasets["val"], [], sampling, **common).inout_ap
        counts = [1] if sampler == "one pass" else steps_list
        metrics = run_split(loaded["model"], test, counts, sampling, **common).model
        for steps in counts:
            ms = milliseconds_per_image(loaded, batches, steps)
            rows.append((name, sampler, steps, metrics[steps], ap, ms))
            print(f"{name:<20} {sampler:<10} {steps:>3} steps: AUC {metrics[steps]['auc']:.4f} "
                  f"Avg L2 {metrics[steps]['avg_l2']:.4f}  {ms:.2f} ms/image", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/study")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 10, 50])
    parser.add_argument("--suite", choices=sorted(SUITES), default="diffusion")
    parser.add_argument("--max_steps", type=int, help="shorten every training run")
    parser.add_argument("--only", nargs="+", help="run the variants whose tags are listed")
    args = parser.parse_args()
    common, variants, samplers = SUITES[args.suite]
    if args.max_steps:
        common = [*common, f"run.max_steps={args.max_steps}"]
    rows = []
    for name, (tag, overrides) in variants.items():
        if args.only and tag not in args.only:
            continue
        rows += study_variant(name, tag, [*common, *overrides], Path(args.out), args.steps,
                              samplers)
    setting = " ".join(common) or "configs/experiments/synthetic_cpu.yaml"
    print(f"\nmachine: {torch.get_num_threads()} torch threads, {sys.platform}; synthetic "
          f"world, suite {args.suite} ({setting}), EMA weights, test split (300 heads), "
          "in/out AP on validation\n")
    print("| variant | sampler | steps | AUC | Avg L2 | Min L2 | in/out AP | ms / image |")
    print("|---|---|---|---|---|---|---|---|")
    for name, sampler, steps, m, ap, ms in rows:
        print(f"| {name} | {sampler} | {steps} | {m['auc']:.4f} | {m['avg_l2']:.4f} | "
              f"{m['min_l2']:.4f} | {ap:.4f} | {ms:.2f} |")
    if args.suite != "diffusion":
        return
    regression_ms = next(ms for name, *_, ms in rows if name == "regression")
    diffusion_rows = [r for r in rows if r[0] != "regression"]
    few = max((r for r in diffusion_rows if r[2] <= 4), key=lambda r: r[3]["auc"])
    many = next(r for r in diffusion_rows if r[:2] == few[:2] and r[2] == max(args.steps))
    print(f"\nbest <= 4-step setting: {few[0]}, {few[1]}, {few[2]} step(s): AUC "
          f"{few[3]['auc']:.4f} = {100 * few[3]['auc'] / many[3]['auc']:.1f}% of its "
          f"{many[2]}-step AUC {many[3]['auc']:.4f}; {few[5]:.2f} ms/image = "
          f"{few[5] / regression_ms:.2f}x the regression decoder's {regression_ms:.2f} ms/image")


if __name__ == "__main__":
    main()
