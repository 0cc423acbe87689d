"""What the test modules share (none imports from another test module): paths, tiny random runs, toy stores.

* :data:`REPO`, :data:`SUBPROCESS_ENV`: run ``python -m fusion`` from this checkout.
* :func:`make_toy` / :func:`toy_config` / :func:`ddp_toy_config`: a feature store where the colour
  is in the frames and the sound in the audio, and the experiment config that trains on it.
* :func:`save_random_run`: the checkpoint of a tiny random S2VT (every tiny run below is one).
  :func:`make_store_run` (a feature store and manifest beside it), :func:`make_serve_run` (clips,
  a training log, an evaluation and an ablation beside it), :func:`save_random_run_and_lm` (an
  LSTM LM beside it); ``tests/conftest.py`` holds the fixtures built from them.
* :class:`MarkovScorer` (a table per video) and :class:`BigramScorer` (one table): toy scorers for
  beam searches; :func:`bpe_tokenizer`: an offline GPT-2-style tokenizer;
  :func:`assert_same_records`: two feature stores agree; :func:`ablation_interval`: a paired
  interval as ``fusion ablate`` wrote it.
* :func:`make_zeroshot_folder` (a zero-shot model folder with a tiny caption LM, and a caption index of
  a hand-made corpus; :func:`make_serve_zeroshot`: the web page's, with random encoders),
  :func:`concept_record` (a record whose frames show given ImageNet classes).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from fusion.checkpoint import checkpoint_meta, save_checkpoint
from fusion.config import to_dict
from fusion.decoding.scorer import DecodeContext
from fusion.decoding.spec import BatchInputs
from fusion.experiment import ExperimentConfig
from fusion.features import ExtractConfig, FeatureRecord, FeatureStore
from fusion.manifest import ManifestEntry, write_manifest
from fusion.models.lm import LMConfig
from fusion.text import Vocabulary

REPO = Path(__file__).resolve().parent.parent
# Subprocesses run this checkout's code with one math thread (same sums in every process).
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

COLORS, SOUNDS = ("red", "green", "blue"), ("dog", "rain", "clock")
DV, DA, T = 12, 6, 4  # toy frame / audio feature widths, frames per clip
TOY_EXTRACT = ExtractConfig(frames_per_clip=T, random_weights=True)
STORE_CAPTIONS = ["a red ball and a dog", "a blue ball and rain", "a green ball", "the red ball"]


def make_toy(root: Path, n_train: int = 36, n_val: int = 9, seed: int = 0) -> Path:
    """A manifest + feature store where the colour is in the frames and the sound in the audio."""
    rng = np.random.default_rng(seed)
    store = FeatureStore(root / "store", TOY_EXTRACT)
    entries = []
    for i in range(n_train + n_val):
        color, sound = i % 3, (i // 3) % 4  # sound 3 = no audio stream
        frames = rng.normal(0, 0.3, (T, DV)).astype(np.float32)
        frames[:, color] += 2.0
        audio = None
        if sound < 3:
            audio = rng.normal(0, 0.3, (5 + i % 3, DA)).astype(np.float32)
            audio[:, sound] += 2.0
        vid = f"toy{i:03d}"
        store.write(FeatureRecord(id=vid, frames=frames, audio=audio))
        tail = f" and a {SOUNDS[sound]}" if sound < 3 else ""
        captions = [f"a {COLORS[color]} ball{tail}", f"the {COLORS[color]} ball{tail}"]
        entries.append(ManifestEntry(vid, f"{vid}.mp4", "train" if i < n_train else "val", captions,
                                     {"sound": SOUNDS[sound] if sound < 3 else None}))
    write_manifest(entries, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def toy_config(root: Path, **train_over: Any) -> ExperimentConfig:
    """A small S2VT ("early" audio) training on :func:`make_toy`'s store in ``root``; ``train_over`` sets train fields."""
    cfg = ExperimentConfig()
    cfg.data.manifest = str(root / "manifest.jsonl")
    cfg.data.features = str(root / "store")
    cfg.extract = TOY_EXTRACT
    cfg.model.hidden_size, cfg.model.frame_embed_size, cfg.model.word_embed_size = 16, 8, 8
    cfg.model.audio_embed_size, cfg.model.dropout = 4, 0.2
    cfg.model.audio_mode, cfg.model.modality_dropout = "early", 0.2
    cfg.train.batch_size, cfg.train.max_epochs, cfg.train.val_metric = 8, 3, "loss"
    cfg.train.checkpoint_every_steps, cfg.train.num_threads, cfg.train.device = 4, 1, "cpu"
    for k, v in train_over.items():
        setattr(cfg.train, k, v)
    return cfg


def ddp_toy_config(root: Path) -> ExperimentConfig:
    """The toy run with dropout off (so ranks and processes see the same arithmetic), 4 epochs."""
    cfg = toy_config(root, max_epochs=4, checkpoint_every_steps=5, tensorboard=False)
    cfg.model.dropout, cfg.model.modality_dropout = 0.0, 0.0
    return cfg


def tiny_model(cfg: ExperimentConfig, hidden: int = 16, audio_mode: str = "early") -> ExperimentConfig:
    """``cfg`` with a tiny S2VT: ``hidden`` units, 8-wide frame and word embeddings, 4-wide audio ones."""
    cfg.model.hidden_size, cfg.model.frame_embed_size, cfg.model.word_embed_size = hidden, 8, 8
    cfg.model.audio_embed_size, cfg.model.audio_mode = 4, audio_mode
    return cfg


def save_random_run(run: Path, cfg: ExperimentConfig, captions: list[str], frame_dim: int = 1280,
                    audio_dim: int = 256, best: dict[str, Any] | None = None, audio_gain: float = 1.0) -> Path:
    """Save a checkpoint of a random S2VT of ``cfg`` (seed 0) over ``captions``' words to ``run``.

    Args:
        run: the run folder to write.
        cfg: the experiment config stored with it.
        captions: the vocabulary's source.
        frame_dim: frame feature width (1280: EfficientNet-Lite0's).
        audio_dim: audio feature width (256: SoundNet pool5's; 0 = no audio).
        best: the "best" pointer's metric and value (default: loss 1.0).
        audio_gain: scales the audio parameters, so that a random model's audio input matters.
    """
    from fusion.models.s2vt import S2VT

    vocab = Vocabulary.build(captions)
    torch.manual_seed(0)
    model = S2VT(cfg.model, len(vocab), frame_dim=frame_dim, audio_dim=audio_dim)
    if audio_gain != 1.0:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "audio" in name:
                    p.mul_(audio_gain)
    dims = {"vocab_size": len(vocab), "frame_dim": frame_dim, "audio_dim": audio_dim}
    save_checkpoint(run, 1, model, checkpoint_meta(cfg, vocab, dims), None, best=best or {"metric": "loss", "value": 1.0})
    return run


def random_records(n: int, with_audio: bool, seed: int = 0) -> list[FeatureRecord]:
    """``n`` random toy records; with audio, every 4th one has no audio stream."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        audio = rng.normal(size=(3 + i % 2, DA)).astype(np.float32) if with_audio and i % 4 != 3 else None
        out.append(FeatureRecord(id=f"v{i}", frames=rng.normal(size=(T, DV)).astype(np.float32), audio=audio,
                                 posteriors={} if audio is None else
                                 {"audio/imagenet": rng.dirichlet(np.ones(1000)).astype(np.float32),
                                  "audio/places2": rng.dirichlet(np.ones(401)).astype(np.float32)}))
    return out


def make_store_run(root: Path, with_audio: bool) -> Path:
    """A manifest, a feature store (12 videos, 8 in the test split) and a tiny random audio-stream run."""
    store = FeatureStore(root / "store", TOY_EXTRACT)
    entries = []
    for i, rec in enumerate(random_records(12, with_audio)):
        store.write(rec)
        entries.append(ManifestEntry(rec.id, f"{rec.id}.mp4", "test" if i >= 4 else "train",
                                     [STORE_CAPTIONS[i % 4], STORE_CAPTIONS[(i + 1) % 4]], {}))
    write_manifest(entries, root / "manifest.jsonl")
    cfg = tiny_model(ExperimentConfig(), audio_mode="stream")
    cfg.data.manifest, cfg.data.features, cfg.extract = str(root / "manifest.jsonl"), str(root / "store"), TOY_EXTRACT
    cfg.decode.beam_size, cfg.decode.max_len = 2, 6
    return save_random_run(root / "run", cfg, STORE_CAPTIONS, DV, DA, audio_gain=8.0)


CAPTION_CAPTIONS = ["a red ball moves left while a dog barks", "a blue box spins", "a green star grows and rain pours"]
# (name, audio kind, split); the test split has both a video with sound and one without an audio stream
CAPTION_CLIPS = [("c0", "tone", "train"), ("c1", None, "train"), ("c2", "noise", "val"),
                 ("c3", "tone", "test"), ("c4", None, "test"), ("c5", "noise", "test")]


def make_caption_run(root: Path) -> dict[str, Path]:
    """Six real clips, a manifest, a broken file, and a tiny random S2VT run ("early" audio) in ``root``."""
    from tests.mediafactory import make_clip_manifest

    make_clip_manifest(root, CAPTION_CLIPS, CAPTION_CAPTIONS)
    cfg = tiny_model(ExperimentConfig())
    cfg.data.manifest = str(root / "manifest.jsonl")
    cfg.extract = ExtractConfig(frames_per_clip=4, random_weights=True, decode_workers=0)
    cfg.decode.beam_size, cfg.decode.max_len = 3, 8
    save_random_run(root / "run", cfg, CAPTION_CAPTIONS)
    broken = root / "broken.mp4"
    broken.write_text("not a video\n")
    return {"root": root, "run": root / "run", "manifest": root / "manifest.jsonl", "broken": broken}


SERVE_CAPTIONS = ["a dog barks while a red ball moves left", "a blue box spins in the rain",
                  "a bell rings and a car passes"]
# (name, audio kind, split); the test split has sound, a silent track and no audio stream at all
SERVE_CLIPS = [("c0", "tone", "train"), ("c1", None, "train"), ("c2", "noise", "val"),
               ("c3", "tone", "test"), ("c4", None, "test"), ("c5", "silent", "test")]


def _write_run_history(run: Path, ablation: Path) -> None:
    """A training log, a test evaluation and a real ``fusion ablate`` of the run for the web page to show.

    Skips the calling test where no Java runtime is found (METEOR needs one).
    """
    import shutil

    import pytest

    from fusion.cli import main as cli_main

    log = [{"type": "train", "step": s, "epoch": 0, "loss": 3.0 - 0.2 * s} for s in range(1, 6)]
    log += [{"type": "val", "step": 5, "epoch": 0, "METEOR": 0.21, "loss": 2.1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (run / "eval" / "test").mkdir(parents=True)
    (run / "eval" / "test" / "metrics.json").write_text(json.dumps({"METEOR": 0.25, "CIDEr": 0.5, "n_videos": 3}))
    if shutil.which("java") is None:
        pytest.skip("fusion ablate needs Java for METEOR; install a JDK (apt-get install -y default-jre-headless)")
    code = cli_main(["ablate", str(run), "--out", str(ablation), "--conditions", "audio_zero", "--bootstrap", "200",
                     "--threads", "1"])  # what `fusion ablate` writes today (the Runs tab must read it)
    assert code == 0, "fusion ablate failed on the tiny run"


def make_serve_run(root: Path) -> dict[str, Path]:
    """Runs folder ``root/runs`` with one tiny random run ``tiny`` (plus clips, log, eval, ablation)."""
    from fusion.verifier import AudioNounVerifier
    from tests.mediafactory import make_clip_manifest

    root.mkdir(parents=True, exist_ok=True)
    make_clip_manifest(root, SERVE_CLIPS, SERVE_CAPTIONS)
    cfg = tiny_model(ExperimentConfig())
    cfg.data.manifest = str(root / "manifest.jsonl")
    cfg.extract = ExtractConfig(frames_per_clip=4, random_weights=True, decode_workers=0)
    cfg.decode.beam_size, cfg.decode.max_len, cfg.decode.audio_weight = 3, 8, 1.0
    run = root / "runs" / "tiny"
    run.mkdir(parents=True)
    # zero-shot evidence of random SoundNet weights is tiny; scaled up, the audio weight visibly matters
    AudioNounVerifier(zero_shot_scale=40.0).save(run / "verifier.safetensors")
    cfg.decode.verifier = str(run / "verifier.safetensors")
    save_random_run(run, cfg, SERVE_CAPTIONS, best={"metric": "METEOR", "value": 0.21})
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    _write_run_history(run, root / "runs" / "ablation")
    broken = root / "broken.mp4"
    broken.write_text("not a video\n")
    return {"root": root, "runs": root / "runs", "run": run, "broken": broken, "ablation": root / "runs" / "ablation"}


# The web page's tiny zero-shot model (consensus mode): corpus clips whose captions name linked words,
# and one sound-claiming caption most clips share (the consensus of any neighbours, unless the clip has
# no audio stream). Every clip has it but the last two: its n-grams keep an IDF above 0.
ZEROSHOT_SOUND_CAPTION = "a dog barking is heard in the park"
_SERVE_ZEROSHOT = [
    ["a dog is running on the grass", "a brown dog runs in a field"],
    ["a man is playing a guitar on a stage", "a person plays the guitar"],
    ["a car is driving down the road", "a red car drives on a highway"],
    ["a woman is cooking food in a kitchen", "someone cooks vegetables in a pan"],
    ["a cat is sitting on a table", "a small cat sits on a wooden table"],
    ["a boy is swimming in a pool", "a child swims in the water"],
    ["a horse is running on a beach", "a horse runs along the sea"],
    ["a man is riding a bicycle on a street", "a person rides a bike in the city"],
]
SERVE_ZEROSHOT_CORPUS = {f"k{i}": captions + ([ZEROSHOT_SOUND_CAPTION] if i < len(_SERVE_ZEROSHOT) - 2 else [])
                         for i, captions in enumerate(_SERVE_ZEROSHOT)}


def make_serve_zeroshot(folder: Path) -> Path:
    """The web page's tiny zero-shot model in ``folder``: consensus of 4 neighbours over
    :data:`SERVE_ZEROSHOT_CORPUS`, 3 captions listed, random encoders (4 frames)."""
    from fusion.zeroshot.config import ZeroShotConfig

    folder.mkdir(parents=True, exist_ok=True)
    return make_zeroshot_folder(folder, ZeroShotConfig(mode="consensus", neighbours=4, beam_size=3),
                                SERVE_ZEROSHOT_CORPUS, ExtractConfig(frames_per_clip=4, random_weights=True, decode_workers=0))


def ablation_interval(folder: Path, metric: str) -> str:
    """``audio_zero``'s paired delta and 95% interval of ``metric``, as ``fusion ablate`` wrote them."""
    conds = {c["name"]: c for c in json.loads((folder / "ablation.json").read_text())["conditions"]}
    paired = conds["audio_zero"]["paired"][metric]
    low, high = paired["ci95"]
    return f"{paired['mean_delta']:+.4f} [{low:+.4f}, {high:+.4f}]"


def save_random_run_and_lm(root: Path, cfg: ExperimentConfig, captions: list[str], frame_dim: int, audio_dim: int,
                           lm_epochs: int) -> dict:
    """A random S2VT checkpoint of ``cfg`` in ``root/run`` (close to uniform over the words) and a tiny
    LSTM LM trained on ``captions`` in ``root/lm``."""
    from fusion.training.lm import train_lm

    save_random_run(root / "run", cfg, captions, frame_dim, audio_dim)
    lm_cfg = LMConfig(embed_size=16, hidden_size=16, min_word_count=1, max_epochs=lm_epochs, lr=0.03, dropout=0.0,
                      val_fraction=0.0, patience=lm_epochs, batch_size=8)
    train_lm(captions * 4, lm_cfg, out_dir=root / "lm", progress=False)
    return {"root": root, "run": root / "run", "lm": root / "lm"}


class MarkovScorer:
    """A toy scorer: per video, a (V, V) table of next-token log-probs given the last token."""

    def __init__(self, tables: Tensor) -> None:
        self.tables = tables  # (num_videos, V, V) float
        self.videos: Tensor | None = None  # (B,) the searched videos' table rows, held per search

    def with_inputs(self, inputs: BatchInputs) -> MarkovScorer:
        bound = copy.copy(self)
        bound.videos = torch.as_tensor([int(r.id) for r in inputs.records])  # (B,) from the toy records' ids
        return bound

    def init_state(self, ctx: DecodeContext) -> Tensor:
        assert self.videos is not None and len(self.videos) == ctx.batch_size
        return self.videos[ctx.video_index()]  # (N,) video id per row

    def score(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self.tables[state, tokens[:, -1]], state  # (N, V)

    def select_state(self, state: Tensor, idx: Tensor) -> Tensor:
        return state[idx]


class BigramScorer:
    """A tiny random caption model: log-probs (log-softmax of a (V, V) table) depend on the previous token only."""

    def __init__(self, vocab_size: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.table = torch.log_softmax(torch.randn(vocab_size, vocab_size, generator=gen) * 2, dim=-1)  # (V, V)

    def init_state(self, ctx: DecodeContext) -> None:
        return None

    def score(self, tokens: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        return self.table[tokens[:, -1]], None  # (N, V)

    def select_state(self, state: None, idx: torch.Tensor) -> None:
        return None


HF_TEXT = ["a man is playing a guitar", "a dog is running in the park", "a woman is slicing an onion"] * 4
HF_CAP_VOCAB = Vocabulary.build(HF_TEXT + ["a cat is eating a tomato"])


def bpe_tokenizer() -> Any:
    """A byte-level BPE (GPT-2 style) ``transformers`` tokenizer trained offline on HF_TEXT with few merges."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=280, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(HF_TEXT, trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def assert_same_records(store: FeatureStore, reference: FeatureStore) -> None:
    """The two stores hold the same ids with equal arrays and meta."""
    assert store.ids() == reference.ids()
    for video_id in reference.ids():
        got, want = store[video_id], reference[video_id]
        for name in FeatureRecord.ARRAYS:
            a, b = getattr(got, name), getattr(want, name)
            assert (a is None) == (b is None), (video_id, name)
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=f"{video_id}.{name}")
        assert got.meta == want.meta


# The zero-shot captioner's tiny folders: the tiny LM over these captions (a few seconds on 2 cores).
ZS_SENTENCES = (["a man is playing a guitar"] * 30 + ["a dog is running on the grass"] * 30 + ["a man is talking"] * 40
                + ["a music is heard"] * 20)


TINY_LM = LMConfig(embed_size=16, hidden_size=16, dropout=0.0, min_word_count=1, max_epochs=3, batch_size=16, lr=0.02)


def concept_record(seen: list[int], audio: bool, id: str = "clip") -> FeatureRecord:
    """A record whose frames' ImageNet posteriors put 0.98 on the classes ``seen``; with ``audio``, uninformative
    (uniform) SoundNet posteriors of a sound, else no audio stream."""
    frames = np.full(1000, 0.02 / 990, np.float32)
    frames[seen] = 0.98 / len(seen)
    posteriors = {"frames/imagenet": frames}
    if audio:
        posteriors.update({"audio/imagenet": np.full(1000, 1e-3, np.float32),
                           "audio/places2": np.full(401, 1 / 401, np.float32)})
    return FeatureRecord(id=id, frames=np.zeros((2, 4), np.float32),
                         audio=np.zeros((3, 2), np.float32) if audio else None, posteriors=posteriors)


def make_zeroshot_folder(out: Path, config: Any, corpus: dict[str, list[str]] | None = None,
                         extract: ExtractConfig | None = None) -> Path:
    """A zero-shot model folder in ``out``: the tiny LM over :data:`ZS_SENTENCES`, the committed concept links,
    ``config`` (a ZeroShotConfig), given ``corpus`` (clip key -> its captions) its caption index, and
    ``extract`` (default: ``ExtractConfig()``; random encoders make a page test fast)."""
    import shutil

    from fusion.concepts.links import DEFAULT_LINKS_PATH, ConceptLinks
    from fusion.training.lm import train_lm
    from fusion.zeroshot.config import LINKS_FILE, LM_DIR, ZeroShotFolder
    from fusion.zeroshot.neighbours import CaptionIndex

    train_lm(list(ZS_SENTENCES), TINY_LM, val_sentences=list(ZS_SENTENCES[:10]), out_dir=out / LM_DIR,
             progress=False)
    shutil.copyfile(DEFAULT_LINKS_PATH, out / LINKS_FILE)
    if corpus is not None:
        links = ConceptLinks.load(out / LINKS_FILE)
        pairs = [(clip, caption) for clip, captions in corpus.items() for caption in captions]
        CaptionIndex.build(pairs, links.key_of, list(links.entries)).save(out)
    ZeroShotFolder(config, to_dict(extract or ExtractConfig())).save(out)
    return out
