"""The instruction cache: instruction -> text embedding (memory LRU + optional disk), the ONE cache of the
package. Each entry also carries, while it is recent, the device copy and per-layer text K/V the processor attaches
(:class:`~.processor.FastWAMProcessor`). Keys: (encoder identity, exact prompt text)."""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .text import DEFAULT_PROMPT, TextEncoder, format_prompt

CACHE_FORMAT = "fastwam_ros.text_embeds.v1"


@dataclass
class CacheStats:
    hits: int = 0  # served from memory
    disk_hits: int = 0  # loaded from the disk cache (then kept in memory)
    misses: int = 0  # encoder ran
    corrupt_files: int = 0  # unreadable / mismatched disk entries that were ignored and recomputed

    def as_dict(self) -> dict[str, int]:
        return dict(
            hits=self.hits, disk_hits=self.disk_hits, misses=self.misses, corrupt_files=self.corrupt_files
        )


@dataclass
class InstructionEntry:
    """One cached instruction: its CPU embedding [L, D] and, while it is among the most recently used ones,
    the copies a model on its device needs (embedding [1, L, D] and the per-layer context K/V), attached by
    :class:`~fastwam_ros.model.processing.processor.FastWAMProcessor`. ``device_owner`` names who attached them."""

    prompt: str
    embedding: torch.Tensor
    device_embedding: torch.Tensor | None = None
    text_kv: Any = None
    device_owner: int | None = None

    def drop_device(self) -> None:
        self.device_embedding = None
        self.text_kv = None
        self.device_owner = None


class UnknownInstructionError(KeyError):
    """An instruction has no cached embedding and no text encoder is loaded to compute one."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def cache_key(encoder_id: str, prompt: str) -> str:
    """sha256 hex of the encoder identity and the exact prompt text."""
    return hashlib.sha256(f"{CACHE_FORMAT}\n{encoder_id}\n{prompt}".encode()).hexdigest()


class TextEmbeddingCache:
    """Instruction -> text embedding [max_length, text_dim] cache (memory LRU + optional disk).

    Keys are (encoder identity, formatted prompt). Values are CPU tensors in the encoder's output dtype.
    Without an encoder, only preloaded / disk entries for ``encoder_id`` can be served; anything else raises
    :class:`UnknownInstructionError`.
    """

    def __init__(
        self,
        encoder: TextEncoder | None = None,
        *,
        encoder_id: str | None = None,
        cache_dir: str | Path | None = None,
        template: str = DEFAULT_PROMPT,
        max_memory_entries: int = 1024,
    ):
        if encoder is None and encoder_id is None:
            raise ValueError("TextEmbeddingCache needs a text encoder or an explicit encoder_id")
        if encoder is not None and encoder_id is not None and encoder_id != encoder.identity:
            raise ValueError(
                f"encoder_id {encoder_id!r} does not match the encoder's identity {encoder.identity!r}"
            )
        self.encoder = encoder
        self._encoder_id = encoder_id
        self.template = template
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.max_memory_entries = int(max_memory_entries)
        self.stats = CacheStats()
        self._mem: OrderedDict[tuple[str, str], InstructionEntry] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def encoder_id(self) -> str:
        return self.encoder.identity if self.encoder is not None else str(self._encoder_id)

    def prompt_for(self, instruction: str) -> str:
        return format_prompt(instruction, self.template)

    def disk_path(self, prompt: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{cache_key(self.encoder_id, prompt)}.safetensors"

    # -- lookups
    def __contains__(self, instruction: str) -> bool:
        return (self.encoder_id, self.prompt_for(instruction)) in self._mem

    def get(self, instruction: str) -> torch.Tensor:
        """Embedding [max_length, text_dim] (CPU) of ``instruction``; runs the encoder only on a miss."""
        return self.lookup(instruction)[0].embedding

    def lookup(self, instruction: str) -> tuple[InstructionEntry, bool]:
        """(the cache entry of ``instruction``, True unless the encoder had to run)."""
        with self._lock:
            prompt = self.prompt_for(instruction)
            key = (self.encoder_id, prompt)
            hit = self._mem.get(key)
            if hit is not None:
                self._mem.move_to_end(key)
                self.stats.hits += 1
                return hit, True
            emb = self._load_disk(prompt)
            if emb is not None:
                self.stats.disk_hits += 1
                return self._remember(key, emb), True
            if self.encoder is None:
                known = sorted(p for (eid, p) in self._mem if eid == self.encoder_id)
                raise UnknownInstructionError(
                    f"instruction {instruction!r} has no cached text embedding and no text encoder is loaded "
                    f"(pass text_encoder_dir=...); cached prompts for this model: {known}"
                )
            emb = self.encoder.encode([prompt])[0].detach().to("cpu").contiguous()
            self.stats.misses += 1
            entry = self._remember(key, emb)
            self._save_disk(prompt, emb)
            return entry, False

    def trim_device(self, keep: int) -> None:
        """Keep the device copies (embedding, K/V) of the ``keep`` most recently used entries only."""
        with self._lock:
            with_dev = [e for e in reversed(self._mem.values()) if e.device_owner is not None]
            for e in with_dev[max(int(keep), 0):]:
                e.drop_device()

    def drop_device(self) -> None:
        """Forget every device copy (new weights, device or dtype); the CPU embeddings stay."""
        with self._lock:
            for e in self._mem.values():
                e.drop_device()

    def put(self, instruction: str, embedding: torch.Tensor, *, encoder_id: str | None = None) -> None:
        """Insert a precomputed embedding [L, D] (e.g. from a saved policy's ``text_embeds.safetensors``)."""
        if embedding.ndim != 2:
            raise ValueError(f"embedding must be [L, D], got shape {tuple(embedding.shape)}")
        with self._lock:
            self._remember(
                (encoder_id or self.encoder_id, self.prompt_for(instruction)), embedding.detach().cpu()
            )

    def put_prompt(self, prompt: str, embedding: torch.Tensor, *, encoder_id: str | None = None) -> None:
        """Like :meth:`put` but keyed by an already formatted prompt."""
        if embedding.ndim != 2:
            raise ValueError(f"embedding must be [L, D], got shape {tuple(embedding.shape)}")
        with self._lock:
            self._remember((encoder_id or self.encoder_id, prompt), embedding.detach().cpu())

    def entries(self, encoder_id: str | None = None) -> dict[str, torch.Tensor]:
        """Formatted prompt -> embedding for one encoder identity (default: the current one)."""
        eid = encoder_id or self.encoder_id
        with self._lock:
            return {p: entry.embedding for (e, p), entry in self._mem.items() if e == eid}

    def detach_encoder(self) -> None:
        """Drop the encoder (frees its memory); the cached entries keep serving under the same identity."""
        with self._lock:
            if self.encoder is not None:
                self._encoder_id = self.encoder.identity
                self.encoder = None

    def clear_memory(self) -> None:
        with self._lock:
            self._mem.clear()

    # -- internals
    def _remember(self, key: tuple[str, str], emb: torch.Tensor) -> InstructionEntry:
        entry = InstructionEntry(key[1], emb)
        self._mem[key] = entry
        self._mem.move_to_end(key)
        while len(self._mem) > self.max_memory_entries:
            self._mem.popitem(last=False)
        return entry

    def _load_disk(self, prompt: str) -> torch.Tensor | None:
        path = self.disk_path(prompt)
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                emb = f.get_tensor("embedding")
            problems = []
            if meta.get("format") != CACHE_FORMAT:
                problems.append(f"format {meta.get('format')!r} != {CACHE_FORMAT!r}")
            if meta.get("encoder_id") != self.encoder_id:
                problems.append("encoder identity differs")
            if meta.get("prompt") != prompt:
                problems.append("prompt text differs (hash collision?)")
            if emb.ndim != 2:
                problems.append(f"embedding shape {tuple(emb.shape)} is not [L, D]")
            elif self.encoder is not None and (
                emb.shape[0] != self.encoder.max_length or emb.shape[1] != self.encoder.text_dim
            ):
                problems.append(
                    f"embedding shape {tuple(emb.shape)} != [{self.encoder.max_length}, {self.encoder.text_dim}]"
                )
            if problems:
                raise ValueError("; ".join(problems))
            if not torch.isfinite(emb.float()).all():
                raise ValueError("embedding contains NaN/inf")
        except Exception as exc:  # noqa: BLE001 - any unreadable entry is recomputed
            self.stats.corrupt_files += 1
            warnings.warn(
                f"ignoring corrupt text-embedding cache file {path} ({type(exc).__name__}: {exc}); recomputing",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        return emb.contiguous()

    def _save_disk(self, prompt: str, emb: torch.Tensor) -> None:
        path = self.disk_path(prompt)
        if path is None:
            return
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        meta = {"format": CACHE_FORMAT, "encoder_id": self.encoder_id, "prompt": prompt}
        save_file({"embedding": emb.contiguous()}, str(tmp), metadata=meta)
        os.replace(tmp, path)


__all__ = ["CACHE_FORMAT", "CacheStats", "InstructionEntry", "TextEmbeddingCache", "UnknownInstructionError",
           "cache_key"]
