"""Checkpoints: one .npz file, written atomically, read without pickle and checked.

Contents (every entry a plain array; strings are 0-d unicode arrays):
    format          "rnncore-checkpoint"
    version         1
    config          JSON: the model's configuration (cell, hidden_size, dtype, n_vocab,
                    num_layers, dropout; a config without the last two, or whose cell is
                    "vanilla", is a single-layer rnn from before there were other cells)
    vocab           (V,) uint32 code points
    param.<name>    the parameter arrays (CharRNN.shapes names them)
    train           JSON (optional): step, epoch, pointer, optimizer scalars, training config
    state.<name>    arrays (optional): optimizer state, every stream's recurrent state
                    (whatever shape the model's state has), the best-validation
                    parameters (state.best.<param>, --keep-best) and the averaged ones
                    (state.average.<param>, --average)
"""
import json
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .config import TrainConfig, problem
from .errors import CheckpointError, CheckpointWriteError  # noqa: F401  (re-exported)
from .files import remove_stale_temp_files, require_file, write_atomically  # noqa: F401
from .layout import CELLS
from .model import FILE_FORMATS, CharRNN, FileFormat
from .npzfile import ArchiveError, PickledData, read_npz, write_npz
from .optim import OPTIMIZERS
from .vocab import Vocab

FORMAT = "rnncore-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    model: CharRNN                                # the latest parameters
    train_meta: Optional[dict] = None             # None for a model saved on its own
    train_arrays: dict = field(default_factory=dict)
    best_model: Optional[CharRNN] = None          # the best-validation one, with --keep-best
    average_model: Optional[CharRNN] = None       # the averaged parameters, with --average

    @property
    def preferred_model(self) -> CharRNN:
        """What sampling, evaluation and export use: the best-validation model when kept
        (with --average, the best of the averaged parameters), else the averaged
        parameters when the run averaged them, else the latest."""
        if self.best_model is not None:
            return self.best_model
        return self.average_model if self.average_model is not None else self.model


def save_checkpoint(path, model: CharRNN, train_state=None) -> None:
    """Write `model` (and optionally a Trainer's state() pair) to `path`, atomically.

    The file is written to a temporary file in the same directory, flushed and fsync'ed,
    then renamed over `path`: at any moment `path` holds the old or the new checkpoint.
    Non-finite parameters are refused, so a diverged run never overwrites a good file.
    A failed write raises CheckpointWriteError and leaves the old file as it was.
    """
    for name in model.shapes:
        if not np.isfinite(model.params[name]).all():
            raise CheckpointError(f"refusing to save: parameter {name} holds nan or inf")
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "config": np.array(json.dumps(model.config)),
        "vocab": model.vocab.codepoints,
    }
    arrays.update({f"param.{name}": model.params[name] for name in model.shapes})
    if train_state is not None:
        train_arrays, train_meta = train_state
        arrays["train"] = np.array(json.dumps(train_meta))
        arrays.update({f"state.{k}": v for k, v in train_arrays.items()})
    write_atomically(os.fspath(path), lambda f: write_npz(f, arrays))


def load_checkpoint(path) -> Checkpoint:
    """Read and check a checkpoint; return a Checkpoint.  Raises CheckpointError naming
    the problem for a missing, truncated, foreign, pickle-bearing or mismatched file."""
    path = os.fspath(path)
    require_file(path, "checkpoint", "checkpoint")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    if magic.startswith(b"\x80") and magic[1:2] in b"\x02\x03\x04\x05":
        raise CheckpointError(f"{path} holds pickled data, which rnncore never loads "
                              "(it is not an rnncore checkpoint)")
    if magic == b"\x93NUMPY":
        raise CheckpointError(f"{path} is a single .npy array, not an rnncore checkpoint")
    if not magic.startswith(b"PK\x03\x04"):
        raise CheckpointError(f"{path} is not a readable rnncore checkpoint (not an .npz "
                              "archive)")
    try:
        arrays = read_npz(path)
    except PickledData:
        raise CheckpointError(f"{path} holds pickled data, which rnncore never loads "
                              "(it is not an rnncore checkpoint)") from None
    except ArchiveError as e:
        raise CheckpointError(f"{path} is not a readable rnncore checkpoint "
                              f"(truncated or corrupt: {e})") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    return _checked(path, arrays)


def _checked(path, arrays):
    def text(key):
        a = arrays.get(key)
        if a is None or a.shape != () or a.dtype.kind != "U":
            raise CheckpointError(f"{path}: entry {key!r} is missing or not a string")
        return str(a)

    def json_entry(key):
        try:
            return json.loads(text(key))
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: entry {key!r} is not valid JSON ({e})") from None

    if "format" not in arrays or text("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rnncore checkpoint (no {FORMAT!r} marker)")
    version = arrays.get("version")
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: the format version is missing")
    if int(version) != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {int(version)}; this "
                              f"rnncore reads version {VERSION}")
    config = json_entry("config")
    if isinstance(config, dict) and config.get("cell") == "vanilla":
        config["cell"] = "rnn"     # what the single-layer tanh cell was called before
    if not isinstance(config, dict) or config.get("cell") not in CELLS:
        raise CheckpointError(f"{path}: unsupported model configuration {config!r}")
    try:
        vocab = Vocab.from_codepoints(arrays.get("vocab", np.zeros(0, np.int64)))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad vocabulary ({e})") from None
    if len(vocab) != config.get("n_vocab"):
        raise CheckpointError(f"{path}: the vocabulary has {len(vocab)} characters, the "
                              f"configuration says {config.get('n_vocab')}")
    _check_claimed_size(path, config, arrays)

    def build_model():
        return CharRNN(vocab, config["hidden_size"], dtype=config["dtype"],
                       cell=config["cell"], num_layers=config.get("num_layers", 1),
                       dropout=config.get("dropout", 0.0),
                       dropout_mode=config.get("dropout_mode", "step"),
                       weight_drop=config.get("weight_drop", 0.0))

    try:
        model = build_model()
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad model configuration ({e})") from None
    _fill_params(path, model, arrays, "param.")
    best_model = average_model = None
    if "state.best.Wxh" in arrays:
        best_model = model.with_params({})
        _fill_params(path, best_model, arrays, "state.best.")
    if "state.average.Wxh" in arrays:
        average_model = model.with_params({})
        _fill_params(path, average_model, arrays, "state.average.")
    train_meta = json_entry("train") if "train" in arrays else None
    train_arrays = {k[len("state."):]: v for k, v in arrays.items() if k.startswith("state.")}
    if train_meta is not None and not isinstance(train_meta, dict):
        raise CheckpointError(f"{path}: the training state is malformed")
    if train_meta is not None:
        _check_train_state(path, train_meta, train_arrays, model)
    return Checkpoint(model, train_meta, train_arrays, best_model, average_model)


def _check_claimed_size(path, config, arrays):
    """A damaged or edited configuration must not make the loader build a model larger
    than the file: every layer of every cell has at least an (H, H) recurrent matrix."""
    hidden_size, num_layers = config.get("hidden_size"), config.get("num_layers", 1)
    if isinstance(hidden_size, int) and hidden_size > 0 and isinstance(num_layers, int) \
            and num_layers * hidden_size * hidden_size > sum(a.size for a in arrays.values()):
        raise CheckpointError(f"{path}: the configuration's hidden_size {hidden_size} "
                              "does not fit the arrays the file holds")


def _is_int(value, low=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value, low=None, high=None, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or value <= high


def _config_problem(config):
    """What is wrong with a stored training configuration (keys it holds are checked by
    the config's one validation; absent ones take their defaults), or None."""
    for f in TrainConfig.fields():
        if f.metadata["stored"] and f.name in config:
            wrong = problem(f.metadata["kind"], config[f.name], f.metadata["choices"],
                            f.metadata["optional"] or f.name in ("clip", "seed"))
            if wrong:
                return f"{f.name} = {config[f.name]!r}"
    total = config.get("total_steps")
    if total is not None and not _is_int(total, 1):
        return f"total_steps = {total!r}"
    return None


def _check_train_state(path, meta, arrays, model):
    """Check what `train --resume` reads, so that a damaged or hand-edited training state
    is a CheckpointError naming the file, not a failure deep inside the run."""
    def malformed(what):
        return CheckpointError(f"{path}: the training state is malformed ({what})")

    for key in ("step", "epoch", "pointer"):
        if not _is_int(meta.get(key)):
            raise malformed(f"{key} must be an integer >= 0")
    for key in ("evals_since_best", "corpus_chars"):
        if key in meta and not _is_int(meta[key]):
            raise malformed(f"{key} must be an integer >= 0")
    if "elapsed" in meta and not _is_number(meta["elapsed"], 0):
        raise malformed("elapsed must be a number >= 0")
    if "corpus_sha256" in meta and not isinstance(meta["corpus_sha256"], str):
        raise malformed("corpus_sha256 must be a string")
    for key in ("best", "last_validation"):
        record = meta.get(key)
        if record is not None and not (isinstance(record, dict)
                                       and _is_number(record.get("val_loss"))
                                       and _is_int(record.get("step"))):
            raise malformed(f"{key} must hold a finite val_loss and a step")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise malformed("no training configuration")
    wrong = _config_problem(config)
    if wrong:
        raise malformed(wrong)
    optimizer = meta.get("optimizer")
    if not isinstance(optimizer, dict) or optimizer.get("name") not in OPTIMIZERS \
            or not _is_int(optimizer.get("step_count")):
        raise malformed("the optimizer's state is not recognised")
    name = optimizer["name"]
    if config.get("optimizer", name) != name:
        raise malformed(f"the optimizer state is {name}'s, the configuration says "
                        f"{config['optimizer']}")
    for slot in OPTIMIZERS[name].slots:
        for param, p in model.params.items():
            a = arrays.get(f"optim.{slot}.{param}")
            if a is None or a.shape != p.shape or a.dtype != model.dtype \
                    or not np.isfinite(a).all():
                raise malformed(f"optimizer array {slot}.{param} is missing, misshapen "
                                "or not finite")
    for param, p in model.params.items():
        a = arrays.get(f"average.{param}")
        if "average.Wxh" in arrays and (a is None or a.shape != p.shape
                                        or a.dtype != model.dtype or not np.isfinite(a).all()):
            raise malformed(f"averaged parameter {param} is missing, misshapen or not "
                            "finite")
    if "dropout_rng" in meta:
        try:
            np.random.default_rng().bit_generator.state = meta["dropout_rng"]
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise malformed(f"the dropout generator's state is not recognised ({e})") \
                from None
    hidden = arrays.get("hidden")
    streams = config.get("batch_size")
    if hidden is None or hidden.dtype != model.dtype or hidden.ndim < 2 \
            or hidden.shape[-1] != model.hidden_size \
            or (streams is not None and hidden.shape[-2] != streams) \
            or not np.isfinite(hidden).all():
        raise malformed("the streams' hidden state is missing, misshapen or not finite")


def _fill_params(path, model, arrays, prefix):
    for name, shape in model.shapes.items():
        a = arrays.get(prefix + name)
        what = "parameter" if prefix == "param." else f"{prefix}parameter"
        if a is None:
            raise CheckpointError(f"{path}: {what} {name} is missing")
        if a.shape != shape or a.dtype != model.dtype:
            raise CheckpointError(f"{path}: {what} {name} has shape {a.shape} and dtype "
                                  f"{a.dtype}, expected {shape} {model.dtype.name}")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{path}: {what} {name} holds nan or inf")
        model.params[name] = np.ascontiguousarray(a)


FILE_FORMATS["checkpoint"] = FileFormat(lambda path, model: save_checkpoint(path, model),
                                        load_checkpoint)
