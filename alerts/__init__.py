"""Events to alerts: the alert schema, snapshots, and publishing to the wall feed and the case queue."""
