"""`GET /api/tasks`: the inference tasks (what `huggingface_hub`'s inference client reads for recommendations)."""

from __future__ import annotations

from fastapi import APIRouter

from cove.deps import Bk, CurrentActor
from cove.services import tasks

router = APIRouter()


@router.get("/api/tasks")
def task_list(bk: Bk, actor: CurrentActor) -> dict:
    with bk.db.session() as db:
        return tasks.task_list(db)
