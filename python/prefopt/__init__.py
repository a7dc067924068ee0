"""prefopt: preference-optimization scoring and losses on LibTorch, from Python.

Importing the package loads libprefopt.so (see _library.py for where it is looked for) and exposes thin
keyword-argument wrappers over the torch.ops.prefopt operators. It never builds the library, and it never
computes scores or losses in Python: every number comes from the same C++ kernels as the C++ API.

Installed with ``pip install .`` (built against the torch already installed), ``import prefopt`` works from
anywhere. From a source tree, after building (``bash scripts/build.sh``) from the repository root::

    PYTHONPATH=$PWD/python python -c "import prefopt"
"""

import torch  # noqa: F401  (libtorch must be loaded before libprefopt.so)

from ._library import load_library as _load_library

library_path: str = _load_library()

from .results import LossResult  # noqa: E402
from .pairwise import DPOLoss, DPOLossResult, dpo_loss  # noqa: E402
from .scoring import (  # noqa: E402
    fused_linear_logps,
    sequence_kl,
    sequence_logps,
    token_entropy,
    token_kl,
    token_logps,
    wpo_log_weights,
    wpo_sequence_log_weights,
)
from .packed import packed_fused_linear_logps, packed_sequence_logps, segment_sum  # noqa: E402
from .sequence_reductions import ld_dpo_logps, mean_token_nll, wpo_pair_weights  # noqa: E402
from .reference_free import PairLossResult, cpo_loss, orpo_loss, simpo_loss  # noqa: E402
from .reward import RewardLossResult, reward_loss  # noqa: E402
from .unpaired import KTOLossResult, kto_loss  # noqa: E402
from . import degree, joint, listwise, metrics, token_level  # noqa: E402,F401
from .listwise import (  # noqa: E402
    all_pairs_loss,
    irpo_loss,
    lipo_lambda_loss,
    plackett_luce_loss,
    pro_loss,
    ranklist_loss,
    tpo_loss,
    tpo_step_weights,
)
from .metrics import idealized_ranking_accuracy, kendall_tau, ndcg, ranking_accuracy  # noqa: E402
from .token_level import tdpo_loss  # noqa: E402
from .joint import joint_dpo_loss, joint_labels, joint_sequence_logps  # noqa: E402
from .degree import degree_loss, extract_keyphrases, graded_removal, spo_loss  # noqa: E402
from .tokenizer import Tokenizer, render_chat_template  # noqa: E402

# The loaded library's version: CMakeLists.txt's project(VERSION), the one place it is declared.
__version__: str = torch.ops.prefopt.version()

__all__ = [
    "Tokenizer",
    "render_chat_template",
    "token_logps",
    "sequence_logps",
    "dpo_loss",
    "DPOLoss",
    "DPOLossResult",
    "LossResult",
    "wpo_pair_weights",
    "ld_dpo_logps",
    "mean_token_nll",
    "simpo_loss",
    "cpo_loss",
    "orpo_loss",
    "PairLossResult",
    "kto_loss",
    "KTOLossResult",
    "reward_loss",
    "RewardLossResult",
    "plackett_luce_loss",
    "all_pairs_loss",
    "lipo_lambda_loss",
    "irpo_loss",
    "pro_loss",
    "tpo_loss",
    "tpo_step_weights",
    "ranklist_loss",
    "ranking_accuracy",
    "kendall_tau",
    "ndcg",
    "idealized_ranking_accuracy",
    "tdpo_loss",
    "joint_dpo_loss",
    "joint_labels",
    "joint_sequence_logps",
    "degree_loss",
    "spo_loss",
    "extract_keyphrases",
    "graded_removal",
    "token_kl",
    "sequence_kl",
    "token_entropy",
    "wpo_log_weights",
    "wpo_sequence_log_weights",
    "fused_linear_logps",
    "segment_sum",
    "packed_sequence_logps",
    "packed_fused_linear_logps",
    "library_path",
    "__version__",
]
