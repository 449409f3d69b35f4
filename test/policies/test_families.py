"""Every policy family: shapes, training, the export round trip and determinism."""
import numpy as np
import pytest
import torch

from il_policy_node.errors import ConfigError
from il_policy_node.pipeline.dataset.format import load_dataset
from il_policy_node.pipeline.export import export_run, validation_observations
from il_policy_node.pipeline.training.config import TrainConfig
from il_policy_node.pipeline.training.loop import train
from il_policy_node.pipeline.training.run_dir import load_run
from il_policy_node.policies.networks import TrainingObjective, build_network
from il_policy_node.runtime.artifact import load_policy
from test.support.datasets import JOINTS, sinusoid_dataset

SMALL = {'mlp': {'hidden': [32]},
         'act': {'d_model': 32, 'heads': 2, 'encoder_layers': 1, 'decoder_layers': 1,
                 'feedforward': 64},
         'diffusion': {'channels': [16, 32], 'condition_size': 32, 'train_steps': 20,
                       'inference_steps': 4}}
HISTORY, HORIZON = 2, 5
FAMILIES = sorted(SMALL)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return sinusoid_dataset(tmp_path_factory.mktemp('data') / 'ds')


def _spec(family, options=None, *, input_size=8, history=HISTORY, horizon=HORIZON):
    return {'family': family, 'input_size': input_size, 'output_size': horizon * 2,
            'history': history, 'horizon': horizon, 'action_size': 2,
            'options': options if options is not None else SMALL[family]}


FAMILY_VARIANTS = [(f, SMALL[f]) for f in FAMILIES] + \
    [('diffusion', {**SMALL['diffusion'], 'prediction': 'epsilon'})]


@pytest.mark.parametrize('family,options', FAMILY_VARIANTS)
@pytest.mark.parametrize('history,horizon', [(1, 1), (3, 7)])
def test_shapes_and_loss_of_every_family(family, options, history, horizon):
    torch.manual_seed(0)
    network = build_network(_spec(family, options, input_size=4 * history, history=history,
                                  horizon=horizon))
    inputs, targets = torch.randn(5, 4 * history), torch.randn(5, horizon * 2)
    network.eval()
    assert network(inputs).shape == (5, horizon * 2)
    network.train()
    loss = TrainingObjective(network)(inputs, targets)
    assert loss.shape == () and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert all(p.grad is not None for p in network.parameters() if p.requires_grad)


def test_act_cvae_trains_its_style_encoder_and_infers_with_zero_latent():
    torch.manual_seed(0)
    network = build_network(_spec('act', {**SMALL['act'], 'cvae': True}))
    inputs, targets = torch.randn(6, 8), torch.randn(6, 10)
    TrainingObjective(network)(inputs, targets).backward()
    assert network.style_out.weight.grad.abs().sum() > 0
    network.eval()
    with torch.no_grad():
        first, again = network(inputs), network(inputs)
        network.style_out.weight.add_(1.0)       # inference never reads the style encoder
        assert torch.equal(first, again) and torch.equal(first, network(inputs))


def test_diffusion_is_deterministic_given_its_noise_seed():
    inputs = torch.randn(3, 8)
    outputs = []
    for seed in (0, 0, 1):
        torch.manual_seed(0)                 # the same weights each time
        network = build_network(_spec('diffusion', {**SMALL['diffusion'],
                                                    'noise_seed': seed})).eval()
        with torch.no_grad():
            outputs.append(network(inputs))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], outputs[2])


# ONNX parity: 1e-5 but for the generative family, whose sampling loop amplifies the float32
# rounding differences of torch's and onnxruntime's kernels (~1e-4 on a trained one: about
# what the float32 torch model itself differs from float64)
ONNX_ATOL = {'mlp': 1e-5, 'act': 1e-5, 'diffusion': 1e-3}


@pytest.mark.parametrize('family', FAMILIES)
def test_train_export_round_trip_in_both_backends(family, dataset, tmp_path):
    config = TrainConfig(model=family, **{family: SMALL[family]}, history=HISTORY,
                         horizon=HORIZON, epochs=2, patience=0, batch_size=64, device='cpu')
    train(dataset, config=config, run_dir=tmp_path / 'run', progress=False)
    obs = torch.from_numpy(validation_observations(load_dataset(dataset), HISTORY))
    eager = load_run(tmp_path / 'run').policy.eval()
    with torch.no_grad():
        expected = eager(obs)
    for name, atol in (('policy.pt', 1e-5), ('policy.onnx', ONNX_ATOL[family])):
        policy = load_policy(export_run(tmp_path / 'run', tmp_path / name))
        meta = policy.metadata
        assert policy.backend == meta.extra['backend'] == \
            ('onnx' if name.endswith('.onnx') else 'torchscript')
        assert meta.extra['model'] == family and meta.extra['network']['family'] == family
        assert meta.extra['inference']['network_passes'] == \
            (SMALL['diffusion']['inference_steps'] if family == 'diffusion' else 1)
        assert meta.extra['inference']['forward_us_p50'] > 0
        assert meta.extra['export_max_abs_diff'] <= min(atol, meta.extra['export_tolerance'])
        with torch.no_grad():
            exported = policy.module(obs)
        assert exported.shape == (len(obs), HORIZON, len(JOINTS))
        np.testing.assert_allclose(exported.numpy(), expected.numpy(), atol=atol)


def test_bad_network_descriptions_name_the_key():
    with pytest.raises(ConfigError, match='model must be one of'):
        build_network(_spec('rnn', {}))
    with pytest.raises(ConfigError, match='act.heads'):
        build_network(_spec('act', {'d_model': 30, 'heads': 4}))
    with pytest.raises(ConfigError, match='diffusion.kernel_size'):
        build_network(_spec('diffusion', {'kernel_size': 4}))
    with pytest.raises(ConfigError, match=r"diffusion.prediction must be one of \['sample', "
                                          r"'epsilon'\], got 'v'"):
        build_network(_spec('diffusion', {'prediction': 'v'}))
