"""What the il-policy verbs share: exit codes, the help formatter, argument checks."""
from __future__ import annotations

import argparse
from pathlib import Path

from il_policy_node.errors import ConfigError

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


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=99)


def existing(path: str | Path, kind: str) -> Path:
    """``path`` as a Path; ConfigError when it does not exist."""
    result = Path(path)
    if not result.exists():
        raise ConfigError(f'{path}: no such {kind}')
    return result


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value
