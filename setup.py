"""pip install for the ROS-free core (perception, model, control, training) and its tests.

On a ROS 2 machine the package is built by colcon through CMakeLists.txt (ament_cmake), which
also generates the ActionChunk message; this file serves `pip install -e ".[test]"` anywhere.
Python-only dependencies (torch, diffusers, transformers, ...) are declared here because rosdep
cannot install them; see README.md.
"""

import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
NAME = "fastwam_ros"
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / NAME / "version.py").read_text()).group(1)

# simplejpeg: libjpeg-turbo with warnings-as-errors (corrupt JPEG data refused) and DCT-scaled decoding
CORE = ["numpy>=1.22", "pyyaml>=5.4", "opencv-python-headless>=4.5", "transforms3d>=0.4", "simplejpeg>=1.8"]
MODEL = [
    "torch>=2.1",
    "diffusers>=0.35",
    "transformers>=4.45",
    "safetensors>=0.4",
    "sentencepiece>=0.1.99",
    "ftfy>=6.1",
    "huggingface_hub>=0.24",  # model card, Hub ids in from_pretrained, push_to_hub
]
TRAIN = ["accelerate>=0.30", "rosbags>=0.10", "tqdm>=4.60", "matplotlib>=3.5", "pyarrow>=10"]
LEROBOT = ["av>=12", "pyarrow>=10"]  # LeRobot videos (AV1 included) read frame by frame, and the v3 export
TRACKING = ["tensorboard>=2.10"]  # train.report_to=tensorboard (wandb: pip install wandb)
DEMO = ["imageio>=2.20", "matplotlib>=3.5"]
# MuJoCo physics for the demo simulator (tested with 4.0.0); the ALOHA assets come from
# `pip install --no-deps gym-aloha` (its own dependencies are not needed and not wanted)
MUJOCO = ["mujoco>=3.1"]
MUTATION = ["mutmut>=3.3,<4"]  # scripts/mutation_safety.sh (README, "Reliability")
TEST = ["pytest>=7", "hypothesis>=6.80", "rosbags>=0.10", "pillow>=9", "ruff>=0.5", "av>=12", "vermin>=1.6"]


def share_files(folder):
    """(destination, [files]) pairs installing folder/ under share/fastwam_ros/folder/."""
    out = []
    for path in sorted(glob(f"{folder}/**/*", recursive=True)):
        p = Path(path)
        if p.is_file() and "__pycache__" not in p.parts:
            out.append((f"share/{NAME}/{p.parent.as_posix()}", [path]))
    return out


setup(
    name=NAME,
    version=VERSION,
    description="Fast-WAM world action model on ROS 2 (ROS-free core: perception, model, control, training)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[NAME, f"{NAME}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/fastwam_ros"]),
        (f"share/{NAME}", ["package.xml"]),
    ]
    + share_files("models")
    + share_files("config")
    + share_files("launch"),
    install_requires=CORE,
    extras_require={
        "model": MODEL,
        "train": MODEL + TRAIN,
        "lerobot": LEROBOT,
        "tracking": TRACKING,
        "demo": MODEL + DEMO,
        "mujoco": MODEL + DEMO + MUJOCO,
        "test": sorted(set(MODEL + TRAIN + LEROBOT + TRACKING + DEMO + TEST)),
        "mutation": sorted(set(MODEL + TRAIN + LEROBOT + TRACKING + DEMO + TEST + MUTATION)),
    },
    entry_points={
        "console_scripts": [
            "fastwam = fastwam_ros.cli:main",
            "fastwam-train = fastwam_ros.cli:train_alias",
            "fastwam-stats = fastwam_ros.cli:stats_alias",
            "fastwam-convert = fastwam_ros.cli:convert_alias",
            "fastwam-parity = fastwam_ros.cli:parity_alias",
            "fastwam-eval = fastwam_ros.eval:main",
        ]
    },
    zip_safe=False,
)
