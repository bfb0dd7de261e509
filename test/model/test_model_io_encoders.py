"""VAE wrapper: normalised posterior mean vs. a direct AutoencoderKLWan computation, local loading, errors."""

from __future__ import annotations

import json

import pytest
import torch

from fastwam_ros.model.processing.encoders import (
    WAN22_LATENTS_MEAN,
    WAN22_LATENTS_STD,
    WanVAE,
    tiny_vae_config,
)


@pytest.fixture(scope="module")
def vae() -> WanVAE:
    return WanVAE.from_config(tiny_vae_config(), seed=0)


def _video(b=1, t=1, h=32, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g) * 2 - 1


def test_encode_is_normalised_posterior_mean(vae):
    x = _video(b=2)
    z = vae.encode(x)
    # Independent computation: diffusers' posterior, first z_dim channels of the moments = mean.
    moments = vae.vae._encode(x)
    mu = moments[:, :48]
    mean = torch.tensor(vae.vae.config.latents_mean).view(1, 48, 1, 1, 1)
    std = torch.tensor(vae.vae.config.latents_std).view(1, 48, 1, 1, 1)
    expected = (mu - mean) / std
    assert z.shape == (2, 48, 1, 2, 4)
    torch.testing.assert_close(z, expected, rtol=0, atol=1e-6)
    # The statistics are the Wan2.2 ones, not diffusers' 16-channel Wan2.1 defaults.
    assert list(vae.vae.config.latents_mean) == list(WAN22_LATENTS_MEAN)
    assert list(vae.vae.config.latents_std) == list(WAN22_LATENTS_STD)
    # No sampling: repeated encodes are identical.
    assert torch.equal(vae.encode(x), z)


def test_decode_inverts_normalisation(vae):
    x = _video(t=5, h=32, w=32, seed=1)
    z = vae.encode(x)
    assert z.shape == (1, 48, 2, 2, 2)
    raw = z * vae.latents_std + vae.latents_mean
    expected = vae.vae.decode(raw).sample.clamp(-1, 1)
    out = vae.decode(z)
    assert out.shape == (1, 3, 5, 32, 32)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(vae.denormalize(vae.normalize(raw)), raw, rtol=0, atol=1e-6)


def test_encode_frames_is_one_frame_video(vae):
    img = _video(seed=2)[:, :, 0]
    assert torch.equal(vae.encode_frames(img), vae.encode(img.unsqueeze(2)))


@pytest.mark.parametrize(
    "shape,match",
    [((1, 3, 1, 40, 64), "multiples of 16"), ((1, 3, 2, 32, 32), "1 \\+ 4"), ((1, 4, 1, 32, 32), r"\[B, 3")],
)
def test_bad_video_shapes(vae, shape, match):
    with pytest.raises(ValueError, match=match):
        vae.encode(torch.zeros(shape))


def test_from_pretrained_local_dir_roundtrip(vae, tmp_path):
    vae.vae.save_pretrained(tmp_path / "vae")
    # Pipeline root (with vae/) and the vae/ folder itself both work; nothing is downloaded.
    for p in (tmp_path, tmp_path / "vae"):
        loaded = WanVAE.from_pretrained(p)
        x = _video(seed=3)
        assert torch.equal(loaded.encode(x), vae.encode(x))
    with pytest.raises(FileNotFoundError, match="config.json"):
        WanVAE.from_pretrained(tmp_path / "nowhere")


def test_from_pretrained_rejects_wan21_vae(tmp_path):
    cfg = tiny_vae_config(z_dim=16, is_residual=False, in_channels=3, out_channels=3, patch_size=None,
                          scale_factor_spatial=8, latents_mean=[0.0] * 16, latents_std=[1.0] * 16)
    WanVAE.from_config(cfg, seed=0).vae.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["z_dim"] == 16
    with pytest.raises(ValueError, match="not a Wan2.2 VAE"):
        WanVAE.from_pretrained(tmp_path)
