"""What the overview of a subject shows, shared by the dashboard and the reports.

Both faces call these functions, so a model's overview looks the same in the
browser and in a static report. Computation happens here (predictions, metrics,
summaries); drawing happens in :mod:`interp.figures`. Metrics a subject brings (the
zoo's cards) are shown as given; otherwise they are computed on its data, by task.
"""

from __future__ import annotations

import threading
import weakref

import plotly.graph_objects as go
import torch
from torch import nn

from .. import figures, summarize
from ..architecture import Architecture
from ..errors import InputError
from ..subject import Subject

N_GENERATED = 16
N_RECONSTRUCTIONS = 8
GENERATED_SEED = 1234
BATCH = 512

# The dashboard serves requests on threads: each result is computed once, under a lock of its
# own (subject, key), so a long one (integrated gradients over the test set) holds back only
# those who want that very result, not every other model's look-ups.
_memo_table_lock = threading.Lock()
_memo_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def memo(subject: Subject, key: str, compute):
    """``compute()`` once per subject (results depend on its weights and data, so they live on it)."""
    if key not in subject.memo:
        with _memo_table_lock:
            lock = _memo_locks.setdefault(subject, {}).setdefault(key, threading.RLock())
        with lock:
            if key not in subject.memo:
                subject.memo[key] = compute()
    return subject.memo[key]


def working(subject: Subject) -> tuple[nn.Module, dict[str, nn.Module]]:
    """The subject's shared working copy (model, parts): for reading outputs and collecting
    activations; analyses that rewrite or hook modules take a fresh :meth:`Subject.copy`."""
    return memo(subject, "working", subject.copy)


def model(subject: Subject) -> nn.Module:
    return working(subject)[0]


def parts(subject: Subject) -> dict[str, nn.Module]:
    return working(subject)[1]


@torch.no_grad()
def _batched(fn, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def predict(subject: Subject, x: torch.Tensor) -> torch.Tensor:
    """What the model says about ``x``, by task: class probabilities (classification), the
    outputs (regression, reconstruction), the discriminator's P(real) (generation), (n,)."""
    out = _batched(model(subject), x)
    if subject.task == "classification":
        return out.softmax(-1)
    if subject.task == "generation":
        return torch.sigmoid(out).squeeze(-1)
    return out


def predictions(subject: Subject) -> torch.Tensor:
    """:func:`predict` of every sample of the subject's data (computed once)."""
    return memo(subject, "predictions", lambda: predict(subject, subject.inputs))


def predicted_classes(subject: Subject) -> torch.Tensor:
    return memo(subject, "predicted-classes", lambda: predictions(subject).argmax(-1))


def card_rows(subject: Subject) -> list[tuple[str, str]]:
    """The subject described as (field, text) rows; what was inferred says so."""
    return subject.describe()


def latent_size(generator: nn.Module) -> int:
    """The size of a generator's latent vector: its ``latent`` (or ``latent_dim``) attribute,
    else the input size of its first layer."""
    for attr in ("latent", "latent_dim", "nz", "z_dim"):
        value = getattr(generator, attr, None)
        if isinstance(value, int):
            return value
    first = next((m for m in generator.modules() if hasattr(m, "in_features") or hasattr(m, "in_channels")), None)
    if first is None:
        raise InputError("cannot tell the generator's latent size: give it a `latent` attribute (an int)")
    return int(getattr(first, "in_features", None) or first.in_channels)


def generated_latents(subject: Subject, n: int = N_GENERATED) -> torch.Tensor:
    """The latent vectors of :func:`generated` (drawn with a fixed seed), (n, latent size)."""
    def compute():
        gen = parts(subject)["generator"]
        return torch.randn(n, latent_size(gen), generator=torch.Generator().manual_seed(GENERATED_SEED))

    return memo(subject, f"generated-latents-{n}", compute)


def generated(subject: Subject, n: int = N_GENERATED) -> torch.Tensor:
    """The first generated samples of a generative subject (latent vectors drawn with a fixed seed)."""
    def compute():
        with torch.no_grad():
            return parts(subject)["generator"](generated_latents(subject, n))

    return memo(subject, f"generated-{n}", compute)


def generated_partner(subject: Subject, index: int) -> int:
    """Which generated sample stands beside real sample ``index`` (in the saliency and LRP
    views, and where the generator's path starts)."""
    index = check_index(subject, index)
    edited = getattr(subject, "edited_from", None)  # an edited real sample keeps its generated partner
    return (index if edited is None else edited) % N_GENERATED


def judged(subject: Subject) -> torch.Tensor | None:
    """The subject's judge's class probabilities for the generated samples (None without a judge)."""
    if subject.judge is None:
        return None
    return memo(subject, "judged", lambda: _batched(subject.judge, generated(subject)).softmax(-1))


def metrics(subject: Subject) -> dict:
    """The subject's metrics as given, else computed on its data by task."""
    if subject.metrics is not None:
        return subject.metrics
    return memo(subject, "metrics", lambda: _computed_metrics(subject))


def _computed_metrics(subject: Subject) -> dict:
    x, y = subject.inputs, subject.labels
    out: dict = {"samples": int(len(x))}
    if subject.task == "classification":
        p = predicted_classes(subject)
        if y is not None:
            from sklearn.metrics import confusion_matrix, f1_score

            out["accuracy"] = float((p == y).float().mean())
            out["macro_f1"] = float(f1_score(y.numpy(), p.numpy(), average="macro"))
            out["confusion_matrix"] = confusion_matrix(y.numpy(), p.numpy(),
                                                       labels=range(len(subject.classes))).tolist()
        else:
            out["predicted_classes"] = int(p.unique().numel())
    elif subject.task == "regression":
        if y is not None:
            pred = predictions(subject).float()
            target = y.reshape(pred.shape).float()
            mse = float(((pred - target) ** 2).mean())
            var = float(((target - target.mean(0)) ** 2).mean())
            out.update(mse=mse, mae=float((pred - target).abs().mean()), r2=1 - mse / var if var > 0 else float("nan"))
    elif subject.task == "reconstruction":
        recon = predictions(subject)
        mse = float(((recon - x) ** 2).mean())
        baseline = float(((subject.reference.mean(0, keepdim=True) - x) ** 2).mean())
        out.update(mse=mse, baseline_mse=baseline, mse_ratio=mse / baseline if baseline > 0 else float("nan"))
    else:
        real = predictions(subject)
        out["disc_real_mean"] = float(real.mean())
        with torch.no_grad():
            fake = torch.sigmoid(_batched(model(subject), generated(subject))).squeeze(-1)
        out["disc_generated_mean"] = float(fake.mean())
        probs = judged(subject)
        if probs is not None:
            out["gen_confidence"] = float(probs.max(-1).values.mean())
    return out


def headline(subject: Subject) -> str:
    """One metric, for an index of subjects."""
    m = metrics(subject)
    return next((f"{k} {m[k]:.4g}" for k in ("accuracy", "r2", "mse_ratio", "gen_confidence", "disc_real_mean")
                 if isinstance(m.get(k), float)), "")


def _bar_text(subject: Subject) -> dict[str, str]:
    return {k: f"{op} {bound}" for k, (op, bound) in subject.bars.items()}


def architecture(subject: Subject) -> Architecture:
    """The architecture summary (one forward pass on one sample)."""
    return memo(subject, "architecture", lambda: summarize(model(subject), subject.inputs[:1]))


def _confusion(subject: Subject):
    m = metrics(subject)
    return m.get("confusion_matrix")


def overview_figures(subject: Subject) -> dict[str, go.Figure]:
    """Ordered figures of a subject's overview: metrics, architecture, and a task view."""
    out: dict[str, go.Figure] = {}
    out["metrics"] = figures.metrics_table(metrics(subject), bars=_bar_text(subject) or None,
                                           title="Metrics" + ("" if subject.metrics is not None else
                                                              f" on the {len(subject.inputs)} samples given"))
    x = subject.inputs
    out["architecture"] = figures.architecture_table(architecture(subject))
    if subject.is_classifier and _confusion(subject) is not None:
        out["confusion"] = figures.confusion_matrix(_confusion(subject), subject.classes)
    elif subject.task == "reconstruction" and subject.modality == "image":
        originals = x[:N_RECONSTRUCTIONS]
        recon = predict(subject, originals)
        out["reconstructions"] = figures.image_grid(
            torch.cat([originals, recon]), cols=len(originals),
            title="Inputs (top) and their reconstructions (bottom)")
    elif subject.task == "generation" and subject.modality == "image":
        images, probs = generated(subject), judged(subject)
        if probs is not None:
            conf, label = probs.max(-1)
            names = subject.classes or [str(i) for i in range(probs.shape[1])]
            titles = [f"{names[int(c)]} ({float(p):.2f})" for c, p in zip(label, conf)]
            title = "Generated samples, labelled by the judge (class, confidence)"
        else:
            titles, title = None, "Generated samples"
        out["generated"] = figures.image_grid(images, titles, cols=8, title=title)
    return out


def class_labels(subject: Subject) -> torch.Tensor | None:
    """The labels where they are class indices (one integer per sample), else None: what
    groups, colours and scores by class (a regression's targets do not)."""
    y = subject.labels
    return y if y is not None and y.ndim == 1 and not y.is_floating_point() else None


def sample_count(subject: Subject) -> int:
    return int(subject.inputs.shape[0])


def check_index(subject: Subject, index: int) -> int:
    """``index`` if it names a sample of ``subject``; an InputError otherwise."""
    n = sample_count(subject)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise InputError(f"sample index must be an integer in [0, {n - 1}]; got {index!r}")
    return index


def label_name(subject: Subject, index: int) -> str | None:
    """The sample's label as text (class name, or value), None without labels."""
    y = subject.labels
    if y is None:
        return None
    value = y[index]
    if subject.classes and not value.is_floating_point() and value.numel() == 1:
        return subject.classes[int(value)]
    return ", ".join(f"{float(v):.4g}" for v in value.reshape(-1))


def population(subject: Subject) -> torch.Tensor:
    """The data a sample is judged against (noise relative to its spread, its mean as a
    baseline, a feature's range): the test set; for an edited sample's one-sample subject
    (:func:`interp.study.whatif.edited`), the test set it came from."""
    return getattr(subject, "population", None) if getattr(subject, "population", None) is not None \
        else subject.inputs


def sample_name(subject: Subject, index: int) -> str:
    """How a sample is named: "sample 7", or "sample 7, edited" for an edited one
    (:func:`interp.study.whatif.edited`: a one-sample subject)."""
    edited = getattr(subject, "edited_from", None)
    return f"sample {index}" if edited is None else f"sample {edited}, edited"


def sample_figures(subject: Subject, index: int) -> dict[str, go.Figure]:
    """Sample ``index`` as it looks, and what the model says about it."""
    index = check_index(subject, index)
    x, y = subject.inputs, subject.labels
    xi = x[index:index + 1]
    truth = subject.truth[index] if subject.truth is not None else None
    raw = None
    if subject.modality == "tabular" and subject.scaling is not None:
        mean, std = subject.scaling
        raw = x[index] * std + mean
    out = {"sample": figures.sample_view(
        x[index], subject.modality, title=sample_name(subject, index), feature_names=subject.features,
        vocab=subject.vocab, truth=truth, raw_values=raw)}
    prediction = predict(subject, xi)
    if subject.is_classifier:
        out["prediction"] = figures.class_probabilities(prediction[0], subject.classes,
                                                        true=None if y is None else int(y[index]))
    elif subject.task == "reconstruction":
        mse = float(((prediction - xi) ** 2).mean())
        if subject.modality == "image":
            out["prediction"] = figures.image_grid(torch.cat([xi, prediction]), ["input", "reconstruction"],
                                                   cols=2, title=f"reconstruction (MSE {mse:.4f})")
        else:
            out["prediction"] = figures.sample_view(prediction[0], subject.modality, feature_names=subject.features,
                                                    title=f"reconstruction (MSE {mse:.4f})")
    elif subject.task == "regression":
        label = label_name(subject, index)
        out["prediction"] = figures.unit_bars(prediction[0].numpy(), "predicted outputs"
                                              + (f" (true: {label})" if label is not None else ""))
    else:
        out["prediction"] = figures.real_score(float(prediction[0]))
    return out


def sample_caption(subject: Subject, index: int) -> str:
    """One line about sample ``index`` (its label and what the model says)."""
    index = check_index(subject, index)
    x, y = subject.inputs, subject.labels
    prediction = predict(subject, x[index:index + 1])
    label = label_name(subject, index)
    if subject.is_classifier:
        p = int(prediction[0].argmax())
        said = f"predicted {subject.classes[p]} ({float(prediction[0, p]):.3f})"
        if y is None:
            return f"{sample_name(subject, index)}: {said}"
        ok = "correct" if p == int(y[index]) else "misclassified"
        return f"{sample_name(subject, index)}: true {label}, {said}, {ok}"
    of = f" ({label})" if label is not None else ""
    if subject.task == "reconstruction":
        mse = float(((prediction - x[index:index + 1]) ** 2).mean())
        return f"{sample_name(subject, index)}{of}: reconstruction MSE {mse:.4f}"
    if subject.task == "regression":
        said = ", ".join(f"{float(v):.4g}" for v in prediction[0])
        return f"{sample_name(subject, index)}: predicted {said}" + (f", true {label}" if label is not None else "")
    return f"{sample_name(subject, index)}{of}: discriminator P(real) = {float(prediction[0]):.3f}"


def can_be_misclassified(subject: Subject) -> bool:
    """Whether samples can be misclassified: a classifier with labels. Elsewhere (an
    autoencoder, a GAN, unlabelled data) "misclassified" means nothing, and filters on it
    must not apply (an empty list of them would read as "none wrong")."""
    return subject.is_classifier and subject.labels is not None


def misclassified(subject: Subject) -> list[int]:
    """Indices of misclassified samples (empty for models that do not classify, or without labels)."""
    if not can_be_misclassified(subject):
        return []
    return list(memo(subject, "misclassified", lambda: tuple(
        torch.nonzero(predicted_classes(subject) != subject.labels).flatten().tolist())))


def showcase_samples(subject: Subject, n_correct: int = 3, n_wrong: int = 2) -> list[int]:
    """A deterministic handful of samples: the first correct ones of distinct classes (the
    first ones, without class labels), then the first misclassified ones."""
    y = subject.labels
    if y is None or y.is_floating_point() or y.ndim != 1:
        return list(range(min(n_correct, sample_count(subject))))
    wrong = set(misclassified(subject))
    picks, seen = [], set()
    for i in range(len(y)):
        if i not in wrong and int(y[i]) not in seen:
            picks.append(i)
            seen.add(int(y[i]))
        if len(picks) == n_correct:
            break
    return picks + sorted(wrong)[:n_wrong]


__all__ = ["memo", "working", "model", "parts", "predict", "predictions", "metrics", "headline", "card_rows",
           "architecture", "overview_figures", "sample_count", "check_index", "sample_figures", "sample_caption",
           "can_be_misclassified", "misclassified", "showcase_samples", "generated", "judged", "latent_size",
           "label_name"]
