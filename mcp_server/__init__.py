"""genroute: an MCP gateway that routes chat, image and video generation to provider backends."""

__version__ = "0.1.0"
