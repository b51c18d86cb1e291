"""``rm-core image-*`` entry points (registered in rm_core.cli.COMMANDS): thin wrappers that parse
the rule's arguments and call the stage functions of the image-editing track."""

from __future__ import annotations


def _image_data(cfg, a):
    from . import image
    image.make_data(cfg, a.seed, a.out_dir)


def _image_vq(cfg, a):
    from . import image
    image.make_vq({**cfg, "seed": a.seed}, a.data_dir, a.out_dir)


def _image_tokens(cfg, a):
    from . import image
    image.make_tokens(cfg, a.data_dir, a.vq_dir, a.out_dir)


def _image_base(cfg, a):
    from . import image
    image.train_base(cfg, a.seed, a.tokens_dir, a.out_dir)


def _image_train(cfg, a):
    from . import image
    image.train_model(cfg, a.model, a.seed, a.tokens_dir, a.base_dir, a.out_dir)


def _image_eval(cfg, a):
    from . import image
    image.evaluate(cfg, a.model, a.model_dir, a.data_dir, a.tokens_dir, a.vq_dir, a.metrics, a.outputs,
                   split=a.split)


def _image_report(cfg, a):
    from . import image
    image.report(cfg, a.scale, a.metrics, a.outputs, a.data_dir, a.tokens_dir, a.vq_dir, a.table, a.figure)


def _image_validation(cfg, a):
    from . import image
    image.validation_table(cfg, a.scale, a.metrics, a.table)


IMAGE_COMMANDS = {
    "image-data": (_image_data, [("--seed", int), ("--out-dir", str)]),
    "image-vq": (_image_vq, [("--seed", int), ("--data-dir", str), ("--out-dir", str)]),
    "image-tokens": (_image_tokens, [("--data-dir", str), ("--vq-dir", str), ("--out-dir", str)]),
    "image-base": (_image_base, [("--seed", int), ("--tokens-dir", str), ("--out-dir", str)]),
    "image-train": (_image_train, [("--model", str), ("--seed", int), ("--tokens-dir", str), ("--base-dir", str),
                                   ("--out-dir", str)]),
    "image-eval": (_image_eval, [("--model", str), ("--model-dir", str), ("--data-dir", str), ("--tokens-dir", str),
                                 ("--vq-dir", str), ("--metrics", str), ("--outputs", str), ("--split", str)]),
    "image-report": (_image_report, [("--scale", str), ("--metrics", list), ("--outputs", list), ("--data-dir", str),
                                     ("--tokens-dir", str), ("--vq-dir", str), ("--table", str), ("--figure", str)]),
    "image-validation": (_image_validation, [("--scale", str), ("--metrics", list), ("--table", str)]),
}
