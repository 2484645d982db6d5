"""The paper's comparisons as a command: ``sknngp study``.

Lee et al. (2020) compare finite networks with their NNGP and NTK limits
and list twelve findings. Each experiment here is one small function of
:mod:`sknngp.study.experiments` built from the public estimators;
:func:`run_study` runs them into a folder (CSV and Markdown tables, one PNG
per experiment) and :func:`make_report` states, for each finding, whether the
run supports it, with the numbers.

Examples
--------
>>> from sknngp.study import PRESETS, load_study_data
>>> config = PRESETS["tiny"]
>>> data = load_study_data("digits", n_train=config.n_train, n_test=config.n_test)
>>> data.X_train.shape, data.input_shape
((40, 64), (8, 8, 1))
"""

from .._optional import require

require("pandas", "matplotlib", feature="sknngp study", extra="study")

from ._config import PRESETS, StudyConfig  # noqa: E402
from ._data import AUGMENTATIONS, DATASETS, StudyData, load_study_data
from ._runner import run_study
from .experiments import COLUMNS, EXPERIMENTS
from .report import FINDINGS, assess, make_report

__all__ = [
    "AUGMENTATIONS", "COLUMNS", "DATASETS", "EXPERIMENTS", "FINDINGS", "PRESETS",
    "StudyConfig", "StudyData", "assess", "load_study_data", "make_report", "run_study",
]
