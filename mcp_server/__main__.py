import gc

gc.disable()  # from the very first import: see `startup_without_collector` in cli/__init__.py

from mcp_server.cli import main  # noqa: E402

raise SystemExit(main())
