"""Python function calls and SQL statements per process of the side-by-side benchmark's
two paths: a measure of the engine's own cost that does not move with the machine's load.

    python bench/calls_per_process.py                       # SQLite and PostgreSQL
    python bench/calls_per_process.py --db sqlite --processes 200

The paths and the driver are bench_side_by_side's (``WebflowSide``: the human path with the
caller's lookups, the automatic path in the call that starts it), under both error
policies. Calls are cProfile's count over ``--processes`` processes after a warm-up;
statements are counted on one more process (``webflow.core.sqlcount``).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from bench_side_by_side import WebflowSide  # noqa: E402
from scratch import scratch_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--processes", type=int, default=100)
    args = parser.parse_args()
    print(f"{'database':<10} {'path':<6} {'policy':<6} {'calls/process':>13} {'statements':>10}")
    for kind in args.db.split(","):
        with scratch_database(kind, "webflow_calls") as url:
            side = WebflowSide(url)
            try:
                for path in ("human", "auto"):
                    for policy, propagate in (("code", True), ("web", False)):
                        side.run(path, 20, propagate)  # warm: statements compiled, caches full
                        profile = cProfile.Profile()
                        profile.enable()
                        side.run(path, args.processes, propagate)
                        profile.disable()
                        calls = pstats.Stats(profile).total_calls // args.processes  # type: ignore[attr-defined]
                        statements, _ = side.count(path, propagate)
                        print(f"{kind:<10} {path:<6} {policy:<6} {calls:>13,} {statements:>10}", flush=True)
            finally:
                side.close()


if __name__ == "__main__":
    main()
