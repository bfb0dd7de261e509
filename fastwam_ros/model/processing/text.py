"""UMT5 instruction encoder (official Fast-WAM prompt handling) and the instruction-embedding cache.

Official behaviour (reference spec §1.7, §3.6):

* prompt = ``DEFAULT_PROMPT.format(task=instruction)``;
* text cleaning: ``ftfy.fix_text`` (when ftfy is installed), HTML-unescape twice, collapse whitespace, strip;
* tokenise with special tokens, pad / truncate to **128** tokens;
* UMT5 encoder with the attention mask -> ``last_hidden_state`` [B, 128, 4096];
* rows beyond each prompt's real token count are set to **zero**; the cross-attention later attends to all
  rows (the mask is all True), so only the embeddings are returned.

The 5.7 B encoder is expensive, so :class:`~.text_cache.TextEmbeddingCache` keeps each instruction's embedding in memory and
optionally on disk, keyed by the encoder identity (config + weight-file fingerprint + dtype + max length) and the
exact prompt text. A replan with an unchanged instruction never runs the encoder.

Nothing is downloaded: encoders and tokenizers load from local directories only.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

DEFAULT_PROMPT = "A video recorded from a robot's point of view executing the following instruction: {task}"
DEFAULT_MAX_LENGTH = 128

_WS_RE = re.compile(r"\s+")


def clean_prompt(text: str) -> str:
    """Wan's tokenizer cleaning: ftfy fix (if installed), double HTML unescape, whitespace collapse."""
    try:  # ftfy is optional in the official code too
        import ftfy  # type: ignore[import-not-found]

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return _WS_RE.sub(" ", text).strip()


def format_prompt(instruction: str, template: str = DEFAULT_PROMPT) -> str:
    """The exact text the encoder sees for ``instruction`` (before cleaning)."""
    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be a str, got {type(instruction).__name__}")
    if not instruction.strip():
        raise ValueError("instruction is empty")
    return template.format(task=instruction)


# --------------------------------------------------------------------------------------------- identity
def _file_fingerprint(path: Path, chunk: int = 1 << 20) -> str:
    """Name, size and sha256 of the first and last MiB: cheap and content based (no mtimes)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(f"{path.name}:{size}:".encode())
    with path.open("rb") as f:
        h.update(f.read(chunk))
        if size > 2 * chunk:
            f.seek(size - chunk)
            h.update(f.read(chunk))
        elif size > chunk:
            h.update(f.read())
    return h.hexdigest()


def _config_fingerprint(config: Any) -> str:
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    for k in ("transformers_version", "_name_or_path", "torch_dtype", "dtype", "architectures"):
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def _state_dict_fingerprint(module: nn.Module) -> str:
    """sha256 of every parameter/buffer byte (use only for small in-memory encoders)."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        t = v.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{k}:{tuple(v.shape)}:{v.dtype}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    vocab = tokenizer.get_vocab()
    h.update(json.dumps(sorted(vocab.items()), ensure_ascii=False).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- encoder
def _resolve_text_dirs(text_encoder_dir: str | Path, tokenizer_dir: str | Path | None) -> tuple[Path, Path]:
    p = Path(text_encoder_dir).expanduser()
    if (p / "text_encoder" / "config.json").is_file():  # a diffusers pipeline root
        enc = p / "text_encoder"
        tok = Path(tokenizer_dir).expanduser() if tokenizer_dir else p / "tokenizer"
    elif (p / "config.json").is_file():
        enc = p
        if tokenizer_dir:
            tok = Path(tokenizer_dir).expanduser()
        elif (p.parent / "tokenizer").is_dir():  # <pipeline>/text_encoder beside <pipeline>/tokenizer
            tok = p.parent / "tokenizer"
        else:
            tok = p
    else:
        raise FileNotFoundError(
            f"no text encoder at {p}: expected {p / 'config.json'} or {p / 'text_encoder' / 'config.json'} "
            "(a local UMT5 encoder directory, e.g. Wan-AI/Wan2.2-TI2V-5B-Diffusers/text_encoder)"
        )
    if not tok.is_dir():
        raise FileNotFoundError(f"tokenizer directory {tok} does not exist (pass tokenizer_dir=...)")
    return enc, tok


class TextEncoder(nn.Module):
    """UMT5 encoder + tokenizer with the official prompt handling.

    ``encode(prompts)`` returns ``[B, max_length, d_model]`` with padding rows zeroed.
    ``num_forward_calls`` counts real invocations of the underlying encoder (a forward hook).
    """

    def __init__(
        self,
        tokenizer: Any,
        model: nn.Module,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        identity: str | None = None,
    ):
        super().__init__()
        if max_length <= 0:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self.tokenizer = tokenizer
        self.model = model.eval()
        self.max_length = int(max_length)
        self.num_forward_calls = 0
        self.model.register_forward_hook(self._count_call)
        base = (
            identity
            if identity is not None
            else (
                f"sd={_state_dict_fingerprint(model)};cfg={_config_fingerprint(model.config)};"
                f"tok={_tokenizer_fingerprint(tokenizer)}"
            )
        )
        self._base_identity = base

    def _count_call(self, *_: Any) -> None:
        self.num_forward_calls += 1

    @property
    def identity(self) -> str:
        """Stable id of (weights, config, tokenizer, dtype, max_length): the cache key's encoder part."""
        h = hashlib.sha256(f"{self._base_identity};dtype={self.dtype};len={self.max_length}".encode())
        return f"umt5-{type(self.model).__name__}-{self.text_dim}d-{h.hexdigest()[:24]}"

    @property
    def text_dim(self) -> int:
        return int(self.model.config.d_model)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def from_pretrained(
        cls,
        text_encoder_dir: str | Path,
        *,
        tokenizer_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> TextEncoder:
        """Load ``UMT5EncoderModel`` and its tokenizer from LOCAL directories (never downloads).

        ``text_encoder_dir`` may be the diffusers pipeline root (with ``text_encoder/`` and ``tokenizer/``),
        the ``text_encoder/`` folder itself (the tokenizer is then taken from the sibling ``tokenizer/``), or a
        folder holding both.
        """
        from transformers import AutoTokenizer, UMT5EncoderModel

        enc_dir, tok_dir = _resolve_text_dirs(text_encoder_dir, tokenizer_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        model = UMT5EncoderModel.from_pretrained(str(enc_dir), dtype=dtype, local_files_only=True)
        weight_files = sorted(
            f
            for f in enc_dir.iterdir()
            if f.suffix in (".safetensors", ".bin", ".pt", ".pth") and f.is_file()
        )
        if not weight_files:
            raise FileNotFoundError(f"no weight files (*.safetensors / *.bin) in {enc_dir}")
        fp = hashlib.sha256()
        for f in weight_files:
            fp.update(_file_fingerprint(f).encode())
        identity = f"w={fp.hexdigest()};cfg={_config_fingerprint(model.config)};tok={_tokenizer_fingerprint(tokenizer)}"
        return cls(tokenizer, model, max_length=max_length, identity=identity).to(device)

    @torch.no_grad()
    def encode(self, prompts: str | Iterable[str]) -> torch.Tensor:
        """Prompts (already formatted with the template) -> [B, max_length, d_model], pad rows zero."""
        if isinstance(prompts, str):
            prompts = [prompts]
        texts = [clean_prompt(p) for p in prompts]
        if not texts:
            raise ValueError("no prompts to encode")
        tok = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids = tok["input_ids"].to(self.device)
        mask = tok["attention_mask"].to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        # Zero rows beyond each prompt's real length (mask is a prefix of ones for right padding).
        return hidden.masked_fill(~mask.bool().unsqueeze(-1), 0.0)


# Pieces of the tiny offline tokenizer: T5 specials (ids 0, 1, 2 = pad, eos, unk), the word-boundary marker,
# printable ASCII as single characters (so any English text tokenises), and a few whole words.
_TINY_WORDS = (
    "a the of to and in on up from robot video recorded point view executing following instruction pick "
    "place put fold towel cube block red blue green open close drawer left right arm move grasp"
).split()


def build_tiny_tokenizer() -> Any:
    """A small Unigram ``T5Tokenizer`` built in code (no files, no downloads)."""
    from transformers import T5Tokenizer

    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    for i, w in enumerate(_TINY_WORDS):
        pieces.append(("\u2581" + w, -3.0 - 0.01 * i))
    for c in (chr(i) for i in range(33, 127)):
        pieces.append((c, -6.0))
        pieces.append(("\u2581" + c, -6.5))
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def build_tiny_text_encoder(
    text_dim: int = 32,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    seed: int = 0,
    num_layers: int = 2,
    num_heads: int = 4,
    d_ff: int | None = None,
    vocab_size: int | None = None,
    **umt5_overrides: Any,
) -> TextEncoder:
    """A random tiny UMT5 encoder (``d_model = text_dim``) with the offline tokenizer, for tests and demos."""
    from transformers import UMT5Config, UMT5EncoderModel

    if text_dim % num_heads:
        raise ValueError(f"tiny text_dim {text_dim} must be a multiple of num_heads {num_heads}")
    tokenizer = build_tiny_tokenizer()
    vocab = len(tokenizer) if vocab_size is None else int(vocab_size)
    if vocab < len(tokenizer):
        raise ValueError(f"vocab_size {vocab} is smaller than the tiny tokenizer's {len(tokenizer)} pieces")
    kw: dict[str, Any] = dict(
        vocab_size=vocab,
        d_model=text_dim,
        d_kv=text_dim // num_heads,
        d_ff=d_ff or 2 * text_dim,
        num_layers=num_layers,
        num_heads=num_heads,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    kw.update(umt5_overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UMT5EncoderModel(UMT5Config(**kw))
    return TextEncoder(tokenizer, model, max_length=max_length)


def text_encoder_from_config(cfg: Any, *, max_length: int = DEFAULT_MAX_LENGTH, seed: int = 0) -> TextEncoder:
    """Random UMT5 encoder shaped like ``cfg`` (a ``TextEncoderConfig`` or dict) with the tiny tokenizer.

    Meant for tiny configs (tests, demos, benchmarks of the cache); real deployments load a local directory.
    """
    d = cfg.__dict__ if hasattr(cfg, "__dataclass_fields__") else dict(cfg)
    return build_tiny_text_encoder(
        int(d["d_model"]),
        max_length=max_length,
        seed=seed,
        num_layers=int(d["num_layers"]),
        num_heads=int(d["num_heads"]),
        d_ff=int(d["d_ff"]),
        vocab_size=int(d["vocab_size"]),
        d_kv=int(d["d_kv"]),
        relative_attention_num_buckets=int(d.get("relative_attention_num_buckets", 32)),
        relative_attention_max_distance=int(d.get("relative_attention_max_distance", 128)),
        feed_forward_proj=str(d.get("feed_forward_proj", "gated-gelu")),
    )
