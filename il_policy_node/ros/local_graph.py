"""Start nodes as separate processes on a ROS graph kept on this machine.

Used by the demo, the benchmarks and the integration tests. DDS discovery stays on loopback
unless the caller's environment already chose otherwise; each graph gets its own domain.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence


def local_ros_env(domain_id: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for processes of one local graph (loopback discovery, own domain)."""
    env = dict(os.environ if base is None else base)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if env.get('ROS_DISTRO') == 'humble':
        env.setdefault('ROS_LOCALHOST_ONLY', '1')
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env.setdefault('RCUTILS_COLORIZED_OUTPUT', '0')
    env['PYTHONUNBUFFERED'] = '1'
    return env


def _param_arg(name: str, value: Any) -> str:
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, (list, tuple)):
        text = '[' + ','.join(_scalar(v) for v in value) + ']'
    else:
        text = _scalar(value)
    return f'{name}:={text}'


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def ros_args(params: Mapping[str, Any] | None = None,
             remaps: Mapping[str, str] | None = None, params_file: str | None = None) -> list[str]:
    """``--ros-args`` for parameters, remappings and a parameter file."""
    args = ['--ros-args']
    if params_file:
        args += ['--params-file', params_file]
    for name, value in (params or {}).items():
        args += ['-p', _param_arg(name, value)]
    for src, dst in (remaps or {}).items():
        args += ['-r', f'{src}:={dst}']
    return args


def spawn(module: str, *, env: Mapping[str, str], args: Sequence[str] = (),
          log_path: Path | None = None) -> subprocess.Popen:
    """Run ``python -m module args`` with stdout and stderr to ``log_path`` (or inherited)."""
    stream = open(log_path, 'wb') if log_path is not None else None
    try:
        return subprocess.Popen([sys.executable, '-m', module, *args], env=dict(env),
                                stdout=stream, stderr=subprocess.STDOUT if stream else None,
                                start_new_session=True)
    finally:
        if stream is not None:
            stream.close()


def stop(process: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGINT, then SIGKILL if it does not exit in time; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
