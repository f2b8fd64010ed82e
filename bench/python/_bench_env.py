"""Shared start-up for the peer benchmarks: run inside a virtual environment under target/bench-venv,
creating it and pip-installing the peer package there when missing, then re-executing the script with it."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / "target" / "bench-venv"


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(requirements: list[str], modules: list[str]) -> None:
    """Re-executes the calling script in target/bench-venv with `requirements` installed.

    `modules` are the import names checked to decide whether an install is needed."""
    python = _venv_python()
    inside = Path(sys.prefix).resolve() == VENV.resolve()
    if inside:
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if not missing:
            return
        print(f"installing {' '.join(requirements)} into {VENV}", file=sys.stderr)
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements],
            stdout=sys.stderr,
        )
        if result.returncode != 0:
            sys.exit(f"pip could not install {' '.join(requirements)}")
        return
    if not python.exists():
        print(f"creating virtual environment {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, stdout=sys.stderr)
    os.execv(str(python), [str(python), *sys.argv])
