"""How well the face detector and the face -> head rule find annotated heads.

    python scripts/calibrate_heads.py --images DIR --boxes FILE
        [--scales 1.3 1.5 1.7] [--shifts 0.1 0.2 0.3] [--confidence 0.6]

--boxes holds annotated head boxes (pixels xyxy) in any format the demo reads: JSON or CSV by
image name, or a VideoAttentionTarget clip's annotation folder (its s*.txt track files, keyed
by frame file name; then --images is the clip's frame folder, images/<show>/<clip>). Faces are
detected once per image; for each rule (side = scale x max(face w, h), centre moved up by
shift x face h) the table gives the annotated heads matched one to one at IoU >= 0.5, their
mean IoU, and the head boxes found that match no annotation. The rule in use is marked.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from gazefollow.engine.face_detector import FACE_BACKENDS  # noqa: E402
from gazefollow.following.heads_found import (HEAD_SCALE, HEAD_SHIFT_UP,  # noqa: E402
                                              FaceHeadDetector, face_to_head, match_heads,
                                              read_boxes_file)
from gazefollow.following.predict import as_rgb_image  # noqa: E402


def detected_faces(images: Path, annotated: dict, detector) -> dict:
    """Image name -> (faces found, width, height) for every annotated image."""
    out = {}
    for name in sorted(annotated):
        rgb = np.asarray(as_rgb_image(images / name))
        out[name] = (detector.faces(rgb), rgb.shape[1], rgb.shape[0])
    return out


def rule_row(faces: dict, annotated: dict, scale: float, shift: float) -> tuple:
    """(matched heads, annotated heads, mean IoU of the matches, unmatched found boxes)."""
    ious, unmatched = [], 0
    for name, (found, width, height) in faces.items():
        heads = [face_to_head(face, width, height, scale, shift) for face, _ in found]
        matched = match_heads(heads, annotated[name])
        ious += matched
        unmatched += len(heads) - sum(m is not None for m in matched)
    hits = [iou for iou in ious if iou is not None]
    return len(hits), len(ious), float(np.mean(hits)) if hits else 0.0, unmatched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True)
    parser.add_argument("--boxes", required=True)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.3, 1.5, 1.7])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--confidence", type=float, default=0.6)
    parser.add_argument("--detector", default="auto", choices=["auto", *FACE_BACKENDS])
    args = parser.parse_args()
    annotated = read_boxes_file(args.boxes)
    detector = FaceHeadDetector(args.confidence, args.detector)
    faces = detected_faces(Path(args.images), annotated, detector)
    print(f"\n{len(faces)} image(s), {sum(map(len, annotated.values()))} annotated head(s), "
          f"detector {detector.backend} at confidence {args.confidence}\n")
    print("| scale | shift up | heads matched at IoU 0.5 | mean IoU of matches | "
          "found, unmatched |")
    print("|---|---|---|---|---|")
    for scale in args.scales:
        for shift in args.shifts:
            hits, total, iou, unmatched = rule_row(faces, annotated, scale, shift)
            mark = " (in use)" if (scale, shift) == (HEAD_SCALE, HEAD_SHIFT_UP) else ""
            print(f"| {scale}{mark} | {shift} | {hits}/{total} ({100 * hits / max(total, 1):.0f}%)"
                  f" | {iou:.3f} | {unmatched} |")


if __name__ == "__main__":
    main()
