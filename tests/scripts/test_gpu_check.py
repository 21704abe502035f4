"""scripts/gpu_check.py (what `make gpu-check` runs) on a machine without a GPU."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: make gpu-check runs the real thing")
def test_without_a_gpu_it_says_so_in_one_line_and_exits_2(tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out", str(report)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "GPU" in lines[0]
    assert not report.exists()  # nothing claims a check ran
