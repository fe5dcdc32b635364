"""Where a transformers encoder keeps its layers: what the layer strategies need on the generic path.

`find_layout` looks for the list of layers under the usual names (`LAYER_LISTS`). The modules outside
the embeddings and the layers (DeBERTa's relative position embeddings, ModernBERT's final norm, a
pooler, ...) are placed by where one tiny forward pass runs them: before the first layer (they then
count with the embeddings) or after the last (with the top layer). A model without such a list
(ALBERT shares one layer group across its depth) has `layers` None.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Where encoders keep their list of layers, most common first.
LAYER_LISTS = ("encoder.layer", "layers", "encoder.layers", "transformer.layer", "layer", "encoder.blocks",
               "blocks")


@dataclass
class Layout:
    """Where a base model keeps its embeddings and layers; the other modules, by where they run."""

    embeddings: list[nn.Module]  # run before the first layer (the embeddings module first)
    layers: list[nn.Module] | None  # one module per layer; None when not found
    after: list[nn.Module]  # run after the last layer (final norms)
    why: str = ""  # for messages when layers is None


def find_layout(base: nn.Module) -> Layout:
    layers, list_name = None, None
    depth = getattr(base.config, "num_hidden_layers", None)
    for name in LAYER_LISTS:
        module = _get(base, name)
        if isinstance(module, nn.ModuleList) and len(module) == depth:
            layers, list_name = list(module), name
            break
    embeddings = _get(base, "embeddings")
    if not isinstance(embeddings, nn.Module):
        embeddings = base.get_input_embeddings()
    used = {id(embeddings), *(id(m) for m in layers or ())}
    others = top_other_modules(base, used, list_name)
    if layers is None:
        lists = [n for n, m in base.named_modules() if isinstance(m, nn.ModuleList)]
        return Layout([embeddings], None, [], f" (its module lists: {', '.join(lists) or 'none'})")
    after = _run_after_layers(base, layers, others)
    return Layout([embeddings, *[m for m in others if id(m) not in after]], layers,
                  [m for m in others if id(m) in after])


def _get(module: nn.Module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def top_other_modules(base: nn.Module, used: set[int], list_name: str | None) -> list[nn.Module]:
    """The largest modules holding parameters or buffers that are outside the embeddings and layers."""
    skip = {id(_get(base, list_name))} if list_name else set()
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if id(child) in used or id(child) in skip:
                continue
            inside = any(id(m) in used or id(m) in skip for m in child.modules())
            if inside:
                visit(child)
            elif any(True for _ in child.parameters()) or any(True for _ in child.buffers()):
                found.append(child)
        own = dict(module.named_parameters(recurse=False))
        if own:  # weights held by a container module itself (e.g. a learnt mask embedding)
            found.append(ParameterHolder(own))

    visit(base)
    return found


class ParameterHolder(nn.Module):
    """Parameters a container module holds itself, registered once more so they belong to a block."""

    def __init__(self, parameters: dict[str, nn.Parameter]):
        super().__init__()
        for name, parameter in parameters.items():
            self.register_parameter(name, parameter)


def _run_after_layers(base: nn.Module, layers: list[nn.Module], others: list[nn.Module]) -> set[int]:
    """The modules among `others` whose forward runs after the last layer's (one tiny forward pass)."""
    events: list[int] = []

    def record(module: nn.Module, args, output) -> None:
        events.append(id(module))

    hooks = [m.register_forward_hook(record) for m in [*others, layers[-1]]]
    try:
        device = next(base.parameters()).device
        if device.type == "meta":  # a skeleton (check_strategy) only needs the layer list
            return set()
        was_training = base.training
        base.eval()
        with torch.no_grad():
            base(input_ids=torch.tensor([[1, 2, 3]], device=device),
                 attention_mask=torch.ones(1, 3, dtype=torch.long, device=device))
        base.train(was_training)
    finally:
        for hook in hooks:
            hook.remove()
    last = max(i for i, key in enumerate(events) if key == id(layers[-1]))
    return {key for key in events[last + 1:]}
