import numpy as np
import pytest
import torch

from rm_core.tasks.image.layout import (
    SEG_SRC,
    SEG_TEXT,
    SEG_TGT,
    aligned_source,
    build_batch,
    build_sequence,
    decode_text,
    dimoo_spec,
    encode_text,
    extract_grid,
    extract_target,
    key_padding_mask,
    mini_spec,
    non_code_ids,
    positions,
    uncond_sequence,
    uncond_text_ids,
)


def _codes(seed, spec):
    return np.random.default_rng(seed).integers(0, spec.codebook_size, (spec.grid_h, spec.grid_w))


def test_build_extract_roundtrip_and_editable():
    spec = mini_spec(grid_h=8, grid_w=8, codebook_size=512, text_len=96)
    src, tgt = _codes(0, spec), _codes(1, spec)
    instr = encode_text("make the red circle blue", spec)
    ids, editable, seg = build_sequence(instr, src, tgt, spec)
    block = 1 + 8 * 9 + 1
    assert ids.shape == (spec.seq_len,) and spec.seq_len == 1 + 96 + block + 1 + 1 + block + 1
    assert torch.equal(extract_target(ids, spec), torch.as_tensor(tgt))
    assert torch.equal(extract_grid(ids, spec, SEG_SRC), torch.as_tensor(src))
    assert torch.equal(editable, seg == SEG_TGT) and editable.sum() == 64
    assert ((ids[editable] >= spec.code_offset) & (ids[editable] < spec.vocab_size)).all()
    assert decode_text(ids[seg == SEG_TEXT].tolist(), spec) == "make the red circle blue"
    # rows end with the separator, images sit between BOI/EOI, answer between BOA/EOA
    tgt_start = int(torch.nonzero(editable)[0])
    assert ids[tgt_start - 1] == spec.boi_id and ids[tgt_start - 2] == spec.boa_id
    assert ids[tgt_start + 8] == spec.row_sep_id and ids[-1] == spec.eoa_id and ids[-2] == spec.eoi_id


def test_generation_start_and_uncond_variants():
    spec = mini_spec()
    ids, editable, seg = build_sequence(encode_text("remove the blue square", spec), _codes(2, spec), None, spec)
    assert (ids[editable] == spec.mask_id).all()
    assert (extract_target(ids, spec) == -1).all()
    u = uncond_sequence(ids, spec, drop_text=True, drop_image=False)
    assert torch.equal(u[seg == SEG_TEXT], uncond_text_ids(spec)) and u[seg == SEG_TEXT][0] == spec.uncond_id
    assert torch.equal(u[seg != SEG_TEXT], ids[seg != SEG_TEXT])
    ui = uncond_sequence(ids, spec, drop_text=False, drop_image=True)
    assert (ui[seg == SEG_SRC] == spec.mask_id).all() and torch.equal(ui[seg != SEG_SRC], ids[seg != SEG_SRC])
    kp = key_padding_mask(ids, spec)
    assert kp.sum() == spec.seq_len - (spec.text_len - len("remove the blue square"))


def test_batch_aligned_source_and_forbid():
    spec = mini_spec(grid_h=4, grid_w=4, codebook_size=32, text_len=20)
    srcs = np.stack([_codes(i, spec) for i in range(3)])
    tgts = np.stack([_codes(10 + i, spec) for i in range(3)])
    instrs = [encode_text(t, spec) for t in ("add a dot", "remove it", "x")]
    ids, editable, seg = build_batch(instrs, srcs, tgts, spec)
    assert ids.shape == (3, spec.seq_len) and torch.equal(extract_target(ids, spec), torch.as_tensor(tgts))
    al = aligned_source(ids, spec)
    assert torch.equal(extract_target(al, spec), torch.as_tensor(srcs))
    assert torch.equal(al[~editable], ids[~editable])
    forbid = set(non_code_ids(spec))
    assert len(forbid) == spec.vocab_size - spec.codebook_size and spec.mask_id in forbid
    assert not forbid & set(range(spec.code_offset, spec.code_offset + spec.codebook_size))


def test_dimoo_layout():
    spec = dimoo_spec(grid_h=32, grid_w=32, prompt_prefix=[11, 12, 13], prompt_suffix=[14, 15], text_len=40)
    src, tgt = _codes(3, spec), _codes(4, spec)
    ids, editable, seg = build_sequence([500, 501], src, tgt, spec)
    assert ids[:3].tolist() == [11, 12, 13] and ids[3:5].tolist() == [500, 501]
    assert ids[43] == 14 and ids[44] == spec.boi_id == 126349  # suffix[:-1], then the source
    assert positions(spec, SEG_SRC).sum() == 1024 and editable.sum() == 1024
    src_end = 44 + 1058
    assert ids[src_end - 1] == 126350 and ids[src_end] == 15 and ids[src_end + 1] == 126354
    assert ids[src_end + 2 + 33] == 126084  # newline after the first target row
    assert ids[editable].min() >= 126356 and torch.equal(extract_target(ids, spec), torch.as_tensor(tgt))


def test_errors():
    spec = mini_spec(text_len=5)
    with pytest.raises(ValueError):
        build_sequence(encode_text("too long", spec), _codes(0, spec), None, spec)
    with pytest.raises(ValueError):
        encode_text("add a Red ✓", spec)
    with pytest.raises(ValueError):
        build_sequence([], np.zeros((3, 3), int), None, spec)
