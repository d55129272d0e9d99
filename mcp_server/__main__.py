from mcp_server.cli import main

raise SystemExit(main())
