"""Message definition text and RIHS01 hashes of message types, as rosbag2 stores them.

From rosbags' Jazzy typestore, or the ``.msg`` files of installed packages (other types).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype

from il_policy_node.errors import RecordingError


def default_share_dirs() -> list[Path]:
    """``share`` folders of the ament prefixes, then of this Python environment."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    return [Path(p) / 'share' for p in [*prefixes, sys.prefix]]


class MessageDefinitions:
    """Definition text (ros2msg) and RIHS01 hash of message types, as rosbag2 stores them."""

    def __init__(self, share_dirs: Sequence[Path] | None = None) -> None:
        self._store = get_typestore(Stores.ROS2_JAZZY)
        self._share_dirs = [Path(p) for p in (share_dirs if share_dirs is not None
                                               else default_share_dirs())]

    def lookup(self, msgtype: str) -> tuple[str, str]:
        """(msgdef, rihs01) of ``pkg/msg/Type``; RecordingError when it cannot be found."""
        if msgtype not in self._store.fielddefs:
            types: dict = {}
            self._collect(msgtype, types)
            self._store.register(types)
        msgdef, _ = self._store.generate_msgdef(msgtype, ros_version=2)
        return msgdef, self._store.hash_rihs01(msgtype)

    def _collect(self, msgtype: str, types: dict) -> None:
        if msgtype in types or msgtype in self._store.fielddefs:
            return
        package, _, name = msgtype.split('/')
        for share in self._share_dirs:
            path = share / package / 'msg' / f'{name}.msg'
            if path.is_file():
                break
        else:
            raise RecordingError(f'no definition of {msgtype}: not in the Jazzy typestore and '
                                 f'no {package}/msg/{name}.msg under {self._share_dirs}')
        found = get_types_from_msg(path.read_text(encoding='utf-8'), msgtype)
        types.update(found)
        for _, fields in found.values():
            for _, (kind, spec) in fields:
                while kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
                    kind, spec = spec[0]
                if kind == Nodetype.NAME:
                    self._collect(spec, types)
