"""Bags -> one dataset directory: every bag aligned in worker processes, splits, statistics."""
from __future__ import annotations

import gc
import hashlib
import logging
import multiprocessing
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from il_policy_node.errors import BagError, DatasetError
from il_policy_node.formats import DATASET_ARRAYS, DATASET_FORMAT_VERSION
from il_policy_node.pipeline.bags import find_bags
from il_policy_node.pipeline.dataset.align import EpisodeResult, load_episode
from il_policy_node.pipeline.dataset.config import DatasetConfig
from il_policy_node.pipeline.dataset.format import write_dataset
from il_policy_node.policies.statistics import RunningStatistics

LOG = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What ``build_dataset`` did: the output, the episodes kept and what was skipped."""

    output_dir: Path
    episodes: int
    rows: int
    bags: int
    skipped: list[dict[str, str]]     # {"bag", "reason"} like the manifest
    errors: list[dict[str, str]]      # the bad bags among them
    messages: int
    seconds: float
    manifest: dict[str, Any]


def build_dataset(bags_or_dirs: Sequence[str | Path], *, config: DatasetConfig,
                  output_dir: str | Path, workers: int = 1, strict: bool = False,
                  progress: bool = True, overwrite: bool = False) -> BuildReport:
    """Build a dataset directory from bags (or folders holding bags).

    Args:
        bags_or_dirs: bag folders, .mcap/.db3 files, or folders searched for bags.
        config: the builder settings (``DatasetConfig.from_yaml``).
        output_dir: DATASET_DIR; written in a temp folder beside it, then renamed.
        workers: worker processes reading bags (1 = in this process).
        strict: raise DatasetError if any bag is bad (nothing is written).
        progress: show a tqdm progress bar on stderr.
        overwrite: replace an existing DATASET_DIR (otherwise DatasetError).

    Bad bags are logged and listed in ``skipped``; DatasetError if no episode remains.
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise DatasetError(f'{output_dir} exists (remove it or pass overwrite)')
    try:
        bags = [str(b) for b in find_bags(bags_or_dirs)]
    except BagError as exc:
        raise DatasetError(str(exc)) from None
    if not bags:
        raise DatasetError(f'no bags found in {[str(b) for b in bags_or_dirs]}')
    results = _run_all(bags, config, workers, progress)
    skipped, errors = [], []
    for result in results:
        if result.error is not None:
            LOG.warning('skipping bag %s: %s', result.bag, result.error)
            errors.append({'bag': result.bag, 'reason': result.error})
        for note in result.notes:
            LOG.info('bag %s: %s', result.bag, note)
            if note.startswith(('left out', 'dropped', 'segment')):
                skipped.append({'bag': result.bag, 'reason': note})
    skipped = errors + skipped
    if strict and errors:
        raise DatasetError(f'{len(errors)} bad bag(s) (strict): ' +
                           '; '.join(f'{e["bag"]}: {e["reason"]}' for e in errors))
    usable = [r for r in results if r.segments]
    if not usable:
        raise DatasetError(f'no usable episode in {len(bags)} bag(s): ' +
                           '; '.join(f'{s["bag"]}: {s["reason"]}' for s in skipped))
    obs_joints = config.observation_joints or usable[0].joints
    extra_joints = [joints or usable[0].extra_joints[i]
                    for i, (_, joints, _) in enumerate(config.extra)]
    act_joints = config.action_joints or (obs_joints if config.action_source == 'future_state'
                                          else usable[0].action_joints)
    kept = []
    for result in usable:
        missing = [j for j in obs_joints if j not in result.joints] + \
            [j for j in act_joints if j not in result.action_joints]
        missing += [f'{topic}:{j}' for (topic, _, _), wanted, have in
                    zip(config.extra, extra_joints, result.extra_joints)
                    for j in wanted if j not in have]
        if missing:
            reason = f'joints not in the bag: {sorted(set(missing))}'
            LOG.warning('skipping bag %s: %s', result.bag, reason)
            errors.append({'bag': result.bag, 'reason': reason})
            skipped.append({'bag': result.bag, 'reason': reason})
            continue
        kept.append(result)
    if strict and len(kept) < len(usable):
        raise DatasetError('bags without the configured joints (strict): ' +
                           '; '.join(f'{e["bag"]}: {e["reason"]}' for e in errors))
    if not kept:
        raise DatasetError('no usable episode: ' + '; '.join(s['reason'] for s in skipped))
    manifest, arrays = _assemble(kept, config, obs_joints, extra_joints, act_joints, skipped)
    write_dataset(output_dir, manifest, arrays, overwrite=overwrite)
    messages = sum(r.messages for r in results)
    report = BuildReport(output_dir=output_dir, episodes=len(manifest['episodes']),
                         rows=len(arrays['time']), bags=len(bags), skipped=skipped,
                         errors=errors, messages=messages,
                         seconds=time.perf_counter() - started, manifest=manifest)
    LOG.info('dataset %s: %d episodes, %d rows from %d bags (%d skipped entries)', output_dir,
             report.episodes, report.rows, len(bags), len(skipped))
    return report


def _run_all(bags: list[str], config: DatasetConfig, workers: int,
             progress: bool) -> list[EpisodeResult]:
    """Every bag through load_episode, here and with workers > 1 in helper processes too.

    Every process takes the next bag from a shared counter whenever it is free, so no core
    idles while another still has bags to go, and this process works while the helpers start.
    Helpers are forked when this process runs no other thread (cheap, and safe then);
    otherwise spawned (a clean interpreter each).
    """
    from tqdm import tqdm
    results: list[EpisodeResult | None] = [None] * len(bags)
    helpers = min(workers, len(bags)) - 1
    if helpers <= 0:
        with tqdm(total=len(bags), unit='bag', desc='dataset', disable=not progress) as bar:
            for i, bag in enumerate(bags):
                results[i] = load_episode(bag, config)
                bar.update()
        return list(results)
    method = 'fork' if threading.active_count() == 1 and \
        'fork' in multiprocessing.get_all_start_methods() else 'spawn'
    context = multiprocessing.get_context(method)
    # the largest first: the last bags taken are small, so the processes end together
    order = sorted(range(len(bags)), key=lambda i: -_size(bags[i]))
    counter, done = context.Value('i', 0), context.Queue()
    processes = [context.Process(target=_helper, args=(bags, order, config, counter, done),
                                 daemon=True, name=f'dataset helper {k}')
                 for k in range(helpers)]
    if method == 'fork':
        gc.freeze()        # the helpers' collector then leaves the inherited pages unshared
    for process in processes:
        process.start()
    if method == 'fork':
        gc.unfreeze()
    finished = 0
    with tqdm(total=len(bags), unit='bag', desc='dataset', disable=not progress) as bar:
        def collect(block: bool) -> None:
            nonlocal finished
            while True:
                try:
                    i, result = done.get(block=block, timeout=1.0 if block else None)
                except queue.Empty:
                    return
                if i is None:
                    finished += 1
                else:
                    results[i] = result
                    bar.update()
                if block:
                    return
        for i in iter(lambda: _next_bag(counter, order), None):
            results[i] = load_episode(bags[i], config)
            bar.update()
            collect(block=False)
        while finished < helpers and any(p.is_alive() for p in processes):
            collect(block=True)
        collect(block=False)
    for process in processes:
        process.join()
    for i, result in enumerate(results):
        if result is None:      # a helper died (killed) while reading it
            results[i] = EpisodeResult(bag=bags[i], name=Path(bags[i]).name, error=(
                'the process reading it died: '
                f'exit codes {[p.exitcode for p in processes]}'))
    return list(results)


def _size(bag: str) -> int:
    path = Path(bag)
    try:
        return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else \
            path.stat().st_size
    except OSError:
        return 0


def _next_bag(counter: Any, order: list[int]) -> int | None:
    """The bag to read next, of the shared counter's place in ``order`` (None: all taken)."""
    with counter.get_lock():
        place = counter.value
        counter.value = place + 1
    return order[place] if place < len(order) else None


def _helper(bags: list[str], order: list[int], config: DatasetConfig, counter: Any,
            done: Any) -> None:
    """A helper process: bags from the shared counter until there are none; then None."""
    for i in iter(lambda: _next_bag(counter, order), None):
        done.put((i, load_episode(bags[i], config)))
    done.put((None, None))


def split_episodes(names: list[str], seed: int, val_fraction: float) -> set[str]:
    """The bags in the validation split: a seeded permutation of the sorted bag keys."""
    keys = sorted(set(names))
    n_val = int(round(val_fraction * len(keys)))
    if val_fraction > 0 and len(keys) >= 2:
        n_val = min(max(n_val, 1), len(keys) - 1)
    order = np.random.default_rng(seed).permutation(len(keys))
    return {keys[i] for i in order[:n_val]}


def _assemble(results: list[EpisodeResult], config: DatasetConfig,
              obs_joints: Sequence[str], extra_joints: Sequence[Sequence[str]],
              act_joints: Sequence[str], skipped: list[dict[str, str]]
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    val_bags = split_episodes([r.bag for r in results], config.seed, config.val_fraction)
    names_seen: dict[str, int] = {}
    obs_parts, act_parts, ep_parts, time_parts = [], [], [], []
    episodes = []
    row = 0
    for result in results:
        obs_cols = [result.joints.index(j) for j in obs_joints]
        act_cols = [result.action_joints.index(j) for j in act_joints]
        extra_cols = [[have.index(j) for j in wanted]
                      for wanted, have in zip(extra_joints, result.extra_joints)]
        for segment in result.segments:
            fields = _blocks(config.fields, segment.position, segment.velocity, obs_cols)
            for (_, _, extra_fields), cols, (position, velocity) in zip(
                    config.extra, extra_cols, segment.extra):
                fields += _blocks(extra_fields, position, velocity, cols)
            n = segment.length
            name = result.name if len(result.segments) == 1 and segment.index == 0 \
                else f'{result.name}.seg{segment.index}'
            names_seen[name] = names_seen.get(name, 0) + 1
            if names_seen[name] > 1:
                name = f'{name}~{names_seen[name] - 1}'
            obs_parts.append(np.hstack(fields))
            act_parts.append(segment.action[:, act_cols])
            ep_parts.append(np.full(n, len(episodes), np.int32))
            time_parts.append(np.arange(n) / config.control_rate_hz)
            episodes.append({
                'name': name, 'bag': result.bag, 'bag_fingerprint': result.fingerprint,
                'split': 'val' if result.bag in val_bags else 'train', 'start': row,
                'length': n, 'duration_s': round((n - 1) / config.control_rate_hz, 9),
                'success': result.success, 'task': result.task, 'segment': segment.index,
                **({'partial': True} if result.partial else {})})
            row += n
    arrays = {'observations': np.concatenate(obs_parts),
              'actions': np.concatenate(act_parts),
              'episode': np.concatenate(ep_parts), 'time': np.concatenate(time_parts)}
    with ThreadPoolExecutor(max_workers=1) as pool:   # hashing releases the GIL
        hashing = pool.submit(fingerprint, arrays)
        stats = train_statistics(arrays, episodes)
        digest = hashing.result()
    manifest = {
        'format_version': DATASET_FORMAT_VERSION,
        'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'control_rate_hz': config.control_rate_hz, 'config': config.to_dict(),
        'observation': {'topic': config.observation_topic, 'joints': list(obs_joints),
                        'fields': list(config.fields),
                        'extra': [{'topic': topic, 'joints': list(joints), 'fields': list(fields)}
                                  for (topic, _, fields), joints in zip(config.extra,
                                                                         extra_joints)]},
        'action': {'joints': list(act_joints),
                   'source': 'command' if config.action_source == 'command' else 'future_state',
                   'topic': config.action_topic, 'future_steps': config.future_steps},
        'timestamps': config.timestamps, 'fingerprint': digest,
        'stats': stats, 'episodes': episodes, 'skipped': skipped,
        'splits': {'seed': config.seed, 'val_fraction': config.val_fraction}}
    return manifest, arrays


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """16 hex chars of the sha256 of the arrays (their bytes, in DATASET_ARRAYS order)."""
    digest = hashlib.sha256()
    for key in DATASET_ARRAYS:
        digest.update(key.encode())
        digest.update(memoryview(np.ascontiguousarray(arrays[key])).cast('B'))
    return digest.hexdigest()[:16]


def train_statistics(arrays: dict[str, np.ndarray], episodes: list[dict[str, Any]]
                      ) -> dict[str, dict[str, list[float]]]:
    """Statistics of the train episodes' rows (of every row when no episode is for training)."""
    train = [e for e in episodes if e['split'] == 'train'] or episodes
    stats = {}
    for key, name in (('observation', 'observations'), ('action', 'actions')):
        running = RunningStatistics(arrays[name].shape[1])
        for episode in train:
            running.add(arrays[name][episode['start']:episode['start'] + episode['length']])
        stats[key] = running.result().to_dict()
    return stats


def _blocks(fields: Sequence[str], position: np.ndarray, velocity: np.ndarray | None,
            cols: list[int]) -> list[np.ndarray]:
    """The frame blocks of one topic: each field's columns of the selected joints, in order."""
    return [(position if f == 'position' else velocity)[:, cols] for f in fields]


