"""The offline pipeline through the command line: bags -> dataset -> train -> export -> eval."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from il_policy_node.runtime.artifact import load_policy

ROOT = Path(__file__).resolve().parents[2]
JOINTS = ['shoulder', 'elbow', 'wrist']
BAG_RATE_HZ = 100.0


def write_bag(path: Path, episode: int, *, seconds: float = 4.0, mcap: bool = True) -> Path:
    """A JointState bag of a known motion (header stamps = receive times)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    joint_state = store.types['sensor_msgs/msg/JointState']
    header, stamp = store.types['std_msgs/msg/Header'], store.types['builtin_interfaces/msg/Time']
    plugin = StoragePlugin.MCAP if mcap else StoragePlugin.SQLITE3
    t = np.arange(0.0, seconds, 1.0 / BAG_RATE_HZ)
    w = np.array([1.0, 1.5, 2.0]) * (1.0 + 0.05 * episode)
    q = 0.4 * np.sin(w * t[:, None] + 0.3 * episode)
    v = 0.4 * w * np.cos(w * t[:, None] + 0.3 * episode)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connection = writer.add_connection('/joint_states', joint_state.__msgtype__,
                                           typestore=store)
        for k, time_s in enumerate(t):
            ns = int(1e9) + int(round(time_s * 1e9))
            msg = joint_state(
                header=header(stamp=stamp(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=''),
                name=JOINTS, position=q[k], velocity=v[k], effort=np.zeros(0))
            writer.write(connection, ns, store.serialize_cdr(msg, joint_state.__msgtype__))
    return path


def il_policy(*args):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'MPLBACKEND': 'Agg'}
    result = subprocess.run([sys.executable, '-m', 'il_policy_node.cli', '-q', *map(str, args)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_bags_to_evaluated_policy(tmp_path):
    bags = tmp_path / 'bags'
    bags.mkdir()
    for e in range(5):
        write_bag(bags / f'episode_{e:04d}', e, mcap=e % 2 == 0)
    dataset_yaml = tmp_path / 'dataset.yaml'
    dataset_yaml.write_text(yaml.safe_dump({
        'control_rate_hz': 50.0, 'observation': {'topic': '/joint_states', 'joints': JOINTS},
        'split': {'seed': 0, 'val_fraction': 0.2}}))
    train_yaml = tmp_path / 'train.yaml'
    train_yaml.write_text(yaml.safe_dump({
        'mlp': {'hidden': [32, 32]}, 'history': 2, 'horizon': 2, 'batch_size': 64, 'epochs': 3,
        'device': 'cpu'}))

    dataset = tmp_path / 'dataset'
    out = il_policy('dataset', 'build', bags, '--config', dataset_yaml, '-o', dataset,
                    '--workers', 2).stdout
    assert f'wrote {dataset}' in out
    manifest = json.loads((dataset / 'manifest.json').read_text())
    assert [e['split'] for e in manifest['episodes']].count('val') == 1
    assert 'rows' in il_policy('dataset', 'info', dataset).stdout

    run = tmp_path / 'run'
    il_policy('train', '--dataset', dataset, '--config', train_yaml, '-o', run, '--seed', 1)
    assert (run / 'checkpoints' / 'best.pt').is_file()
    assert json.loads((run / 'config.json').read_text())['seed'] == 1

    policy = tmp_path / 'policy.pt'
    il_policy('export', run, '-o', policy)
    meta = load_policy(policy).metadata
    assert meta.joint_names == tuple(JOINTS) and meta.observation.history == 2
    assert meta.action_horizon == 2 and meta.control_rate_hz == 50.0
    assert meta.dataset_fingerprint == manifest['fingerprint']

    out = il_policy('eval', '--model', policy, '--dataset', dataset, '--plots',
                    tmp_path / 'plots', '--json', tmp_path / 'eval.json').stdout
    assert all(joint in out for joint in JOINTS)
    figures = json.loads((tmp_path / 'eval.json').read_text())
    rmse = np.array(figures['rmse_rad'])
    assert rmse.shape == (3,) and np.isfinite(rmse).all()
    assert rmse.max() < 0.4  # better than predicting zero for a 0.4 rad amplitude sinusoid
    assert (tmp_path / 'plots' / 'rmse.png').is_file()
