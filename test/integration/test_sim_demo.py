"""The main job at small scale: every stage runs for real and leaves its output.

Reach: two demonstrations (sim_robot + demonstrator + demo_recorder over DDS). Mocap: two
BVH clips through il-policy mocap import, the reference streamed by mocap_bridge. Then the
il-policy commands, one held-out reference run and one policy rollout. The policy's success is
not asserted (two demonstrations and three epochs make a poor policy); that it moved the robot
is, and that the reference succeeds.
"""
import json

import numpy as np
import yaml

from il_policy_node.demo import COMMAND_TOPIC, Settings, load_run, run_demo
from il_policy_node.pipeline.bags import find_bags


def test_every_stage_leaves_its_output_and_the_policy_moves_the_robot(tmp_path):
    (result,) = run_demo(Settings(out=tmp_path, tasks=('reach',), episodes=2, rollouts=1,
                                  epochs=3))
    task = tmp_path / 'reach'
    assert len(find_bags([task / 'demonstrations'])) == 2
    manifest = json.loads((task / 'dataset' / 'manifest.json').read_text())
    assert manifest['observation']['extra'][0]['topic'] == '/demo/goal'
    assert (task / 'run' / 'metrics.csv').is_file() and (task / 'run' / 'loss.png').is_file()
    assert result.policy == task / 'policy.pt' and result.policy.is_file()
    assert (task / 'policy.pt.sha256').is_file() and (task / 'open_loop.json').is_file()
    assert np.isfinite(result.open_loop_rmse_rad)
    assert len(find_bags([task / 'reference'])) == 1
    (rollout,) = find_bags([task / 'rollouts'])
    t, q, _ = load_run(rollout, COMMAND_TOPIC)
    assert t[-1] > 1.0
    assert np.abs(q - q[0]).max() > 0.05          # the policy's commands moved the arm
    assert len(result.policy_scores) == 1 and len(result.reference_scores) == 1
    assert result.reference_scores[0].success     # the demonstrator reaches its goal
    assert (task / 'reach_trajectories.png').is_file()
    assert float(result.loop['loop_rate_hz']) > 0


def test_mocap_clips_teach_the_humanoid_through_every_stage(tmp_path):
    (result,) = run_demo(Settings(out=tmp_path, tasks=('mocap',), episodes=2, rollouts=1,
                                  epochs=3))
    task = tmp_path / 'mocap'
    assert len(list((task / 'clips').glob('*.bvh'))) == 2
    assert len(find_bags([task / 'demonstrations'])) == 2       # il-policy mocap import
    manifest = json.loads((task / 'dataset' / 'manifest.json').read_text())
    assert manifest['observation']['topic'] == '/mocap/joint_command'
    assert len(manifest['observation']['joints']) == 31          # the whole-body humanoid
    train = yaml.safe_load((task / 'train.yaml').read_text())
    assert (train['epochs'], train['history']) == (3, 2)         # --epochs over the recipe
    assert result.policy.is_file() and np.isfinite(result.open_loop_rmse_rad)
    (reference,) = find_bags([task / 'reference'])               # mocap_bridge drove the robot
    (rollout,) = find_bags([task / 'rollouts'])
    t, q, names = load_run(rollout, COMMAND_TOPIC)
    assert len(names) == 31 and t[-1] > 5.0
    assert np.abs(q - q[0]).max() > 0.05          # the policy's commands moved the humanoid
    assert result.reference_scores[0].success, result.reference_scores[0].reason
    assert (task / 'mocap_trajectories.png').is_file()
    assert result.extra['reference_key_body_error_cm'] < 5.0     # mocap_bridge tracks the clip
    assert np.isfinite(result.extra['key_body_error_cm'])
    quality = json.loads((task / 'demonstrations' / 'episode_0001.quality.json').read_text())
    assert quality['skeleton'] == 'cmu' and quality['problems'] == []
