"""What every benchmark sets up first: a free ROS domain on loopback and a work folder."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from il_policy_node.ros.local_graph import local_ros_env

ROOT = Path(__file__).resolve().parent.parent


def bench_graph(stack: contextlib.ExitStack, *, domain_id: int | None,
                keep: Path | None) -> tuple[int, Path, dict[str, str]]:
    """(domain, work folder, environment for the spawned processes), released by ``stack``.

    The domain is reserved through domain_coordinator unless given; the work folder is
    temporary unless ``keep`` names one; spawned processes can import ``bench`` modules.
    """
    if domain_id is None:
        from domain_coordinator import domain_id as reserve_domain
        domain_id = stack.enter_context(reserve_domain())
    if keep is None:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix='bench_')))
    else:
        workdir = keep.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    env = local_ros_env(domain_id)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), env.get('PYTHONPATH')]))
    print(f'ROS_DOMAIN_ID={domain_id}, {os.cpu_count()} CPUs, work dir {workdir}',
          file=sys.stderr)
    return domain_id, workdir, env
