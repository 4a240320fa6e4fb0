"""A property of ingestion (issue 20): whatever documents arrive (empty once cleaned, stopwords only, one huge
token, binary bytes, mixed scripts, zero-width characters, or all of them in one worker batch), each one is
refused up front with a 4xx, or ends `indexed` or `failed` (with a reason); none stays in between, and the
collection stays searchable. Run by hypothesis (seeded, a few examples) on the real service, embedder and
worker, on SQLite + LanceDB."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearth.auth.service import AuthService
from hearth.config import ModelsConfig
from hearth.events.bus import EventBus
from hearth.gateway.service import Gateway
from hearth.platform.db import Database
from hearth.platform.errors import HearthError
from hearth.platform.migrate import upgrade
from hearth.rag.keyword import KeywordIndex
from hearth.rag.lance import LanceStore
from hearth.rag.schemas import TextDocument
from hearth.rag.service import RagConfig, RagService
from tests.test_rag_service import EMBED_ONLY

WORDS = ["flutter", "nozzle", "shock", "boundary", "layer", "heat", "wing", "plume"]
STOPWORDS = ["the", "a", "of", "and", "is", "to", "in", "it", "on", "was"]
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"

blank = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u3000" + ZERO_WIDTH, min_size=1, max_size=40)
stopwords = st.lists(st.sampled_from(STOPWORDS), min_size=1, max_size=30).map(" ".join)
huge_token = st.tuples(st.sampled_from("xé漢🙂"), st.integers(2_000, 60_000)).map(lambda p: p[0] * p[1])
mixed_scripts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=300
)
zero_width = st.lists(st.sampled_from([*WORDS, *ZERO_WIDTH, " "]), min_size=1, max_size=60).map("".join)
text = st.one_of(blank, stopwords, huge_token, mixed_scripts, zero_width)
# Files: binary bytes under a text name, and bytes under the names of the formats that get parsed.
binary_file = st.tuples(
    st.sampled_from(["b.txt", "b.md", "b.html", "b.pdf", "b.docx"]), st.binary(min_size=1, max_size=3000)
)
document = st.one_of(text.map(lambda t: ("text", t)), binary_file.map(lambda f: ("file", f)))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The service with its worker running, on a loop of its own that each example drives."""
    tmp: Path = tmp_path_factory.mktemp("ingest-property")
    loop = asyncio.new_event_loop()
    url = f"sqlite+aiosqlite:///{tmp / 'hearth.db'}"
    upgrade(url)

    async def start() -> tuple[RagService, Gateway, str]:
        gateway = Gateway(ModelsConfig.model_validate(EMBED_ONLY))
        await gateway.start()
        database = Database(url)
        auth = AuthService(database)
        rag = RagService(
            db=database,
            bus=EventBus(database),
            gateway=gateway,
            store=LanceStore(tmp / "lance"),
            keywords=KeywordIndex(tmp / "bm25"),
            config=RagConfig(data_dir=tmp),
            users=auth,
        )
        await rag.start(worker=True)
        return rag, gateway, (await auth.create_user(username="alice")).id

    rag, gateway, alice = loop.run_until_complete(start())
    yield loop, rag, alice

    async def stop() -> None:
        await rag.stop()
        await rag.db.close()
        await gateway.close()

    loop.run_until_complete(stop())
    loop.close()


_names = itertools.count()


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(documents=st.lists(document, min_size=1, max_size=6))
def test_every_document_ends_indexed_or_failed(service, documents):
    loop, rag, alice = service

    async def example() -> None:
        collection = f"adv{next(_names)}"
        await rag.create_collection(user_id=alice, name=collection)
        accepted = 0
        for i, (kind, value) in enumerate(documents):
            try:
                if kind == "text":
                    doc = TextDocument(text=value, source=f"{i}.txt")
                    await rag.ingest_text(user_id=alice, collection=collection, document=doc)
                else:
                    name, data = value
                    await rag.ingest_file(
                        user_id=alice, collection=collection, filename=name, data=data, source=f"{i}-{name}"
                    )
                accepted += 1
            except HearthError as exc:
                assert 400 <= exc.status < 500, exc.message  # refused up front, with a reason
                assert exc.message
        await rag.wait_idle(timeout=60)
        listed = await rag.list_documents(user_id=alice, collection=collection)
        assert len(listed) == accepted  # a refused document left nothing behind
        for d in listed:
            assert d.status in ("indexed", "failed"), (d.source, d.status)
            assert d.status == "indexed" or d.error, d.source
        for mode in ("sparse", "dense", "hybrid"):  # whatever was indexed, the collection answers queries
            await rag.retrieve(user_id=alice, collection=collection, query="the wing flutter", mode=mode)

    loop.run_until_complete(example())
