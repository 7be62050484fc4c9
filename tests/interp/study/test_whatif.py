"""What-if inputs: an edited sample is a subject of its own for every per-sample view."""

from __future__ import annotations

import pytest
import torch

import interp
import zoo
from interp.errors import InputError
from interp.study import activations, lrp, overview, saliency, whatif


def test_an_edited_image_is_explained_as_the_model_sees_it():
    cnn = zoo.subject("cnn-digits")
    x = cnn.inputs[3].clone()
    x[0, 2:6, 3] = float(cnn.inputs.max())  # a stroke drawn
    edit = whatif.edited(cnn, 3, x)
    assert edit.edited_from == 3 and len(edit.inputs) == 1 and int(edit.labels[0]) == int(cnn.labels[3])
    assert len(cnn.inputs) == 450 and torch.equal(edit.inputs[0], x)  # the test set is untouched
    # a second implementation: the library on the model itself
    _, _, (got,) = saliency.comparison(edit, 0, ["gradient"], "class", 0)
    want = interp.explain(overview.model(cnn), x.unsqueeze(0), 0, "gradient")
    torch.testing.assert_close(got.values, want.values)
    # the edited sample's own prediction, captions that say it was edited
    torch.testing.assert_close(overview.predictions(edit)[0], overview.predict(cnn, x.unsqueeze(0))[0])
    assert overview.sample_caption(edit, 0).startswith("sample 3, edited: true ")
    grid = saliency.comparison(edit, 0, ["gradient"])[0]
    assert any("#3, edited" in (a.text or "") for a in grid.layout.annotations) or "#3, edited" in str(grid.to_json())
    r = lrp.comparison(edit, 0).result
    torch.testing.assert_close(r.total, r.score, rtol=0.05, atol=0.05)  # the CNN's relevance is conserved
    assert activations.sample_figure(edit, "features.3", 0, 1).data  # activations of the edited input


def test_what_an_edit_changed():
    cnn = zoo.subject("cnn-digits")
    assert whatif.change(cnn, 3, cnn.inputs[3]).startswith("prediction unchanged: ")
    blank = torch.zeros_like(cnn.inputs[3])
    text = whatif.change(cnn, 3, blank)
    before = overview.predictions(cnn)[3]
    assert f"P({cnn.classes[int(before.argmax())]}) {float(before.max()):.3f} → " in text
    vae = zoo.subject("vae-digits")
    assert whatif.change(vae, 1, vae.inputs[1]).startswith("reconstruction MSE ")


def test_edited_inputs_are_checked():
    cnn = zoo.subject("cnn-digits")
    with pytest.raises(InputError, match=r"shaped like a test sample, \(1, 8, 8\); got \(8, 8\)"):
        whatif.edited(cnn, 0, torch.zeros(8, 8))
    bad = cnn.inputs[0].clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        whatif.edited(cnn, 0, bad)
    with pytest.raises(InputError, match="sample index"):
        whatif.edited(cnn, 450, cnn.inputs[0])
    lstm = zoo.subject("lstm-sentiment")
    ids = lstm.inputs[0].clone()
    ids[0] = len(lstm.vocab)
    with pytest.raises(InputError, match=rf"token ids must be in \[0, {len(lstm.vocab) - 1}\]"):
        whatif.edited(lstm, 0, ids)
    words = lstm.token_texts(lstm.inputs[0])
    assert torch.equal(whatif.tokens(lstm, " ".join(words)), lstm.inputs[0])
    with pytest.raises(InputError, match="not in the vocabulary: 'zzzq'"):
        whatif.tokens(lstm, "zzzq " + " ".join(words[1:]))


def test_an_edited_sample_is_judged_against_the_test_set():
    from interp.study import sensitivity as sens

    cnn = zoo.subject("cnn-digits")
    edit = whatif.edited(cnn, 5, cnn.inputs[5])
    s = sens.settings(cnn, kind="noise")
    assert sens.data_std(edit, s.objective) == pytest.approx(sens.data_std(cnn, s.objective))
    mlp = zoo.subject("mlp-cancer")
    row = mlp.inputs[2].clone()
    row[0] += 1.0
    sweep = sens.settings(mlp, kind="occlusion", feature=0)
    torch.testing.assert_close(sens._sweep_grid(whatif.edited(mlp, 2, row), 0), sens._sweep_grid(mlp, 0))
    # the unedited sample edited "as is" gives the test set's own numbers
    same = sens.sample_result(whatif.edited(mlp, 2, mlp.inputs[2]), 0, sweep)
    torch.testing.assert_close(same.curves, sens.sample_result(mlp, 2, sweep).curves)


def test_an_edited_code_is_walked_against_the_test_set():
    from interp.study import latent

    vae = zoo.subject("vae-digits")
    x = vae.inputs[5].clone()
    x[0, 1:4, 2] = float(vae.inputs.max())
    edit = whatif.edited(vae, 5, x)
    figs = latent.generative_figures(edit, 0)
    assert set(figs) == {"traversal", "between", "kl"}
    t = latent.traversal(edit, 0)
    assert torch.isfinite(t.outputs).all()  # scaled by the test set's spread, not one sample's (NaN)
    code = overview.parts(vae)["encoder"](x.unsqueeze(0))[0][0]
    middle = t.outputs[latent.TRAVERSAL_STEPS // 2, latent.TRAVERSAL_STEPS // 2]
    decoded = overview.parts(vae)["decoder"](code.unsqueeze(0))[0].reshape(middle.shape)
    torch.testing.assert_close(middle, decoded, rtol=1e-4, atol=1e-5)  # the walk is around the edited code
    assert latent.partner(edit, 0) == latent.partner(vae, 5)  # a test sample of another digit
    assert "sample 5, edited" in figs["traversal"].layout.title.text
    torch.testing.assert_close(latent.kl(edit), latent.kl(vae))
    gan = zoo.subject("gan-digits")
    assert overview.generated_partner(whatif.edited(gan, 7, gan.inputs[7]), 0) == overview.generated_partner(gan, 7)


def test_a_long_result_holds_back_only_who_wants_it():
    import threading

    from interp.study.overview import memo

    a, b = zoo.subject("mlp-cancer"), zoo.subject("cnn-digits")
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return 1

    t = threading.Thread(target=lambda: memo(a, "test-slow", slow))
    t.start()
    assert started.wait(10)
    done = threading.Event()
    other = threading.Thread(target=lambda: (memo(b, "test-quick", lambda: 2), done.set()))
    other.start()
    assert done.wait(5)  # another result (of another model) is not held back by the long one
    release.set()
    t.join(10)
    assert memo(a, "test-slow", lambda: 3) == 1
