"""Export a training run as policy.pt, and evaluate a policy open loop on a dataset.

Both read the contract formats of the offline pipeline: the dataset directory (manifest.json +
data.npz) and the run directory (config.json + checkpoints/best.pt).
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

_log = logging.getLogger(__name__)

MANIFEST_FILE = 'manifest.json'
DATA_FILE = 'data.npz'
CONFIG_FILE = 'config.json'
BEST_CHECKPOINT = Path('checkpoints') / 'best.pt'
MAX_CHECK_INPUTS = 2048
MAX_PLOTTED_EPISODES = 8


class PipelineError(ValueError):
    """A dataset, run or policy that cannot be used; the message names it and the problem."""


# -- dataset directory --------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """A dataset directory in memory: its manifest and its arrays."""

    path: Path
    manifest: Mapping[str, Any]
    observations: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    time: np.ndarray

    @property
    def obs_joints(self) -> list[str]:
        return list(self.manifest['observation']['joints'])

    @property
    def obs_fields(self) -> list[str]:
        return list(self.manifest['observation']['fields'])

    @property
    def action_joints(self) -> list[str]:
        return list(self.manifest['action']['joints'])

    @property
    def control_rate_hz(self) -> float:
        return float(self.manifest['control_rate_hz'])

    def episodes(self, split: str | None = None) -> list[tuple[int, Mapping[str, Any]]]:
        """(index, episode entry) pairs, optionally only those of one split."""
        return [(i, e) for i, e in enumerate(self.manifest['episodes'])
                if split is None or e.get('split') == split]


def load_dataset(dataset_dir: str | Path) -> Dataset:
    """Read a dataset directory; raise PipelineError naming what is missing or inconsistent."""
    path = Path(dataset_dir)
    if not path.is_dir():
        raise PipelineError(f'{path}: no such dataset directory')
    manifest_path, data_path = path / MANIFEST_FILE, path / DATA_FILE
    for required in (manifest_path, data_path):
        if not required.is_file():
            raise PipelineError(f'{path}: not a dataset directory ({required.name} is missing)')
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineError(f'{manifest_path}: not valid JSON ({exc})') from None
    missing = [k for k in ('control_rate_hz', 'observation', 'action', 'stats', 'episodes')
               if k not in manifest]
    if missing:
        raise PipelineError(f'{manifest_path}: missing {missing}')
    try:
        with np.load(data_path) as data:
            arrays = {k: data[k] for k in ('observations', 'actions', 'episode', 'time')}
    except KeyError as exc:
        raise PipelineError(f'{data_path}: array {exc.args[0]} is missing') from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f'{data_path}: cannot read ({exc})') from None
    rows = len(arrays['observations'])
    if any(len(a) != rows for a in arrays.values()):
        raise PipelineError(f'{data_path}: arrays have different lengths')
    frame = len(manifest['observation']['fields']) * len(manifest['observation']['joints'])
    if arrays['observations'].shape[1:] != (frame,):
        raise PipelineError(f'{data_path}: observations have shape '
                            f'{arrays["observations"].shape}, manifest says {frame} columns')
    if arrays['actions'].shape[1:] != (len(manifest['action']['joints']),):
        raise PipelineError(f'{data_path}: actions have shape {arrays["actions"].shape}, '
                            f'manifest says {len(manifest["action"]["joints"])} joints')
    for episode in manifest['episodes']:
        if episode['start'] < 0 or episode['start'] + episode['length'] > rows:
            raise PipelineError(f'{manifest_path}: episode {episode.get("name")!r} rows '
                                f'{episode["start"]}..{episode["start"] + episode["length"]} '
                                f'are outside the {rows} rows of {DATA_FILE}')
    return Dataset(path=path, manifest=manifest, **arrays)


def history_windows(observations: np.ndarray, start: int, length: int, history: int,
                    rows: np.ndarray | None = None) -> np.ndarray:
    """Stacked observation histories [n, history * frame] for rows of one episode.

    Row t uses frames t-history+1..t, clamped to the episode's first row (the padding of
    core/observation.py at run time). ``rows`` are offsets into the episode (all by default).
    """
    rows = np.arange(length) if rows is None else np.asarray(rows)
    offsets = np.clip(rows[:, None] + np.arange(1 - history, 1)[None, :], 0, None)
    return observations[start + offsets].reshape(len(rows), -1)


def validation_observations(dataset: Dataset, history: int,
                            limit: int = MAX_CHECK_INPUTS) -> np.ndarray:
    """Stacked observations of validation rows (training rows when there is no validation)."""
    episodes = dataset.episodes('val') or dataset.episodes('train') or dataset.episodes()
    chunks = [history_windows(dataset.observations, e['start'], e['length'], history)
              for _, e in episodes if e['length'] > 0]
    if not chunks:
        raise PipelineError(f'{dataset.path}: the dataset has no rows')
    stacked = np.concatenate(chunks)
    if len(stacked) > limit:
        stacked = stacked[np.linspace(0, len(stacked) - 1, limit).astype(int)]
    return stacked.astype(np.float32)


# -- run directory and export -------------------------------------------------------------------
@dataclass
class LoadedRun:
    """What export needs from a run directory: the eager model and where it came from."""

    model: Any
    config: Mapping[str, Any]
    dataset_dir: Path
    stats: Mapping[str, np.ndarray] | None = None  # the statistics the model was trained with


def _read_run_config(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise PipelineError(f'{run_dir}: no such run directory')
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise PipelineError(f'{run_dir}: not a run directory ({CONFIG_FILE} is missing)')
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineError(f'{config_path}: not valid JSON ({exc})') from None
    model = config.get('model')
    if not isinstance(model, dict):
        raise PipelineError(f'{config_path}: no "model" section')
    missing = [k for k in ('history', 'horizon', 'obs_size', 'action_size') if k not in model]
    if missing:
        raise PipelineError(f'{config_path}: model section is missing {missing}')
    return config


def _rebuild_model(config: Mapping[str, Any], checkpoint: Path):
    """The contract's model (core/models.py seed_mlp) with the checkpoint's weights."""
    import torch

    from il_policy_node.core import models

    spec = config['model']
    if spec.get('kind', 'mlp') != 'mlp':
        raise PipelineError(f'model kind {spec.get("kind")!r} is not supported by export')
    if not checkpoint.is_file():
        raise PipelineError(f'{checkpoint}: no such checkpoint (has training finished an epoch?)')
    try:
        state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    except Exception as exc:  # torch raises several types for a corrupt file
        raise PipelineError(f'{checkpoint}: cannot read the checkpoint ({exc})') from None
    if not isinstance(state, dict) or 'model' not in state:
        raise PipelineError(f'{checkpoint}: not a training checkpoint (no "model" entry)')
    hidden = tuple(spec.get('hidden', (256, 256)))
    dropout = float(spec.get('dropout') or 0.0)
    try:
        model = models.seed_mlp(int(spec['obs_size']), int(spec['action_size']), hidden,
                                dropout=dropout)
    except TypeError:  # a seed_mlp without dropout: identical in eval mode when dropout is 0
        model = models.seed_mlp(int(spec['obs_size']), int(spec['action_size']), hidden)
    try:
        model.load_state_dict(state['model'])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise PipelineError(f'{checkpoint}: weights do not fit the model in {CONFIG_FILE} '
                            f'({first})') from None
    return model.eval()


def load_run_for_export(run_dir: str | Path, *,
                        dataset_dir: str | Path | None = None) -> LoadedRun:
    """The best model of a run, through the trainer's load_run when it is available."""
    run_dir = Path(run_dir)
    config = _read_run_config(run_dir)
    checkpoint = run_dir / BEST_CHECKPOINT
    if not checkpoint.is_file():
        raise PipelineError(f'{checkpoint}: no such checkpoint (has training finished an epoch?)')
    model, stats = None, None
    try:
        from il_policy_node.core.train import load_run
    except ImportError:  # the trainer is not installed: rebuild from the contract alone
        load_run = None
    if load_run is not None:
        try:
            model, info = load_run(run_dir)
            stats = {'obs_mean': np.asarray(info.obs_mean), 'obs_std': np.asarray(info.obs_std),
                     'action_mean': np.asarray(info.action_mean),
                     'action_std': np.asarray(info.action_std)}
        except KeyError:  # a contract checkpoint without the trainer's extra entries
            _log.info('%s: rebuilding the model from %s', checkpoint, CONFIG_FILE)
    if model is None:
        model = _rebuild_model(config, checkpoint)
    if dataset_dir is None:
        if not config.get('dataset'):
            raise PipelineError(f'{run_dir / CONFIG_FILE}: names no dataset; give one')
        dataset_dir = Path(config['dataset'])
        if not dataset_dir.is_absolute() and not dataset_dir.exists():
            dataset_dir = run_dir / dataset_dir
    return LoadedRun(model=model.eval(), config=config, dataset_dir=Path(dataset_dir),
                     stats=stats)


def export_run(run_dir: str | Path, output: str | Path, *,
               dataset_dir: str | Path | None = None) -> Path:
    """Export a run's best checkpoint as the policy artifact ``output`` (+ its .sha256).

    Normalization comes from the dataset manifest's train-split statistics; the scripted
    module is checked against the eager model on validation observations.
    """
    from il_policy_node.core.export import export_policy
    from il_policy_node.core.observation import ObservationSpec

    run = load_run_for_export(run_dir, dataset_dir=dataset_dir)
    dataset = load_dataset(run.dataset_dir)
    spec = run.config['model']
    history, horizon = int(spec['history']), int(spec['horizon'])
    frame = dataset.observations.shape[1]
    actions = len(dataset.action_joints)
    if int(spec['obs_size']) != history * frame or int(spec['action_size']) != horizon * actions:
        raise PipelineError(
            f'{run_dir}: model sizes (obs {spec["obs_size"]}, action {spec["action_size"]}) do '
            f'not fit dataset {dataset.path} (history {history} x {frame} features, horizon '
            f'{horizon} x {actions} joints)')
    wanted = run.config.get('dataset_fingerprint')
    have = dataset.manifest.get('fingerprint', '')
    if wanted and wanted != have:
        raise PipelineError(f'{dataset.path}: fingerprint {have} differs from the one the run '
                            f'was trained on ({wanted}); the dataset was rebuilt')
    stats = run.stats or {
        'obs_mean': np.tile(np.asarray(dataset.manifest['stats']['observation']['mean']), history),
        'obs_std': np.tile(np.asarray(dataset.manifest['stats']['observation']['std']), history),
        'action_mean': np.asarray(dataset.manifest['stats']['action']['mean']),
        'action_std': np.asarray(dataset.manifest['stats']['action']['std'])}
    observation = ObservationSpec(joints=tuple(dataset.obs_joints),
                                  fields=tuple(dataset.obs_fields), history=history)
    return export_policy(
        run.model, output, joint_names=dataset.action_joints, observation=observation,
        action_horizon=horizon, control_rate_hz=dataset.control_rate_hz,
        **{key: np.asarray(value, np.float32) for key, value in stats.items()},
        dataset_fingerprint=have,
        extra_metadata={'run': str(Path(run_dir).resolve()), 'dataset': str(dataset.path),
                        'seed': run.config.get('seed')},
        check_inputs=validation_observations(dataset, history))


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
                       execution: str = 'ensemble', ensemble_decay: float = 0.01,
                       max_plots: int = MAX_PLOTTED_EPISODES) -> EvalResult:
    """Run ``policy.pt`` open loop on the ``split`` episodes and compare with the demonstrations.

    Each episode goes through core/runtime.py PolicyRuntime as on the robot (reset at the
    episode start, so the history is padded with the first frame; one step per recorded row,
    chunks executed as ``execution``). Returns per-joint RMSE in radians; writes PNG plots of
    predicted vs demonstrated targets into ``plots_dir`` when given.
    """
    from il_policy_node.core.artifact import load_policy
    from il_policy_node.core.runtime import PolicyRuntime

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
    obs_joints = dataset.obs_joints
    frame_cols = []
    for f in meta.observation.fields:
        field_index = _columns(dataset.obs_fields, [f.value], 'field', dataset.path)[0]
        joint_cols = _columns(obs_joints, meta.observation.joints, 'observed joints',
                              dataset.path)
        frame_cols.append(field_index * len(obs_joints) + joint_cols)
    action_cols = _columns(dataset.action_joints, meta.joint_names, 'action joints',
                           dataset.path)
    episodes = dataset.episodes(split)
    episodes = [(i, e) for i, e in episodes if e['length'] > 0]
    if not episodes:
        raise PipelineError(f'{dataset.path}: no {split!r} episodes to evaluate')

    runtime = PolicyRuntime(policy, execution=execution, ensemble_decay=ensemble_decay)
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
