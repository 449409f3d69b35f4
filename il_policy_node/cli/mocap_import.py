"""il-policy mocap import: BVH clips -> demonstration bags (one episode per clip)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from il_policy_node.cli.common import EXIT_FAILED, EXIT_OK, PROG, existing
from il_policy_node.mocap.topics import COMMAND_TOPIC, END_EFFECTOR_NAMESPACE, IMPORT_SESSION

HELP = 'BVH clips -> demonstration bags (one episode per clip)'
DESCRIPTION = '''\
Retarget BVH motion capture clips onto the robot's joints with a retarget map and write each
clip as one demonstration episode in the demo recorder's layout, which `dataset build` reads
like recorded ones (observation topic /mocap/joint_command, action source future_state).

Robot joints and limits: --model NAME (a sim model: its actuated joints and ranges), --urdf FILE
(the map's joints, limits from the URDF), or neither (the map's joints in the map's order,
limits only from its `limits:`). The map must name exactly the robot's joints; its `limits:`
narrow the robot's. Positions outside the limits are clamped: each clip reports which joints,
on how many samples and by how much (also in the bag's metadata).

Reads:  each BVH file (or folder searched for *.bvh) and the retarget map (YAML, see
        config/retarget/humanoid_upper.yaml).
Writes: OUT_DIR/SESSION/episode_NNNN/ (a rosbag2 bag, MCAP unless --storage sqlite3) per clip,
        and OUT_DIR/SESSION/episodes.jsonl. Topics: --command-topic (sensor_msgs/JointState:
        name, position, velocity at the map's rate_hz) and --end-effector-namespace/<name>
        (geometry_msgs/PointStamped per end effector of the map, metres, frame_id = its
        relative_to BVH joint). Sample i is stamped start + i / rate_hz (header and bag time);
        start is the file's modification time unless --start-time. Metadata (custom_data): the
        recorder's keys (task, operator, success, ...) and mocap_* keys: source file and sha256,
        map and its fingerprint, clip frame rate, frames, duration, target rate, robot, joints,
        topics, clamped joints.
A bad clip (malformed BVH, a joint the map needs missing, too short) is reported naming the
file and the line or joint, and skipped; the exit status is then 1 (--strict: stop there).
A clip already in the session (same file content and map) is skipped unless --reimport. An
interrupted import leaves no bag that looks complete.'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('clips', nargs='+', metavar='BVH',
                        help='BVH files, or folders searched for *.bvh')
    parser.add_argument('--retarget', required=True, metavar='MAP_YAML',
                        help='retarget map (YAML)')
    parser.add_argument('-o', '--output', required=True, metavar='OUT_DIR',
                        help="folder of sessions (the recorder's output_dir)")
    parser.add_argument('--session', default=IMPORT_SESSION, metavar='NAME',
                        help='session folder in OUT_DIR (default: %(default)s); an existing '
                             'session gets further episodes')
    parser.add_argument('--task', default='', metavar='NAME',
                        help="task label in every episode's metadata")
    parser.add_argument('--operator', default='', metavar='NAME',
                        help='operator (performer) name in the metadata')
    robot = parser.add_mutually_exclusive_group()
    robot.add_argument('--model', default=None, metavar='NAME',
                       help='sim robot model (il_policy_node/sim/models), e.g. humanoid_upper')
    robot.add_argument('--urdf', default=None, metavar='FILE',
                       help="the robot's URDF: limits of the map's joints")
    parser.add_argument('--command-topic', default=COMMAND_TOPIC, metavar='TOPIC',
                        help='JointState topic (default: %(default)s)')
    parser.add_argument('--end-effector-namespace', default=END_EFFECTOR_NAMESPACE,
                        metavar='NS', help='PointStamped topics NS/<name> (default: '
                                           '%(default)s)')
    parser.add_argument('--start-time', type=float, default=None, metavar='UNIX_S',
                        help='time of the first sample of every clip (default: the '
                             "file's modification time)")
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default=None,
                        help="bag storage (default: the recorder's, mcap)")
    parser.add_argument('--compression', choices=('none', 'zstd'), default=None,
                        help="bag compression (default: the recorder's, none)")
    parser.add_argument('--strict', action='store_true', help='stop at the first bad clip')
    parser.add_argument('--reimport', action='store_true',
                        help='import clips the session already holds again')


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from il_policy_node.mocap import importer
    from il_policy_node.mocap.retarget import load_retarget_map
    from il_policy_node.runtime.robot import RobotJoints
    map_path = existing(args.retarget, 'retarget map')
    robot = None
    if args.model is not None:
        from il_policy_node.sim.models import robot_joints
        robot = robot_joints(args.model)
    elif args.urdf is not None:
        urdf = existing(args.urdf, 'URDF file')
        robot = RobotJoints.from_urdf(urdf.read_text(encoding='utf-8'),
                                      tuple(load_retarget_map(map_path).joints),
                                      f'urdf {urdf.resolve()}')
    storage = {key: value for key, value in (('storage', args.storage),
                                             ('compression', args.compression)) if value}
    config = importer.ImportConfig(
        map_path=map_path, output_dir=Path(args.output), session=args.session, task=args.task,
        operator=args.operator, robot=robot, command_topic=args.command_topic,
        end_effector_namespace=args.end_effector_namespace, start_time_s=args.start_time,
        strict=args.strict, reimport=args.reimport, **storage)

    def show(result) -> None:
        if result.status == importer.FAILED:
            tqdm.write(f'{PROG}: error: {result.message}', file=sys.stderr)
        else:
            tqdm.write(result.describe())

    report = importer.import_clips(args.clips, config=config, progress=not args.quiet,
                                   on_result=show)
    failed = report.count(importer.FAILED)
    skipped = report.count(importer.SKIPPED)
    print(f'{report.count(importer.IMPORTED)} of {report.files} clip(s) imported into '
          f'{report.session_dir}' + (f', {skipped} already there' if skipped else '')
          + (f', {failed} failed' if failed else '')
          + (', stopped at the first failure (--strict)'
             if len(report.results) < report.files else ''))
    return EXIT_OK if report.ok else EXIT_FAILED
