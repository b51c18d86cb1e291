"""The text track's corruption proposal (Appendix C): the frozen base's top-k at every answer
position, computed once per training example and cached as Parquet; with ``probe.draft_share``
> 0 (ours) also the frozen base's own draft of each training prompt (its low-confidence decoding
from an all-MASK answer), whose errors become wrong tokens (``trajectory.DraftProposal``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from ...io import read_parquet
from ...samplers import low_confidence_sample
from ...backbones.load import file_digest, load_reference, read_model_ref
from .model import PairEncoder, forbid_ids, response_fits

log = logging.getLogger(__name__)


PROBE_SCHEMA = """id: str, training example (train_pairs.parquet id)
n_pos: int, answer positions probed (= layout gen_length: response + EOS fill)
k: int, top-k width
topk_ids: list<int32>, n_pos*k token ids, row-major: position j holds [j*k, (j+1)*k), by probability
topk_probs: list<float32>, their probabilities under the frozen model (softmax over V without MASK
  and the forbidden ids; not renormalised: the proposal removes the target and renormalises)
draft_ids: list<int32>, n_pos ids: the frozen model's draft of the answer region (low-confidence
  sampler, probe.draft_steps steps, one block); only when probe.draft_share > 0
file metadata rm_core.probe_fingerprint: JSON of the checkpoint, data and probe settings"""


def probe_fingerprint(cfg: dict, base_ref: str, pairs_path: str) -> dict:
    ref = read_model_ref(base_ref)
    # the drafts (draft_share > 0) are part of the cache; the share itself only weighs them in training
    drafts = {"draft_steps": cfg["probe"]["draft_steps"]} if float(cfg["probe"]["draft_share"]) > 0 else {}
    return {"model": ref["fingerprint"], "kind": ref["kind"], "pairs": file_digest(pairs_path),
            "probe": {**{k: cfg["probe"][k] for k in ("top_k", "input", "passes", "seed")}, **drafts},
            "layout": cfg["layout"]}


def read_probe_fingerprint(path: str | Path) -> dict | None:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - a missing or unreadable cache is recomputed
        return None
    raw = meta.get(b"rm_core.probe_fingerprint")
    return json.loads(raw) if raw else None


@torch.no_grad()
def probe(cfg: dict, base: str, pairs: str, topk: str, device: str | None = None) -> bool:
    """Run the frozen base once per training example; cache the top-k at every answer position.

    ``probe.input`` (what the frozen model reads; "clean" is the paper's, the others ours):
    - "clean": the clean target x* (paper). A large MDM's outputs at visible positions are
      informative; a small one's are untrained there (never in its loss), close to noise;
    - "masked": the answer region all MASK (the model's first-step guesses, no answer context);
    - "partial": the answer positions split at random into ``probe.passes`` groups, each masked in
      turn (one forward per group, the rest of x* visible): a position's top-k is the frozen
      model's prediction of it from most of its context, like the errors of a partly decoded draft.
    Returns False (and does nothing) when ``topk`` already holds a cache with the same
    fingerprint (checkpoint, data, settings).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ...io import atomic_path

    fp = json.loads(json.dumps(probe_fingerprint(cfg, base, pairs)))
    if Path(topk).exists() and read_probe_fingerprint(topk) == fp:
        log.info("probe cache %s matches the checkpoint and data: reused", topk)
        return False
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = load_reference(base, cfg["backbone"]["dtype"], device)
    model.eval()
    frame = read_parquet(pairs, ["id", "prompt", "response"])
    keep = response_fits(tok, frame["response"], int(cfg["layout"]["gen_length"]))
    if not keep.all():
        log.warning("probe: %d of %d responses exceed gen_length and are left out", int((~keep).sum()), len(keep))
    enc = PairEncoder(tok, cfg, frame[keep].reset_index(drop=True))
    k, mode, bs = int(cfg["probe"]["top_k"]), cfg["probe"]["input"], int(cfg["probe"]["batch_size"])
    if mode not in ("clean", "masked", "partial"):
        raise ValueError(f"text.probe.input must be clean|masked|partial, got {mode!r}")
    passes = int(cfg["probe"]["passes"])
    gen = torch.Generator().manual_seed(int(cfg["probe"]["seed"]))
    banned = [tok.mask_id, *forbid_ids(tok)]
    G = enc.gen_length
    draft_steps = int(cfg["probe"]["draft_steps"]) if float(cfg["probe"]["draft_share"]) > 0 else 0
    ids_out, probs_out, drafts, errors = [], [], [], []
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
        if draft_steps:
            x0 = torch.where(b["editable"], torch.full_like(b["ids"], tok.mask_id), b["ids"])
            d = low_confidence_sample(model, x0, b["editable"], draft_steps, forbid_ids=forbid_ids(tok),
                                      attention_mask=b["attention_mask"])[:, -G:]
            drafts += [r.to(torch.int32).cpu().numpy() for r in d]
            errors.append((d != b["ids"][:, -G:]).cpu())
        if (s // bs) % 20 == 0:
            log.info("probe %d / %d", s + len(b["ids"]), len(enc))
    kk = len(ids_out[0]) // G if ids_out else k
    table = pa.table({"id": pa.array(enc.ids, pa.string()), "n_pos": pa.array([G] * len(enc), pa.int32()),
                      "k": pa.array([kk] * len(enc), pa.int32()),
                      "topk_ids": pa.array(ids_out, pa.list_(pa.int32())),
                      "topk_probs": pa.array(probs_out, pa.list_(pa.float32())),
                      **({"draft_ids": pa.array(drafts, pa.list_(pa.int32()))} if draft_steps else {})})
    table = table.replace_schema_metadata({b"rm_core.schema": PROBE_SCHEMA.encode(),
                                           b"rm_core.probe_fingerprint": json.dumps(fp, sort_keys=True).encode()})
    with atomic_path(topk) as tmp:
        pq.write_table(table, tmp)
    log.info("probe: %d examples x %d positions x top-%d (%s input) -> %s", len(enc), G, kk, mode, topk)
    if draft_steps:
        err = torch.cat(errors).float()
        log.info("probe drafts (%d steps): %.1f %% of answer tokens wrong, %.1f %% of drafts with an error",
                 draft_steps, 100 * float(err.mean()), 100 * float(err.amax(1).mean()))
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


def load_drafts(path: str | Path, ids: list[str]) -> torch.Tensor:
    """(n, n_pos) int64 draft ids in the order of ``ids`` (a probe cache written with draft_share > 0)."""
    df = read_parquet(path)
    if "draft_ids" not in df.columns:
        raise ValueError(f"{path}: no draft_ids column; text.probe.draft_share > 0 needs the probe rerun with it")
    pos = {v: i for i, v in enumerate(df["id"])}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(f"{path}: no draft for {len(missing)} training examples, e.g. {missing[:3]}")
    return torch.from_numpy(np.stack([df["draft_ids"].iloc[pos[i]] for i in ids]).astype(np.int64))
