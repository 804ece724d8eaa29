"""Fine-tune a checkpoint at a larger (or smaller) input image size.

An Idefics3 vision tower (the tiny VLA's, SmolVLM's) embeds each ``patch_size`` patch with one
convolution and adds a learned position embedding per cell of a ``side × side`` grid,
``side = image_size // patch_size`` (``transformers`` ``Idefics3VisionEmbeddings``). The
convolution does not depend on the image size; the position table does. Changing the size
resamples that table bicubically to the new grid, as ViT fine-tuning at a higher resolution
does (Dosovitskiy et al., 2021, §3.2; timm ``resample_abs_pos_embed``), and updates what the
processor needs: the resize target and the number of image tokens per image,
``(side // scale_factor)²`` after the connector's pixel shuffle. The text side is unchanged.

Measured here (README "Status", item 23): the robot-only plan model upsized from 96 to 144 px
(a 4 cm object from 5 to 7 px across) succeeds in 99 of 150 seen episodes after 4,000 steps at
144 px, where its 96 px twin reaches 86 after 6,000 more steps; 2,000 steps after the resize
were not enough (25 of 50).
"""

from __future__ import annotations

from typing import Any

import torch


def resize_image_input(model: Any, processor: Any, image_size: int) -> bool:
    """Set an Idefics3 model's and processor's square input size to ``image_size`` pixels.

    Args:
        model: ``Idefics3ForConditionalGeneration`` (or a model whose ``.model`` is an
            ``Idefics3Model``), changed in place: ``config.vision_config.image_size`` and the
            vision embeddings' position table ``(side², hidden)`` float, resampled bicubically
            on the ``side × side`` grid.
        processor: its ``Idefics3Processor``, changed in place: ``image_processor.size`` and
            ``max_image_size`` (``longest_edge``) and ``image_seq_len``.
        image_size: pixels per side, a multiple of ``patch_size * scale_factor``.

    Returns:
        True if anything changed; False when the model already takes ``image_size``.

    Raises:
        ValueError: "image_size: expected a multiple of N, got X" (or a model without an
            Idefics3 vision tower: "model: expected an Idefics3 vision tower, got <class>").
    """
    inner = getattr(model, "model", model)
    vision = getattr(inner, "vision_model", None)
    embeddings = getattr(vision, "embeddings", None)
    table = getattr(embeddings, "position_embedding", None)
    if not isinstance(table, torch.nn.Embedding) or not hasattr(embeddings, "patch_size"):
        raise ValueError(f"model: expected an Idefics3 vision tower, got {type(model).__name__}")
    patch = int(embeddings.patch_size)
    scale = int(getattr(model.config, "scale_factor", 1))
    step = patch * scale
    if (not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < step
            or image_size % step):
        raise ValueError(f"image_size: expected a multiple of {step} (patch {patch} × scale "
                         f"factor {scale}), got {image_size!r}")
    old_side, side = int(embeddings.num_patches_per_side), image_size // patch
    if side == old_side:
        return False
    weight = table.weight.detach()
    grid = weight.float().reshape(old_side, old_side, -1).permute(2, 0, 1)[None]
    resampled = torch.nn.functional.interpolate(grid, size=(side, side), mode="bicubic",
                                                align_corners=False)
    new_table = torch.nn.Embedding(side * side, weight.shape[1], device=weight.device,
                                   dtype=weight.dtype)
    with torch.no_grad():
        new_table.weight.copy_(resampled[0].permute(1, 2, 0).reshape(side * side, -1))
    new_table.weight.requires_grad_(table.weight.requires_grad)
    embeddings.position_embedding = new_table
    embeddings.image_size = image_size
    embeddings.num_patches_per_side = side
    embeddings.num_patches = embeddings.num_positions = side * side
    model.config.vision_config.image_size = image_size
    image_processor = processor.image_processor
    image_processor.size = {**dict(image_processor.size), "longest_edge": image_size}
    image_processor.max_image_size = {**dict(image_processor.max_image_size),
                                      "longest_edge": image_size}
    processor.image_seq_len = (side // scale) ** 2
    return True
