"""The flow and the floor app bench_http.py serves with gunicorn (importable by path)."""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask, request
from flask_wtf import FlaskForm
from wtforms import StringField

from webflow import Flow, flow, this


class NoteForm(FlaskForm):
    note = StringField("Note")


class HumanPathFlow(Flow):
    """Human path

    Started from code, one person completes one task, the end."""

    start = flow.StartFunction().Next(this.work)
    work = flow.View(form=NoteForm).Permission(auto_create=True).Next(this.end)
    end = flow.End()


def floor_app() -> Flask:
    """The least a web app can do per request: one indexed SELECT per GET, one INSERT per POST."""
    app = Flask(__name__)
    engine = sa.create_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"),
                              pool_pre_ping=True)

    @app.get("/item/<int:item_id>/")
    def show(item_id: int) -> str:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT id, note FROM floor_item WHERE id = :id"),
                               {"id": item_id}).first()
        return f"<p>{row[1] if row else ''}</p>"

    @app.post("/item/<int:item_id>/")
    def save(item_id: int) -> tuple[str, int, dict[str, str]]:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO floor_item (note) VALUES (:note)"),
                         {"note": request.form.get("note", "")})
        return "", 303, {"Location": f"/item/{item_id}/"}

    return app


floor = floor_app() if os.environ.get("BENCH_FLOOR") == "1" else None
