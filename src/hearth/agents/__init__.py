"""Agents: the query router graph, the research crew, typed tools and MCP (docs/agents.md)."""
