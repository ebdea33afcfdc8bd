"""rnncore: fast character-level recurrent neural networks on the CPU."""
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .config import TRAIN_DEFAULTS, ModelConfig, TrainConfig
from .corpus import CorpusError, load_corpus
from .engines import get_gemm_engine, set_gemm_engine
from .errors import ConfigError, NotEnoughMemory, RnncoreError
from . import export  # noqa: F401  (registers the safetensors format of CharRNN)
from .model import CharRNN
from .run import RunError, RunResult, fit
from .session import TypingSession
from .threads import get_num_threads, set_num_threads
from .train import Trainer, TrainingDiverged, evaluate
from .vocab import Vocab

__version__ = "0.1.0"
__all__ = ["CharRNN", "Checkpoint", "CheckpointError", "ConfigError", "CorpusError",
           "ModelConfig", "NotEnoughMemory", "RnncoreError", "RunError", "RunResult",
           "TRAIN_DEFAULTS", "TrainConfig", "Trainer", "TrainingDiverged", "TypingSession",
           "Vocab",
           "__version__", "evaluate", "fit", "get_gemm_engine", "get_num_threads",
           "load_checkpoint", "load_corpus", "save_checkpoint", "set_gemm_engine",
           "set_num_threads"]
