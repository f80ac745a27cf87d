"""Bulk data commands (import, export, generate), registered on the `rmgr` group by main.py."""
import click

COMMANDS: list[click.Command] = []
