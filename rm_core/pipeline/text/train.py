"""The text track, part 2: the base model and the two fine-tunings (vanilla SFT and RM).

- ``prepare_base``: mini (``backbone.kind: small``) pre-trains a SmallTransformer from scratch as a
  plain MDM on the training pairs (it plays LLaDA-8B-Instruct's role: the starting point of both
  fine-tunings, the baseline row of Table 3 and the frozen probe model); paper (``llada``) checks
  the published checkpoint offline and references it where it lies.
- ``train``: from the base, ``objective`` "sft" (LLaDA's MDM loss: t ~ U(0,1), mask each answer
  token w.p. t, CE/t on masked tokens) or "rm" (Appendix C with the cached top-k proposal, T
  steps, History Reference, Eq. 4 loss). Both draw the same batches of the same pairs for the
  same number of steps (``finetune.train``): equal compute. One trainer (rm_core.train) with
  exact resume; LLaDA in bf16 with gradient checkpointing; multi-GPU through accelerate.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import torch

from ...io import read_parquet, write_json
from ...method import RMConfig
from ...objective import mdm_corrupt, mdm_loss, position_weights, rm_loss, rm_model_input
from ...train import TrainConfig, files_digest, train as run_training
from ...trajectory import DraftProposal, EditSetSize, Instances, TopKProposal, UniformProposal, build_instances
from ...backbones.load import backbone_kind, load_reference, read_model_ref, save_tokenizer, write_model_ref
from .model import PairEncoder, forbid_ids, response_fits
from .probe import load_drafts, load_probe

log = logging.getLogger(__name__)
OBJECTIVES = ("pretrain", "sft", "rm")


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _fitting_pairs(tok, cfg: dict, pairs_path: str):
    pairs = read_parquet(pairs_path, ["id", "task", "prompt", "response"])
    keep = response_fits(tok, pairs["response"], int(cfg["layout"]["gen_length"]))
    if not keep.all() and cfg["backbone"]["kind"] == "small":  # mini tasks are built to fit: a config error
        raise ValueError(f"{int((~keep).sum())} of {len(keep)} mini training responses are longer than "
                         f"text.layout.gen_length = {cfg['layout']['gen_length']} (e.g. math_check needs 64, code_check 56); raise it")
    if not keep.all():
        log.warning("%d of %d training responses exceed gen_length and are left out", int((~keep).sum()), len(keep))
    return pairs[keep].reset_index(drop=True)


def _sample_idx(n: int, batch_size: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, n, (batch_size,), generator=g, device=g.device).cpu()


def mdm_objective(enc: PairEncoder, mask_id: int, batch_size: int):
    """Vanilla MDM / SFT loss (LLaDA's: prompt never masked, EOS fill trained)."""

    def loss_fn(model, step, g):
        b = enc.batch(_sample_idx(len(enc), batch_size, g), g.device)
        x, masked, p = mdm_corrupt(b["ids"], b["editable"], mask_id, g)
        logits = model.logits(model.embed(x), attention_mask=b["attention_mask"])
        loss = mdm_loss(logits, b["ids"], masked, p, b["editable"])
        return loss, {"mdm": float(loss.detach()), "masked_frac": float(masked.sum() / b["editable"].sum())}

    return loss_fn


def rm_objective(enc: PairEncoder, topk_ids: torch.Tensor, topk_probs: torch.Tensor, tok, cfg: dict,
                 batch_size: int, drafts: torch.Tensor | None = None):
    """Appendix C on text: wrong tokens from the frozen model's cached top-k (target removed).

    Ours, off by default: with ``drafts`` (``probe.draft_share`` > 0) a share of the rows takes its
    wrong tokens, and only those, from the frozen model's own draft (``DraftProposal``);
    ``rm_mix.mdm_share`` of each batch's rows is trained with the plain MDM loss instead (SFT's,
    its own forward pass, loss weighted by its share of rows) and ``rm_mix.all_mask_share`` of the
    RM rows starts from an all-MASK answer (rule MASK everywhere, t = 0): the drafting RM
    evaluation starts with."""
    rm = RMConfig.from_dict(cfg["rm"], "text.rm")
    T, history = rm.T, rm.history
    special = {tok.mask_id, *forbid_ids(tok)}
    vocab = getattr(tok, "vocab_size", None) or len(tok)
    fallback = UniformProposal([i for i in range(vocab) if i not in special])
    G = topk_ids.shape[1]
    share = float(cfg["probe"]["draft_share"])
    if share > 0 and drafts is None:
        raise ValueError("text.probe.draft_share > 0 needs the probe's drafts")
    n_mdm = int(round(float(cfg["rm_mix"]["mdm_share"]) * batch_size))
    n_all = int(round(float(cfg["rm_mix"]["all_mask_share"]) * (batch_size - n_mdm)))
    if n_mdm >= batch_size:
        raise ValueError(f"text.rm_mix.mdm_share leaves no RM row in a batch of {batch_size}")

    def loss_fn(model, step, g):
        dev = g.device
        idx = _sample_idx(len(enc), batch_size, g)
        b = enc.batch(idx, dev)
        target, editable, attn = b["ids"], b["editable"], b["attention_mask"]
        parts = {}
        mdm = None
        if n_mdm:
            x, masked, p = mdm_corrupt(target[:n_mdm], editable[:n_mdm], tok.mask_id, g)
            logits = model.logits(model.embed(x), attention_mask=attn[:n_mdm])
            mdm = mdm_loss(logits, target[:n_mdm], masked, p, editable[:n_mdm])
            parts["mdm"] = float(mdm.detach())
            idx, target, editable, attn = idx[n_mdm:], target[n_mdm:], editable[n_mdm:], attn[n_mdm:]
        B, N = target.shape
        k = topk_ids.shape[-1]
        ids = torch.zeros(B, N, k, dtype=torch.long, device=dev)
        probs = torch.zeros(B, N, k, dtype=torch.float32, device=dev)
        ids[:, N - G:] = topk_ids[idx].to(dev)
        probs[:, N - G:] = topk_probs[idx].to(dev)
        proposal = TopKProposal(ids, probs, fallback)
        if share > 0:
            draft = target.clone()
            draft[:, N - G:] = drafts[idx].to(dev)
            proposal = DraftProposal(draft, torch.rand(B, generator=g, device=dev) < share, proposal)
        inst = build_instances(target, editable, T, tok.mask_id, proposal, g, rm.edit_set, rm.p_wrong,
                               p_wrong_reveal=rm.p_wrong_reveal, p_wrong_again=rm.p_wrong_again)
        if n_all:  # the first n_all RM rows: an all-MASK answer at t = 0
            blank = build_instances(target[:n_all], editable[:n_all], T, tok.mask_id, fallback, g, EditSetSize("all"),
                                    p_wrong=0.0, t=torch.zeros(n_all, dtype=torch.long, device=dev))
            inst = Instances(*(torch.cat([getattr(blank, f.name), getattr(inst, f.name)[n_all:]])
                               for f in fields(Instances)))
        logits = model.logits(rm_model_input(model, inst, editable, history, T), attention_mask=attn)
        w = position_weights(inst.edit_set, editable, rm.other_weight)
        out = rm_loss(logits, inst.z, target, editable, tok.mask_id, weights=w, eps=rm.eps)
        parts.update(out.as_floats())
        if mdm is None:
            return out.total, parts
        return (n_mdm * mdm + B * out.total) / (n_mdm + B), parts

    return loss_fn


def _new_small_model(cfg: dict, tok):
    from ...backbones.small_transformer import SmallTransformer, SmallTransformerConfig

    lay = cfg["layout"]
    n = int(lay["prompt_len"]) + int(lay["gen_length"])
    return SmallTransformer(SmallTransformerConfig(vocab_size=tok.vocab_size, n_positions=n, mask_id=tok.mask_id,
                                                   **cfg["backbone"]["model"]))


def prepare_base(cfg: dict, seed: int, pairs: str, ref: str, stop_after: int | None = None) -> dict:
    """The starting checkpoint: mini pre-trains it here (plain MDM); paper references the local
    LLaDA-8B-Instruct folder ``backbone.path`` after loading its config and tokenizer offline."""
    bb = cfg["backbone"]
    out_dir = Path(ref).parent
    if bb["kind"] == "llada":
        from ...backbones.llada import LLaDAConfig, checkpoint_files
        from ...backbones.llada_tokenizer import LLaDATokenizer

        path = Path(bb["path"])
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"text.backbone.path: no LLaDA checkpoint at {path} (config.json missing). Download "
                "GSAI-ML/LLaDA-8B-Instruct (safetensors shards, config.json, tokenizer.json, tokenizer_config.json) "
                "to that folder; nothing is fetched at run time.")
        LLaDAConfig.from_file(path / "config.json")
        checkpoint_files(path)
        LLaDATokenizer.from_pretrained(path)
        return write_model_ref(ref, "llada", path, {"source": "published checkpoint"})
    if bb["kind"] != "small":
        raise ValueError(f"text.backbone.kind must be small|llada, got {bb['kind']!r}")
    from ...tasks.text.tokenizer import CharTokenizer

    tok = CharTokenizer()
    torch.manual_seed(seed)
    model = _new_small_model(cfg, tok)
    enc = PairEncoder(tok, cfg, _fitting_pairs(tok, cfg, pairs))
    tcfg = TrainConfig.from_dict({**cfg["base"]["train"], "seed": seed})
    log.info("base: SmallTransformer %d parameters, plain MDM pre-training on %d pairs, %d steps x %d",
             model.num_parameters(), len(enc), tcfg.steps, tcfg.batch_size)
    fp = {"objective": "pretrain", "model": cfg["backbone"]["model"], "layout": cfg["layout"], "n": len(enc),
          "pairs": files_digest([pairs])}
    df = run_training(model, mdm_objective(enc, tok.mask_id, tcfg.batch_size), tcfg, out_dir,
                      stop_after=stop_after, fingerprint=fp)
    if stop_after is not None and not (out_dir / "model.safetensors").exists():
        return {}
    save_tokenizer(tok, out_dir)
    write_json({"objective": "pretrain", "seed": seed, "steps": tcfg.steps, "final_loss": float(df["loss"].iloc[-1])},
               out_dir / "run.json")
    return write_model_ref(ref, "small", out_dir, {"objective": "pretrain"})


def train(cfg: dict, objective: str, seed: int, pairs: str, base: str, ref: str, probe: str | None = None,
          stop_after: int | None = None) -> dict:
    """Fine-tune the base with ``objective`` ("sft" or "rm"); write the model and its ``model.json``."""
    if objective not in ("sft", "rm"):
        raise ValueError(f"objective must be sft|rm, got {objective!r}")
    out_dir = Path(ref).parent
    base_info = read_model_ref(base)
    model, tok = load_reference(base, cfg["backbone"]["dtype"], "cpu")
    if cfg["backbone"].get("gradient_checkpointing") and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()
    frame = _fitting_pairs(tok, cfg, pairs)
    enc = PairEncoder(tok, cfg, frame)
    tcfg = TrainConfig.from_dict({**cfg["finetune"]["train"], "seed": seed})
    if objective == "sft":
        loss_fn = mdm_objective(enc, tok.mask_id, tcfg.batch_size)
        extra = {}
    else:
        if probe is None:
            raise ValueError("RM training needs the probe cache")
        tid, tp = load_probe(probe, list(frame["id"]))
        drafts = load_drafts(probe, list(frame["id"])) if float(cfg["probe"]["draft_share"]) > 0 else None
        loss_fn = rm_objective(enc, tid, tp, tok, cfg, tcfg.batch_size, drafts)
        extra = {"rm": cfg["rm"], "probe": cfg["probe"], "rm_mix": cfg["rm_mix"]}
    log.info("%s (seed %d) from %s: %d pairs, %d steps x %d", objective, seed, base_info["dir"], len(enc), tcfg.steps,
             tcfg.batch_size)
    fp = {"objective": objective, "base": base_info["fingerprint"], "pairs": files_digest([pairs]), "layout": cfg["layout"],
          **extra}
    df = run_training(model, loss_fn, tcfg, out_dir, stop_after=stop_after, fingerprint=fp)
    if not _is_main_process() or (stop_after is not None and not (out_dir / "train_log.parquet").exists()):
        return {}  # multi-GPU: only the main process writes; a stopped test run writes nothing
    save_tokenizer(tok, out_dir)
    write_json({"objective": objective, "seed": seed, "steps": tcfg.steps, "batch_size": tcfg.batch_size,
                "base": base_info["fingerprint"], "final_loss": float(df["loss"].iloc[-1]) if len(df) else None},
               out_dir / "run.json")
    return write_model_ref(ref, backbone_kind(model), out_dir, {"objective": objective, "seed": seed})
