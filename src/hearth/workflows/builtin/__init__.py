"""Built-in pipelines (listed in hearth.workflows.registry.BUILTIN_MODULES)."""
