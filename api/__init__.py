"""HTTP: the camera registry, alerts, the wall page; every endpoint but /healthz behind a role."""
