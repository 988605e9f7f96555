"""The client API: :class:`~monitoring.client.monitors.MonitorClient` starts, follows and controls monitors;
snapshots and instance details read what they publish; tracking polls many runs at once; history turns an
instance's events into a timeline; errors say why an operation was refused."""
