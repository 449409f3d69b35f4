"""il-policy command line, run as a subprocess (no ROS needed)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from il_policy_node.cli import build_parser
from il_policy_node.runtime.artifact import load_policy
from test.support.datasets import (
    JOINTS,
    OFFSETS,
    offset_dataset,
    position_picker,
    random_mlp,
    write_run,
)

ROOT = Path(__file__).resolve().parents[2]
SUBCOMMANDS = [[], ['dataset'], ['dataset', 'build'], ['dataset', 'info'],
               ['dataset', 'export-lerobot'], ['dataset', 'import-lerobot'], ['train'],
               ['export'], ['eval'], ['bag'], ['bag', 'recover'], ['mocap'], ['mocap', 'import']]


def il_policy(*args, check=False):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'MPLBACKEND': 'Agg'}
    env.pop('IL_POLICY_DEBUG', None)
    return subprocess.run([sys.executable, '-m', 'il_policy_node.cli', *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
                          check=check)


@pytest.mark.parametrize('words', SUBCOMMANDS, ids=lambda w: ' '.join(w) or 'il-policy')
def test_help_of_every_command(words):
    result = il_policy(*words, '--help')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f'usage: il-policy {" ".join(words)}'.rstrip())
    assert 'exit status' in result.stdout
    if len(words) == 2 or words in (['train'], ['export'], ['eval']):
        assert 'Reads:' in result.stdout and 'Writes:' in result.stdout


def test_help_does_not_import_torch_or_rclpy():
    code = ('import sys; from il_policy_node.cli import build_parser; build_parser(); '
            'print(sorted(m for m in ("torch", "rclpy") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert out.strip() == '[]'


def test_usage_errors_exit_2():
    assert il_policy().returncode == 2
    assert il_policy('export').returncode == 2           # RUN_DIR and -o missing
    assert il_policy('dataset', 'build', 'x', '-o', 'y').returncode == 2  # --config missing
    args = build_parser().parse_args(['dataset', 'build', 'a', 'b', '--config', 'c.yaml',
                                      '-o', 'd', '--workers', '2', '--strict'])
    assert args.bags == ['a', 'b'] and args.workers == 2 and args.strict


def _one_line_error(result, *words):
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('il-policy: error: '), result.stderr
    assert 'Traceback' not in result.stderr
    for word in words:
        assert word in lines[0]


def test_bad_inputs_give_one_line_and_exit_1(tmp_path):
    _one_line_error(il_policy('export', tmp_path / 'missing', '-o', tmp_path / 'p.pt'),
                    'no such run directory')
    (tmp_path / 'not_a_dataset').mkdir()
    dataset = offset_dataset(tmp_path / 'dataset')
    run = write_run(tmp_path / 'run', dataset, random_mlp(1, 1), history=1, horizon=1,
                    mlp={'hidden': [16]})
    policy = tmp_path / 'policy.pt'
    assert il_policy('-q', 'export', run, '-o', policy).returncode == 0
    _one_line_error(il_policy('eval', '--model', policy, '--dataset', tmp_path / 'not_a_dataset'),
                    'manifest.json is missing')
    other = offset_dataset(tmp_path / 'other', joints=['a1', 'a2'])
    _one_line_error(il_policy('eval', '--model', policy, '--dataset', other), "'j1'")
    _one_line_error(il_policy('eval', '--model', tmp_path / 'nope.pt', '--dataset', dataset),
                    'no such file')
    _one_line_error(il_policy('train', '--dataset', tmp_path / 'nowhere', '--config', 'x.yaml',
                              '-o', tmp_path / 'r'), 'no such dataset directory')


@pytest.mark.parametrize('name, backend', [('policy.pt', 'torchscript'),
                                           ('policy.onnx', 'onnx')])
def test_export_then_eval(tmp_path, name, backend):
    dataset = offset_dataset(tmp_path / 'dataset', identity_stats=True)
    run = write_run(tmp_path / 'run', dataset, position_picker(2, 1), history=2, horizon=1,
                    mlp={'hidden': []})
    policy = tmp_path / 'out' / name
    result = il_policy('export', run, '-o', policy, '--format', backend)
    assert result.returncode == 0, result.stderr
    assert load_policy(policy).backend == backend
    assert policy.is_file() and Path(f'{policy}.sha256').is_file()
    assert load_policy(policy).metadata.joint_names == JOINTS

    result = il_policy('eval', '--model', policy, '--dataset', dataset, '--plots',
                       tmp_path / 'plots', '--json', tmp_path / 'eval.json')
    assert result.returncode == 0, result.stderr
    assert 'RMSE [rad]' in result.stdout and 'j2' in result.stdout
    figures = json.loads((tmp_path / 'eval.json').read_text())
    np.testing.assert_allclose(figures['rmse_rad'], np.abs(OFFSETS), atol=1e-5)
    assert (tmp_path / 'plots' / 'rmse.png').is_file()
    _one_line_error(il_policy('export', run, '-o', tmp_path / 'wrong.pt', '--format', 'onnx'),
                    'name a onnx policy *.onnx')


def test_dataset_errors_give_one_line_and_exit_1(tmp_path):
    (tmp_path / 'empty').mkdir()
    config = tmp_path / 'dataset.yaml'
    config.write_text('control_rate_hz: 50.0\n')
    _one_line_error(il_policy('dataset', 'build', tmp_path / 'empty', '--config', config,
                              '-o', tmp_path / 'dataset'), 'no bags')
    assert not (tmp_path / 'dataset').exists()
    config.write_text('control_rate_hz: 50.0\nno_such_key: 1\n')
    _one_line_error(il_policy('dataset', 'build', tmp_path / 'empty', '--config', config,
                              '-o', tmp_path / 'dataset'), 'no_such_key')
    _one_line_error(il_policy('dataset', 'info', tmp_path / 'missing'), 'no such dataset')


def test_bad_checkpoints_give_one_line_naming_the_file_for_export_and_resume(tmp_path):
    import pickle
    dataset = offset_dataset(tmp_path / 'dataset')
    config = tmp_path / 'train.yaml'
    config.write_text('mlp: {hidden: [16]}\nepochs: 2\n')
    cases = (('pickled', lambda p: p.write_bytes(pickle.dumps({'policy': [1, 2]})),
              'not a checkpoint of il-policy train'),
             ('truncated', lambda p: p.write_bytes(p.read_bytes()[:300]),
              'truncated or not a torch checkpoint'))
    for name, damage, message in cases:
        run = write_run(tmp_path / name, dataset, random_mlp(1, 1), history=1, horizon=1,
                        mlp={'hidden': [16]})
        for checkpoint in ('best', 'last'):
            damage(run / 'checkpoints' / f'{checkpoint}.pt')
        _one_line_error(il_policy('export', run, '-o', tmp_path / 'policy.pt'),
                        str(run / 'checkpoints' / 'best.pt'), message)
        _one_line_error(il_policy('train', '--dataset', dataset, '--config', config, '-o', run,
                                  '--resume'), str(run / 'checkpoints' / 'last.pt'), message)
    assert not (tmp_path / 'policy.pt').exists()


def test_dataset_info_exits_1_with_the_reasons_when_nothing_is_usable(tmp_path):
    (tmp_path / 'bags').mkdir()
    (tmp_path / 'bags' / 'noise.mcap').write_bytes(bytes(range(256)) * 8)
    (tmp_path / 'bags' / 'broken').mkdir()
    (tmp_path / 'bags' / 'broken' / 'metadata.yaml').write_text('[1, 2]\n')
    result = il_policy('dataset', 'info', tmp_path / 'bags')
    _one_line_error(result, 'no usable bag in 2', 'noise.mcap: unreadable bag',
                    'metadata.yaml: not a rosbag2 metadata file')
    assert result.stdout == ''
    (tmp_path / 'empty').mkdir()
    _one_line_error(il_policy('dataset', 'info', tmp_path / 'empty'), 'no bags found')
