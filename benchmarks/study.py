"""The SUMix study (also `keras-sumix study`): MCE against SUMix's variants,
mixers, two datasets, seeds; lambda fidelity, occlusion, wall-clock.

    KERAS_BACKEND=tensorflow python benchmarks/study.py              # full grid
    KERAS_BACKEND=tensorflow python benchmarks/study.py --parts A    # one part
    KERAS_BACKEND=tensorflow python benchmarks/study.py --quick      # < 1 min
    python benchmarks/study.py --summary-only                        # report only

Each finished run is appended to `benchmarks/results/study/runs.jsonl`; a
rerun skips the runs recorded there. The summary (`summary.json`), the tables
(`study.md`) and the plot (`study.png`) are written next to it;
`python benchmarks/readme_tables.py` copies the tables into the docs and the README. The
engine is `keras_sumix.study`.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the study."""
    from keras_sumix.study.command import add_arguments, run_from_args

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    args = add_arguments(parser).parse_args(argv)
    try:
        return run_from_args(args, "python benchmarks/study.py")
    except (ValueError, TypeError) as error:
        print(f"study: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
