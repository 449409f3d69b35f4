"""A summary of a dataset directory, or of bags, as text and optional PNG plots."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from il_policy_node.errors import BagError, DatasetError
from il_policy_node.formats import MANIFEST_FILE
from il_policy_node.pipeline.bag_decoding import JOINT_STATE
from il_policy_node.pipeline.bags import bag_name, find_bags, read_topics
from il_policy_node.pipeline.dataset.align import episode_metadata, event_times, gap_intervals
from il_policy_node.pipeline.dataset.config import DatasetConfig
from il_policy_node.pipeline.dataset.format import load_dataset

LOG = logging.getLogger(__name__)


def dataset_info(path: str | Path | Sequence[str | Path], *, plot: bool = False,
                 plot_dir: str | Path | None = None,
                 config: DatasetConfig | None = None) -> dict[str, Any]:
    """Summarize a dataset directory, or bags (read with ``config``); log and return it.

    Args:
        path: a DATASET_DIR, or bag folders/files (or folders of bags).
        plot: write one PNG per observation joint (position over time, every episode).
        plot_dir: where the PNGs go (default: DATASET_DIR/plots, or ./dataset_plots).
        config: settings used to read bags (default: DatasetConfig()).

    Returns a dict: episodes (name, split, duration_s, rows, rate_hz, gaps), joint ranges,
    plots written; ``format_info`` turns it into the printed text.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if len(paths) == 1 and (Path(paths[0]) / MANIFEST_FILE).is_file():
        data = load_dataset(paths[0])
        manifest, arrays = data.manifest, data.arrays
        info = _info_from_dataset(manifest, arrays)
        default_dir = Path(paths[0]) / 'plots'
    else:
        info, manifest, arrays = _info_from_bags(paths, config or DatasetConfig())
        default_dir = Path('dataset_plots')
    if plot:
        info['plots'] = _plot(manifest, arrays, Path(plot_dir or default_dir))
    for line in format_info(info).splitlines():
        LOG.info('%s', line)
    return info


def _info_from_dataset(manifest: dict[str, Any], arrays: dict[str, np.ndarray]
                       ) -> dict[str, Any]:
    rate = manifest['control_rate_hz']
    joints = manifest['observation']['joints']
    obs = arrays['observations']
    episodes = [{'name': e['name'], 'split': e['split'], 'rows': e['length'],
                 'duration_s': e['duration_s'], 'rate_hz': rate, 'segment': e['segment'],
                 'success': e['success'], 'task': e['task']} for e in manifest['episodes']]
    n = len(joints)
    ranges = {j: [float(obs[:, i].min()), float(obs[:, i].max())] for i, j in enumerate(joints)}
    return {'source': 'dataset', 'fingerprint': manifest['fingerprint'],
            'control_rate_hz': rate, 'rows': int(len(obs)), 'episodes': episodes,
            'total_duration_s': float(sum(e['duration_s'] for e in episodes)),
            'observation_joints': joints, 'action_joints': manifest['action']['joints'],
            'action_source': manifest['action']['source'], 'joint_ranges': ranges,
            'velocity_columns': n if 'velocity' in manifest['observation']['fields'] else 0,
            'skipped': manifest['skipped'], 'plots': []}


def _info_from_bags(paths: Sequence[str | Path], config: DatasetConfig
                    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    episodes, skipped, ranges = [], [], {}
    plot_rows: list[tuple[str, np.ndarray, np.ndarray, tuple[str, ...]]] = []
    try:
        bags = find_bags(paths)
    except BagError as exc:
        raise DatasetError(str(exc)) from None
    if not bags:
        raise DatasetError(f'no bags found in {[str(p) for p in paths]}')
    for bag in bags:
        try:
            episode_metadata(bag)
            series = read_topics(bag, {config.observation_topic: (JOINT_STATE,)})
            obs = series[config.observation_topic]
            ns = event_times(obs, config, config.observation_topic)
        except BagError as exc:
            skipped.append({'bag': str(bag), 'reason': str(exc)})
            continue
        t = (ns - ns[0]) * 1e-9
        duration = float(t[-1]) if len(t) else 0.0
        gaps = gap_intervals(t, config.max_gap_s)
        episodes.append({'name': bag_name(bag), 'bag': str(bag), 'rows': int(len(t)),
                         'duration_s': duration,
                         'rate_hz': (len(t) - 1) / duration if duration > 0 else 0.0,
                         'gaps': [[g0, g1 - g0] for g0, g1 in gaps]})
        for i, joint in enumerate(obs.names):
            lo, hi = float(np.nanmin(obs.position[:, i])), float(np.nanmax(obs.position[:, i]))
            old = ranges.get(joint, [lo, hi])
            ranges[joint] = [min(old[0], lo), max(old[1], hi)]
        plot_rows.append((bag_name(bag), t, obs.position, obs.names))
    if not episodes:
        raise DatasetError(f'no usable bag in {len(bags)}: ' +
                           '; '.join(f'{s["bag"]}: {s["reason"]}' for s in skipped))
    info = {'source': 'bags', 'episodes': episodes, 'rows': sum(e['rows'] for e in episodes),
            'total_duration_s': float(sum(e['duration_s'] for e in episodes)),
            'observation_joints': list(ranges), 'joint_ranges': ranges, 'skipped': skipped,
            'plots': []}
    return info, {'bag_series': plot_rows}, {}


def format_info(info: dict[str, Any]) -> str:
    """The summary as text: one line per episode, then joint ranges and skipped bags."""
    lines = []
    if info['source'] == 'dataset':
        lines.append(f'dataset {info["fingerprint"]}: {len(info["episodes"])} episodes, '
                     f'{info["rows"]} rows at {info["control_rate_hz"]:g} Hz, '
                     f'{info["total_duration_s"]:.1f} s; action {info["action_source"]} '
                     f'({len(info["action_joints"])} joints)')
        for e in info['episodes']:
            lines.append(f'  {e["name"]:<28} {e["split"]:<5} {e["rows"]:>7} rows '
                         f'{e["duration_s"]:>8.2f} s  success={e["success"]} '
                         f'task={e["task"]}')
    else:
        lines.append(f'{len(info["episodes"])} bags, {info["rows"]} messages, '
                     f'{info["total_duration_s"]:.1f} s')
        for e in info['episodes']:
            gaps = ', '.join(f'{g[1]:.3f} s at {g[0]:.2f} s' for g in e['gaps']) or 'none'
            lines.append(f'  {e["name"]:<28} {e["rows"]:>7} msgs {e["duration_s"]:>8.2f} s '
                         f'{e["rate_hz"]:>8.1f} Hz  gaps: {gaps}')
    lines.append('joint ranges (rad):')
    for joint, (lo, hi) in info['joint_ranges'].items():
        lines.append(f'  {joint:<28} [{lo:+.4f}, {hi:+.4f}]')
    for s in info['skipped']:
        lines.append(f'skipped {s["bag"]}: {s["reason"]}')
    for p in info.get('plots', []):
        lines.append(f'plot {p}')
    return '\n'.join(lines)


def _plot(manifest: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> list[str]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if 'bag_series' in manifest:
        joints = list(dict.fromkeys(j for _, _, _, names in manifest['bag_series']
                                    for j in names))
        series = [(name, t, {j: pos[:, names.index(j)] for j in names})
                  for name, t, pos, names in manifest['bag_series']]
    else:
        joints = manifest['observation']['joints']
        obs, ep, time = arrays['observations'], arrays['episode'], arrays['time']
        series = []
        for i, e in enumerate(manifest['episodes']):
            rows = slice(e['start'], e['start'] + e['length'])
            series.append((e['name'], time[rows],
                           {j: obs[rows, k] for k, j in enumerate(joints)}))
        del ep
    for joint in joints:
        fig, ax = plt.subplots(figsize=(8, 3))
        for name, t, values in series:
            if joint in values:
                ax.plot(t, values[joint], linewidth=0.8, label=name)
        ax.set_title(joint)
        ax.set_xlabel('time since episode start (s)')
        ax.set_ylabel('position (rad)')
        if len(series) <= 10:
            ax.legend(fontsize='small')
        fig.tight_layout()
        target = folder / f'{joint.replace("/", "_")}.png'
        fig.savefig(target, dpi=80)
        plt.close(fig)
        written.append(str(target))
    return written


