import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if "HF_HOME" not in os.environ:  # one scratch HF home per test session, removed at exit
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="hf_home_")
    atexit.register(shutil.rmtree, os.environ["HF_HOME"], True)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


@pytest.fixture
def workdir(tmp_path):
    """A copy of the workflow (not of results/) to run Snakemake in isolation."""
    from workflow_copy import copy_workflow

    return copy_workflow(tmp_path)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes minutes (end to end)")


@pytest.fixture
def shared_data():
    path = Path(os.environ.get("RM_SHARED_DATA", SHARED / "data"))
    if not path.exists():
        pytest.skip(f"benchmark files not found at {path}")
    return path
