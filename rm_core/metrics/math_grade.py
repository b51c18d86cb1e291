"""Math answer grading with math-verify (MATH-500, Minerva MATH, the mini math task).

``grade(gold, prediction)`` parses the gold FIRST (math-verify's ``verify`` is asymmetric:
gold first). A short gold answer is wrapped as ``\\boxed{gold}``; a gold that already holds
``\\boxed`` (a full worked solution) is parsed as is, so multi-answer solutions become sets.
The prediction is parsed as free text: math-verify takes a ``\\boxed{}`` if present, else the
last LaTeX / plain expression (``require_boxed=True`` grades only the last ``\\boxed{}``).
math-verify guards parsing with ``signal.alarm``, which only works in the main thread;
elsewhere the timeouts are switched off (``None``).
"""

from __future__ import annotations

import threading

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces; None if absent.

    ``\\boxed 5`` (no braces) gives "5".
    """
    if not text:
        return None
    start = max(text.rfind(c) for c in _BOX_COMMANDS)
    if start < 0:
        return None
    i = text.index("\\", start) + 1
    while i < len(text) and text[i].isalpha():
        i += 1
    if i < len(text) and text[i] == " ":
        rest = text[i + 1 :]
        return rest.split("$")[0].split()[0] if rest.strip() else None
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def _timeouts() -> dict:
    if threading.current_thread() is threading.main_thread():
        return {}
    return {"parsing_timeout": None}


def gold_text(gold_answer: str) -> str:
    """The gold string as math-verify should see it: wrapped in ``\\boxed{}`` unless it has one."""
    return gold_answer if "\\boxed" in gold_answer else "\\boxed{" + gold_answer + "}"


def grade(gold_answer: str, prediction_text: str, require_boxed: bool = False) -> bool:
    """True iff math-verify finds the prediction equal to the gold; any parser error is False.

    ``require_boxed``: grade only the last ``\\boxed{}`` of the prediction (False if none).
    """
    from math_verify import parse, verify

    if prediction_text is None or gold_answer is None:
        return False
    if require_boxed:
        boxed = extract_boxed(prediction_text)
        if boxed is None:
            return False
        prediction_text = "\\boxed{" + boxed + "}"
    kw = _timeouts()
    try:
        gold = parse(gold_text(str(gold_answer)), **kw)
        pred = parse(str(prediction_text), **kw)
        if not gold or not pred:
            return False
        vkw = {} if not kw else {"timeout_seconds": None}
        return bool(verify(gold, pred, **vkw))
    except Exception:
        return False
