"""il-policy mocap import by inverse kinematics: no map, any preset, a quality report per clip."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from il_policy_node.mocap.bvh import load_bvh, write_bvh
from il_policy_node.mocap.ik import IkOptions
from il_policy_node.mocap.importer import IMPORTED, REJECTED, ImportConfig, import_clips
from il_policy_node.mocap.methods import IkSettings
from il_policy_node.mocap.quality import QualityThresholds
from il_policy_node.mocap.synthetic import whole_body_clip
from il_policy_node.pipeline.bag_decoding import typestore
from il_policy_node.pipeline.bags import bag_metadata
from il_policy_node.robots.models import model_info
from test.support.shared import MIXAMO, MOTIONBUILDER, shared_bvh

ROOT = Path(__file__).resolve().parents[2]
MODEL = 'humanoid'


def cmu_clip(folder: Path, name: str = 'cmu.bvh') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_bvh(folder / name, whole_body_clip('cmu', duration_s=1.0, rate_hz=30.0))
    return folder / name


def config(tmp_path: Path, **changes) -> ImportConfig:
    return ImportConfig(**{'ik': IkSettings(MODEL, options=IkOptions(rate_hz=50.0)),
                           'output_dir': tmp_path / 'demos', 'task': 'mocap',
                           'start_time_s': 1_700_000_000.0, **changes})


def messages(bag: Path) -> dict[str, list]:
    from rosbags.rosbag2 import Reader
    store, out = typestore(), {}
    with Reader(bag) as reader:
        for connection, _, raw in reader.messages():
            out.setdefault(connection.topic, []).append(
                store.deserialize_cdr(raw, connection.msgtype))
    return out


def test_every_skeleton_imports_with_auto_and_no_map(tmp_path):
    clips = [shared_bvh(MIXAMO), shared_bvh(MOTIONBUILDER), cmu_clip(tmp_path / 'clips')]
    report = import_clips(clips, config=config(tmp_path))
    assert [r.status for r in report.results] == [IMPORTED] * 3 and report.ok
    skeletons = [r.quality.split(': ')[1].split(' ')[0] for r in report.results]
    assert skeletons == ['mixamo', 'motionbuilder', 'cmu']
    bag = report.results[2].episode
    found = messages(bag)
    info = model_info(MODEL)
    command = found['/mocap/joint_command']
    assert len(command) == 51 and list(command[0].name) == list(info.joint_names)
    assert {'/mocap/end_effectors/head', '/mocap/end_effectors/left_foot',
            '/mocap/end_effectors/right_hand', '/mocap/root_pose'} <= set(found)
    root = found['/mocap/root_pose'][0]
    assert root.header.frame_id == 'world' and root.pose.position.z == pytest.approx(0.95)
    foot = found['/mocap/end_effectors/left_foot'][0]
    assert foot.header.frame_id == 'pelvis' and foot.point.z == pytest.approx(0.07, abs=0.02)
    quality = json.loads((bag.parent / f'{bag.name}.quality.json').read_text())
    assert quality['skeleton'] == 'cmu' and quality['problems'] == []
    assert (bag.parent / f'{bag.name}.quality.png').is_file()
    custom = bag_metadata(bag)['custom_data']
    assert custom['mocap_retarget_map'] == f'ik:{MODEL}:auto'
    assert len(custom['mocap_retarget_map_sha256']) == 64
    positions = np.array([m.position for m in command])
    assert (positions >= np.array(info.lower_limits) - 1e-9).all()
    assert (positions <= np.array(info.upper_limits) + 1e-9).all()
    # the same file and settings again: already imported
    again = import_clips(clips[2:], config=config(tmp_path))
    assert again.results[0].status == 'skipped' and 'already imported' in again.results[0].message


def test_strict_rejects_a_clip_over_the_quality_thresholds(tmp_path):
    clip = cmu_clip(tmp_path / 'clips')
    tight = IkSettings(MODEL, thresholds=QualityThresholds(median_cm=0.0, p95_cm=0.0))
    report = import_clips([clip], config=config(tmp_path, ik=tight, strict=True))
    result, = report.results
    assert result.status == REJECTED and not report.ok
    assert 'over the quality thresholds (--strict): key-body error median' in result.message
    assert not (tmp_path / 'demos' / 'mocap' / 'episode_0001').exists()
    lenient = import_clips([clip], config=config(tmp_path, ik=tight))
    assert lenient.results[0].status == IMPORTED and 'OVER: ' in lenient.results[0].quality


def test_a_skeleton_no_preset_fits_fails_that_clip_only(tmp_path):
    odd = load_bvh(cmu_clip(tmp_path / 'clips'))
    from il_policy_node.mocap.bvh import BvhClip, BvhJoint
    renamed = BvhClip([BvhJoint(f'x{j.name}', j.parent, j.offset, j.channels, j.end_site)
                       for j in odd.joints], odd.frames, odd.frame_time)
    write_bvh(tmp_path / 'clips' / 'odd.bvh', renamed)
    report = import_clips([tmp_path / 'clips' / 'odd.bvh', tmp_path / 'clips' / 'cmu.bvh'],
                          config=config(tmp_path))
    assert [r.status for r in report.results] == ['failed', IMPORTED]
    assert 'odd.bvh: no skeleton preset fits' in report.results[0].message


def run_cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    env.pop('IL_POLICY_DEBUG', None)
    return subprocess.run([sys.executable, '-m', 'il_policy_node.cli', 'mocap', 'import',
                           *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


def test_the_command_line_with_ik(tmp_path):
    clip = cmu_clip(tmp_path / 'clips')
    done = run_cli(clip, '--model', MODEL, '-o', tmp_path / 'out', '--rate', 50)
    assert done.returncode == 0, done.stderr
    assert 'quality: ' in done.stdout and 'cmu (cm), 31 frames' in done.stdout
    assert '1 of 1 clip(s) imported' in done.stdout
    missing = run_cli(clip, '-o', tmp_path / 'out2')
    assert missing.returncode == 1 and 'Traceback' not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == (
        'il-policy: error: inverse kinematics needs --model (or give --retarget MAP_YAML)')
    bad = tmp_path / 'bones.yaml'
    bad.write_text('bodies: {pelvis: [Hips]}\n')
    wrong = run_cli(clip, '--model', MODEL, '--skeleton', bad, '-o', tmp_path / 'out3')
    assert wrong.returncode == 1 and 'Traceback' not in wrong.stderr
    assert f'{bad}: bodies lacks chest' in wrong.stderr
