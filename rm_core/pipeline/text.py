"""The text track (paper Tables 3-4), part 1: backbones, data stages and the top-k probe.

Stages (one function each; the rules in workflow/rules/text.smk call them through ``rm-core``):

    make_data   -> train_pairs.parquet + one Parquet per benchmark + tasks.json (eval inputs)
    prepare_base (text_train.py) -> models/base/model.json (mini: pre-trained here; paper: the checkpoint)
    probe       -> probe/topk.parquet: the frozen base's top-k per target position, once per sample
    train (text_train.py)        -> models/{sft,rm}_s<seed>/model.json
    evaluate (text_eval.py)      -> eval/<model>.parquet (lm-eval, per sample) + scaling/trajectories
    report (text_report.py)      -> Table 3, Table 4, figures

Both scales run the same functions; the config section ``text`` differs in values only
(``backbone.kind`` small|llada, ``data.kind`` mini|benchmarks, sizes and budgets).

A *model reference* is a ``model.json`` file in a model folder: ``{"kind": "small"|"llada",
"path": <weights dir>, "fingerprint": <str>}`` (a relative path is relative to the json's
folder). The paper's base is the published checkpoint, referenced where it lies.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..io import read_parquet, write_json, write_parquet, write_text

log = logging.getLogger(__name__)

PAIRS_SCHEMA = """id: str, the benchmark's own id of the training example (task-prefixed at the mini scale)
task: str, mini: math|code|mc; paper: math|mbpp|arc
prompt: str, the raw prompt (the chat template, if any, is applied when encoding)
response: str, the training target (SFT target; RM's clean sequence x*)"""

PROBE_SCHEMA = """id: str, training example (train_pairs.parquet id)
n_pos: int, answer positions probed (= layout gen_length: response + EOS fill)
k: int, top-k width
topk_ids: list<int32>, n_pos*k token ids, row-major: position j holds [j*k, (j+1)*k), by probability
topk_probs: list<float32>, their probabilities under the frozen model (softmax over V without MASK
  and the forbidden ids; not renormalised: the proposal removes the target and renormalises)
file metadata rm_core.probe_fingerprint: JSON of the checkpoint, data and probe settings"""

SPLIT_DOC = """MBPP split (JSON): {"seed", "train_frac", "train": [task ids], "test": [task ids]}"""

TASK_NAMES = {  # Table 3 row -> lm-eval task per data kind
    "mini": {"MATH500": "mini_math", "MBPP": "mini_code", "ARC-Challenge": "mini_mc"},
    "benchmarks": {"MATH500": "math500_rm", "MBPP": "mbpp_rm", "ARC-Challenge": "arc_challenge_rm"},
}


# ------------------------------------------------------------------------------ helpers


def file_digest(path: str | Path, full_limit: int = 2**30) -> str:
    """sha256 of a file's bytes, or of its name and size when larger than ``full_limit``."""
    path = Path(path)
    h = hashlib.sha256()
    size = path.stat().st_size
    if size > full_limit:
        h.update(f"{path.name}:{size}".encode())
    else:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def dir_digest(path: str | Path) -> str:
    """Digest of a checkpoint folder: config, index, tokenizer and weight files."""
    path = Path(path)
    names = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors"))
    h = hashlib.sha256()
    for name in names:
        if name in ("model.json", "run.json", "trainer_state.json"):
            continue
        h.update(f"{name}={file_digest(path / name)};".encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------ backbones


def write_model_ref(out: str | Path, kind: str, weights_dir: str | Path, extra: dict | None = None) -> dict:
    """Write ``model.json``; ``weights_dir`` is stored relative to it when inside its folder."""
    out = Path(out)
    weights_dir = Path(weights_dir)
    try:
        rel = str(weights_dir.resolve().relative_to(out.parent.resolve()))
    except ValueError:
        rel = str(weights_dir.resolve())
    ref = {"kind": kind, "path": rel, "fingerprint": dir_digest(weights_dir), **(extra or {})}
    write_json(ref, out)
    return ref


def read_model_ref(ref_path: str | Path) -> dict:
    ref_path = Path(ref_path)
    ref = json.loads(ref_path.read_text())
    p = Path(ref["path"])
    ref["dir"] = str(p if p.is_absolute() else (ref_path.parent / p))
    return ref


def torch_dtype(name: str | None):
    return {None: None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_backbone(ref_path: str | Path, backbone_cfg: dict, device: str | torch.device = "cpu"):
    """(model, tokenizer) of a model reference. LLaDA: offline, in ``backbone.dtype``."""
    ref = read_model_ref(ref_path)
    d = ref["dir"]
    if ref["kind"] == "small":
        from ..backbones.small_transformer import SmallTransformer
        from ..tasks.text.tokenizer import CharTokenizer

        return SmallTransformer.from_pretrained(d).to(device), CharTokenizer.load(d)
    if ref["kind"] == "llada":
        from ..backbones.llada import LLaDABackbone
        from ..backbones.llada_tokenizer import LLaDATokenizer

        dtype = torch_dtype(backbone_cfg["dtype"])
        return LLaDABackbone.from_pretrained(d, dtype=dtype, device=device), LLaDATokenizer.from_pretrained(d)
    raise ValueError(f"{ref_path}: unknown backbone kind {ref['kind']!r}")


def save_backbone(model, tok, out_dir: str | Path) -> None:
    """Weights + config + tokenizer in ``out_dir`` (the trainer already wrote the weights)."""
    out_dir = Path(out_dir)
    if hasattr(tok, "save_pretrained"):
        tok.save_pretrained(out_dir)
    else:
        tok.save(out_dir)


def backbone_kind(model) -> str:
    from ..backbones.small_transformer import SmallTransformer

    return "small" if isinstance(model, SmallTransformer) else "llada"


# ------------------------------------------------------------------------------ encoding


def prompt_formatter(tok, cfg: dict):
    """The prompt string the model reads: the chat template for LLaDA, the raw prompt otherwise."""
    if cfg["layout"].get("chat_template") and hasattr(tok, "apply_chat_template"):
        return lambda p: tok.apply_chat_template([{"role": "user", "content": p}])
    return lambda p: p


def forbid_ids(tok) -> list[int]:
    """Ids never revealed in the answer region: PAD and SEP when they are not EOS."""
    out = []
    for name in ("pad_id", "sep_id"):
        i = getattr(tok, name, None)
        if i is not None and i != tok.eos_id and i != tok.mask_id:
            out.append(int(i))
    return out


def response_fits(tok, responses, gen_length: int) -> np.ndarray:
    """Which responses fit the answer region (response ids <= gen_length)."""
    return np.array([len(tok.encode(r)) <= gen_length for r in responses])


class PairEncoder:
    """Training/probe layout of (prompt, response) pairs, identical to evaluation's
    (``tasks/text/layout.batch_layout``): [PAD]* prompt ([SEP]) | response + EOS fill."""

    def __init__(self, tok, cfg: dict, pairs: pd.DataFrame):
        from ..tasks.text.layout import batch_layout

        self._layout = batch_layout
        self.tok = tok
        self.gen_length = int(cfg["layout"]["gen_length"])
        self.prompt_len = cfg["layout"].get("prompt_len")
        fmt = prompt_formatter(tok, cfg)
        self.prompts = [fmt(p) for p in pairs["prompt"]]
        self.responses = list(pairs["response"])
        self.ids = list(pairs["id"])
        self._cache = None
        if self.prompt_len is not None:  # fixed layout: encode everything once
            self._cache = batch_layout(tok, self.prompts, self.gen_length, responses=self.responses,
                                       prompt_len=self.prompt_len, truncate=True)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx, device=None) -> dict:
        idx = [int(i) for i in idx]
        if self._cache is not None:
            out = {k: self._cache[k][idx] for k in ("ids", "editable", "attention_mask")}
        else:
            out = self._layout(self.tok, [self.prompts[i] for i in idx], self.gen_length,
                               responses=[self.responses[i] for i in idx], truncate=True)
        return {k: v.to(device) if device is not None else v for k, v in out.items() if k != "truncated"}


# ------------------------------------------------------------------------------ data


def make_data(cfg: dict, seed: int, out_dir: str) -> dict:
    """Write the track's data under ``out_dir`` (``text.data.kind``: mini | benchmarks).

    Always: ``train_pairs.parquet`` (PAIRS_SCHEMA) and ``tasks.json`` ({"kind", "paths": inputs of
    ``lm_eval_tasks.build.build_task_dir``, "table3": {row: task}, "subjects": ...}).
    ``tasks.json`` also holds "val_paths": the same inputs for the validation split.
    mini: ``mini_<kind>_{train,val,test}.parquet`` (mini.SCHEMA_DOC). benchmarks:
    ``mbpp_split.json`` (the task ids of each side), ``mbpp_{train,val,test}.parquet``,
    ``math_val.jsonl``, ``arc_val.jsonl`` (validation, held out of the training sides),
    ``math500.parquet``, ``math_test.parquet`` (with subject_key, for Table 4),
    ``math_train.parquet`` (the MATH training source, ``data.math_train``), ``arc_{train,test}.parquet``.
    """
    data = cfg["data"]
    out = Path(out_dir)
    if data["kind"] == "mini":
        return _make_mini(cfg, seed, out)
    if data["kind"] == "benchmarks":
        return _make_benchmarks(cfg, seed, out)
    raise ValueError(f"text.data.kind must be mini|benchmarks, got {data['kind']!r}")


def _make_mini(cfg: dict, seed: int, out: Path) -> dict:
    from ..tasks.text.mini import MATH_SUBJECTS, SCHEMA_DOC, make_mini

    m = cfg["data"]["mini"]
    kw = {"math": {"n_ops": tuple(m["math_n_ops"]), "ops": m["math_ops"], "max_digit": int(m["math_max_digit"]),
                   "balanced": bool(m["math_balanced"])},
          "code": {"n_steps": tuple(m["code_steps"]), "ops": m.get("code_ops")},
          "mc": {"max_value": int(m["mc_max_value"]), "answer": m["mc_answer"]}}
    pairs, paths, val_paths = [], {}, {}
    for i, kind in enumerate(cfg["tasks"]):
        n_train = m["n_train"][kind] if isinstance(m["n_train"], dict) else m["n_train"]
        d = make_mini(kind, int(n_train), int(m["n_test"]), seed=seed + 101 * i, n_val=int(cfg["data"]["n_val"]),
                      **kw[kind])
        for side, df in d.items():
            write_parquet(df, out / f"mini_{kind}_{side}.parquet", SCHEMA_DOC[kind])
        tr = d["train"]
        ids = tr["unique_id"] if kind == "math" else tr["task_id"] if kind == "code" else tr["id"]
        pairs.append(pd.DataFrame({"id": [f"{kind}/{x}" for x in ids], "task": kind,
                                   "prompt": tr["prompt"], "response": tr["response"]}))
        paths[f"mini_{kind}"] = str((out / f"mini_{kind}_test.parquet").resolve())
        val_paths[f"mini_{kind}"] = str((out / f"mini_{kind}_val.parquet").resolve())
        log.info("mini %s: %d train, %d validation, %d test", kind, len(d["train"]), len(d["val"]), len(d["test"]))
    pairs = pd.concat(pairs, ignore_index=True)
    write_parquet(pairs, out / "train_pairs.parquet", PAIRS_SCHEMA)
    table3 = {row: t for row, t in TASK_NAMES["mini"].items() if t in {f"mini_{k}" for k in cfg["tasks"]}}
    info = {"kind": "mini", "paths": paths, "val_paths": val_paths, "table3": table3,
            "subjects": {"source": "mini_math", "names": MATH_SUBJECTS}}
    write_json(info, out / "tasks.json")
    return info


def _local(cfg: dict, key: str) -> str:
    files = cfg["data"]["files"]
    p = files.get(key)
    if not p or not Path(p).exists():
        raise FileNotFoundError(f"text.data.files.{key}: {p!r} does not exist (the benchmark files are in "
                                "../shared/data; see its README)")
    return str(Path(p).resolve())


def _make_benchmarks(cfg: dict, seed: int, out: Path) -> dict:
    """MBPP 30/70 split, MATH500, MATH test by subject, ARC-Challenge, and the training pairs.

    The validation split (``data.n_val`` problems per task, seeded by ``seed``) is held out of the
    training side, never the test side: of MBPP's 30 % (the split file's "val" ids), of the MATH
    training source (``math_val.jsonl``, MATH-500's format) and of ARC-Challenge-Train
    (``arc_val.jsonl``); held-out problems are not in the training pairs."""
    from ..tasks.text import benchmarks as B
    from ..tasks.text.prompts import sft_pairs

    data = cfg["data"]
    src = data.get("source", "local")
    if src == "hub":
        raw = _hub_files(cfg, out)
    elif src == "local":
        raw = {k: _local(cfg, k) for k in ("mbpp", "math500", "math_test", "arc_train", "arc_test")}
    else:
        raise ValueError(f"text.data.source must be local|hub, got {src!r}")
    mbpp = B.load_mbpp(raw["mbpp"])
    n_val = int(data["n_val"])
    split = B.mbpp_split(mbpp, float(data["mbpp_train_frac"]), seed=int(data["mbpp_split_seed"]))
    split["train"], split["val"] = B.holdout(split["train"], n_val, seed)
    write_json(split, out / "mbpp_split.json")
    for side in ("train", "val", "test"):
        write_parquet(mbpp[mbpp["task_id"].isin(split[side])].reset_index(drop=True), out / f"mbpp_{side}.parquet")
    m500 = B.load_math500(raw["math500"])
    write_parquet(m500, out / "math500.parquet")
    mtest = B.load_math_test(raw["math_test"], raw["math500"])
    write_parquet(mtest, out / "math_test.parquet")
    mtrain = B.load_math_train(data["math_train"], hub_name=data.get("hub", {}).get("math_train"),
                               hub_configs=list(B.HENDRYCKS_MATH_CONFIGS), math_test_path=raw["math_test"],
                               math500_path=raw["math500"])
    _, math_val = B.holdout(list(mtrain["id"]), n_val, seed)
    is_val = mtrain["id"].isin(math_val)
    mval, mtrain = mtrain[is_val].reset_index(drop=True), mtrain[~is_val].reset_index(drop=True)
    write_parquet(mtrain, out / "math_train.parquet")
    _write_jsonl([{"unique_id": r.id, "problem": r.problem, "solution": r.solution, "answer": r.answer,
                   "subject": r.subject, "level": int(r.level)} for r in mval.itertuples()], out / "math_val.jsonl")
    arc_tr, arc_te = B.load_arc(raw["arc_train"]), B.load_arc(raw["arc_test"])
    _, arc_val = B.holdout(list(arc_tr["id"]), n_val, seed)
    _write_jsonl([r for r in B.read_jsonl(raw["arc_train"]) if r["id"] in set(arc_val)], out / "arc_val.jsonl")
    arc_tr = arc_tr[~arc_tr["id"].isin(arc_val)].reset_index(drop=True)
    write_parquet(arc_tr, out / "arc_train.parquet")
    write_parquet(arc_te, out / "arc_test.parquet")
    frames = {"math": mtrain, "mbpp": mbpp[mbpp["task_id"].isin(split["train"])], "arc": arc_tr}
    limit = data.get("max_train_per_task")
    pairs = []
    for task in cfg["tasks"]:
        p = sft_pairs(task, frames[task].reset_index(drop=True))
        if limit:
            p = p.iloc[: int(limit)]
        p.insert(1, "task", task)
        p["id"] = task + "/" + p["id"]
        pairs.append(p)
    pairs = pd.concat(pairs, ignore_index=True)
    write_parquet(pairs, out / "train_pairs.parquet", PAIRS_SCHEMA)
    split_path = str((out / "mbpp_split.json").resolve())
    paths = {"math500": raw["math500"], "math_test": raw["math_test"], "mbpp": raw["mbpp"],
             "mbpp_split": split_path, "arc_test": raw["arc_test"]}
    val_paths = {"math500": str((out / "math_val.jsonl").resolve()), "mbpp": raw["mbpp"], "mbpp_split": split_path,
                 "arc_test": str((out / "arc_val.jsonl").resolve())}
    kinds = {"math": ("MATH500",), "mbpp": ("MBPP",), "arc": ("ARC-Challenge",)}
    rows = [r for t in cfg["tasks"] for r in kinds[t]]
    table3 = {r: TASK_NAMES["benchmarks"][r] for r in rows}
    info = {"kind": "benchmarks", "paths": paths, "val_paths": val_paths, "table3": table3,
            "subjects": {"source": "minerva_math_rm", "names": SUBJECT_NAMES} if "math" in cfg["tasks"] else None,
            "counts": {"train_pairs": {t: int((pairs["task"] == t).sum()) for t in cfg["tasks"]},
                       "mbpp_train": len(split["train"]), "mbpp_val": len(split["val"]),
                       "mbpp_test": len(split["test"]), "val_per_task": n_val}}
    write_json(info, out / "tasks.json")
    log.info("benchmarks: %s", info["counts"])
    return info


def _write_jsonl(rows: list[dict], path: Path) -> None:
    write_text("".join(json.dumps(r) + "\n" for r in rows), path)


SUBJECT_NAMES = {  # Minerva subject key -> Table 4 column
    "algebra": "Algebra", "counting_and_prob": "Counting & Probability", "geometry": "Geometry",
    "intermediate_algebra": "Intermediate Algebra", "num_theory": "Number Theory", "prealgebra": "Prealgebra",
    "precalc": "Precalculus",
}


def _hub_files(cfg: dict, out: Path) -> dict:
    """Paper scale through ``datasets`` (hub names in ``text.data.hub``): written as JSONL in the
    local files' formats, so the loaders and the lm-eval tasks read them the same way."""
    import datasets

    hub = cfg["data"]["hub"]
    raw_dir = out / "hub"
    raw_dir.mkdir(parents=True, exist_ok=True)

    def dump(rows, name):
        path = raw_dir / name
        with open(path, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        return str(path.resolve())

    mbpp = datasets.load_dataset(hub["mbpp"], "full")
    mbpp_rows = sorted((dict(r) for split in mbpp.values() for r in split), key=lambda r: r["task_id"])
    m500 = datasets.load_dataset(hub["math500"], split="test")
    mt = []
    for config in hub.get("math_test_configs") or []:
        for r in datasets.load_dataset(hub["math_test"], config, split="test"):
            mt.append({"question": r["problem"], "answer": r["solution"], "type": r["type"], "level": r["level"]})
    arc = datasets.load_dataset(hub["arc"], "ARC-Challenge")

    def arc_rows(ds):
        return [{"id": r["id"], "question": {"stem": r["question"], "choices": [
            {"text": t, "label": lab} for t, lab in zip(r["choices"]["text"], r["choices"]["label"])]},
            "answerKey": r["answerKey"]} for r in ds]

    return {"mbpp": dump(mbpp_rows, "mbpp.jsonl"), "math500": dump([dict(r) for r in m500], "math500.jsonl"),
            "math_test": dump(mt, "math_test.jsonl"), "arc_train": dump(arc_rows(arc["train"]), "arc_train.jsonl"),
            "arc_test": dump(arc_rows(arc["test"]), "arc_test.jsonl")}


# ------------------------------------------------------------------------------ probe


def probe_fingerprint(cfg: dict, base_ref: str, pairs_path: str) -> dict:
    ref = read_model_ref(base_ref)
    return {"model": ref["fingerprint"], "kind": ref["kind"], "pairs": file_digest(pairs_path),
            "probe": {k: cfg["probe"][k] for k in ("top_k", "input", "passes", "seed")}, "layout": cfg["layout"]}


def read_probe_fingerprint(path: str | Path) -> dict | None:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - a missing or unreadable cache is recomputed
        return None
    raw = meta.get(b"rm_core.probe_fingerprint")
    return json.loads(raw) if raw else None


@torch.no_grad()
def probe(cfg: dict, base_ref: str, pairs_path: str, out_path: str, device: str | None = None) -> bool:
    """Run the frozen base once per training example; cache the top-k at every answer position.

    ``probe.input`` (what the frozen model reads; "clean" is the paper's, the others ours):
    - "clean": the clean target x* (paper). A large MDM's outputs at visible positions are
      informative; a small one's are untrained there (never in its loss), close to noise;
    - "masked": the answer region all MASK (the model's first-step guesses, no answer context);
    - "partial": the answer positions split at random into ``probe.passes`` groups, each masked in
      turn (one forward per group, the rest of x* visible): a position's top-k is the frozen
      model's prediction of it from most of its context, like the errors of a partly decoded draft.
    Returns False (and does nothing) when ``out_path`` already holds a cache with the same
    fingerprint (checkpoint, data, settings).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..io import atomic_path

    fp = json.loads(json.dumps(probe_fingerprint(cfg, base_ref, pairs_path)))
    if Path(out_path).exists() and read_probe_fingerprint(out_path) == fp:
        log.info("probe cache %s matches the checkpoint and data: reused", out_path)
        return False
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = load_backbone(base_ref, cfg["backbone"], device)
    model.eval()
    pairs = read_parquet(pairs_path, ["id", "prompt", "response"])
    keep = response_fits(tok, pairs["response"], int(cfg["layout"]["gen_length"]))
    if not keep.all():
        log.warning("probe: %d of %d responses exceed gen_length and are left out", int((~keep).sum()), len(keep))
    pairs = pairs[keep].reset_index(drop=True)
    enc = PairEncoder(tok, cfg, pairs)
    k, mode, bs = int(cfg["probe"]["top_k"]), cfg["probe"]["input"], int(cfg["probe"]["batch_size"])
    if mode not in ("clean", "masked", "partial"):
        raise ValueError(f"text.probe.input must be clean|masked|partial, got {mode!r}")
    passes = int(cfg["probe"]["passes"])
    gen = torch.Generator().manual_seed(int(cfg["probe"]["seed"]))
    banned = [tok.mask_id, *forbid_ids(tok)]
    G = enc.gen_length
    ids_out, probs_out = [], []
    for s in range(0, len(enc), bs):
        b = enc.batch(range(s, min(s + bs, len(enc))), device)
        x = b["ids"]
        if mode == "partial":
            group = torch.randint(0, passes, (x.shape[0], G), generator=gen).to(device)
            logits = None
            for q in range(passes):
                m = torch.zeros_like(b["editable"])
                m[:, -G:] = group == q
                out = model.logits(model.embed(torch.where(m, torch.full_like(x, tok.mask_id), x)),
                                   attention_mask=b["attention_mask"])[:, -G:].float()
                logits = out if logits is None else torch.where((group == q)[..., None], out, logits)
        else:
            if mode == "masked":
                x = torch.where(b["editable"], torch.full_like(x, tok.mask_id), x)
            logits = model.logits(model.embed(x), attention_mask=b["attention_mask"])[:, -G:].float()
        logits[..., banned] = float("-inf")
        p, i = torch.softmax(logits, -1).topk(min(k, logits.shape[-1] - len(banned)), dim=-1)
        ids_out += [r.reshape(-1).to(torch.int32).cpu().numpy() for r in i]
        probs_out += [r.reshape(-1).cpu().numpy().astype(np.float32) for r in p]
        if (s // bs) % 20 == 0:
            log.info("probe %d / %d", s + len(b["ids"]), len(enc))
    kk = len(ids_out[0]) // G if ids_out else k
    table = pa.table({"id": pa.array(enc.ids, pa.string()), "n_pos": pa.array([G] * len(enc), pa.int32()),
                      "k": pa.array([kk] * len(enc), pa.int32()),
                      "topk_ids": pa.array(ids_out, pa.list_(pa.int32())),
                      "topk_probs": pa.array(probs_out, pa.list_(pa.float32()))})
    table = table.replace_schema_metadata({b"rm_core.schema": PROBE_SCHEMA.encode(),
                                           b"rm_core.probe_fingerprint": json.dumps(fp, sort_keys=True).encode()})
    with atomic_path(out_path) as tmp:
        pq.write_table(table, tmp)
    log.info("probe: %d examples x %d positions x top-%d (%s input) -> %s", len(enc), G, kk, mode, out_path)
    return True


def load_probe(path: str | Path, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, n_pos, k) int64 ids and float32 probs, in the order of ``ids``."""
    df = read_parquet(path, ["id", "n_pos", "k", "topk_ids", "topk_probs"])
    pos = {v: i for i, v in enumerate(df["id"])}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(f"{path}: no probe for {len(missing)} training examples, e.g. {missing[:3]}")
    G, k = int(df["n_pos"].iloc[0]), int(df["k"].iloc[0])
    order = [pos[i] for i in ids]
    tid = np.stack([df["topk_ids"].iloc[j] for j in order]).reshape(len(ids), G, k)
    tp = np.stack([df["topk_probs"].iloc[j] for j in order]).reshape(len(ids), G, k)
    return torch.from_numpy(tid.astype(np.int64)), torch.from_numpy(tp.astype(np.float32))
