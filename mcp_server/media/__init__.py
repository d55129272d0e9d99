"""Generated media: safe files in the configured store (stores/: output_dir or an S3 bucket), previews, the
reference-image fetch guard (below the router; the video job engine above it is video_jobs/).

Nothing here imports MCP; the tools shape results from what these modules return.
"""
