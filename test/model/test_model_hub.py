"""Hugging Face conventions: model card (ModelCard, YAML metadata), Hub ids resolved offline from a cache folder
the test builds (HF_HUB_CACHE layout), push_to_hub through a fake Hub API that stores what is uploaded, and
`fastwam info` (no model built)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("huggingface_hub")

from huggingface_hub import ModelCard  # noqa: E402

from fastwam_ros.hub import HubError, describe, push_to_hub, resolve_policy_dir  # noqa: E402
from fastwam_ros.model.config import load_config  # noqa: E402
from fastwam_ros.model.inference.policy import FastWAMPolicy  # noqa: E402

INSTR = "fold the towel"
REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cfg = load_config("tiny")
    cfg.flow.num_inference_steps = 2
    policy = FastWAMPolicy.from_config(cfg, seed=0)
    d = policy.save_pretrained(tmp_path_factory.mktemp("hub") / "policy", instructions=[INSTR])
    return policy, d


def _obs(policy, seed=0):
    g = np.random.default_rng(seed)
    h, w = policy.image_size
    return g.uniform(-1, 1, (3, h, w)).astype(np.float32), g.normal(size=policy.proprio_dim)


def _cache_repo(cache: Path, repo_id: str, src: Path, rev: str = REV) -> Path:
    """Place ``src`` in a Hugging Face cache folder the way snapshot_download leaves it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / rev
    shutil.copytree(src, snap)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snap


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_model_card_metadata_and_contract_summary(saved, tmp_path):
    policy, d = saved
    card = ModelCard.load(d / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "fastwam_ros" and data["pipeline_tag"] == "robotics"
    assert "robotics" in data["tags"] and data["license"] == "apache-2.0"
    assert data["fastwam"]["variant"] == policy.cfg.variant
    for section in ("## Robot contract", "## Training data", "## Metrics", "## Intended use", "## Limitations"):
        assert section in card.text
    n_params = sum(p.numel() for p in policy.model.parameters())
    assert f"{n_params:,}" in card.text  # counted from the safetensors header, checked against the model
    # a contract saved with the checkpoint (key names read defensively) is summarised in the card
    d2 = tmp_path / "with_contract"
    shutil.copytree(d, d2)
    (d2 / "robot_contract.json").write_text(json.dumps({  # the layout training writes
        "robot": "demo_aloha", "joint_names": ["j1", "j2"], "camera_names": ["head", "left_wrist"],
        "tiling_layout": "robotwin", "frame_hw": [64, 96], "chunk_step_period_s": 0.0333333333,
        "proprio_dim": 2, "action_dim": 2, "variant": "fastwam"}))
    from fastwam_ros.hub import contract_summary, write_model_card

    write_model_card(d2, repo_id="lab/aloha-fold")
    card2 = ModelCard.load(d2 / "README.md")
    assert "demo_aloha" in card2.data.to_dict()["tags"]
    robot = card2.data.to_dict()["fastwam"]["robot"]
    assert robot["cameras"] == ["head", "left_wrist"] and robot["joints"] == ["j1", "j2"]
    assert robot["tiling"] == "robotwin" and robot["frame_hw"] == [64, 96]
    assert "**chunk_step_period_s**: 0.03333" in card2.text and 'from_pretrained("lab/aloha-fold")' in card2.text
    # a hand-written README is never replaced
    (d2 / "README.md").write_text("# my notes\n")
    assert write_model_card(d2) is None and (d2 / "README.md").read_text() == "# my notes\n"
    # other spellings (a robot-file-like mapping) are read too
    alt = contract_summary({"name": "r2", "cameras": [{"name": "top"}], "joints": ["a"],
                            "control": {"control_rate_hz": 100.0}})
    assert alt == {"robot": "r2", "cameras": ["top"], "joints": ["a"], "control_rate_hz": 100.0}


def test_from_pretrained_hub_id_from_offline_cache(saved, offline_cache):
    policy, d = saved
    snap = _cache_repo(offline_cache, "lab/towel-policy", d)
    assert resolve_policy_dir("lab/towel-policy") == snap
    assert resolve_policy_dir(f"lab/towel-policy@{REV}") == snap
    loaded = FastWAMPolicy.from_pretrained("lab/towel-policy")
    frame, state = _obs(policy)
    np.testing.assert_allclose(loaded.predict(frame, INSTR, state).actions, policy.predict(frame, INSTR, state).actions,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(HubError, match="not in the Hub cache"):
        resolve_policy_dir("lab/missing-policy")
    # a local path always wins over a Hub id of the same spelling
    assert resolve_policy_dir(str(d)) == d


def test_push_to_hub_uploads_a_loadable_policy(saved, tmp_path, offline_cache):
    policy, d = saved
    work = tmp_path / "to_push"
    shutil.copytree(d, work)
    (work / "README.md").unlink()  # push writes the card when missing
    (work / "leftover.tmp").write_text("x")

    class FakeHub:
        """Stands in for the network side of HfApi: stores an upload as the cache holds a downloaded repo."""

        def __init__(self):
            self.repos = {}

        def create_repo(self, repo_id, private=False, exist_ok=False, repo_type=None):
            self.repos.setdefault(repo_id, {"private": private})

        def upload_folder(self, repo_id, folder_path, revision=None, repo_type=None, commit_message=None,
                          ignore_patterns=None):
            import fnmatch

            assert repo_id in self.repos
            staged = tmp_path / "staged"
            shutil.copytree(folder_path, staged,
                            ignore=lambda _d, names: [n for n in names
                                                      if any(fnmatch.fnmatch(n, p) for p in ignore_patterns or [])])
            _cache_repo(offline_cache, repo_id, staged)
            return f"https://hub.example/{repo_id}/commit/{REV}"

    hub = FakeHub()
    url = push_to_hub(work, "lab/pushed", api=hub, private=True)
    assert url.endswith(REV) and hub.repos["lab/pushed"]["private"]
    assert 'from_pretrained("lab/pushed")' in (work / "README.md").read_text()  # the card names the repo
    snap = resolve_policy_dir("lab/pushed")
    assert (snap / "README.md").is_file() and not (snap / "leftover.tmp").exists()
    loaded = FastWAMPolicy.from_pretrained("lab/pushed")
    frame, state = _obs(policy, 1)
    np.testing.assert_allclose(loaded.predict(frame, INSTR, state).actions, policy.predict(frame, INSTR, state).actions,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(HubError, match="not a policy directory"):
        push_to_hub(tmp_path, "lab/x", api=hub)


def test_info_reads_files_without_building_the_model(saved, capsys, monkeypatch):
    from fastwam_ros.cli import main

    policy, d = saved
    import fastwam_ros.model.network.fastwam as fw

    monkeypatch.setattr(fw.FastWAM, "__init__", lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))
    assert main(["info", str(d), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    model_params = sum(p.numel() for p in policy.model.parameters())
    vae_params = sum(p.numel() for p in policy.vae.vae.parameters())
    assert info["parameters"]["total"] == model_params
    assert info["parameters"]["vae"] == vae_params
    assert info["config"]["name"] == policy.cfg.name and info["meta"]["variant"] == policy.cfg.variant
    assert main(["info", str(d)]) == 0
    text = capsys.readouterr().out
    assert f"{model_params:,}" in text and "contract" in text
    assert describe(d)["robot"] == {}


def test_policy_node_factory_loads_a_hub_id(saved, offline_cache, tmp_path):
    """`checkpoint:=org/name` on the launch file reaches the node's policy factory unchanged, loads offline, and
    the checkpoint's robot contract is checked against the robot file like a local directory's."""
    import yaml

    from fastwam_ros.robot import load_robot
    from fastwam_ros.runtime.policy_runtime import policy_factory

    policy, _ = saved
    repo = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((repo / "config" / "robots" / "demo_aloha.yaml").read_text())
    doc["tiling"].update(top_hw=[32, 96], bottom_tile_hw=[32, 48], output_hw=list(policy.image_size))
    doc["robot"] = "tiny_aloha"
    (tmp_path / "tiny_aloha.yaml").write_text(yaml.safe_dump(doc))
    robot = load_robot(tmp_path / "tiny_aloha.yaml")
    d = policy.save_pretrained(tmp_path / "with_contract", instructions=[INSTR], robot=robot)
    assert "tiny_aloha" in (d / "README.md").read_text()  # the card names the contract's robot
    _cache_repo(offline_cache, "lab/node-policy", d)
    params = {"model.checkpoint": "lab/node-policy", "model.device": "cpu", "model.dtype": "float32",
              "model.config": "", "model.stats": "", "model.vae_dir": "", "model.text_encoder_dir": "",
              "model.tokenizer_dir": "", "model.cache_dir": "", "model.variant": policy.cfg.variant,
              "model.joint_map": [], "model.num_inference_steps": None}
    loaded = policy_factory(params, robot)()
    frame, state = _obs(policy, 2)
    np.testing.assert_allclose(loaded.predict(frame, INSTR, state).actions, policy.predict(frame, INSTR, state).actions,
                               rtol=1e-5, atol=1e-6)
    from fastwam_ros.errors import ContractError

    other = load_robot(repo / "config" / "robots" / "demo_aloha.yaml")  # 96x128 frames: refused, by field
    with pytest.raises(ContractError, match="frame_hw"):
        policy_factory(params, other)()
