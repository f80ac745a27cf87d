"""Alarms and faults: what the network management system reports, resolved to our resources."""
