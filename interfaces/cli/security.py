"""Identity commands (user, token), registered on the `rmgr` group by main.py."""
import click

COMMANDS: list[click.Command] = []
