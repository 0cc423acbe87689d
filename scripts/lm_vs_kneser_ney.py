"""LSTM word LM against nltk's interpolated Kneser-Ney trigram on MSVD or MSR-VTT captions.

Both models see the same tokens and the same vocabulary: the train captions (MSVD: the S2VT
release, ``sents_train_lc_nopunc.txt``; MSR-VTT: the official annotations, read by
:mod:`data_prep.msrvtt`, zipped or not) tokenised with ``fusion.text.tokenize``; words seen
fewer than ``min_count`` times in train become ``<unk>`` in train, validation and test alike;
every sentence ends with one ``</s>`` event (the LSTM's ``<eos>``), which both models
predict and both perplexities count. Neither model can predict ``<s>``/``<bos>`` or padding.
Perplexity is ``exp(total NLL / tokens)`` over the words (``<unk>`` included) and one
end-of-sentence per test sentence, the same token count for both.

Model selection uses the validation captions for both: the LSTM keeps its best epoch,
the trigram its best discount (nltk's default is 0.1; Chen & Goodman recommend ~0.75).
The trigram is ``nltk.lm.KneserNeyInterpolated(3)`` fitted with nltk's
``padded_everygram_pipeline``; its estimator's continuation counts are precomputed once
(:class:`TabulatedKneserNey`, same formulas, verified against nltk's own on test trigrams),
since nltk rescans every n-gram per query.

MSR-VTT (train 6,513 clips x 20 captions, test 2,990 x 20) is large for a CPU: with
``--train-per-clip N`` / ``--val-per-clip N`` / ``--test-per-clip N`` only the first N
captions of each clip of the split are used (every clip is kept; default all 20).

Usage: ``python scripts/lm_vs_kneser_ney.py --out results/lm_vs_kn [--config configs/lm/msvd_lstm.yaml]``
or ``python scripts/lm_vs_kneser_ney.py --dataset msrvtt --out results/lm_vs_kneser_ney_msrvtt
--train-per-clip 4 --val-per-clip 2 --test-per-clip 5 --discounts 0.9 --set max_epochs=4``. Writes ``DIR/results.json``, ``DIR/results.md`` and the
LSTM LM folder (``--lm-dir``, default ``DIR/lstm_lm``; ``fusion lm eval LM_DIR <test captions>
--json`` reproduces the LSTM number).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from nltk.lm import KneserNeyInterpolated
from nltk.lm import Vocabulary as NltkVocabulary
from nltk.lm.preprocessing import padded_everygram_pipeline
from nltk.lm.smoothing import KneserNey

from fusion.config import load_config, to_dict
from fusion.io import atomic_write_json, atomic_write_text
from fusion.models.lm import LMConfig, WordLM
from fusion.training.lm import evaluate_lm, read_corpus, train_lm
from fusion.paths import data_dir
from fusion.text import UNK, Vocabulary, tokenize

logger = logging.getLogger("lm_vs_kneser_ney")
BOS_KN, EOS_KN = "<s>", "</s>"  # nltk's padding symbols
GOAL_RATIO = 0.8  # issue 5: LSTM perplexity at most 0.8x the trigram's


class TabulatedKneserNey(KneserNey):
    """nltk's ``KneserNey`` estimator with its continuation counts tabulated once.

    ``_continuation_counts(word, context)`` returns, over the n-gram prefixes ``p`` one word
    longer than ``context`` with ``p[1:] == context``: the number of ``p`` followed by
    ``word``, and the sum over ``p`` of the number of distinct words following ``p``.
    nltk computes this by scanning every prefix at each query; here it is a dict lookup.
    """

    def __init__(self, vocabulary: Any, counter: Any, order: int, discount: float = 0.1, **kwargs: Any) -> None:
        super().__init__(vocabulary, counter, order, discount=discount, **kwargs)
        self._with_word: dict[tuple[tuple[str, ...], str], int] = defaultdict(int)
        self._total: dict[tuple[str, ...], int] = defaultdict(int)
        for ctx_len in range(order - 1):
            for prefix, following in counter[ctx_len + 2].items():
                context = prefix[1:]
                for word, count in following.items():
                    if count > 0:
                        self._with_word[context, word] += 1
                        self._total[context] += 1

    def _continuation_counts(self, word: str, context: tuple[str, ...] = tuple()) -> tuple[int, int]:
        context = tuple(context)
        return self._with_word.get((context, word), 0), self._total.get(context, 0)


def fit_kn3(sentences: list[list[str]], discount: float) -> KneserNeyInterpolated:
    """nltk's interpolated Kneser-Ney trigram on ``<unk>``-mapped word lists, tabulated estimator."""
    train, vocab_text = padded_everygram_pipeline(3, sentences)
    model = KneserNeyInterpolated(3, discount=discount, vocabulary=NltkVocabulary(unk_label=UNK))
    model.fit(train, vocab_text)
    model.estimator = TabulatedKneserNey(model.vocab, model.counts, order=3, discount=discount)
    return model


def sentence_events(words: list[str]) -> list[tuple[str, tuple[str, str]]]:
    """(word, two-word context) for each word and one ``</s>``; the context starts ``<s> <s>``."""
    padded = [BOS_KN, BOS_KN] + words + [EOS_KN]
    return [(padded[i], (padded[i - 2], padded[i - 1])) for i in range(2, len(padded))]


def kn_perplexity(model: KneserNeyInterpolated, sentences: list[list[str]]) -> tuple[float, int]:
    """Perplexity (natural-log NLL) of ``model`` on word lists, and the number of events."""
    cache: dict[tuple[str, tuple[str, str]], float] = {}
    nll, count = 0.0, 0
    for words in sentences:
        for event in sentence_events(words):
            if event not in cache:
                prob = model.score(*event)
                cache[event] = -math.log(prob) if prob > 0 else math.inf
            nll += cache[event]
            count += 1
    return math.exp(nll / count), count


def map_unk(sentences: list[str], vocab: Vocabulary) -> list[list[str]]:
    """Tokenise and replace words outside ``vocab`` with ``<unk>``; drop empty sentences."""
    return [[w if w in vocab else UNK for w in tokenize(s)] for s in sentences if tokenize(s)]


def check_tabulation(model: KneserNeyInterpolated, sentences: list[list[str]], n: int = 200, seed: int = 0) -> float:
    """Largest |tabulated - nltk| probability over ``n`` random test events (nltk's own estimator)."""
    events = [e for words in sentences for e in sentence_events(words)]
    sample = random.Random(seed).sample(events, min(n, len(events)))
    reference = KneserNey(model.vocab, model.counts, order=3, discount=model.estimator.discount)
    tabulated, worst = model.estimator, 0.0
    for event in sample:
        model.estimator = reference
        slow = model.score(*event)
        model.estimator = tabulated
        worst = max(worst, abs(model.score(*event) - slow))
    return worst


def msvd_corpus() -> tuple[list[str], list[str], list[str], dict[str, Any]]:
    """MSVD train / val / test captions (S2VT release) and a description of them."""
    captions = data_dir() / "msvd" / "captions"
    train, val, test = (read_corpus(captions / f"sents_{split}_lc_nopunc.txt") for split in ("train", "val", "test"))
    return train, val, test, {"dataset": "msvd", "source": "msvd/captions/sents_{train,val,test}_lc_nopunc.txt"}


def msrvtt_corpus(source: Path, train_per_clip: int | None, val_per_clip: int | None,
                  test_per_clip: int | None = None) -> tuple[list[str], list[str], list[str], dict[str, Any]]:
    """MSR-VTT train / val / test captions: the first ``*_per_clip`` captions of every clip of
    the split (None = all 20); and a description of the subset."""
    from data_prep.msrvtt import read_msrvtt

    layout, split_of, captions, _ = read_msrvtt(source)
    per_clip = {"train": train_per_clip, "val": val_per_clip, "test": test_per_clip}
    corpus: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    clips = {k: 0 for k in corpus}
    for vid, split in split_of.items():
        caps = captions.get(vid, [])
        corpus[split] += caps[: per_clip[split]] if per_clip[split] else caps
        clips[split] += 1
    info = {"dataset": "msrvtt", "source": f"MSR-VTT {layout} annotations", "clips": clips,
            "captions_per_clip": {k: v or "all" for k, v in per_clip.items()},
            "captions": {k: len(v) for k, v in corpus.items()}}
    return corpus["train"], corpus["val"], corpus["test"], info


def run(out: Path, config: LMConfig, discounts: tuple[float, ...],
        corpus: tuple[list[str], list[str], list[str], dict[str, Any]] | None = None,
        lm_dir: Path | None = None, use_lm: Path | None = None) -> dict[str, Any]:
    """Train and evaluate both models on ``corpus`` (default MSVD); write ``out/results.{json,md}``.
    ``use_lm``: evaluate the LSTM LM saved there (by an earlier, interrupted run of the same
    command: its best epoch so far) instead of training one."""
    start = time.time()
    train, val, test, info = corpus or msvd_corpus()
    vocab = Vocabulary.build([tokenize(s) for s in train], min_count=config.min_word_count)
    train_w, val_w, test_w = (map_unk(s, vocab) for s in (train, val, test))

    kn_val = {}
    for d in discounts:
        kn_val[d] = kn_perplexity(fit_kn3(train_w, d), val_w)[0]
        logger.info("KN3 discount %.2f: validation perplexity %.3f", d, kn_val[d])
    best_d = min(kn_val, key=kn_val.get)
    kn = fit_kn3(train_w, best_d)
    kn_ppl, kn_tokens = kn_perplexity(kn, test_w)
    kn_default_ppl = kn_perplexity(fit_kn3(train_w, 0.1), test_w)[0]
    tab_error = check_tabulation(kn, test_w)
    logger.info("KN3 (discount %.2f) test perplexity %.3f over %d tokens", best_d, kn_ppl, kn_tokens)

    kn_seconds = time.time() - start
    if use_lm is not None:
        lm = WordLM.load(use_lm)
        if lm.vocab.words != vocab.words:
            raise SystemExit(f"{use_lm}: its vocabulary is not this corpus's; run with the same options")
    else:
        lm = train_lm(train, config, val_sentences=val, out_dir=lm_dir or out / "lstm_lm", vocab=vocab)
    lstm = evaluate_lm(lm, test)
    lstm_val = evaluate_lm(lm, val)
    assert lstm.tokens == kn_tokens, (lstm.tokens, kn_tokens)  # same events for both
    results = {
        "corpus": info,
        "lstm_perplexity": lstm.perplexity,
        "kn3_perplexity": kn_ppl,
        "ratio": lstm.perplexity / kn_ppl,
        "goal_ratio": GOAL_RATIO,
        "goal_met": lstm.perplexity <= GOAL_RATIO * kn_ppl,
        "test_tokens": lstm.tokens,
        "test_sentences": len(test_w),
        "train_sentences": len(train_w),
        "vocab_size": len(vocab),
        "min_count": config.min_word_count,
        "test_oov_rate": lstm.oov_rate,
        "lstm_val_perplexity": lstm_val.perplexity,
        "lstm_history": lm.history,
        "lstm_from_saved": str(use_lm) if use_lm is not None else None,
        "lstm_config": to_dict(config),
        "lstm_seconds": time.time() - start - kn_seconds,
        "kn3_discount": best_d,
        "kn3_val_perplexity_by_discount": {str(d): p for d, p in kn_val.items()},
        "kn3_perplexity_nltk_default_discount": kn_default_ppl,
        "kn3_tabulation_max_abs_error": tab_error,
        "kn3_seconds": kn_seconds,
        "unigram_counts_top": Counter(w for s in train_w for w in s).most_common(5),
    }
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", results_markdown(results))
    return results


def results_markdown(results: dict[str, Any]) -> str:
    """A short table of the two perplexities on the test captions."""
    info = results.get("corpus", {})
    per_clip = info.get("captions_per_clip")
    epochs = ", ".join(f"{h['epoch']}: {h['val_perplexity']:.2f}" for h in results["lstm_history"])
    saved = " (the best epoch saved by an interrupted run of the same command)" if results.get("lstm_from_saved") else ""
    history = results["lstm_history"]
    still = ("The LSTM was still improving at its last epoch: its number is limited by the training budget.\n"
             if len(history) > 1 and history[-1]["val_perplexity"] == min(h["val_perplexity"] for h in history)
             and len(history) == results["lstm_config"].get("max_epochs") else "")
    subset = (f"Captions per clip used: train {per_clip['train']}, validation {per_clip['val']}, test "
              f"{per_clip['test']}.\n" if per_clip else "")
    return (f"# LSTM LM vs Kneser-Ney trigram: {info.get('dataset', 'msvd')} captions\n\n"
            f"Train {results['train_sentences']:,} sentences -> test {results['test_sentences']:,} sentences "
            f"({results['test_tokens']:,} tokens incl. one end-of-sentence each); vocabulary {results['vocab_size']:,} "
            f"(min count {results['min_count']}), test OOV rate {results['test_oov_rate']:.3f}.\n{subset}\n"
            "| model | test perplexity |\n|---|---|\n"
            f"| interpolated Kneser-Ney trigram (discount {results['kn3_discount']}) | {results['kn3_perplexity']:.2f} |\n"
            f"| LSTM LM | {results['lstm_perplexity']:.2f} |\n"
            f"| ratio LSTM / trigram (goal <= {results['goal_ratio']}) | {results['ratio']:.3f} "
            f"({'met' if results['goal_met'] else 'not met'}) |\n\n"
            f"LSTM validation perplexity by epoch: {epochs}{saved}.\n"
            f"{still}Time (wall clock, CPU): trigram {results['kn3_seconds']:.0f} s, LSTM {results['lstm_seconds']:.0f} s.\n")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--out DIR [--config YAML] [--set key=value ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for results.json and the LSTM LM")
    parser.add_argument("--config", type=Path, default=None, help="LMConfig YAML (default: configs/lm/msvd_lstm.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="LMConfig override key=value")
    parser.add_argument("--discounts", type=float, nargs="+", default=[0.1, 0.5, 0.75, 0.9])
    parser.add_argument("--dataset", choices=("msvd", "msrvtt"), default="msvd", help="caption corpus (default msvd)")
    parser.add_argument("--source", type=Path, default=None,
                        help="MSR-VTT annotation folder (default: FUSION_DATA_DIR/msrvtt/annotations)")
    parser.add_argument("--train-per-clip", type=int, default=None, help="MSR-VTT: first N captions per train clip")
    parser.add_argument("--val-per-clip", type=int, default=None, help="MSR-VTT: first N captions per validation clip")
    parser.add_argument("--test-per-clip", type=int, default=None, help="MSR-VTT: first N captions per test clip")
    parser.add_argument("--use-lm", type=Path, default=None,
                        help="evaluate the LSTM LM saved in this folder instead of training one")
    parser.add_argument("--lm-dir", type=Path, default=None, help="where to save the LSTM LM (default OUT/lstm_lm)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    default = Path(__file__).resolve().parent.parent / "configs" / "lm" / "msvd_lstm.yaml"
    config = load_config(LMConfig, args.config or (default if default.is_file() else None), args.overrides)
    corpus = None
    if args.dataset == "msrvtt":
        corpus = msrvtt_corpus(args.source or data_dir() / "msrvtt" / "annotations", args.train_per_clip,
                               args.val_per_clip, args.test_per_clip)
    results = run(args.out, config, tuple(args.discounts), corpus, args.lm_dir, args.use_lm)
    print(f"LSTM perplexity {results['lstm_perplexity']:.3f}  KN3 perplexity {results['kn3_perplexity']:.3f}  "
          f"ratio {results['ratio']:.3f} (goal <= {GOAL_RATIO})  tokens {results['test_tokens']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
