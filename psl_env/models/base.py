"""The splittable-model interface: an ordered list of blocks that can run any contiguous range."""

from __future__ import annotations

import torch
from torch import nn


class SplitModel(nn.Module):
    """A DNN as L blocks; cut j runs blocks 1..j on a client and j+1..L on the server.

    Attributes:
        name: model identifier, e.g. ``small-cnn``.
        blocks: the L blocks (``nn.ModuleList``); a residual block is one block.
        input_shape: per-sample input shape (C, H, W).
        num_classes: size of the output logits.
    """

    def __init__(self, name: str, blocks: list[nn.Module], block_names: list[str],
                 input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        if len(blocks) != len(block_names):
            raise ValueError("one name per block")
        self.name = name
        self.blocks = nn.ModuleList(blocks)
        self.block_names = list(block_names)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def run(self, x: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Blocks start+1..end (0-based slice ``blocks[start:end]``) applied to ``x``."""
        for block in self.blocks[start:end]:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


class Add(nn.Module):
    """Element-wise sum of two tensors, as a module so the profiler can see residual additions.

    Functional ops inside a custom ``forward`` (``a + b``) are invisible to forward hooks; writing
    them as this leaf module lets the profiler count them (1 FLOP per output element).
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b
