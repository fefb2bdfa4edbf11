"""What the database itself costs a process on this machine's PostgreSQL: a durable commit
and a round trip, next to which the engine's own time per process can be read.

    python bench/commit_floor.py                 # 300 commits each way
    python bench/commit_floor.py --commits 1000

One small INSERT and its COMMIT, repeated, on a connection of its own (psycopg, no ORM):
once with ``synchronous_commit=on`` (the server's default, what webflow and viewflow both
run with: the commit waits for the WAL to reach the disk) and once with ``off`` (the
server acknowledges before the flush; only to show how much of a commit is the disk).
A statement alone (``SELECT 1``) gives the round trip. The human path commits three
times per process (start; assign; prepare + done), the automatic path once: those
commits are a floor no engine on this server goes under, whoever runs them. Run it on a
quiet machine: other suites' commits queue for the same WAL flush (under a test suite
the durable commit was measured at 2.1 ms instead of 0.2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch import scratch_database  # noqa: E402


def per_call_ms(connection: psycopg.Connection, commits: int, commit: bool) -> float:
    began = time.perf_counter()
    for i in range(commits):
        if commit:
            connection.execute("INSERT INTO floor_probe (x) VALUES (%s)", (i,))
            connection.commit()
        else:
            connection.execute("SELECT 1").fetchone()
    return (time.perf_counter() - began) / commits * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=300)
    args = parser.parse_args()
    with scratch_database("postgresql", "webflow_floor") as url:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
            connection.execute("CREATE TABLE floor_probe (id serial PRIMARY KEY, x int)")
            connection.commit()
            figures = {}
            for setting in ("on", "off"):
                connection.execute(f"SET synchronous_commit = {setting}")
                connection.commit()
                per_call_ms(connection, 20, True)  # warm
                figures[setting] = per_call_ms(connection, args.commits, True)
            connection.commit()
            round_trip = per_call_ms(connection, args.commits, False)
    print(f"INSERT + COMMIT, synchronous_commit=on : {figures['on']:.3f} ms")
    print(f"INSERT + COMMIT, synchronous_commit=off: {figures['off']:.3f} ms "
          f"(so about {figures['on'] - figures['off']:.3f} ms of a durable commit is the disk)")
    print(f"one statement's round trip (SELECT 1)  : {round_trip:.3f} ms")
    print(f"floor of the human path (3 durable commits): {3 * figures['on']:.1f} ms per process, "
          f"at most {1000 / (3 * figures['on']):.0f} processes/s on one connection")
    print(f"floor of the automatic path (1 commit)   : {figures['on']:.1f} ms per process")


if __name__ == "__main__":
    main()
