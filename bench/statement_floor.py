"""What webflow's own statements cost the database and its driver, with no engine around
them: the floor under the side-by-side figures.

    python bench/statement_floor.py                          # both flows, SQLite and PostgreSQL
    python bench/statement_floor.py --db postgresql --processes 300

For each flow of bench_side_by_side.py (the same driver, policy ``code``) it runs
``--processes`` processes through the engine in one scratch database while recording every
statement, its parameters and each COMMIT; then it replays that recording on the raw DBAPI
connection (no SQLAlchemy, no engine) in a second scratch database prepared the same way
(the same warm-up, so every id, row and lock the replay meets is the one the engine met).
The replay's time is what those statements cost with zero Python of ours: no change of
code that keeps the statements can go under it. Next to it: the engine's own time on the
same processes, and what the rest is (engine Python: ORM, activations, audit, search).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from bench_side_by_side import WebflowSide  # noqa: E402
from scratch import scratch_database  # noqa: E402

WARM = 20
Recording = list[tuple[str, Any, bool]]  # (statement or "COMMIT"/"ROLLBACK", parameters, executemany)


def run(url: str, path: str, n: int, recording: Recording | None = None) -> float:
    """Run ``n`` processes through the engine after the warm-up; their time, and what they
    sent appended to ``recording`` when one is given (listeners cost time: the timed run
    goes without)."""
    side = WebflowSide(url)
    try:
        side.run(path, WARM, True)
        listeners: dict[str, Any] = {} if recording is None else {
            "before_cursor_execute":
                lambda c, cur, text, params, ctx, many: recording.append((text, params, many)),
            "commit": lambda c: recording.append(("COMMIT", None, False)),
            "rollback": lambda c: recording.append(("ROLLBACK", None, False)),
        }
        for name, fn in listeners.items():
            sa.event.listen(side.engine, name, fn)
        return side.run(path, n, True)
    finally:
        side.close()


def replay(url: str, path: str, recording: Recording) -> float:
    """Prepare ``url`` as run() prepared the recorded database, then send the recording raw."""
    side = WebflowSide(url)
    try:
        side.run(path, WARM, True)
        side.session.close()
        raw = side.engine.raw_connection()
        try:
            dbapi = raw.driver_connection
            assert dbapi is not None
            cursor = dbapi.cursor()
            began = time.perf_counter()
            for text, parameters, many in recording:
                if text == "COMMIT":
                    dbapi.commit()
                elif text == "ROLLBACK":
                    dbapi.rollback()
                elif many and isinstance(parameters, list):  # insertmanyvalues sends one row as a plain execute
                    cursor.executemany(text, parameters)
                else:
                    cursor.execute(text, parameters)
                    if cursor.description is not None:
                        cursor.fetchall()
            spent = time.perf_counter() - began
            dbapi.rollback()
            return spent
        finally:
            raw.close()
    finally:
        side.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--flows", default="human,auto")
    parser.add_argument("--processes", type=int, default=300)
    args = parser.parse_args()
    n = args.processes
    print(f"{n} processes per figure, policy code")
    print(f"{'database':<10} {'flow':<6} {'engine ms/process':>17} {'replay ms/process':>17} "
          f"{'replay share':>12} {'statements':>10} {'max processes/s':>15}")
    for kind in args.db.split(","):
        for path in args.flows.split(","):
            with tempfile.TemporaryDirectory() as folder:
                recording: Recording = []
                with scratch_database(kind, "floor_rec", folder) as url:
                    run(url, path, n, recording)
                with scratch_database(kind, "floor_replay", folder) as url:
                    raw = replay(url, path, recording)
                with scratch_database(kind, "floor_engine", folder) as url:
                    ours = run(url, path, n)
            statements = sum(1 for text, _, _ in recording) / n
            print(f"{kind:<10} {path:<6} {1000 * ours / n:>17.2f} {1000 * raw / n:>17.2f} "
                  f"{raw / ours:>11.0%} {statements:>10.1f} {n / raw:>15.0f}", flush=True)


if __name__ == "__main__":
    main()
