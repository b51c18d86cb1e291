"""The lm-eval model class ``rm_mdm``: any Denoiser + tokenizer + sampler settings.

generate_until
    x0 = [PAD]* prompt ([SEP]) + gen_length MASKs (``tasks/text/layout.py``), editable = the
    answer region; then ``rm_sample`` (sampler="rm", Eq. 1 with the configured history) or
    ``low_confidence_sample`` (sampler="low_confidence", LLaDA's baseline). Decoding is greedy
    whatever the task's gen_kwargs say, and the canvas is always ``gen_length`` tokens
    (``max_gen_toks`` is ignored). The answer ids are cut at the first stop id (EOS, the
    tokenizer's ``eot_id`` if any, plus ``stop_ids``), MASK/PAD ids left in the final state
    are dropped, and the text is cut at the earliest ``until`` string. ``turns`` (RM only) is the last turn that changed the sample.
    ``rm_init`` (ours; the paper states no first state for text): "mask" starts Eq. 1 from the
    all-MASK answer region; "draft" first decodes a draft with the low-confidence sampler in
    ``draft_steps`` steps (same model, no history) and runs the RM turns from it.

loglikelihood (forward only, no generation)
    log p(continuation | context) by LLaDA's Monte Carlo bound (get_log_likelihood.py): for
    each of ``mc_num`` samples mask x_j of the La answer tokens (x_j stratified over 1..La
    from a random offset, positions uniform), loss_j = sum over masked positions of
    -log p(target) / (x_j / La); the estimate is -mean_j loss_j. With La = 1 this is exact
    and one forward suffices (one sample is used). MASK is excluded from the softmax (the
    reveal branch of Eq. 1 never emits it). ``is_greedy`` is exact for La = 1 (argmax ==
    target) and False otherwise, as in LLaDA. With ``ll_eos_fill`` the answer is the
    continuation plus EOS up to gen_length (the mini layout: the full response region is
    scored). With ``ll_fill_visible`` as well, only the continuation's own ids are masked and the
    EOS fill stays visible: the score is log p(continuation | context, fill), which ranks choices
    of equal length exactly like the joint log p(continuation, fill | context) (the fill is the
    same for every choice); a single-id continuation then needs one forward. Each request's masks
    come from a generator seeded by (seed, request text), so a score does not depend on batching or order.
    ``ll_cfg`` = w > 0: LLaDA's classifier-free guidance, logits u + (w+1)(c − u) with u the
    forward pass where every prompt token is MASK (same answer masks). Differences from LLaDA kept
    on purpose: MASK is excluded from the softmax, and the stratified mask counts are drawn once
    over all ``mc_num`` samples (LLaDA redraws the offset per mini-batch); both leave the estimate
    a bound of the same quantity, with no more variance.
    ``suppress_ids``: LLaDA's confidence_eos_eot_inf for the low-confidence sampler and the draft.

loglikelihood_rolling raises: no task here needs perplexity.

Every request appends a dict to ``self.records`` (task, doc_id, idx, request, context,
continuation, generation, logprob, turns, masks_left, truncated); ``lm_eval_tasks.run``
joins them with lm-eval's per-sample metrics.
"""

from __future__ import annotations

import zlib
from typing import Callable, Optional, Sequence

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from rm_core.history import HistoryConfig
from rm_core.rule import rm_sample
from rm_core.samplers import low_confidence_sample
from rm_core.tasks.text.layout import batch_layout, prompt_ids

SAMPLERS = ("rm", "low_confidence")


@register_model("rm_mdm")
class RMDiffusionLM(LM):
    def __init__(
        self,
        model=None,
        tokenizer=None,
        sampler: str = "rm",
        steps: int = 64,
        gen_length: int = 64,
        block_length: Optional[int] = None,
        schedule: str = "linear",
        history: HistoryConfig | dict | None = None,
        forbid_ids: Optional[Sequence[int]] = None,
        early_stop: bool = False,
        stop_ids: Optional[Sequence[int]] = None,
        prompt_len: Optional[int] = None,
        append_sep: Optional[bool] = None,
        prompt_formatter: Optional[Callable[[str], str]] = None,
        batch_size: int = 8,
        mc_num: int = 128,
        mc_batch_size: int = 32,
        ll_cfg: float = 0.0,
        suppress_ids: Optional[Sequence[int]] = None,
        ll_eos_fill: bool = False,
        ll_fill_visible: bool = False,
        rm_init: str = "mask",
        draft_steps: int = 0,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__()
        if model is None or tokenizer is None:
            raise ValueError("rm_mdm needs model= (a Denoiser) and tokenizer= objects; build it in Python, not from a string")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.model, self.tok = model, tokenizer
        self.sampler, self.steps, self.gen_length = sampler, int(steps), int(gen_length)
        self.block_length, self.schedule = block_length, schedule
        self.history = HistoryConfig(**history) if isinstance(history, dict) else history
        self.forbid_ids = list(forbid_ids) if forbid_ids else None
        self.early_stop = bool(early_stop)
        eot = getattr(tokenizer, "eot_id", None)
        self.stop_ids = {tokenizer.eos_id, *([eot] if eot is not None else []), *(stop_ids or [])}
        self.prompt_len, self.append_sep = prompt_len, append_sep
        self.prompt_formatter = prompt_formatter or (lambda s: s)
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 8
        self.mc_num, self.mc_batch_size = int(mc_num), int(mc_batch_size)
        if float(ll_cfg) < 0:
            raise ValueError(f"ll_cfg must be >= 0, got {ll_cfg}")
        self.ll_cfg = float(ll_cfg)
        self.suppress_ids = list(suppress_ids) if suppress_ids else None
        self.ll_eos_fill, self.seed = bool(ll_eos_fill), int(seed)
        self.ll_fill_visible = bool(ll_fill_visible)
        if rm_init not in ("mask", "draft"):
            raise ValueError(f"rm_init must be 'mask' or 'draft', got {rm_init!r}")
        if rm_init == "draft" and int(draft_steps) < 1:
            raise ValueError("rm_init='draft' needs draft_steps >= 1")
        self.rm_init, self.draft_steps = rm_init, int(draft_steps)
        self.records: list[dict] = []

    # ---- helpers ------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        p = next(iter(getattr(self.model, "parameters", lambda: iter(()))()), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def tokenizer_name(self) -> str:
        return type(self.tok).__name__

    def _record(self, req, **fields) -> None:
        rec = {"task": req.task_name, "doc_id": req.doc_id, "idx": req.idx, "request": req.request_type,
               "context": req.args[0], "continuation": None, "generation": None, "logprob": None,
               "turns": None, "masks_left": None, "truncated": False}
        rec.update(fields)
        self.records.append(rec)

    def _decode_answer(self, ids: list[int]) -> tuple[str, int]:
        out, left = [], 0
        for i in ids:
            if i in self.stop_ids:
                break
            if i == self.tok.mask_id:
                left += 1
            elif i != self.tok.pad_id:
                out.append(i)
        return self.tok.decode(out), left

    # ---- generation ---------------------------------------------------------------------

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        prompts = [self.prompt_formatter(r.args[0]) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]))
        out: list[Optional[str]] = [None] * len(requests)
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            lay = batch_layout(self.tok, [prompts[i] for i in idx], self.gen_length, prompt_len=self.prompt_len,
                               append_sep=self.append_sep, truncate=True)
            x0, editable, attn = (lay[k].to(self.device) for k in ("ids", "editable", "attention_mask"))
            x, turns = self._sample(x0, editable, attn)
            width = x0.shape[1] - self.gen_length
            for j, i in enumerate(idx):
                text, left = self._decode_answer(x[j, width:].tolist())
                until = requests[i].args[1].get("until") or []
                until = [until] if isinstance(until, str) else until
                cuts = [text.find(u) for u in until if u and u in text]
                text = text[: min(cuts)] if cuts else text
                out[i] = text
                self._record(requests[i], generation=text, masks_left=left, truncated=bool(lay["truncated"][j]),
                             turns=None if turns is None else int(turns[j]))
        return out

    def _draft(self, x0, editable, attn):
        if self.rm_init == "draft":
            return low_confidence_sample(self.model, x0, editable, self.draft_steps, block_length=self.block_length,
                                         forbid_ids=self.forbid_ids, attention_mask=attn, schedule=self.schedule,
                                         suppress_ids=self.suppress_ids)
        return x0

    def _sample(self, x0, editable, attn):
        if self.sampler == "rm":
            res = rm_sample(self.model, self._draft(x0, editable, attn), editable, self.steps, history=self.history,
                            forbid_ids=self.forbid_ids, early_stop=self.early_stop, attention_mask=attn)
            return res.x.cpu(), res.turns.cpu()
        x = low_confidence_sample(self.model, x0, editable, self.steps, block_length=self.block_length,
                                  forbid_ids=self.forbid_ids, attention_mask=attn, schedule=self.schedule,
                                  suppress_ids=self.suppress_ids)
        return x.cpu(), None

    @torch.no_grad()
    def sample_trajectory(self, x0, editable, attn, turns: int) -> torch.Tensor:
        """The RM states x^(0..turns) (B, turns+1, N) from the configured first state (test-time scaling)."""
        res = rm_sample(self.model, self._draft(x0, editable, attn), editable, turns, history=self.history,
                        forbid_ids=self.forbid_ids, early_stop=False, attention_mask=attn, return_trajectory=True)
        return res.trajectory

    # ---- likelihood ---------------------------------------------------------------------

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int], int]:
        """Prompt block, answer ids and the number of continuation ids before any EOS fill;
        without [SEP], split the joint encoding as LLaDA does."""
        context = self.prompt_formatter(context)
        ctx = prompt_ids(self.tok, context, self.append_sep)
        sep = getattr(self.tok, "sep_id", None)
        uses_sep = bool(ctx) and sep is not None and ctx[-1] == sep
        if uses_sep:
            ans = list(self.tok.encode(continuation))
        else:
            whole = list(self.tok.encode(context + continuation))
            ans = whole[len(ctx):] if whole[: len(ctx)] == ctx else list(self.tok.encode(continuation))
        n_cont = len(ans)
        if self.ll_eos_fill:
            if len(ans) > self.gen_length:
                raise ValueError(f"continuation of {len(ans)} ids > gen_length {self.gen_length}")
            ans = ans + [self.tok.eos_id] * (self.gen_length - len(ans))
        if self.prompt_len is not None:
            ctx = ctx[-self.prompt_len :]
        return ctx, ans, n_cont

    def _mask_plan(self, la: int, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, la) bool masks with stratified counts, and the counts."""
        k0 = int(torch.randint(1, la + 1, (), generator=gen))
        counts = torch.round(torch.linspace(float(k0), k0 + (n - 1) * la / n, n)).long()
        counts = (counts - 1) % la + 1
        ranks = torch.stack([torch.randperm(la, generator=gen) for _ in range(n)])
        return ranks < counts[:, None], counts

    @torch.no_grad()
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        rows = []  # (request index, prompt ids, answer ids, mask over answer, weight La/x)
        pairs = [self._encode_pair(*r.args) for r in requests]
        for ri, (req, (ctx, ans, n_cont)) in enumerate(zip(requests, pairs)):
            la = n_cont if (self.ll_eos_fill and self.ll_fill_visible) else len(ans)
            if la == 0:
                raise ValueError(f"empty continuation in request {req.args!r}")
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32("\0".join(req.args).encode()))
            n = 1 if la == 1 else self.mc_num
            masks, counts = self._mask_plan(la, n, gen)
            if la < len(ans):  # the EOS fill stays visible
                masks = torch.cat([masks, torch.zeros(n, len(ans) - la, dtype=torch.bool)], dim=1)
            rows += [(ri, ctx, ans, masks[j], la / int(counts[j])) for j in range(n)]
        total = torch.zeros(len(requests), dtype=torch.float64)
        nsamp = torch.zeros(len(requests), dtype=torch.float64)
        greedy = [False] * len(requests)
        for s in range(0, len(rows), self.mc_batch_size):
            chunk = rows[s : s + self.mc_batch_size]
            loss, hit = self._score_rows(chunk)
            for (ri, _, ans, m, _), l, h in zip(chunk, loss, hit):
                total[ri] += l
                nsamp[ri] += 1
                if int(m.sum()) == len(ans) == 1 or (self.ll_fill_visible and pairs[ri][2] == 1):
                    greedy[ri] = bool(h)
        out = []
        for ri, req in enumerate(requests):
            ll = float(-total[ri] / nsamp[ri])
            out.append((ll, greedy[ri]))
            self._record(req, continuation=req.args[1], logprob=ll)
        return out

    def _score_rows(self, chunk) -> tuple[list[float], list[bool]]:
        """Weighted masked NLL of each row, and whether every masked target is the argmax."""
        pad, mask_id = self.tok.pad_id, self.tok.mask_id
        width = self.prompt_len if self.prompt_len is not None else max(len(c) for _, c, _, _, _ in chunk)
        alen = max(len(a) for _, _, a, _, _ in chunk)
        ids, un_ids, attn, target, masked, weight = [], [], [], [], [], []
        for _, ctx, ans, m, w in chunk:
            lp, ra = width - len(ctx), alen - len(ans)
            a = [mask_id if mi else t for t, mi in zip(ans, m.tolist())]
            ids.append([pad] * lp + ctx + a + [pad] * ra)
            un_ids.append([pad] * lp + [mask_id] * len(ctx) + a + [pad] * ra)
            attn.append([0] * lp + [1] * (len(ctx) + len(ans)) + [0] * ra)
            target.append([pad] * (lp + len(ctx)) + ans + [pad] * ra)
            masked.append([False] * (lp + len(ctx)) + m.tolist() + [False] * ra)
            weight.append(w)
        dev = self.device
        ids_t = torch.tensor(ids, device=dev)
        attn_t = torch.tensor(attn, device=dev)
        m_t = torch.tensor(masked, device=dev)
        logits = self.model.logits(self.model.embed(ids_t), attention_mask=attn_t)
        sel = logits[m_t].float()  # (masked positions, V): the full-vocab float copy stays small
        del logits
        if self.ll_cfg:  # LLaDA's CFG: u + (w+1)(c - u), u = the prompt tokens replaced by MASK
            un = self.model.logits(self.model.embed(torch.tensor(un_ids, device=dev)), attention_mask=attn_t)
            u = un[m_t].float()
            del un
            sel = u + (self.ll_cfg + 1.0) * (sel - u)
        sel[:, mask_id] = float("-inf")
        logp = torch.log_softmax(sel, dim=-1)
        tgt = torch.tensor(target, device=dev)[m_t]
        nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1).double()
        rows = m_t.nonzero()[:, 0]
        loss = torch.zeros(len(chunk), dtype=torch.float64, device=dev).index_add_(0, rows, nll)
        hit = torch.ones(len(chunk), dtype=torch.bool, device=dev)
        hit[rows[logp.argmax(-1) != tgt]] = False
        loss = loss.cpu() * torch.tensor(weight, dtype=torch.float64)
        return loss.tolist(), hit.cpu().tolist()

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            "rm_mdm does not implement loglikelihood_rolling: no task of this reproduction needs perplexity, "
            "and an MDM has no exact rolling likelihood (it would need the same Monte Carlo bound per window)"
        )
