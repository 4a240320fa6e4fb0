"""The shared kit every context builds on: repositories with owner scoping, a UTC datetime column, schemas
read from ORM rows, and one SSE response. Import from the submodules (`hearth.platform.kit.repository`, …)."""
