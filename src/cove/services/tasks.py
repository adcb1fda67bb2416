"""The task list (`GET /api/tasks`): the Hub's pipeline tags, each with the public models here that do it."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.db.tables import Repo
from cove.pipeline_tags import PIPELINE_TAGS

#: Models named per task (`widgetModels`, what the inference client recommends): the most downloaded.
WIDGET_MODELS = 3


def task_list(db: Session) -> dict[str, dict]:
    """{task: {id, label, type, widgetModels, ...}}; only public models are named (anyone may call this)."""
    rank = func.row_number().over(partition_by=Repo.pipeline_tag,
                                  order_by=(Repo.downloads.desc(), Repo.likes.desc(), Repo.id)).label("rank")
    ranked = (select(Repo.pipeline_tag, Repo.namespace, Repo.name, rank)
              .where(Repo.type == "model", Repo.private.is_(False), Repo.disabled.is_(False),
                     Repo.pipeline_tag.in_(list(PIPELINE_TAGS)))
              .subquery())
    top: dict[str, list[str]] = {}
    for tag, ns, name, _ in db.execute(select(ranked).where(ranked.c.rank <= WIDGET_MODELS)
                                       .order_by(ranked.c.pipeline_tag, ranked.c.rank)):
        top.setdefault(tag, []).append(f"{ns}/{name}")
    return {
        tag: {"id": tag, "label": t.label, "type": t.modality, "libraries": [], "datasets": [], "metrics": [],
              "models": [{"id": m, "description": ""} for m in top.get(tag, [])], "spaces": [], "summary": "",
              "widgetModels": top.get(tag, []), "isPlaceholder": False}
        for tag, t in PIPELINE_TAGS.items()
    }
