"""Standard addresses: the tree (building ⊃ unit ⊃ floor ⊃ room), which boxes serve an address
(coverage inherited down the tree, else the nearest boxes within the drop length), where a point
is, and the partial-text search the sales counter uses."""
from resource_mgr.addresses.normalise import normalise, parse_query
from resource_mgr.addresses.search import AddressHit, search_addresses
from resource_mgr.addresses.serving import (
    ServingBox, drop_limit_m, local_network_of_point, nearest_boxes, resolve_point, serving_boxes,
)
from resource_mgr.addresses.tree import address_json, ancestors

__all__ = [
    "normalise", "parse_query", "AddressHit", "search_addresses", "ServingBox", "drop_limit_m",
    "local_network_of_point", "nearest_boxes", "resolve_point", "serving_boxes", "address_json", "ancestors",
]
