"""policy.pt: export round trip, an older file, and every refusal with its message."""
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from il_policy_node.errors import PolicyArtifactError
from il_policy_node.formats import (
    POLICY_FORMAT_VERSION as FORMAT_VERSION,
    POLICY_METADATA_FILE as METADATA_FILE,
)
from il_policy_node.pipeline.export import export_policy, write_checksum
from il_policy_node.policies.processor import Policy, Processor, ProcessorLayout
from il_policy_node.policies.statistics import Statistics
from il_policy_node.runtime.artifact import PolicyMetadata, checksum_path, load_policy
from il_policy_node.runtime.observation import ObservationSpec
from test.support.policies import ConstantPolicy, export, mlp

JOINTS = ['shoulder', 'elbow', 'wrist']
LEGACY = Path(__file__).resolve().parents[1] / 'fixtures' / 'legacy_policy'



@pytest.fixture
def policy_file(tmp_path):
    return export(mlp(6, 3, hidden=16), tmp_path / 'policy.pt', JOINTS, rate_hz=250.0)


def test_round_trip_keeps_metadata_and_normalization(tmp_path):
    network = mlp(6, 6, hidden=16)
    spec = ObservationSpec(joints=tuple(JOINTS), history=1)
    obs_mean, obs_std = np.arange(6.0), np.full(6, 2.0)
    act_mean, act_std = np.array([0.1, 0.2, 0.3]), np.array([1.0, 0.5, 2.0])
    processor = Processor(ProcessorLayout(frame_size=6, history=1), horizon=2, action_size=3,
                          inputs=Statistics(obs_mean, obs_std, 10),
                          actions=Statistics(act_mean, act_std, 10))
    metadata = PolicyMetadata(joint_names=tuple(JOINTS), observation=spec, action_horizon=2,
                              control_rate_hz=100.0, dataset_fingerprint='abc123',
                              extra={'task': 'wave'})
    path = export_policy(Policy(processor, network), tmp_path / 'p.pt', metadata)
    loaded = load_policy(path)
    meta = loaded.metadata
    assert meta.joint_names == tuple(JOINTS) and meta.action_horizon == 2
    assert meta.observation == spec and meta.control_rate_hz == 100.0
    assert meta.dataset_fingerprint == 'abc123' and meta.torch_version == torch.__version__
    assert meta.format_version == FORMAT_VERSION and meta.extra['task'] == 'wave'
    assert meta.extra['inference']['forward_us_p50'] > 0     # measured at export
    obs = torch.randn(5, 6)
    with torch.no_grad():
        raw = network((obs - torch.tensor(obs_mean, dtype=torch.float32)) / 2.0).reshape(5, 2, 3)
        expected = raw * torch.tensor(act_std, dtype=torch.float32) + \
            torch.tensor(act_mean, dtype=torch.float32)
        assert torch.allclose(loaded.module(obs), expected, atol=1e-5)
    assert checksum_path(path).read_text().split() == [loaded.sha256, 'p.pt']


def test_a_policy_file_of_the_code_before_the_renovation_gives_the_same_targets(tmp_path):
    # exported by commit 84bec17 (relative actions and inputs, no absolute positions, history 2,
    # horizon 3); its targets on 8 observations were recorded by that code
    for name in ('policy.pt', 'policy.pt.sha256'):
        shutil.copy(LEGACY / name, tmp_path / name)
    expected = json.loads((LEGACY / 'expected.json').read_text())
    policy = load_policy(tmp_path / 'policy.pt')
    assert policy.metadata.joint_names == ('a', 'b') and policy.metadata.action_horizon == 3
    assert [e.topic for e in policy.metadata.observation.extra] == ['/goal']
    with torch.inference_mode():
        targets = policy.module(torch.tensor(expected['observations']))
    # equal up to float32 rounding: another CPU's kernels (AVX2 / AVX-512) round differently
    np.testing.assert_allclose(targets.numpy(), np.array(expected['targets'], np.float32),
                               rtol=0, atol=1e-6)


def test_export_refuses_a_policy_whose_output_does_not_fit_the_metadata(tmp_path):
    spec = ObservationSpec(joints=tuple(JOINTS))
    metadata = PolicyMetadata(joint_names=tuple(JOINTS), observation=spec, action_horizon=2,
                              control_rate_hz=100.0, dataset_fingerprint='')
    policy = Policy(Processor(ProcessorLayout(frame_size=6, history=1), horizon=1,
                              action_size=3), mlp(6, 3))
    with pytest.raises(PolicyArtifactError, match=r'gives \(16, 1, 3\).* says \(16, 2, 3\)'):
        export_policy(policy, tmp_path / 'p.pt', metadata)
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
    with pytest.raises(PolicyArtifactError, match='pickle, not a policy'):
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
    ({'observation.fields': ['torque']}, "fields must be of \\['position', 'velocity'\\], got "
                                         "\\['torque'\\]"),
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

