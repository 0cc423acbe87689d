"""``fusion serve``: a web page to caption a video and see why, and to compare runs.

* :mod:`fusion.serve.service` - :class:`CaptionService`: runs loaded once, uploads analysed
  once (cached by content hash), decoded with any beam size and scorer weights.
* :mod:`fusion.serve.settings` - :class:`DecodeSettings` (the controls' values, resolved by
  ``resolve_decode_config``) and the weight sliders, ranged by the decode configuration's bounds.
* :mod:`fusion.serve.runs` - run folders side by side (metrics, curves, decode configs, ablations).
* :mod:`fusion.serve.views` - HTML bar charts, the n-best table, explanations (plain data in).
* :mod:`fusion.serve.app`, :mod:`fusion.serve.layout` - the Gradio page (the optional ``serve`` extra).
* :mod:`fusion.serve.server` - :func:`serve`: temp folder, allowed paths, queue, launch.

Only ``app``, ``layout`` and ``server.serve`` import gradio; the rest is plain Python.
"""

from fusion.serve.service import Analysis, CaptionService, CaptionView, UploadError
from fusion.serve.settings import DecodeSettings

__all__ = ["Analysis", "CaptionService", "CaptionView", "DecodeSettings", "UploadError"]
