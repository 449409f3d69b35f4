"""The public test data in ../shared beside the checkout (read-only; never copied here)."""
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / 'shared'
MOCAP = SHARED / 'mocap'
MIXAMO = 'mixamo_freebvh.bvh'
MOTIONBUILDER = 'mocapbank_motionbuilder.bvh'


def shared_bvh(name: str) -> Path:
    """../shared/mocap/NAME, or a skip naming what is missing (the only accepted skip)."""
    path = MOCAP / name
    if not path.is_file():
        pytest.skip(f'{path} is absent: the shared test data is not beside this checkout')
    return path
