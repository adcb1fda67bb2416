"""Web UI fixtures: a model and a dataset seeded once per session, and signed-in httpx clients."""

from __future__ import annotations

import io
import re
import struct
import uuid
import zlib
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import ENDPOINT

README = """---
license: apache-2.0
library_name: transformers
pipeline_tag: text-classification
language: [en]
datasets: [alice/reviews]
base_model: google-bert/bert-base-uncased
tags: [sentiment, {term}]
model-index:
- name: {name}
  results:
  - task: {{type: text-classification, name: Text Classification}}
    dataset: {{name: reviews, type: alice/reviews, split: test}}
    metrics:
    - {{type: accuracy, value: 0.9123, name: Accuracy}}
    - {{type: f1, value: 0.8871, name: F1}}
---
# {name}

A tiny sentiment classifier ({term}) fine-tuned on **reviews**.

| epoch | loss | accuracy |
|------:|-----:|---------:|
| 1 | 0.52 | 0.84 |
| 2 | 0.31 | 0.91 |

```python
from transformers import pipeline
pipe = pipeline("text-classification", model="{repo_id}")
```

![Training curves](training_curves.png)
"""

CONFIG = b'{"architectures": ["BertForSequenceClassification"], "model_type": "bert"}'
TRAIN_V1 = "import torch\n\nfor epoch in range(2):\n    print(epoch)\n"
TRAIN_V2 = "import torch\n\nEPOCHS = 3\nfor epoch in range(EPOCHS):\n    print('epoch', epoch)\n"


def png(width: int = 320, height: int = 180) -> bytes:
    """A small valid PNG (a rising curve) without any imaging library."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            curve = int(height - 20 - (height - 40) * (1 - 0.985**x))
            row += bytes((37, 99, 235) if abs(y - curve) <= 1 else (255, 255, 255))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def parquet_bytes(n: int = 1000, row_group: int = 100) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "text": [f"review {i}" for i in range(n)],
            "label": [i % 2 for i in range(n)],
            "score": [i / 8 for i in range(n)],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group)
    return buf.getvalue()


@dataclass
class Hub:
    term: str  # a word only these repos contain
    model: str
    dataset: str
    tag_sha: str
    head_sha: str


@pytest.fixture(scope="session")
def hub(alice) -> Hub:
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    api = HfApi(endpoint=ENDPOINT, token=alice.token)
    term = f"zq{uuid.uuid4().hex[:8]}"
    model = f"alice/web-model-{term}"
    dataset = f"alice/web-data-{term}"
    mp = pytest.MonkeyPatch()
    mp.setattr(constants, "HF_HUB_DISABLE_XET", True)  # LFS until Xet lands
    try:
        api.create_repo(model)
        api.create_commit(
            model,
            operations=[
                CommitOperationAdd(
                    "README.md", README.format(term=term, name=model.split("/")[1], repo_id=model).encode()
                ),
                CommitOperationAdd("config.json", CONFIG),
                CommitOperationAdd("training_curves.png", png()),
                CommitOperationAdd("train.py", TRAIN_V1.encode()),
            ],
            commit_message="Add model card, config and curves",
        )
        api.create_tag(model, tag="v1")
        tag_sha = api.model_info(model, revision="v1").sha
        api.create_commit(
            model,
            operations=[
                CommitOperationAdd("train.py", TRAIN_V2.encode()),
                CommitOperationAdd("model.safetensors", b"\0" * 20_000),
            ],
            commit_message="Train for 3 epochs",
        )
        head_sha = api.model_info(model).sha
        api.create_repo(dataset, repo_type="dataset")
        csv = "text,label\n" + "".join(f"test review {i},{i % 2}\n" for i in range(300))
        jsonl = "".join(f'{{"text": "val {i}", "label": {i % 2}, "meta": {{"k": {i}}}}}\n' for i in range(60))
        api.create_commit(
            dataset,
            repo_type="dataset",
            operations=[
                CommitOperationAdd(
                    "README.md",
                    f"---\nlicense: cc-by-4.0\ntask_categories: [text-classification]\n"
                    f"language: [en]\n---\n# Reviews {term}\n".encode(),
                ),
                CommitOperationAdd("data/train-00000-of-00001.parquet", parquet_bytes()),
                CommitOperationAdd("data/test.csv", csv.encode()),
                CommitOperationAdd("data/validation.jsonl", jsonl.encode()),
            ],
            commit_message="Add data",
        )
        extras = _neighbours(api, uuid.uuid4().hex[:6])
    finally:
        mp.undo()
    yield Hub(term, model, dataset, tag_sha, head_sha)
    for repo_id, kind in ((model, "model"), (dataset, "dataset"), *extras):
        api.delete_repo(repo_id, repo_type=kind, missing_ok=True)


NEIGHBOURS = (
    ("model", "gpt-mini", "pipeline_tag: text-generation\nlibrary_name: transformers\nlicense: mit"),
    (
        "model",
        "ner-base",
        "pipeline_tag: token-classification\nlibrary_name: transformers\nlicense: apache-2.0",
    ),
    (
        "model",
        "minilm-embed",
        "pipeline_tag: sentence-similarity\nlibrary_name: sentence-transformers\nlicense: mit",
    ),
    ("dataset", "squad-mini", "task_categories: [question-answering]\nlicense: cc-by-sa-4.0\nlanguage: [en]"),
    ("space", "demo", "sdk: gradio\nlicense: mit"),
)


def _neighbours(api, uid: str) -> list[tuple[str, str]]:  # noqa: ANN001
    """A few more public repos, so listings and screenshots show more than one row."""
    made = []
    for kind, name, meta in NEIGHBOURS:
        repo_id = f"alice/{name}-{uid}"
        api.create_repo(repo_id, repo_type=kind, space_sdk="gradio" if kind == "space" else None)
        api.upload_file(
            path_or_fileobj=f"---\n{meta}\n---\n# {name}\n".encode(),
            path_in_repo="README.md",
            repo_id=repo_id,
            repo_type=kind,
        )
        made.append((repo_id, kind))
    return made


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def sign_in(user: str, password: str | None = None) -> httpx.Client:
    """An httpx client with a browser session, signed in through the login form."""
    client = httpx.Client(base_url=ENDPOINT, timeout=30)
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"csrf_token": token, "username": user, "password": password or f"{user}-password"}
    )
    assert r.status_code == 303, r.text[:500]
    return client


@pytest.fixture
def alice_web(alice) -> httpx.Client:
    c = sign_in("alice")
    yield c
    c.close()


@pytest.fixture
def bob_web(bob) -> httpx.Client:
    c = sign_in("bob")
    yield c
    c.close()


@pytest.fixture
def anon_web(server) -> httpx.Client:
    with httpx.Client(base_url=ENDPOINT, timeout=30) as c:
        yield c
