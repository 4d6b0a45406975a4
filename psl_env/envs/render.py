"""The ``rgb_array`` picture of a round (what SB3's and gymnasium's video recorders save).

Three bands on a white frame, drawn with numpy alone:

* top: the M subchannels left to right, each filled with the colour of the client that owns it
  (grey: unused);
* middle: one bar per client in its colour, as tall as its cut is deep (blocks on the client out
  of the model's L);
* bottom: the round's latency as a bar split into its phases (uplink, server compute, downlink,
  sync, migration, in the ``PHASE_COLOURS`` order), with a black tick at the fixed reference
  allocation's latency; the longer of the two spans the width.

Before the first step the bands are empty (grey subchannels, no bars).
"""

from __future__ import annotations

from typing import Any

import numpy as np

HEIGHT, WIDTH = 160, 320
MARGIN = 8
# client colours (cycled when there are more clients), unused subchannels, background, reference tick
CLIENT_COLOURS = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                           [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
                          dtype=np.uint8)
UNUSED = np.array([210, 210, 210], dtype=np.uint8)
BACKGROUND = np.array([255, 255, 255], dtype=np.uint8)
TICK = np.array([0, 0, 0], dtype=np.uint8)
PHASE_COLOURS = {"uplink_phase_s": [66, 133, 244], "server_compute_s": [219, 68, 55],
                 "downlink_phase_s": [244, 180, 0], "sync_s": [15, 157, 88], "migration_s": [171, 71, 188]}
OWNER_BAND = (MARGIN, 48)
CUT_BAND = (56, 112)
PHASE_BAND = (124, HEIGHT - MARGIN)


def client_colour(client: int) -> np.ndarray:
    return CLIENT_COLOURS[client % len(CLIENT_COLOURS)]


def _edges(count: int) -> np.ndarray:
    """Pixel edges of ``count`` equal cells across the drawable width."""
    return np.linspace(MARGIN, WIDTH - MARGIN, count + 1).round().astype(int)


def render_round(info: dict[str, Any] | None, num_clients: int, num_subchannels: int, num_blocks: int) -> np.ndarray:
    """The [HEIGHT, WIDTH, 3] uint8 picture of a round from its step ``info`` (None: before any step)."""
    frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[:] = BACKGROUND
    top, bottom = OWNER_BAND
    owner = np.full(num_subchannels, -1) if info is None else np.asarray(info["allocation"]["owner"])
    edges = _edges(num_subchannels)
    for m in range(num_subchannels):
        colour = UNUSED if owner[m] < 0 else client_colour(int(owner[m]))
        frame[top:bottom, edges[m] + 1: max(edges[m + 1] - 1, edges[m] + 2)] = colour
    if info is None:
        return frame
    top, bottom = CUT_BAND
    cut = np.broadcast_to(np.asarray(info["allocation"]["cut"]), (num_clients,))
    edges = _edges(num_clients)
    for n in range(num_clients):
        height = int(round((bottom - top) * min(int(cut[n]), num_blocks) / num_blocks))
        frame[bottom - height: bottom, edges[n] + 2: max(edges[n + 1] - 2, edges[n] + 3)] = client_colour(n)
    top, bottom = PHASE_BAND
    total, reference = float(info["latency_s"]), float(info["reference_latency_s"])
    span = max(total, reference)
    if not (np.isfinite(span) and span > 0):
        return frame
    scale = (WIDTH - 2 * MARGIN) / span
    x = float(MARGIN)
    for key, colour in PHASE_COLOURS.items():
        width = max(float(info.get(key, 0.0)), 0.0) * scale
        frame[top:bottom, int(round(x)): int(round(x + width))] = colour
        x += width
    tick = min(int(round(MARGIN + reference * scale)), WIDTH - MARGIN - 1)
    frame[top - 4: bottom + 4, tick - 1: tick + 1] = TICK
    return frame


__all__ = ["HEIGHT", "WIDTH", "CLIENT_COLOURS", "PHASE_COLOURS", "client_colour", "render_round"]
