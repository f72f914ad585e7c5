"""CSV rows and printed tables of the studies (one module per study)."""
