"""Fetch the paper scale's weights and data (the fetch rules, workflow/rules/fetch.smk).

Each fetch is resumable and checked, and writes a marker file only once everything is in place:

- :func:`fetch_hub`: a Hugging Face repository (model or dataset) at a pinned commit into a
  local folder, through ``huggingface_hub.snapshot_download`` (it resumes partial files).
  Files already present with the hub's size (and, for LFS files, sha256) are not downloaded
  again, so a copy made by hand is only checked. After the download every expected file is
  checked the same way. A revision that is not a 40-hex commit is resolved once and recorded
  in the marker (with a warning to pin it).
- :func:`fetch_url`: one file over HTTP(S) (the benchmark files, from pinned GitHub commits),
  resumed with a Range request, checked against its sha256 before it is renamed into place.
- :func:`unpack_split_tars`: ImgEdit's ``NAME.tar.split.NNN`` parts, concatenated in order and
  extracted (tarfile's "data" filter: no absolute paths, no links out of the folder); one
  marker per tar, so an interrupted unpack resumes with the next tar.

A licence gate, a missing repository or revision, or no network each stop with a
:class:`FetchError` that says what to do. The marker (JSON: repository, commit, files and
sizes) is what the rules depend on.

    python -m rm_core.fetch hub --params JSON --marker PATH
    python -m rm_core.fetch url --params JSON
    python -m rm_core.fetch unpack --params JSON --marker PATH
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import re
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Optional

log = logging.getLogger(__name__)

MARKER = ".rm_fetch.json"
UNPACK_MARKER = ".rm_unpacked.json"
CHUNK = 8 << 20
COMMIT = re.compile(r"^[0-9a-f]{40}$")


class FetchError(RuntimeError):
    """A fetch that cannot complete; the message says why and what to do."""


def is_commit(revision: Optional[str]) -> bool:
    return bool(revision) and bool(COMMIT.match(str(revision)))


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def check_files(root: Path, expected: dict[str, tuple[int, Optional[str]]], hashes: bool = True) -> list[str]:
    """Problems with ``root``/name for each expected (size, sha256 or None); [] when all match."""
    bad = []
    for name, (size, sha) in sorted(expected.items()):
        p = root / name
        if not p.is_file():
            bad.append(f"{name}: missing")
        elif size is not None and p.stat().st_size != size:
            bad.append(f"{name}: {p.stat().st_size} bytes, expected {size}")
        elif hashes and sha and file_sha256(p) != sha:
            bad.append(f"{name}: sha256 differs from the hub's {sha}")
    return bad


# --------------------------------------------------------------------------- hub errors

def _network_hint(what: str, dest: Path) -> str:
    return (f"{what}: could not reach the Hugging Face Hub. The fetch rules are local rules (they run where "
            f"snakemake runs): start snakemake on a host with network access and without HF_HUB_OFFLINE=1, or put "
            f"the files into {dest} yourself (they are then only checked).")


def _translate(err: Exception, repo_id: str, revision: Optional[str], dest: Path) -> FetchError:
    """A FetchError for a huggingface_hub / network exception (None if it is none of those)."""
    from huggingface_hub import errors as E

    url = f"https://huggingface.co/{repo_id}"
    if isinstance(err, E.GatedRepoError):
        return FetchError(f"{repo_id} is gated by a licence: accept its terms at {url} with your account, then log in "
                          f"on this host (`huggingface-cli login`, or set HF_TOKEN) and rerun.")
    if isinstance(err, E.RevisionNotFoundError):
        return FetchError(f"{repo_id}: revision {revision!r} does not exist; fix the revision key in the config.")
    if isinstance(err, E.RepositoryNotFoundError):
        return FetchError(f"{repo_id}: repository not found, or private and this host is not logged in "
                          f"(`huggingface-cli login` / HF_TOKEN); check {url}.")
    if isinstance(err, (E.OfflineModeIsEnabled, E.LocalEntryNotFoundError)):
        return FetchError(_network_hint(repo_id, dest))
    try:
        import requests
        if isinstance(err, (requests.ConnectionError, requests.Timeout)):
            return FetchError(_network_hint(repo_id, dest))
    except ImportError:  # pragma: no cover
        pass
    if isinstance(err, (ConnectionError, TimeoutError, urllib.error.URLError)):
        return FetchError(_network_hint(repo_id, dest))
    if isinstance(err, E.HfHubHTTPError):
        return FetchError(f"{repo_id}: the hub answered with an error: {err}")
    return None


def _matches(name: str, patterns: Optional[Iterable[str]]) -> bool:
    return patterns is None or any(fnmatch.fnmatch(name, p) for p in patterns)


def fetch_hub(repo_id: str, dest: str | os.PathLike, revision: Optional[str] = None, repo_type: str = "model",
              allow_patterns: Optional[list[str]] = None, marker: Optional[str | os.PathLike] = None,
              api=None, download=None, hashes: bool = True) -> dict:
    """Bring ``repo_id`` at ``revision`` into ``dest`` (checked) and write the marker; returns its record.

    ``api`` (default ``huggingface_hub.HfApi()``) lists the files with their sizes and LFS sha256;
    ``download`` (default ``huggingface_hub.snapshot_download``) fetches the missing ones.
    """
    dest = Path(dest)
    marker = Path(marker) if marker else dest / MARKER
    if marker.is_file():
        rec = json.loads(marker.read_text())
        if rec.get("repo_id") == repo_id and (revision is None or rec.get("revision") == revision):
            log.info("%s: already fetched at %s (%s)", repo_id, rec.get("revision"), marker)
            return rec
    if api is None:
        from huggingface_hub import HfApi
        api = HfApi()
    if download is None:
        from huggingface_hub import snapshot_download as download
    try:
        info = api.repo_info(repo_id, repo_type=repo_type, revision=revision, files_metadata=True)
    except Exception as e:  # noqa: BLE001 - translated or re-raised
        raise (_translate(e, repo_id, revision, dest) or e) from e
    sha = info.sha
    if revision is not None and is_commit(revision) and sha != revision:
        raise FetchError(f"{repo_id}: the hub resolved revision {revision} to {sha}")
    if not is_commit(revision):
        log.warning("%s: revision %r is not pinned; using commit %s (put it in the config to pin it)",
                    repo_id, revision, sha)
    expected = {s.rfilename: (s.size, getattr(s.lfs, "sha256", None) if s.lfs else None)
                for s in info.siblings if _matches(s.rfilename, allow_patterns)}
    if not expected:
        raise FetchError(f"{repo_id}@{sha}: no file matches allow_patterns {allow_patterns}")
    missing = [n for n in expected if check_files(dest, {n: expected[n]}, hashes=False)]
    log.info("%s@%s: %d files, %d to download into %s", repo_id, sha[:10], len(expected), len(missing), dest)
    if missing:
        try:
            download(repo_id=repo_id, repo_type=repo_type, revision=sha, local_dir=str(dest), allow_patterns=missing)
        except Exception as e:  # noqa: BLE001
            raise (_translate(e, repo_id, sha, dest) or e) from e
    bad = check_files(dest, expected, hashes=hashes)
    if bad:
        raise FetchError(f"{repo_id}@{sha} in {dest}: " + "; ".join(bad[:10])
                         + " (delete the listed files and rerun to download them again)")
    rec = {"repo_id": repo_id, "repo_type": repo_type, "revision": sha, "pinned": is_commit(revision),
           "files": {n: expected[n][0] for n in sorted(expected)}}
    _write_json(marker, rec)
    return rec


# --------------------------------------------------------------------------- plain URLs

def fetch_url(url: str, dest: str | os.PathLike, sha256: str, size: Optional[int] = None, opener=None) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest``.part with a Range request) and check its sha256."""
    dest = Path(dest)
    if dest.is_file() and file_sha256(dest) == sha256:
        return dest
    opener = opener or urllib.request.urlopen
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with opener(req, timeout=60) as r:
            status = getattr(r, "status", 200)
            mode = "ab" if have and status == 206 else "wb"  # 200: the server ignored Range, start over
            with open(part, mode) as f:
                while chunk := r.read(CHUNK):
                    f.write(chunk)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part is already complete
            pass
        else:
            raise FetchError(f"{url}: HTTP {e.code} ({e.reason})") from e
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        raise FetchError(f"{url}: no network ({e}); the fetch rules run where snakemake runs: use a host with "
                         f"network access, or put the file at {dest} yourself") from e
    got = file_sha256(part)
    if got != sha256 or (size is not None and part.stat().st_size != size):
        part.unlink()
        raise FetchError(f"{url}: sha256 {got} (size {size}) does not match the pinned {sha256}; the partial "
                         f"file was removed, rerun to download it again")
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------- split tars

class _Concat:
    """A read-only stream over files one after the other (``cat part.000 part.001 ...``)."""

    def __init__(self, paths: list[Path]):
        self.paths, self.i, self.f = list(paths), 0, None

    def read(self, n: int = -1) -> bytes:
        out = b""
        while self.i < len(self.paths) and (n < 0 or len(out) < n):
            if self.f is None:
                self.f = open(self.paths[self.i], "rb")
            chunk = self.f.read(-1 if n < 0 else n - len(out))
            if not chunk:
                self.f.close()
                self.f, self.i = None, self.i + 1
                continue
            out += chunk
        return out

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def split_tar_groups(root: str | os.PathLike, pattern: str = "**/*.tar.split.*") -> dict[str, list[Path]]:
    """{tar name: its parts in order} for the ``NAME.tar.split.NNN`` files under ``root``."""
    groups: dict[str, list[Path]] = {}
    for p in sorted(Path(root).glob(pattern)):
        m = re.match(r"^(.*\.tar)\.split\.(\d+)$", p.name)
        if m and p.is_file():
            groups.setdefault(str(p.relative_to(root).parent / m.group(1)), []).append(p)
    for name, parts in groups.items():
        parts.sort(key=lambda q: int(q.name.rsplit(".", 1)[1]))
        nums = [int(q.name.rsplit(".", 1)[1]) for q in parts]
        if nums != list(range(nums[0], nums[0] + len(nums))):
            raise FetchError(f"{name}: split parts are not consecutive: {nums}")
    return groups


def unpack_split_tars(root: str | os.PathLike, out_dir: str | os.PathLike, pattern: str = "**/*.tar.split.*",
                      marker: Optional[str | os.PathLike] = None) -> dict:
    """Concatenate and extract every split tar under ``root`` into ``out_dir``; returns the record."""
    out_dir = Path(out_dir)
    groups = split_tar_groups(root, pattern)
    if not groups:
        raise FetchError(f"{root}: no split tars matching {pattern!r}")
    done_dir = out_dir / ".rm_unpacked"
    done_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, parts in sorted(groups.items()):
        done = done_dir / (name.replace("/", "__") + ".json")
        if done.is_file():
            counts[name] = json.loads(done.read_text())["members"]
            continue
        log.info("unpacking %s (%d parts) into %s", name, len(parts), out_dir)
        stream = _Concat(parts)
        n = 0
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tf:
                for member in tf:
                    tf.extract(member, out_dir, filter="data")
                    n += 1
        except tarfile.TarError as e:
            raise FetchError(f"{name}: the concatenated parts are not a valid tar ({e}); "
                             f"re-fetch the parts {[p.name for p in parts]}") from e
        finally:
            stream.close()
        _write_json(done, {"tar": name, "parts": [p.name for p in parts], "members": n})
        counts[name] = n
    rec = {"root": str(root), "tars": counts}
    _write_json(Path(marker) if marker else out_dir / UNPACK_MARKER, rec)
    return rec


# --------------------------------------------------------------------------- what a config fetches

def plan(config: dict) -> dict:
    """The fetch jobs of a (validated) config: {name: params}. Nothing at the mini scale.

    llada / dimoo: ``text.backbone.fetch`` / ``image.model.fetch`` into the backbone path;
    imgedit: ``image.data.imgedit.fetch`` into ``root``, then its split tars into ``unpack_root``;
    math_train: ``text.data.fetch.math_train`` (a dataset repository), read by the text data stage
    through ``text.data.hub.math_train``; benchmarks: ``text.data.fetch.files`` ({url, sha256} per
    key of ``text.data.files``)."""
    out: dict = {}
    text, image = config.get("text") or {}, config.get("image") or {}
    bb = text.get("backbone") or {}
    if bb.get("kind") == "llada" and bb.get("fetch"):
        out["llada"] = dict(bb["fetch"], dest=bb["path"])
    model = image.get("model") or {}
    if model.get("kind") == "dimoo" and model.get("fetch"):
        out["dimoo"] = dict(model["fetch"], dest=model["checkpoint"])
    data = image.get("data") or {}
    ie = data.get("imgedit") or {}
    if data.get("kind") == "imgedit" and ie.get("fetch"):
        out["imgedit"] = dict(ie["fetch"], repo_id=ie["hub_repo"], repo_type="dataset", dest=ie["root"],
                              unpack_root=ie["unpack_root"])
    td = text.get("data") or {}
    tf = td.get("fetch") or {}
    if td.get("kind") == "benchmarks":
        if tf.get("math_train") and td.get("math_train") == "hub":
            out["math_train"] = dict(tf["math_train"], repo_type="dataset", dest=td["hub"]["math_train"])
        files = {k: dict(v, dest=td["files"][k]) for k, v in (tf.get("files") or {}).items()}
        if files:
            out["benchmarks"] = files
    return out


def marker_path(dest: str, name: str = MARKER) -> str:
    return os.path.join(os.path.normpath(dest), name)


def fetch_stage(cfg: dict, kind: str, marker: str | None = None) -> None:
    """The fetch rules' stage (``rm-core fetch``): ``kind`` hub (a repository at a pinned commit),
    url (pinned files with sha256) or unpack (ImgEdit's split tars); ``cfg`` is the rule's entry of
    :func:`plan`; ``marker`` the file written once the fetch is complete and checked."""
    p = cfg
    if kind == "hub":
        fetch_hub(p["repo_id"], p["dest"], p.get("revision"), p.get("repo_type", "model"),
                  p.get("allow_patterns"), marker=marker)
    elif kind == "url":
        for key, f in sorted(p.items()):
            fetch_url(f["url"], f["dest"], f["sha256"], f.get("size"))
            log.info("%s: %s ok", key, f["dest"])
    elif kind == "unpack":
        unpack_split_tars(p["dest"], p["unpack_root"], p.get("tar_pattern", "**/*.tar.split.*"), marker=marker)
    else:
        raise ValueError(f"fetch kind must be hub|url|unpack, got {kind!r}")
