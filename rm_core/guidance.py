"""Classifier-free guidance for image editing, as a Denoiser wrapper, and its training dropout.

Inference (Lumina-DiMOO's image-to-image form, shared/notes/dimoo-imgedit-format.md §3):
    l = c + s_t (c - u_text) + s_i (c - u_img)
with c the conditional logits, u_text the logits with the instruction replaced by the
unconditional prompt, u_img the logits with the source image's content positions set
to wte(MASK) (ours: DiMOO drops the source image from the sequence; replacing it in
place keeps positions aligned and matches the training drop below). Both samplers
(rm_core.rule, rm_core.samplers) take any Denoiser, so CFG wraps the model.

Training (paper Appendix C step 8): independently per sample, text_drop ~ Bernoulli(p_text)
replaces the instruction by its unconditional prefix; image_drop ~ Bernoulli(p_image)
overwrites the image-content positions of the model input with wte(M), after the
RMSNorm of the history input (so the written value is the plain wte(M)).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

EmbedFn = Callable[[torch.Tensor], torch.Tensor]
MaskFn = Callable[[torch.Tensor], torch.Tensor]


def _scatter(e: torch.Tensor, positions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """e (B, N, d) with the (N,)-bool ``positions`` set to ``values`` ((n, d) or (d,))."""
    out = e.clone()
    out[:, positions.to(e.device)] = values.to(device=e.device, dtype=e.dtype)
    return out


def mask_at_positions(positions: torch.Tensor, values: torch.Tensor) -> MaskFn:
    """A branch-mask fn: attention mask (B, N) -> the same with ``values`` ((n,) bool) at the
    (N,)-bool ``positions`` (e.g. the unconditional text slot: only its UNCOND id visible)."""
    positions = positions.bool()
    values = torch.as_tensor(values).bool()

    def fn(am: torch.Tensor) -> torch.Tensor:
        out = am.clone()
        out[:, positions.to(am.device)] = values.to(device=am.device, dtype=am.dtype)
        return out

    return fn


def embed_at_positions(model, positions: torch.Tensor, ids: torch.Tensor) -> EmbedFn:
    """An uncond fn: inputs_embeds -> the same with ``model.embed(ids)`` written at
    ``positions`` ((N,) bool); ``ids`` is one id per selected position, or a single id."""
    positions = positions.bool()
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)

    def fn(e: torch.Tensor) -> torch.Tensor:
        vals = model.embed(ids.to(e.device)[None])[0]
        return _scatter(e, positions, vals if len(ids) > 1 else vals[0])

    return fn


class CFGDenoiser(nn.Module):
    """A Denoiser whose logits are l = c + s_t (c - u_text) + s_i (c - u_img).

    ``text_uncond_fn`` / ``image_uncond_fn`` map the conditional inputs_embeds to the
    unconditional ones; ``text_uncond_mask_fn`` maps the conditional attention mask to the
    text branch's (its slot pads differ; the image branch keeps the conditional mask). A zero
    scale skips its forward, so scales 0 give exactly the wrapped model's logits.
    ``batch_branches`` runs the needed branches as one forward.
    """

    def __init__(
        self,
        model,
        text_uncond_fn: Optional[EmbedFn] = None,
        image_uncond_fn: Optional[EmbedFn] = None,
        text_scale: float = 0.0,
        image_scale: float = 0.0,
        batch_branches: bool = True,
        text_uncond_mask_fn: Optional[MaskFn] = None,
    ):
        super().__init__()
        if text_scale and text_uncond_fn is None:
            raise ValueError("text_scale != 0 needs text_uncond_fn")
        if image_scale and image_uncond_fn is None:
            raise ValueError("image_scale != 0 needs image_uncond_fn")
        self.model = model
        self.text_uncond_fn, self.image_uncond_fn = text_uncond_fn, image_uncond_fn
        self.text_scale, self.image_scale = float(text_scale), float(image_scale)
        self.batch_branches = batch_branches
        self.text_uncond_mask_fn = text_uncond_mask_fn

    @classmethod
    def for_positions(
        cls, model, text_positions, uncond_text_ids, image_positions, text_scale: float, image_scale: float,
        uncond_text_visible=None, **kw
    ) -> "CFGDenoiser":
        """CFG from a fixed layout: the text slot gets ``uncond_text_ids``, the image
        positions get wte(MASK) (e.g. rm_core.tasks.image.layout positions/uncond_text_ids).
        ``uncond_text_visible`` ((n_text,) bool): the text branch's attention mask on the slot,
        used when the sampler passes an attention mask."""
        mask_fn = None if uncond_text_visible is None else mask_at_positions(text_positions, uncond_text_visible)
        return cls(
            model,
            embed_at_positions(model, text_positions, uncond_text_ids),
            embed_at_positions(model, image_positions, torch.tensor([model.mask_id])),
            text_scale,
            image_scale,
            text_uncond_mask_fn=mask_fn,
            **kw,
        )

    @property
    def mask_id(self) -> int:
        return self.model.mask_id

    @property
    def vocab_size(self) -> int:
        return self.model.vocab_size

    @property
    def hidden_size(self) -> int:
        return self.model.hidden_size

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed(ids)

    def logits(self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        branches, masks = [inputs_embeds], [attention_mask]
        if self.text_scale:
            branches.append(self.text_uncond_fn(inputs_embeds))
            tm = self.text_uncond_mask_fn
            masks.append(attention_mask if attention_mask is None or tm is None else tm(attention_mask))
        if self.image_scale:
            branches.append(self.image_uncond_fn(inputs_embeds))
            masks.append(attention_mask)
        if len(branches) == 1:
            return self.model.logits(inputs_embeds, attention_mask=attention_mask)
        if self.batch_branches:
            am = None if attention_mask is None else torch.cat(masks)
            outs = self.model.logits(torch.cat(branches), attention_mask=am).chunk(len(branches))
        else:
            outs = [self.model.logits(b, attention_mask=m) for b, m in zip(branches, masks)]
        c, rest = outs[0], list(outs[1:])
        out = c
        if self.text_scale:
            out = out + self.text_scale * (c - rest.pop(0))
        if self.image_scale:
            out = out + self.image_scale * (c - rest.pop(0))
        return out


def cfg_dropout(
    inputs_embeds: torch.Tensor,
    text_positions: torch.Tensor,
    uncond_text_embeds: torch.Tensor,
    image_positions: torch.Tensor,
    mask_embed: torch.Tensor,
    p_text: float = 0.1,
    p_image: float = 0.1,
    generator: Optional[torch.Generator] = None,
):
    """Appendix C step 8 on the final model input (B, N, d).

    text_positions: (N,) bool, the instruction slot; uncond_text_embeds: (n_text, d) the
    embeddings of the unconditional slot ids. image_positions: (N,) or (B, N) bool, the
    image-content positions; mask_embed: (d,) wte(M). Returns (embeds, text_drop (B,),
    image_drop (B,)); the draws are independent per sample and per kind.
    """
    b, n, d = inputs_embeds.shape
    dev = inputs_embeds.device
    gdev = generator.device if generator is not None else "cpu"  # a CUDA generator draws on CUDA
    text_drop = (torch.rand(b, generator=generator, device=gdev) < p_text).to(dev)
    image_drop = (torch.rand(b, generator=generator, device=gdev) < p_image).to(dev)
    text_positions = text_positions.to(dev).bool()
    fill = torch.zeros(n, d, device=dev, dtype=inputs_embeds.dtype)
    fill = fill.index_put((text_positions.nonzero(as_tuple=True)[0],), uncond_text_embeds.to(dev, inputs_embeds.dtype))
    out = torch.where((text_drop[:, None] & text_positions[None])[..., None], fill[None], inputs_embeds)
    img = image_positions.to(dev).bool()
    img = img[None] if img.dim() == 1 else img
    out = torch.where((image_drop[:, None] & img)[..., None], mask_embed.to(dev, inputs_embeds.dtype), out)
    return out, text_drop, image_drop
