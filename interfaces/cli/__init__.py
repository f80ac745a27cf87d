import getpass


def cli_principal() -> str:
    """Who changes data from the command line: "cli:<operating-system user>" in the operation log."""
    try:
        who = getpass.getuser()
    except Exception:  # no login name (containers): still attribute the change
        who = "unknown"
    return f"cli:{who}"
