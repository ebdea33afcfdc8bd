# Types of the compiled optimizer updates (pyx/_kernels.pyx); each is fused over float32
# and float64: index it with a dtype (rnncore.layout.FUSED) or call it with arrays of one.
from typing import Any, Optional

import numpy as np

MATHS: str
USES_LIBMVEC: bool

sgd_update: Any
adagrad_update: Any
rmsprop_update: Any
adam_update: Any


def ema_update(average: np.ndarray, param: np.ndarray, decay: float) -> None: ...
def elementwise(function: str, x: np.ndarray) -> Optional[float]: ...
