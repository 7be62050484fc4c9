"""What to inspect: a model, its data, and what they mean (the seam the faces stand on).

    subject = interp.Subject(model, (x_test, y_test), classes=["cat", "dog"], name="pets")
    dashboard.serve([subject]);  reports.build([subject], out="reports-out")

A :class:`Subject` is to the dashboard and the reports what ``ClassifierExplainer(model,
X, y)`` is to ExplainerDashboard and a model/dataset spec to LIT: one small, validated
description the faces read, and nothing else. The zoo, a user's file and a Python call
all make one. It is checked when built: one forward pass on two samples (on a copy in
eval mode: the user's model is never run, hooked or switched by the faces), labels
within the outputs, names that fit; errors name the shapes and dtypes. What is not
given is inferred, and :meth:`Subject.describe` says which fields were: the task from
the outputs and labels, the modality from the inputs' dtype and rank, class names
0..k-1, a vocabulary from a tokenizer callable.

The faces analyse copies of the model taken here, once, before any analysis ran
(:meth:`Subject.copy`): LRP rewrites modules and capture hooks them while they run, and
the dashboard runs its views on several threads, so nothing of one analysis can reach
another or the user's own module.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .errors import InputError, ModelError

TASKS = ("classification", "regression", "reconstruction", "generation")
MODALITIES = ("image", "tabular", "tokens", "series")
OBJECTIVES = {"class": "classification", "output": "regression", "error": "reconstruction",
              "latent": "reconstruction", "real": "generation"}
LOADER_LIMIT = 5000  # samples taken from a DataLoader unless ``limit`` says otherwise


def _tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise InputError(f"{what} is a numpy array of Python objects; expected numbers")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise InputError(f"{what} must be a tensor or a numpy array; got {type(value).__name__}"
                     + (" (several inputs: the dashboard and reports take models of one input tensor; wrap the "
                        "model so it takes one)" if isinstance(value, (tuple, list, dict)) else ""))


def _from_batches(batches: Iterable, limit: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    xs, ys, n = [], [], 0
    for batch in batches:
        if isinstance(batch, Mapping):
            raise InputError("a DataLoader yielding dicts is not supported yet; yield (inputs, labels) tuples")
        if isinstance(batch, (tuple, list)):
            if not 1 <= len(batch) <= 3:
                raise InputError(f"a batch of the data is a {type(batch).__name__} of {len(batch)} items; "
                                 "expected (inputs, labels)")
            x, y = batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            x, y = batch, None
        xs.append(_tensor(x, "a batch's inputs"))
        if y is not None:
            ys.append(_tensor(y, "a batch's labels"))
        n += len(xs[-1])
        if n >= limit:
            break
    if not xs:
        raise InputError("the data yielded no batch; expected at least one sample")
    if ys and len(ys) != len(xs):
        raise InputError("some batches of the data have labels and some do not")
    x = torch.cat(xs)[:limit]
    return x, (torch.cat(ys)[:limit] if ys else None)


def _split(data, labels, limit: int | None) -> tuple[torch.Tensor, torch.Tensor | None, str | None]:
    """(inputs, labels, a note on how the data was read)."""
    note = None
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], (torch.Tensor, np.ndarray)):
        if labels is not None:
            raise InputError("labels were given twice: in data=(inputs, labels) and as labels=")
        x, y = _tensor(data[0], "data[0] (the inputs)"), _tensor(data[1], "data[1] (the labels)")
    elif isinstance(data, (torch.Tensor, np.ndarray)):
        if isinstance(labels, (list, tuple)):
            labels = np.asarray(labels)
        x, y = _tensor(data, "data"), (None if labels is None else _tensor(labels, "labels"))
    elif isinstance(data, (tuple, list, Mapping)) or not isinstance(data, Iterable):
        several = isinstance(data, (tuple, list, Mapping)) and len(data) != 2
        raise InputError(f"data must be the inputs (a tensor), (inputs, labels), or a DataLoader; got "
                         f"{type(data).__name__}" + (f" of {len(data)} items" if hasattr(data, "__len__") else "")
                         + ("; for several inputs: the dashboard and reports take models of one input tensor "
                            "for now, so wrap the model to take one" if several else ""))
    else:
        x, y = _from_batches(data, limit or LOADER_LIMIT)
        note = f"{len(x)} samples read from {type(data).__name__}" + (
            f" (the first {limit or LOADER_LIMIT})" if len(x) == (limit or LOADER_LIMIT) else "")
        if labels is not None:
            if y is not None:
                raise InputError("labels were given twice: in the DataLoader's batches and as labels=")
            y = _tensor(labels, "labels")[:len(x)]
    if limit is not None and note is None:
        x, y = x[:limit], (None if y is None else y[:limit])
    if x.ndim < 2:
        raise InputError(f"the inputs have shape {tuple(x.shape)}; expected a batch: (samples, ...) with at least "
                         "one more axis (a single feature vector is (1, features))")
    if len(x) == 0:
        raise InputError("the data has no samples")
    if y is not None:
        if y.ndim == 2 and y.shape[1] == 1 and not y.is_floating_point():
            y = y[:, 0]
        if len(y) != len(x):
            raise InputError(f"{len(x)} inputs but {len(y)} labels; expected one label per sample")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise InputError("the inputs contain NaN or infinite values; clean or impute them first")
    return x, y, note


def _forward(model: nn.Module, x: torch.Tensor, what: str):
    try:
        with torch.no_grad():
            return model(x)
    except Exception as exc:  # noqa: BLE001  (the user's model: any failure is reported, none is ours)
        from .inputs import as_inputs, blamed

        err = blamed(model, as_inputs(x, model), what, exc)
        raise type(err)(f"{what}: {err}") from exc


def _outputs_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = _forward(model, x, f"checking the model on two samples of the data (shape {tuple(x.shape)}, {x.dtype})")
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        raise ModelError(f"the model returns a {type(out).__name__} of {len(out)} parts; the faces read one tensor: "
                         "wrap it to return the scores to explain (e.g. interp.objectives.OutputPart(model, 0))")
    if not isinstance(out, torch.Tensor):
        logits = getattr(out, "logits", None)
        hint = (f" (a Hugging Face output with logits shaped {tuple(logits.shape)}: explain one position, e.g. "
                "interp.huggingface.Scores(model, position='last'))") if isinstance(logits, torch.Tensor) else ""
        raise ModelError(f"the model returns {type(out).__name__}; the faces read one tensor of scores{hint}")
    return out


def _judge_task(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None, parts) -> str:
    if "generator" in parts:
        return "generation"
    if x.is_floating_point() and out.shape == x.shape:
        return "reconstruction"
    if y is not None and y.is_floating_point():
        return "regression"
    if out.ndim == 2 and out.shape[1] >= 2:
        return "classification"
    return "regression"


def _judge_modality(x: torch.Tensor) -> str:
    if not x.is_floating_point():
        return "tokens"
    return {2: "tabular", 3: "series"}.get(x.ndim, "image")


def _vocabulary(tokenizer, size: int) -> list[str]:
    """Token texts 0..size-1 from a tokenizer callable (ids -> texts) or an object with
    ``convert_ids_to_tokens`` (Hugging Face)."""
    ids = list(range(size))
    convert = getattr(tokenizer, "convert_ids_to_tokens", None)
    try:
        texts = convert(ids) if convert is not None else tokenizer(ids)
    except Exception:  # noqa: BLE001  (some tokenizers take one id at a time)
        try:
            texts = [tokenizer(i) for i in ids]
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"the tokenizer could not turn token ids into text ({type(exc).__name__}: {exc}); "
                             "expected a callable taking a list of ids (or one id) and returning text") from None
    if isinstance(texts, str) or len(texts) != size:
        raise InputError(f"the tokenizer returned {type(texts).__name__} for {size} ids; expected one text per id")
    return [str(t) for t in texts]


class Subject:
    """A model and its data, described for the faces (dashboard, reports).

    Parameters
    ----------
    model: the ``nn.Module`` whose outputs are explained (a GAN's discriminator).
    data: the samples to inspect: inputs (tensor or array), ``(inputs, labels)``, or a
        DataLoader yielding ``inputs`` or ``(inputs, labels)`` (the first ``limit``
        samples, default 5000).
    labels: class indices (classification) or targets (regression), one per sample.
    task: "classification", "regression", "reconstruction" or "generation" (inferred).
    modality: "image", "tabular", "tokens" or "series" (inferred from dtype and rank).
    classes, features: names of the output classes and the input features.
    vocab / tokenizer: token texts (a list, or a callable ids -> texts).
    truth: ground-truth relevance masks shaped like the inputs (scored, where given).
    parts: named sub-models: ``encoder``/``decoder`` (autoencoders: the latent unit is
        explained, traversals drawn), ``generator``/``discriminator`` (GANs).
    objective: what to explain first: "class", "output", "error", "latent" or "real".
    metrics, bars: test metrics already known (else computed by the faces), and
        quality bars ``{metric: (">=" or "<=", bound)}`` to show beside them.
    reference: training inputs (the data's range for LRP's z^B box, the mean image a
        reconstruction is compared with); default: the data itself.
    judge: a classifier labelling generated samples (GANs), optional.
    pad_id: the padding token id (skipped in texts; the occlusion baseline of tokens).
    scaling: ``(mean, std)`` the tabular inputs were standardised with (raw values shown).
    about: extra ``(field, text)`` rows for the overview (training, weights, ...).
    """

    def __init__(self, model: nn.Module, data, labels=None, *, name: str | None = None, task: str | None = None,
                 modality: str | None = None, classes=None, features=None, vocab=None, tokenizer=None,
                 truth=None, parts: Mapping[str, nn.Module] | None = None, objective: str | None = None,
                 metrics: dict | None = None, bars: dict | None = None, reference=None, judge: nn.Module | None = None,
                 pad_id: int | None = None, scaling=None, description: str = "", about=(), limit: int | None = None):
        if not isinstance(model, nn.Module):
            raise InputError(f"model must be an nn.Module; got {type(model).__name__}")
        parts = dict(parts or {})
        for key, part in parts.items():
            if not isinstance(part, nn.Module):
                raise InputError(f"part {key!r} must be an nn.Module; got {type(part).__name__}")
        from .inputs import check_model

        check_model(model, verb="inspecting it")
        self.name = str(name or type(model).__name__)
        self.model, self.parts = model, parts
        self.inputs, self.labels, loader_note = _split(data, labels, limit)
        self.inferred: dict[str, str] = {}
        if loader_note:
            self.inferred["data"] = loader_note
        # the faces' own copies, taken before any analysis ran; the user's module is never touched
        try:
            self._template = copy.deepcopy((model, parts))
        except Exception as exc:  # noqa: BLE001  (a lock, an open file, a non-leaf tensor kept on the module)
            raise ModelError(f"the faces analyse copies of the model, and it cannot be copied with copy.deepcopy "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); keep locks, files and "
                             "computed tensors off the module (or give it a __deepcopy__)") from None
        for m in (self._template[0], *self._template[1].values()):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(True)
        weight = next((p for p in model.parameters() if p.is_floating_point()), None)
        if weight is not None and self.inputs.is_floating_point() and self.inputs.dtype != weight.dtype:
            self.inferred["data"] = (f"cast from {str(self.inputs.dtype).replace('torch.', '')} to the model's "
                                     f"{str(weight.dtype).replace('torch.', '')}")
            self.inputs = self.inputs.to(weight.dtype)
        probe = self.inputs[:2]
        first = _forward(self._template[0], probe, f"checking the model on two samples of the data (shape "
                         f"{tuple(probe.shape)}, {probe.dtype})")
        if not isinstance(first, torch.Tensor) and isinstance(getattr(first, "logits", None), torch.Tensor) \
                and first.logits.ndim == 2:  # a Hugging Face classifier: the faces read its logits
            from .huggingface import Scores

            self._template = (Scores(self._template[0]), self._template[1])
            self.inferred["model"] = "a Hugging Face model: its .logits are the scores (interp.huggingface.Scores)"
        out = _outputs_of(self._template[0], probe)
        self.output_shape = tuple(out.shape[1:])

        self.labels = self._class_labels(out, task)
        self.task = task or _judge_task(out, probe, self.labels, parts)
        if task is None:
            self.inferred["task"] = "from the outputs and labels"
        if self.task not in TASKS:
            raise InputError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
        self.modality = modality or _judge_modality(self.inputs)
        if modality is None:
            self.inferred["modality"] = f"from the inputs' dtype and rank ({self.inputs.dtype}, {self.inputs.ndim}-d)"
        if self.modality not in MODALITIES:
            raise InputError(f"modality must be one of {', '.join(MODALITIES)}; got {modality!r}")
        if self.modality == "tokens" and self.inputs.is_floating_point():
            raise InputError(f"modality 'tokens' needs integer token ids; the inputs are {self.inputs.dtype}")

        if not parts and self.task == "reconstruction":
            found = {k: getattr(model, k, None) for k in ("encoder", "decoder")}
            if all(isinstance(m, nn.Module) for m in found.values()):
                self.parts = found
                self._template = (self._template[0], {k: getattr(self._template[0], k) for k in found})
                self.inferred["parts"] = "from the model's encoder and decoder"
        self._check_task(out)
        self.classes = self._classes(classes, out)
        self.features = self._names(features, "features", self.inputs.shape[1] if self.modality == "tabular" else None)
        self.vocab = self._vocab(vocab, tokenizer)
        self.pad_id = pad_id
        self.truth = None if truth is None else self._truth(truth)
        self.reference = self.inputs if reference is None else _tensor(reference, "reference")
        if self.reference.shape[1:] != self.inputs.shape[1:]:
            raise InputError(f"reference inputs have shape {tuple(self.reference.shape[1:])} per sample; the data "
                             f"{tuple(self.inputs.shape[1:])}")
        self.scaling = None if scaling is None else tuple(_tensor(s, "scaling") for s in scaling)
        self.judge = None if judge is None else copy.deepcopy(judge).eval()  # run by the faces: a copy
        self.metrics, self.bars = metrics, dict(bars or {})
        self.description, self.about = description, tuple(about)
        self.objective = self._objective(objective)
        self.memo: dict = {}  # results derived from this subject, for reuse by the faces

    # ------------------------------------------------------------------ validation

    def _class_labels(self, out: torch.Tensor, task: str | None):
        """Class indices given as floats (read from a CSV) or one-hot rows, as integers: a
        classifier's labels are not a regression's targets."""
        y = self.labels
        if y is None or not y.is_floating_point() or task not in (None, "classification") or out.ndim != 2:
            return y
        k = out.shape[1]
        if k < 2:
            return y
        if y.ndim == 1 and bool((y == y.round()).all()) and 0 <= float(y.min()) and float(y.max()) < k \
                and (task == "classification" or len(y.unique()) <= k):
            self.inferred["labels"] = "class indices, given as floats"
            return y.long()
        if y.ndim == 2 and y.shape[1] == k and bool(((y == 0) | (y == 1)).all()) and bool((y.sum(1) == 1).all()):
            self.inferred["labels"] = "class indices, from one-hot rows"
            return y.argmax(1)
        return y

    def _check_task(self, out: torch.Tensor) -> None:
        if self.task == "classification":
            if out.ndim != 2 or out.shape[1] < 2:
                raise ModelError(f"a classifier's output must be (samples, classes) with 2 classes or more; the "
                                 f"model gives {tuple(out.shape)} for 2 samples")
            if self.labels is not None:
                if self.labels.is_floating_point() or self.labels.ndim != 1:
                    raise InputError(f"class labels must be integers, one per sample; got {self.labels.dtype} of "
                                     f"shape {tuple(self.labels.shape)}")
                low, high = int(self.labels.min()), int(self.labels.max())
                if low < 0 or high >= out.shape[1]:
                    raise InputError(f"labels span {low}..{high}, but the model has {out.shape[1]} outputs "
                                     f"(classes 0..{out.shape[1] - 1})")
        elif self.task == "regression":
            if out.ndim != 2:
                raise ModelError(f"a regression model's output must be (samples, outputs); the model gives "
                                 f"{tuple(out.shape)} for 2 samples (return out[:, None] for one output)")
            per_sample = None if self.labels is None else self.labels.reshape(len(self.labels), -1).shape[1]
            if per_sample is not None and per_sample != out.shape[1]:
                raise InputError(f"regression labels have shape {tuple(self.labels.shape)}; the model gives "
                                 f"{out.shape[1]} outputs per sample")
        elif self.task == "reconstruction":
            if tuple(out.shape[1:]) != tuple(self.inputs.shape[1:]):
                raise ModelError(f"a reconstruction model's output must be shaped like its input "
                                 f"{tuple(self.inputs.shape[1:])}; got {tuple(out.shape[1:])}")
        elif self.task == "generation":
            missing = {"generator", "discriminator"} - set(self.parts)
            if missing:
                raise InputError(f"a generative subject needs parts 'generator' and 'discriminator'; missing "
                                 f"{', '.join(sorted(missing))}")
            if out.ndim != 2 or out.shape[1] != 1:
                raise ModelError(f"the discriminator's output must be (samples, 1), one real score each; got "
                                 f"{tuple(out.shape)}")

    def _classes(self, classes, out: torch.Tensor) -> list[str] | None:
        if self.task != "classification":
            if classes is not None and self.labels is not None and not self.labels.is_floating_point():
                return self._names(classes, "classes", int(self.labels.max()) + 1, at_least=True)
            return None if classes is None else [str(c) for c in classes]
        k = out.shape[1]
        if classes is None:
            self.inferred["classes"] = f"0..{k - 1}, one per output"
            return [str(i) for i in range(k)]
        return self._names(classes, "classes", k)

    @staticmethod
    def _names(names, what: str, size: int | None, at_least: bool = False) -> list[str] | None:
        if names is None:
            return None
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise InputError(f"{what} must be a list of names; got {type(names).__name__}")
        names = [str(n) for n in names]
        if size is not None and (len(names) < size if at_least else len(names) != size):
            raise InputError(f"{len(names)} {what} names given; the model and data have {size}")
        return names

    def _vocab(self, vocab, tokenizer) -> list[str] | None:
        if self.modality != "tokens":
            return None
        size = int(self.inputs.max()) + 1
        if vocab is not None and tokenizer is not None:
            raise InputError("give vocab or tokenizer, not both")
        if int(self.inputs.min()) < 0:
            raise InputError(f"token ids must be non-negative; the data has {int(self.inputs.min())}")
        if tokenizer is not None:
            self.inferred["vocab"] = "from the tokenizer"
            return _vocabulary(tokenizer, size)
        if vocab is None:
            self.inferred["vocab"] = "none given: token ids are shown as numbers"
            return [str(i) for i in range(size)]
        vocab = [str(v) for v in vocab]
        if len(vocab) < size:
            raise InputError(f"the vocabulary has {len(vocab)} tokens, but the data holds token id {size - 1}")
        return vocab

    def _truth(self, truth) -> torch.Tensor:
        t = _tensor(truth, "truth")
        if len(t) != len(self.inputs):
            raise InputError(f"{len(t)} ground-truth masks for {len(self.inputs)} samples; expected one per sample")
        if self.modality == "image" and t.ndim == self.inputs.ndim - 1:
            t = t.unsqueeze(1)  # (n, H, W) masks for (n, C, H, W) images
        if t.shape[1:] != self.inputs.shape[1:] and not (
                self.modality == "image" and t.shape[2:] == self.inputs.shape[2:] and t.shape[1] == 1):
            raise InputError(f"ground-truth masks have shape {tuple(t.shape[1:])} per sample; expected the inputs' "
                             f"{tuple(self.inputs.shape[1:])}")
        return t

    def _objective(self, objective: str | None) -> str:
        default = {"classification": "class", "regression": "output", "reconstruction": "error",
                   "generation": "real"}[self.task]
        if objective is None:
            return default
        if objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}; got {objective!r}")
        if OBJECTIVES[objective] != self.task:
            raise InputError(f"objective {objective!r} explains a {OBJECTIVES[objective]} model; this one's task is "
                             f"{self.task}")
        if objective == "latent" and "encoder" not in self.parts:
            raise InputError("objective 'latent' needs an encoder: pass parts={'encoder': ..., 'decoder': ...}")
        return objective

    # ------------------------------------------------------------------ for the faces

    def copy(self) -> tuple[nn.Module, dict[str, nn.Module]]:
        """A fresh copy of (model, parts), in eval mode, that shares nothing with the user's
        module or with another copy (the same weights)."""
        return copy.deepcopy(self._template)

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    @property
    def latent_is_distribution(self) -> bool:
        """Whether the encoder returns (mean, log-variance), as a VAE's does."""
        encoder = self.parts.get("encoder")
        if encoder is None:
            return False
        key = "latent-is-distribution"
        if key not in self.memo:
            out = _forward(self._template[1]["encoder"], self.inputs[:2], "running the encoder on two samples")
            self.memo[key] = isinstance(out, (tuple, list))
        return self.memo[key]

    def token_texts(self, ids) -> list[str]:
        return [self.vocab[int(i)] for i in ids]

    def describe(self) -> list[tuple[str, str]]:
        """(field, text) rows: what the subject is, what was inferred marked so."""
        def mark(field: str, text: str) -> str:
            return f"{text}  (inferred {self.inferred[field]})" if field in self.inferred else text

        x = self.inputs
        rows = [("name", self.name)]
        if self.description:
            rows.append(("description", self.description))
        rows += [("task", mark("task", self.task)),
                 ("input", mark("modality", f"{self.modality}, shape {tuple(x.shape[1:])}, "
                                            f"{str(x.dtype).replace('torch.', '')}")),
                 ("output", mark("model", f"shape {self.output_shape}")),
                 ("parameters", f"{sum(p.numel() for p in self.model.parameters()):,}"),
                 ("samples", mark("data", f"{len(x)}" + ("" if self.labels is not None else " (no labels)")))]
        if "labels" in self.inferred:
            rows.append(("labels", mark("labels", "class indices")))
        if self.classes:
            rows.append(("classes", mark("classes", ", ".join(self.classes))))
        if self.features:
            rows.append(("features", f"{len(self.features)}: " + ", ".join(self.features)))
        if self.vocab is not None:
            shown = " ".join(self.vocab[:200]) + (" …" if len(self.vocab) > 200 else "")
            rows.append(("vocabulary", mark("vocab", f"{len(self.vocab)} tokens: {shown}")))
        if self.truth is not None:
            rows.append(("ground truth", "relevance masks given for every sample"))
        if self.parts:
            rows.append(("parts", mark("parts", ", ".join(self.parts))))
        rows.extend((str(k), str(v)) for k, v in self.about)
        return rows

    def __repr__(self) -> str:
        return (f"Subject({self.name!r}: {self.task}, {self.modality} {tuple(self.inputs.shape[1:])}, "
                f"{len(self.inputs)} samples)")


def subjects(given) -> list[Subject]:
    """``given`` (one Subject or several) as a list, names made unique; an InputError
    for anything else."""
    items = [given] if isinstance(given, Subject) else list(given) if isinstance(given, (list, tuple)) else None
    if not items or not all(isinstance(s, Subject) for s in items):
        kinds = ", ".join(sorted({type(s).__name__ for s in items or []}))
        got = type(given).__name__ if items is None else kinds or "nothing"
        raise InputError(f"expected an interp.Subject or a list of them; got {got}")
    series = [s.name for s in items if s.modality == "series"]
    if series:
        raise InputError(f"{', '.join(series)}: time-series inputs are not drawn by the dashboard and reports yet "
                         "(the library's analyses take them); grayscale images shaped (n, H, W) are images: pass "
                         "modality='image'; for a series, flatten each sample to features and pass modality='tabular'")
    names = [s.name for s in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"subject names must be unique; {', '.join(dup)} appear more than once (pass name=...)")
    return items


__all__ = ["Subject", "subjects", "TASKS", "MODALITIES", "OBJECTIVES"]
