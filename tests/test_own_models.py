"""A user's own models in every face: interp.Subject, the reports (Python and CLI), bad input.

The models are written in tests/own_models.py (none is in the zoo): a tabular MLP, an
image CNN with batch-norm and in-place ReLU, a token classifier with a vocabulary, an
autoencoder. The dashboard's side is tests/dashboard/test_own_models_browser.py.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

import interp
import reports
from interp.cli import main
from interp.errors import InputError, InterpError, ModelError, WeightsError
from tests import own_models as om

SECTIONS = ("Model card", "Overview", "Samples", "Activations", "Saliency", "LRP", "Sensitivity", "Evaluation",
            "Latent space")


@pytest.fixture(scope="module")
def own():
    return om.trained()


def _subject(own, name: str) -> interp.Subject:
    model, data, names = own[name]
    return interp.Subject(model, (data["x"], data["y"]), truth=data.get("truth"), name=name, **names)


def _state(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("INTERP_CACHE", str(tmp_path_factory.mktemp("store")))
    yield
    mp.undo()


# ---------------------------------------------------------------------------- the subject

def test_what_is_not_given_is_inferred_and_shown(own):
    model, data, _ = own["tabular_mlp"]
    s = interp.Subject(model, (data["x"], data["y"]))
    assert (s.task, s.modality, s.classes) == ("classification", "tabular", ["0", "1", "2"])
    rows = dict(s.describe())
    assert "inferred" in rows["task"] and "inferred" in rows["input"] and "inferred 0..2" in rows["classes"]
    tok = interp.Subject(own["token_classifier"][0], own["token_classifier"][1]["x"])
    assert (tok.task, tok.modality, tok.labels) == ("classification", "tokens", None)
    assert "shown as numbers" in dict(tok.describe())["vocabulary"]
    assert tok.vocab[:3] == ["0", "1", "2"]
    ae = _subject(own, "autoencoder")
    assert (ae.task, set(ae.parts), ae.objective) == ("reconstruction", {"encoder", "decoder"}, "error")
    assert "inferred" in dict(ae.describe())["parts"]
    given = interp.Subject(model, (data["x"], data["y"]), task="classification", modality="tabular",
                           classes=om.TABULAR_CLASSES, features=om.FEATURES, name="mine")
    assert not {"task", "modality", "classes"} & set(given.inferred)
    assert dict(given.describe())["features"].startswith("5: height")


def test_a_dataloader_and_a_tokenizer_are_read(own):
    from torch.utils.data import DataLoader, TensorDataset

    model, data, _ = own["token_classifier"]
    loader = DataLoader(TensorDataset(data["x"], data["y"]), batch_size=10)
    s = interp.Subject(model, loader, tokenizer=lambda ids: [om.VOCAB[i].upper() for i in ids], limit=50)
    assert len(s.inputs) == len(s.labels) == 50 and torch.equal(s.inputs, data["x"][:50])
    assert s.vocab[4] == "GOOD" and "50 samples read from DataLoader" in dict(s.describe())["samples"]


def test_bad_input_is_named(own):
    model, data, names = own["tabular_mlp"]
    x, y = data["x"], data["y"]
    with pytest.raises(InputError, match=r"\(2, 4\).*5"):  # the shapes, given and expected
        interp.Subject(model, (x[:, :4], y))
    with pytest.raises(InputError, match="labels span 0..7, but the model has 3 outputs"):
        interp.Subject(model, (x, y.clone().index_fill_(0, torch.tensor([0]), 7)))
    with pytest.raises(InputError, match="2 classes names given; the model and data have 3"):
        interp.Subject(model, (x, y), classes=["a", "b"])
    with pytest.raises(InputError, match="5 inputs but 4 labels"):
        interp.Subject(model, (x[:5], y[:4]))
    with pytest.raises(InputError, match="NaN"):
        interp.Subject(model, (x.clone().fill_(float("nan")), y))
    with pytest.raises(InputError, match="several inputs"):
        interp.Subject(model, [x, x, y])
    with pytest.raises(InputError, match="vocabulary has 3 tokens, but the data holds token id 9"):
        interp.Subject(own["token_classifier"][0], own["token_classifier"][1]["x"], vocab=["a", "b", "c"])
    with pytest.raises(InputError, match="objective 'latent' explains a reconstruction model"):
        interp.Subject(model, (x, y), objective="latent")
    class HF(nn.Module):  # returns what Hugging Face models do: an object with .logits, read as the scores
        def forward(self, x):
            return type("Out", (), {"logits": x})()
    assert "Hugging Face" in dict(interp.Subject(HF(), x).describe())["output"]
    with pytest.raises(ModelError, match="Hugging Face"):
        class Tokens(nn.Module):  # logits per position: one position must be chosen
            def forward(self, x):
                return type("Out", (), {"logits": x[:, :, None].expand(-1, -1, 3)})()
        interp.Subject(Tokens(), x)
    with pytest.raises(InputError, match="expected an interp.Subject"):
        reports.build([model], "unused")


def test_the_users_model_is_left_as_found(own, tmp_path):
    """The faces analyse copies: the user's module keeps its mode, weights, buffers and hooks,
    and is never run (a BatchNorm in train mode would change its running statistics)."""
    model, data, names = own["image_cnn"]
    model.train()
    seen = []
    handle = model.features[0].register_forward_hook(lambda m, *a: seen.append(m))  # copies carry it too
    before, hooks = _state(model), _hooks(model)
    try:
        s = interp.Subject(model, (data["x"], data["y"]), name="left-as-found", **names)
        reports.build([s], tmp_path, progress=False)
        assert seen and not any(m is model.features[0] for m in seen)  # the copies ran, the user's module not
        assert model.training and _hooks(model) == hooks
        after = _state(model)
        assert all(torch.equal(before[k], after[k]) for k in before)
    finally:
        handle.remove()
        model.eval()


# ---------------------------------------------------------------------------- reports

def _sections_of(html: str) -> list[str]:
    return [s for s in SECTIONS if f"<h2>{s}</h2>" in html]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tabular_mlp", "image_cnn", "token_classifier", "autoencoder"])
def test_report_from_python_has_every_section(own, tmp_path, name):
    s = _subject(own, name)
    paths = reports.build([s], tmp_path, progress=False)
    page = (tmp_path / f"{name}.html").read_text()
    assert _sections_of(page) == list(SECTIONS)
    assert paths[-1].name == "index.html" and name in paths[-1].read_text()
    assert not re.search(r"<script[^>]*\ssrc=", page)  # self-contained: plotly.js inline, nothing fetched


def _files(own, name: str, folder) -> list[str]:
    """What a user hands the CLI: safetensors weights, npz data, a names JSON."""
    from safetensors.torch import save_file

    model, data, names = own[name]
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "w.safetensors"))
    np.savez(folder / "d.npz", **{k: v.numpy() for k, v in data.items()})
    # the name the Python report used: the CLI's report reads what that one stored
    (folder / "names.json").write_text(json.dumps({**names, "name": name}))
    return ["--model-file", f"{om.__file__}:{name}", "--weights", str(folder / "w.safetensors"),
            "--data", str(folder / "d.npz"), "--names", str(folder / "names.json")]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tabular_mlp", "image_cnn", "token_classifier", "autoencoder"])
def test_report_through_the_cli_with_a_model_file(own, tmp_path, name, capsys):
    assert main(["report", *_files(own, name, tmp_path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    page = (tmp_path / "out" / f"{name}.html").read_text()
    assert _sections_of(page) == list(SECTIONS)
    assert "wrote 3 files" in capsys.readouterr().out  # the page, the index and reports.json: no zoo unless asked


def test_the_cli_says_what_is_wrong_in_one_line(own, tmp_path, capsys):
    args = _files(own, "tabular_mlp", tmp_path)

    def fails(*argv, match: str) -> None:
        assert main(["report", *argv, "--out", str(tmp_path / "out"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("interp: error:"), err
        assert match in err, err

    model_file = args[1]
    fails("--model-file", model_file.replace(":tabular_mlp", ":no_such"), *args[2:],
          match="has no function 'no_such'; it defines")
    fails("--model-file", model_file.replace(":tabular_mlp", ":image_cnn"), *args[2:],
          match="does not fit the model: missing keys: classifier.1.bias")
    from safetensors.torch import save_file
    save_file({"net.0.weight": torch.zeros(16, 5)}, str(tmp_path / "part.safetensors"))
    fails(args[0], model_file, "--weights", str(tmp_path / "part.safetensors"), *args[4:],
          match="missing keys: net.0.bias")
    np.savez(tmp_path / "pickled.npz", x=np.array([{"a": 1}], dtype=object))
    fails(*args[:4], "--data", str(tmp_path / "pickled.npz"), match="needs pickle")
    np.savez(tmp_path / "bad_labels.npz", x=own["tabular_mlp"][1]["x"].numpy(), y=np.full(96, 5))
    fails(*args[:4], "--data", str(tmp_path / "bad_labels.npz"), match="labels span 5..5")
    np.savez(tmp_path / "narrow.npz", x=np.zeros((8, 3), np.float32))
    fails(*args[:4], "--data", str(tmp_path / "narrow.npz"), match="(2, 3)")
    fails("--subject", str(tmp_path / "missing.py:make"), match="no such file")
    fails("--names", str(tmp_path / "names.json"), match="describe a --model-file")


def test_subjects_from_a_file(own, tmp_path):
    from interp.loaders import subjects_from

    (tmp_path / "mine.py").write_text(
        f"import sys\nsys.path.insert(0, {om.__file__.rsplit('/tests/', 1)[0]!r})\n"
        + "import interp\nfrom tests import own_models as om\n"
        "def subjects():\n"
        "    x, y = om.tabular_data(40)\n"
        "    return [interp.Subject(om.tabular_mlp(), (x, y), name='a'),\n"
        "            interp.Subject(om.tabular_mlp(), x, name='b')]\n")
    found = subjects_from(f"{tmp_path / 'mine.py'}:subjects")
    assert [s.name for s in found] == ["a", "b"]
    with pytest.raises(InterpError, match="names must be unique"):
        interp.subject.subjects([found[0], found[0]])
    with pytest.raises(WeightsError):
        from interp.loaders import load_weights
        load_weights(om.tabular_mlp(), _write(tmp_path, {"net.0.weight": torch.zeros(3, 3)}))


def _write(folder, tensors):
    from safetensors.torch import save_file

    save_file(tensors, str(folder / "t.safetensors"))
    return folder / "t.safetensors"


def test_the_faces_know_no_zoo():
    """The zoo goes through the same door as a user's model: no module of the composition
    package, the dashboard or the report builder imports zoo (only the CLI's default does)."""
    import ast
    from pathlib import Path

    root = Path(interp.__file__).resolve().parent.parent
    offenders = []
    for folder in ("interp", "dashboard", "reports"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "cli.py" and folder == "interp":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] == "zoo"]
    assert offenders == []


@pytest.mark.slow
def test_more_kinds_of_ones_own_in_the_report(tmp_path):
    """A regression model (float targets), a classifier given no labels and one given float
    labels, a convolutional autoencoder, a VAE whose encoder returns (mu, logvar), a set of
    twelve samples, and a model named "index": each report has every section."""
    torch.manual_seed(0)
    x = torch.randn(12, 4)
    reg = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    clf = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    xa, _ = om.ae_data(40)
    subjects = [
        interp.Subject(reg, (x, x[:, :1] * 2), name="regression"),
        interp.Subject(clf, x, name="index"),
        interp.Subject(clf, (x, (torch.arange(12) % 3).double()), name="float-labels"),
        interp.Subject(om.ConvAutoencoder(), xa, name="conv-ae"),
        interp.Subject(om.VAE(), xa, name="vae"),
    ]
    assert subjects[0].task == "regression" and subjects[1].labels is None
    assert subjects[2].task == "classification" and subjects[2].labels.dtype == torch.long
    assert subjects[4].latent_is_distribution
    reports.build(subjects, tmp_path, progress=False)
    for s, file in zip(subjects, ["regression", "index_", "float-labels", "conv-ae", "vae"]):
        page = (tmp_path / f"{file}.html").read_text()
        assert _sections_of(page) == list(SECTIONS), s.name
    from interp.study import latent

    assert latent.default_layer(subjects[4]) == "encoder.mu"  # the mean, not the log-variance
