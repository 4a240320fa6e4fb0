"""External MCP servers agents may use, from the `mcp_servers:` section of hearth.yaml:

mcp_servers:
  files:                      # tools appear as files_<tool>
    url: http://127.0.0.1:9000/mcp
    headers: {Authorization: "Bearer …"}
    timeout: 10               # seconds per call (default: agents_tool_timeout)
  clock:
    command: python
    args: ["-m", "my_mcp_server"]
    env: {TZ: UTC}
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hearth.config import ConfigError, load_section


class McpServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None  # streamable HTTP endpoint
    headers: dict[str, str] = {}
    command: str | None = None  # or a command speaking MCP over stdio
    args: list[str] = []
    env: dict[str, str] | None = None
    timeout: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.url is None) == (self.command is None):
            raise ValueError("give either 'url' (streamable HTTP) or 'command' (stdio)")
        return self


def load_mcp_servers(path: Path | None) -> dict[str, McpServerConfig]:
    raw = load_section(path, "mcp_servers")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: mcp_servers: expected a mapping of server names to settings")
    servers = {}
    for name, spec in raw.items():
        if not str(name).replace("-", "_").isidentifier():
            raise ConfigError(f"{path}: mcp_servers.{name}: use letters, digits, '_' or '-' in the name")
        try:
            servers[str(name)] = McpServerConfig.model_validate(spec or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                f"{path}: mcp_servers.{name}{'.' + where if where else ''}: {first['msg']}"
            ) from None
    return servers
