"""Import every model so that `Base.metadata` is complete (migrations, tests)."""
from resource_mgr.changes.models import ChangeCounter  # noqa: F401
from resource_mgr.coverage.models import ServiceQualification  # noqa: F401
from resource_mgr.customers.models import Customer, Service, ServiceUnit  # noqa: F401
from resource_mgr.cutovers.models import Cutover, CutoverRow  # noqa: F401
from resource_mgr.db import Base  # noqa: F401
from resource_mgr.events.models import Delivery, Event, Subscription  # noqa: F401
from resource_mgr.faults.models import Fault  # noqa: F401
from resource_mgr.inventory.models import (  # noqa: F401
    Address, Area, Cable, CableSpan, Card, Connection, Coverage, CrossBox, Device, DeviceTemplate,
    DistributionBox, Duct, DuctSegment, Frame, LocalNetwork, Manhole, NamingRule, Pole, Resource, Site,
)
from resource_mgr.jobs.models import Job  # noqa: F401
from resource_mgr.numbers.models import Number, NumberPool, NumberSegment  # noqa: F401
from resource_mgr.occupancy.models import History, SharedHold, Unit  # noqa: F401
from resource_mgr.orders.models import Reservation  # noqa: F401
from resource_mgr.security.models import ApiToken, User  # noqa: F401
