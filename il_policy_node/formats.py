"""File names, format versions and metadata keys of everything this package writes.

One place, so a reader and its writer can never disagree on a name.
"""
from __future__ import annotations

# -- the policy artifact (runtime/artifact.py) ----------------------------------------------
POLICY_FORMAT_VERSION = 1
POLICY_METADATA_FILE = 'metadata.json'          # inside the TorchScript archive
CHECKSUM_SUFFIX = '.sha256'                      # policy.pt.sha256, in sha256sum format
# keys of metadata.json; 'extra' holds what the runtime does not need (run, dataset, recipe)
POLICY_METADATA_KEYS = ('format_version', 'joint_names', 'observation', 'action_horizon',
                        'control_rate_hz', 'dataset_fingerprint', 'torch_version')

# -- the dataset directory (pipeline/dataset/format.py) -------------------------------------
DATASET_FORMAT_VERSION = 1
MANIFEST_FILE = 'manifest.json'
DATA_FILE = 'data.npz'
DATASET_ARRAYS = ('observations', 'actions', 'episode', 'time')
MANIFEST_KEYS = ('fingerprint', 'control_rate_hz', 'observation', 'action', 'stats',
                 'episodes')
SPLITS = ('train', 'val')

# -- the run directory (pipeline/training/run_dir.py) ---------------------------------------
CHECKPOINT_FORMAT_VERSION = 2                    # 1: before the policy processor (refused)
RUN_CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.csv'
LOSS_PLOT_FILE = 'loss.png'
TENSORBOARD_DIR = 'tensorboard'
CHECKPOINTS_DIR = 'checkpoints'
CHECKPOINT_FILES = {'best': 'best.pt', 'last': 'last.pt'}

# -- bags and recording sessions (recording/) -----------------------------------------------
BAG_METADATA_FILE = 'metadata.yaml'
BAG_VERSION = 9                                  # metadata.yaml version of Jazzy's rosbag2
BAG_STORAGE_SUFFIXES = ('.mcap', '.db3')
RECORDING_MARKER = 'RECORDING'                   # in an episode folder until its bag is closed
SESSION_INDEX_FILE = 'episodes.jsonl'
EPISODE_DIR_PATTERN = r'^episode_(\d{4,})$'
