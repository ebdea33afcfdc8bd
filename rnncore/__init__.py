"""rnncore: fast character-level recurrent neural networks on the CPU."""
from .model import CharRNN
from .train import Trainer, TrainingDiverged
from .vocab import Vocab

__version__ = "0.1.0"
__all__ = ["CharRNN", "Trainer", "TrainingDiverged", "Vocab", "__version__"]
