"""Evaluation cost: every explanation method × deletion, insertion and relevance mass
accuracy on 200 cnn-shapes test samples, against computing the explanations themselves
(target from the evaluation issue: within 10×).

The explanations are computed once and timed; the evaluation then runs on them (each
curve one forward per step for the whole set; the random orders' curve once per mode,
shared by every method)."""

from __future__ import annotations

import time

import torch

import zoo
from interp import evaluation as E

from .harness import Result

SAMPLES, STEPS, TARGET = 200, 10, 10.0


def run() -> list[Result]:
    from interp.study import evaluation as study

    methods = tuple(study.methods(zoo.subject("cnn-shapes")))  # every method the faces score: 16
    entry = zoo.load("cnn-shapes")
    model, x, truth = entry.model, entry.test[0][:SAMPLES], entry.truth[:SAMPLES]
    with torch.no_grad():
        target = model(x).argmax(1)
    explained, explain_s = {}, 0.0
    for method in methods:
        start = time.perf_counter()
        explained[method] = E.explainer(method)(model, x, target).detach()
        explain_s += time.perf_counter() - start
    start = time.perf_counter()
    random = {}
    areas = {}
    for method, a in explained.items():
        for mode in ("deletion", "insertion"):
            c = E.perturbation_curve(model, x, a, target, mode=mode, steps=STEPS, random=random.get(mode))
            random.setdefault(mode, c.random)
            areas[(method, mode)] = float(c.area.mean())
        areas[(method, "mass")] = float(E.mass_accuracy(a, truth, x).mean())
    evaluate_s = time.perf_counter() - start
    best = min(methods, key=lambda m: areas[(m, "deletion")])
    return [Result(name=f"evaluation ({len(methods)} methods × deletion, insertion, mass accuracy) / the "
                        f"explanations, cnn-shapes {SAMPLES} samples", value=evaluate_s / explain_s, target=TARGET,
                   baseline="computing the explanations", ours_ms=evaluate_s * 1e3, baseline_ms=explain_s * 1e3,
                   detail={"steps": STEPS, "best deletion": best, "threads": torch.get_num_threads()})]
