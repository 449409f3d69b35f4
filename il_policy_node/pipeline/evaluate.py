"""Open-loop evaluation of a policy file on a dataset, through the runtime the robot runs.

Each validation episode is fed to ``PolicyRuntime`` row by row, as policy_node would feed the
recorded observations; the targets are compared with the demonstrated actions (per-joint RMSE)
and plotted.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from il_policy_node.errors import IlPolicyError, PipelineError
from il_policy_node.pipeline.dataset.format import load_dataset
from il_policy_node.runtime.artifact import load_policy
from il_policy_node.runtime.chunks import ChunkOptions
from il_policy_node.runtime.observation import frame_columns
from il_policy_node.runtime.policy_runtime import PolicyRuntime

_log = logging.getLogger(__name__)

MAX_PLOTTED_EPISODES = 8


# -- open-loop evaluation -----------------------------------------------------------------------
@dataclass
class EvalResult:
    """Per-joint RMSE (rad) of the policy's targets against the demonstrated actions."""

    joints: list[str]
    rmse: np.ndarray
    rows: int
    episodes: list[str]
    episode_rmse: dict[str, np.ndarray] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)

    @property
    def overall_rmse(self) -> float:
        return float(np.sqrt(np.mean(self.rmse ** 2)))

    def table(self) -> str:
        width = max([len('joint')] + [len(j) for j in self.joints])
        lines = [f'{"joint":<{width}}  {"RMSE [rad]":>11}  {"RMSE [deg]":>11}']
        for joint, value in zip(self.joints, self.rmse):
            lines.append(f'{joint:<{width}}  {value:>11.5f}  {math.degrees(value):>11.3f}')
        lines.append(f'{"all":<{width}}  {self.overall_rmse:>11.5f}  '
                     f'{math.degrees(self.overall_rmse):>11.3f}')
        lines.append(f'{len(self.episodes)} validation episode(s), {self.rows} rows')
        return '\n'.join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {'joints': self.joints, 'rmse_rad': [float(v) for v in self.rmse],
                'overall_rmse_rad': self.overall_rmse, 'rows': self.rows,
                'episodes': self.episodes, 'plots': [str(p) for p in self.plots]}


def _columns(available: Sequence[str], wanted: Sequence[str], what: str,
             dataset: Path) -> np.ndarray:
    missing = [name for name in wanted if name not in available]
    if missing:
        raise PipelineError(f'{dataset}: the policy needs {what} {missing}, the dataset has '
                            f'{list(available)}')
    return np.array([list(available).index(name) for name in wanted])


def evaluate_open_loop(model_path: str | Path, dataset_dir: str | Path, *,
                       plots_dir: str | Path | None = None, split: str = 'val',
                       chunks: ChunkOptions = ChunkOptions(),
                       max_plots: int = MAX_PLOTTED_EPISODES) -> EvalResult:
    """Run ``policy.pt`` open loop on the ``split`` episodes and compare with the demonstrations.

    Each episode goes through PolicyRuntime as on the robot (reset at the episode start, so
    the history is padded with the first frame; one step per recorded row, chunks executed as
    ``chunks`` says). Returns per-joint RMSE in radians; writes PNG plots of
    predicted vs demonstrated targets into ``plots_dir`` when given.
    """
    dataset = load_dataset(dataset_dir)
    policy = load_policy(model_path)
    meta = policy.metadata
    if abs(meta.control_rate_hz - dataset.control_rate_hz) > 1e-6 * dataset.control_rate_hz:
        raise PipelineError(f'{dataset.path}: control rate {dataset.control_rate_hz:g} Hz, the '
                            f'policy runs at {meta.control_rate_hz:g} Hz')
    if meta.dataset_fingerprint and meta.dataset_fingerprint != dataset.manifest.get(
            'fingerprint'):
        _log.warning('policy was trained on dataset %s, evaluating on %s',
                     meta.dataset_fingerprint, dataset.manifest.get('fingerprint'))
    try:
        frame_cols = frame_columns(dataset.observation_spec(), meta.observation)
    except IlPolicyError as exc:
        raise PipelineError(f'{dataset.path}: {exc}, which policy {model_path} '
                            'observes') from None
    action_cols = _columns(dataset.action_joints, meta.joint_names, 'action joints',
                           dataset.path)
    episodes = dataset.episodes(split)
    if not episodes:
        raise PipelineError(f'{dataset.path}: no {split!r} episodes to evaluate')

    runtime = PolicyRuntime(policy, chunks)
    squared = np.zeros(len(meta.joint_names))
    rows = 0
    result = EvalResult(joints=list(meta.joint_names), rmse=squared, rows=0, episodes=[])
    traces = []
    for index, episode in episodes:
        start, length = int(episode['start']), int(episode['length'])
        observations = dataset.observations[start:start + length]
        demonstrated = dataset.actions[start:start + length][:, action_cols].astype(np.float64)
        predicted = np.empty_like(demonstrated)
        runtime.reset()
        for t in range(length):
            predicted[t] = runtime.step([observations[t, cols] for cols in frame_cols])
        error = predicted - demonstrated
        squared += (error ** 2).sum(axis=0)
        rows += length
        name = str(episode.get('name', index))
        if episode.get('segment'):
            name = f'{name}#{episode["segment"]}'
        result.episodes.append(name)
        result.episode_rmse[name] = np.sqrt((error ** 2).mean(axis=0))
        if len(traces) < max_plots:
            traces.append((name, dataset.time[start:start + length], demonstrated, predicted))
    result.rows = rows
    result.rmse = np.sqrt(squared / rows)
    if plots_dir is not None:
        result.plots = plot_trajectories(traces, result, Path(plots_dir))
    return result


def _safe_name(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.#-]+', '_', name).strip('_') or 'episode'


def plot_trajectories(traces: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                      result: EvalResult, plots_dir: Path) -> list[Path]:
    """One PNG per episode (a panel per joint: demonstrated vs predicted) and rmse.png."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    joints = result.joints
    columns = min(3, len(joints))
    grid_rows = math.ceil(len(joints) / columns)
    written = []
    for name, t, demonstrated, predicted in traces:
        fig, axes = plt.subplots(grid_rows, columns, figsize=(4.5 * columns, 2.2 * grid_rows),
                                 sharex=True, squeeze=False)
        for j, joint in enumerate(joints):
            ax = axes.flat[j]
            ax.plot(t, demonstrated[:, j], label='demonstrated', color='tab:blue')
            ax.plot(t, predicted[:, j], label='policy', color='tab:orange', linestyle='--')
            ax.set_title(f'{joint} (RMSE {result.episode_rmse[name][j]:.4f} rad)', fontsize=9)
            ax.set_ylabel('rad')
        for ax in axes.flat[len(joints):]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel('time [s]')
        axes.flat[0].legend(fontsize=8)
        fig.suptitle(f'episode {name}: open-loop targets')
        fig.tight_layout()
        path = plots_dir / f'episode_{_safe_name(name)}.png'
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(joints) + 2), 3.5))
    ax.bar(range(len(joints)), result.rmse)
    ax.set_xticks(range(len(joints)), joints, rotation=60, ha='right', fontsize=8)
    ax.set_ylabel('RMSE [rad]')
    ax.set_title(f'open-loop RMSE per joint ({len(result.episodes)} episodes)')
    fig.tight_layout()
    path = plots_dir / 'rmse.png'
    fig.savefig(path, dpi=80)
    plt.close(fig)
    written.append(path)
    return written
