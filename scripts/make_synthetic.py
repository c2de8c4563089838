"""Write the synthetic gaze world to a folder, in the layout of a real dataset.

    python scripts/make_synthetic.py --out datasets/synthetic_gazeworld [synthetic.key=value ...]
    python scripts/make_synthetic.py --layout videoattentiontarget --out datasets/synthetic_vat
    python scripts/make_synthetic.py --layout goo --out datasets/synthetic_goo
    python scripts/make_synthetic.py --layout video --out datasets/synthetic_video

Then train on it with the matching reader, e.g.
    python main.py --source_dataset videoattentiontarget --source_dataset_dir datasets/synthetic_vat

``video`` writes temporally coherent tracks in the VideoAttentionTarget layout (moving heads,
the gaze moving between objects and out of frame, faces briefly hidden), for the temporal
models (``model.temporal=convlstm``).

The settings come from the `synthetic` config section (defaults in
gazefollow/following/config.py), so a gazefollow-layout world made here is the one
`python main.py` would make with the same overrides. Deterministic: the same settings give
byte-identical files.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gazefollow.config import ConfigError  # noqa: E402
from gazefollow.following.data.synthetic import generate_world  # noqa: E402
from gazefollow.following.data.synthetic_layouts import (write_goo_world,  # noqa: E402
                                                         write_vat_world)
from gazefollow.following.data.synthetic_video import write_video_world  # noqa: E402
from gazefollow.tasks import build_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="datasets/synthetic_gazeworld")
    parser.add_argument("--layout", default="gazefollow",
                        choices=["gazefollow", "videoattentiontarget", "goo", "video"])
    parser.add_argument("--frames_per_clip", type=int, default=None,
                        help="VAT and video layouts only (default 5 and 24)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a synthetic world written earlier in --out (a folder "
                             "without its synthetic_world.json marker is never touched)")
    parser.add_argument("overrides", nargs="*", help="synthetic.key=value, e.g. synthetic.seed=3")
    args = parser.parse_args()
    bad = [o for o in args.overrides if not o.startswith("synthetic.")]
    if bad:
        sys.exit(f"only synthetic.* settings apply here, got {bad}")
    try:
        config = build_config(overrides=args.overrides)
    except ConfigError as err:
        sys.exit(f"configuration error: {err}")
    try:
        if args.layout == "gazefollow":
            generate_world(config.synthetic, args.out, overwrite=args.overwrite)
            return
        if args.layout == "videoattentiontarget":
            write_vat_world(config.synthetic, args.out, args.frames_per_clip or 5,
                            overwrite=args.overwrite)
        elif args.layout == "video":
            write_video_world(config.synthetic, args.out, args.frames_per_clip or 24,
                              overwrite=args.overwrite)
        else:
            write_goo_world(config.synthetic, args.out, overwrite=args.overwrite)
    except FileExistsError as err:
        sys.exit(f"error: {err}")
    print(f"synthetic world written to {args.out} in the {args.layout} layout")


if __name__ == "__main__":
    main()
