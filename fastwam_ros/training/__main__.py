"""``python -m fastwam_ros.training CONFIG.yaml [overrides]`` (what ``accelerate launch -m`` runs)."""

import sys

from .cli import train_main

sys.exit(train_main())
