"""What `rnncore info` says of a checkpoint: its summary (a JSON-able dict) and the text
lines of it, beside rnncore.checkpoint, which reads the file."""
from typing import Any, Dict, List

from .checkpoint import Checkpoint
from .metrics import LN2

_CELL_NAMES = {"rnn": "vanilla RNN (tanh)", "lstm": "LSTM", "gru": "GRU"}

def checkpoint_summary(ckpt: Checkpoint) -> Dict[str, Any]:
    """What `rnncore info` reports, as a JSON-able dict."""
    model = ckpt.model
    chars = "".join(model.vocab.chars)
    summary = {"model": {**model.config, "parameters": model.num_parameters()},
               "vocabulary": chars, "best_parameters_kept": ckpt.best_model is not None,
               "averaged_parameters_kept": ckpt.average_model is not None}
    meta = ckpt.train_meta
    if meta is not None:
        config = meta.get("config", {})
        summary["training"] = {
            "step": meta.get("step"), "epoch": meta.get("epoch"),
            "target_steps": config.get("total_steps"),
            "training_seconds": meta.get("elapsed"),
            "streams": config.get("batch_size"), "window": config.get("seq_length"),
            "optimizer": config.get("optimizer"), "learning_rate": config.get("learning_rate"),
            "lr_schedule": config.get("lr_schedule"), "warmup_steps": config.get("warmup_steps"),
            "lr_decay": config.get("lr_decay"), "clip": config.get("clip"),
            "clip_norm": config.get("clip_norm"), "val_fraction": config.get("val_fraction"),
            "weight_decay": config.get("weight_decay", 0.0),
            "average": config.get("average"), "average_start": config.get("average_start"),
            "seed": config.get("seed"), "best_validation": meta.get("best"),
            "last_validation": meta.get("last_validation")}
        summary["corpus"] = {"path": meta.get("corpus_path"),
                             "sha256": meta.get("corpus_sha256"),
                             "training_chars": meta.get("corpus_chars")}
    return summary


def info_lines(path: str, summary: Dict[str, Any]) -> List[str]:
    """`rnncore info`'s text: every line within 80 columns but for the paths it names."""
    m = summary["model"]
    layers = f"{m['num_layers']} layers" if m["num_layers"] > 1 else "1 layer"
    dropout = f", dropout {m['dropout']:g}" if m["dropout"] else ""
    if m["dropout"] and m.get("dropout_mode") == "locked":
        dropout += " (locked)"
    if m.get("weight_drop"):
        dropout += f", weight drop {m['weight_drop']:g}"
    lines = [f"{path}: {_CELL_NAMES[m['cell']]}, {layers} of {m['hidden_size']} units"
             f"{dropout}, {m['dtype']}",
             f"parameters: {m['parameters']:,}",
             f"vocabulary: {m['n_vocab']} symbols"]
    lines += ["  " + part for part in _quoted_in_pieces(summary["vocabulary"], 76)]
    t = summary.get("training")
    if t is None:
        return lines + ["training state: none (a model saved on its own)"]
    target = f"/{t['target_steps']:,}" if t["target_steps"] else ""
    seconds = t["training_seconds"] or 0.0
    clip_norm = f", clip-norm {t['clip_norm']:g}" if t["clip_norm"] else ""
    lines += [f"training: step {t['step']:,}{target}, epoch {t['epoch']}, "
              f"{seconds:,.0f} s of training",
              f"  {t['streams']} stream(s) x {t['window']} steps"
              + ("" if t["seed"] is None else f", seed {t['seed']}"),
              f"optimizer: {t['optimizer']} lr {t['learning_rate']:g}, clip {t['clip']:g}"
              f"{clip_norm}" + (f", weight decay {t['weight_decay']:g}"
                                if t.get("weight_decay") else ""),
              f"  schedule {t['lr_schedule']} (warm-up {t['warmup_steps']}, decay "
              f"{t['lr_decay']:g})"]
    if t.get("average") is not None:
        lines.append(f"  averaged weights: decay {t['average']:g} from step "
                     f"{t['average_start'] or 0:,}"
                     + ("" if summary["averaged_parameters_kept"] else " (not started)"))
    best, last = t["best_validation"], t.get("last_validation")
    if best is None:
        lines.append("best validation: none yet")
    else:
        kept = ("kept; sample and eval use it" if summary["best_parameters_kept"]
                else "not kept (train with --keep-best)")
        lines += [f"best validation: {best['val_loss']:.4f} nats/char "
                  f"({best['val_loss'] / LN2:.4f} bits/char) at step {best['step']:,}",
                  f"  parameters {kept}"]
    if last is not None and last != best:
        lines.append(f"last validation: {last['val_loss']:.4f} nats/char at step "
                     f"{last['step']:,}")
    c = summary["corpus"]
    chars = f"{c['training_chars']:,}" if c["training_chars"] is not None else "?"
    held = ("held-out part not recorded" if t["val_fraction"] is None
            else f"{t['val_fraction']:g} held out")
    lines += [f"corpus: {c['path'] or '(path not recorded)'}",
              f"  {chars} training chars, {held}, sha256 {(c['sha256'] or '?')[:16]}..."]
    return lines


def _quoted_in_pieces(text, width):
    """repr(text) cut into quoted pieces of at most `width` characters, each whole
    (an escape is never split)."""
    pieces, current = [], ""
    for char in text:
        if len(repr(current + char)) > width:
            pieces.append(repr(current))
            current = ""
        current += char
    return pieces + [repr(current)]


