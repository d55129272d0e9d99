"""Generated media: safe files under output_dir, previews, the reference-image fetch guard, video jobs.

Nothing here imports MCP; the tools shape results from what these modules return.
"""
