"""Cutovers (割接): a mapping of old units to new ones, validated, locked, applied in bulk as a
background job, rolled back (API.md "Cutover")."""
