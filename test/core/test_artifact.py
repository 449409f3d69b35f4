"""policy.pt: export round trip and every way a file can be refused, each with its message."""
import json
import pickle

import numpy as np
import pytest
import torch

from il_policy_node.core.artifact import (
    FORMAT_VERSION,
    METADATA_FILE,
    PolicyArtifactError,
    checksum_path,
    load_policy,
    write_checksum,
)
from il_policy_node.core.export import export_policy
from il_policy_node.core.observation import ObservationSpec
from test.support.policies import ConstantPolicy, export, mlp

JOINTS = ['shoulder', 'elbow', 'wrist']


@pytest.fixture
def policy_file(tmp_path):
    return export(mlp(6, 3, hidden=16), tmp_path / 'policy.pt', JOINTS, rate_hz=250.0)


def test_round_trip_keeps_metadata_and_normalization(tmp_path):
    model = mlp(6, 6, hidden=16)
    spec = ObservationSpec(joints=tuple(JOINTS), history=1)
    obs_mean, obs_std = np.arange(6.0), np.full(6, 2.0)
    act_mean, act_std = np.array([0.1, 0.2, 0.3]), np.array([1.0, 0.5, 2.0])
    path = export_policy(model, tmp_path / 'p.pt', joint_names=JOINTS, observation=spec,
                         action_horizon=2, control_rate_hz=100.0, obs_mean=obs_mean,
                         obs_std=obs_std, action_mean=act_mean, action_std=act_std,
                         dataset_fingerprint='abc123', extra_metadata={'task': 'wave'})
    loaded = load_policy(path)
    meta = loaded.metadata
    assert meta.joint_names == tuple(JOINTS) and meta.action_horizon == 2
    assert meta.observation == spec and meta.control_rate_hz == 100.0
    assert meta.dataset_fingerprint == 'abc123' and meta.torch_version == torch.__version__
    assert meta.format_version == FORMAT_VERSION and meta.extra == {'task': 'wave'}
    obs = torch.randn(5, 6)
    with torch.no_grad():
        raw = model((obs - torch.tensor(obs_mean, dtype=torch.float32)) / 2.0).reshape(5, 2, 3)
        expected = raw * torch.tensor(act_std, dtype=torch.float32) + \
            torch.tensor(act_mean, dtype=torch.float32)
        assert torch.allclose(loaded.module(obs), expected, atol=1e-5)
    assert checksum_path(path).read_text().split() == [loaded.sha256, 'p.pt']


def test_export_refuses_statistics_of_the_wrong_size(tmp_path):
    spec = ObservationSpec(joints=tuple(JOINTS))
    with pytest.raises(ValueError, match='obs_mean has 2 values'):
        export_policy(mlp(6, 3), tmp_path / 'p.pt', joint_names=JOINTS, observation=spec,
                      action_horizon=1, control_rate_hz=100.0, obs_mean=np.zeros(2))
    assert not (tmp_path / 'p.pt').exists()


def test_missing_file(tmp_path):
    with pytest.raises(PolicyArtifactError, match='no such file'):
        load_policy(tmp_path / 'nope.pt')


def test_pickle_is_refused_without_unpickling(tmp_path):
    path = tmp_path / 'policy.pt'

    class Boom:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / 'pwned'),))

    path.write_bytes(pickle.dumps(Boom()))
    write_checksum(path)
    with pytest.raises(PolicyArtifactError, match='pickle, not TorchScript'):
        load_policy(path)
    assert not (tmp_path / 'pwned').exists()


def test_torch_save_checkpoint_is_refused(tmp_path):
    path = tmp_path / 'policy.pt'
    torch.save({'state_dict': mlp(6, 3, hidden=8).state_dict()}, path)
    write_checksum(path)
    with pytest.raises(PolicyArtifactError, match='not TorchScript'):
        load_policy(path)


def test_truncated_file(policy_file):
    data = policy_file.read_bytes()
    policy_file.write_bytes(data[:len(data) // 2])
    with pytest.raises(PolicyArtifactError, match='truncated or corrupt|corrupt archive'):
        load_policy(policy_file)


def test_checksum_mismatch(policy_file):
    checksum_path(policy_file).write_text('0' * 64 + '  policy.pt\n')
    with pytest.raises(PolicyArtifactError, match='sha256 mismatch'):
        load_policy(policy_file)


def test_missing_checksum(policy_file):
    checksum_path(policy_file).unlink()
    with pytest.raises(PolicyArtifactError, match='checksum file policy.pt.sha256 is missing'):
        load_policy(policy_file)


def _script_without_metadata(path, extra_files=None):
    torch.jit.save(torch.jit.script(ConstantPolicy([0.0] * 3)), str(path),
                   _extra_files=extra_files or {})
    write_checksum(path)


def test_missing_metadata(tmp_path):
    path = tmp_path / 'policy.pt'
    _script_without_metadata(path)
    with pytest.raises(PolicyArtifactError, match=f'{METADATA_FILE} is missing'):
        load_policy(path)


@pytest.mark.parametrize('metadata, message', [
    ('{not json', 'not valid JSON'),
    ('[1, 2]', 'must be a JSON object'),
    ('{"format_version": 1}', 'missing'),
])
def test_malformed_metadata(tmp_path, metadata, message):
    path = tmp_path / 'policy.pt'
    _script_without_metadata(path, {METADATA_FILE: metadata})
    with pytest.raises(PolicyArtifactError, match=f'malformed {METADATA_FILE}: .*{message}'):
        load_policy(path)


def _rewrite_metadata(path, **changes):
    """Re-save the same module with edited metadata (as a tampered or buggy exporter would)."""
    extra = {METADATA_FILE: ''}
    module = torch.jit.load(str(path), _extra_files=extra)
    data = json.loads(extra[METADATA_FILE])
    for key, value in changes.items():
        if key.startswith('observation.'):
            data['observation'][key.split('.', 1)[1]] = value
        else:
            data[key] = value
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: json.dumps(data)})
    write_checksum(path)


@pytest.mark.parametrize('changes, message', [
    ({'format_version': 99}, 'format_version 99 is not supported'),
    ({'joint_names': ['a', 'a', 'b']}, "duplicate action joint names: \\['a'\\]"),
    ({'action_horizon': 0}, 'action_horizon must be an integer >= 1'),
    ({'control_rate_hz': -1}, 'control_rate_hz must be > 0'),
    ({'observation.fields': ['torque']}, "'torque' is not a valid StateField"),
])
def test_invalid_metadata_values(policy_file, changes, message):
    _rewrite_metadata(policy_file, **changes)
    with pytest.raises(PolicyArtifactError, match=message):
        load_policy(policy_file)


def test_observation_size_mismatch(policy_file):
    _rewrite_metadata(policy_file, **{'observation.history': 3})
    with pytest.raises(PolicyArtifactError, match='rejects an observation of size 18'):
        load_policy(policy_file)


def test_output_size_mismatch(policy_file):
    _rewrite_metadata(policy_file, joint_names=['a', 'b'],
                      **{'observation.joints': ['shoulder', 'elbow', 'wrist']})
    with pytest.raises(PolicyArtifactError, match='output shape'):
        load_policy(policy_file)

