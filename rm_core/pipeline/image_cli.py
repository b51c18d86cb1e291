"""``rm-core image-*`` entry points (registered in rm_core.cli.COMMANDS): thin wrappers that parse
the rule's arguments and call the stage functions of the image-editing track."""

from __future__ import annotations


def _setup(a) -> dict:
    from ..cli import _setup as setup

    return setup(a)


def _image_data(a):
    from . import image
    image.make_data(_setup(a), a.seed, a.out_dir)


def _image_vq(a):
    from . import image
    cfg = _setup(a)
    image.make_vq({**cfg, "seed": a.seed}, a.data_dir, a.out_dir)


def _image_tokens(a):
    from . import image
    image.make_tokens(_setup(a), a.data_dir, a.vq_dir, a.out_dir)


def _image_base(a):
    from . import image
    image.train_base(_setup(a), a.seed, a.tokens_dir, a.out_dir)


def _image_train(a):
    from . import image
    image.train_model(_setup(a), a.model, a.seed, a.tokens_dir, a.base_dir, a.out_dir)


def _image_eval(a):
    from . import image
    image.evaluate(_setup(a), a.model, a.model_dir, a.data_dir, a.tokens_dir, a.vq_dir, a.metrics, a.outputs)


def _image_report(a):
    from . import image
    image.report(_setup(a), a.scale, a.metrics, a.outputs, a.data_dir, a.tokens_dir, a.vq_dir, a.table, a.figure)


IMAGE_COMMANDS = {
    "image-data": (_image_data, [("--seed", int), ("--out-dir", str)]),
    "image-vq": (_image_vq, [("--seed", int), ("--data-dir", str), ("--out-dir", str)]),
    "image-tokens": (_image_tokens, [("--data-dir", str), ("--vq-dir", str), ("--out-dir", str)]),
    "image-base": (_image_base, [("--seed", int), ("--tokens-dir", str), ("--out-dir", str)]),
    "image-train": (_image_train, [("--model", str), ("--seed", int), ("--tokens-dir", str), ("--base-dir", str),
                                   ("--out-dir", str)]),
    "image-eval": (_image_eval, [("--model", str), ("--model-dir", str), ("--data-dir", str), ("--tokens-dir", str),
                                 ("--vq-dir", str), ("--metrics", str), ("--outputs", str)]),
    "image-report": (_image_report, [("--scale", str), ("--metrics", list), ("--outputs", list), ("--data-dir", str),
                                     ("--tokens-dir", str), ("--vq-dir", str), ("--table", str), ("--figure", str)]),
}
