"""``fusion serve``: a web page to caption a video and see why, and to compare runs.

* :mod:`fusion.serve.service` - :class:`CaptionService`: runs loaded once, uploads analysed
  once (cached by content hash), decoded with any beam size / LM weight / audio weight.
* :mod:`fusion.serve.runs` - run folders side by side (metrics, curves, decode configs, ablations).
* :mod:`fusion.serve.views` - HTML bar charts, the n-best table, explanations (plain data in).
* :mod:`fusion.serve.app`, :mod:`fusion.serve.layout` - the Gradio page (the optional ``serve`` extra).
* :mod:`fusion.serve.server` - :func:`serve`: temp folder, allowed paths, queue, launch.

Only ``app``, ``layout`` and ``server.serve`` import gradio; the rest is plain Python.
"""

from fusion.serve.service import Analysis, CaptionService, CaptionView, DecodeSettings, UploadError

__all__ = ["Analysis", "CaptionService", "CaptionView", "DecodeSettings", "UploadError"]
