"""EpisodeMetadata: the one owner of an episode's custom_data keys and its episodes.jsonl line."""
import json

from il_policy_node.recording.metadata import (
    PARTIAL_EPISODE,
    EpisodeMetadata,
    MocapClip,
    is_closed_episode,
    partial_reason,
)

CLIP = MocapClip(
    source_file='/clips/wave.bvh', source_sha256='ab' * 32, clip='wave',
    clip_frame_rate_hz=60.0, clip_frames=121, clip_duration_s=2.0, retarget_map='/maps/h.yaml',
    retarget_map_sha256='cd' * 32, rate_hz=50.0, samples=101, start_time_ns=17, robot='map',
    joints=('a', 'b'), command_topic='/mocap/joint_command',
    end_effectors={'hand': {'topic': '/mocap/end_effectors/hand', 'frame_id': 'Hips'}},
    clamped={'a': {'frames': 3, 'worst_excess_rad': 0.25}})


def test_custom_data_is_strings_and_reads_back():
    metadata = EpisodeMetadata(task='wave', operator='ana', success=False, episode_index=4,
                               start_wall_time='2026-12-01T10:00:00+00:00', stop_reason='service',
                               lost_counts={'/js': 2}, recorder='test 1.0',
                               message_counts={'/js': 10}, mocap=CLIP)
    custom = metadata.to_custom_data()
    assert all(isinstance(v, str) for v in custom.values())
    assert custom['success'] == 'false' and custom['episode_index'] == '4'
    assert json.loads(custom['lost_counts']) == {'/js': 2}
    assert custom['mocap_joints'] == '["a", "b"]' and custom['mocap_rate_hz'] == '50'
    assert EpisodeMetadata.from_custom_data(custom) == metadata


def test_a_bag_without_our_metadata_has_unknown_values():
    metadata = EpisodeMetadata.from_custom_data(None)
    assert metadata.success is None and metadata.episode_index is None and not metadata.partial
    assert 'success' not in metadata.to_custom_data()
    bad = EpisodeMetadata.from_custom_data({'success': 'maybe', 'lost_counts': '[1',
                                            'episode_index': 'x'})
    assert (bad.success, bad.lost_counts, bad.episode_index) == (None, {}, None)


def test_the_index_entry_and_the_partial_flag():
    metadata = EpisodeMetadata(task='reach', success=True, episode_index=2, partial=True,
                               message_counts={'/js': 5}, mocap=CLIP)
    entry = metadata.index_entry('episode_0002', duration_s=1.23456, storage='mcap')
    assert entry['index'] == 2 and entry['path'] == 'episode_0002' and entry['partial']
    assert entry['duration_s'] == 1.235 and entry['message_counts'] == {'/js': 5}
    assert entry['mocap']['source_sha256'] == CLIP.source_sha256
    assert metadata.to_custom_data()['partial'] == 'true'


def test_the_marker_keeps_what_is_known_while_recording(tmp_path):
    started = EpisodeMetadata(task='wave', operator='ana', episode_index=3,
                              start_wall_time='2026-12-01T10:00:00+00:00', recorder='r')
    folder = tmp_path / 'episode_0003'
    folder.mkdir()
    (folder / 'RECORDING').write_text(started.to_marker())
    assert partial_reason(folder) == PARTIAL_EPISODE and not is_closed_episode(folder)
    assert EpisodeMetadata.from_marker(folder / 'RECORDING') == started
    (folder / 'RECORDING').write_text('an older marker: one line of text\n')
    assert EpisodeMetadata.from_marker(folder / 'RECORDING') == EpisodeMetadata()
    (folder / 'RECORDING').unlink()
    (folder / 'metadata.yaml').write_text('{}')
    assert partial_reason(folder) is None and is_closed_episode(folder)
