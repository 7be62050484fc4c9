"""The study of a subject: what each face shows of an :class:`interp.Subject`, per analysis.

Between the library and the faces: :mod:`dashboard` and :mod:`reports` call these
modules, so a model looks the same in the browser and in a static report, whoever
wrote it (the zoo, a user's file, a Python call). Each module composes one analysis
for a subject: which objective, which layers, which samples to show, what to keep on
disk; the numbers come from the library (:func:`interp.attribute`, :func:`interp.lrp`,
...) and the drawing from :mod:`interp.figures`.

- :mod:`.overview`   the subject's card, metrics, predictions, samples to showcase
- :mod:`.activations` every leaf's outputs over the data (collected into the store)
- :mod:`.saliency`   attribution methods side by side, per objective
- :mod:`.lrp`        relevance beside saliency, its flow and rule plan
- :mod:`.sensitivity` noise, occlusion, layers, explanation robustness
- :mod:`.latent`     projections of a layer, traversals and interpolations
- :mod:`.evaluation` how far to trust each explanation: scores, sanity checks, leaderboard
- :mod:`.cache`      dataset-wide results kept in :class:`interp.Store`

Nothing here knows the zoo: a subject is all it reads.
"""

from . import activations, cache, evaluation, latent, lrp, overview, saliency, sensitivity

__all__ = ["overview", "activations", "saliency", "lrp", "sensitivity", "latent", "evaluation", "cache"]
