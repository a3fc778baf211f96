"""An ipywidgets panel for notebook 01: pick steps, block length and remasking, watch the run redraw.

Core widgets only (7.7 and 8.x); the work happens in `run_decoding`, which tests call without a kernel."""
from __future__ import annotations

import matplotlib.pyplot as plt

from ..decoding import generate
from .decoding import plot_unmask_heatmap, trace_lines


def valid_block_lengths(gen_length: int) -> list:
    """Block lengths that divide gen_length (the sampler's constraint)."""
    return [b for b in range(1, gen_length + 1) if gen_length % b == 0]


def run_decoding(model, tok, prompt: str, steps: int, gen_length: int, block_length: int, remasking: str,
                 seed: int = 0):
    """One traced generation for the panel; returns (Generation, printable step lines)."""
    gen = generate(model, tok, [prompt], steps=steps, gen_length=gen_length, block_length=block_length,
                   remasking=remasking, trace=True, seed=seed)
    return gen, trace_lines(gen, tok, model.config.mask_token_id)


def decoding_panel(model, tok, prompt: str, gen_length: int = 32):
    """Build (widget, state): sliders for steps and block length, a remasking toggle, an Output that redraws.

    `state["last"]` holds the latest Generation so a test can check what the panel computed."""
    import ipywidgets as W

    blocks = valid_block_lengths(gen_length)
    block = W.Dropdown(options=blocks, value=blocks[len(blocks) // 2], description="block")
    steps = W.IntSlider(value=gen_length, min=1, max=gen_length, description="steps", continuous_update=False)
    remask = W.ToggleButtons(options=["low_confidence", "random"], value="low_confidence", description="remasking")
    out = W.Output()
    state = {"last": None, "error": None}

    def redraw(_=None):
        n_blocks = gen_length // block.value
        s = max(n_blocks, steps.value - steps.value % n_blocks)  # snap to a multiple of the block count
        with out:
            out.clear_output(wait=True)
            gen, lines = run_decoding(model, tok, prompt, s, gen_length, block.value, remask.value)
            state["last"] = gen
            print(f"steps={s} (snapped to a multiple of {n_blocks} blocks)")
            print("\n".join(lines[-min(len(lines), 12):]))
            plot_unmask_heatmap(gen, tok)
            plt.show()

    for w in (block, steps, remask):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([steps, block]), remask, out]), state
