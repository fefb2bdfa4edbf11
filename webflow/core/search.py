"""Full-text search: a task by anything a person remembers of it.

One search document per process (``SearchDocument``): the flow's title, the process number,
who started it, each task's title, number and owner, and the words of ``process.data``.
PostgreSQL matches it with a ``tsvector`` and a GIN index and ranks by ``ts_rank``; SQLite
with an FTS5 table and ``bm25``. ``matching_processes`` is the one query both sides of the
app use: the lists' ``q=`` filter and the search page. The search page ranks at most the
newest ``CANDIDATES`` matches: a word in most documents (the flow's title) costs what a
common word does instead of growing with the database.

The document is refreshed in the transaction that changes what it holds (a process's data
or starter, a task created or handed to someone): the session remembers which processes
such a flush touched, and just before the commit one upsert writes their documents (a
document whose words did not change is not rewritten). A unit of work that holds every task
of a process builds its document from those rows (``take_documents``); otherwise one SELECT
reads the processes back. On PostgreSQL the unit of work sends the upsert as a CTE of its
last statement. A commit that only moves statuses (most engine steps) costs nothing.

Input never reaches the full-text syntax: the query is cut into words of letters and digits
and each is quoted, so ``"``, ``*``, ``NEAR(``, ``-`` or ``:`` are separators, not operators.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql import visitors

from .models import SEARCH_FTS_TABLE, Process, SearchDocument, Task, User, is_row_id
from .transaction import current_unit_of_work

#: A word: letters and digits (``_`` and punctuation separate words, on both databases).
WORD = re.compile(r"[^\W_]+")
#: Bounds on what one query may ask and one document may hold.
MAX_WORDS = 12
MAX_WORD = 64
MAX_BODY = 20_000
#: Words at least this long also find longer words they begin (``appl`` finds ``apples``);
#: numbers are matched whole, so ``42`` does not find process 4242.
PREFIX_FROM = 3
#: The most matching documents a search ranks: a query matching more (a word in most
#: documents: the flow's title, a person in many processes) ranks its newest this many.
CANDIDATES = 2000

_TOUCHED = "webflow_search_touched"
SEARCH_FTS = SEARCH_FTS_TABLE
#: PostgreSQL's text search configuration without stemming or stop words: words are kept
#: as typed (lowercased), as SQLite's FTS5 keeps them.
SIMPLE: sa.ColumnClause[Any] = sa.literal_column("'simple'::regconfig")


# -- words ------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """The words of a text, lowercased, as both databases' indexes split them."""
    return [w for w in WORD.findall(text.lower()) if len(w) <= MAX_WORD]


@dataclass(frozen=True)
class SearchTerms:
    """The words of a query (at most MAX_WORDS, no repeats)."""

    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str | None) -> SearchTerms:
        unique = list(dict.fromkeys(words((text or "").replace("\x00", " "))))
        return cls(tuple(unique[:MAX_WORDS]))

    def __bool__(self) -> bool:
        return bool(self.words)

    @property
    def numbers(self) -> list[int]:
        """The words that could be a process or task number."""
        return [int(w) for w in self.words if w.isascii() and w.isdigit() and is_row_id(int(w))]

    def _prefix(self, word: str) -> bool:
        return len(word) >= PREFIX_FROM and not word.isdigit()

    def tsquery(self) -> str:
        """PostgreSQL ``to_tsquery`` text: every word (quoted), prefixes marked."""
        quoted = ["'" + w.replace("'", "''") + "'" + (":*" if self._prefix(w) else "") for w in self.words]
        return " & ".join(quoted)

    def fts5_query(self) -> str:
        """SQLite FTS5 MATCH text: every word as a quoted string, prefixes marked."""
        quoted = ['"' + w.replace('"', '""') + '"' + ("*" if self._prefix(w) else "") for w in self.words]
        return " AND ".join(quoted)


# -- the one query ----------------------------------------------------------------------------


def _match(dialect: str, terms: SearchTerms) -> tuple[Any, Any, sa.ColumnElement[bool], Any]:
    """(process id column, rank expression, condition, FROM) of the dialect's full-text match."""
    if dialect == "postgresql":
        query = sa.func.to_tsquery(SIMPLE, terms.tsquery())
        document = SearchDocument.document
        return (SearchDocument.process_id, sa.func.ts_rank(document, query), document.bool_op("@@")(query),
                SearchDocument.__table__)
    fts = sa.table(SEARCH_FTS, sa.column("rowid"))
    fts_name: sa.ColumnClause[Any] = sa.literal_column(SEARCH_FTS)
    return fts.c.rowid, -sa.func.bm25(fts_name), fts_name.op("MATCH")(terms.fts5_query()), fts


def matching_processes(dialect: str, terms: SearchTerms, *, newest: int | None = None,
                       shown: Callable[[Any], sa.ColumnElement[bool]] | None = None
                       ) -> sa.Select[int, float]:
    """``(process_id, rank)`` of the processes whose document holds every word; a higher
    rank is a better match. Empty terms match nothing. With ``newest``, only the newest
    ``newest`` matches (highest process numbers) are ranked: a word in most documents then
    costs the reading of that many, not of every document. ``shown(process_id)``: a further
    condition on the matches (the search page: a task the person may see), asked before
    the newest are counted, so what it leaves out takes no room among them."""
    if not terms:
        return sa.select(SearchDocument.process_id, sa.literal(0.0).label("rank")).where(sa.false())
    process_id, rank, condition, source = _match(dialect, terms)
    query = sa.select(process_id.label("process_id"), rank.label("rank")).select_from(source).where(condition)
    if shown is not None:
        query = query.where(shown(process_id))
    if newest is not None:
        # Both indexes walk a word's documents in process order: newest first, stopped early.
        query = query.order_by(process_id.desc()).limit(newest)
    return query


def task_matches(dialect: str, terms: SearchTerms) -> sa.ColumnElement[bool]:
    """Tasks of the matching processes (a list's ``q=`` filter); nothing for empty terms."""
    if not terms:
        return sa.false()
    process_id, _, condition, source = _match(dialect, terms)
    # Matched first, through the full-text index, then joined: left to itself PostgreSQL may
    # test the words row by row of a big list instead (MATERIALIZED: a CTE it must run once).
    matches = (sa.select(process_id.label("process_id")).select_from(source).where(condition)
               .cte("matches").prefix_with("MATERIALIZED", dialect="postgresql"))
    return Task.process_id.in_(sa.select(matches.c.process_id))


def exact_match(terms: SearchTerms) -> sa.ColumnElement[int]:
    """1 for a task the query names itself (its number, its process's, or its owner's
    name), else 0: such tasks come before others of the same process."""
    numbers = terms.numbers
    names = sa.select(User.id).where(sa.func.lower(User.username).in_(list(terms.words)))
    named = [Task.owner_id.in_(names)]
    if numbers:
        named += [Task.id.in_(numbers), Task.process_id.in_(numbers)]
    return sa.case((sa.or_(*named), 1), else_=0)


def _process_columns(condition: sa.ColumnElement[bool]) -> list[sa.Column[Any]]:
    """The columns of ``process`` a condition reads."""
    table = Process.__table__
    found = {id(c): c for c in visitors.iterate(condition)
             if isinstance(c, sa.Column) and c.table is table}
    return list(found.values())


def _on_matches(condition: sa.ColumnElement[bool], matches: Any) -> sa.ColumnElement[bool]:
    """The condition with its ``process`` columns read from the matches' copies."""
    table = Process.__table__

    def swap(element: Any, **_: Any) -> Any:
        if isinstance(element, sa.Column) and element.table is table:
            return matches.c[f"process_{element.name}"]
        return None

    return visitors.replacement_traverse(condition, {}, swap)


@dataclass
class SearchPage:
    """One page of ranked search results and how many there are (the tasks of the best
    ``cap`` processes; ``capped`` when more processes matched)."""

    tasks: list[Task]
    total: int
    capped: bool


def sees_every_flow(flows: Iterable[Any], user: Any) -> bool:
    """True when the person sees every process of every flow (``search_tasks`` need not
    leave out what they may not see before ranking: there is nothing)."""
    from .visibility import sees_flow

    return all(sees_flow(flow_class, user) for flow_class in flows)


def search_tasks(session: Session, text: str, visible: sa.ColumnElement[bool], *,
                 kinds: Iterable[str], page: int = 1, per_page: int = 25, cap: int = 1000,
                 sees_all: bool = False) -> SearchPage:
    """The tasks (of node ``kinds``) that ``visible`` lets the user see whose process is
    among the best ``cap`` matches of ``text``, best first, and how many there are. Ranking
    is the cost of a search: it is done once, for the page and its count together, and only
    over the newest ``CANDIDATES`` matches (at least ``cap + 1``, so that a search cut there
    is always ``capped``). Processes without a task the person may see are left out before
    that, unless ``sees_all`` says there are none (``sees_every_flow``: it costs a lookup
    per candidate)."""
    terms = SearchTerms.parse(text)
    if not terms:
        return SearchPage([], 0, False)
    kinds = list(kinds)

    def shown(process_id: Any) -> sa.ColumnElement[bool]:
        # Only processes with a task the person may see are ranked, counted and capped:
        # others would crowd their matches out of the best ``cap`` and show in the count.
        return (sa.select(Task.id).join(Process, Task.process_id == Process.id)
                .where(Task.process_id == process_id, Task.flow_task_type.in_(kinds), visible).exists())

    candidates = matching_processes(session.get_bind().dialect.name, terms,
                                    newest=max(CANDIDATES, cap + 1),
                                    shown=None if sees_all else shown).subquery()
    best = sa.select(candidates).order_by(candidates.c.rank.desc()).limit(cap + 1).subquery()
    # What ``visible`` asks of the process (its starter) is read per matched process by its
    # primary key: joined to the whole table, PostgreSQL may hash all of it instead.
    asked = _process_columns(visible)
    looked_up = [sa.select(column).where(Process.id == best.c.process_id).correlate(best)
                 .scalar_subquery().label(f"process_{column.name}") for column in asked]
    # Ranked once (MATERIALIZED: PostgreSQL must not run it again for the count below).
    matches = (sa.select(best.c.process_id, best.c.rank, *looked_up)
               .cte("matches").prefix_with("MATERIALIZED", dialect="postgresql"))
    rows = (sa.select(Task.id).join(matches, Task.process_id == matches.c.process_id)
            .where(_on_matches(visible, matches), Task.flow_task_type.in_(list(kinds))))
    offset = (max(page, 1) - 1) * per_page
    # Sorted and counted on narrow rows (ids and ranks); the page's rows are read after.
    counted = rows.add_columns(sa.func.count().over().label("total"),
                               sa.select(sa.func.count()).select_from(matches).scalar_subquery().label("processes"))
    found = session.execute(
        counted.order_by(exact_match(terms).desc(), matches.c.rank.desc(), Task.id.desc())
        .offset(offset).limit(per_page)).all()
    if not found:
        # Nothing, or past the last page: the count alone.
        total = 0 if offset == 0 else session.scalar(sa.select(sa.func.count()).select_from(rows.subquery()))
        return SearchPage([], total or 0, False)
    ids = [row.id for row in found]
    by_id = {task.id: task for task in session.scalars(
        sa.select(Task).where(Task.id.in_(ids))
        .options(sa.orm.joinedload(Task.process), sa.orm.selectinload(Task.owner)))}
    return SearchPage([by_id[i] for i in ids if i in by_id], found[0].total, found[0].processes > cap)


# -- the documents ----------------------------------------------------------------------------


def _values(value: Any) -> Iterator[str]:
    """The searchable values of process data: strings and numbers, nested ones too."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str | int | float):
        yield str(value)
    elif isinstance(value, dict):
        # In key order: PostgreSQL's jsonb hands keys back in an order of its own, and a
        # document built from memory must be the one built from the table.
        for key in sorted(value, key=str):
            yield from _values(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _values(item)


def _titles(flow_path: str) -> tuple[str, dict[str, str]]:
    """The flow's title and its nodes' titles (the path itself when the flow is gone)."""
    from .flow import resolve_flow_class

    try:
        flow_class = resolve_flow_class(flow_path)
    except Exception:  # a flow no longer importable: its rows are still findable by the rest
        return flow_path.rsplit(":", 1)[-1].rsplit(".", 1)[-1], {}
    titles = _flow_titles.get(flow_class)
    if titles is None:  # a flow's titles are class attributes: worked out once per class
        titles = _flow_titles[flow_class] = (
            f"{flow_class.process_title} {flow_class.flow_label}",
            {node.name: node.title for node in flow_class.nodes()})
    return titles


_flow_titles: dict[type, tuple[str, dict[str, str]]] = {}


@functools.cache
def _documents_query() -> Any:
    """The SELECT of what the documents of some processes hold (built once: building it,
    two aliases of the user table included, cost more than running it)."""
    starter, owner = aliased(User), aliased(User)
    return (sa.select(Process.id, Process.flow_class_path, Process.data, starter.username,
                      Task.id, Task.node_name, owner.username)
            .select_from(Process)
            .outerjoin(starter, Process.created_by_id == starter.id)
            .outerjoin(Task, Task.process_id == Process.id)
            .outerjoin(owner, Task.owner_id == owner.id)
            .where(Process.id.in_(sa.bindparam("ids", expanding=True)))
            .order_by(Process.id, Task.id))


@functools.cache
def _documents_upsert(dialect: str) -> Any:
    """The upsert of documents, one per dialect (built once, executed with many rows)."""
    body = sa.bindparam("doc_body", type_=sa.Text())
    values: dict[str, Any] = {"process_id": sa.bindparam("doc_id"), "body": body}
    if dialect == "postgresql":
        insert: Any = postgresql.insert(SearchDocument)
        values["document"] = sa.func.to_tsvector(SIMPLE, body)
        changes = {"body": insert.excluded.body, "document": insert.excluded.document}
    else:
        insert = sqlite.insert(SearchDocument)  # the triggers update search_fts
        changes = {"body": insert.excluded.body}
    return insert.values(values).on_conflict_do_update(
        index_elements=[SearchDocument.process_id], set_=changes,
        where=SearchDocument.body.is_distinct_from(insert.excluded.body))


def build_documents(session: Session, process_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The documents of the processes as the transaction sees them now (one SELECT)."""
    ids = sorted({pid for pid in process_ids if is_row_id(pid)})  # other ids name no process
    if not ids:
        return []
    rows = session.execute(_documents_query(), {"ids": ids})
    parts: dict[int, list[str]] = {}
    for process_id, flow_path, data, starter_name, task_id, node_name, owner_name in rows:
        if process_id not in parts:
            parts[process_id] = _process_words(flow_path, process_id, data, starter_name)
        if task_id is not None:
            parts[process_id].append(_task_words(_titles(flow_path)[1], task_id, node_name, owner_name))
    return [_document(pid, texts) for pid, texts in parts.items()]


def _process_words(flow_path: str, process_id: int, data: Any, starter: str | None) -> list[str]:
    return [_titles(flow_path)[0], str(process_id), starter or "", *_values(data or {})]


def _task_words(titles: dict[str, str], task_id: int, node_name: str, owner: str | None) -> str:
    """A task's text in its process's document (``titles``: the flow's node titles)."""
    return f"{titles.get(node_name, node_name)} {task_id} {owner or ''}"


def _document(process_id: int, texts: list[str]) -> dict[str, Any]:
    return {"process_id": process_id, "body": " ".join(words(" ".join(texts)))[:MAX_BODY]}


def _document_in_memory(process: Process, tasks: list[Any]) -> dict[str, Any]:
    """The document of a process whose every task the unit of work holds (it read them
    under the lock, or created the process; objects and rows, see queries.TaskRow): the
    same words as build_documents, without reading them back. The starter and owners are
    users the session holds already (read by _load_people when it did not)."""
    session = sa.orm.object_session(process)
    _load_people(session, process, tasks)
    flow_path = process.flow_class_path
    texts = _process_words(flow_path, process.id, process.data,
                           getattr(process.created_by, "username", None))
    titles = _titles(flow_path)[1]
    # A large fan-out's document is cut at MAX_BODY: the tasks past the cut are not read.
    # The words are counted only once the texts could reach it (the words are seldom
    # longer than their text), and again once the rest could.
    length, count_at = sum(map(len, texts)), MAX_BODY
    for task in sorted(tasks, key=lambda t: t.id):
        if length >= count_at:
            size = len(" ".join(words(" ".join(texts))))
            if size >= MAX_BODY:
                break
            count_at = length + MAX_BODY - size
        text = _task_words(titles, task.id, task.node_name, _owner_name(session, task))
        texts.append(text)
        length += len(text) + 1
    return _document(process.id, texts)


def _owner_name(session: Session | None, task: Any) -> str | None:
    """The username of the task's owner: an object's relationship (set in Python, its key
    may not be there yet), a row's key looked up among the users the session holds."""
    if isinstance(task, Task):
        return getattr(task.owner, "username", None)
    if task.owner_id is None or session is None:
        return None
    owner = session.identity_map.get(identity_key(User, task.owner_id))
    return getattr(owner, "username", None)


def _load_people(session: Session | None, process: Process, tasks: list[Any]) -> None:
    """Read the starter and owners the session does not hold, in one statement (each
    many-to-one would otherwise be read on its own)."""
    if session is None:
        return
    wanted = {process.created_by_id, *(task.owner_id for task in tasks)} - {None}
    missing = [user_id for user_id in wanted
               if session.identity_map.get(identity_key(User, user_id)) is None]
    if missing:
        with session.no_autoflush:
            session.scalars(sa.select(User).where(User.id.in_(missing))).all()


def write_documents(session: Session, documents: list[dict[str, Any]]) -> None:
    """Insert or refresh the documents (one statement; unchanged ones are left alone)."""
    if not documents:
        return
    rows = [{"doc_id": d["process_id"], "doc_body": d["body"]} for d in documents]
    # The connection, not the session: a bulk upsert of plain rows needs no ORM execution.
    session.connection().execute(_documents_upsert(session.get_bind().dialect.name), rows)


def refresh_documents(session: Session, process_ids: Iterable[int]) -> None:
    """Bring the processes' search documents up to date, in the session's transaction."""
    write_documents(session, build_documents(session, process_ids))


def rebuild_index(session: Session, batch: int = 2000) -> int:
    """Write every process's document (after a migration, an import in SQL, a renamed flow);
    returns how many processes it went through. Commits per batch."""
    done, last = 0, 0
    while True:
        ids = list(session.scalars(sa.select(Process.id).where(Process.id > last)
                                   .order_by(Process.id).limit(batch)))
        if not ids:
            return done
        refresh_documents(session, ids)
        session.commit()
        done, last = done + len(ids), ids[-1]


# -- keeping the documents current ------------------------------------------------------------

#: What a document holds of each row: a change to any of these refreshes it (the foreign
#: keys and their relationships: a relationship set in Python fills its key only in the flush).
_PROCESS_FIELDS = ("data", "created_by_id", "created_by", "flow_class_path")
_TASK_FIELDS = ("owner_id", "owner", "node_name", "process_id")


def _changed(obj: Any, fields: tuple[str, ...]) -> bool:
    state = sa.inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields)


def _remember(session: Session, flush_context: Any, instances: Any) -> None:
    """Before a flush: note the processes whose document it changes."""
    touched: set[Any] = session.info.setdefault(_TOUCHED, set())
    for obj in session.new:
        if isinstance(obj, Process):
            touched.add(obj)
        elif isinstance(obj, Task):
            touched.add(obj.process_id if obj.process_id is not None else obj.process)
    for obj in session.dirty:
        if isinstance(obj, Process) and _changed(obj, _PROCESS_FIELDS):
            touched.add(obj)
        elif isinstance(obj, Task) and _changed(obj, _TASK_FIELDS):
            touched.add(obj.process_id)


def note_changes(session: Session) -> list[Process]:
    """Note the processes whose document the session's pending changes touch, as a flush
    would (for changes written without one: row_updates); the touched processes the
    session holds."""
    _remember(session, None, None)
    held = []
    for item in session.info.get(_TOUCHED, ()):
        process = item if isinstance(item, Process) else (
            session.identity_map.get(identity_key(Process, item)) if isinstance(item, int) else None)
        if process is not None:
            held.append(process)
    return held


def _refresh_before_commit(session: Session) -> None:
    """Just before the commit: refresh the documents of the processes flushes touched."""
    if session.in_nested_transaction():
        return
    if session.new or session.dirty or session.deleted:
        session.flush()  # the commit's own flush comes after this hook
    write_documents(session, take_documents(session))


def take_documents(session: Session) -> list[dict[str, Any]]:
    """The documents of the processes the session's flushes touched so far, taken (a unit
    of work writes them with its last statement; the commit writes what is left)."""
    touched = session.info.pop(_TOUCHED, None)
    if not touched:
        return []
    uow = current_unit_of_work()
    held = uow.cache if uow is not None and uow.session is session else {}
    # A process may be noted as itself and by its id (a task that names it): one each.
    ids = {item.id if isinstance(item, Process) else item for item in touched}
    documents, unread = [], []
    for process_id in ids:
        if not isinstance(process_id, int):
            continue  # a process that never reached the table (rolled back)
        process = session.identity_map.get(identity_key(Process, process_id))
        tasks = held.get(("tasks", process)) if process is not None else None
        if process is not None and tasks is not None and sa.inspect(process).persistent:
            documents.append(_document_in_memory(process, tasks.current(session)))
        else:
            unread.append(process_id)
    documents += build_documents(session, unread)
    return sorted(documents, key=lambda d: d["process_id"])


def _forget(session: Session, *args: Any) -> None:
    session.info.pop(_TOUCHED, None)


def keep_index_current() -> None:
    """Refresh search documents in every session's commits (idempotent; the models module
    calls it, so any code that writes rows keeps the index current)."""
    if not event.contains(Session, "before_flush", _remember):
        event.listen(Session, "before_flush", _remember)
        event.listen(Session, "before_commit", _refresh_before_commit)
        event.listen(Session, "after_rollback", _forget)
