"""label.engine: the ONNX Runtime encoders (fp32, int8) keep the torch encoder's contract and labels."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from sft_ray.config import LabelConfig
from sft_ray.label.classifier import fit_head
from sft_ray.label.embed import Embedder, make_embedder
from sft_ray.label.onnx_embed import OnnxEmbedder, onnx_dir
from sft_ray.label.seed import load_seed, read_seed_rows
from tests.conftest import DEMO_DATA

AG_SEED = LabelConfig().topic.seed.model_copy(update={"path": str(DEMO_DATA / "ag_news_test_part.csv"), "max_rows": 200})


@pytest.fixture(scope="module")
def engines():
    return {"torch": Embedder(num_threads=2), "onnx": make_embedder(engine="onnx", num_threads=2),
            "onnx-int8": make_embedder(engine="onnx-int8", num_threads=2)}


@pytest.fixture(scope="module")
def ag():
    """200 seed rows and a fixed sample of 400 AG News rows not in the seed (100 per class)."""
    seed = load_seed(AG_SEED)
    rows, names = read_seed_rows(AG_SEED)
    used = set(seed.positions)
    held = [r for name in names for r in [r for r in rows if r.position not in used and r.label == name][:100]]
    return seed, [r.text for r in held]


def test_onnx_keeps_the_embedding_contract(engines):
    texts = ["A sentence.", "Another, longer sentence about something else entirely.", "x " * 400]
    ref, ref_cut = engines["torch"].encode(texts, layers=(0, -3, -1), return_truncated=True)
    for name in ("onnx", "onnx-int8"):
        x, cut = engines[name].encode(texts, layers=(0, -3, -1), return_truncated=True)
        assert x.shape == ref.shape == (3, 3 * 384) and x.dtype == np.float32
        assert (cut == ref_cut).all() and cut.tolist() == [False, False, True]
        blocks = x.reshape(3, 3, 384)
        assert np.allclose(np.linalg.norm(blocks, axis=2), 1.0, atol=1e-5)  # each layer's block normalised
        cos = (blocks * ref.reshape(3, 3, 384)).sum(2)
        assert cos.min() > (0.99999 if name == "onnx" else 0.95), (name, cos)  # measured: fp32 1.0, int8 >= 0.98
    assert isinstance(engines["onnx"], OnnxEmbedder) and engines["onnx-int8"].path.name == "model-int8.onnx"


def test_onnx_labels_agree_with_torch_on_99_percent(engines, ag):
    seed, held = ag
    x = {name: e.encode(seed.texts, 32) for name, e in engines.items()}
    heads = {name: fit_head(x[name], seed.labels, seed.label_names, folds=0) for name in engines}
    y = {name: e.encode(held, 32) for name, e in engines.items()}
    ref = np.asarray(heads["torch"].predict(y["torch"])[0])
    for name in ("onnx", "onnx-int8"):
        own = np.mean(np.asarray(heads[name].predict(y[name])[0]) == ref)  # the build: heads fitted on the engine's embeddings
        cross = np.mean(np.asarray(heads["torch"].predict(y[name])[0]) == ref)
        assert own >= 0.99 and cross >= 0.99, (name, own, cross)


def test_export_is_cached_and_engine_is_checked_against_the_device():
    assert onnx_dir() == onnx_dir()  # built once per node; later calls find it
    assert (onnx_dir() / "model.onnx").is_file() and (onnx_dir() / "model-int8.onnx").is_file()
    assert LabelConfig().resolved_engine in ("torch", "onnx", "onnx-int8")
    assert LabelConfig(num_gpus=1).resolved_engine == "torch"
    with pytest.raises(ValidationError, match="runs on CPU"):
        LabelConfig(num_gpus=1, engine="onnx-int8")
    with pytest.raises(ValueError, match="runs on CPU"):
        make_embedder(engine="onnx", device="cuda")
