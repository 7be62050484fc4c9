"""The what-if editor's checks, without a browser: uploads, clicks, feature values."""

from __future__ import annotations

import base64
import io

import pytest
import torch

import zoo
from dashboard.edits import Edits, sample_of
from dashboard.views import whatif
from interp.errors import InputError


def _png(size=(16, 16), colour=200) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_uploaded_image_becomes_the_models_input():
    cnn = zoo.subject("cnn-digits")
    x = whatif.from_image(cnn, _png(colour=255))
    assert x.shape == cnn.inputs.shape[1:] and x.dtype == cnn.inputs.dtype
    torch.testing.assert_close(x, torch.full_like(x, float(cnn.inputs.max())))  # white: the data's largest value
    with pytest.raises(InputError, match="not an image Pillow can read"):
        whatif.from_image(cnn, b"\x89PNG not really")
    cut = _png(size=(64, 64))
    with pytest.raises(InputError, match="image"):  # a damaged file is said, never a traceback
        whatif.from_image(cnn, cut[: len(cut) // 2])
    with pytest.raises(InputError, match="takes tabular inputs, not images"):
        whatif.from_image(zoo.subject("mlp-cancer"), _png())
    too_big = "data:image/png;base64," + base64.b64encode(b"0" * (whatif.MAX_UPLOAD_BYTES + 1)).decode()
    with pytest.raises(InputError, match="at most"):
        whatif._decoded(too_big)
    with pytest.raises(InputError, match="could not be read"):
        whatif._decoded("no comma")


def test_a_csv_row_in_the_datas_units():
    mlp = zoo.subject("mlp-cancer")
    raw = whatif._raw(mlp, mlp.inputs[3])
    text = ",".join(mlp.features) + "\n" + ",".join(repr(float(v)) for v in raw) + "\n"
    torch.testing.assert_close(whatif.from_csv(mlp, text.encode()), mlp.inputs[3], rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="needs 30 values"):
        whatif.from_csv(mlp, b"1,2,3\n")
    with pytest.raises(InputError, match="no row of 30 numbers"):
        whatif.from_csv(mlp, b"a,b\n")
    with pytest.raises(InputError, match="not a CSV text file"):
        whatif.from_csv(mlp, b"\xff\xfe\x00bad")
    nan = ",".join(["nan"] * 30).encode()
    with pytest.raises(InputError, match="finite"):
        Edits().keep(mlp, 0, whatif.from_csv(mlp, nan))


def test_a_click_paints_one_pixel_and_edits_are_kept_by_key():
    cnn = zoo.subject("cnn-digits")
    x = cnn.inputs[0]
    out = whatif.painted(cnn, x, {"points": [{"x": 3, "y": 5}]}, "draw")
    changed = (out != x).nonzero().tolist()
    assert all(p[1:] == [5, 3] for p in changed) and float(out[0, 5, 3]) == float(cnn.inputs.max())
    assert float(whatif.painted(cnn, x, {"points": [{"x": 3, "y": 5}]}, "erase")[0, 5, 3]) == float(cnn.inputs.min())
    with pytest.raises(InputError, match="click on a pixel"):
        whatif.painted(cnn, x, {"points": [{"x": 9, "y": 0}]}, "draw")
    edits = Edits(max_kept=2)
    key = edits.keep(cnn, 0, out)
    assert edits.keep(cnn, 0, out.clone()) == key  # the same edit, the same key
    from dashboard.catalog import Catalog

    catalog = Catalog([cnn])
    import dashboard.edits as module

    old = module.EDITS
    module.EDITS = edits
    try:
        subject, index = sample_of(catalog, {"model": cnn.name, "index": 0, "edit": key})
        assert index == 0 and torch.equal(subject.inputs[0], out) and subject.edited_from == 0
        with pytest.raises(InputError, match="no longer kept"):
            sample_of(catalog, {"model": cnn.name, "index": 1, "edit": key})  # another sample's key
        edits.keep(cnn, 1, cnn.inputs[1])
        edits.keep(cnn, 2, cnn.inputs[2])  # the oldest goes
        with pytest.raises(InputError, match="no longer kept"):
            sample_of(catalog, {"model": cnn.name, "index": 0, "edit": key})
    finally:
        module.EDITS = old


def test_a_large_vocabulary_is_typed_not_listed():
    import copy

    lstm = zoo.subject("lstm-sentiment")
    _, _, boxes = whatif.editor(lstm, lstm.inputs[0])
    assert len(boxes) == lstm.inputs.shape[1]  # a dropdown per position
    big = copy.copy(lstm)
    big.vocab = list(lstm.vocab) + [f"w{i}" for i in range(whatif.MAX_VOCAB_OPTIONS)]
    _, _, boxes = whatif.editor(big, lstm.inputs[0])
    assert len(boxes) == 1 and len(str(boxes[0].to_plotly_json())) < 5000  # one text box, not 12 × 2000 options


def test_a_decompression_bomb_is_refused_before_decoding():
    """A small file of a huge image: its size is read from the header and refused, not decoded."""
    side = int(whatif.MAX_IMAGE_PIXELS ** 0.5) + 1
    bomb = _png(size=(side, side), colour=0)
    assert len(bomb) < whatif.MAX_UPLOAD_BYTES  # it passes the byte limit: only the pixel count stops it
    with pytest.raises(InputError, match=f"{side}×{side} pixels; at most"):
        whatif.from_image(zoo.subject("cnn-digits"), bomb)


@pytest.mark.parametrize("values", [["1", "x"], [None, 2.0], "12", [True, 1], ["nan?"]])
def test_typed_values_that_are_not_numbers_are_refused_in_words(values):
    """A crafted request with words for numbers got a server error; now a message."""
    with pytest.raises(InputError, match="must all be numbers"):
        whatif.numbers(values, float, "feature values")
    assert whatif.numbers([1, "2.5"], float, "feature values") == [1.0, 2.5]
    with pytest.raises(InputError, match="token ids must all be numbers"):
        whatif.numbers(["the"], int, "token ids")
