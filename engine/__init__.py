"""Guichet's engine: the runtime around SpiffWorkflow. It knows nothing of the web."""

from .clock import FrozenClock, utcnow
from .deploy import Upload
from .dto import (
    SYSTEM,
    Actor,
    AuditEventInfo,
    CatalogItemInfo,
    CommentInfo,
    DeployOutcome,
    GroupInfo,
    Page,
    ProcessRef,
    ProcessVersionInfo,
    ProgressStep,
    ServiceInfo,
    TaskInfo,
    TicketInfo,
    TraceInfo,
)
from .errors import (
    Conflict,
    DeployFailed,
    Forbidden,
    GuichetError,
    NotFound,
    ProcessError,
    SandboxError,
    ValidationFailed,
)
from .facade import ServiceDesk, uploads_from_folder

__all__ = [
    "SYSTEM",
    "Actor",
    "AuditEventInfo",
    "CatalogItemInfo",
    "CommentInfo",
    "Conflict",
    "DeployFailed",
    "DeployOutcome",
    "Forbidden",
    "FrozenClock",
    "GroupInfo",
    "GuichetError",
    "NotFound",
    "Page",
    "ProcessError",
    "ProcessRef",
    "ProcessVersionInfo",
    "ProgressStep",
    "SandboxError",
    "ServiceDesk",
    "ServiceInfo",
    "TaskInfo",
    "TicketInfo",
    "TraceInfo",
    "Upload",
    "ValidationFailed",
    "uploads_from_folder",
    "utcnow",
]
