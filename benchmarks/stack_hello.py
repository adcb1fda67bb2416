"""The floor of Cove's mandated stack for start-up (issue 16 item 2): a FastAPI hello whose lifespan opens a
SQLAlchemy ORM session on SQLite and runs one query, as `cove serve` does before its first answer
(`uvicorn stack_hello:app`). Whatever Cove adds on top is Cove's own start-up cost."""

import contextlib
import os

from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI):  # noqa: ANN201
    engine = create_engine(f"sqlite:///{os.environ.get('STACK_HELLO_DB', ':memory:')}")
    with Session(engine) as db:
        db.execute(text("SELECT 1"))
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
def hello() -> dict:
    return {"hello": "world"}
