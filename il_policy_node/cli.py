"""il-policy: the offline pipeline on the command line: bags, dataset, train, export, eval.

The verbs only parse arguments and call functions in il_policy_node.core (as ros2cli's verbs
call its api modules); core modules are imported inside the verbs, so `il-policy --help` works
whatever is installed. No ROS is needed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

PROG = 'il-policy'

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = f'''exit status:
  {EXIT_OK}    success
  {EXIT_FAILED}    the command failed: bad or missing input, nothing usable (one line on stderr)
  {EXIT_USAGE}    bad command-line arguments
  {EXIT_UNAVAILABLE}    this step is not available in this installation (the message names the
       missing module or package)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)'''

DESCRIPTION = '''\
Behavioral cloning for ROS 2 robots, offline part: turn recorded demonstration bags into a
dataset, train a policy, export it as the policy.pt that policy_node runs, and evaluate it.

  il-policy dataset build bags/ --config config/dataset.yaml -o data/pick
  il-policy dataset info data/pick --plot plots/data
  il-policy train --dataset data/pick --config config/train.yaml -o runs/pick
  il-policy export runs/pick -o policy.pt
  il-policy eval --model policy.pt --dataset data/pick --plots plots/eval

Run `il-policy COMMAND --help` for what each step reads and writes. No ROS installation is
needed. Set IL_POLICY_DEBUG=1 (or give --debug) to see tracebacks.'''

_log = logging.getLogger('il_policy_node.cli')


class CliError(Exception):
    """A failure to report as one line on stderr, with an exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def _core(module: str, what: str):
    """Import il_policy_node.core.<module>, or explain which step is unavailable."""
    import importlib

    name = f'il_policy_node.core.{module}'
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise CliError(f'{what} is not available in this installation '
                           f'({name} is missing)', EXIT_UNAVAILABLE) from None
        raise CliError(f'{what} needs the Python package {exc.name!r}, which is not installed',
                       EXIT_UNAVAILABLE) from None


def _function(module: str, function: str, what: str) -> Callable:
    found = getattr(_core(module, what), function, None)
    if found is None:
        raise CliError(f'{what} is not available in this installation '
                       f'(il_policy_node.core.{module} has no {function}())', EXIT_UNAVAILABLE)
    return found


def _existing(path: str, kind: str) -> Path:
    result = Path(path)
    if not result.exists():
        raise CliError(f'{path}: no such {kind}')
    return result


# -- verbs --------------------------------------------------------------------------------------
def cmd_dataset_build(args: argparse.Namespace) -> int:
    dataset = _core('dataset', 'dataset build')
    for bag in args.bags:
        _existing(bag, 'bag or directory')
    _existing(args.config, 'config file')
    config = dataset.DatasetConfig.from_yaml(args.config)
    report = dataset.build_dataset(args.bags, config=config, output_dir=args.output,
                                   workers=args.workers, strict=args.strict,
                                   progress=not args.quiet, overwrite=args.overwrite)
    print(f'wrote {report.output_dir}: {report.episodes} episode(s), {report.rows} rows from '
          f'{report.bags} bag(s), {report.messages} messages in {report.seconds:.1f} s')
    for entry in report.skipped:
        print(f'skipped {entry["bag"]}: {entry["reason"]}')
    return EXIT_OK


def cmd_dataset_info(args: argparse.Namespace) -> int:
    dataset = _core('dataset', 'dataset info')
    for path in args.inputs:
        _existing(path, 'dataset, bag or directory')
    config = None
    if args.config:
        config = dataset.DatasetConfig.from_yaml(_existing(args.config, 'config file'))
    inputs = args.inputs[0] if len(args.inputs) == 1 else args.inputs
    info = dataset.dataset_info(inputs, plot=args.plot is not None, plot_dir=args.plot,
                                config=config)
    print(dataset.format_info(info))
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    training = _core('train', 'train')
    _existing(args.dataset, 'dataset directory')
    _existing(args.config, 'config file')
    config = training.TrainConfig.from_file(args.config)
    overrides = {key: value for key, value in (('seed', args.seed), ('device', args.device))
                 if value is not None}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    result = training.train(args.dataset, config=config, run_dir=args.output,
                            resume=args.resume, progress=not args.quiet)
    if os.environ.get('RANK', '0') != '0':  # under torchrun, rank 0 reports
        return EXIT_OK
    print(f'{result.run_dir}: {result.epochs} epochs, best epoch {result.best_epoch} '
          f'(val loss {result.best_val_loss:.6g})'
          + (', stopped early' if result.stopped_early else ''))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    evaluate = _core('evaluate', 'export')
    path = evaluate.export_run(args.run_dir, args.output, dataset_dir=args.dataset,
                               checkpoint=args.checkpoint)
    print(f'wrote {path} and {path.name}.sha256')
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    evaluate = _core('evaluate', 'eval')
    result = evaluate.evaluate_open_loop(
        args.model, args.dataset, plots_dir=args.plots, split=args.split,
        execution=args.execution, ensemble_decay=args.ensemble_decay)
    print(result.table())
    for path in result.plots:
        print(f'wrote {path}')
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + '\n')
        print(f'wrote {args.json}')
    return EXIT_OK


def cmd_mocap_import(args: argparse.Namespace) -> int:
    try:
        from tqdm import tqdm

        from il_policy_node.mocap import importer
    except ModuleNotFoundError as exc:
        raise CliError(f'mocap import needs the Python package {exc.name!r}, which is not '
                       'installed', EXIT_UNAVAILABLE) from None
    config = importer.ImportConfig(
        map_path=_existing(args.retarget, 'retarget map'), output_dir=Path(args.output),
        session=args.session, task=args.task, operator=args.operator, model=args.model,
        urdf=None if args.urdf is None else _existing(args.urdf, 'URDF file'),
        command_topic=args.command_topic, end_effector_namespace=args.end_effector_namespace,
        start_time_s=args.start_time, storage=args.storage, compression=args.compression,
        strict=args.strict, reimport=args.reimport)

    def show(result) -> None:
        if result.status == importer.FAILED:
            tqdm.write(f'{PROG}: error: {result.message}', file=sys.stderr)
        else:
            tqdm.write(result.describe())

    try:
        report = importer.import_clips(args.clips, config=config, progress=not args.quiet,
                                       on_result=show)
    except ModuleNotFoundError as exc:   # --model needs mujoco
        raise CliError(f'mocap import needs the Python package {exc.name!r}, which is not '
                       'installed', EXIT_UNAVAILABLE) from None
    failed = report.count(importer.FAILED)
    skipped = report.count(importer.SKIPPED)
    print(f'{report.count(importer.IMPORTED)} of {report.files} clip(s) imported into '
          f'{report.session_dir}' + (f', {skipped} already there' if skipped else '')
          + (f', {failed} failed' if failed else '')
          + (', stopped at the first failure (--strict)'
             if len(report.results) < report.files else ''))
    return EXIT_OK if report.ok else EXIT_FAILED


# -- parser -------------------------------------------------------------------------------------
class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=99)


def _add(subparsers, name: str, help_text: str, description: str,
         handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=description,
                                   epilog=EXIT_CODES, formatter_class=_Formatter)
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The il-policy argument parser (dataset build|info, train, export, eval, mocap import)."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EXIT_CODES,
                                     formatter_class=_Formatter)
    parser.add_argument('-v', '--verbose', action='store_true', help='log progress (INFO)')
    parser.add_argument('-q', '--quiet', action='store_true',
                        help='no progress bars, only results, warnings and errors')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of a failure (also IL_POLICY_DEBUG=1)')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)

    dataset = commands.add_parser(
        'dataset', help='build a dataset from bags, or describe one',
        description='Datasets: `dataset build` turns bags into a dataset directory, '
                    '`dataset info` describes a dataset or bags.',
        epilog=EXIT_CODES, formatter_class=_Formatter)
    dataset_verbs = dataset.add_subparsers(dest='verb', metavar='VERB', required=True)
    build = _add(
        dataset_verbs, 'build', 'bags -> dataset directory',
        '''\
Read rosbag2 bags (our recorder's episodes or plain `ros2 bag record` bags: MCAP or sqlite3,
zstd-compressed or not, split or not), align observations and actions on a grid at the control
rate, split episodes into train/validation by seed and compute normalization statistics over
the train split.

Reads:  each BAG_OR_DIR (a bag directory with metadata.yaml, or a folder of bags) and the
        dataset config (YAML, see config/dataset.yaml: topics, joints, fields, action source,
        rate, timestamps, gap tolerance, validation fraction, seed).
Writes: DATASET_DIR/manifest.json and DATASET_DIR/data.npz, atomically (never half a
        dataset). A bad bag is reported by name with the reason and skipped; the build fails
        only when nothing usable remains, or on any bad bag with --strict.''',
        cmd_dataset_build)
    build.add_argument('bags', nargs='+', metavar='BAG_OR_DIR', help='bags or folders of bags')
    build.add_argument('--config', required=True, metavar='DATASET_YAML',
                       help='dataset config (YAML)')
    build.add_argument('-o', '--output', required=True, metavar='DATASET_DIR',
                       help='dataset directory to write')
    build.add_argument('--workers', type=_positive_int, default=1, metavar='N',
                       help='worker processes reading bags in parallel (default: 1)')
    build.add_argument('--strict', action='store_true',
                       help='fail (exit 1, nothing written) if any bag is bad')
    build.add_argument('--overwrite', action='store_true',
                       help='replace DATASET_DIR if it exists (otherwise an error)')

    info = _add(
        dataset_verbs, 'info', 'describe a dataset or bags',
        '''\
Describe a dataset directory or bags: episodes, durations, rates, gaps, joint ranges.

Reads:  DATASET_OR_BAGS (a dataset directory, bags, or folders of bags; bags are read with
        --config's topic, timestamps and gap tolerance, or the defaults).
Writes: nothing, unless --plot DIR is given: PNG plots per joint into DIR.''',
        cmd_dataset_info)
    info.add_argument('inputs', nargs='+', metavar='DATASET_OR_BAGS',
                      help='a dataset directory, or bags / folders of bags')
    info.add_argument('--plot', metavar='DIR', help='write PNG plots per joint into DIR')
    info.add_argument('--config', metavar='DATASET_YAML',
                      help='dataset config used to read bags (topic, timestamps, gap tolerance)')

    train = _add(
        commands, 'train', 'dataset -> run directory (behavioral cloning)',
        '''\
Train the BC policy (default: the seed MLP obs -> 256 -> 256 -> action, Adam, MSE on
normalized data) with early stopping on the validation loss.

Reads:  the dataset directory and the train config (YAML, see config/train.yaml: model,
        history, horizon, optimizer, schedule, batch size, epochs).
Writes: RUN_DIR/config.json, metrics.csv, tensorboard/, loss.png and checkpoints/last.pt,
        best.pt. --resume continues from checkpoints/last.pt. For several GPUs or machines
        run the same command under torchrun.''',
        cmd_train)
    train.add_argument('--dataset', required=True, metavar='DIR', help='dataset directory')
    train.add_argument('--config', required=True, metavar='TRAIN_YAML',
                       help='training config (YAML)')
    train.add_argument('-o', '--output', required=True, metavar='RUN_DIR',
                       help='run directory to write')
    train.add_argument('--seed', type=int, default=None, metavar='N',
                       help="random seed (default: the config's); same seed, same result")
    train.add_argument('--resume', action='store_true',
                       help='continue the run in RUN_DIR from its last checkpoint')
    train.add_argument('--device', default=None, choices=('cpu', 'cuda', 'auto'),
                       help="torch device (default: the config's; auto = cuda when available)")

    export = _add(
        commands, 'export', 'run directory -> policy.pt for policy_node',
        '''\
Export a run's checkpoint (the best by validation loss unless --checkpoint last) as the
policy artifact that policy_node loads: TorchScript with the dataset's normalization inside
and metadata (joints, observation spec, history, action horizon, control rate, dataset
fingerprint). Before writing, the exported module is compared
with the eager model on validation observations (max abs diff <= 1e-5).

Reads:  RUN_DIR/config.json, RUN_DIR/checkpoints/best.pt (or last.pt), the run's dataset
        (manifest.json, data.npz; --dataset when it has moved).
Writes: the policy file and its sha256 sidecar (<policy>.sha256), atomically.''',
        cmd_export)
    export.add_argument('run_dir', metavar='RUN_DIR', help='run directory written by train')
    export.add_argument('-o', '--output', required=True, metavar='POLICY_PT',
                        help='policy file to write (e.g. policy.pt)')
    export.add_argument('--dataset', default=None, metavar='DIR',
                        help="the run's dataset directory, if not where config.json says")
    export.add_argument('--checkpoint', choices=('best', 'last'), default='best',
                        help='best: lowest validation loss; last: the final epoch (when the '
                             'validation loss does not predict closed-loop behaviour)')

    evaluate = _add(
        commands, 'eval', 'open-loop evaluation of policy.pt on a dataset',
        '''\
Run the exported policy open loop on the validation episodes, as policy_node would (same
observation history padding, same action-chunk execution), feeding it the recorded
observations, and compare its targets with the demonstrated actions.

Reads:  the policy file (checked against its .sha256) and the dataset directory.
Writes: a table of per-joint RMSE (radians and degrees) on stdout; with --plots DIR, PNG plots
        of predicted vs demonstrated trajectories (one per episode) and rmse.png; with
        --json FILE, the figures as JSON.''',
        cmd_eval)
    evaluate.add_argument('--model', required=True, metavar='POLICY_PT', help='policy file')
    evaluate.add_argument('--dataset', required=True, metavar='DIR', help='dataset directory')
    evaluate.add_argument('--plots', default=None, metavar='DIR', help='write PNG plots here')
    evaluate.add_argument('--json', default=None, metavar='FILE', help='write results as JSON')
    evaluate.add_argument('--split', default='val', choices=('val', 'train'),
                          help='which episodes (default: val)')
    evaluate.add_argument('--execution', default='ensemble', choices=('ensemble', 'chunk'),
                          help="action-chunk execution, as policy_node's chunk_execution "
                               '(default: ensemble)')
    evaluate.add_argument('--ensemble-decay', type=float, default=0.01, metavar='K',
                          help='temporal ensembling weight decay (default: 0.01)')

    mocap = commands.add_parser(
        'mocap', help='import motion capture clips as demonstration bags',
        description='Motion capture: `mocap import` retargets BVH clips onto the robot and '
                    'writes them as demonstration bags.',
        epilog=EXIT_CODES, formatter_class=_Formatter)
    mocap_verbs = mocap.add_subparsers(dest='verb', metavar='VERB', required=True)
    mocap_import = _add(
        mocap_verbs, 'import', 'BVH clips -> demonstration bags (one episode per clip)',
        '''\
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
interrupted import leaves no bag that looks complete.''',
        cmd_mocap_import)
    mocap_import.add_argument('clips', nargs='+', metavar='BVH',
                              help='BVH files, or folders searched for *.bvh')
    mocap_import.add_argument('--retarget', required=True, metavar='MAP_YAML',
                              help='retarget map (YAML)')
    mocap_import.add_argument('-o', '--output', required=True, metavar='OUT_DIR',
                              help="folder of sessions (the recorder's output_dir)")
    mocap_import.add_argument('--session', default='mocap', metavar='NAME',
                              help='session folder in OUT_DIR (default: mocap); an existing '
                                   'session gets further episodes')
    mocap_import.add_argument('--task', default='', metavar='NAME',
                              help="task label in every episode's metadata")
    mocap_import.add_argument('--operator', default='', metavar='NAME',
                              help='operator (performer) name in the metadata')
    robot = mocap_import.add_mutually_exclusive_group()
    robot.add_argument('--model', default=None, metavar='NAME',
                       help='sim robot model (il_policy_node/sim/models), e.g. humanoid_upper')
    robot.add_argument('--urdf', default=None, metavar='FILE',
                       help="the robot's URDF: limits of the map's joints")
    mocap_import.add_argument('--command-topic', default='/mocap/joint_command',
                              metavar='TOPIC', help='JointState topic (default: %(default)s)')
    mocap_import.add_argument('--end-effector-namespace', default='/mocap/end_effectors',
                              metavar='NS', help='PointStamped topics NS/<name> (default: '
                                                 '%(default)s)')
    mocap_import.add_argument('--start-time', type=float, default=None, metavar='UNIX_S',
                              help='time of the first sample of every clip (default: the '
                                   "file's modification time)")
    mocap_import.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                              help='bag storage (default: mcap)')
    mocap_import.add_argument('--compression', choices=('none', 'zstd'), default='none',
                              help='bag compression (default: none)')
    mocap_import.add_argument('--strict', action='store_true',
                              help='stop at the first bad clip')
    mocap_import.add_argument('--reimport', action='store_true',
                              help='import clips the session already holds again')
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def _is_user_error(exc: BaseException) -> bool:
    """Errors about the input (reported in one line), as opposed to bugs (a traceback)."""
    if isinstance(exc, (ValueError, OSError)):
        return True
    return type(exc).__module__.startswith('il_policy_node.')


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the il-policy console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get('IL_POLICY_DEBUG', '') not in ('', '0')
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s: %(message)s', stream=sys.stderr)
    try:
        return args.handler(args)
    except CliError as exc:
        if debug:
            raise
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug or not _is_user_error(exc):
            raise
        message = ' '.join(str(exc).split()) or type(exc).__name__
        print(f'{PROG}: error: {message}', file=sys.stderr)
        return EXIT_FAILED


if __name__ == '__main__':
    sys.exit(main())
