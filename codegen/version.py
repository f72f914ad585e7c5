"""The version of the generated code (no imports: read on every warm start)."""

#: Bumped whenever the generated source changes; part of every cache key.
CODEGEN_VERSION = "sobolev-rf-codegen-6"
