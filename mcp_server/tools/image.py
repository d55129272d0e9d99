"""generate_image: validate, generate through the router, save every image, answer with previews + links + paths."""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ContentBlock, ImageContent, ResourceLink, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server.access import identity
from mcp_server.catalog import ModelCard
from mcp_server.config import MediaConfig
from mcp_server.errors import TooLarge, invalid_argument
from mcp_server.gateway import Gateway
from mcp_server.media.images import StoredImage, previews, store_images
from mcp_server.media.links import MediaLinks, SignedLink, publish, resource_link
from mcp_server.media.previews import b64_size
from mcp_server.tools.inputs import image_inputs
from mcp_server.tools.results import absent_when_none, guarded, ok

MAX_PROMPT_CHARS = 32_000
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
Output = Literal["preview", "link", "full"]


class ImageFile(BaseModel):
    id: str = Field(description="Media id; the full file is the resource media://{id}")
    uri: str
    path: str = Field(description="Where the file was saved on the server's disk")
    url: str | None = Field(description="The provider's own URL for the image, when it gave one (may expire)")
    width: int
    height: int
    mime_type: str
    bytes: int
    link: SignedLink | None = absent_when_none(
        "Over HTTP: a URL that opens the full file without a key until it expires"
    )


class GenerateImageOutput(BaseModel):
    images: list[ImageFile]
    model: str = Field(description="The catalog id of the model that generated the images")
    provider: str
    fallback_from: str | None = absent_when_none(
        "The model asked for, when it failed and this fallback answered instead"
    )
    revised_prompt: str | None
    cost_usd: float | None = Field(description="Provider-reported charge, else the catalog price; None if unknown")


def check_prompt(prompt: str, param: str = "prompt") -> str:
    if not prompt or not prompt.strip():
        raise invalid_argument(param, f"`{param}` is empty: describe what to generate.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise invalid_argument(param, f"`{param}` is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}.")
    return prompt


def check_image_arguments(card: ModelCard, n: int, size: str | None) -> str | None:
    if not 1 <= n <= card.max_n:
        raise invalid_argument("n", f"`n` must be from 1 to {card.max_n} for model '{card.id}'; got {n}.")
    if size is None:
        return None
    size = size.strip().lower()
    if card.sizes:
        if size not in card.sizes:
            raise invalid_argument("size", f"Model '{card.id}' offers sizes {', '.join(card.sizes)}; got '{size}'.")
        return size
    match = _SIZE.match(size)
    if not match or not all(16 <= int(side) <= 8192 for side in match.groups()):
        raise invalid_argument("size", f"`size` must look like 1024x1024 (each side 16 to 8192); got '{size}'.")
    return size


def _summary(
    images: list[StoredImage], links: list[SignedLink | None], model: str, provider: str, output: Output
) -> str:
    lines = [f"Generated {len(images)} image{'s' if len(images) != 1 else ''} with {model} via {provider}."]
    for image, link in zip(images, links, strict=True):
        item = image.item
        lines.append(
            f"- {item.uri}: {image.width}x{image.height} {item.mime_type}, {item.bytes} bytes, saved at {item.path}"
            + (f"; opens without a key at {link.url}" if link else "")
        )
    if output == "preview":
        lines.append(
            "The inline images are reduced previews; read the media:// resource (or open the path) for the full file."
        )
    elif output == "link":
        lines.append("No image data inline; read the media:// resource (or open the path) for the full file.")
    return "\n".join(lines)


def preview_budget(config: MediaConfig, n: int) -> int:
    """Base64 bytes for each of `n` previews: `preview_max_bytes`, or less so that all of them together stay
    within `preview_total_max_bytes` (the whole result then stays under 1 MB whatever n is)."""
    return min(config.preview_max_bytes, config.preview_total_max_bytes // max(n, 1))


def _link(image: StoredImage, link: SignedLink | None, links: MediaLinks | None) -> ResourceLink:
    return resource_link(
        image.item,
        link,
        links,
        title=f"Full image {image.width}x{image.height}",
        description=f"The full generated image, saved at {image.item.path}",
    )


def _full_inline(images: list[StoredImage], config: MediaConfig) -> list[ImageContent]:
    total = sum(b64_size(len(image.data)) for image in images)
    if total > config.full_inline_max_bytes:
        saved = "; ".join(f"{image.item.uri} at {image.item.path}" for image in images)
        raise TooLarge(
            f"The full images are {total} bytes as base64, above the {config.full_inline_max_bytes} byte inline "
            f"limit ([media] full_inline_max_bytes). They were generated and saved: {saved}. Call again with "
            'output="preview" or output="link", or read the media:// resources to get them one at a time.',
            code="too_large_for_inline",
            param="output",
        )
    return [
        ImageContent(type="image", data=base64.b64encode(image.data).decode("ascii"), mime_type=image.item.mime_type)
        for image in images
    ]


def register(mcp: MCPServer[Any], gateway: Gateway) -> None:
    config = gateway.config.media

    @mcp.tool(
        name="generate_image",
        description=(
            "Generate images from a text prompt, or edit input images (reference_images, and a mask where the "
            "model edits: see list_models' image_input and max_reference_images). Every image is saved on the "
            "server and returned as a small inline preview, a media:// link to the full file, and its path. "
            "`output`: 'preview' (default), 'link' (no image data inline) or 'full' (the full image inline, "
            "refused when too large). See list_models for image models, their sizes and max n."
        ),
        annotations=ToolAnnotations(readOnlyHint=False, openWorldHint=True, idempotentHint=False),
    )
    @guarded
    async def generate_image(
        prompt: Annotated[str, Field(description="What to draw")],
        model: Annotated[str | None, Field(description="Image model id or alias (see list_models)")] = None,
        n: Annotated[int, Field(description="How many images (up to the model's max_n)")] = 1,
        size: Annotated[str | None, Field(description="WIDTHxHEIGHT, one of the model's sizes")] = None,
        reference_image: Annotated[
            str | None,
            Field(
                description="Image-to-image input: base64, a data: URL, a public http(s) URL, a media:// id, "
                "or a file name in the server's input folder"
            ),
        ] = None,
        reference_images: Annotated[
            list[str] | None,
            Field(description="Several input images (same forms), up to the model's max_reference_images"),
        ] = None,
        mask: Annotated[
            str | None, Field(description="PNG (same forms) whose transparent pixels mark what to change")
        ] = None,
        output: Annotated[Output, Field(description="preview | link | full")] = "preview",
    ) -> Annotated[CallToolResult, GenerateImageOutput]:
        check_prompt(prompt)
        caller = identity.current()
        card = gateway.router.resolve(model, "image", caller)
        size = check_image_arguments(card, n, size)
        images, mask_part = await image_inputs(gateway, card, reference_image, reference_images, mask)
        routed = await gateway.router.generate_image(
            card, caller=caller, prompt=prompt, n=n, size=size, images=images, mask=mask_part
        )
        stored = await store_images(
            routed.value,
            adapter=gateway.router.adapter_for(routed.card),
            registry=gateway.media,
            model_id=routed.card.id,
            config=config,
        )
        signed = [
            await publish(gateway.store, gateway.links, image.item, caller=caller.id, tool="generate_image",
                          model=routed.card.id)
            for image in stored
        ]  # fmt: skip
        blocks: list[ContentBlock] = []
        if output == "full":
            inline: list[ImageContent | None] = list(_full_inline(stored, config))
        elif output == "preview":
            budget = config.model_copy(update={"preview_max_bytes": preview_budget(config, len(stored))})
            inline = [
                ImageContent(type="image", data=p.data_b64, mime_type=p.mime_type) if p else None
                for p in await previews(stored, budget)
            ]
        else:
            inline = [None] * len(stored)
        for image, inline_image, link in zip(stored, inline, signed, strict=True):
            if inline_image is not None:
                blocks.append(inline_image)
            blocks.append(_link(image, link, gateway.links))
        price = routed.card.pricing.usd_per_image
        cost = routed.value.cost_usd
        if cost is None and price is not None:
            cost = round(price * len(stored), 6)
        revised = next((image.revised_prompt for image in routed.value.images if image.revised_prompt), None)
        result = GenerateImageOutput(
            images=[
                ImageFile(**image.item.model_dump(), url=image.url, width=image.width, height=image.height, link=link)
                for image, link in zip(stored, signed, strict=True)
            ],
            model=routed.card.id,
            provider=routed.provider,
            fallback_from=routed.fallback_from,
            revised_prompt=revised,
            cost_usd=cost,
        )
        return ok(result, blocks, text=_summary(stored, signed, routed.card.id, routed.provider, output))
