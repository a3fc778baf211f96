"""Activation statistics and outliers of a model's Linear inputs.

    stats = collect_activations(model, data)       # streaming, memory flat in the number of tokens
    stats.frame()                                   # one summary row per (layer, input)
    stats.outliers()                                # normal vs massive outliers per layer and role
    cap = capture_input(model, data, layer, "down") # a small raw sample for 3D plots
    mask_ratio_sweep / prompt_vs_masked / steps_sweep   # dLLM-specific views

Files: stats.py (per-site streaming statistics), histograms.py (log-spaced bins over every float),
token_quant.py (per-token fake quantization and its error), classify.py (thresholds and the normal/massive test),
result.py (ActivationStats), collect.py (hooks and data), capture.py (raw samples), views.py (dLLM views),
explorer.py (widgets).
"""
from .capture import Capture, capture_input, capture_inputs
from .classify import OutlierThresholds, classify_site, plant_outliers
from .collect import ActivationRecorder, collect_activations, collect_groups, iter_batches, plan_sites
from .result import ActivationStats
from .stats import QUANT_BITS, RATIO_LEVELS, SiteStats
from .token_quant import BULK_RATIO, bulk_mask, fake_quant_per_token, per_token_quant_error
from .views import (MASK_RATIOS, mask_ratio_sweep, mask_token_id, mask_tokens, prompt_vs_masked, steps_sweep,
                    views_frame)

__all__ = [
    "ActivationRecorder", "ActivationStats", "BULK_RATIO", "Capture", "MASK_RATIOS", "OutlierThresholds",
    "QUANT_BITS", "RATIO_LEVELS", "SiteStats", "bulk_mask", "capture_input", "capture_inputs", "classify_site",
    "collect_activations", "collect_groups", "fake_quant_per_token", "iter_batches", "mask_ratio_sweep",
    "mask_token_id", "mask_tokens", "per_token_quant_error", "plan_sites", "plant_outliers", "prompt_vs_masked",
    "steps_sweep", "views_frame",
]
