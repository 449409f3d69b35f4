"""Bad model files and bad parameters make configure fail, with the message, publishing nothing.

One policy_node process serves every case of a group: parameters may change while the node is
unconfigured, so each case sets them over the parameter service and asks for configure.
"""
import pickle
from pathlib import Path

import torch

from il_policy_node.formats import POLICY_METADATA_FILE as METADATA_FILE
from il_policy_node.pipeline.export import write_checksum
from il_policy_node.runtime.artifact import PolicyMetadata, checksum_path
from il_policy_node.runtime.observation import ObservationSpec
from test.support.graph import JOINTS, policy_params, wait_until
from test.support.policies import ConstantPolicy, export, mlp


def _metadata(joints=JOINTS) -> str:
    return PolicyMetadata(joint_names=tuple(joints), observation=ObservationSpec(tuple(joints)),
                          action_horizon=1, control_rate_hz=100.0,
                          dataset_fingerprint='test').to_json()


def _scripted(path: Path, module: torch.nn.Module, extra_files: dict) -> Path:
    torch.jit.save(torch.jit.script(module), str(path), _extra_files=extra_files)
    write_checksum(path)
    return path


def bad_models(root: Path) -> dict[str, tuple[Path, str]]:
    """Case name -> (file, the message configure must log)."""
    good = export(ConstantPolicy([0.0] * 3), root / 'good.pt', JOINTS)
    cases = {}

    pickled = root / 'pickle.pt'
    pickled.write_bytes(pickle.dumps({'state_dict': {'w': [1.0, 2.0]}}))
    write_checksum(pickled)
    cases['pickle'] = (pickled, 'is a Python pickle, not a policy')

    truncated = root / 'truncated.pt'
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    write_checksum(truncated)
    cases['truncated'] = (truncated, 'truncated or corrupt archive')

    tampered = root / 'tampered.pt'
    tampered.write_bytes(good.read_bytes())
    checksum_path(tampered).write_text('0' * 64 + '  tampered.pt\n')
    cases['sha256'] = (tampered, 'sha256 mismatch')

    cases['no metadata'] = (_scripted(root / 'nometa.pt', ConstantPolicy([0.0] * 3), {}),
                            f'{METADATA_FILE} is missing from the archive')
    cases['malformed metadata'] = (
        _scripted(root / 'badmeta.pt', ConstantPolicy([0.0] * 3), {METADATA_FILE: '{oops'}),
        f'malformed {METADATA_FILE}: metadata is not valid JSON')
    cases['input size'] = (                                 # metadata says 6 inputs
        _scripted(root / 'input.pt', mlp(4, 3, hidden=8), {METADATA_FILE: _metadata()}),
        'model rejects an observation of size 6')
    cases['output size'] = (                                # [B, 2] for 3 joints
        _scripted(root / 'output.pt', ConstantPolicy([0.0] * 2), {METADATA_FILE: _metadata()}),
        'model output shape (1, 2) does not match metadata (1, 1, 3)')
    cases['missing file'] = (root / 'nowhere.pt', 'no such file')
    return cases


def run_cases(graph, node, cases: dict[str, tuple[dict, str]]) -> None:
    """Each case: set parameters, configure fails, its message is logged, nothing published."""
    rx = graph.receiver
    failures = []
    for name, (params, message) in cases.items():
        results = rx.set_parameters(params)
        assert all(r.successful for r in results), (name, [r.reason for r in results])
        logged = len(node.log())
        ok = rx.lifecycle.change('configure')
        found = wait_until(lambda: message in node.log()[logged:], 5.0)
        if ok or not found or rx.lifecycle.state() != 'unconfigured':
            failures.append(f'{name}: configure {"succeeded" if ok else "failed"}, '
                            f'message {message!r} {"logged" if found else "NOT logged"}')
        if rx.node.count_publishers('/joint_trajectory'):
            failures.append(f'{name}: a joint_trajectory publisher exists')
    assert not failures, '\n'.join(failures) + '\n' + node.log()
    assert not rx.trajectories


def assert_good_config_configures(graph, node, params: dict) -> None:
    """The control case: the same node configures with good parameters (and would publish)."""
    rx = graph.receiver
    assert all(r.successful for r in rx.set_parameters(params))
    assert rx.lifecycle.change('configure'), node.log()
    assert wait_until(lambda: rx.node.count_publishers('/joint_trajectory') == 1, 10.0)


def test_each_bad_model_file_fails_configure(graph, tmp_path):
    cases = bad_models(tmp_path)
    node = graph.policy_node(policy_params(cases['pickle'][0]), configure=False)
    run_cases(graph, node, {name: ({'model_path': str(path)}, message)
                            for name, (path, message) in cases.items()})
    assert_good_config_configures(graph, node, {'model_path': str(tmp_path / 'good.pt')})


def test_each_bad_parameter_fails_configure(graph, tmp_path):
    model = export(ConstantPolicy([0.0] * 3), tmp_path / 'policy.pt', JOINTS)
    good = policy_params(model)
    node = graph.policy_node(good, configure=False)
    cases = {
        'rate zero': ({'control_rate_hz': 0.0}, 'parameter control_rate_hz must be > 0'),
        'lower > upper': ({'position_lower_limits': [-1.0, 2.0, -1.0],
                           'position_upper_limits': [1.0, 1.0, 1.0]},
                          "joint 'j1': lower limit 2.0 > upper limit 1.0"),
        'duplicate joints': ({'joint_names': ['j0', 'j1', 'j1']},
                             "duplicate joint names in parameter joint_names: ['j1']"),
        'unknown policy joint': ({'joint_names': ['j0', 'j1', 'elbow']},
                                 "policy joint 'j2' is not among the controller joint_names"),
        'rate differs': ({'control_rate_hz': 50.0},
                         'parameter control_rate_hz 50 differs from the rate the policy was '
                         'trained at (100 Hz)'),
    }
    run_cases(graph, node, {name: ({**good, **params}, message)
                            for name, (params, message) in cases.items()})
    assert_good_config_configures(graph, node, good)


def test_a_bad_parameter_at_start_up_fails_configure(graph, tmp_path):
    """Out of its declared range on the command line: the node starts, configure says why."""
    model = export(ConstantPolicy([0.0] * 3), tmp_path / 'policy.pt', JOINTS)
    node = graph.policy_node(policy_params(model, control_rate_hz=-100.0), configure=False)
    rx = graph.receiver
    assert not rx.lifecycle.change('configure')
    assert wait_until(lambda: 'configure failed: parameter control_rate_hz' in node.log(), 5.0)
    assert rx.lifecycle.state() == 'unconfigured'
    assert not rx.node.count_publishers('/joint_trajectory') and not rx.trajectories
    # A valid value set afterwards replaces the refused one.
    assert_good_config_configures(graph, node, {'control_rate_hz': 100.0})
