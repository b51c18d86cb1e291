"""The text track (paper Tables 3-4).

Stages (one function each; the rules in workflow/rules/text.smk call them through ``rm-core``):

    data.make_data         -> train_pairs.parquet + the evaluation inputs of each split + tasks.json
    train.prepare_base     -> models/base/model.json (mini: pre-trained here; paper: the checkpoint)
    probe.probe            -> probe/topk.parquet: the frozen base's top-k per target position
    train.train            -> models/{sft,rm}_s<seed>/model.json
    evaluate.evaluate      -> eval/<model>.parquet (lm-eval, per sample) + scaling/trajectories
    report.report          -> Table 3, Table 4, figures; report.validation_table on the validation split

``model`` holds the prompt format and the pair layout (backbones load through
``rm_core.backbones.load``). Both scales run the
same functions; the config section ``text`` differs in values only (``backbone.kind``
small|llada, ``data.kind`` mini|benchmarks, sizes and budgets).
"""
