"""The public test data in ../shared beside the checkout (read-only; never copied here)."""
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / 'shared'
MOCAP = SHARED / 'mocap'
LEROBOT = SHARED / 'lerobot'
MIXAMO = 'mixamo_freebvh.bvh'
MOTIONBUILDER = 'mocapbank_motionbuilder.bvh'


def shared_path(path: Path) -> Path:
    """``path`` under ../shared, or a skip naming what is missing (the only accepted skip)."""
    if not path.exists():
        pytest.skip(f'{path} is absent: the shared test data is not beside this checkout')
    return path


def shared_bvh(name: str) -> Path:
    """../shared/mocap/NAME (or the skip)."""
    return shared_path(MOCAP / name)
