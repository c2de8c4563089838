"""Write the synthetic gaze world (GazeFollow format) to a folder.

    python scripts/make_synthetic.py --out datasets/synthetic_gazeworld [synthetic.key=value ...]

The settings come from the `synthetic` config section (defaults in gazefollow/config.py), so a
world made here is the one `python main.py` would make with the same overrides. Deterministic:
the same settings give byte-identical files.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gazefollow.config import ConfigError, build_config  # noqa: E402
from gazefollow.data.synthetic import generate_world  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="datasets/synthetic_gazeworld")
    parser.add_argument("overrides", nargs="*", help="synthetic.key=value, e.g. synthetic.seed=3")
    args = parser.parse_args()
    bad = [o for o in args.overrides if not o.startswith("synthetic.")]
    if bad:
        sys.exit(f"only synthetic.* settings apply here, got {bad}")
    try:
        config = build_config(overrides=args.overrides)
    except ConfigError as err:
        sys.exit(f"configuration error: {err}")
    generate_world(config.synthetic, args.out)


if __name__ == "__main__":
    main()
