"""Files a tool takes as arguments (images to edit, a mask, audio to transcribe), loaded and checked before any
upstream call: a model that cannot take them is refused here, naming one that can."""

from __future__ import annotations

from mcp_server.catalog import ModelCard
from mcp_server.errors import invalid_argument
from mcp_server.gateway import Gateway
from mcp_server.media.reference import ReferenceImage, load_reference_image
from mcp_server.providers.base import InputFile
from mcp_server.router import takes_images

MAX_INPUT_IMAGES = 16


async def load_input(gateway: Gateway, value: str, param: str, *, audio: bool = False) -> ReferenceImage:
    """One file from base64, a data: URL, a public URL, a media:// id or input_dir (media/reference.py's guards)."""
    return await load_reference_image(
        value,
        param=param,
        input_dir=gateway.config.server.input_dir,
        fetcher=gateway.fetcher,
        max_bytes=gateway.config.media.reference_max_bytes,
        media=gateway.media,
        audio=audio,
    )


def as_part(file: ReferenceImage, stem: str) -> InputFile:
    return InputFile(data=file.data, mime_type=file.mime_type, name=f"{stem}.{file.extension}")


def check_image_inputs(gateway: Gateway, card: ModelCard, count: int, mask: bool) -> None:
    """Refuse input images `card` cannot take (too many, or a mask on a model without edits) before sending."""
    if mask and count == 0:
        raise invalid_argument("mask", "`mask` marks what to change in an image: pass that image in reference_images.")
    if count > MAX_INPUT_IMAGES:
        raise invalid_argument("reference_images", f"At most {MAX_INPUT_IMAGES} input images; got {count}.")
    if takes_images(card, count, True if mask else None):
        return
    able = [c.id for c in gateway.catalog.cards("image") if takes_images(c, count, True if mask else None)]
    hint = f" Models that can: {', '.join(able)}." if able else " No configured image model can."
    if mask and card.image_input != "edits":
        raise invalid_argument("mask", f"Model '{card.id}' does not edit images, so it takes no `mask`.{hint}")
    taken = card.max_reference_images if card.image_input == "edits" else min(card.max_reference_images, 1)
    raise invalid_argument(
        "reference_images", f"Model '{card.id}' takes at most {taken} input image(s); got {count}.{hint}"
    )


async def image_inputs(
    gateway: Gateway, card: ModelCard, reference_image: str | None, reference_images: list[str] | None, mask: str | None
) -> tuple[list[InputFile], InputFile | None]:
    """The input images (reference_image first, then reference_images) and the mask, checked against `card`."""
    values = ([reference_image] if reference_image is not None else []) + list(reference_images or [])
    check_image_inputs(gateway, card, len(values), mask is not None)
    images = []
    for i, value in enumerate(values):
        param = "reference_image" if reference_image is not None and i == 0 else "reference_images"
        images.append(as_part(await load_input(gateway, value, param), f"image-{i + 1}"))
    if mask is None:
        return images, None
    loaded = await load_input(gateway, mask, "mask")
    if loaded.mime_type != "image/png":
        raise invalid_argument("mask", "`mask` must be a PNG (its transparent pixels mark what to change).")
    return images, as_part(loaded, "mask")
