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


# ---- per channel and latent position statistics (the demo VAE; encoders.position_latent_stats)

def _scenes(n=12, seed=0):
    """n 32x64 one-frame videos [3, 1, H, W]: one fixed background with a small bright square at a seeded position
    (as the demo's towel on its table: a few per cent of the latent varies)."""
    g = torch.Generator().manual_seed(seed)
    frames = []
    for _ in range(n):
        f = torch.full((3, 1, 32, 64), -0.4)
        y, x = int(torch.randint(0, 24, (1,), generator=g)), int(torch.randint(0, 56, (1,), generator=g))
        f[:, :, y : y + 8, x : x + 8] = 0.9
        frames.append(f)
    return frames


def _scene_latents(vae, n=12, seed=0):
    """Per-channel-normalised latents of :func:`_scenes`."""
    return [vae.encode(f[None])[0] for f in _scenes(n, seed)]


def test_position_stats_standardise_every_channel_and_position(vae):
    from fastwam_ros.model.processing.encoders import position_latent_stats

    zs = _scene_latents(vae)
    mean, std = position_latent_stats(zs, vae.vae.config.latents_mean, vae.vae.config.latents_std, floor=0.1)
    pv = WanVAE.from_config(tiny_vae_config(latents_mean=mean, latents_std=std), seed=0)  # same weights (seed)
    assert pv.position_grid == (2, 4) and vae.position_grid is None
    Z = torch.stack(zs).double()  # [n, 48, 1, 2, 4] per channel
    m = Z.mean(dim=(0, 2))
    sd = Z.std(dim=(0, 2))  # sample std over the n samples x 1 frame
    s = (sd ** 2 + (0.1 * sd.mean()) ** 2).sqrt()
    expected = (Z - m[None, :, None]) / s[None, :, None]
    # the same scenes again, through the VAE with the position statistics
    got = torch.stack([pv.encode(f[None])[0] for f in _scenes()]).double()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    # standardised: mean 0 and spread s / sqrt(sd^2 + floor^2) <= 1 at every channel and position
    torch.testing.assert_close(got.mean(dim=(0, 2)), torch.zeros_like(m), rtol=0, atol=1e-4)
    assert float(got.std(dim=(0, 2)).max()) <= 1.0 + 1e-4
    # the square's position now moves the latents by O(1) instead of a few per cent of their size
    per_channel = Z.std(dim=0).mean() / Z.abs().mean()
    standardised = got.std(dim=0).mean() / got.abs().mean()
    assert standardised > 3 * per_channel
    # decode inverts it: denormalize(normalize(raw)) is raw
    raw = vae.denormalize(zs[0][None])
    torch.testing.assert_close(pv.denormalize(pv.normalize(raw)), raw, rtol=0, atol=1e-5)


def test_position_stats_fix_the_frame_size_and_are_checked(vae, tmp_path):
    from fastwam_ros.model.processing.encoders import position_latent_stats

    mean, std = position_latent_stats(_scene_latents(vae, n=4), vae.vae.config.latents_mean,
                                      vae.vae.config.latents_std)
    pv = WanVAE.from_config(tiny_vae_config(latents_mean=mean, latents_std=std), seed=0)
    with pytest.raises(ValueError, match="2x4 latent grid"):
        pv.encode(_video(h=32, w=32))  # a 2x2 latent grid: another frame size
    # saved and loaded with the VAE's own config (a policy directory bundles it so)
    pv.vae.save_pretrained(tmp_path / "vae")
    loaded = WanVAE.from_pretrained(tmp_path / "vae")
    assert loaded.position_grid == (2, 4)
    x = _video(seed=5)
    assert torch.equal(loaded.encode(x), pv.encode(x))
    bad_std = [[[1.0] * 4] * 2] * 48
    bad_std[3] = [[1.0, 1.0, 0.0, 1.0], [1.0] * 4]
    for kw, match in (({"latents_mean": mean, "latents_std": [1.0] * 48}, "same"),
                      ({"latents_mean": [[[0.0] * 4] * 2] * 47, "latents_std": [[[1.0] * 4] * 2] * 47}, "z_dim"),
                      ({"latents_mean": [[[0.0] * 4] * 2] * 48, "latents_std": bad_std}, "strictly positive"),
                      ({"latents_mean": [[[float("nan")] * 4] * 2] * 48, "latents_std": std}, "finite")):
        with pytest.raises(ValueError, match=match):
            WanVAE.from_config(tiny_vae_config(**kw), seed=0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        position_latent_stats([], [0.0] * 48, [1.0] * 48)
    with pytest.raises(ValueError, match="no spread"):
        position_latent_stats([torch.ones(48, 1, 2, 4)] * 3, [0.0] * 48, [1.0] * 48)
