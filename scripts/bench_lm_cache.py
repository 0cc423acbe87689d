"""Benchmark: the Hugging Face LM scorer with its key/value cache against re-running every prefix.

Late fusion with a causal LM (``fusion.models.hf_lm``) scores every caption word after every
hypothesis at every step. Without the cache each step re-runs each row's whole subword
prefix; with it, only the subwords the rows just consumed (and, for words of several
subwords, those subwords on top of the row's cache). Both paths run the same beam search in
the same process (LM scorer alone, ``min_len = max_len`` so every caption has exactly
``--words`` words); the script reports wall and process CPU time (one thread by default, so
that CPU time measures the work even when other jobs share the machine), the speed-ups and
how many videos got the same caption both ways.

The LM is a GPT-2 with random weights (the cost of a step does not depend on the weights),
built from a config and saved to a temporary folder, then loaded by path like a user's model;
its byte-level BPE tokenizer is trained on the caption corpus, so that most caption words are
one subword and some are several, as with GPT-2 on captions. ``--model DIR`` times a real
model folder instead.

    python -m scripts.bench_lm_cache [--videos 64] [--beam 5] [--words 20] [--threads 1 2] [--out results]

Writes ``results/bench_lm_cache.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from fusion.decoding.beam_search import beam_search
from fusion.decoding.lm_scorer import LMScorer
from fusion.decoding.scorer import DecodeContext
from fusion.io import atomic_write_json, atomic_write_text
from scripts.benchio import machine
from fusion.models.hf_lm import HFWordLM
from fusion.text import Vocabulary, tokenize

logger = logging.getLogger(__name__)


def corpus(path: str | None, count: int) -> list[str]:
    """Caption sentences: a text file (one per line, ``id<TAB>`` prefixes allowed) or the avsynth grammar's."""
    if path:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return [line.split("\t", 1)[-1].strip() for line in lines if line.strip()][:count]
    from data_prep.avsynth.build import text_corpus_sentences

    return text_corpus_sentences(seed=0, count=count, exclude=set())


def build_model(sentences: list[str], folder: Path, args: argparse.Namespace) -> None:
    """A random GPT-2 and a BPE tokenizer trained on ``sentences``, saved to ``folder``."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.bpe_vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(sentences, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                                     eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_layer=args.layers, n_embd=args.width,
                                     n_head=args.heads, n_positions=args.positions,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def decode(lm: HFWordLM, vocab: Vocabulary, videos: int, beam: int, words: int) -> tuple[float, float, list[list[int]]]:
    """Wall time and process CPU time of one LM-only beam search over ``videos``, and the best caption of each."""
    ctx = DecodeContext(batch_size=videos, beam_size=beam)
    start, cpu = time.perf_counter(), time.process_time()
    hyps = beam_search({"lm": LMScorer(lm, vocab)}, {"lm": 1.0}, ctx, bos_id=vocab.bos_id, eos_id=vocab.eos_id,
                       max_len=words, min_len=words)
    return time.perf_counter() - start, time.process_time() - cpu, [h[0].tokens for h in hyps]


def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per thread count in ``args.threads``: both paths timed back to back."""
    sentences = corpus(args.corpus, args.sentences)
    vocab = Vocabulary.build([tokenize(s) for s in sentences], min_count=args.min_count)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model) if args.model else Path(tmp) / "gpt2"
        if not args.model:
            build_model(sentences, folder, args)
        cached = HFWordLM.from_pretrained(str(folder), chunk_rows=args.chunk_rows)
        full = HFWordLM.from_pretrained(str(folder), chunk_rows=args.chunk_rows, use_cache=False)
    bound = cached.bind(vocab)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        decode(cached, vocab, 2, 2, 3)  # warm-up (first-call allocations)
        cached_s, cached_cpu, cached_caps = decode(cached, vocab, args.videos, args.beam, args.words)
        full_s, full_cpu, full_caps = decode(full, vocab, args.videos, args.beam, args.words)
        same = sum(a == b for a, b in zip(cached_caps, full_caps))
        row = _row(args, cached, bound, vocab, threads, (full_s, cached_s, full_cpu, cached_cpu), same)
        print(json.dumps(row))
        rows.append(row)
    return rows


def _row(args: argparse.Namespace, cached: HFWordLM, bound: Any, vocab: Vocabulary, threads: int,
         times: tuple[float, float, float, float], same: int) -> dict[str, Any]:
    full_s, cached_s, full_cpu, cached_cpu = times
    cfg = cached.model.config
    return {"videos": args.videos, "beam": args.beam, "words": args.words, "threads": threads,
            "model": args.model or f"random GPT-2 {getattr(cfg, 'n_layer', '?')} layers x {getattr(cfg, 'n_embd', '?')}",
            "subword_vocab": int(cfg.vocab_size), "caption_vocab": len(vocab), "single_subword_words": len(bound.single),
            "multi_subword_words": len(bound.multi), "full_prefix_s": round(full_s, 3), "cached_s": round(cached_s, 3),
            "speedup": round(full_s / cached_s, 2), "full_prefix_cpu_s": round(full_cpu, 3),
            "cached_cpu_s": round(cached_cpu, 3), "cpu_speedup": round(full_cpu / cached_cpu, 2), "same_captions": same}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=64)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--words", type=int, default=20, help="every caption has exactly this many words")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="torch CPU threads to measure with; with 1, CPU time measures the work even on a busy machine")
    p.add_argument("--corpus", help="caption text file (default: the avsynth grammar's sentences)")
    p.add_argument("--sentences", type=int, default=2000, help="corpus sentences read (vocabulary and tokenizer)")
    p.add_argument("--min-count", type=int, default=1, help="caption vocabulary: words seen at least this often")
    p.add_argument("--bpe-vocab", type=int, default=600, help="subword vocabulary of the trained tokenizer")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--positions", type=int, default=256)
    p.add_argument("--chunk-rows", type=int, default=512, help="sequences per forward pass (HFWordLM.chunk_rows)")
    p.add_argument("--model", help="a Hugging Face model folder to time instead of the random GPT-2")
    p.add_argument("--out", default="results", help="folder for bench_lm_cache.{json,md}")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = bench(args)
    row = rows[0]
    load = os.getloadavg()[0]
    env = machine()
    out = Path(args.out)
    atomic_write_json(out / "bench_lm_cache.json", {"environment": env, "results": rows})
    lines = ["# Hugging Face LM scorer: key/value cache vs full prefix", "",
             f"LM-only beam search, {row['videos']} videos, beam {row['beam']}, {row['words']} words per caption, "
             f"{row['model']} (subword vocabulary {row['subword_vocab']}); caption vocabulary {row['caption_vocab']} "
             f"words ({row['multi_subword_words']} of several subwords); torch {torch.__version__}, "
             f"{os.cpu_count()} CPUs (1-min load average {load:.1f} at the end).", "",
             "| threads | full prefix wall (s) | cached wall (s) | speed-up | full prefix CPU (s) | cached CPU (s) | "
             "CPU speed-up | same captions |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['threads']} | {r['full_prefix_s']:.1f} | {r['cached_s']:.1f} | {r['speedup']:.2f}x | "
              f"{r['full_prefix_cpu_s']:.1f} | {r['cached_cpu_s']:.1f} | {r['cpu_speedup']:.2f}x | "
              f"{r['same_captions']} / {r['videos']} |" for r in rows]
    lines += ["", "Reproduce: `python -m scripts.bench_lm_cache`"]
    atomic_write_text(out / "bench_lm_cache.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
