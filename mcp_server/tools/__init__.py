"""The MCP tools, resources and prompts: validate, call the router, shape the result."""
