"""Lint: ruff with the project's configuration (pyproject.toml [tool.ruff])."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINTED = ('il_policy_node', 'test', 'bench', 'launch', 'setup.py')


def _ruff() -> list[str]:
    if importlib.util.find_spec('ruff') is not None:
        return [sys.executable, '-m', 'ruff']
    executable = shutil.which('ruff')
    assert executable, 'ruff is not installed: pip install -r requirements/test.txt'
    return [executable]


def test_ruff_config_exists():
    text = (ROOT / 'pyproject.toml').read_text()
    assert '[tool.ruff]' in text and 'line-length = 99' in text


def test_ruff_check():
    # Only what exists and holds Python files: ruff reports an error for a missing path.
    paths = [name for name in LINTED if (ROOT / name).is_file()
             or any((ROOT / name).rglob('*.py'))]
    assert 'il_policy_node' in paths
    result = subprocess.run(
        [*_ruff(), 'check', '--no-cache', '--output-format=concise',
         '--config', str(ROOT / 'pyproject.toml'), *paths],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    report = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        pytest.fail(f'ruff check {" ".join(paths)}:\n{report}', pytrace=False)
