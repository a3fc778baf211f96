"""Plots of activation outliers (plots.py) and the paper's outlier figures (figures.py, `dllmq figures`)."""
from .plots import (plot_channel_profile, plot_compare, plot_depth, plot_explorer_view, plot_magnitude_hist,
                    plot_mask_ratio, plot_paper_panels, plot_steps, plot_surface, plot_token_quant_error)

__all__ = ["plot_channel_profile", "plot_compare", "plot_depth", "plot_explorer_view", "plot_magnitude_hist",
           "plot_mask_ratio", "plot_paper_panels", "plot_steps", "plot_surface", "plot_token_quant_error"]
