"""Score Looking-At-Me predictions from Ego4D's CSV files (what `--task lam` writes, or any
other model's files in the same columns), with the project's mAP and accuracy.

    python scripts/score_lam.py RUN_DIR/gt.csv RUN_DIR/pred.csv
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gazefollow.engine.samples import BadInput
from gazefollow.social.csv_files import score_csvs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gt")
    parser.add_argument("pred")
    args = parser.parse_args()
    try:
        result = score_csvs(args.gt, args.pred)
    except (BadInput, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    print(f"{result['rows']} rows: mAP {100 * result['map']:.2f}, "
          f"accuracy {100 * result['accuracy']:.2f}")


if __name__ == "__main__":
    main()
