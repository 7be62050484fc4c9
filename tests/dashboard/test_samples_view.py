"""The Samples view's stepping, without a browser: next/previous move through every
sample, or with "misclassified only" through the misclassified ones where the model
has classes to get wrong; the filter is offered only there."""

from __future__ import annotations

import pytest

import zoo
from dashboard.views.samples import filter_options, stepped
from interp.study import overview


@pytest.mark.parametrize("name", ["autoencoder-digits", "vae-digits", "gan-digits"])
def test_models_without_classes_step_with_the_filter_on_as_without_it(name):
    subject = zoo.subject(name)
    n = overview.sample_count(subject)
    for only_wrong in ([], ["wrong"]):
        assert stepped(subject, 0, 1, only_wrong) == 1
        assert stepped(subject, 5, -1, only_wrong) == 4
        assert stepped(subject, n - 1, 1, only_wrong) == 0  # wraps
        assert stepped(subject, 0, -1, only_wrong) == n - 1
    assert filter_options(subject)[0]["disabled"]  # no notion of misclassified: not offered


def test_a_classifier_without_errors_steps_through_every_sample_with_the_filter_on():
    """cnn-shapes gets every test sample right: the filter froze next/previous on its empty
    list of misclassified samples, silently. Now it is disabled, saying why, and steps go on."""
    subject = zoo.subject("cnn-shapes")
    assert overview.can_be_misclassified(subject) and overview.misclassified(subject) == []
    last = overview.sample_count(subject) - 1
    assert stepped(subject, 0, 1, ["wrong"]) == 1 and stepped(subject, 0, -1, ["wrong"]) == last
    option = filter_options(subject)[0]
    assert option["disabled"] and "none misclassified" in option["label"]


def test_a_classifier_steps_through_the_misclassified_with_the_filter_on():
    subject = zoo.subject("cnn-digits")
    wrong = overview.misclassified(subject)
    assert len(wrong) >= 2
    assert stepped(subject, 0, 1, []) == 1 and stepped(subject, 1, -1, []) == 0
    assert stepped(subject, wrong[0], 1, ["wrong"]) == wrong[1]
    assert stepped(subject, wrong[1], -1, ["wrong"]) == wrong[0]
    assert stepped(subject, wrong[-1], 1, ["wrong"]) == wrong[0]  # wraps
    assert stepped(subject, wrong[0] - 1 if wrong[0] else 0, 1, ["wrong"]) in wrong
    assert not filter_options(subject)[0].get("disabled")


def test_clicks_faster_than_the_answers_each_count():
    """Four clicks on next sent before the first answer came: each request carries the
    click count and the sample shown (chosen at 0 clicks), so the last lands 4 on."""
    from dashboard.views.samples import NEXT, PREV, _steps

    subject = zoo.subject("cnn-digits")
    shown = {"model": "cnn-digits", "index": 3, "clicks": [0, 0]}
    assert [stepped(subject, 3, _steps(shown, 0, n, NEXT), []) for n in (1, 2, 3, 4)] == [4, 5, 6, 7]
    assert _steps({**shown, "clicks": [2, 5]}, 3, 5, PREV) == -1  # one more on previous since
    assert _steps({**shown, "clicks": [0, 0]}, 1, 1, PREV) == 0  # next, then previous, neither answered: stay
    assert _steps({"model": "cnn-digits", "index": 3}, 0, 9, NEXT) == 1  # no counts kept: one step
    wrong = overview.misclassified(subject)
    assert stepped(subject, wrong[0], 2, ["wrong"]) == wrong[2]  # steps through the misclassified
