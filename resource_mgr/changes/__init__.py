"""The change feed: every committed change, at a position in commit order (docs/change-feed.md)."""
