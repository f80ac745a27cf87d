"""Routes through any termination or resource (API.md, Maintenance): GET /resources/{id}/route.
Every role reads, within its local networks; another city's resource is a 404."""
from __future__ import annotations

from apiflask import APIBlueprint, Schema
from apiflask.fields import List, Nested, String

from resource_mgr.errors import NotFound
from resource_mgr.inventory.models import Resource
from resource_mgr.occupancy.models import Unit
from resource_mgr.topology.services import routes_of_resource

from interfaces.http.api.services import HopOut
from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session

bp = APIBlueprint("topology", __name__)


class ResourceRouteOut(Schema):
    resource_id = String()
    service_id = String(allow_none=True, metadata={"description": "the live service whose route this is, if "
                                                                  "one uses the resource"})
    hops = List(Nested(HopOut))
    alternate_routes = List(List(Nested(HopOut)))


@bp.get("/resources/<string:resource_id>/route")
@bp.output(ResourceRouteOut)
@bp.doc(summary="The route through a termination (port, pair, core, terminal) or a resource, to the core")
@require(*READERS)
def get_resource_route(resource_id: str):
    session = read_session()
    found = session.get(Resource, resource_id) or session.get(Unit, resource_id)
    if found is None or not principal().sees(found.local_network_id):
        raise NotFound(f"no resource with id {resource_id}", field="id")
    return routes_of_resource(session, resource_id)
