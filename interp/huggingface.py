"""Hugging Face transformers in interp: what a model needs beyond being passed as it is.

    clf = BertForSequenceClassification(...)          # returns SequenceClassifierOutput
    interp.lrp(clf, {"input_ids": ids, "attention_mask": mask}, composite="attnlrp")
    lm = interp.huggingface.Scores(llama_lm)           # a language model: next-token scores
    interp.lrp(lm, {"input_ids": ids, "attention_mask": mask}, composite="attnlrp")

A classifier needs nothing: every analysis reads the ``.logits`` of the ``ModelOutput`` it
returns, takes the inputs as the dict a tokenizer gives (``input_ids``, ``attention_mask``,
``token_type_ids``), explains the token ids through the embedding that reads them (found
by value, through GPT-2's ``view``), and passes the mask unchanged to every forward: a
padded token gets no relevance. A language model (or a token classifier) gives logits per
position; :class:`Scores` picks one position per sample, the last real token by default.

``transformers`` is not a dependency of interp (``pip install interp[hf]`` adds it); nothing
here imports it. Its module types get LRP rules by duck type (:mod:`interp.lrp.composites`,
:mod:`interp.lrp.canonizers`), its functional attention by :mod:`interp.lrp.functions`.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import InputError


class Scores(nn.Module):
    """A Hugging Face model (or any model returning ``.logits`` or a tensor of scores per
    position, ``(batch, positions, outputs)``) as one score per output for each sample: the
    logits at ``position``: ``"last"`` (the last token the attention mask keeps, or the
    last position without a mask: the next-token prediction of a language model), or an
    index. Keyword inputs are handed on as given; ``model.`` prefixes the module paths."""

    def __init__(self, model: nn.Module, position: int | str = "last"):
        super().__init__()
        if not (position == "last" or isinstance(position, int)) or isinstance(position, bool):
            raise InputError(f"position must be 'last' or an index; got {position!r}")
        self.model, self.position = model, position

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        # the ids positionally: Hugging Face forwards take them first, as do models of one's own
        out = self.model(input_ids, **kwargs) if input_ids is not None else self.model(**kwargs)
        logits = getattr(out, "logits", out)
        if not isinstance(logits, torch.Tensor) or logits.ndim not in (2, 3):
            raise InputError(f"the wrapped model returned {type(logits).__name__}; expected logits shaped "
                             "(batch, positions, outputs) or (batch, outputs)")
        if logits.ndim == 2:
            return logits
        if self.position != "last":
            if not -logits.shape[1] <= self.position < logits.shape[1]:
                raise InputError(f"position {self.position} is outside the {logits.shape[1]} positions")
            return logits[:, self.position]
        if attention_mask is None:
            return logits[:, -1]
        # the last position the mask keeps (left or right padding alike)
        keep = attention_mask.to(torch.long)
        last = (keep * torch.arange(1, keep.shape[1] + 1, device=keep.device)).argmax(1)
        return logits[torch.arange(len(logits), device=logits.device), last]


__all__ = ["Scores"]
