"""What the farm and the index agree on for the farm API: size limits and the storage layout.

The nightly sends (builder/farm/client.py) and the index receives (index_server/farm_api.py); both read
the limits from here so that neither imports the other. The documents' shapes are JSON Schemas beside
the index (index_server/farm_status.schema.json, provenance.schema.json).
"""

from __future__ import annotations

MAX_STATUS_BYTES = 32 << 20  # the status document
MAX_LOG_BYTES = 8 << 20  # one build log (the farm sends its tail)
MAX_PROVENANCE_BYTES = 1 << 20  # one wheel's provenance record
