"""Helpers of the mocap tests: clips and maps go through files, as the importer reads them."""
from pathlib import Path

import yaml

from il_policy_node.mocap.bvh import BvhClip, BvhJoint, load_bvh, write_bvh


def through_file(tmp_path: Path, joints, frames, frame_time=0.01, name='clip.bvh') -> BvhClip:
    """Writes the clip as a BVH file and reads it back."""
    path = tmp_path / name
    write_bvh(path, BvhClip(joints=tuple(joints), frames=frames, frame_time=frame_time))
    return load_bvh(path)


def one_joint(channels, *, offset=(0.0, 0.0, 0.0), end_site=None) -> list[BvhJoint]:
    """A root without channels and one child joint ``J`` with ``channels``."""
    return [BvhJoint('Root', -1, (0.0, 0.0, 0.0), ()),
            BvhJoint('J', 0, offset, tuple(channels), end_site)]


def write_map(tmp_path: Path, content: dict, name='map.yaml') -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content), encoding='utf-8')
    return path
