"""`mixaug eval`: does the augmentation help, how readable and controllable is it, and how fast?

For each shots setting and seed, a stratified sample of TRAIN is augmented by every method with the same
number of new rows; a classifier trained on originals (+ new rows) is scored on TEST. mixaug rows come
from `pipeline.augment` itself. Also measured: inversion fidelity on TEST texts, controllability over λ,
manifold-intrusion rates and throughput.

The code lives in `mixaug.evaluation` (arms, run, journal, outputs); this module names it in one import.
"""

from __future__ import annotations

from .evaluation.arms import (  # noqa: F401
    ARMS,
    ArmRows,
    Subset,
    _run_arm,
    arm_class_weights,
    arm_eda,
    arm_embed_mixup,
    arm_mixaug,
    arm_none,
    arm_oversample,
    arm_paraphrase,
    arm_smote,
    rare_classes,
    sample_shots,
)
from .evaluation.config import EvalConfig, Method, parse_method  # noqa: F401
from .evaluation.journal import (  # noqa: F401
    JOURNAL,
    RunJournal,
    _fresh_decodes,
    _journal_key,
)
from .evaluation.outputs import (  # noqa: F401
    _MD_ESCAPES,
    _MD_HIDDEN,
    _MD_LINE_BREAKS,
    CLASSIFIER_WORDS,
    _ceiling_line,
    _classifier_words,
    _md_table,
    _plots,
    _save_plot,
    _speed_ratio,
    md_text,
    render_report,
    write_outputs,
)
from .evaluation.run import (  # noqa: F401
    _controllability,
    _decode_speed,
    _fidelity,
    _intrusion_table,
    _paired_p,
    _peak_rss_mb,
    _summarise,
    run_eval,
    summary_from_runs,
)
