"""Checkpoints hold only tensors and plain values; anything else is refused by name, unread."""
import pickle

import pytest
import torch

from il_policy_node.errors import CheckpointError
from il_policy_node.pipeline.training.run_dir import load_checkpoint, load_run
from test.support.datasets import offset_dataset, random_mlp, write_run


class Boom:
    """Unpickling this runs code: a checkpoint from someone else must never do that."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f'open({self.marker!r}, "w").write("pwned")',))


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp('run')
    return write_run(root / 'run', offset_dataset(root / 'dataset'), random_mlp(1, 1),
                     history=1, horizon=1, mlp={'hidden': [16]})


@pytest.mark.parametrize('name, damage, message', [
    ('code in a pickle', lambda p, m: p.write_bytes(pickle.dumps({'policy': Boom(m)})),
     'a Python pickle, not a checkpoint of il-policy train'),
    ('code in torch.save', lambda p, m: torch.save({'epoch': Boom(m)}, p),
     'refused: it holds Python objects'),
    ('a pickled dict', lambda p, m: p.write_bytes(pickle.dumps({'epoch': 3})),
     'a Python pickle, not a checkpoint'),
    ('zero bytes', lambda p, m: p.write_bytes(b''), r'empty file \(0 bytes\)'),
    ('truncated', lambda p, m: p.write_bytes(p.read_bytes()[:500]),
     'truncated or not a torch checkpoint'),
    ('other keys', lambda p, m: torch.save({'state_dict': {'w': torch.zeros(2)}}, p),
     r"missing \['format_version'"),
    ('a list', lambda p, m: torch.save([1, 2], p), 'holds a list, not a dict'),
    ('wrong types', lambda p, m: torch.save({**load_checkpoint(p), 'epoch': 'one'}, p),
     r"\['epoch'\] have the wrong type"),
    ('format 1', lambda p, m: torch.save({'model': {}, 'dataset_info': {}}, p),
     'before the policy processor'),
])
def test_a_bad_checkpoint_is_refused_naming_the_file(run, tmp_path, name, damage, message):
    path = tmp_path / 'best.pt'
    path.write_bytes((run / 'checkpoints' / 'best.pt').read_bytes())
    damage(path, tmp_path / 'pwned')
    with pytest.raises(CheckpointError, match=f'^{path}: .*{message}'):
        load_checkpoint(path)
    assert not (tmp_path / 'pwned').exists()


def test_a_good_checkpoint_rebuilds_its_policy(run):
    trained = load_run(run, checkpoint='last')
    assert trained.epoch == 1 and not trained.policy.training
    with pytest.raises(CheckpointError, match='no such checkpoint'):
        load_checkpoint(run / 'checkpoints' / 'missing.pt')
