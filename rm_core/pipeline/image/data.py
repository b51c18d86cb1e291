"""The image track, data stages: edits (mini scenes or ImgEdit) with train / validation / test
splits by source, the VQ tokenizer, and the token grids in the DiMOO edit layout."""

from __future__ import annotations

import glob
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ...io import read_parquet, write_json, write_parquet
from ...tasks.image.layout import (LayoutSpec, aligned_source, build_batch)
from ...tasks.image.vq import Codec
from .model import is_mini

log = logging.getLogger(__name__)


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


def scene_spec_of(cfg: dict):
    from ...tasks.image.scenes import SceneSpec
    sc = cfg["data"]["scenes"]
    return SceneSpec(size=sc["size"], cell=sc["cell"], min_objects=sc["min_objects"], max_objects=sc["max_objects"],
                     shapes=tuple(sc["shapes"]), colours=tuple(sc["colours"]), backgrounds=tuple(sc["backgrounds"]),
                     place_names=sc["place_names"])


def make_data(cfg: dict, seed: int, edits: str, pool: str | None = None) -> pd.DataFrame:
    """Mini: the scenes dataset (train/val/test, split by source scene) + the base pre-training
    pool (``base.parquet``, scenes disjoint from all three). Paper: ImgEdit prepared by
    rm_core.tasks.image.imgedit.prepare_imgedit (PNGs under ``images/``), the validation edits
    carved out of the training side after the training quota. ``data.n_val`` validation edits,
    drawn last, so train and test do not depend on them; every setting is chosen on them."""
    d, out = cfg["data"], Path(edits).parent  # images (paper) go beside ``edits``
    if d["kind"] == "scenes":
        from ...tasks.image.scenes import SCHEMA_DOC, build_edit_dataset, draw_pool
        spec, sc = scene_spec_of(cfg), d["scenes"]
        kinds = tuple(sc["kinds"])

        def training_sides(train_weights=None, pool_weights=None, exclude=frozenset()):
            df = build_edit_dataset(d["n_train"], d["n_test"], seed, spec, kinds, sc["edits_per_scene"],
                                    train_weights, exclude_scenes=exclude)
            pool_ = draw_pool(sc["n_base"], [seed, 2], spec, kinds, sc["edits_per_scene"],
                              exclude_scenes=set(df["scene_before"]) | exclude, split="pool",
                              kind_weights=pool_weights)
            return df, pool_

        df, pretrain = training_sides()
        val = draw_pool(d["n_val"], [seed, 3], spec, kinds, sc["edits_per_scene"],
                        exclude_scenes=set(df["scene_before"]) | set(pretrain["scene_before"]), split="val")
        train_w = sc["train_kind_weights"]
        pool_w = sc["pool_kind_weights"] or train_w  # ours: the base's pool by its own weights, else the training edits'
        if train_w or pool_w:  # ours: the training sides drawn again by kind weight, away from the validation
            # scenes, so validation and test are those of the uniform draw whatever the weights
            df, pretrain = training_sides(train_w, pool_w, frozenset(val["scene_before"]))
        df = pd.concat([df, val], ignore_index=True)
        write_parquet(df, edits, SCHEMA_DOC)
        write_parquet(pretrain, pool or out / "base.parquet", SCHEMA_DOC)
        log.info("scenes: %d train, %d validation, %d test, %d base-pool edits", (df.split == "train").sum(),
                 len(val), (df.split == "test").sum(), len(pretrain))
        return df
    if d["kind"] != "imgedit":
        raise ValueError(f"image.data.kind must be scenes or imgedit, got {d['kind']!r}")
    from ...tasks.image.imgedit import SCHEMA_DOC, DiffRule, prepare_imgedit
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
    write_parquet(df, edits, SCHEMA_DOC)
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
        from ...tasks.image.codec import stack_images, stack_masks
        return stack_images(rows["source"]), stack_images(rows["target"]), stack_masks(rows["region"])
    from ...tasks.image.imgedit import load_example
    ex = [load_example(r, data_dir) for _, r in rows.iterrows()]
    return tuple(np.stack(x) for x in zip(*ex))


def make_vq(cfg: dict, seed: int, edits: str, vq: str) -> None:
    """Mini: fit the k-means patch VQ on the training images (source and target). Paper:
    check that the checkpoint's VQ loads offline and matches the model; record where it is."""
    out_dir = Path(vq).parent  # vq = <out>/config.json
    v = cfg["vq"]
    if v["kind"] == "patch":
        from ...tasks.image.codec import stack_images
        from ...tasks.image.vq import PatchVQ
        df = read_parquet(edits)
        tr = df[df.split == "train"]
        imgs = np.concatenate([stack_images(tr["source"]), stack_images(tr["target"])])
        patch_vq = PatchVQ(v["n_codes"], v["patch"], seed=seed).fit(imgs)
        patch_vq.save(out_dir)
        log.info("patch VQ: %d codes, patch %d, %d distinct training patches", patch_vq.n_codes, patch_vq.patch,
                 patch_vq.n_distinct)
        return
    from ...backbones.dimoo import DiMOOConfig, load_vq, vq_downsample
    ckpt = Path(cfg["model"]["checkpoint"])
    require_checkpoint(ckpt)
    model_vq = load_vq(ckpt)
    mcfg = DiMOOConfig.from_file(ckpt / "config.json")
    n, f = int(model_vq.config.num_vq_embeddings), vq_downsample(model_vq)
    if n != mcfg.num_image_codes:
        raise ValueError(f"{ckpt}: the VQ has {n} codes but the model {mcfg.num_image_codes} image codes")
    if (n, f) != (int(v["n_codes"]), int(v["patch"])):
        raise ValueError(f"{ckpt}/vqvae has {n} codes and downsampling {f}; config image.vq says n_codes "
                         f"{v['n_codes']}, patch {v['patch']}")
    write_json({"kind": "dimoo-vq", "checkpoint": str(ckpt.resolve()), "n_codes": n, "downsample": f}, vq)


def require_checkpoint(ckpt: Path) -> None:
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(
            f"Lumina-DiMOO checkpoint not found at {ckpt} (no config.json). Download Alpha-VLLM/Lumina-DiMOO "
            f"(`huggingface-cli download Alpha-VLLM/Lumina-DiMOO --local-dir {ckpt}`) and set image.model.checkpoint.")


def _dimoo_layout(cfg: dict, grid_h: int, grid_w: int) -> tuple[LayoutSpec, object]:
    from transformers import PreTrainedTokenizerFast

    from ...backbones.dimoo import DiMOOConfig
    ckpt = Path(cfg["model"]["checkpoint"])
    require_checkpoint(ckpt)
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
        from ...tasks.image.words import WordVocab
        return spec, WordVocab(tuple(meta["words"])).encode
    if cfg is None:
        return spec, None
    return spec, _dimoo_layout(cfg, spec.grid_h, spec.grid_w)[1]


def make_tokens(cfg: dict, edits: str, vq: str, tokens: str, layout: str) -> LayoutSpec:
    """Token grids of every image, cached as Parquet, and the layout (``layout.json``)."""
    data_dir, vq_dir, out = Path(edits).parent, Path(vq).parent, Path(tokens).parent  # inputs; outputs tokens, layout
    codec = Codec(vq_dir)
    frames = {"edits": read_parquet(edits)}
    if is_mini(cfg):
        frames["base"] = read_parquet(data_dir / "base.parquet")
    text_len = int(cfg["text"]["text_len"])
    grids = {}
    for name, df in frames.items():
        src, tgt, _ = load_pixels(cfg, str(data_dir), df)
        grids[name] = (codec.encode(src), codec.encode(tgt))
    gh, gw = grids["edits"][0].shape[1:]
    if cfg["text"]["kind"] == "words":
        from ...tasks.image.words import WordVocab
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
        write_parquet(out_df, tokens if name == "edits" else out / f"{name}.parquet", TOKENS_SCHEMA)
        log.info("%s: %d examples, grid %dx%d, mean %.1f changed codes", name, len(out_df), gh, gw,
                 out_df.n_changed_codes.mean())
    write_json({"spec": asdict(spec), "seq_len": spec.seq_len, **extra}, layout)
    return spec


def sequences(df: pd.DataFrame, spec: LayoutSpec, with_target: bool = True) -> dict:
    """Full id sequences (B, N), the editable row (N,) and the source-aligned ids (B, N)."""
    g = lambda col: [np.array(c, dtype=np.int64).reshape(spec.grid_h, spec.grid_w) for c in df[col]]  # noqa: E731
    ids, editable, _ = build_batch(list(df["instr_ids"]), g("source_codes"),
                                   g("target_codes") if with_target else None, spec)
    return {"ids": ids, "editable": editable[0], "src": aligned_source(ids, spec)}
