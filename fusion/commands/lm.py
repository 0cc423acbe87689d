"""``fusion lm``: train an LSTM word language model on a text corpus, or measure its perplexity.

``fusion lm train CORPUS --out DIR [--config YAML] [--set key=value ...] [--val CORPUS]``
``fusion lm eval DIR CORPUS [--json]`` -> ``{"perplexity": f, "tokens": int, ...}``

A corpus is plain text, one sentence per line; ``id<TAB>sentence`` lines (the S2VT MSVD
caption files) keep the sentence.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fusion.config import load_config
from fusion.models.lm import LMConfig, WordLM
from fusion.training.lm import evaluate_lm, read_corpus, train_lm


def register(subparsers: Any) -> None:
    """Add ``lm train`` and ``lm eval``."""
    parser = subparsers.add_parser("lm", help="train / evaluate an LSTM word language model on text",
                                   description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="lm_command", metavar="{train,eval}", required=True)

    train = sub.add_parser("train", help="train on a corpus (one sentence per line)")
    train.add_argument("corpus", help="text file, one sentence per line (id<TAB>sentence accepted)")
    train.add_argument("--out", required=True, help="folder for the LM (lm.json, vocab.json, model.safetensors)")
    train.add_argument("--config", default=None, help="LMConfig YAML, e.g. configs/lm/msvd_lstm.yaml")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set max_epochs=3")
    train.add_argument("--val", default=None, help="validation corpus (default: val_fraction of CORPUS)")
    train.add_argument("--device", default="cpu", help="torch device (default cpu)")
    train.set_defaults(func=run_train)

    ev = sub.add_parser("eval", help="perplexity of a trained LM on a corpus")
    ev.add_argument("lm_dir", help="folder written by `fusion lm train`")
    ev.add_argument("corpus", help="text file, one sentence per line")
    ev.add_argument("--json", action="store_true", help="print {\"perplexity\": f, \"tokens\": int, ...}")
    ev.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ev.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    """Train and save; print the best validation perplexity."""
    config = load_config(LMConfig, args.config, args.overrides)
    sentences = read_corpus(args.corpus)
    val = read_corpus(args.val) if args.val else None
    lm = train_lm(sentences, config, val_sentences=val, out_dir=args.out, device=args.device)
    best = min((h["val_perplexity"] for h in lm.history), default=float("nan"))
    print(f"LM saved to {args.out}: vocabulary {len(lm.vocab)}, {len(lm.history)} epochs, "
          f"best validation perplexity {best:.2f}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Print the perplexity (JSON with --json)."""
    lm = WordLM.load(args.lm_dir, device=args.device)
    result = evaluate_lm(lm, read_corpus(args.corpus))
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"perplexity {result.perplexity:.3f} over {result.tokens} tokens (OOV rate {result.oov_rate:.3%})")
    return 0
