"""rnncore: fast character-level recurrent neural networks on the CPU."""
from .model import CharRNN
from .vocab import Vocab

__version__ = "0.1.0"
__all__ = ["CharRNN", "Vocab", "__version__"]
