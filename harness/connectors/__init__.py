"""Connectors: one image's backbone patch features -> the LLM-facing token sequence, registered
by name like encoders, strategies and datasets (one module each)."""

from __future__ import annotations

from harness.connectors.base import CONNECTORS, Connector, LayoutError, build_connector, connector_class

__all__ = ["CONNECTORS", "Connector", "LayoutError", "build_connector", "connector_class"]
