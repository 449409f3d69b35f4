"""Streaming retargeting: frames as they come give retarget's values; a BVH file followed."""
from pathlib import Path

import numpy as np
import pytest

from il_policy_node.mocap.bvh import BvhError, BvhHeader, load_bvh, write_bvh
from il_policy_node.mocap.retarget import RetargetError, load_retarget_map, retarget
from il_policy_node.mocap.stream import (
    BvhFollower,
    ClipSource,
    FrameRetargeter,
    MapValues,
    MotionSamples,
)
from il_policy_node.mocap.synthetic import wave_clip
from il_policy_node.robots.models import model_info
from test.mocap import one_joint, through_file, write_map

MAP = Path(__file__).resolve().parents[2] / 'config' / 'retarget' / 'humanoid_upper.yaml'
INFO = model_info('humanoid_upper')
ROBOT = dict(joint_names=INFO.joint_names, lower=INFO.lower_limits, upper=INFO.upper_limits)


@pytest.fixture(scope='module')
def wave(tmp_path_factory):
    path = tmp_path_factory.mktemp('wave') / 'wave.bvh'
    write_bvh(path, wave_clip(duration_s=1.0, rate_hz=60.0, seed=2))
    return load_bvh(path), load_retarget_map(MAP)


def map_values(mapping, robot=ROBOT):
    """What a ClipSource takes: the map's FrameValues for a header."""
    return lambda header: MapValues(header, mapping, **robot)


def retargeter_of(clip, mapping, robot=ROBOT, rate_hz=None) -> FrameRetargeter:
    header = header_of(clip)
    return FrameRetargeter(header, MapValues(header, mapping, **robot), rate_hz=rate_hz)


def header_of(clip) -> BvhHeader:
    return BvhHeader(joints=clip.joints, frame_time=clip.frame_time,
                     frame_count=clip.num_frames, data_line=0, source=clip.source)


def run(retargeter: FrameRetargeter, frames, batch: int) -> tuple[MotionSamples, list[int]]:
    """Push ``frames`` ``batch`` at a time, then finish; all samples and the batch sizes."""
    parts = [retargeter.push(frames[k:k + batch]) for k in range(0, len(frames), batch)]
    parts.append(retargeter.finish())
    assert [p.first for p in parts] == list(np.cumsum([0] + [len(p) for p in parts[:-1]]))
    joined = MotionSamples(
        first=0, times=np.concatenate([p.times for p in parts]),
        positions=np.vstack([p.positions for p in parts]),
        velocities=np.vstack([p.velocities for p in parts]),
        end_effectors={n: np.vstack([p.end_effectors[n] for p in parts])
                       for n in parts[0].end_effectors})
    return joined, [len(p) for p in parts]


def test_at_the_clip_rate_sample_i_is_frame_i_with_retarget_values(wave):
    clip, mapping = wave
    expected = retarget(clip, mapping, rate_hz=1.0 / clip.frame_time, **ROBOT)
    samples, sizes = run(retargeter_of(clip, mapping), clip.frames, 1)
    # each sample waits for the next frame (its velocity), the last one for finish()
    assert sizes == [0] + [1] * (clip.num_frames - 1) + [1]
    np.testing.assert_allclose(samples.times, expected.times, atol=1e-12)
    np.testing.assert_allclose(samples.positions, expected.positions, atol=1e-7)
    # central differences against the spline's derivative (one-sided at the ends)
    np.testing.assert_allclose(samples.velocities[1:-1], expected.velocities[1:-1], atol=0.05)
    for name, points in expected.end_effectors.items():
        np.testing.assert_allclose(samples.end_effectors[name], points, atol=1e-7)
    whole, sizes = run(retargeter_of(clip, mapping), clip.frames, 1000)
    assert sizes == [clip.num_frames - 1, 1]
    np.testing.assert_array_equal(whole.positions, samples.positions)
    np.testing.assert_array_equal(whole.velocities, samples.velocities)


def test_resampled_between_frames_and_exact_on_them(wave):
    clip, mapping = wave
    expected = retarget(clip, mapping, **ROBOT)                       # the map's 50 Hz
    samples, _ = run(retargeter_of(clip, mapping, rate_hz=50.0),
                     clip.frames, 7)
    assert len(samples.times) == len(expected.times) == 51
    np.testing.assert_allclose(samples.positions, expected.positions, atol=1e-4)
    on_frames = np.arange(0, 51, 5)                                   # every 0.1 s
    np.testing.assert_allclose(samples.positions[on_frames], expected.positions[on_frames],
                               atol=1e-7)
    one_by_one, sizes = run(retargeter_of(clip, mapping, rate_hz=50.0),
                            clip.frames, 1)
    np.testing.assert_allclose(one_by_one.positions, samples.positions, atol=1e-12)
    assert sum(sizes) == 51 and max(sizes) == 1


def test_clamping_is_reported_as_retarget_reports_it(wave):
    clip, mapping = wave
    upper = list(INFO.upper_limits)
    elbow = INFO.index()['right_elbow_joint']
    upper[elbow] = 1.5
    robot = dict(ROBOT, upper=upper)
    expected = retarget(clip, mapping, rate_hz=1.0 / clip.frame_time, **robot)
    retargeter = retargeter_of(clip, mapping, robot=robot)
    samples, _ = run(retargeter, clip.frames, 5)
    assert set(retargeter.clamped) == set(expected.clamped) == {'right_elbow_joint'}
    got, want = retargeter.clamped['right_elbow_joint'], expected.clamped['right_elbow_joint']
    assert got.frames == want.frames > 0
    assert got.worst_excess == pytest.approx(want.worst_excess, abs=1e-7)
    assert samples.positions[:, elbow].max() == 1.5
    assert (samples.velocities[samples.positions[:, elbow] == 1.5, elbow] == 0.0).all()


def test_angles_unwrap_across_batches(tmp_path):
    degrees = np.arange(0.0, 721.0, 30.0)                       # two turns about y
    wrapped = (degrees + 180.0) % 360.0 - 180.0
    clip = through_file(tmp_path, one_joint(['Yrotation']), wrapped[:, None], frame_time=0.1)
    mapping = load_retarget_map(write_map(tmp_path, {
        'rate_hz': 10.0, 'joints': {'q': {'bvh_joint': 'J', 'channel': 'Yrotation'}}}))
    samples, _ = run(retargeter_of(clip, mapping, robot={'joint_names': ['q']}),
                     clip.frames, 1)
    np.testing.assert_allclose(samples.positions[:, 0], np.radians(degrees), atol=1e-12)
    np.testing.assert_allclose(samples.velocities[:, 0], np.radians(300.0), atol=1e-9)


def test_a_map_that_does_not_fit_the_skeleton_is_refused_before_any_frame(tmp_path):
    clip = through_file(tmp_path, one_joint(['Yrotation']), [[0.0]], frame_time=0.1)
    mapping = load_retarget_map(write_map(tmp_path, {
        'rate_hz': 10.0, 'joints': {'q': {'bvh_joint': 'Elbow', 'axis': 'y'}}}))
    with pytest.raises(RetargetError, match="joints.q: BVH joint 'Elbow' is not in"):
        retargeter_of(clip, mapping, robot={'joint_names': ['q']})


# -- following a file being written ---------------------------------------------------------
def split(path: Path) -> tuple[str, list[str]]:
    """A BVH file as its header (``Frames: 0``, as a live writer has it) and frame lines."""
    lines = path.read_text().splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if line.startswith('Frame Time')) + 1
    header = ''.join(lines[:end]).replace(f'Frames: {len(lines) - end}', 'Frames: 0')
    return header, lines[end:]


def test_a_follower_reads_the_header_then_whole_lines_as_they_are_appended(tmp_path, wave):
    clip, _ = wave
    header, frames = split(Path(clip.source))
    live = tmp_path / 'live.bvh'
    follower = BvhFollower(live)
    assert follower.poll().shape[0] == 0 and not follower.exists        # not there yet
    live.write_text(header[:len(header) // 2])
    assert follower.poll().shape[0] == 0 and follower.header is None
    with live.open('a') as stream:
        stream.write(header[len(header) // 2:] + ''.join(frames[:3]) + frames[3][:10])
    got = [follower.poll()]
    assert follower.header.frame_count == 0 and got[0].shape == (3, clip.frames.shape[1])
    with live.open('a') as stream:
        stream.write(frames[3][10:] + ''.join(frames[4:-1]) + frames[-1].rstrip('\n'))
    got.append(follower.poll())
    assert len(got[-1]) == clip.num_frames - 4                  # the unterminated line waits
    got.append(follower.close())                                # the writer is done
    assert len(got[-1]) == 1
    np.testing.assert_allclose(np.vstack(got), clip.frames, atol=1e-6)


def test_a_follower_names_file_and_line_of_a_bad_frame_after_the_good_ones(tmp_path, wave):
    clip, _ = wave
    header, frames = split(Path(clip.source))
    live = tmp_path / 'live.bvh'
    live.write_text(header + ''.join(frames[:2]) + '1 2 3\n' + frames[2])
    follower = BvhFollower(live)
    assert len(follower.poll()) == 2
    bad_line = header.count('\n') + 3
    with pytest.raises(BvhError, match=rf'live\.bvh:{bad_line}: frame 3 has 3 values'):
        follower.poll()


def test_a_follower_refuses_a_file_that_shrinks_or_never_completes_its_header(tmp_path, wave):
    clip, _ = wave
    header, frames = split(Path(clip.source))
    live = tmp_path / 'live.bvh'
    live.write_text(header + frames[0])
    follower = BvhFollower(live)
    assert len(follower.poll()) == 1
    live.write_text(header)
    with pytest.raises(BvhError, match='shrank'):
        follower.poll()
    partial = tmp_path / 'partial.bvh'
    partial.write_text(header.split('MOTION')[0] + 'MOTION\nFrames: 0\n')
    follower = BvhFollower(partial)
    assert len(follower.poll()) == 0
    with pytest.raises(BvhError, match=r"partial\.bvh:\d+: expected 'Frame Time:'"):
        follower.close()


def test_a_clip_source_follows_until_no_frame_comes_for_the_timeout(tmp_path, wave):
    clip, mapping = wave
    header, frames = split(Path(clip.source))
    live = tmp_path / 'live.bvh'
    now = [0.0]
    source = ClipSource(live, map_values(mapping), follow=True, follow_timeout_s=1.0,
                        clock=lambda: now[0])
    assert source.poll() is None and not source.done
    live.write_text(header + ''.join(frames[:10]))
    now[0] = 0.9
    assert len(source.poll()) == 9 and source.info()['frames'] == 10
    now[0] = 1.8                                                # 0.9 s since the last frame
    assert source.poll() is None and not source.done
    now[0] = 1.95
    last = source.poll()
    assert source.done and len(last) == 1 and last.first == 9
    info = source.info()
    assert info['complete'] and info['frames'] == 10 and info['file_sha256']
    assert info['map_sha256'] == mapping.sha256 and info['frame_rate_hz'] == pytest.approx(60)

    never = ClipSource(tmp_path / 'never.bvh', map_values(mapping), follow=True,
                       follow_timeout_s=0.5,
                       clock=lambda: now[0])
    now[0] += 0.6
    with pytest.raises(BvhError, match=r'never\.bvh: no such file after 0\.5 s'):
        never.poll()


def test_a_whole_clip_source_gives_every_sample_at_once(wave):
    clip, mapping = wave
    source = ClipSource(clip.source, map_values(mapping))
    assert source.info()['frames'] == 0 and not source.done
    samples = source.poll()
    assert source.done and len(samples) == clip.num_frames and source.poll() is None
    assert source.info()['file_sha256'] == clip.sha256
