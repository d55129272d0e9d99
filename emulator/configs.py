"""Gateway configs (as dicts) that point at an Emulator: shared by the tests and bench/media_previews.py.

Real retry rules with short waits, the emulator's providers and a few chat, image and video models with
the limits and prices a real config would carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emulator.app import Emulator

EMU_KEY_ENV = "GENROUTE_TEST_EMU_KEY"


def base_config(emulator: Emulator, tmp_path: Path) -> dict[str, Any]:
    return {
        "server": {
            "data_dir": str(tmp_path / "data"),
            "output_dir": str(tmp_path / "media"),
            "local_model": False,
        },
        # Real retry rules, short waits: tests never wait out the production backoff (0.5 s x 2^n).
        "routing": {"backoff_base_s": 0.01, "backoff_max_s": 0.05},
        "providers": {
            "arkroute": {
                "protocol": "openai",
                "base_url": emulator.openai_url,
                "api_key_env": EMU_KEY_ENV,
                "timeout_s": 10,
            },
            "aki": {"protocol": "aki", "base_url": emulator.base_url, "api_key_env": EMU_KEY_ENV, "timeout_s": 10},
        },
        "models": {
            "gpt-5.5": {
                "provider": "arkroute",
                "kind": "chat",
                "context_window": 400000,
                "description": "Frontier chat model",
                "input_usd_per_mtok": 1.25,
                "output_usd_per_mtok": 10.0,
                "aliases": ["default-chat"],
            },
            "gpt-5.4": {"provider": "arkroute", "kind": "chat", "context_window": 200000},
            "llama3-8b": {"provider": "aki", "upstream": "llama3_8b_chat", "kind": "chat"},
        },
        "presets": {
            "blog-writer": {
                "description": "Draft a blog post",
                "template": "Write a blog post about {topic} for {audience}",
                "model": "gpt-5.5",
            }
        },
    }


IMAGE_MODEL = "nano"  # url answers (ArkRoute's default)
B64_IMAGE_MODEL = "nano-b64"  # asks for b64_json
VIDEO_MODEL = "kling"


def media_config(config: dict[str, Any], **media: Any) -> dict[str, Any]:
    """Add image and video models (limits and prices as a real config would carry) and fast polling."""
    config["models"].update(
        {
            IMAGE_MODEL: {
                "provider": "arkroute",
                "upstream": "nano-banana-2",
                "kind": "image",
                "sizes": ["256x256", "1024x1024", "1024x1536", "4096x4096"],
                "max_n": 4,
                "usd_per_image": 0.02,
            },
            B64_IMAGE_MODEL: {
                "provider": "arkroute",
                "upstream": "nano-banana-2",
                "kind": "image",
                "response_format": "b64_json",
                "max_n": 2,
            },
            VIDEO_MODEL: {
                "provider": "arkroute",
                "upstream": "kling-v2-master",
                "kind": "video",
                "durations": [5, 10],
                "aspect_ratios": ["16:9", "9:16", "1:1"],
                "usd_per_second": 0.1,
            },
        }
    )
    config["media"] = {"video_poll_initial_s": 0.2, "video_poll_max_s": 0.5, **media}
    return config
