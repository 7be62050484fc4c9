"""What if a sample were different: an edited sample as a subject of its own, for every
per-sample view, and what the edit changed in the prediction.

:func:`edited` checks an edited input (shape, dtype, finite values, token ids in the
vocabulary) and returns a one-sample :class:`~interp.subject.Subject` sharing the model,
its copies and its metadata: the per-sample functions of every study (saliency, LRP,
sensitivity, activations, the sample's figures) take it at index 0 as they take the test
set at any index, so the faces need no second code path. Its results are cached apart
(the data fingerprint differs), and dataset-wide results stay those of the test set.
"""

from __future__ import annotations

import copy

import torch

from ..errors import InputError
from ..subject import Subject
from .overview import check_index, label_name, memo, population, predict

SHARED_MEMO = ("working", "saliency-model", ("cache", "identity"), "saliency-methods", "cam-layers", "encoder-rank")


def check_input(subject: Subject, x) -> torch.Tensor:
    """``x`` as one input of ``subject`` (the shape and dtype of a test sample, finite,
    token ids within the vocabulary); an InputError naming what is wrong otherwise."""
    like = subject.inputs[0]
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"an edited input must be numbers shaped {tuple(like.shape)}; got {exc}") from None
    if tuple(x.shape) != tuple(like.shape):
        raise InputError(f"an edited input must be shaped like a test sample, {tuple(like.shape)}; "
                         f"got {tuple(x.shape)}")
    if like.is_floating_point():
        if not x.is_floating_point() and x.dtype not in (torch.int64, torch.int32, torch.uint8):
            raise InputError(f"an edited input must be numbers; got {x.dtype}")
        x = x.to(like.dtype)
        if not bool(torch.isfinite(x).all()):
            raise InputError("an edited input must be finite; it has NaN or infinite values")
    else:
        if x.is_floating_point():
            if not bool((x == x.round()).all()):
                raise InputError("token ids must be whole numbers")
        x = x.to(like.dtype)
        size = len(subject.vocab) if subject.vocab else None
        if size is not None and (bool((x < 0).any()) or bool((x >= size).any())):
            raise InputError(f"token ids must be in [0, {size - 1}] (the vocabulary)")
    return x.detach().clone()


def edited(subject: Subject, index: int, x) -> Subject:
    """A subject holding one sample: ``x``, test sample ``index`` as edited (its label and
    truth kept), for every per-sample view at index 0. ``edited_from`` says which sample."""
    index = check_index(subject, index)
    x = check_input(subject, x)
    # the model's copies made once on the subject, shared by every edit (not one deep copy per edit)
    memo(subject, "working", subject.copy)
    memo(subject, "saliency-model", subject.copy)
    out = copy.copy(subject)
    out.inputs = x.unsqueeze(0)
    out.labels = subject.labels[index:index + 1] if subject.labels is not None else None
    out.truth = subject.truth[index:index + 1] if subject.truth is not None else None
    out.memo = {k: subject.memo[k] for k in SHARED_MEMO if k in subject.memo}  # the model's, not the data's
    out.population = population(subject)  # statistics (noise scale, mean baseline, ranges) stay the test set's
    out.edited_from = index
    out.original = subject  # the test set's own results (codes, statistics) are read there
    return out


def tokens(subject: Subject, text: str) -> torch.Tensor:
    """Token ids of ``text`` (words separated by spaces, each a vocabulary entry); an
    InputError naming the unknown words otherwise."""
    vocab = subject.vocab or []
    index = {word: i for i, word in enumerate(vocab)}
    words = text.split()
    unknown = [w for w in words if w not in index]
    if unknown:
        raise InputError(f"not in the vocabulary: {', '.join(repr(w) for w in unknown[:5])}")
    return torch.tensor([index[w] for w in words], dtype=subject.inputs.dtype)


def change(subject: Subject, index: int, x) -> str:
    """What editing sample ``index`` into ``x`` changed in the model's answer, in one line:
    the predicted class and its probability before and after (classifiers), else the output's
    (reconstruction error, score) before and after."""
    index = check_index(subject, index)
    x = check_input(subject, x)
    before = predict(subject, subject.inputs[index:index + 1])[0]
    after = predict(subject, x.unsqueeze(0))[0]
    if subject.is_classifier:
        b, a = int(before.argmax()), int(after.argmax())
        names = subject.classes
        moved = "unchanged" if a == b else "changed"
        return (f"prediction {moved}: {names[b]} ({float(before[b]):.3f}) → {names[a]} ({float(after[a]):.3f}); "
                f"P({names[b]}) {float(before[b]):.3f} → {float(after[b]):.3f}")
    if subject.task == "reconstruction":
        err = [float(((p - q) ** 2).mean()) for p, q in ((before, subject.inputs[index]), (after, x))]
        return f"reconstruction MSE {err[0]:.4f} → {err[1]:.4f}"
    if subject.task == "generation":
        return f"discriminator P(real) {float(before):.3f} → {float(after):.3f}"
    label = label_name(subject, index)
    return (f"outputs {', '.join(f'{float(v):.4g}' for v in before.reshape(-1)[:4])} → "
            f"{', '.join(f'{float(v):.4g}' for v in after.reshape(-1)[:4])}" + (f" (true {label})" if label else ""))


__all__ = ["edited", "check_input", "tokens", "change"]
