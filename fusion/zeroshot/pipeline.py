"""Caption files with a zero-shot model folder, and open any model folder for captioning.

:class:`ZeroShotPipeline` has the face of :class:`fusion.pipeline.CaptionPipeline` (``options``,
``knowledge``, ``read``, ``caption``, ``explain``), so ``fusion caption`` and the web page use
either through :func:`open_pipeline`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from fusion.config import from_dict
from fusion.errors import ConfigError, DataError, MediaError
from fusion.ood import PROFILE_FILE, TrainingProfile, annotate
from fusion.pipeline import CaptionPipeline, CaptionResult
from fusion.runcard import RunKnowledge, read_run_card, warning_line
from fusion.zeroshot.config import ZeroShotConfig, is_zeroshot_folder
from fusion.zeroshot.explain import consensus_summary, explain_caption
from fusion.zeroshot.model import ZeroShotModel

logger = logging.getLogger(__name__)

NO_MODEL = ("no model given: build the zero-shot captioner (real caption text + ImageNet/SoundNet/AudioSet, no "
            "video training; a few minutes on 2 CPU cores) with `fusion zeroshot build --out runs/zeroshot`, then run "
            "`fusion caption VIDEO --model runs/zeroshot`; or train one with `fusion train CONFIG --out RUN`")


def zeroshot_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The decode options that apply to a zero-shot model; ConfigError naming one that does not."""
    fields = set(ZeroShotConfig.__dataclass_fields__)
    ignored = {"device", "batch_size", "no_immediate_repeat"}  # runtime, or always on here
    wrong = sorted(k for k, v in overrides.items() if v is not None and k not in fields | ignored)
    if wrong:
        raise ConfigError(f"--{wrong[0].replace('_', '-')} does not apply to a zero-shot model (it has no caption "
                          f"model to fuse with); its options are {', '.join(sorted(fields))}")
    return {k: v for k, v in overrides.items() if k in fields and v is not None}


class ZeroShotDecoder:
    """The zero-shot model under fixed settings, with the face the web page uses of a run's decoder."""

    def __init__(self, model: ZeroShotModel, options: ZeroShotConfig) -> None:
        self.model, self.options = model, options

    def decode(self, records: Sequence[Any]) -> list[list[Any]]:
        """N-best hypotheses of the records."""
        return self.model.decode(records, self.options)

    @property
    def consensus_mode(self) -> bool:
        """True when it captions by the consensus of the nearest corpus clips (no beam search)."""
        return self.options.mode == "consensus"

    def decode_explained(self, record: Any) -> tuple[list[Any], dict[str, Any] | None]:
        """One record's n-best hypotheses and, in the consensus mode, why (``explain.consensus_summary``:
        the nearest corpus clips and the words whose evidence chose them), found in one search; None
        in the fused mode."""
        if not self.consensus_mode:
            return self.decode([record])[0], None
        found = self.model.consensus(record, self.options)
        return self.model.consensus_hypotheses(found), consensus_summary(self.model.index, found)

    def audio_evidence(self, record: Any) -> dict[str, float] | None:
        """What the sound says of each linked concept (None: no audio stream)."""
        return self.model.audio.evidence(record)

    @property
    def evidence_scale(self) -> float:
        """The largest evidence a linked word can get, seen or heard (its clip)."""
        return max(self.model.visual.clip, self.model.audio.clip)

    def concept_report(self, hypothesis: Any, record: Any) -> list[dict[str, Any]]:
        """Per linked word of a caption: its concept, the stronger of its seen / heard evidence (``evidence``),
        each of them (``seen``, ``heard``: None where the frames have no class for it, or nothing is heard),
        and the most probable classes behind them (``reason``)."""
        out = []
        for item in explain_caption(self.model, record, hypothesis)["words"]:
            seen, heard = item["seen"], item["heard"]
            parts = [f"seen {seen:+.2f}" if seen is not None else "not linked to what the frames show",
                     f"heard {heard:+.2f}" if heard is not None else "nothing heard"]
            sources = []
            for label, found in (("seen", item.get("seen_from", [])), ("heard", item.get("heard_from", []))):
                names = list(dict.fromkeys(f"{c} {p:.2f}" for _, c, p in found))  # a class named twice, once
                if names:
                    sources.append(f"{label}: {', '.join(names)}")
            values = [v for v in (seen, heard) if v is not None]
            out.append({"word": item["word"], "noun": item["concept"], "evidence": max(values, key=abs) if values else None,
                        "seen": seen, "heard": heard, "verdict": "; ".join(parts),
                        "reason": "; ".join(sources) or None, "esc10": []})
        return out


class ZeroShotPipeline:
    """Caption raw video files with a zero-shot model folder.

    Args:
        model_path: the folder ``fusion zeroshot build`` wrote.
        options: decode settings; None = the folder's, with ``overrides``.
        device: torch device.
        **overrides: :class:`ZeroShotConfig` fields.
    """

    def __init__(self, model_path: str | Path, options: ZeroShotConfig | None = None,
                 device: str | torch.device = "cpu", **overrides: Any) -> None:
        from fusion.features import ExtractConfig, FeatureExtractor

        self.model = ZeroShotModel(model_path, device=device)
        self.options = options if options is not None else self.model.config.replace(**zeroshot_overrides(overrides))
        self.extractor = FeatureExtractor(from_dict(ExtractConfig, self.model.saved.extract), device=device)
        folder = Path(model_path)
        profile = TrainingProfile.load(folder / PROFILE_FILE) if (folder / PROFILE_FILE).is_file() else None
        self.knowledge = RunKnowledge(read_run_card(folder), profile,
                                      None if profile else "no real-clip profile: rebuild with the data folder present")

    def read(self, path: str | Path) -> CaptionResult:
        """Extract one file's features; an unreadable file gets ``error``."""
        result = CaptionResult(path=str(path), id=Path(path).stem)
        try:
            result.record = self.extractor.extract(result.path, id=result.id)
        except MediaError as err:
            result.error = str(err)
            return result
        result.audio_present = result.record.audio is not None
        report = annotate(self.knowledge.profile, result.record)
        if report is not None:
            result.ood = {**report.to_dict(), "warning": warning_line(report, self.knowledge.card)}
        return result

    def decode(self, records: Sequence[Any], options: ZeroShotConfig | None = None) -> list[list[Any]]:
        """N-best hypotheses of feature records."""
        return self.model.decode(records, options or self.options)

    def caption(self, paths: Sequence[str | Path], options: ZeroShotConfig | None = None) -> list[CaptionResult]:
        """Caption each file; unreadable files get ``error`` and the rest go on."""
        results = [self.read(p) for p in paths]
        readable = [r for r in results if r.record is not None]
        decoder = self.decoder_for(options or self.options)
        if decoder.consensus_mode:  # one search per clip gives the caption and why (explain reuses it)
            for res in readable:
                res.hypotheses, res.reasons = decoder.decode_explained(res.record)
            return results
        for res, nbest in zip(readable, decoder.decode([r.record for r in readable])):
            res.hypotheses = nbest
        return results

    def decoder_for(self, options: ZeroShotConfig) -> ZeroShotDecoder:
        """A decoder with other settings (the web page's sliders); the loaded model is shared."""
        return ZeroShotDecoder(self.model, options)

    def decode_config_view(self) -> Any:
        """The settings as a ``DecodeConfig`` (what the web page's sliders read): beam and scorer weights;
        no caption model or late-fusion LM (the zero-shot model's LM is its base, weight 1)."""
        from fusion.decoding.config import DecodeConfig

        o = self.options
        return DecodeConfig(beam_size=o.beam_size, max_len=o.max_len, min_len=o.min_len, audio_weight=o.audio_weight,
                            visual_weight=o.visual_weight, visual_negative_scale=o.visual_negative_scale,
                            length_weight=o.length_weight)

    def decoder_with(self, beam_size: int, weights: dict[str, float], neighbours: int | None = None) -> ZeroShotDecoder:
        """A decoder with the page's settings: the beam size (the captions listed: ``nbest`` too; in the
        consensus mode, which searches no beam, only that), scorer weights (``visual``, ``audio``,
        ``length``; others ignored) and, for the consensus mode, how many corpus clips vote (None: the folder's).

        Raises:
            ConfigError: a value the configuration refuses (fewer than 2 neighbours).
        """
        fields = {"visual": "visual_weight", "audio": "audio_weight", "length": "length_weight"}
        changes = {fields[name]: float(w) for name, w in weights.items() if name in fields}
        return self.decoder_for(self.options.replace(beam_size=beam_size, nbest=beam_size, neighbours=neighbours,
                                                     **changes))

    def explain(self, result: CaptionResult, max_runners_up: int = 4) -> dict[str, Any]:  # noqa: ARG002
        """Which seen and heard concepts drove which words of the best caption."""
        if result.record is None or not result.hypotheses:
            raise DataError(f"{result.path}: nothing to explain ({result.error or 'not captioned'})")
        report = explain_caption(self.model, result.record, result.hypotheses[0],
                                 None if result.reasons is not None else self.options)
        if result.reasons is not None:  # the consensus the caption came from, found once while captioning
            report["consensus"] = result.reasons
        return {"kind": "zeroshot", **report}


def open_pipeline(model_path: str | Path | None, device: str | torch.device = "cpu", compute_profile: bool = True,
                  **overrides: Any) -> CaptionPipeline | ZeroShotPipeline:
    """The captioning pipeline of a model folder: zero-shot or a trained run; ConfigError without one.
    ``compute_profile`` (trained runs only): compute a missing run card and profile into the run folder."""
    if model_path is None:
        raise ConfigError(NO_MODEL)
    if is_zeroshot_folder(model_path):
        return ZeroShotPipeline(model_path, device=device, **overrides)
    return CaptionPipeline(model_path, device=device, compute_profile=compute_profile, **overrides)
