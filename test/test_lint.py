"""flake8 (pycodestyle + pyflakes) and pep257 docstrings, as ament_flake8/ament_pep257."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_flake8_and_pep257_clean():
    pytest.importorskip("flake8", reason="flake8 is a test dependency (pip install -e .[test])")
    pytest.importorskip("flake8_docstrings", reason="flake8-docstrings checks pep257")
    targets = ["dice_seg_ros", "test", "benchmarks", "launch", "setup.py"]
    result = subprocess.run(
        [sys.executable, "-m", "flake8", *[t for t in targets if (ROOT / t).exists()]],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"flake8 found problems:\n{result.stdout}{result.stderr}"
