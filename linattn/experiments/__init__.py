"""The experiment layer: every computation behind a table or figure of the book, by name.

One module per part of the book (:mod:`.part1`, :mod:`.part2`, :mod:`.part3`, with :mod:`.part3_dual` for
the dual implication); each defines
validated configs (``quick()`` / ``paper()``), the cells of a config, and the function that runs
one cell (see :mod:`.base`). ``linattn reproduce`` runs them into the results store
(:mod:`linattn.runner`, :mod:`linattn.store`); chapters read them with :func:`linattn.book.results`.

>>> from linattn import experiments
>>> experiments.get("width_sweep").title
'NTK distance against width under ten readings (Table 1 of v1)'
"""
from .base import REGISTRY, Config, Experiment, get, names, register
from . import ground_truth, part1, part2, part3, part3_dual, part4
from .part2 import MODEL_LABELS, MODELS, WidthSweepConfig, kernel_facts, prepare_task, run_one

for _exp in (part1.KAPPA_VS_N, part1.PREMISE, part1.KAPPA_FULL, part2.WIDTH_SWEEP, part2.WIDTH_FACTS, part2.LAZY_CONTROL,
             part3.MALLEABILITY_TABLES, part3.ADVERSARIAL_TABLES, part3.TASK_KAPPA, part3.MALLEABILITY_CURVES, part3_dual.DUAL_IMPLICATION,
             ground_truth.GROUND_TRUTH,
             part4.QKV_MALLEABILITY, part4.QKV_GRAM):
    register(_exp)

from . import part4_softmax  # noqa: E402  (Part IV, softmax attention and its proxy)

register(part4_softmax.SOFTMAX_PROXY)
register(part4_softmax.SOFTMAX_MALLEABILITY)

__all__ = ["REGISTRY", "Config", "Experiment", "get", "names", "register", "ground_truth", "part1", "part2", "part3", "part3_dual", "part4", "MODELS", "MODEL_LABELS",
           "WidthSweepConfig", "kernel_facts", "prepare_task", "run_one"]
