"""The `rnncore` command line: demo, train, sample.

Every failure the user can cause ends in one line on stderr, `rnncore: error: ...`, and a
non-zero exit status; never a traceback.
"""
import argparse
import json
import math
import os
import sys

from .about import ReportVersion
from .checkpoint import load_checkpoint
from .corpus import read_corpus
from .errors import NotEnoughMemory, RnncoreError, SafetensorsMissing, UsageError
from .export import INSTALL as INSTALL_EXPORT, TORCH_MODULES
from .metrics import LN2, metrics_path, plot_metrics, read_metrics
from .model import CharRNN
from .parallel import world_rank
from .config import (DEFAULT_STEPS, RANGES, SETTINGS, all_fields, flag, parse_text)
from .errors import ConfigError
from .run import fit
from .summary import checkpoint_summary, info_lines
from .sample import seen_prime
from .threads import resolve_threads, set_num_threads
from .train import Trainer, evaluate
from .vocab import Vocab

DEMO_TEXT = "Hola mundo, aprendiendo redes recurrentes!"
DEMO_PRIME = "Hola mundo, aprendien"
DEMO_STEPS = 3000   # seeds 0..99 all complete the demo from 1,400 steps on (tests check 20)

# ---- argument types: the config's checks; argparse makes their error one usage line ----
def _kind_type(kind):
    def parse(text):
        try:
            return parse_text(kind, text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = kind
    return parse


positive_int = _kind_type("positive_int")
positive_float = _kind_type("positive_float")
nonnegative_int = _kind_type("nonnegative_int")
_int = _kind_type("int")


def argument_type(f):
    """argparse's type for a setting: its text parsed and checked by the config's one
    validation (argparse prefixes the flag: "argument --clip: must be >= 0, got -1")."""
    return _kind_type(f.metadata["kind"])


def setting_help(f):
    """A setting's help: what it does, its default, its range, what --resume does."""
    m = f.metadata
    default = "off" if f.default is None else f.default
    parts = [f"default {default}"]
    if m["kind"] in RANGES and m["kind"] != "int":
        parts.append(RANGES[m["kind"]])
    if m["resume"] == "fixed":
        parts.append("fixed by the checkpoint on --resume")
    return f"{m['help']} ({'; '.join(parts)})"


class _Parser(argparse.ArgumentParser):
    """argparse with a short error: the one line that matters and where to look, not
    twenty lines of usage above it."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists the "
                     "options)\n")


def _float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def probability(text):
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def nonnegative_float(text):
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser():
    parser = _Parser(
        prog="rnncore", description="Character-level RNN language models, fast on a CPU.")
    parser.add_argument("--version", action=ReportVersion)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="train on one sentence and complete it",
                          description=f"Train on {DEMO_TEXT!r} with the classic settings "
                          "(hidden 64, window 10, SGD lr 1e-2, clip 5), then complete "
                          f"{DEMO_PRIME!r} greedily.")
    demo.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    demo.add_argument("--steps", type=positive_int, default=DEMO_STEPS,
                      help=f"training steps (default {DEMO_STEPS})")
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser("train", help="train a model on a text file",
                           description="Train on a UTF-8 text file and save a checkpoint "
                           "(at the end, every --checkpoint-every steps, and on Ctrl-C).")
    train.add_argument("corpus", help="text file to learn")
    train.add_argument("--out", required=True, help="checkpoint file to write (.npz)")
    budget = train.add_mutually_exclusive_group()
    budget_help = {"steps": f"(default {DEFAULT_STEPS}; with --resume: the run's own total)",
                   "epochs": "(the header says how many steps make one)",
                   "minutes": "(a cosine or linear schedule follows the clock; with "
                              "--resume and no budget: the run's own minutes)"}
    for f in all_fields():   # every setting, from the one table fit() shares (config)
        m = f.metadata
        if f.name in budget_help:
            budget.add_argument(flag(f.name), type=argument_type(f),
                                help=f"{m['help']} {budget_help[f.name]}")
        elif m["kind"] == "flag":
            train.add_argument(flag(f.name), action="store_true", default=None,
                               help=m["help"])
        else:
            train.add_argument(flag(f.name), type=argument_type(f), choices=m["choices"],
                               help=setting_help(f))
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved at --out")
    train.add_argument("--force", action="store_true",
                       help="overwrite an existing --out without resuming it")
    train.add_argument("--encoding", default="utf-8", help="corpus encoding (default utf-8)")
    add_threads_option(train, " (under --distributed: shared out among the ranks on "
                       "each host)")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel over the processes of `mpiexec -n R` (needs "
                       "pip install 'rnncore[mpi]'); --batch-size counts all ranks' streams")
    train.set_defaults(func=cmd_train)

    info = sub.add_parser("info", help="what a checkpoint holds",
                          description="Model, training state, schedule, best validation, "
                          "vocabulary and corpus of a checkpoint.")
    info.add_argument("checkpoint", help="checkpoint file written by `rnncore train`")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_info)

    add_sample_parser(sub)
    add_predict_parsers(sub)
    add_export_parser(sub)

    ev = sub.add_parser("eval", help="loss of a checkpoint on a text file",
                        description="Mean cross-entropy of the model on FILE, predicting "
                        "every character from the ones before (state carried throughout): "
                        "nats/char, bits/char and perplexity.  Characters the model has "
                        "never seen are dropped and counted.")
    ev.add_argument("checkpoint", help="checkpoint file written by `rnncore train`, or a "
                    ".safetensors file written by `rnncore export`")
    ev.add_argument("file", help="text file to evaluate on")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--encoding", default="utf-8", help="FILE's encoding (default utf-8)")
    ev.add_argument("--latest", action="store_true",
                    help="use the latest parameters, not the best-validation ones")
    ev.add_argument("--keystrokes", action="store_true",
                    help="instead: type FILE with the model's word suggestions shown at "
                    "every keystroke and report the keystrokes saved, top-1 and top-3 "
                    "next-word accuracy, beside a word unigram+bigram baseline built from "
                    "the model's training text")
    ev.add_argument("-k", type=positive_int, default=None,
                    help="with --keystrokes: suggestions shown (default 3)")
    ev.add_argument("--baseline-text", help="with --keystrokes: build the baseline from "
                    "this file instead of the model's training text (the checkpoint's "
                    "corpus without its held-out end)")
    add_threads_option(ev)
    ev.set_defaults(func=cmd_eval, usage_error=ev.error)

    plot = sub.add_parser("plot", help="plot a run's train/validation loss to a PNG",
                          description="Train and validation loss (bits/char) against steps "
                          "and time, from the metrics log beside a checkpoint.  Needs "
                          "matplotlib (pip install 'rnncore[plot]').")
    plot.add_argument("run", help="checkpoint (model.npz) or its metrics log "
                      "(model.metrics.jsonl)")
    plot.add_argument("--out", help="PNG to write (default: beside the log, .png)")
    plot.set_defaults(func=cmd_plot)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        threads = resolve_threads(getattr(args, "threads", None))
        if threads is not None and args.func not in (cmd_train, cmd_serve):
            set_num_threads(threads)             # train and serve set it themselves
        return args.func(args) or 0
    except BrokenPipeError:  # `rnncore sample ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit stays quiet
        return 0
    except RnncoreError as e:   # anything else is a bug, and keeps its traceback
        return _fail(str(e))
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        return _fail(f"{e.strerror or e}{where}")
    except KeyboardInterrupt:
        return _fail("interrupted", status=130)


def _fail(message, status=1):
    print(f"rnncore: error: {message}", file=sys.stderr)
    return status


# ---- demo ---------------------------------------------------------------------------
def cmd_demo(args):
    vocab = Vocab.from_text(DEMO_TEXT)
    model = CharRNN(vocab, hidden_size=64, seed=args.seed)
    trainer = Trainer(model, DEMO_TEXT, seq_length=10, learning_rate=1e-2, optimizer="sgd",
                      clip=5.0)
    print(f"training on {DEMO_TEXT!r}: {len(vocab)} symbols, hidden 64, window 10, "
          f"SGD lr 1e-2, clip 5, seed {args.seed}")
    recent = []
    for _ in range(args.steps):
        recent.append(trainer.train_step())
        if trainer.step % 100 == 0:
            mean = sum(recent) / len(recent)
            print(f"step {trainer.step:5d}  loss {mean:.4f} nats/char "
                  f"({mean / LN2:.4f} bits/char)")
            recent = []
    completion = model.complete(DEMO_PRIME, len(DEMO_TEXT) - len(DEMO_PRIME))
    print(f"prime:      {DEMO_PRIME}")
    print(f"completion: {completion}")


# ---- train --------------------------------------------------------------------------
def cmd_train(args):
    settings = {name: getattr(args, name) for name in SETTINGS}
    try:
        result = fit(args.corpus, args.out, steps=args.steps, epochs=args.epochs,
                     minutes=args.minutes, resume=args.resume, force=args.force,
                     encoding=args.encoding, eval_every=args.eval_every,
                     print_every=args.print_every, checkpoint_every=args.checkpoint_every,
                     keep_best=args.keep_best, patience=args.patience,
                     threads=args.threads,
                     echo=lambda line: print(line, flush=True),
                     distributed=args.distributed, **settings)
    except RnncoreError:
        if world_rank() != 0:   # every rank has the same error: rank 0 says it once
            return 1
        raise
    return result.exit_status


# ---- info ---------------------------------------------------------------------------
def cmd_info(args):
    ckpt = load_checkpoint(args.checkpoint)
    summary = checkpoint_summary(ckpt)
    if args.json:
        print(json.dumps(summary))
        return 0
    for line in info_lines(args.checkpoint, summary):
        print(line)
    return 0


# ---- sample -------------------------------------------------------------------------
SAMPLE_HEADER = "=== sample {} of {} ==="   # before each sample when there are several
BEAM_HEADER = "=== beam {} of {}: log-prob {:.4f} ==="   # --beam K --num-samples N


def add_threads_option(parser, default_note=""):
    parser.add_argument("--threads", type=positive_int,
                        help="threads of the compiled kernels (default: the CPUs this process "
                        f"may use{default_note}); any number gives the same results")


def nonempty_text(text):
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def add_sample_parser(sub):
    sample = sub.add_parser(
        "sample", help="generate text from a checkpoint",
        description="Print the prime (as the model saw it) followed by generated text on "
        "stdout, as it is generated, and nothing else.  With --num-samples N > 1, each "
        f"sample is preceded by a line {SAMPLE_HEADER.format('I', 'N')!r}.")
    sample.add_argument("checkpoint", help="checkpoint file written by `rnncore train`, or "
                        "a .safetensors file written by `rnncore export`")
    sample.add_argument("--prime", default="", help="text to start from")
    sample.add_argument("--length", type=positive_int, default=500,
                        help="characters to generate (default 500)")
    sample.add_argument("--temperature", type=positive_float,
                        help="softmax temperature; lower is more conservative (default 1)")
    sample.add_argument("--top-k", type=positive_int,
                        help="draw only among the K most likely characters")
    sample.add_argument("--top-p", type=probability, metavar="P",
                        help="nucleus sampling: draw only among the most likely characters "
                        "whose probabilities sum to at least P")
    sample.add_argument("--greedy", action="store_true",
                        help="always take the most likely character")
    sample.add_argument("--beam", type=positive_int, metavar="K",
                        help="print the most probable continuation of --length characters "
                        "that a beam search of width K finds (1: greedy)")
    sample.add_argument("--seed", type=int, help="random seed, for reproducible samples")
    sample.add_argument("--stop", type=nonempty_text, metavar="TEXT", action="append",
                        help="end a sample right after TEXT first appears in what it "
                        "generated (e.g. --stop $'\\n\\n' for a blank line); repeat it "
                        "for several texts, the first to appear ends it")
    sample.add_argument("--num-samples", type=positive_int, metavar="N",
                        help="draw N independent samples, generated as parallel streams "
                        "(default 1); with --beam, print the N best beams with their "
                        "log-probabilities")
    sample.add_argument("--skip-unknown", action="store_true",
                        help="drop prime characters the model has never seen")
    sample.add_argument("--latest", action="store_true",
                        help="use the latest parameters, not the best-validation ones")
    add_threads_option(sample)
    sample.set_defaults(func=cmd_sample, usage_error=sample.error)
    return sample


def _sample_conflict(args):
    """What makes this combination of sample options meaningless, or None."""
    drawn = [("--temperature", args.temperature is not None),
             ("--top-k", args.top_k is not None), ("--top-p", args.top_p is not None),
             ("--seed", args.seed is not None)]
    if args.beam is not None:
        for flag, given in [("--greedy", args.greedy)] + drawn + [("--stop", args.stop
                                                                 is not None)]:
            if given:
                return (f"argument --beam: not allowed with argument {flag} (a beam search "
                        "draws nothing: it prints the most probable continuations)")
    if args.beam is not None and args.num_samples is not None \
            and args.num_samples > args.beam:
        return (f"argument --num-samples: {args.num_samples} is more than the "
                f"{args.beam} beams a search of width --beam {args.beam} keeps")
    if args.greedy:
        for flag, given in drawn + [("--num-samples", args.num_samples is not None)]:
            if given:
                return (f"argument --greedy: not allowed with argument {flag} (greedy "
                        "generation draws nothing: every sample would be the same)")
    return None


def _checkpoint_model(args):
    """The model sample and eval use: from a checkpoint (its best-validation
    parameters unless --latest), or from a .safetensors file `rnncore export` wrote."""
    if args.checkpoint.endswith(".safetensors"):
        if args.latest:
            raise UsageError(f"--latest: {args.checkpoint} is an exported model, which holds "
                             "one set of parameters")
        try:
            return CharRNN.from_safetensors(args.checkpoint)
        except SafetensorsMissing as e:
            raise UsageError(str(e)) from None
    ckpt = load_checkpoint(args.checkpoint)
    return ckpt.model if args.latest else ckpt.preferred_model


def cmd_sample(args):
    conflict = _sample_conflict(args)
    if conflict:
        args.usage_error(conflict)           # one usage line, one error line, status 2
    model = _checkpoint_model(args)
    unknown = model.vocab.unknown(args.prime)
    if unknown and not args.skip_unknown:
        raise UsageError(f"the prime has characters the model has never seen: "
                         f"{''.join(unknown)!r} (pass --skip-unknown to drop them)")
    prime = seen_prime(model, args.prime)    # what the model is fed, and so what is echoed
    out = sys.stdout
    try:
        if args.beam is not None and args.num_samples is None:
            out.write(prime + model.complete(prime, args.length, beam=args.beam) + "\n")
            out.flush()
            return 0
        if args.beam is not None:
            found = model.beam_search(prime, args.length, beam=args.beam)
            found = found[:args.num_samples]
            for i, c in enumerate(found, start=1):
                out.write(BEAM_HEADER.format(i, len(found), c.log_prob) + "\n" + prime
                          + c.text + "\n")
            out.flush()
            return 0
        n = args.num_samples or 1
        chunks = model.sample_stream(args.length, prime, temperature=args.temperature,
                                     top_k=args.top_k, seed=args.seed, stop=args.stop,
                                     num_samples=n, greedy=args.greedy, top_p=args.top_p)
        # the first sample is printed as it is generated; the others, generated beside
        # it, follow it
        others = [[] for _ in range(n - 1)]
        if n > 1:
            out.write(SAMPLE_HEADER.format(1, n) + "\n")
        out.write(prime)
        out.flush()
        for pieces in chunks:
            if pieces[0]:
                out.write(pieces[0])
                out.flush()
            for parts, piece in zip(others, pieces[1:]):
                parts.append(piece)
        out.write("\n")
        for i, parts in enumerate(others, start=2):
            out.write(SAMPLE_HEADER.format(i, n) + "\n" + prime + "".join(parts) + "\n")
        out.flush()
    except NotEnoughMemory as e:
        raise UsageError(f"{str(e) or 'not enough memory'}: lower --num-samples or "
                         "--beam") from None
    return 0


# ---- predictive text: suggest, next, serve --------------------------------------------
def add_predict_parsers(sub):
    suggest = sub.add_parser(
        "suggest", help="the most probable ways to finish the word being typed",
        description="Print the K most probable ways to finish the word at the end of TEXT "
        "(the next word when TEXT ends in a separator), one a line: the word, then its "
        "probability (that the model writes the rest of it and then a separator).")
    _model_arguments(suggest)
    suggest.add_argument("-k", type=positive_int, default=3,
                         help="how many suggestions (default 3)")
    suggest.add_argument("--max-chars", type=nonnegative_int, default=32,
                         help="longest completion, in characters (default 32)")
    suggest.add_argument("--beam", type=positive_int, default=16,
                         help="beam width of the search (default 16)")
    suggest.set_defaults(func=cmd_suggest)

    nxt = sub.add_parser(
        "next", help="the next character's distribution",
        description="Print the K most likely characters to come after TEXT, one a line: "
        "the character (as a Python literal, so that spaces and newlines show), then its "
        "probability.")
    _model_arguments(nxt)
    nxt.add_argument("-k", type=positive_int, default=10,
                     help="how many characters (default 10)")
    nxt.set_defaults(func=cmd_next)

    serve = sub.add_parser(
        "serve", help="serve a model over HTTP (JSON API and a typing page)",
        description="Load the model once and serve it over HTTP until Ctrl-C or SIGTERM: "
        "the JSON endpoints /v1/model, /v1/next, /v1/suggest, /v1/complete, /v1/sample, "
        "/v1/stats, /healthz, the OpenAPI schema at /openapi.json, docs at /docs, and a "
        "typing page at /.  Concurrent requests are advanced together in rounds; the "
        "states after recent texts are cached.  Needs FastAPI and uvicorn (pip install "
        "'rnncore[serve]').")
    serve.add_argument("checkpoint", help="checkpoint file written by `rnncore train`, or "
                       "a .safetensors file written by `rnncore export`")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=nonnegative_int, default=8000,
                       help="port to listen on (default 8000; 0: any free port)")
    serve.add_argument("--max-length", type=positive_int, default=4096,
                       help="the most characters a request may ask for, and the longest "
                       "text or prime it may send (default 4096)")
    serve.add_argument("--max-batch", type=positive_int, default=256,
                       help="the most concurrent requests advanced as one batch (default "
                       "256; 1: one request at a time, start to end)")
    serve.add_argument("--max-queue", type=positive_int, default=512,
                       help="the most model requests in flight; beyond, 429 with "
                       "Retry-After (default 512)")
    serve.add_argument("--state-cache-mb", type=nonnegative_float, default=64,
                       help="memory for the states after recent texts, so that a text "
                       "sharing a prefix with a recent one feeds only the rest (default "
                       "64; 0: none)")
    serve.add_argument("--api-key", help="require `Authorization: Bearer KEY` on every "
                       "/v1/ request (visible in `ps`: prefer --api-key-file or the "
                       "environment variable RNNCORE_API_KEY)")
    serve.add_argument("--api-key-file", help="read the API key from the first line of "
                       "this file")
    serve.add_argument("--latest", action="store_true",
                       help="use the latest parameters, not the best-validation ones")
    add_threads_option(serve)
    serve.set_defaults(func=cmd_serve)


def _model_arguments(parser):
    parser.add_argument("checkpoint", help="checkpoint file written by `rnncore train`, or "
                        "a .safetensors file written by `rnncore export`")
    parser.add_argument("text", help="the text typed so far")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="drop characters of TEXT the model has never seen")
    parser.add_argument("--latest", action="store_true",
                        help="use the latest parameters, not the best-validation ones")
    add_threads_option(parser)


def _model_and_text(args):
    model = _checkpoint_model(args)
    unknown = model.vocab.unknown(args.text)
    if unknown and not args.skip_unknown:
        raise UsageError(f"the text has characters the model has never seen: "
                         f"{''.join(unknown)!r} (pass --skip-unknown to drop them)")
    return model, seen_prime(model, args.text)


def cmd_suggest(args):
    model, text = _model_and_text(args)
    found = model.suggest(text, k=args.k, max_chars=args.max_chars, beam=args.beam)
    if args.json:
        print(json.dumps({"suggestions": [s._asdict() for s in found]}))
        return 0
    for s in found:
        print(f"{s.word}\t{math.exp(s.log_prob):.4f}")
    return 0


def cmd_next(args):
    model, text = _model_and_text(args)
    ranked = model.next_chars(text, k=args.k)
    if args.json:
        print(json.dumps({"next": [{"char": c, "prob": p} for c, p in ranked]}))
        return 0
    for c, p in ranked:
        print(f"{c!r:>6}  {p:.4f}")
    return 0


def cmd_serve(args):
    from .serve import ServeMissing, serve
    from .serve.server import api_key_of
    key = api_key_of(args.api_key, args.api_key_file)
    model = _checkpoint_model(args)
    try:
        return serve(model, args.checkpoint, host=args.host, port=args.port,
                     max_length=args.max_length, threads=args.threads,
                     max_batch=args.max_batch, max_queue=args.max_queue,
                     cache_bytes=int(args.state_cache_mb * 2 ** 20), api_key=key,
                     echo=lambda line: print(line, flush=True))
    except ServeMissing as e:
        raise UsageError(str(e)) from None


# ---- export -------------------------------------------------------------------------
def add_export_parser(sub):
    export = sub.add_parser(
        "export", help="write a checkpoint's model as a safetensors file for PyTorch",
        description="Write the model of CKPT (its best-validation parameters unless "
        "--latest) to OUT.safetensors with PyTorch's names: torch.nn.RNN/LSTM/GRU(V, H, "
        "num_layers, batch_first=True) loads the rnn.* tensors, torch.nn.Linear(H, V) the "
        "decoder.* ones.  `rnncore sample` and `rnncore eval` read the file back.  Needs "
        f"the safetensors package ({INSTALL_EXPORT}).")
    export.add_argument("checkpoint", help="checkpoint file written by `rnncore train`")
    export.add_argument("out", help="file to write; must end in .safetensors")
    export.add_argument("--latest", action="store_true",
                        help="export the latest parameters, not the best-validation ones")
    export.add_argument("--force", action="store_true", help="overwrite an existing OUT")
    export.set_defaults(func=cmd_export)
    return export


def cmd_export(args):
    out = args.out
    if not out.endswith(".safetensors"):
        raise UsageError(f"{out}: the exported file's name must end in .safetensors (so "
                         "sample and eval know it)")
    if os.path.isdir(out):
        raise UsageError(f"{out} is a directory")
    if os.path.exists(out) and not args.force:
        raise UsageError(f"{out} exists: pass --force to overwrite it")
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise UsageError(f"{out}: directory {directory} does not exist")
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model if args.latest else ckpt.preferred_model
    try:
        model.to_safetensors(out)
    except SafetensorsMissing as e:
        raise UsageError(str(e)) from None
    module = TORCH_MODULES[model.cell]
    print(f"wrote {out}: {model.cell}, {model.num_layers} layer(s) of {model.hidden_size}, "
          f"{model.n_vocab} symbols, {model.dtype.name}; in PyTorch: nn.{module}("
          f"{model.n_vocab}, {model.hidden_size}, num_layers={model.num_layers}, "
          f"batch_first=True) and nn.Linear({model.hidden_size}, {model.n_vocab})")
    return 0


# ---- eval ---------------------------------------------------------------------------
def cmd_eval(args):
    if not args.keystrokes:
        for flag, given in (("-k", args.k), ("--baseline-text", args.baseline_text)):
            if given is not None:
                args.usage_error(f"argument {flag}: only with --keystrokes")
    model = _checkpoint_model(args)
    text = read_corpus(args.file, args.encoding)
    if args.keystrokes:
        return eval_keystrokes(args, model, text)
    unseen = model.vocab.unknown(text)
    ids = model.vocab.encode(text, skip_unknown=True)
    n_unseen = len(text) - len(ids)
    if len(ids) < 2:
        raise UsageError(f"{args.file} has fewer than 2 characters the model knows")
    bar = _eval_bar(len(ids) - 1)
    try:
        result = evaluate(model, ids, progress=None if bar is None
                          else lambda done: bar.update(done - bar.n))
    finally:
        if bar is not None:
            bar.close()
    result["unseen_chars"] = n_unseen
    result["unseen_symbols"] = "".join(unseen)
    if args.json:   # JSON has no inf: a perplexity too large for a float is null
        print(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                          for k, v in result.items()}))
        return 0
    print(f"{args.file}: {result['chars']:,} characters predicted: "
          f"{result['nats_per_char']:.4f} nats/char, {result['bits_per_char']:.4f} bits/char, "
          f"perplexity {result['perplexity']:.3f}")
    if n_unseen:
        print(f"{n_unseen:,} characters the model has never seen were dropped: "
              f"{result['unseen_symbols']!r}")
    return 0


def eval_keystrokes(args, model, text):
    """`eval --keystrokes`: the keystrokes FILE's known characters take with the model's
    suggestions and with the baseline's."""
    from .keystrokes import keystroke_report, training_text
    known = model.vocab.decode(model.vocab.encode(text, skip_unknown=True))
    if not known:
        raise UsageError(f"{args.file} has no character the model knows")
    training, source = training_text(args.checkpoint, model, args.baseline_text,
                                     args.encoding)
    k = args.k or 3
    bar = _eval_bar(len(known))
    try:
        result = keystroke_report(model, known, training, k, progress=None if bar is None
                                  else lambda done: bar.update(done - bar.n))
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(result))
        return 0
    dropped = len(text) - len(known)
    print(f"{args.file}: {len(known):,} characters typed with {k} suggestion"
          f"{'s' if k > 1 else ''} at every keystroke"
          + (f" ({dropped:,} the model has never seen dropped)" if dropped else ""))
    print(f"{'':10s} {'keystrokes saved':>17s} {'top-1':>7s} {'top-3':>7s}")
    for name, r in (("model", result), ("baseline", result["baseline"])):
        print(f"{name:10s} {r['keystroke_savings']:17.3f} {r['top1']:7.3f} {r['top3']:7.3f}")
    print(f"(baseline: word unigram+bigram counts of {source}, {len(training):,} "
          "characters)")
    return 0


def _eval_bar(total):
    """A progress bar on stderr for eval when stderr is a terminal (a large file takes a
    while), else None."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="char", unit_scale=True, dynamic_ncols=True, leave=False)


# ---- plot ---------------------------------------------------------------------------
def cmd_plot(args):
    log = args.run if args.run.endswith(".jsonl") else metrics_path(args.run)
    if not os.path.exists(log):
        raise UsageError(f"no metrics log at {log} (written by `rnncore train` beside its "
                         "checkpoint)")
    records = read_metrics(log)
    if not records:
        raise UsageError(f"the metrics log {log} is empty")
    out = args.out or (log[:-len(".metrics.jsonl")] if log.endswith(".metrics.jsonl")
                       else log) + ".png"
    try:
        plot_metrics(records, out, title=os.path.basename(log))
    except RuntimeError as e:
        raise UsageError(str(e)) from None
    print(f"wrote {out}")
    return 0
