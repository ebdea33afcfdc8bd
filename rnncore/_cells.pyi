# The compiled window and generation kernels (pyx/_cells.pyx): typed as Any here; the
# Python layer's checked doorway into them is rnncore.model.CharRNN with rnncore.doorway.
from typing import Any

def __getattr__(name: str) -> Any: ...
