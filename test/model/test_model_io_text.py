"""Text encoder (official prompt handling) and the instruction-embedding cache, with a real tiny UMT5."""

from __future__ import annotations

import pytest
import torch

from fastwam_ros.model.processing.text import (
    DEFAULT_PROMPT,
    TextEncoder,
    build_tiny_text_encoder,
    clean_prompt,
    format_prompt,
)
from fastwam_ros.model.processing.text_cache import TextEmbeddingCache, UnknownInstructionError

L = 24  # tokens (tiny; the real model uses 128)


@pytest.fixture(scope="module")
def enc() -> TextEncoder:
    return build_tiny_text_encoder(32, max_length=L, seed=0)


class CallCounter:
    """Counts real forward invocations of the UMT5 module (a hook, the encoder itself runs)."""

    def __init__(self, module):
        self.n = 0
        self._h = module.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.n += 1

    def close(self):
        self._h.remove()


def test_prompt_template_and_cleaning():
    assert DEFAULT_PROMPT == "A video recorded from a robot's point of view executing the following instruction: {task}"
    assert format_prompt("fold the towel").endswith("instruction: fold the towel")
    assert clean_prompt("  fold \n the\t&amp;amp; towel  ") == "fold the & towel"
    with pytest.raises(ValueError, match="empty"):
        format_prompt("   ")
    with pytest.raises(TypeError, match="str"):
        format_prompt(None)  # type: ignore[arg-type]


def test_padding_rows_zeroed_real_rows_match_encoder(enc):
    prompts = [format_prompt("pick up the red cube"), format_prompt("fold")]
    emb = enc.encode(prompts)
    assert emb.shape == (2, L, 32)
    tok = enc.tokenizer([clean_prompt(p) for p in prompts], padding="max_length", max_length=L,
                        truncation=True, return_tensors="pt")
    n_real = tok["attention_mask"].sum(1)
    direct = enc.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).last_hidden_state
    for b in range(2):
        n = int(n_real[b])
        assert 0 < n < L
        assert torch.equal(emb[b, n:], torch.zeros(L - n, 32))  # padding rows exactly zero
        torch.testing.assert_close(emb[b, :n], direct[b, :n], rtol=0, atol=1e-5)
        assert bool((emb[b, :n].abs().sum(-1) > 0).all())
    # Truncation to max_length: a very long instruction still gives L rows, none zero.
    long = enc.encode(format_prompt("pick " * 100))
    assert long.shape == (1, L, 32) and bool((long[0].abs().sum(-1) > 0).all())


def test_cache_hits_on_second_call(enc):
    counter = CallCounter(enc.model)
    try:
        cache = TextEmbeddingCache(enc)
        a = cache.get("fold the towel")
        assert counter.n == 1
        b = cache.get("fold the towel")
        assert counter.n == 1, "the encoder ran again for a cached instruction"
        assert torch.equal(a, b)
        assert cache.stats.hits == 1 and cache.stats.misses == 1
        torch.testing.assert_close(a, enc.encode(format_prompt("fold the towel"))[0], rtol=0, atol=0)
        cache.get("open the drawer")
        assert counter.n == 3  # one more miss (+1 for the direct encode above)
        assert "fold the towel" in cache and "close the drawer" not in cache
    finally:
        counter.close()


def test_disk_cache_reload_and_identity(enc, tmp_path):
    c1 = TextEmbeddingCache(enc, cache_dir=tmp_path)
    a = c1.get("pick up the cube")
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    counter = CallCounter(enc.model)
    try:
        c2 = TextEmbeddingCache(enc, cache_dir=tmp_path)  # a fresh process, same encoder
        b = c2.get("pick up the cube")
        assert counter.n == 0 and c2.stats.disk_hits == 1 and c2.stats.misses == 0
        assert torch.equal(a, b)
    finally:
        counter.close()
    # A different encoder (other weights) must not reuse those embeddings.
    other = build_tiny_text_encoder(32, max_length=L, seed=1)
    assert other.identity != enc.identity
    c3 = TextEmbeddingCache(other, cache_dir=tmp_path)
    c3.get("pick up the cube")
    assert c3.stats.misses == 1 and c3.stats.disk_hits == 0
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    # Identity is stable for identical weights and changes with dtype.
    assert build_tiny_text_encoder(32, max_length=L, seed=0).identity == enc.identity
    assert build_tiny_text_encoder(32, max_length=L, seed=0).to(torch.float64).identity != enc.identity


def test_corrupt_disk_file_is_ignored_and_recomputed(enc, tmp_path):
    c1 = TextEmbeddingCache(enc, cache_dir=tmp_path)
    a = c1.get("move left")
    path = c1.disk_path(format_prompt("move left"))
    path.write_bytes(b"\x00garbage" * 10)
    c2 = TextEmbeddingCache(enc, cache_dir=tmp_path)
    with pytest.warns(RuntimeWarning, match="corrupt text-embedding cache file"):
        b = c2.get("move left")
    assert c2.stats.corrupt_files == 1 and c2.stats.misses == 1
    assert torch.equal(a, b)
    c3 = TextEmbeddingCache(enc, cache_dir=tmp_path)  # the file was rewritten and is valid again
    assert torch.equal(c3.get("move left"), a) and c3.stats.disk_hits == 1


def test_without_encoder_only_known_instructions(enc):
    ref = TextEmbeddingCache(enc)
    emb = ref.get("grasp the block")
    cache = TextEmbeddingCache(encoder_id=enc.identity)
    cache.put("grasp the block", emb)
    assert torch.equal(cache.get("grasp the block"), emb)
    with pytest.raises(UnknownInstructionError, match="no text encoder is loaded"):
        cache.get("something new")
    with pytest.raises(ValueError, match="encoder_id"):
        TextEmbeddingCache()


def test_from_pretrained_local_dirs(enc, tmp_path):
    enc.model.save_pretrained(tmp_path / "text_encoder")
    enc.tokenizer.save_pretrained(tmp_path / "tokenizer")
    prompt = format_prompt("put the blue block on the left")
    for root in (tmp_path, tmp_path / "text_encoder"):
        loaded = TextEncoder.from_pretrained(root, max_length=L)
        torch.testing.assert_close(loaded.encode(prompt), enc.encode(prompt), rtol=0, atol=0)
    again = TextEncoder.from_pretrained(tmp_path, max_length=L)
    assert again.identity == loaded.identity  # file-based identity is stable
    with pytest.raises(FileNotFoundError, match="text encoder"):
        TextEncoder.from_pretrained(tmp_path / "missing")
