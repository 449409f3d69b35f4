"""The ONNX backend: the same artifact contract, runtime and safety checks as TorchScript."""
import shutil

import numpy as np
import onnx
import pytest
import torch

from il_policy_node.errors import PolicyArtifactError
from il_policy_node.pipeline.export import write_checksum
from il_policy_node.runtime.artifact import load_policy
from il_policy_node.runtime.chunks import ChunkOptions
from il_policy_node.runtime.policy_runtime import PolicyRuntime
from test.support.policies import NaNPolicy, export, mlp

JOINTS = ('a', 'b', 'c')
GOAL = {'topic': '/goal', 'joints': ['a', 'b'], 'fields': ['position']}


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """The same network as policy.pt and as policy.onnx (history 2, horizon 4, a goal input)."""
    folder = tmp_path_factory.mktemp('backends')
    network = mlp(2 * (6 + 2), 4 * 3, hidden=32)
    options = dict(horizon=4, history=2, extra=[GOAL], extra_metadata={'task': 'wave'})
    return {name: export(network, folder / f'policy.{name}', JOINTS, **options)
            for name in ('pt', 'onnx')}


def test_both_backends_give_the_same_metadata_and_targets(files):
    torch_policy, onnx_policy = load_policy(files['pt']), load_policy(files['onnx'])
    assert (torch_policy.backend, onnx_policy.backend) == ('torchscript', 'onnx')
    for key in ('joint_names', 'observation', 'action_horizon', 'control_rate_hz',
                'dataset_fingerprint'):
        assert getattr(onnx_policy.metadata, key) == getattr(torch_policy.metadata, key), key
    assert onnx_policy.metadata.extra['task'] == 'wave'
    assert onnx_policy.metadata.extra['backend'] == 'onnx'
    assert onnx_policy.metadata.extra['export_max_abs_diff'] <= 1e-5
    obs = torch.randn(64, onnx_policy.metadata.observation.size, generator=torch.Generator()
                      .manual_seed(1))
    with torch.inference_mode():
        np.testing.assert_allclose(onnx_policy.module(obs).numpy(),
                                   torch_policy.module(obs).numpy(), atol=1e-5)


def test_the_runtime_steps_an_onnx_policy_as_a_torchscript_one(files):
    runtimes = [PolicyRuntime(load_policy(files[name]), ChunkOptions(execution='ensemble'))
                for name in ('pt', 'onnx')]
    rng = np.random.default_rng(0)
    for _ in range(12):
        fields = [rng.normal(size=3), rng.normal(size=3), rng.normal(size=2)]
        targets = [runtime.step([f.copy() for f in fields]).copy() for runtime in runtimes]
        np.testing.assert_allclose(targets[1], targets[0], atol=1e-5)
    assert [r.inferences for r in runtimes] == [12, 12]


def test_onnx_runs_on_the_threads_it_is_given(files):
    policy = load_policy(files['onnx'], threads=2)
    assert policy.module.threads == 2
    assert load_policy(files['onnx']).module.threads == 1


def test_a_bad_onnx_file_is_refused_naming_the_problem(tmp_path, files):
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(files['onnx'].read_bytes()[:200])
    write_checksum(corrupt)
    with pytest.raises(PolicyArtifactError, match='corrupt.onnx: ONNX model failed to load'):
        load_policy(corrupt)

    plain = tmp_path / 'plain.onnx'                 # an ONNX model without our metadata
    model = onnx.load(files['onnx'])
    del model.metadata_props[:]
    onnx.save(model, plain)
    write_checksum(plain)
    with pytest.raises(PolicyArtifactError, match='metadata.json is missing from the ONNX'):
        load_policy(plain)

    changed = tmp_path / 'changed.onnx'
    shutil.copy(files['onnx'], changed)
    shutil.copy(files['onnx'].with_name('policy.onnx.sha256'),
                tmp_path / 'changed.onnx.sha256')
    with open(changed, 'ab') as stream:
        stream.write(b'\0')
    with pytest.raises(PolicyArtifactError, match='sha256 mismatch'):
        load_policy(changed)

    pickled = tmp_path / 'pickled.onnx'
    pickled.write_bytes(b'\x80\x04K\x01.')
    with pytest.raises(PolicyArtifactError, match='pickle, not a policy'):
        load_policy(pickled)


def test_export_names_a_suffix_that_does_not_fit_the_backend(tmp_path):
    with pytest.raises(PolicyArtifactError, match=r'name a onnx policy \*\.onnx'):
        export(NaNPolicy(3), tmp_path / 'p.pt', JOINTS, backend='onnx')
    assert not (tmp_path / 'p.pt').exists()
