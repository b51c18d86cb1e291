"""The image-editing track (paper Table 1): data -> VQ -> tokens -> base -> SFT / RM -> eval -> table.

Each function reads its inputs, writes its outputs atomically and takes the track's config
section (``config.yaml: image``) as a plain dict. Two scales share every stage; the
``data.kind`` / ``vq.kind`` / ``model.kind`` keys pick the implementation:

mini (``scenes`` / ``patch`` / ``small``)
    Procedural scenes with exact edit regions (rm_core.tasks.image.scenes), a k-means patch
    VQ fitted on the training images, a word-level instruction vocabulary
    (rm_core.tasks.image.words) and a small bidirectional Transformer MDM
    (rm_core.backbones.small_transformer) over the DiMOO edit layout.
paper (``imgedit`` / ``dimoo`` / ``dimoo``)
    ImgEdit single-turn pairs (85,000 train / 1,700 test, split by source image,
    rm_core.tasks.image.imgedit), Lumina-DiMOO's VQ and tokenizer from the checkpoint
    folder, and the Lumina-DiMOO transformer (rm_core.backbones.dimoo), bf16, offline.
    Every image is cropped to one fixed size (``data.crop_size``, ours: 512x512, i.e. a
    32x32 code grid) so that a batch shares one layout; DiMOO itself uses 49 aspect buckets.

Choices of ours (the paper does not state them; all are config keys):

- **The "no tuning" base (Lumina's role).** Paper scale: the published Lumina-DiMOO
  checkpoint, untouched. Mini scale: there is no published model, so the base is a small
  MDM pre-trained here on a *pre-training pool* of edit pairs drawn from scenes that are
  disjoint from the train and test scenes, with a broader objective than SFT: each pair is,
  with probability ``base.p_identity``, an identity pair (target = source, instruction
  replaced by the unconditional prompt: reconstruction), and with probability
  ``base.p_joint`` the source image is masked together with the target (joint masked
  modelling of both images); otherwise it is an instruction edit with the target masked.
  So, like Lumina, the base is a generally capable image MDM that has seen edit
  instructions, but it never saw the edit training set. Its first ``base.noise_steps``
  steps reconstruct random code mosaics only (identity pairs of uniformly drawn codes, the
  whole target masked, no CFG dropout), and a share ``base.p_noise`` of such rows stays in
  the mix, so that a small MDM learns to copy the source image (README: why).
- **SFT** = the vanilla MDM objective on the edit training set, masking target-image code
  positions only. ``sft.objective: dimoo`` (default) is Lumina-DiMOO's public fine-tuning
  loss (fact sheet §4): r ~ U(0, 1), n = max(1, int(L cos(pi r / 2))) code slots masked
  uniformly, mean cross-entropy over the masked slots, no 1/t weight; ``llada`` is LLaDA's
  (t ~ U(0, 1), each slot masked w.p. t, 1/t-weighted); both are rm_core.objective.mdm_loss.
  The base pre-training uses the same masking.
- **CFG dropout** (both SFT and RM, and the base): Appendix C step 8 via rm_core.guidance.cfg_dropout,
  text and image drops independent, each ``cfg_dropout.p_text`` / ``p_image`` (paper 10%),
  applied to the final model input (after the history normalisation for RM).
- **RM** = Appendix C with the source-image proposal (a target position whose source token
  differs is an edit position, its wrong token is the source token; equal positions are
  keep), T = ``rm.T``, History Reference ``rm.history``, the edit set ``rm.edit_set``
  (default: all differing positions, as at test time the whole source is shown) and
  ``rm.p_wrong`` (P(rule = wrong); the mini and paper configs use 1.0, because the test start
  is the source image, i.e. every edit position holds its wrong token and none is MASK).
  Loss = Eq. 4 (+ ``rm.other_weight`` on non-corrupted positions) + the two auxiliary losses
  below.
- **Unlikelihood loss** (Welleck et al. 2019; the paper's companion with its form is not
  public): at the *non-edit* target positions (source token == target token; always
  visible and correct in every RM state) the only wrong action Eq. 1 can take is to
  re-mask, so the "wrong token" is MASK: L_UL = mean over those positions of
  −log max(1 − p(MASK), eps), weight ``rm.unlikelihood_weight``.
- **Stage-2 ordering loss**: its form is not public. Ours, OFF by default
  (``rm.ordering_weight: 0``): a pairwise logistic ranking loss on the re-mask score
  s_i = log p(MASK)_i − log p(z_i)_i over the visible editable positions of a state: every
  wrong visible token should out-rank every correct one, mean of softplus(s_keep − s_wrong)
  over such pairs in a row (rows without both kinds contribute nothing).
- **Sampling**: base and SFT with the MaskGIT low-confidence sampler as Lumina-DiMOO runs it
  (its float32 cosine plan, confidence = softmax over the image codes only, ``eval.maskgit_steps``
  steps, ``eval.temperature``: 0 greedy, > 0 Gumbel sampling with noisy re-masking, seeded by
  ``eval.seed``; committed tokens never revisited) from a fully masked target; RM with Eq. 1 for ``rm.eval.turns`` turns from the source image's
  tokens in the target region (RM revises the source). Positions still MASK after the
  last turn (re-masked at turn T) get the reveal branch of one more Eq. 1 step, with the
  history carried on (``rm.eval.final_reveal``). Every sampler reveals image codes only and
  uses CFG l = c + s_t (c − u_text) + s_i (c − u_img) with ``eval.text_scale`` /
  ``eval.image_scale`` (rm_core.guidance). With ``model.mask_padding`` every sampler (and training) passes an
  attention mask that hides the instruction slot's PAD positions (the text branch of CFG
  hides all of its slot but UNCOND).
- **Metrics**: rm_core.metrics.image_edit.edit_metrics on the decoded edit vs the *input*
  image (not its VQ reconstruction), change threshold ``eval.threshold``. The
  instruction-following column is, at mini scale, the share of edits whose decoded image
  reads back as exactly the expected scene (mini_instruction_check); at paper scale
  VQAScore (x100) of the edited image against the edit instruction.
"""

from __future__ import annotations

import glob
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..guidance import CFGDenoiser, cfg_dropout
from ..io import read_parquet, write_json, write_parquet
from ..method import RMConfig
from ..objective import mdm_corrupt, mdm_loss, position_weights, rm_loss, rm_model_input
from ..rule import rm_sample
from ..samplers import low_confidence_sample
from ..tasks.image.layout import (SEG_SRC, SEG_TEXT, SEG_TGT, LayoutSpec, aligned_source, build_batch,
                                  extract_target, key_padding_mask, non_code_ids, positions, uncond_text_ids)
from ..train import TrainConfig, files_digest, train
from ..trajectory import SourceProposal, build_instances

log = logging.getLogger(__name__)

MODELS = ("base", "sft", "rm")
MODEL_NAMES = {"base": "Base, no tuning (Lumina)", "sft": "Base + vanilla SFT", "rm": "Base + RM"}
DEFAULT_SYSTEM_PROMPT = ("<system>Generate an image applying the following editing instruction based on the "
                         "original image.</system><user>")

TOKENS_SCHEMA = """id: str, example id (the data stage's)
split: str, train / val / test / pool (mini base pre-training pool)
kind: str, edit kind (mini) or ImgEdit edit type (paper)
instruction: str
instr_ids: list<int64>, instruction token ids (truncated to text_len)
source_codes: list<int64>, source VQ codes, row-major (grid_h*grid_w)
target_codes: list<int64>, target VQ codes, row-major
n_changed_codes: int64, positions where the source and target codes differ"""

METRICS_SCHEMA = """id: str, test example; kind: str; instruction: str; model: str (base / sft / rm)
precision, coverage (%), mae_rgb, mse, psnr (dB), ssim; n_changed, n_region, n_outside: int (edit_metrics)
instr_ok: float, 1/0 from the mini instruction checker (NaN at paper scale)
vqascore: float in [0, 1] (paper scale; NaN when not computed)
turns: int64, RM: the last turn that changed the target (0 = none); MaskGIT: its step count
n_final_revealed: int64, RM: MASKs left after the last turn, revealed by the final reveal step
n_code_changes: int64, target codes that differ from the source codes"""

OUTPUTS_SCHEMA = """id: str; model: str
codes: list<int64>, final target codes, row-major
trajectory: list<int64>, RM only: (turns+1) states of the target grid, state s at [s*n:(s+1)*n], -1 = MASK"""


# --------------------------------------------------------------------------- helpers

def _is_mini(cfg: dict) -> bool:
    return cfg["model"]["kind"] == "small"


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dtype(cfg: dict):
    return getattr(torch, cfg["model"].get("dtype", "float32"))


def _rm(cfg: dict) -> RMConfig:
    return RMConfig.from_dict(cfg["rm"], "image.rm")


def _scene_spec(cfg: dict):
    from ..tasks.image.scenes import SceneSpec
    sc = cfg["data"]["scenes"]
    return SceneSpec(size=sc["size"], cell=sc["cell"], min_objects=sc["min_objects"], max_objects=sc["max_objects"],
                     shapes=tuple(sc["shapes"]), colours=tuple(sc["colours"]), backgrounds=tuple(sc["backgrounds"]))


# --------------------------------------------------------------------------- data

def make_data(cfg: dict, seed: int, out_dir: str) -> pd.DataFrame:
    """Mini: the scenes dataset (train/val/test, split by source scene) + the base pre-training
    pool (``base.parquet``, scenes disjoint from all three). Paper: ImgEdit prepared by
    rm_core.tasks.image.imgedit.prepare_imgedit (PNGs under ``images/``), the validation edits
    carved out of the training side after the training quota. ``data.n_val`` validation edits,
    drawn last, so train and test do not depend on them; every setting is chosen on them."""
    d, out = cfg["data"], Path(out_dir)
    if d["kind"] == "scenes":
        from ..tasks.image.scenes import SCHEMA_DOC, build_edit_dataset, draw_pool
        spec, sc = _scene_spec(cfg), d["scenes"]
        kinds = tuple(sc["kinds"])
        df = build_edit_dataset(d["n_train"], d["n_test"], seed, spec, kinds, sc["edits_per_scene"])
        pool = draw_pool(sc["n_base"], [seed, 2], spec, kinds, sc["edits_per_scene"],
                         exclude_scenes=set(df["scene_before"]), split="pool")
        val = draw_pool(d["n_val"], [seed, 3], spec, kinds, sc["edits_per_scene"],
                        exclude_scenes=set(df["scene_before"]) | set(pool["scene_before"]), split="val")
        df = pd.concat([df, val], ignore_index=True)
        write_parquet(df, out / "edits.parquet", SCHEMA_DOC)
        write_parquet(pool, out / "base.parquet", SCHEMA_DOC)
        log.info("scenes: %d train, %d validation, %d test, %d base-pool edits", (df.split == "train").sum(),
                 len(val), (df.split == "test").sum(), len(pool))
        return df
    if d["kind"] != "imgedit":
        raise ValueError(f"image.data.kind must be scenes or imgedit, got {d['kind']!r}")
    from ..tasks.image.imgedit import SCHEMA_DOC, DiffRule, prepare_imgedit
    d = {**d, **d["imgedit"]}
    parquets = _singleturn_parquets(sorted(glob.glob(str(Path(d["root"]) / d["parquet_glob"]), recursive=True)))
    if not parquets or not Path(d["unpack_root"]).is_dir():
        raise FileNotFoundError(
            f"ImgEdit not found: no parquet matches {Path(d['root']) / d['parquet_glob']} or {d['unpack_root']} "
            f"is missing. Download the dataset {d['hub_repo']} (e.g. `huggingface-cli download {d['hub_repo']} "
            f"--repo-type dataset --local-dir {d['root']}`), `cat` the Singleturn tar splits and unpack them into "
            f"{d['unpack_root']}, then rerun.")
    df = prepare_imgedit(parquets, d["unpack_root"], out, d["n_train"], d["n_test"], seed, n_val=d["n_val"],
                         crop_sizes=[tuple(d["crop_size"])], rule=DiffRule(**d["diff_rule"]),
                         exclude_types=tuple(d["exclude_types"]), processes=d["processes"])
    got = df.split.value_counts().to_dict()
    if got.get("train", 0) < d["n_train"] or got.get("test", 0) < d["n_test"] or got.get("val", 0) < d["n_val"]:
        log.warning("ImgEdit: only %s usable pairs (asked %d train / %d validation / %d test)", got, d["n_train"],
                    d["n_val"], d["n_test"])
    write_parquet(df, out / "edits.parquet", SCHEMA_DOC)
    return df


def _singleturn_parquets(paths: list[str]) -> list[str]:
    """The parquets with ImgEdit's single-turn columns (multi-turn ones hold a ``data`` column)."""
    import pyarrow.parquet as pq
    keep = [p for p in paths if {"input_images", "output_images", "prompt"} <= set(pq.read_schema(p).names)]
    if len(keep) < len(paths):
        log.info("ImgEdit: skipped %d parquet(s) without single-turn columns", len(paths) - len(keep))
    return keep


def load_pixels(cfg: dict, data_dir: str, rows: pd.DataFrame):
    """uint8 (B, H, W, 3) source and target, bool (B, H, W) region of data rows."""
    if cfg["data"]["kind"] == "scenes":
        from ..tasks.image.codec import stack_images, stack_masks
        return stack_images(rows["source"]), stack_images(rows["target"]), stack_masks(rows["region"])
    from ..tasks.image.imgedit import load_example
    ex = [load_example(r, data_dir) for _, r in rows.iterrows()]
    return tuple(np.stack(x) for x in zip(*ex))


# --------------------------------------------------------------------------- VQ

class Codec:
    """The image tokenizer of a scale: ``encode`` uint8 images -> codes, ``decode`` back."""

    def __init__(self, vq_dir: str):
        meta = json.loads((Path(vq_dir) / "config.json").read_text())
        self.kind = meta["kind"]
        if self.kind == "kmeans-patch":
            from ..tasks.image.vq import PatchVQ
            self.vq = PatchVQ.load(vq_dir)
            self.downsample, self.n_codes = self.vq.patch, self.vq.n_codes
        elif self.kind == "dimoo-vq":
            from ..backbones.dimoo import load_vq, vq_downsample
            self.vq = load_vq(meta["checkpoint"], device=_device())
            self.downsample, self.n_codes = vq_downsample(self.vq), int(self.vq.config.num_vq_embeddings)
        else:
            raise ValueError(f"{vq_dir}: unknown VQ kind {self.kind!r}")

    def encode(self, images: np.ndarray, batch: int = 16) -> np.ndarray:
        if self.kind == "kmeans-patch":
            return self.vq.encode(images)
        from ..backbones.dimoo import encode_images
        out = []
        for s in range(0, len(images), batch):
            px = torch.as_tensor(images[s:s + batch]).permute(0, 3, 1, 2).float() / 255.0
            out.append(encode_images(self.vq, px).cpu().numpy())
        return np.concatenate(out)

    def decode(self, codes: np.ndarray, batch: int = 16) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        if self.kind == "kmeans-patch":
            return self.vq.decode(codes)
        from ..backbones.dimoo import decode_codes
        out = []
        for s in range(0, len(codes), batch):
            px = decode_codes(self.vq, torch.as_tensor(codes[s:s + batch])).float().cpu()
            out.append((px.permute(0, 2, 3, 1).numpy() * 255.0).round().clip(0, 255).astype(np.uint8))
        return np.concatenate(out)


def make_vq(cfg: dict, data_dir: str, out_dir: str) -> None:
    """Mini: fit the k-means patch VQ on the training images (source and target). Paper:
    check that the checkpoint's VQ loads offline and matches the model; record where it is."""
    v = cfg["vq"]
    if v["kind"] == "patch":
        from ..tasks.image.codec import stack_images
        from ..tasks.image.vq import PatchVQ
        df = read_parquet(Path(data_dir) / "edits.parquet")
        tr = df[df.split == "train"]
        imgs = np.concatenate([stack_images(tr["source"]), stack_images(tr["target"])])
        vq = PatchVQ(v["n_codes"], v["patch"], seed=cfg.get("seed", 0)).fit(imgs)
        vq.save(out_dir)
        log.info("patch VQ: %d codes, patch %d, %d distinct training patches", vq.n_codes, vq.patch, vq.n_distinct)
        return
    from ..backbones.dimoo import DiMOOConfig, load_vq, vq_downsample
    ckpt = Path(cfg["model"]["checkpoint"])
    _require_checkpoint(ckpt)
    vq = load_vq(ckpt)
    mcfg = DiMOOConfig.from_file(ckpt / "config.json")
    n, f = int(vq.config.num_vq_embeddings), vq_downsample(vq)
    if n != mcfg.num_image_codes:
        raise ValueError(f"{ckpt}: the VQ has {n} codes but the model {mcfg.num_image_codes} image codes")
    if (n, f) != (int(v["n_codes"]), int(v["patch"])):
        raise ValueError(f"{ckpt}/vqvae has {n} codes and downsampling {f}; config image.vq says n_codes "
                         f"{v['n_codes']}, patch {v['patch']}")
    write_json({"kind": "dimoo-vq", "checkpoint": str(ckpt.resolve()), "n_codes": n, "downsample": vq_downsample(vq)},
               Path(out_dir) / "config.json")


def _require_checkpoint(ckpt: Path) -> None:
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(
            f"Lumina-DiMOO checkpoint not found at {ckpt} (no config.json). Download Alpha-VLLM/Lumina-DiMOO "
            f"(`huggingface-cli download Alpha-VLLM/Lumina-DiMOO --local-dir {ckpt}`) and set image.model.checkpoint.")


# --------------------------------------------------------------------------- tokens / layout

def _dimoo_layout(cfg: dict, grid_h: int, grid_w: int) -> tuple[LayoutSpec, object]:
    from transformers import PreTrainedTokenizerFast

    from ..backbones.dimoo import DiMOOConfig
    ckpt = Path(cfg["model"]["checkpoint"])
    _require_checkpoint(ckpt)
    mc = DiMOOConfig.from_file(ckpt / "config.json")
    tok = PreTrainedTokenizerFast.from_pretrained(str(ckpt), local_files_only=True)
    prefix = tok.encode(cfg["text"].get("system_prompt", DEFAULT_SYSTEM_PROMPT), add_special_tokens=False)
    suffix = tok.encode("</user>", add_special_tokens=False)
    spec = LayoutSpec(
        grid_h=grid_h, grid_w=grid_w, codebook_size=mc.num_image_codes, code_offset=mc.image_code_offset,
        vocab_size=mc.embedding_size or mc.vocab_size, mask_id=mc.mask_token_id, pad_id=mc.mmu_pad_token_id,
        boi_id=mc.boi_token_id, eoi_id=mc.eoi_token_id, row_sep_id=mc.newline_token_id, boa_id=mc.boa_token_id,
        eoa_id=mc.eoa_token_id, uncond_id=mc.uncondition_token_id, text_len=int(cfg["text"]["text_len"]),
        prompt_prefix=tuple(prefix), prompt_suffix=tuple(suffix),
    )
    return spec, lambda s: tok.encode(s, add_special_tokens=False)


def load_layout(tokens_dir: str, cfg: dict | None = None) -> tuple[LayoutSpec, object]:
    """(LayoutSpec, text encoder) from ``layout.json`` of the tokens stage."""
    meta = json.loads((Path(tokens_dir) / "layout.json").read_text())
    spec = LayoutSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["spec"].items()})
    if meta["text"] == "words":
        from ..tasks.image.words import WordVocab
        return spec, WordVocab(tuple(meta["words"])).encode
    if cfg is None:
        return spec, None
    return spec, _dimoo_layout(cfg, spec.grid_h, spec.grid_w)[1]


def make_tokens(cfg: dict, data_dir: str, vq_dir: str, out_dir: str) -> LayoutSpec:
    """Token grids of every image, cached as Parquet, and the layout (``layout.json``)."""
    codec = Codec(vq_dir)
    data_dir, out = Path(data_dir), Path(out_dir)
    frames = {"edits": read_parquet(data_dir / "edits.parquet")}
    if _is_mini(cfg):
        frames["base"] = read_parquet(data_dir / "base.parquet")
    text_len = int(cfg["text"]["text_len"])
    grids = {}
    for name, df in frames.items():
        src, tgt, _ = load_pixels(cfg, str(data_dir), df)
        grids[name] = (codec.encode(src), codec.encode(tgt))
    gh, gw = grids["edits"][0].shape[1:]
    if cfg["text"]["kind"] == "words":
        from ..tasks.image.words import WordVocab
        texts = [t for name, df in frames.items() for t, s in zip(df.instruction, df.split) if s not in ("test", "val")]
        vocab = WordVocab.build(texts)
        spec, encode = vocab.spec(gh, gw, codec.n_codes, text_len), vocab.encode
        extra = {"text": "words", "words": list(vocab.words)}
    else:
        spec, encode = _dimoo_layout(cfg, gh, gw)
        if codec.n_codes != spec.codebook_size:
            raise ValueError(f"VQ has {codec.n_codes} codes, the model {spec.codebook_size}")
        extra = {"text": "dimoo"}
    for name, df in frames.items():
        ids = [encode(t) for t in df.instruction]
        n_long = sum(len(i) > text_len for i in ids)
        if n_long:
            log.warning("%s: %d instructions longer than text_len=%d were truncated", name, n_long, text_len)
        src, tgt = grids[name]
        kind = df["kind"] if "kind" in df else df["edit_type"]
        out_df = pd.DataFrame({
            "id": df["id"].astype(str), "split": df["split"], "kind": kind, "instruction": df["instruction"],
            "instr_ids": [i[:text_len] for i in ids],
            "source_codes": [s.reshape(-1).tolist() for s in src],
            "target_codes": [t.reshape(-1).tolist() for t in tgt],
            "n_changed_codes": (src != tgt).reshape(len(df), -1).sum(1),
        })
        write_parquet(out_df, out / f"{name}.parquet", TOKENS_SCHEMA)
        log.info("%s: %d examples, grid %dx%d, mean %.1f changed codes", name, len(out_df), gh, gw,
                 out_df.n_changed_codes.mean())
    write_json({"spec": asdict(spec), "seq_len": spec.seq_len, **extra}, out / "layout.json")
    return spec


def _sequences(df: pd.DataFrame, spec: LayoutSpec, with_target: bool = True) -> dict:
    """Full id sequences (B, N), the editable row (N,) and the source-aligned ids (B, N)."""
    g = lambda col: [np.array(c, dtype=np.int64).reshape(spec.grid_h, spec.grid_w) for c in df[col]]  # noqa: E731
    ids, editable, _ = build_batch(list(df["instr_ids"]), g("source_codes"),
                                   g("target_codes") if with_target else None, spec)
    return {"ids": ids, "editable": editable[0], "src": aligned_source(ids, spec)}


# --------------------------------------------------------------------------- models

def build_small(cfg: dict, spec: LayoutSpec):
    from ..backbones.small_transformer import SmallTransformer, SmallTransformerConfig
    m = cfg["model"]["small"]
    return SmallTransformer(SmallTransformerConfig(vocab_size=spec.vocab_size, n_positions=spec.seq_len,
                                                   mask_id=spec.mask_id, **m))


def load_model(cfg: dict, model_dir: str):
    """A trained model folder (or, for the paper base, the checkpoint) -> Denoiser."""
    if _is_mini(cfg):
        from ..backbones.small_transformer import SmallTransformer
        return SmallTransformer.from_pretrained(model_dir)
    from ..backbones.dimoo import DiMOOBackbone
    return DiMOOBackbone.from_pretrained(model_dir, dtype=_dtype(cfg))


def base_path(base_dir: str) -> str:
    """The folder holding the base weights (mini: ``base_dir``; paper: the checkpoint)."""
    return json.loads((Path(base_dir) / "run.json").read_text())["path"]


def _cfg_parts(model, spec: LayoutSpec, dev):
    tpos, ipos = positions(spec, SEG_TEXT).to(dev), positions(spec, SEG_SRC).to(dev)
    unc = model.embed(uncond_text_ids(spec).to(dev)[None])[0]
    mask_e = model.embed(torch.tensor([[spec.mask_id]], device=dev))[0, 0]
    return tpos, unc, ipos, mask_e


def _dropout(model, spec: LayoutSpec, emb: torch.Tensor, ids: torch.Tensor, cfg: dict, g: torch.Generator):
    """CFG dropout (Appendix C step 8) on the model input ``emb`` of the sequences ``ids``, and
    its attention mask: with ``model.mask_padding`` the instruction slot's PAD positions are
    hidden in training as at evaluation (a text-dropped row's slot is the unconditional
    prompt's); None otherwise."""
    tpos, unc, ipos, mask_e = _cfg_parts(model, spec, emb.device)
    c = cfg["cfg_dropout"]
    out, text_drop, _ = cfg_dropout(emb, tpos, unc, ipos, mask_e, c["p_text"], c["p_image"], generator=g)
    if not cfg["model"]["mask_padding"]:
        return out, None
    slot = torch.zeros(ids.shape[1], dtype=ids.dtype, device=ids.device)
    slot[tpos] = uncond_text_ids(spec).to(ids.device)
    seen = torch.where(text_drop[:, None] & tpos[None], slot[None], ids)
    return out, key_padding_mask(seen, spec)


def _tgt_shift(spec: LayoutSpec) -> int:
    """Offset from a source code position to the same cell's target position (fixed layout)."""
    src, tgt = positions(spec, SEG_SRC).nonzero(), positions(spec, SEG_TGT).nonzero()
    return int(tgt[0] - src[0])


def sft_loss_fn(cfg: dict, spec: LayoutSpec, data: dict, mode: str = "sft"):
    """Vanilla MDM on the edit data (``sft``), or the base pre-training mixture (``base``)."""
    objective = cfg["sft"]["objective"]
    bs = int((cfg["base"]["train"] if mode == "base" else cfg["train"])["batch_size"])
    ids_all, edit_row, src_all = data["ids"], data["editable"], data["src"]
    src_row = positions(spec, SEG_SRC)
    text_row = positions(spec, SEG_TEXT)
    # codes seen in the data: the alphabet of the random-mosaic reconstruction rows (base only)
    alphabet = (torch.unique(torch.cat([ids_all[:, edit_row].reshape(-1), src_all[:, edit_row].reshape(-1)]))
                if mode == "base" else None)
    unc_seq = torch.zeros(len(text_row), dtype=torch.long)
    unc_seq[text_row] = uncond_text_ids(spec)  # the unconditional prompt's slot, at its positions

    def loss_fn(model, step, g):
        dev = g.device
        idx = torch.randint(0, len(ids_all), (bs,), generator=g, device=dev).cpu()
        target = ids_all[idx].to(dev)
        maskable = edit_row.to(dev).expand(bs, -1)
        parts = {}
        if mode == "base":
            b = cfg["base"]
            identity = torch.rand(bs, generator=g, device=dev) < b["p_identity"]
            joint = torch.rand(bs, generator=g, device=dev) < b["p_joint"]
            src = src_all[idx].to(dev)
            warm = step < int(b["noise_steps"])  # warm-up: plain reconstruction of random mosaics
            noise = torch.rand(bs, generator=g, device=dev) < (1.0 if warm else float(b["p_noise"]))
            joint = joint & (not warm)
            identity = identity | noise
            mosaic = alphabet.to(dev)[torch.randint(0, len(alphabet), target.shape, generator=g, device=dev)]
            src_rows, ed = src_row.to(dev)[None], edit_row.to(dev)[None]
            # a random mosaic in the source grid (and, being an identity pair, in the target grid)
            target = torch.where(noise[:, None] & src_rows, mosaic, target)
            src = torch.where(noise[:, None] & ed, mosaic.roll(shifts=_tgt_shift(spec), dims=1), src)
            target = torch.where(identity[:, None] & edit_row.to(dev)[None], src, target)
            target = torch.where(identity[:, None] & text_row.to(dev)[None], unc_seq.to(dev)[None], target)
            maskable = maskable | (joint[:, None] & src_row.to(dev)[None])
            parts = {"identity_frac": float(identity.float().mean()), "joint_frac": float(joint.float().mean()),
                     "noise_frac": float(noise.float().mean())}
        warm = mode == "base" and step < int(cfg["base"]["noise_steps"])
        x, masked, p = mdm_corrupt(target, maskable, spec.mask_id, g, form=objective)
        if warm:  # the whole target is masked: every slot carries the copy signal
            masked, p = maskable.clone(), torch.ones_like(p)
            x = torch.where(masked, torch.full_like(target, spec.mask_id), target)
        if warm:
            emb, attn = model.embed(x), pad_attention_mask(x, spec, cfg["model"])
        else:
            emb, attn = _dropout(model, spec, model.embed(x), x, cfg, g)
        loss = mdm_loss(model.logits(emb, attention_mask=attn), target, masked, p, maskable, form=objective)
        return loss, {"mdm": float(loss.detach()), "n_masked": float(masked.sum()), **parts}

    return loss_fn


def unlikelihood_loss(logits: torch.Tensor, sel: torch.Tensor, mask_id: int, eps: float) -> torch.Tensor:
    """Mean over ``sel`` of −log max(1 − p(MASK), eps) (Welleck et al.; the wrong token is MASK)."""
    p_mask = torch.softmax(logits.float(), dim=-1)[..., mask_id]
    nll = -torch.log((1 - p_mask).clamp(min=eps))
    return (nll * sel).sum() / sel.sum().clamp(min=1)


def ordering_loss(logits: torch.Tensor, z: torch.Tensor, target: torch.Tensor, editable: torch.Tensor,
                  mask_id: int) -> torch.Tensor:
    """Ours (off by default): wrong visible tokens should out-rank correct ones in the re-mask
    score s = log p(M) − log p(z); mean over rows with both kinds of mean softplus(s_keep − s_wrong)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    s = logp[..., mask_id] - logp.gather(-1, z.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    visible = editable & (z != mask_id)
    wrong, keep = visible & (z != target), visible & (z == target)
    pair = F.softplus(s[:, None, :] - s[:, :, None])  # [b, w, k] = softplus(s_k - s_w)
    pm = (wrong[:, :, None] & keep[:, None, :]).float()
    n = pm.sum((1, 2))
    rows = n > 0
    if not rows.any():
        return logits.sum() * 0
    return ((pair * pm).sum((1, 2))[rows] / n[rows]).mean()


def rm_loss_fn(cfg: dict, spec: LayoutSpec, data: dict):
    """Appendix C with the source proposal, Eq. 4, CFG dropout, unlikelihood (+ ordering)."""
    rm = _rm(cfg)
    T, history = rm.T, rm.history
    bs = int(cfg["train"]["batch_size"])
    ids_all, edit_row, src_all = data["ids"], data["editable"], data["src"]
    # the ordering loss builds (B, n, n) pairs over the editable positions only
    tgt_idx = edit_row.nonzero().squeeze(1)

    def loss_fn(model, step, g):
        dev = g.device
        idx = torch.randint(0, len(ids_all), (bs,), generator=g, device=dev).cpu()
        target, src = ids_all[idx].to(dev), src_all[idx].to(dev)
        editable = edit_row.to(dev).expand(bs, -1)
        inst = build_instances(target, editable, T, spec.mask_id, SourceProposal(src), g, rm.edit_set, rm.p_wrong)
        a = rm_model_input(model, inst, editable, history, T)
        inputs, attn = _dropout(model, spec, a, inst.z, cfg, g)
        logits = model.logits(inputs, attention_mask=attn)
        w = position_weights(inst.edit_set, editable, rm.other_weight)
        out = rm_loss(logits, inst.z, target, editable, spec.mask_id, weights=w, eps=rm.eps)
        total, parts = out.total, out.as_floats()
        if rm.unlikelihood_weight:
            ul = unlikelihood_loss(logits, editable & (src == target), spec.mask_id, rm.eps)
            total = total + rm.unlikelihood_weight * ul
            parts["unlikelihood"] = float(ul.detach())
        if rm.ordering_weight:
            ti = tgt_idx.to(dev)
            od = ordering_loss(logits[:, ti], inst.z[:, ti], target[:, ti], editable[:, ti], spec.mask_id)
            total = total + rm.ordering_weight * od
            parts["ordering"] = float(od.detach())
        parts["rm"] = parts.pop("total")
        return total, parts

    return loss_fn


def _train_cfg(section: dict, seed: int) -> TrainConfig:
    return TrainConfig.from_dict({**section, "seed": seed})


def train_base(cfg: dict, seed: int, tokens_dir: str, out_dir: str, stop_after=None) -> None:
    """Mini: pre-train the small MDM on the base pool (see the module docstring). Paper: the
    published checkpoint is the base; record its path."""
    out = Path(out_dir)
    if not _is_mini(cfg):
        ckpt = Path(cfg["model"]["checkpoint"])
        _require_checkpoint(ckpt)
        write_json({"model": "base", "path": str(ckpt.resolve()), "trained": False}, out / "run.json")
        return
    spec, _ = load_layout(tokens_dir)
    pool = read_parquet(Path(tokens_dir) / "base.parquet")
    data = _sequences(pool, spec)
    torch.manual_seed(seed)
    model = build_small(cfg, spec)
    log.info("base: %d parameters, pool of %d pairs, sequence length %d", model.num_parameters(), len(pool),
             spec.seq_len)
    tcfg = _train_cfg(cfg["base"]["train"], seed)
    fp = {"stage": "base", "base": cfg["base"], "model": cfg["model"], "sft": cfg["sft"],
          "cfg_dropout": cfg["cfg_dropout"], "n": len(pool), "data": files_digest([Path(tokens_dir) / "base.parquet"])}
    df = train(model, sft_loss_fn(cfg, spec, data, mode="base"), tcfg, out, stop_after=stop_after, fingerprint=fp)
    if stop_after is None:
        write_json({"model": "base", "path": str(out.resolve()), "trained": True, "steps": tcfg.steps,
                    "batch_size": tcfg.batch_size, "wall_s": float(df["elapsed_s"].iloc[-1]) if len(df) else 0.0},
                   out / "run.json")


def train_model(cfg: dict, which: str, seed: int, tokens_dir: str, base_dir: str, out_dir: str,
                stop_after=None) -> None:
    """SFT or RM from the base, on the same edit training set with the same budget
    (``train``: steps x batch_size, lr schedule — one section for both)."""
    if which not in ("sft", "rm"):
        raise ValueError(f"which must be sft or rm, got {which!r}")
    spec, _ = load_layout(tokens_dir, cfg)
    toks = read_parquet(Path(tokens_dir) / "edits.parquet")
    tr = toks[toks.split == "train"].reset_index(drop=True)
    data = _sequences(tr, spec)
    model = load_model(cfg, base_path(base_dir))
    if not _is_mini(cfg) and cfg["model"].get("gradient_checkpointing"):
        model.gradient_checkpointing_enable()
    tcfg = _train_cfg(cfg["train"], seed)
    loss_fn = sft_loss_fn(cfg, spec, data) if which == "sft" else rm_loss_fn(cfg, spec, data)
    fp = {"stage": which, "train": cfg["train"], "cfg_dropout": cfg["cfg_dropout"], "n": len(tr),
          "data": files_digest([Path(tokens_dir) / "edits.parquet"]),
          "base": base_path(base_dir), **({"sft": cfg["sft"]} if which == "sft" else {"rm": cfg["rm"]})}
    log.info("%s: %d training edits, %d steps x batch %d", which, len(tr), tcfg.steps, tcfg.batch_size)
    df = train(model, loss_fn, tcfg, out_dir, stop_after=stop_after, fingerprint=fp)
    if stop_after is None:
        write_json({"model": which, "path": str(Path(out_dir).resolve()), "trained": True, "steps": tcfg.steps,
                    "batch_size": tcfg.batch_size, "examples_seen": tcfg.steps * tcfg.batch_size,
                    "wall_s": float(df["elapsed_s"].iloc[-1]) if len(df) else 0.0}, Path(out_dir) / "run.json")


# --------------------------------------------------------------------------- evaluation

def cfg_denoiser(model, spec: LayoutSpec, ev: dict) -> CFGDenoiser:
    unc = uncond_text_ids(spec)
    return CFGDenoiser.for_positions(model, positions(spec, SEG_TEXT), unc, positions(spec, SEG_SRC),
                                     ev["text_scale"], ev["image_scale"], uncond_text_visible=unc != spec.pad_id)


def maskgit_kwargs(ev: dict) -> dict:
    """The base/SFT sampler's settings, as Lumina-DiMOO's i2i generator: its MaskGIT cosine plan,
    the confidence as the softmax over the image codes only, and ``eval.temperature`` (Gumbel
    sampling + noisy re-masking; 0 = greedy)."""
    return dict(schedule="cosine", confidence="allowed", temperature=float(ev["temperature"]))


def pad_attention_mask(ids: torch.Tensor, spec: LayoutSpec, model_cfg: dict):
    """``model.mask_padding``: an attention mask hiding the instruction slot's PAD positions (the
    real DiMOO never saw pad inside its prompt), else None (every position visible)."""
    return key_padding_mask(ids, spec) if model_cfg["mask_padding"] else None


@torch.no_grad()
def sample_edits(cfg: dict, which: str, model, spec: LayoutSpec, df: pd.DataFrame) -> dict:
    """Edit the test examples of ``df``: codes (B, n), trajectories (RM), turns, final reveals."""
    ev, dev = cfg["eval"], next(model.parameters()).device
    den = cfg_denoiser(model, spec, ev)
    forbid = non_code_ids(spec)
    n = spec.grid_h * spec.grid_w
    gen = torch.Generator().manual_seed(int(ev["seed"]))  # temperature > 0 only
    codes, trajs, turns, revealed = [], [], [], []
    for s in range(0, len(df), int(ev["batch_size"])):
        part = df.iloc[s:s + int(ev["batch_size"])]
        seqs = _sequences(part, spec, with_target=False)
        editable = seqs["editable"].to(dev).expand(len(part), -1)
        attn = pad_attention_mask(seqs["src"].to(dev), spec, cfg["model"])
        if which == "rm":
            x0 = seqs["src"].to(dev)  # the target region starts as the source image's tokens
            rm = _rm(cfg)
            rm.eval.check_track("image.rm.eval", ("source",), final_reveal=True)
            T, extra = rm.eval.turns, 1 if rm.eval.final_reveal else 0
            res = rm_sample(den, x0, editable, T + extra, history=rm.history, forbid_ids=forbid,
                            attention_mask=attn, return_trajectory=True)
            traj = res.trajectory  # (B, T+1(+1), N) on CPU
            final = traj[:, T]
            if extra:
                still = final == spec.mask_id
                final = torch.where(still, traj[:, T + 1], final)
                revealed.append((still & seqs["editable"][None]).sum(-1))
            else:
                revealed.append(torch.zeros(len(part), dtype=torch.long))
            tg = extract_target(traj[:, : T + 1], spec).reshape(len(part), T + 1, n)
            changed = (tg[:, 1:] != tg[:, :-1]).any(-1)
            steps = torch.arange(1, T + 1)[None].expand_as(changed)
            turns.append(torch.where(changed, steps, torch.zeros_like(steps)).max(-1).values)
            trajs += [t.reshape(-1).tolist() for t in tg]
        else:
            x0 = seqs["ids"].to(dev)
            final = low_confidence_sample(den, x0, editable, int(ev["maskgit_steps"]), forbid_ids=forbid,
                                          attention_mask=attn, generator=gen, **maskgit_kwargs(ev)).cpu()
            turns.append(torch.full((len(part),), int(ev["maskgit_steps"])))
            revealed.append(torch.zeros(len(part), dtype=torch.long))
        c = extract_target(final.cpu(), spec).reshape(len(part), n)
        src = torch.as_tensor(np.stack([np.asarray(x) for x in part["source_codes"]]))
        codes.append(torch.where(c < 0, src, c))  # MASK left (final_reveal off): the source code
        log.info("%s: %d/%d edited", which, min(s + len(part), len(df)), len(df))
    return {"codes": torch.cat(codes).numpy(), "trajectory": trajs or None, "turns": torch.cat(turns).numpy(),
            "n_final_revealed": torch.cat(revealed).numpy()}


def evaluate(cfg: dict, which: str, model_dir: str, data_dir: str, tokens_dir: str, vq_dir: str,
             out_metrics: str, out_outputs: str, split: str = "test") -> dict:
    """Sample the edits of ``split`` (test: Table 1; val: every choice of settings) with ``which``'s
    sampler, decode them and score them."""
    from ..metrics.image_edit import aggregate, edit_metrics, mini_instruction_check
    if which not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {which!r}")
    spec, _ = load_layout(tokens_dir, cfg)
    toks = read_parquet(Path(tokens_dir) / "edits.parquet")
    if split not in ("test", "val"):
        raise ValueError(f"split must be test|val, got {split!r}")
    test = toks[toks.split == split].reset_index(drop=True)
    if cfg["eval"].get("n_test"):
        test = test.iloc[: int(cfg["eval"]["n_test"])]
    path = base_path(model_dir) if which == "base" else model_dir
    model = load_model(cfg, path).to(_device()).eval()
    out = sample_edits(cfg, which, model, spec, test)
    del model
    codec = Codec(vq_dir)
    edited = codec.decode(out["codes"].reshape(len(test), spec.grid_h, spec.grid_w))
    data = read_parquet(Path(data_dir) / "edits.parquet").set_index("id", drop=False)
    rows = data.loc[test["id"]]
    src, _, region = load_pixels(cfg, data_dir, rows)
    ev = cfg["eval"]
    scene_spec = _scene_spec(cfg) if cfg["data"]["kind"] == "scenes" else None
    recs = []
    for i in range(len(test)):
        m = edit_metrics(src[i], edited[i], region[i], threshold=ev["threshold"], psnr_cap=ev["psnr_cap"])
        ok = float("nan")
        if scene_spec is not None:
            ok = float(mini_instruction_check(rows["scene_after"].iloc[i], edited[i], scene_spec))
        recs.append({"id": test["id"].iloc[i], "kind": test["kind"].iloc[i], "instruction": test["instruction"].iloc[i],
                     "model": which, **m, "instr_ok": ok, "vqascore": float("nan")})
    metrics = pd.DataFrame(recs)
    if ev["instruction_score"] == "vqascore":
        metrics["vqascore"] = _vqascore(cfg, edited, list(test["instruction"]))
    src_codes = np.stack([np.asarray(x) for x in test["source_codes"]])
    metrics["turns"] = out["turns"].astype(np.int64)
    metrics["n_final_revealed"] = out["n_final_revealed"].astype(np.int64)
    metrics["n_code_changes"] = (out["codes"] != src_codes).sum(1).astype(np.int64)
    write_parquet(metrics, out_metrics, METRICS_SCHEMA)
    write_parquet(pd.DataFrame({"id": test["id"], "model": which, "codes": [c.tolist() for c in out["codes"]],
                                "trajectory": out["trajectory"] or [[] for _ in range(len(test))]}),
                  out_outputs, OUTPUTS_SCHEMA)
    summary = aggregate(metrics, ev["psnr_cap"])
    ok = metrics["instr_ok"]
    summary["instr"] = float(np.nanmean(ok)) * 100 if ok.notna().any() else float("nan")
    log.info("%s: %s", which, summary)
    return summary


def _vqascore(cfg: dict, images: np.ndarray, texts: list[str]) -> np.ndarray:
    from ..metrics.image_edit import vqascore, vqascore_missing
    v = cfg["eval"]["vqascore"]
    missing = vqascore_missing(v["cache_dir"], v["model"])
    if missing:
        msg = "VQAScore weights/package not available locally; missing: " + "; ".join(missing)
        if v["required"]:
            raise RuntimeError(msg + " (set image.eval.vqascore.required: false to write NaN instead)")
        log.warning("%s -- the VQAScore column is NaN", msg)
        return np.full(len(texts), np.nan)
    return vqascore(list(images), texts, v["cache_dir"], v["model"], device=str(_device()))


# --------------------------------------------------------------------------- Table 1 and the figure

def table1_rows(cfg: dict, frames: dict) -> tuple[pd.DataFrame, dict]:
    """Table 1's columns per model (``frames``: model -> per-edit metrics) and the extra figures
    of the notes (undefined precision, turns, final reveals, code changes)."""
    from ..metrics.image_edit import aggregate

    instr_col = "instr_ok" if cfg["eval"]["instruction_score"] == "checker" else "vqascore"
    rows, extra = {}, {}
    for m in MODELS:
        if m not in frames:
            continue
        df = frames[m]
        a = aggregate(df, cfg["eval"]["psnr_cap"])
        instr = float(np.nanmean(df[instr_col])) * 100 if df[instr_col].notna().any() else float("nan")
        psnr = a["psnr_pooled"] if cfg["eval"]["psnr"] == "pooled" else a["psnr"]
        rows[m] = {"Prec.": a["precision"], "Coverage": a["coverage"], "MAE-RGB": a["mae_rgb"], "PSNR (dB)": psnr,
                   "SSIM": a["ssim"], "Instr. score": instr}
        extra[m] = a | {"turns": float(df["turns"].mean()), "final_revealed": float(df["n_final_revealed"].mean()),
                        "code_changes": float(df["n_code_changes"].mean())}
    return pd.DataFrame.from_dict(rows, orient="index"), extra


def report(cfg: dict, scale: str, metrics_paths: list[str], outputs_paths: list[str], data_dir: str,
           tokens_dir: str, vq_dir: str, table_stem: str, fig_stem: str) -> pd.DataFrame:
    """Table 1 (ours beside the paper's) and the figure grid of edits and RM's turns."""
    from ..tables import PAPER_TABLE1, side_by_side, write_table

    table_stem, fig_stem = Path(table_stem).with_suffix(""), Path(fig_stem).with_suffix("")
    frames = {df["model"].iloc[0]: df for df in map(read_parquet, metrics_paths)}
    instr_col = "instr_ok" if cfg["eval"]["instruction_score"] == "checker" else "vqascore"
    ours, extra = table1_rows(cfg, frames)
    table = side_by_side(ours, PAPER_TABLE1)
    table.index = [MODEL_NAMES[m] for m in ours.index]
    n = len(next(iter(frames.values())))
    ev, tr = cfg["eval"], cfg["train"]
    instr_note = ("Instr. score (ours) = % of edits whose decoded image reads back as exactly the expected scene "
                  "(automatic checker)" if instr_col == "instr_ok" else
                  "Instr. score (ours) = mean VQAScore x 100 of the edited image against the instruction")
    lines = [
        f"Ours: {n} held-out edits; {instr_note}; paper column = VQAScore x 100.",
        f"Base/SFT: MaskGIT cosine sampler, {ev['maskgit_steps']} steps, from a fully masked target; RM: Eq. 1 for "
        f"{cfg['rm']['eval']['turns']} turns from the source tokens (HR {cfg['rm']['history']}); CFG text {ev['text_scale']}, "
        f"image {ev['image_scale']}. SFT and RM: {tr['steps']} steps x batch {tr['batch_size']} each from the base. "
        f"Base/SFT sampling temperature {float(ev['temperature'])} (0 = greedy; Lumina-DiMOO's default 1.0).",
        ("PSNR (ours) = 10 log10(255^2 / MSE) of the MSE pooled over all examples' non-target pixels (an unchanged "
         "image has infinite PSNR; the capped per-example mean would be " +
         ", ".join(f"{MODEL_NAMES[m]} {extra[m]['psnr']:.2f}" for m in extra) + ")."
         if ev["psnr"] == "pooled" else
         f"PSNR (ours) = mean over examples of the per-image PSNR (capped at {ev['psnr_cap']} dB when identical)."),
        f"Changed pixel: max_c |edit - input| > {ev['threshold']}; Precision undefined (nothing changed): "
        + ", ".join(f"{MODEL_NAMES[m]} {extra[m]['n_precision_undefined']}" for m in extra) + ".",
        "Mean RM turns until the target stopped changing: "
        + (f"{extra['rm']['turns']:.2f}; mean MASKs revealed by the final reveal step: "
           f"{extra['rm']['final_revealed']:.2f}." if "rm" in extra else "n/a."),
        "Mean target codes differing from the source codes: "
        + ", ".join(f"{MODEL_NAMES[m]} {extra[m]['code_changes']:.1f}" for m in extra) + ".",
    ]
    if _is_mini(cfg):
        d = cfg["data"]
        sc, sm = d["scenes"], cfg["model"]["small"]
        lines.append(f"Mini scale: {sc['size']}x{sc['size']} px procedural scenes, {d['n_train']} "
                     f"training edits, a {sm['n_layers']}-layer d={sm['d_model']} MDM pre-trained "
                     f"{cfg['base']['train']['steps']} steps on a disjoint pool of {sc['n_base']} pairs (the base). "
                     "Paper: Lumina-DiMOO on 85,000 ImgEdit edits, 1,700 held out.")
    write_table(table, table_stem, "Table 1: instruction-based image editing.", scale, "\n\n".join(lines), digits=3,
                index_name="Method")
    _figure(cfg, frames, outputs_paths, data_dir, tokens_dir, vq_dir, fig_stem, scale)
    return table


def validation_table(cfg: dict, scale: str, metrics_paths: list[str], out_md: str) -> pd.DataFrame:
    """Table 1's columns on the VALIDATION edits, plus the share of edits left unchanged and the
    instruction score per edit kind: the numbers every choice of image settings is made on (the
    test edits feed only Table 1). Writes ``out_md`` and its .csv/.tex siblings."""
    from ..tables import write_table

    frames = {df["model"].iloc[0]: df for df in map(read_parquet, metrics_paths)}
    ours, _ = table1_rows(cfg, frames)
    instr_col = "instr_ok" if cfg["eval"]["instruction_score"] == "checker" else "vqascore"
    for m in ours.index:
        df = frames[m]
        ours.loc[m, "Unchanged %"] = 100.0 * float((df["n_code_changes"] == 0).mean())
        for kind, g in df.groupby("kind", sort=True):
            ours.loc[m, f"Instr. {kind}"] = 100.0 * float(np.nanmean(g[instr_col])) if g[instr_col].notna().any() \
                else float("nan")
    ours.index = [MODEL_NAMES[m] for m in ours.index]
    n = len(next(iter(frames.values())))
    write_table(ours, Path(out_md).with_suffix(""), "Image editing on the validation split", scale,
                notes=f"{n} validation edits, split by source like the test edits and never used for Table 1; "
                      "settings are chosen on these numbers. There are no paper numbers for this split.",
                digits=3, index_name="Method", paper=False)
    return ours


def _paint_masks(images: np.ndarray, codes: np.ndarray, f: int, colour=(146, 197, 222)) -> np.ndarray:
    """Paint the patches whose code is -1 (MASK) in the MASK colour."""
    out = images.copy()
    gh, gw = codes.shape[-2:]
    for b in range(len(codes)):
        for r, c in zip(*np.nonzero(codes[b] < 0)):
            out[b, r * f:(r + 1) * f, c * f:(c + 1) * f] = colour
    return out


def _figure(cfg, frames, outputs_paths, data_dir, tokens_dir, vq_dir, stem, scale) -> None:
    import textwrap

    import matplotlib.pyplot as plt

    from .. import figures
    spec, _ = load_layout(tokens_dir)
    outs = {df["model"].iloc[0]: df.set_index("id") for df in map(read_parquet, outputs_paths)}
    rm = frames.get("rm")
    # one example per kind, preferring edits RM got right after re-masking something
    pick = []
    if rm is not None:
        score = rm.assign(good=rm["instr_ok"].fillna(0) + (rm["n_code_changes"] > 0) + rm["coverage"].fillna(0) / 100)
        for _, g in score.sort_values("good", ascending=False).groupby("kind", sort=False):
            pick.append(g["id"].iloc[0])
    else:
        pick = list(next(iter(frames.values()))["id"])
    pick = pick[: int(cfg["eval"]["n_figure"])]
    codec = Codec(vq_dir)
    data = read_parquet(Path(data_dir) / "edits.parquet").set_index("id", drop=False)
    src, tgt, _ = load_pixels(cfg, data_dir, data.loc[pick])
    gh, gw = spec.grid_h, spec.grid_w
    cols = [("Source", src), ("Target", tgt)]
    for m in MODELS:
        if m in outs:
            codes = np.stack([np.asarray(outs[m].loc[i, "codes"]) for i in pick]).reshape(-1, gh, gw)
            cols.append((MODEL_NAMES[m].replace(", no tuning (Lumina)", ""), codec.decode(codes)))
    if "rm" in outs:
        T = int(cfg["rm"]["eval"]["turns"])
        traj = np.stack([np.asarray(outs["rm"].loc[i, "trajectory"]) for i in pick]).reshape(len(pick), T + 1, gh, gw)
        for t in range(1, T + 1):
            c = traj[:, t]
            cols.append((f"RM turn {t}", _paint_masks(codec.decode(np.where(c < 0, 0, c)), c, codec.downsample)))
    instr = data.loc[pick, "instruction"].tolist()
    fig, axes = plt.subplots(len(pick), len(cols), figsize=(1.25 * len(cols), 1.45 * len(pick)), squeeze=False)
    for r in range(len(pick)):
        for c, (name, imgs) in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(imgs[r], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=7)
        axes[r, 0].set_ylabel("\n".join(textwrap.wrap(instr[r], 22)), fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle(f"Image editing ({scale} scale): base / SFT / RM and RM's turns (blue patches: MASK)", fontsize=8)
    figures.save(fig, stem)
