"""How fast the inbox, queue, archive and search pages answer with a million tasks in the database.

    python bench/bench_inbox.py                        # PostgreSQL and SQLite, 1,000,000 tasks
    python bench/bench_inbox.py --db postgresql --tasks 200000 --requests 10
    python bench/bench_inbox.py --only search          # the search pages only
    python bench/bench_inbox.py --keep s1 ...          # keep the filled databases, reuse them next time
    python bench/bench_inbox.py --drop s1              # and remove them

Fills a fresh database (PostgreSQL: a scratch database dropped afterwards; SQLite: a
temporary file) in SQL, with the shape a busy installation has after a few years: one
process per ten tasks, 95% of the tasks DONE, 4% NEW in the queue, 1% ASSIGNED, spread
over 200 people. Each process's data holds its number and two words: one of 50 common
words (each in 2% of the processes) and one of 2,000 rare ones (each in 0.05%); the search
index is then built by the app's own code (``core.search.rebuild_index``, timed). Then one
of those people asks for each page through the app (the Flask
test client: routing, queries, template, nav counts), and the script prints the median
and 95th percentile answer time per page and how many rows the page lists from.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webflow import create_app, db  # noqa: E402
from webflow.core.search import rebuild_index  # noqa: E402
from webflow.demo.helloworld import HelloWorldFlow  # noqa: E402
from webflow.models import Process, SearchDocument, Task, User  # noqa: E402

PG_SERVER = os.environ.get("WEBFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PEOPLE = 200
PERMISSION = "hello_world.can_approve"
PAGES = [  # (label, URL, who asks)
    ("inbox", "/inbox/"),
    ("queue", "/queue/"),
    ("queue, sorted by task", "/queue/?sort=task"),
    ("queue, text search", "/queue/?q=request+4242"),
    ("queue, page 500", "/queue/?page=500"),
    ("archive", "/archive/"),
    ("archive, page 100", "/archive/?page=100"),
    ("search, no words (the page alone)", "/search/"),
    ("search, common word", "/search/?q={common}"),
    ("search, rare word", "/search/?q={rare}"),
    ("search, two words", "/search/?q={common}+{rare_of_common}"),
    ("search, word beginning", "/search/?q={rare_prefix}"),
    ("search, process number", "/search/?q=4242"),
    ("search, person", "/search/?q=person7"),
    ("search, page 5", "/search/?q={common}&page=5"),
    ("search, flow title", "/search/?q=hello"),
    ("search, in the queue", "/queue/?q={common}"),
]
COMMON, RARE = 50, 2000
_SYLLABLES = ["ka", "lo", "mi", "ru", "te", "shi", "no", "va", "pe", "zu",
              "dor", "fen", "gal", "hop", "jin", "kel", "mar", "nis", "pol", "quin"]


def word(i: int) -> str:
    """The i-th made-up word of the bench's vocabulary (distinct for i < 8,000)."""
    return "".join(_SYLLABLES[(i // 20**k) % 20] for k in range(3))


def vocabulary() -> dict[str, str]:
    """The words the search pages ask for (see fill: common = i % 50, rare = 50 + i % 2000)."""
    return {"common": word(7), "rare": word(COMMON + 123), "rare_of_common": word(COMMON + 107),
            "rare_prefix": word(COMMON + 123)[:5]}
MANAGER_PAGES = [
    ("admin", "/admin/"),
    ("admin, has an error", "/admin/?error=1"),
    ("flow's processes", "/flows/hello_world/"),
    ("a process", "/flows/hello_world/4242/"),
]


def fill(engine: sa.Engine, tasks: int) -> None:
    """Insert the users, processes and tasks in a few INSERT ... SELECT statements."""
    flow_path = HelloWorldFlow.path()
    processes = -(-tasks // 10)
    pg = engine.dialect.name == "postgresql"

    def ago(column: str) -> str:  # a timestamp `column` seconds before now, per dialect
        if pg:
            return f"now() - {column} * interval '1 second'"
        return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({column}) || ' seconds')"

    def series(n: int) -> str:
        return f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n}) "

    status = "CASE WHEN x % 100 < 95 THEN 'DONE' WHEN x % 100 < 99 THEN 'NEW' ELSE 'ASSIGNED' END"
    words = sa.Table("bench_word", sa.MetaData(), sa.Column("i", sa.Integer, primary_key=True),
                     sa.Column("w", sa.String(20)))
    text = "'Request ' || x || ' ' || c.w || ' ' || r.w"
    data = f"""('{{"text": "' || {text} || '"}}')""" + ("::jsonb" if pg else "")
    with engine.begin() as conn:
        words.create(conn)
        conn.execute(sa.insert(words), [{"i": i, "w": word(i)} for i in range(COMMON + RARE)])
        conn.execute(sa.insert(User), [
            {"username": f"person{n}", "permissions": [PERMISSION, "hello_world.view"]}
            for n in range(1, PEOPLE + 1)])
        conn.execute(sa.insert(User), [{"username": "manager", "permissions": ["hello_world.manage"]}])
        conn.execute(sa.text(
            "INSERT INTO process (flow_class, status, data, summary, created, finished, created_by_id) "
            + series(processes)
            + f"SELECT '{flow_path}', 'NEW', {data}, {text}, {ago('x * 10')}, NULL, "
            f"1 + x % {PEOPLE} FROM g JOIN bench_word c ON c.i = x % {COMMON} "
            f"JOIN bench_word r ON r.i = {COMMON} + x % {RARE}"))
        conn.execute(sa.text(
            "INSERT INTO task (process_id, flow_class, flow_task, flow_task_type, status, token, owner_id, "
            "owner_permission, created, finished, data, attempts) "
            + series(tasks)
            + f"SELECT 1 + (x - 1) / 10, '{flow_path}', 'approve', 'HUMAN', {status}, 'start', "
            f"CASE WHEN x % 100 < 95 OR x % 100 >= 99 THEN 1 + (x / 100 + x) % {PEOPLE} END, '{PERMISSION}', "
            f"{ago('x')}, CASE WHEN x % 100 < 95 THEN {ago('x')} END, '{{}}', 0 FROM g"))
        words.drop(conn)
    started = time.perf_counter()
    with Session(engine) as session:
        rebuild_index(session)
    print(f"  built the search index of {processes:,} processes in {time.perf_counter() - started:.0f} s",
          flush=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def time_pages(app: Any, user_id: str, pages: list[tuple[str, str]], requests: int
               ) -> list[tuple[str, float, float]]:
    """(page, median ms, 95th percentile ms) of ``requests`` answers to each page for the user."""
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = user_id  # User.get_id(): the id and the session token
        session["_fresh"] = True
    rows = []
    for name, url_path in pages:
        times = []
        for _ in range(requests + 1):
            began = time.perf_counter()
            response = client.get(url_path)
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, f"{url_path}: {response.status_code}"
        times = times[1:]  # the first request warms caches
        p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
        rows.append((name, statistics.median(times), p95))
    return rows


def measure(url: str, tasks: int, requests: int, only: str = "", reuse: bool = False
            ) -> list[tuple[str, int, float, float]]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WEBFLOW_FLOWS": [HelloWorldFlow],
                      "SECRET_KEY": "bench", "WEBFLOW_INLINE_JOBS": "inline",
                      # No timer thread: it would query the database while it is being filled.
                      "WEBFLOW_TIMER_THREAD": "off"})
    gc.freeze()  # as wsgi.py does after loading the app
    rows: list[tuple[str, int, float, float]] = []
    with app.app_context():
        if reuse and sa.inspect(db.engine).has_table("task") and db.session.scalar(
                sa.select(sa.func.count()).select_from(Task)) == tasks:
            print(f"  reusing the kept database of {tasks:,} tasks", flush=True)
        else:
            db.drop_all()
            db.create_all()
            started = time.perf_counter()
            fill(db.engine, tasks)
            print(f"  filled {tasks:,} tasks in {time.perf_counter() - started:.0f} s", flush=True)
        db.session.remove()
        person = db.session.scalar(sa.select(User).where(User.username == "person7"))
        assert person is not None
        sizes = {name: db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(cond))
                 for name, cond in {
                     "inbox": sa.and_(Task.owner_id == person.id, Task.status == "ASSIGNED"),
                     "queue": Task.status == "NEW",
                     "archive": sa.and_(Task.owner_id == person.id, Task.status == "DONE")}.items()}
        total = db.session.scalar(sa.select(sa.func.count()).select_from(Task))
        assert total == tasks, f"{total} tasks stored"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Process)) == -(-tasks // 10)
        sizes.update({"admin": -(-tasks // 10), "flow's processes": -(-tasks // 10), "a process": 10})
        sizes["search"] = db.session.scalar(sa.select(sa.func.count()).select_from(Process)
                                            .join(SearchDocument)) or 0
        words = vocabulary()
        pages = [(name, url_path.format(**words)) for name, url_path in PAGES if name.startswith(only)]
        manager = db.session.scalar(sa.select(User).where(User.username == "manager"))
        assert manager is not None
        people = ((person.get_id(), pages),
                  (manager.get_id(),
                   [page for page in MANAGER_PAGES if page[0].startswith(only)]))
        db.session.remove()

    # Requests run outside the app context above, so each gets its own (and its own `g`),
    # as on a server: nothing cached by one request serves the next.
    for user_id, pages in people:
        for name, p50, p95 in time_pages(app, user_id, pages, requests):
            rows.append((name, sizes[name.split(",")[0]], p50, p95))
    with app.app_context():
        db.engine.dispose()
    return rows


def admin_engine() -> sa.Engine:
    return sa.create_engine(PG_SERVER.replace("postgresql://", "postgresql+psycopg://"),
                            isolation_level="AUTOCOMMIT")


def kept_database(name: str) -> str:
    if not name.isidentifier():
        raise SystemExit(f"--keep/--drop: {name!r} is not a plain name")
    return f"webflow_bench_{name}"


def kept_file(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"{kept_database(name)}.sqlite"


def drop_kept(name: str) -> None:
    """Remove the PostgreSQL database and the SQLite file kept under ``name``."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{kept_file(name)}{suffix}").unlink(missing_ok=True)
    admin = admin_engine()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{kept_database(name)}" WITH (FORCE)')
    admin.dispose()
    print(f"dropped {kept_database(name)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20, help="per page")
    parser.add_argument("--only", default="", help="only the pages whose name begins so (e.g. search)")
    parser.add_argument("--keep", metavar="NAME", default="",
                        help="keep the filled database (PostgreSQL: webflow_bench_NAME; SQLite: "
                        "webflow_bench_NAME.sqlite in the temporary folder) and reuse it when it "
                        "holds --tasks tasks; --drop NAME removes it")
    parser.add_argument("--drop", metavar="NAME", default="", help="drop a database kept by --keep NAME")
    args = parser.parse_args()
    if args.drop:
        drop_kept(args.drop)
        return
    for db_name in (["postgresql", "sqlite"] if args.db == "both" else [args.db]):
        print(f"{db_name}, {args.tasks:,} tasks, {PEOPLE} people, {args.requests} requests per page")
        if db_name == "sqlite" and args.keep:
            rows = measure(f"sqlite:///{kept_file(args.keep)}", args.tasks, args.requests, args.only,
                           reuse=True)
        elif db_name == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                rows = measure(f"sqlite:///{Path(tmp) / 'inbox.sqlite'}", args.tasks, args.requests, args.only)
        elif args.keep:
            name = kept_database(args.keep)
            with admin_engine().connect() as conn:
                if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            rows = measure(PG_SERVER.rsplit("/", 1)[0] + f"/{name}", args.tasks, args.requests, args.only,
                           reuse=True)
        else:
            name = f"webflow_bench_{uuid.uuid4().hex[:8]}"
            admin = admin_engine()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            try:
                rows = measure(PG_SERVER.rsplit("/", 1)[0] + f"/{name}", args.tasks, args.requests, args.only)
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.dispose()
        print(f"  {'page':<24}{'rows':>9}{'p50 ms':>9}{'p95 ms':>9}")
        for page, size, p50, p95 in rows:
            print(f"  {page:<24}{size:>9,}{p50:>9.1f}{p95:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
