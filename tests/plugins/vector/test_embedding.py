"""The offline hashing embedder: lexical, deterministic across processes, unit length."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from robutler_plugin_vector.embedding import Embeddings, HashingEmbedder


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_same_vector_in_another_process() -> None:
    text = "Feature hashing is stable: hashlib, not hash()"
    here = HashingEmbedder(256).embed_one(text)
    code = (
        "import json; from robutler_plugin_vector.embedding import HashingEmbedder; "
        f"print(json.dumps(HashingEmbedder(256).embed_one({text!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == here


def test_shared_words_score_higher_than_unrelated_text() -> None:
    e = HashingEmbedder(256)
    doc = e.embed_one("The quarterly report shows revenue grew in Norway")
    assert cosine(doc, e.embed_one("revenue in Norway")) > 0.3
    assert cosine(doc, e.embed_one("my cat sleeps on the laptop")) < 0.15
    # word order matters a little (bigrams), case and punctuation do not
    assert cosine(doc, e.embed_one("THE QUARTERLY REPORT, shows revenue grew in norway!")) > 0.999
    assert cosine(doc, e.embed_one("Norway in grew revenue shows report quarterly the")) < 0.95


def test_no_words_is_the_zero_vector() -> None:
    assert HashingEmbedder(16).embed_one(" ... !!! ") == [0.0] * 16
    assert HashingEmbedder(16).identity == "hashing-v1/16"


@given(st.text(max_size=200), st.sampled_from([8, 64, 256]))
def test_vectors_have_the_dimension_and_unit_length(text: str, dims: int) -> None:
    vector = HashingEmbedder(dims).embed_one(text)
    assert len(vector) == dims
    norm = math.sqrt(sum(x * x for x in vector))
    assert norm == 0.0 or abs(norm - 1.0) < 1e-9


async def test_auto_falls_back_to_hashing_and_sticks_to_its_choice() -> None:
    calls: list[list[str]] = []

    async def no_provider(texts: list[str], model: str | None) -> None:
        calls.append(texts)
        return None

    embeddings = Embeddings("auto", None, HashingEmbedder(32), no_provider)
    assert embeddings.identity is None
    (v,) = await embeddings.embed(["hello world"])
    assert embeddings.identity == "hashing-v1/32" and len(v) == 32
    await embeddings.embed(["again"])
    assert calls == [["hello world"]]  # decided once: the provider is not asked again
