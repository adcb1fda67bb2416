"""The reference for repo info: a FastAPI hello endpoint (`uvicorn fastapi_hello:app`)."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def hello() -> dict:
    return {"hello": "world"}
