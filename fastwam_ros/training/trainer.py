"""Fast-WAM fine-tuning on ``accelerate`` (reference spec §3.4–§3.6).

One code path for a CPU, one GPU, several GPUs (DDP), FSDP or DeepSpeed: the distribution strategy comes from
the ``accelerate launch --config_file ...`` configuration, never from this file.

* AdamW (lr 1e-4, betas 0.9/0.95, weight decay 0.01), linear warmup over 5 % of the steps (start factor
  1/warmup_steps) then cosine to 1e-6, grad-norm clip 1.0, bf16 autocast on GPU (fp32 on CPU);
* trainable: the whole MoT (video + action experts) and the proprio encoder; the VAE is frozen and only encodes
  the 9-frame clips (optionally cached per sample); the text encoder runs once per distinct instruction;
* exact resume: model, optimizer, scheduler, RNG states and the data position (epoch, batch) are checkpointed;
  the per-step noise comes from a generator seeded by (seed, micro-step, rank), so a resumed run draws the
  same noise as an uninterrupted one;
* each checkpoint holds a deployable policy directory (weights + config + dataset stats + perception config +
  instruction embeddings), the accelerate state, ``trainer_state.json`` and ``loss_curve.png``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from fastwam_ros.model.processing.processor import FastWAMProcessor

from .config import TrainConfig
from .dataset import FastWAMDataset
from .episode import Episode
from .errors import TrainConfigError
from .frames import load_perception_config, perception_config_dict
from .observe import (
    StepLog,
    append_jsonl,
    check_tracker,
    checkpoint_metrics,
    ema_update,
    format_val,
    smoothed,
    spaced_indices,
    split_episodes,
    startup_summary,
    summary_info,
    tracker_config,
    training_data,
)
from .plotting import plot_loss_curve
from .sampling import WindowSpec
from .sources import load_episodes
from .stats import STATS_FILENAME, compute_stats, load_stats, save_stats

CHECKPOINT_DIR = "checkpoints"


# ------------------------------------------------------------------------------------------------ helpers
class EpochSampler(Sampler):
    """Shuffles sample indices with ``randperm`` seeded by ``seed + epoch`` (identical on every process; accelerate
    shards the resulting batches). ``set_epoch`` selects the permutation, so a resumed run replays it."""

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True) -> None:
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.num_samples))
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=g).tolist())


class TrainerState:
    """Progress counters and loss history; registered with accelerate so it is saved with every checkpoint."""

    def __init__(self) -> None:
        self.step = 0  # optimizer steps done
        self.micro_step = 0  # batches consumed (all epochs)
        self.epoch = 0
        self.batch_in_epoch = 0  # batches of the current epoch already consumed
        self.history: list[dict[str, float]] = []
        self.val_history: list[dict[str, float]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "micro_step": self.micro_step, "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch, "history": list(self.history),
                "val_history": list(self.val_history)}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.step = int(d["step"])
        self.micro_step = int(d["micro_step"])
        self.epoch = int(d["epoch"])
        self.batch_in_epoch = int(d["batch_in_epoch"])
        self.history = list(d["history"])
        self.val_history = list(d.get("val_history", []))


class LossModule(nn.Module):
    """Wraps the model so that ``forward`` is the training loss (DDP/FSDP/DeepSpeed hook into ``forward``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None):
        out = self.model.training_loss(batch, generator=generator)
        return {k: out[k] for k in ("loss", "loss_video", "loss_action")}


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """LR multiplier at optimizer step ``step``: linear warmup from 1/warmup_steps to 1 over ``warmup_steps``
    (torch LinearLR), then cosine from ``lr`` to ``min_lr`` over the remaining steps (CosineAnnealingLR)."""
    if warmup_steps > 0 and step < warmup_steps:
        start = 1.0 / warmup_steps
        return start + (1.0 - start) * step / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return (min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))) / lr


def _mixed_precision(choice: str, cpu: bool) -> str | None:
    if choice != "auto":
        return choice
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None  # from the accelerate launch config
    return "bf16" if (torch.cuda.is_available() and not cpu) else "no"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """Newest ``checkpoints/step_*`` directory of a run that holds a complete accelerate state."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step_*") if (p / "trainer_state.json").is_file())
    return done[-1] if done else None


# ------------------------------------------------------------------------------------------------ trainer
class Trainer:
    """Builds data, model, optimiser and accelerate objects from a :class:`TrainConfig`; :meth:`train` runs.

    ``episodes`` may be given directly (tests, notebooks); otherwise they are read from ``cfg.data``. They are
    split into training and validation episodes (``train.val_fraction``, ``train.val_seed``).
    ``text_cache``: a ready ``TextEmbeddingCache`` (e.g. a policy's stored embeddings) instead of building the
    text encoder named by ``model.text_encoder``.
    """

    def __init__(self, cfg: TrainConfig, episodes: list[Episode] | None = None, text_cache: Any = None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        cfg.validate()
        self.cfg = cfg
        t = cfg.train
        self.out = Path(cfg.output_dir)
        log_with = check_tracker(t.report_to)
        self.accelerator = Accelerator(
            mixed_precision=_mixed_precision(t.mixed_precision, t.cpu),
            gradient_accumulation_steps=t.grad_accum_steps,
            cpu=t.cpu,
            log_with=log_with,
            project_dir=str(self.out) if log_with else None,
        )
        acc = self.accelerator
        set_seed(t.seed + acc.process_index)
        self.is_main = acc.is_main_process
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2), encoding="utf-8")

        # ---- data
        self.perception_config = load_perception_config(cfg.data.perception)
        if episodes is None:
            episodes = load_episodes(cfg.data.format, cfg.data.paths,
                                     cfg.data.rosbag if cfg.data.format == "rosbag" else cfg.data.lerobot,
                                     self.perception_config)
        train_eps, val_eps = split_episodes(episodes, t.val_fraction, t.val_seed)
        self.dataset = FastWAMDataset(train_eps, self.perception_config, WindowSpec(),
                                      window_stride=cfg.data.window_stride)
        self.val_dataset = FastWAMDataset(val_eps, self.perception_config, WindowSpec()) if val_eps else None
        self.val_indices = spaced_indices(len(self.val_dataset), t.val_samples) if self.val_dataset else []
        self.stats = self._dataset_stats(episodes)

        # ---- model
        from fastwam_ros.model.config import load_config
        from fastwam_ros.model.network.fastwam import FastWAM
        from fastwam_ros.model.processing.normalizer import StateActionNormalizer

        mcfg = load_config(cfg.model.config)
        if cfg.model.variant is not None:
            mcfg.variant = cfg.model.variant
        if cfg.model.loss_lambda_video is not None:
            mcfg.loss_lambda_video = float(cfg.model.loss_lambda_video)
        if cfg.model.loss_lambda_action is not None:
            mcfg.loss_lambda_action = float(cfg.model.loss_lambda_action)
        mcfg.validate()
        self._check_shapes(mcfg)
        self.model_config = mcfg
        if cfg.model.init and Path(cfg.model.init).is_file():
            from fastwam_ros.model.checkpoints.file_check import check_official_keys

            check_official_keys(mcfg, cfg.model.init)  # a bad file fails before the model is built
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.model.seed)
            model = FastWAM(mcfg)
        if cfg.model.init:
            self._load_init_weights(model, cfg.model.init)
        model.float().train()
        normalizer = StateActionNormalizer.from_dataset_stats(
            self.stats, mcfg.normalization.mode, mcfg.normalization.clamp)
        # the processor deployment uses too: normalisation, VAE encoding, the instruction cache (``text_cache``
        # given: e.g. a policy's stored embeddings, instead of the text encoder named by ``model.text_encoder``)
        instructions = list(dict.fromkeys(self.dataset.instructions + (self.val_dataset.instructions
                                                                         if self.val_dataset else [])))
        cache = text_cache if text_cache is not None else self._build_text_cache(mcfg, len(instructions))
        self.processor = FastWAMProcessor(mcfg, normalizer, self._build_vae(mcfg), cache,
                                          device=self.accelerator.device, dtype=torch.float32)
        self._instructions = instructions
        self._encode_instructions(instructions, release_encoder=text_cache is None)  # not a caller's encoder
        self._latent_cache: dict[int, torch.Tensor] = {}

        # ---- optimisation
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay,
                                           eps=t.eps)
        self.sampler = EpochSampler(len(self.dataset), t.seed)
        loader = DataLoader(self.dataset, batch_size=t.batch_size, sampler=self.sampler, num_workers=
                            cfg.data.num_workers, pin_memory=torch.cuda.is_available() and not t.cpu,
                            drop_last=False, persistent_workers=cfg.data.num_workers > 0)
        self.loss_module, self.optimizer, self.loader = acc.prepare(LossModule(model), self.optimizer, loader)
        self.batches_per_epoch = len(self.loader)
        self.steps_per_epoch = max(math.ceil(self.batches_per_epoch / t.grad_accum_steps), 1)
        self.total_steps = int(t.max_steps) if t.max_steps else self.steps_per_epoch * t.epochs
        self.warmup_steps = int(t.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer.optimizer if hasattr(self.optimizer, "optimizer") else self.optimizer,
            lambda s: warmup_cosine_factor(s, self.total_steps, self.warmup_steps, t.lr, t.min_lr),
        )
        self.state = TrainerState()
        acc.register_for_checkpointing(self.scheduler)
        acc.register_for_checkpointing(self.state)
        if t.resume:
            ckpt = latest_checkpoint(self.out) if t.resume == "auto" else Path(t.resume)
            if ckpt is not None:
                self.load_checkpoint(ckpt)
        if log_with:
            acc.init_trackers(self.out.name or "fastwam", config=tracker_config(cfg.to_dict()))

    # ---------------------------------------------------------------------------------------- setup parts
    def _dataset_stats(self, episodes: list[Episode]) -> dict[str, Any]:
        """Stats from ``data.stats``, ``<paths[0]>/dataset_stats.json`` or ``<output_dir>/dataset_stats.json``;
        computed (main process) when none exists and written to ``data.stats`` (else the run dir) -- never into
        the recordings."""
        cfg = self.cfg
        acc = self.accelerator
        candidates = [Path(cfg.data.stats)] if cfg.data.stats else []
        if cfg.data.paths:
            first = Path(cfg.data.paths[0])
            candidates.append((first if first.is_dir() else first.parent) / STATS_FILENAME)
        candidates.append(self.out / STATS_FILENAME)
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            targets = ([Path(cfg.data.stats)] if cfg.data.stats else []) + [self.out / STATS_FILENAME]
            if self.is_main:
                stats = compute_stats([(ep.state, ep.action) for ep in episodes])
                for target in targets:
                    try:
                        save_stats(stats, target)
                        break
                    except OSError as exc:
                        warnings.warn(f"cannot write {target} ({exc}); trying the next location", stacklevel=2)
            acc.wait_for_everyone()
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise TrainConfigError(f"could not write dataset statistics to any of {candidates}")
        stats = load_stats(found)
        if self.is_main and found.resolve() != (self.out / STATS_FILENAME).resolve():
            shutil.copyfile(found, self.out / STATS_FILENAME)
        self.stats_path = found
        return stats

    def _check_shapes(self, mcfg) -> None:
        ds = self.dataset
        if mcfg.proprio_dim != ds.state_dim:
            raise TrainConfigError(f"model proprio_dim {mcfg.proprio_dim} != dataset state dim {ds.state_dim} "
                                   "(joint_names of the data vs the model config)")
        if mcfg.action_dim != ds.action_dim:
            raise TrainConfigError(f"model action_dim {mcfg.action_dim} != dataset action dim {ds.action_dim}")
        if mcfg.policy.action_horizon != WindowSpec().action_horizon:
            raise TrainConfigError(f"model action_horizon {mcfg.policy.action_horizon} != {WindowSpec().action_horizon}")
        hw = tuple(self.perception_config.out_hw)
        if hw != (mcfg.policy.image_height, mcfg.policy.image_width):
            raise TrainConfigError(
                f"perception tiles {hw[0]}x{hw[1]} (H x W) but the model config expects "
                f"{mcfg.policy.image_height}x{mcfg.policy.image_width}; make them agree")
        expected_pad = (self.stats["action.default.global_mean"], self.stats["state.default.global_mean"])
        if len(expected_pad[0]) != ds.action_dim or len(expected_pad[1]) != ds.state_dim:
            raise TrainConfigError(f"dataset statistics {self.stats_path} have action/state dims "
                                   f"{len(expected_pad[0])}/{len(expected_pad[1])}, the data {ds.action_dim}/"
                                   f"{ds.state_dim}; delete the stale stats file")

    def _load_init_weights(self, model: nn.Module, path: str) -> None:
        p = Path(path)
        if p.is_dir():
            from .policy_io import load_policy_weights

            load_policy_weights(model, p)
        elif p.is_file():
            from fastwam_ros.model.checkpoints.checkpoint import load_official_checkpoint

            load_official_checkpoint(model, p, strict=True)
        else:
            raise TrainConfigError(f"model.init {p} does not exist")

    def _build_vae(self, mcfg):
        from fastwam_ros.model.processing.encoders import WanVAE

        src = self.cfg.model.vae
        device = self.accelerator.device
        if src is None:
            raise TrainConfigError("model.vae is not set: give the local Wan2.2 VAE directory (or `random` for "
                                   "tiny test configs)")
        if src == "random":
            vae = WanVAE.from_vae_config(mcfg.vae, seed=self.cfg.model.seed).to(device)
        else:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
            vae = WanVAE.from_pretrained(src, device=device, dtype=dtype)
        vae.requires_grad_(False)
        return vae.eval()

    def _build_text_cache(self, mcfg, num_instructions: int):
        from fastwam_ros.model.processing.text import TextEncoder, text_encoder_from_config
        from fastwam_ros.model.processing.text_cache import TextEmbeddingCache

        src = self.cfg.model.text_encoder
        if src is None:
            raise TrainConfigError("model.text_encoder is not set: give the local UMT5 directory (or `random` for "
                                   "tiny test configs)")
        if src == "random":
            enc = text_encoder_from_config(mcfg.text_encoder, max_length=mcfg.policy.text_len,
                                           seed=self.cfg.model.seed)
        else:
            device = self.accelerator.device
            enc = TextEncoder.from_pretrained(src, tokenizer_dir=self.cfg.model.tokenizer, device=device,
                                              dtype=torch.bfloat16 if device.type == "cuda" else torch.float32,
                                              max_length=mcfg.policy.text_len)
        return TextEmbeddingCache(enc, cache_dir=self.cfg.model.text_cache_dir, template=mcfg.policy.prompt_template,
                                  max_memory_entries=max(1024, num_instructions))

    def _encode_instructions(self, instructions: list[str], release_encoder: bool = True) -> None:
        """Every instruction's text embedding [L, text_dim] (pad rows zero) into the processor's instruction cache,
        one encoder call per instruction; then the encoder is dropped (the cache serves every batch)."""
        proc = self.processor
        for ins in instructions:
            proc.text_embedding(ins)
        self.text_encoder_id = proc.text_cache.encoder_id
        self.prompts = {ins: proc.text_cache.prompt_for(ins) for ins in instructions}
        if release_encoder:
            proc.release_text_encoder()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @property
    def text_embeds(self) -> dict[str, torch.Tensor]:
        """Instruction -> embedding [L, text_dim] (float32, CPU) of every training instruction, from the cache."""
        return {ins: self.processor.text_embedding(ins) for ins in self._instructions}

    @property
    def vae(self):
        return self.processor.vae

    @property
    def normalizer(self):
        return self.processor.normalizer

    # ---------------------------------------------------------------------------------------- batches
    def encode_video(self, video: torch.Tensor, index: torch.Tensor, use_cache: bool = True) -> torch.Tensor:
        """[B, 3, 9, H, W] in [-1, 1] → normalised VAE latents [B, 48, 3, h, w] (frozen VAE, no grad)."""
        mode = self.cfg.data.latent_cache
        if mode == "none" or not use_cache:
            return self.processor.encode_video(video).float()
        keys = [int(i) for i in index.tolist()]
        out: list[torch.Tensor | None] = [self.cached_latent(k) for k in keys]
        todo = [j for j, o in enumerate(out) if o is None]
        for j in todo:  # one sample at a time: a cached latent must not depend on its batch-mates
            z = self.processor.encode_video(video[j : j + 1]).float()[0]
            self._store_latent(keys[j], z.detach())
            out[j] = z
        return torch.stack([o.to(video.device) for o in out])

    @torch.no_grad()
    def prefill_latent_cache(self, batch_size: int = 16, part: tuple[int, int] = (0, 1),
                             log=None) -> int:
        """Encode the training samples' latents that the cache lacks, ``batch_size`` at a time (batched VAE passes
        are ~2x cheaper per sample on a CPU than the one-by-one encoding on first use); with ``part`` = (i, n) only
        every n-th missing sample from the i-th (n processes can share a disk cache). Returns the number encoded."""
        from torch.utils.data import default_collate

        if self.cfg.data.latent_cache == "none":
            raise ValueError("prefill_latent_cache needs data.latent_cache = memory or disk")
        i, n = part
        todo = [k for k in range(len(self.dataset)) if self.cached_latent(k) is None][i::n]
        for j in range(0, len(todo), batch_size):
            keys = todo[j : j + batch_size]
            batch = default_collate([self.dataset[k] for k in keys])
            z = self.processor.encode_video(batch["video"].to(self.accelerator.device)).float()
            for k, zk in zip(keys, z):
                self._store_latent(k, zk.detach())
            if log is not None and (j // batch_size) % 50 == 0:
                log(f"latents {j + len(keys)}/{len(todo)}")
        if all(self.cached_latent(k) is not None for k in range(len(self.dataset))):
            self.dataset.latent_source = self.cached_latent  # every item is cached: skip tiling frames
        return len(todo)

    def cached_latent(self, key: int) -> torch.Tensor | None:
        """The normalised VAE latent [48, 3, h, w] of training sample ``key`` if the latent cache (memory, or the
        disk folder ``data.latent_cache_dir``) holds it, else None (nothing is encoded here)."""
        if key in self._latent_cache:
            return self._latent_cache[key]
        if self.cfg.data.latent_cache == "disk":
            f = Path(self.cfg.data.latent_cache_dir) / f"{key:09d}.pt"
            if f.is_file():
                z = torch.load(f, map_location="cpu", weights_only=True)
                self._latent_cache[key] = z
                return z
        return None

    def _store_latent(self, key: int, z: torch.Tensor) -> None:
        z = z.cpu()
        self._latent_cache[key] = z
        if self.cfg.data.latent_cache == "disk":
            d = Path(self.cfg.data.latent_cache_dir)
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / f".{key:09d}.{self.accelerator.process_index}.tmp"
            torch.save(z, tmp)
            tmp.replace(d / f"{key:09d}.pt")

    def model_inputs(self, batch: dict[str, Any], use_cache: bool = True) -> dict[str, torch.Tensor]:
        """Dataset batch → the model's training batch through the processor (normalised actions / proprio,
        latents from the latent cache or the VAE, text embeddings from the instruction cache).
        ``use_cache``: False for samples of another dataset than the training one (validation)."""
        device = self.accelerator.device
        if "latent" in batch and use_cache:  # every latent of the dataset is cached: no frames were tiled
            return self.processor.training_inputs(batch, video_latents=batch["latent"].to(device).float())
        latents = self.encode_video(batch["video"].to(device), batch["index"], use_cache)
        return self.processor.training_inputs(batch, video_latents=latents)

    def generator(self, micro_step: int) -> torch.Generator:
        """Noise generator of one micro-step: a function of (seed, micro-step, rank) only."""
        seed = (self.cfg.train.seed * 1_000_003 + micro_step * 7_919 + self.accelerator.process_index) % (2**63)
        return torch.Generator(device=self.accelerator.device).manual_seed(seed)

    @torch.no_grad()
    def evaluate(self, indices: list[int], seeds: tuple[int, ...] = (0, 1, 2, 3),
                 dataset: FastWAMDataset | None = None) -> dict[str, float]:
        """Loss on fixed samples of ``dataset`` (default: the training set) with fixed noise: the mean over samples
        and ``seeds`` of each sample's loss, its noise drawn from ``seed * 100003 + sample index``. One sample per
        forward pass, so the figure does not depend on the batch size or on which other samples are evaluated: a
        deterministic progress measure (the validation loss, ``fastwam eval``)."""
        from torch.utils.data import default_collate

        module = self.accelerator.unwrap_model(self.loss_module)
        ds = self.dataset if dataset is None else dataset
        totals = {"loss": 0.0, "loss_video": 0.0, "loss_action": 0.0}
        was_training = module.training
        module.eval()
        try:
            for i in indices:
                # the latent cache is keyed by training-sample index: other datasets bypass it
                inputs = self.model_inputs(default_collate([ds[int(i)]]), use_cache=ds is self.dataset)
                for seed in seeds:
                    g = torch.Generator(device=self.accelerator.device).manual_seed(int(seed) * 100_003 + int(i))
                    with self.accelerator.autocast():
                        out = module(inputs, g)
                    for k in totals:
                        totals[k] += float(out[k]) / (len(seeds) * len(indices))
        finally:
            module.train(was_training)
        return totals

    # ---------------------------------------------------------------------------------------- loop
    def train(self, stop_at: int | None = None) -> list[dict[str, float]]:
        """Train until ``total_steps`` (or until optimizer step ``stop_at``, to simulate an interruption).
        Returns the loss history (one entry per optimizer step, averaged over processes).

        Output: the start-up summary; a tqdm bar on a terminal, else one line every ``log_every`` steps; every
        step's record in ``log.jsonl`` (with the smoothed loss); the validation loss every ``val_every`` steps."""
        acc, st, t = self.accelerator, self.state, self.cfg.train
        end = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        log = StepLog(self.total_steps, st.step, enabled=self.is_main, progress=t.progress)
        if self.is_main and st.step == 0:
            info = summary_info(self)
            log.write(startup_summary(info))
            (self.out / "run_summary.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        smooth = smoothed([h["loss"] for h in st.history], t.smoothing)[-1:] or [None]
        smooth_acc = (smooth[0], len(st.history))
        params = [p for p in self.loss_module.parameters() if p.requires_grad]
        acc_sums = {"loss": 0.0, "loss_video": 0.0, "loss_action": 0.0}
        n_micro = 0
        t_last = time.perf_counter()
        samples_since = 0
        while st.step < end:
            self.sampler.set_epoch(st.epoch)
            self.loader.set_epoch(st.epoch)
            loader = self.loader
            if st.batch_in_epoch:
                loader = acc.skip_first_batches(self.loader, st.batch_in_epoch)
                loader.set_epoch(st.epoch)
            for batch in loader:
                with acc.accumulate(self.loss_module):
                    inputs = self.model_inputs(batch)
                    with acc.autocast():
                        out = self.loss_module(inputs, self.generator(st.micro_step))
                    loss = out["loss"]
                    if not torch.isfinite(loss.detach()).all():
                        raise FloatingPointError(f"non-finite loss {loss.item()} at step {st.step}")
                    acc.backward(loss)
                    grad_norm = None
                    if acc.sync_gradients and t.max_grad_norm > 0:
                        grad_norm = acc.clip_grad_norm_(params, t.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                st.micro_step += 1
                st.batch_in_epoch += 1
                samples_since += int(batch["actions"].shape[0]) * acc.num_processes
                reduced = acc.reduce(torch.stack([out[k].detach().float() for k in acc_sums]), "mean")
                for k, v in zip(acc_sums, reduced.tolist()):
                    acc_sums[k] += v
                n_micro += 1
                epoch_done = st.batch_in_epoch >= self.batches_per_epoch
                if epoch_done:
                    st.epoch += 1
                    st.batch_in_epoch = 0
                if not acc.sync_gradients:
                    continue
                lr = self.scheduler.get_last_lr()[0]
                self.scheduler.step()
                st.step += 1
                now = time.perf_counter()
                rec = {"step": st.step, "epoch": st.epoch, "lr": lr,
                       **{k: v / max(n_micro, 1) for k, v in acc_sums.items()},
                       "samples_per_s": samples_since / max(now - t_last, 1e-9)}
                if grad_norm is not None:
                    rec["grad_norm"] = float(grad_norm)
                smooth_acc = ema_update(smooth_acc, rec["loss"], t.smoothing)
                rec["loss_smoothed"] = smooth_acc[0]
                st.history.append(rec)
                acc_sums = dict.fromkeys(acc_sums, 0.0)
                n_micro = 0
                last = st.step == self.total_steps
                log.step(rec, line_due=st.step % t.log_every == 0 or last)
                if self.is_main:
                    append_jsonl(self.out / "log.jsonl", rec)
                acc.log({f"train/{k}": v for k, v in rec.items() if k not in ("step", "epoch")}, step=st.step)
                if self.val_dataset is not None and (st.step % t.val_every == 0 or last):
                    self.validate(log)
                t_last, samples_since = now, 0
                if st.step % t.save_every == 0 or st.step == self.total_steps:
                    self.save_checkpoint()
                if st.step >= end or epoch_done:
                    break
        log.close()
        if st.step >= self.total_steps and self.cfg.train.report_to != "none":
            acc.end_training()
        return st.history

    def validate(self, log: StepLog | None = None) -> dict[str, Any]:
        """Validation loss (fixed held-out samples, fixed noise seeds) at the current step; logged and kept."""
        st = self.state
        res = self.evaluate(self.val_indices, dataset=self.val_dataset)
        rec = {"step": st.step, "val_loss": res["loss"], "val_loss_video": res["loss_video"],
               "val_loss_action": res["loss_action"], "val_samples": len(self.val_indices)}
        st.val_history.append(rec)
        if self.is_main:
            append_jsonl(self.out / "log.jsonl", rec)
            if log is not None:
                log.write(format_val(rec))
        self.accelerator.log({"val/loss": res["loss"], "val/loss_video": res["loss_video"],
                              "val/loss_action": res["loss_action"]}, step=st.step)
        return rec

    # ---------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step_XXXXXXXX/`` (state/, policy/, trainer_state.json, loss_curve.png)."""
        from .policy_io import save_policy

        acc, st = self.accelerator, self.state
        ckpt = self.out / CHECKPOINT_DIR / f"step_{st.step:08d}"
        acc.save_state(str(ckpt / "state"))
        full_sd = acc.get_state_dict(self.loss_module)
        if self.is_main:
            sd = {k[len("model."):]: v for k, v in full_sd.items() if k.startswith("model.")}
            save_policy(ckpt / "policy", model_config=self.model_config, state_dict=sd, stats=self.stats,
                        perception=perception_config_dict(self.perception_config), text_embeds=self.text_embeds,
                        prompts=self.prompts, text_encoder_id=self.text_encoder_id,
                        extra={"step": st.step, "fps": float(self.dataset.episodes[0].fps),
                               "metrics": checkpoint_metrics(st), "training_data": training_data(self)},
                        contract=self.robot_contract(),
                        # a random (tiny) VAE exists nowhere else: bundle it so the policy deploys as is
                        vae=self.vae.vae if self.cfg.model.vae == "random" else None)
            plot_loss_curve(st.history, ckpt / "loss_curve.png", val_history=st.val_history,
                            smoothing=self.cfg.train.smoothing)
            shutil.copyfile(ckpt / "loss_curve.png", self.out / "loss_curve.png")
            (ckpt / "trainer_state.json").write_text(json.dumps(
                {k: v for k, v in st.state_dict().items() if k != "history"}
                | {"total_steps": self.total_steps, "warmup_steps": self.warmup_steps}, indent=2), encoding="utf-8")
            (self.out / "latest").write_text(ckpt.name + "\n", encoding="utf-8")
            self._prune()
        acc.wait_for_everyone()
        return ckpt

    def robot_contract(self) -> dict[str, Any]:
        """What the checkpoint is trained for (joints, cameras, tiling, frame, step period, dims, variant). The
        step period is 1 / the data's fps, written as the robot file spells it when ``data.perception`` is a
        robot file whose ``chunk_step_period_s`` agrees (within the contract's tolerance): 0.0333333333, not
        0.03333333333333333."""
        from fastwam_ros.contract import PERIOD_RTOL, contract_from_perception

        from .frames import robot_of

        mc = self.model_config
        period = 1.0 / float(self.dataset.episodes[0].fps)
        robot = robot_of(self.cfg.data.perception)
        if robot is not None and math.isclose(period, float(robot.chunk_step_period_s), rel_tol=PERIOD_RTOL):
            period = float(robot.chunk_step_period_s)
        return contract_from_perception(
            self.perception_config, step_period_s=period, proprio_dim=mc.proprio_dim, action_dim=mc.action_dim,
            variant=mc.variant, robot="" if robot is None else robot.name)

    def _prune(self) -> None:
        keep = self.cfg.train.keep_last
        if keep <= 0:
            return
        ckpts = sorted(p for p in (self.out / CHECKPOINT_DIR).glob("step_*") if p.is_dir())
        for old in ckpts[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, ckpt: str | Path) -> None:
        """Restore model, optimizer, scheduler, RNG and data position from a checkpoint directory."""
        ckpt = Path(ckpt)
        state_dir = ckpt / "state" if (ckpt / "state").is_dir() else ckpt
        if not state_dir.is_dir():
            raise TrainConfigError(f"resume checkpoint {ckpt} has no state/ directory")
        self.accelerator.load_state(str(state_dir))
        if self.is_main:
            print(f"resumed from {ckpt} at step {self.state.step} (epoch {self.state.epoch}, "
                  f"batch {self.state.batch_in_epoch})")

    @property
    def losses(self) -> np.ndarray:
        return np.array([h["loss"] for h in self.state.history], dtype=np.float64)
