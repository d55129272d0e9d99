import gc

gc.disable()  # from the very first import: see mcp_server/collector.py

from mcp_server.cli import main  # noqa: E402

raise SystemExit(main())
