"""The image-editing track (paper Table 1): data -> VQ -> tokens -> base -> SFT / RM -> eval -> table.

Stages: ``data`` (edits, VQ, tokens), ``train`` (base, SFT, RM), ``evaluate`` (sampling and
metrics), ``report`` (Table 1, the validation table, the figure); ``model`` holds the models'
settings (loaded by ``rm_core.backbones.load``; figures are drawn by ``rm_core.figures``).
Each stage function reads its inputs, writes its outputs atomically and takes the track's config
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
