"""The fetch rules' code without a network: the hub's listing and download replaced at their
boundary, a fake HTTP server answer for the URLs, split tars made here (rm_core/fetch.py)."""

import hashlib
import io
import json
import tarfile
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from huggingface_hub import errors as E

from rm_core import fetch as F

SHA = "a" * 40
FILES = {"config.json": b'{"d_model": 64}', "model-00001-of-00002.safetensors": b"x" * 1000,
         "model-00002-of-00002.safetensors": b"y" * 500, "README.md": b"card"}


def _sibling(name, data, lfs=True):
    return SimpleNamespace(rfilename=name, size=len(data),
                           lfs=SimpleNamespace(sha256=hashlib.sha256(data).hexdigest()) if lfs else None)


class FakeHub:
    """repo_info lists FILES at commit SHA; download writes the requested files (optionally wrong)."""

    def __init__(self, sha=SHA, corrupt=None, error=None):
        self.sha, self.corrupt, self.error = sha, corrupt, error
        self.info_calls, self.downloaded = 0, []

    def repo_info(self, repo_id, repo_type=None, revision=None, files_metadata=False):
        self.info_calls += 1
        if self.error:
            raise self.error
        assert files_metadata
        return SimpleNamespace(sha=self.sha, siblings=[_sibling(n, d, lfs=n.endswith(".safetensors"))
                                                       for n, d in FILES.items()])

    def download(self, repo_id, repo_type, revision, local_dir, allow_patterns):
        assert revision == self.sha
        for name in allow_patterns:
            data = FILES[name]
            if name == self.corrupt:
                data = b"z" * len(data)  # right size, wrong bytes
            p = Path(local_dir) / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            self.downloaded.append(name)


def test_hub_fetch_downloads_checks_and_marks(tmp_path):
    hub = FakeHub()
    rec = F.fetch_hub("org/model", tmp_path / "m", SHA, allow_patterns=["*.json", "*.safetensors"],
                      api=hub, download=hub.download)
    assert sorted(hub.downloaded) == sorted(n for n in FILES if n != "README.md")
    assert rec["revision"] == SHA and rec["pinned"] and rec["files"]["config.json"] == len(FILES["config.json"])
    assert json.loads((tmp_path / "m" / F.MARKER).read_text()) == rec
    # second run: the marker answers, no hub call at all
    quiet = FakeHub(error=AssertionError("the hub must not be asked"))
    assert F.fetch_hub("org/model", tmp_path / "m", SHA, api=quiet, download=quiet.download) == rec


def test_hub_fetch_keeps_a_copy_made_by_hand(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    for n, data in FILES.items():
        (d / n).write_bytes(data)
    hub = FakeHub()
    F.fetch_hub("org/model", d, SHA, api=hub, download=hub.download)
    assert hub.downloaded == [] and (d / F.MARKER).is_file()
    # a truncated file is downloaded again (resume), the others are kept
    (d / F.MARKER).unlink()
    (d / "model-00002-of-00002.safetensors").write_bytes(b"y" * 100)
    hub = FakeHub()
    F.fetch_hub("org/model", d, SHA, api=hub, download=hub.download)
    assert hub.downloaded == ["model-00002-of-00002.safetensors"]


def test_hub_fetch_rejects_wrong_bytes_and_unpinned_mismatch(tmp_path):
    hub = FakeHub(corrupt="model-00001-of-00002.safetensors")
    with pytest.raises(F.FetchError, match="model-00001-of-00002.safetensors: sha256 differs"):
        F.fetch_hub("org/model", tmp_path / "m", SHA, api=hub, download=hub.download)
    assert not (tmp_path / "m" / F.MARKER).exists()  # nothing marked as done
    hub = FakeHub(sha="b" * 40)
    with pytest.raises(F.FetchError, match="resolved revision"):
        F.fetch_hub("org/model", tmp_path / "m2", SHA, api=hub, download=hub.download)
    hub = FakeHub()  # unpinned: the resolved commit is recorded
    rec = F.fetch_hub("org/model", tmp_path / "m3", None, api=hub, download=hub.download)
    assert rec["revision"] == SHA and not rec["pinned"]


def _resp(status):
    return SimpleNamespace(status_code=status, headers={}, request=None, url="https://huggingface.co/x")


@pytest.mark.parametrize("error, message", [
    (E.GatedRepoError("gated", response=requests.Response()), "gated by a licence"),
    (E.RepositoryNotFoundError("404", response=requests.Response()), "not found"),
    (E.RevisionNotFoundError("rev", response=requests.Response()), "does not exist"),
    (requests.ConnectionError("Name or service not known"), "could not reach the Hugging Face Hub"),
    (E.OfflineModeIsEnabled("offline"), "could not reach the Hugging Face Hub"),
])
def test_hub_errors_say_what_to_do(tmp_path, error, message):
    hub = FakeHub(error=error)
    with pytest.raises(F.FetchError, match=message):
        F.fetch_hub("org/model", tmp_path / "m", SHA, api=hub, download=hub.download)


def test_hub_fetch_in_offline_mode_is_a_network_error(tmp_path, monkeypatch):
    """The real huggingface_hub client with HF_HUB_OFFLINE: no request leaves the machine."""
    import huggingface_hub.constants as C
    from huggingface_hub import HfApi

    monkeypatch.setattr(C, "HF_HUB_OFFLINE", True)
    with pytest.raises(F.FetchError, match="could not reach"):
        F.fetch_hub("GSAI-ML/LLaDA-8B-Instruct", tmp_path / "m", SHA, api=HfApi())


class FakeHTTP:
    """urlopen stand-in serving ``data``, honouring Range; optionally cut after ``cut`` bytes."""

    def __init__(self, data, cut=None):
        self.data, self.cut, self.ranges = data, cut, []

    def __call__(self, req, timeout=None):
        rng = req.get_header("Range")
        self.ranges.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = self.data[start:]
        if self.cut is not None:
            body, self.cut = body[: self.cut], None
        r = io.BytesIO(body)
        r.status = 206 if rng else 200
        r.__enter__ = lambda *a: r
        return _Ctx(r)


class _Ctx:
    def __init__(self, r):
        self.r = r

    def __enter__(self):
        return self.r

    def __exit__(self, *a):
        return False


def test_url_fetch_resumes_and_checks_sha256(tmp_path):
    data = bytes(range(256)) * 40
    sha = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "b" / "mbpp.jsonl"
    http = FakeHTTP(data, cut=1000)
    with pytest.raises(F.FetchError, match="does not match"):  # an interrupted transfer fails its check ...
        F.fetch_url("https://example/mbpp.jsonl", dest, sha, opener=http)
    # ... a real interruption leaves the part file: emulate it and resume with a Range request
    dest.with_name(dest.name + ".part").write_bytes(data[:1000])
    F.fetch_url("https://example/mbpp.jsonl", dest, sha, size=len(data), opener=http)
    assert dest.read_bytes() == data and http.ranges[-1] == "bytes=1000-"
    assert F.fetch_url("https://example/mbpp.jsonl", dest, sha, opener=None) == dest  # present: no request

    def offline(req, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(F.FetchError, match="no network"):
        F.fetch_url("https://example/other.jsonl", tmp_path / "other.jsonl", sha, opener=offline)


def test_split_tars_are_concatenated_and_unpacked_once(tmp_path):
    src = tmp_path / "src"
    (src / "results_add_part0" / "0001").mkdir(parents=True)
    (src / "results_add_part0" / "0001" / "original.png").write_bytes(b"P" * 3000)
    (src / "results_add_part0" / "0001" / "result.json").write_text('{"edit": "add"}')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(src / "results_add_part0", arcname="results_add_part0")
    blob = buf.getvalue()
    root = tmp_path / "ImgEdit" / "Singleturn"
    root.mkdir(parents=True)
    third = len(blob) // 3 + 1
    for i in range(3):  # split like `split -b`: NAME.tar.split.000, .001, .002
        (root / f"add_part0.tar.split.{i:03d}").write_bytes(blob[i * third:(i + 1) * third])
    out = tmp_path / "unpacked"
    rec = F.unpack_split_tars(tmp_path / "ImgEdit", out)
    assert (out / "results_add_part0" / "0001" / "original.png").read_bytes() == b"P" * 3000
    assert rec["tars"] == {"Singleturn/add_part0.tar": 4}  # 2 folders + 2 files
    (out / "results_add_part0" / "0001" / "original.png").unlink()
    F.unpack_split_tars(tmp_path / "ImgEdit", out)  # done tars are skipped
    assert not (out / "results_add_part0" / "0001" / "original.png").exists()
    (root / "add_part0.tar.split.001").unlink()
    with pytest.raises(F.FetchError, match="not consecutive"):
        F.unpack_split_tars(tmp_path / "ImgEdit", tmp_path / "u2")


def test_plan_paper_fetches_everything_and_mini_nothing():
    import yaml

    mini = yaml.safe_load(open("config.yaml"))
    paper = yaml.safe_load(open("config/paper.yaml"))
    assert F.plan(mini) == {}
    p = F.plan(paper)
    assert set(p) == {"llada", "dimoo", "imgedit", "math_train", "benchmarks"}
    assert p["llada"]["dest"] == paper["text"]["backbone"]["path"] and F.is_commit(p["llada"]["revision"])
    assert p["dimoo"]["dest"] == paper["image"]["model"]["checkpoint"]
    assert p["imgedit"]["dest"] == paper["image"]["data"]["imgedit"]["root"]
    assert p["math_train"]["dest"] == paper["text"]["data"]["hub"]["math_train"]
    assert set(p["benchmarks"]) == set(paper["text"]["data"]["files"])
    for f in p["benchmarks"].values():
        assert len(f["sha256"]) == 64 and f["url"].startswith("https://")


def test_fetched_math_train_folder_loads_offline(tmp_path):
    """The layout fetch_math_train writes (README configs + per-config parquet) loads as a local folder."""
    import pandas as pd

    from rm_core.tasks.text.benchmarks import load_math_train

    root = tmp_path / "hendrycks_math"
    for cfg in ("algebra", "geometry"):
        (root / cfg).mkdir(parents=True)
        for split, n in (("train", 3), ("test", 2)):
            pd.DataFrame({"problem": [f"{cfg} {split} {i}" for i in range(n)], "level": ["Level 2"] * n,
                          "type": [cfg.title()] * n, "solution": [f"so $\\boxed{{{i}}}$" for i in range(n)]}
                         ).to_parquet(root / cfg / f"{split}-00000-of-00001.parquet")
    cfgs = "".join(f"- config_name: {c}\n  data_files:\n  - split: train\n    path: {c}/train-*\n"
                   f"  - split: test\n    path: {c}/test-*\n" for c in ("algebra", "geometry"))
    (root / "README.md").write_text(f"---\nconfigs:\n{cfgs}---\n# MATH\n")
    df = load_math_train("hub", hub_name=str(root), hub_configs=["algebra", "geometry"])
    assert len(df) == 6 and df["problem"].str.contains("train").all()


def _dry(args, cwd):
    from workflow_copy import copy_workflow, run_snakemake

    copy_workflow(cwd)
    r = run_snakemake(["-n", *args], cwd=cwd)
    assert r.returncode == 0, r.out[-3000:]
    return r.out


def test_paper_dry_run_lists_the_fetch_jobs_first_and_mini_none(tmp_path):
    import re

    (tmp_path / "p").mkdir()
    out = _dry(["--profile", "slurm", "all"], tmp_path / "p")  # the cluster command verbatim: the paper config
    jobs = re.findall(r"^rule (\w+):", out, flags=re.M)
    fetch = {"fetch_llada", "fetch_dimoo", "fetch_imgedit", "fetch_imgedit_unpack", "fetch_math_train",
             "fetch_benchmarks"}
    assert fetch <= set(jobs)
    # every fetch job is listed before the job that reads what it fetched (the dry run lists jobs
    # wave by wave; the ImgEdit unpack waits for the ImgEdit download, so it is in the second wave)
    for fetched, consumer in (("fetch_benchmarks", "text_data"), ("fetch_math_train", "text_data"),
                              ("fetch_llada", "text_base"), ("fetch_imgedit", "fetch_imgedit_unpack"),
                              ("fetch_imgedit_unpack", "image_data"), ("fetch_dimoo", "image_vq")):
        assert jobs.index(fetched) < jobs.index(consumer), (fetched, consumer)
    assert {j for j in jobs[:6]} <= fetch | {"sudoku_data"}  # the first wave: downloads (and Sudoku's own data)
    (tmp_path / "m").mkdir()
    mini = _dry(["all"], tmp_path / "m")  # the default config: mini
    assert "fetch_" not in mini
