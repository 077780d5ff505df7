"""The one door into the engine: each public method is one unit of work."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from copy import deepcopy
from dataclasses import replace
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from . import (
    access,
    audit,
    deploy,
    directory,
    forms,
    mailer,
    monitoring,
    outbox,
    queries,
    reports,
    runtime,
    throttle,
    tickets,
    timers,
    trace,
    versions,
)
from .caching import Expiring
from .clock import Clock, utcnow
from .definitions import DefinitionCache
from .dto import (
    Actor,
    AuditEventInfo,
    CatalogItemInfo,
    CommentInfo,
    DeployOutcome,
    ElementChange,
    FailureInfo,
    GroupInfo,
    KpiSummary,
    MigrationCandidate,
    MigrationResult,
    NotificationInfo,
    Page,
    ProcessRef,
    ProcessVersionInfo,
    ProgressStep,
    Report,
    ReportFilters,
    ServiceInfo,
    ServiceStatus,
    TaskInfo,
    TicketInfo,
    TraceInfo,
    WorkerRound,
)
from .errors import (
    Conflict,
    DeployFailed,
    Forbidden,
    NotFound,
    ProcessError,
    ValidationFailed,
)
from .persistence.batch import Batch
from .persistence.db import Database
from .persistence.models import (
    AuditEvent,
    AuditHead,
    Base,
    CatalogItem,
    Comment,
    Notification,
    ProcessVersion,
    Service,
    ServiceStateChange,
    StepFailure,
    Task,
    Ticket,
    TicketState,
    User,
)
from .progress import next_user_tasks
from .scripting import DeskScriptEngine
from .services import SERVICE_OPERATORS

MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000  # beyond, the row offset no longer fits the databases' integers
# Process variables a requester may read on their own ticket.
REQUESTER_VARIABLES = frozenset(
    {"resolution", "reason", "fields", "comment", "category", "fulfilment", "question", "answer"}
)
INCIDENT_FIELDS = {"title": (1, 200), "description": (0, 10000)}
# Seconds a process may go on using what it read of a user, a group's members or the group
# and service lists: a user deactivated, added to a group or moved to another one in the
# database is refused, notified or moved everywhere within this time
# (GUICHET_DIRECTORY_TTL; 0 reads them on every request).
DIRECTORY_TTL = 10.0


class ServiceDesk:
    """Guichet's engine: deploy processes, run tickets, answer queries."""

    def __init__(
        self,
        database_url: str,
        clock: Clock = utcnow,
        hasher: PasswordHasher | None = None,
        pool_size: int = 5,
        directory_ttl: float = DIRECTORY_TTL,
    ) -> None:
        self.clock = clock
        self.hasher = hasher or directory.HASHER
        self.definitions = DefinitionCache()
        self.script_engine = DeskScriptEngine(SERVICE_OPERATORS, clock)
        self._names: dict[int, str] = {}  # user id -> username (usernames never change)
        # Who a user is (active, roles, groups), the lists that fill forms and who belongs
        # to a group are read at most once per ``directory_ttl`` seconds in this process:
        # every request needs the first, most pages the second, most steps the third, and
        # they change rarely and outside Guichet.
        self._directory: Expiring = Expiring(directory_ttl)
        # Every session carries it (``session.info``): form options and group members are
        # read through it wherever a unit of work needs them.
        self.db = Database(database_url, pool_size=pool_size,
                           info={directory.CACHE: self._directory})

    # -- schema -----------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create tables directly (tests); production uses ``upgrade_schema``."""
        Base.metadata.create_all(self.db.engine)
        self._seed_bookkeeping()

    def upgrade_schema(self) -> None:
        """Bring the database to the latest Alembic revision."""
        from .migrate import upgrade

        upgrade(self.db.engine)
        self._seed_bookkeeping()

    def _seed_bookkeeping(self) -> None:
        with self.db.write() as s:
            tickets.ensure_counters(s)
            audit.ensure_head(s)

    def close(self) -> None:
        self.db.dispose()

    def seed_demo(self, processes: Path) -> dict[str, int]:
        """Create the demo users, groups, services and catalog that are missing."""
        from .demo import seed

        with self.db.write() as s:
            counts = seed(s, processes, self.hasher)
        self.forget_directory()
        return counts

    def forget_directory(self) -> None:
        """Read users, groups and services afresh (after changing them in the database)."""
        self._directory.clear()

    # -- people -----------------------------------------------------------------------

    def authenticate(self, username: str, password: str, channel: str = "web",
                     address: str | None = None) -> Actor | None:
        """The actor for valid credentials, else None (same time either way).

        Every outcome is audited: ``user_signed_in``, ``sign_in_refused``, or
        ``sign_in_throttled`` after too many refusals (``throttle.Throttled`` is raised then,
        without the password being checked).
        """
        with self.db.write() as s:
            now = self.clock()
            wait = throttle.wait(s, username, address, now)
            user = directory.user_by_name(s, username) if wait is None else None
            ok = wait is None and directory.check_password(user, password, self.hasher)
            action = throttle.THROTTLED if wait else "user_signed_in" if ok else "sign_in_refused"
            audit.append(s, [audit.Event(
                action=action, actor=throttle.actor_name(username), at=now,
                data=throttle.sign_in_data(channel, address))])
            actor = directory.active_actor(s, username) if ok else None
        if actor is not None:
            self._directory.put(("actor", username), actor)
        if wait:
            raise throttle.Throttled(wait)
        return actor

    def record_refusal(self, actor: Actor | None, what: str, reason: str) -> None:
        """Audit a refused action (403): who tried what, and why it was refused."""
        with self.db.write() as s:
            audit.append(s, [audit.Event(
                action="action_refused", actor=actor.username if actor else "anonymous",
                at=self.clock(), data={"what": what[:300], "reason": reason[:300]})])

    def actor(self, username: str) -> Actor | None:
        """The active user ``username``, as read at most ``directory_ttl`` seconds ago."""
        actor = self._directory.get(("actor", username))
        if actor is None:
            with self.db.read() as s:
                actor = directory.active_actor(s, username)
            if actor is not None:
                self._directory.put(("actor", username), actor)
        return actor

    def groups(self) -> list[GroupInfo]:
        with self.db.read() as s:
            return directory.groups(s)

    def services(self) -> list[ServiceInfo]:
        with self.db.read() as s:
            return directory.services(s)

    def catalog(self) -> list[CatalogItemInfo]:
        with self.db.read() as s:
            options = directory.form_options(s)
            return [replace(i, form=forms.with_options(i.form, options))
                    for i in directory.catalog(s)]

    # -- processes --------------------------------------------------------------------

    def deploy(self, uploads: Iterable[deploy.Upload], actor: Actor,
               expected_key: str | None = None) -> list[DeployOutcome]:
        """Validate and deploy BPMN/DMN files; all or nothing."""
        if not access.may_deploy(actor):
            raise Forbidden("only process owners and administrators may deploy")
        with self.db.write() as s:
            groups = {g.key for g in directory.groups(s)}
            outcomes = deploy.deploy(s, list(uploads), actor.username, self.clock(), groups,
                                     expected_key)
            events = [
                audit.Event(action="process_deployed", actor=actor.username, at=self.clock(),
                            data={"key": o.key, "version": o.version},
                            process_key=o.key, process_version=o.version)
                for o in outcomes if o.created
            ]
            audit.append(s, events)
            return outcomes

    def deploy_folder(self, folder: Path, actor: Actor) -> list[DeployOutcome]:
        """Deploy every ``*.bpmn`` and ``*.dmn`` of a folder, forms from ``folder/forms``."""
        return self.deploy(uploads_from_folder(folder), actor)

    def deploy_xml(self, key: str, xml: str | bytes, actor: Actor,
                   forms: dict[str, Any] | None = None) -> DeployOutcome:
        """Deploy one file (API, modeler); ``forms`` replace same-named forms of the current
        version, the others are kept."""
        with self.db.read() as s:
            upload = _upload(s, key, xml, forms)
        return self.deploy([upload], actor, expected_key=key)[0]

    def validate_xml(self, key: str, xml: str | bytes, actor: Actor,
                     forms: dict[str, Any] | None = None) -> list[dict[str, str | None]]:
        """Every error ``deploy_xml`` would report, without deploying anything."""
        if not access.may_deploy(actor):
            raise Forbidden("only process owners and administrators may validate processes")
        with self.db.read() as s:
            groups = {g.key for g in directory.groups(s)}
            try:
                deploy.validate(s, [_upload(s, key, xml, forms)], groups, expected_key=key)
            except DeployFailed as err:
                return err.errors
            return []

    def redeploy(self, key: str, version: int, actor: Actor) -> DeployOutcome:
        """Make an earlier version current again (as a new version number)."""
        with self.db.read() as s:
            row = _version_row(s, key, version)
            upload = deploy.Upload(f"{key}.{row.kind}", row.xml, json.loads(row.forms))
        return self.deploy([upload], actor, expected_key=key)[0]

    def version_forms(self, key: str, version: int) -> dict[str, Any]:
        """The task forms (file name -> JSON Schema) deployed with a version."""
        with self.db.read() as s:
            return json.loads(_version_row(s, key, version).forms)

    def diff(self, key: str, a: int, b: int) -> list[ElementChange]:
        """Element-by-element differences from version ``a`` to version ``b``."""
        with self.db.read() as s:
            old, new = _version_row(s, key, a), _version_row(s, key, b)
            return versions.diff(json.loads(old.elements), json.loads(new.elements),
                                 json.loads(old.forms), json.loads(new.forms))

    def migration_candidates(self, actor: Actor, key: str,
                             to_version: int | None = None) -> list[MigrationCandidate]:
        """Open tickets on older versions of ``key``, and whether each can move to the target.

        A ticket can move when every task it waits on exists, as a user task with the same
        id, in the target version.
        """
        if not access.may_deploy(actor):
            raise Forbidden("only process owners and administrators may migrate tickets")
        with self.db.read() as s:
            target = self._target_version(s, key, to_version)
            elements = json.loads(target.elements)
            rows = s.execute(
                select(Ticket.number, Ticket.process_version, Task.name)
                .join(Task, (Task.ticket_id == Ticket.id) & (Task.state == "ready"), isouter=True)
                .where(Ticket.process_key == key, Ticket.process_version < target.version,
                       Ticket.status.not_in(("closed", "rejected")))
                .order_by(Ticket.id)).all()
            waiting: dict[str, tuple[int, list[str]]] = {}
            for number, version, task in rows:
                waiting.setdefault(number, (version, []))[1].extend([task] if task else [])
            result, old = [], {}
            for number, (version, names) in waiting.items():
                if version not in old:
                    old[version] = json.loads(_version_row(s, key, version).elements)
                blocked = versions.blocking_tasks(names, elements, old[version])
                reason = ("waits on " + ", ".join(f"{name}, which {why} in version "
                                                  f"{target.version}"
                                                  for name, why in blocked.items())
                          if blocked else
                          f"waits on {', '.join(names) or 'nothing'}, present in version "
                          f"{target.version}")
                result.append(MigrationCandidate(number, version, target.version,
                                                 not blocked, reason))
            return result

    def migrate(self, actor: Actor, key: str, to_version: int | None = None,
                tickets: list[str] | None = None) -> list[MigrationResult]:
        """Move waiting tickets to a newer version; each ticket in its own transaction."""
        results = []
        for candidate in self.migration_candidates(actor, key, to_version):
            if tickets is not None and candidate.ticket not in tickets:
                continue
            if not candidate.movable:
                results.append(MigrationResult(candidate.ticket, False, candidate.reason))
                continue
            results.append(self._migrate_one(actor, key, candidate))
        return results

    def _migrate_one(self, actor: Actor, key: str,
                     candidate: MigrationCandidate) -> MigrationResult:
        with self._writing() as s:
            ticket = s.scalars(select(Ticket).where(Ticket.number == candidate.ticket)
                               .with_for_update()).one()
            target = self._target_version(s, key, candidate.to_version)
            open_rows = tickets.open_tasks(s, ticket.id)
            blocked = versions.blocking_tasks(
                [t.name for t in open_rows], json.loads(target.elements),
                json.loads(_version_row(s, key, ticket.process_version).elements))
            if ticket.process_version != candidate.from_version or blocked:
                return MigrationResult(ticket.number, False, "the ticket moved on meanwhile")
            old = self.definitions.get(s, ticket.definition_id)
            new = self.definitions.get(s, deploy.definition_for(s, target).id)
            now = self.clock()
            state = s.get(TicketState, ticket.id)
            step = tickets.load_step(ticket, state, old, self.script_engine, now, open_rows)
            versions.migrate(step.workflow, new.spec, new.subprocess_specs)
            runtime.provide(step.workflow, {"reported_at": ticket.created_at.isoformat()})
            runtime.run_engine(step.workflow, runtime.StepTrace())
            runtime.prune(step.workflow)
            step.definition = new
            ticket.definition_id, ticket.process_version = new.id, new.version
            step.event("ticket_migrated", actor.username,
                       {"from": candidate.from_version, "to": new.version})
            tickets.save(s, step, actor.username)
            return MigrationResult(ticket.number, True,
                                   f"moved from version {candidate.from_version} to {new.version}")

    def _target_version(self, s: Session, key: str, version: int | None) -> ProcessVersion:
        row = (_version_row(s, key, version) if version is not None
               else deploy.current_version(s, key))
        if row is None or row.kind != "bpmn":
            raise NotFound(f"no process {key!r}")
        return row

    def processes(self) -> list[ProcessVersionInfo]:
        with self.db.read() as s:
            latest = (select(ProcessVersion.key, func.max(ProcessVersion.version).label("v"))
                      .group_by(ProcessVersion.key).subquery())
            rows = s.scalars(select(ProcessVersion).join(
                latest, (ProcessVersion.key == latest.c.key)
                & (ProcessVersion.version == latest.c.v)).order_by(ProcessVersion.key)).all()
            return [_version_info(r) for r in rows]

    def versions(self, key: str) -> list[ProcessVersionInfo]:
        with self.db.read() as s:
            rows = s.scalars(select(ProcessVersion).where(ProcessVersion.key == key)
                             .order_by(ProcessVersion.version.desc())).all()
            if not rows:
                raise NotFound(f"no process or decision table with key {key!r}")
            return [_version_info(r) for r in rows]

    def version_xml(self, key: str, version: int) -> str:
        with self.db.read() as s:
            return _version_row(s, key, version).xml

    # -- tickets ----------------------------------------------------------------------

    def open_incident(self, actor: Actor, title: str, description: str, service: str | None,
                      channel: str = "portal") -> TicketInfo:
        """Record an incident and run its process to the first wait state."""
        _require_reporter(actor)
        errors = _text_errors({"title": title, "description": description})
        with self.db.write() as s:
            options = directory.form_options(s)
            if service is not None and service not in dict(options["services"]):
                errors["service"] = "Choose one of the services listed."
            _raise_if(errors)
            data = {"title": title.strip(), "description": description or "",
                    "service": service, "channel": channel}
            return self._start(s, actor, "incident", "incident", data, None, options)

    def order(self, actor: Actor, item_key: str, title: str | None,
              fields: dict[str, Any] | None) -> TicketInfo:
        """Order a catalog item; its form is validated against the item's schema."""
        _require_reporter(actor)
        with self.db.write() as s:
            item = s.get(CatalogItem, item_key) if isinstance(item_key, str) else None
            if item is None or not item.active:
                raise ValidationFailed("Unknown catalog item.", {"item": "Choose an item "
                                       "from the catalog."})
            options = directory.form_options(s)
            schema = forms.with_options(json.loads(item.form), options)
            try:
                forms.validate(schema, fields if fields is not None else {})
            except ValidationFailed as err:
                raise ValidationFailed(err.message, {f"fields.{k}": v
                                                     for k, v in err.errors.items()}) from err
            title = (title or "").strip() or item.name
            _raise_if(_text_errors({"title": title, "description": ""}))
            data = {
                "title": title, "description": "", "service": None, "channel": "portal",
                "item": item.key, "fields": deepcopy(fields or {}),
                "auto_accept": item.auto_accept, "needs_approval": item.needs_approval,
                "fulfilment_group": item.fulfilment_group, "auto_fulfil": item.auto_fulfil,
                "priority": "P4", "impact": "low", "urgency": "medium",
            }
            return self._start(s, actor, "request", "service_request", data, item.key, options)

    def _start(self, s: Session, actor: Actor, kind: str, key: str, data: dict[str, Any],
               item: str | None, options: directory.FormOptions | None = None) -> TicketInfo:
        definition_row = deploy.current_definition(s, key)
        if definition_row is None:
            raise NotFound(f"process {key!r} is not deployed; run 'guichet deploy'")
        definition = self.definitions.get(s, definition_row.id)
        now = self.clock()
        ticket = Ticket(
            number=tickets.next_number(s, kind), kind=kind, title=data["title"],
            description=data["description"], status="new", requester_id=_user_id(s, actor),
            service_key=data.get("service"), item_key=item, channel=data["channel"],
            fingerprint=data.get("fingerprint"), created_at=now, updated_at=now,
            definition_id=definition.id, process_key=definition.key,
            process_version=definition.version,
        )
        s.add(ticket)
        s.flush()
        start_data = {
            **data, "requester": actor.username, "ticket": ticket.number,
            "assignee_hint": None, "reopen_count": 0, "escalation_count": 0,
            "reported_at": now.isoformat(),
            "resolved_by": None, "resolved_group": None,
        }
        workflow = tickets.new_workflow(definition, self.script_engine)
        step = tickets.Step(ticket, definition, workflow, now)
        step.event("ticket_created", actor.username, {
            "kind": kind, "title": ticket.title, "description": ticket.description,
            "service": data.get("service"), "item": item, "fields": data.get("fields"),
            "channel": data["channel"],
        })
        with outbox.collecting() as requested:
            trace = runtime.start(workflow, start_data)
        step.events[-1].data["path"] = trace.path
        tickets.save(s, step, actor.username, requested)
        return self._ticket_info(s, ticket, actor, step.open_rows, step.state, options)

    def tickets(self, actor: Actor, kind: str | None = None, status: str | None = None,
                q: str | None = None, page: int = 1, per_page: int = 25,
                priority: str | None = None, service: str | None = None) -> Page[TicketInfo]:
        """Tickets the actor may see, newest first, filtered and paginated in SQL.

        One statement: the page with its requester and assignee names, and the total
        (counted again apart only for a page past the end).
        """
        page, per_page = _paging(page, per_page)
        with self.db.read() as s:
            user_id = _user_id(s, actor)
            filters, values = queries.ticket_filters(status, priority, service, q, kind)
            statement, count = queries.ticket_list_statements(
                actor.roles, user_id is not None, filters)
            params = {"p_user": user_id, **values,
                      **queries.paging((page - 1) * per_page, per_page)}
            rows = s.execute(statement, params).all()
            items = []
            for t, requester_name, assignee_name, _ in rows:
                names = {t.requester_id: requester_name}
                if t.assignee_id is not None:
                    names[t.assignee_id] = assignee_name
                items.append(_ticket_summary(t, names))
            return Page(items, _total(s, rows, count, params, page), page, per_page)

    def ticket(self, actor: Actor, number: str) -> TicketInfo:
        with self.db.read() as s:
            return self._ticket_info(s, self._visible_ticket(s, actor, number), actor)

    def history(self, actor: Actor, number: str) -> list[AuditEventInfo]:
        """The ticket's audit events, oldest first."""
        with self.db.read() as s:
            ticket = self._visible_ticket(s, actor, number)
            query = select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)
            if not access.sees_all_tickets(actor):
                query = query.where(AuditEvent.action.not_in(access.STAFF_ONLY_EVENTS))
            return [_event_info(r) for r in s.scalars(query.order_by(AuditEvent.seq)).all()]

    # -- tasks ------------------------------------------------------------------------

    def tasks(self, actor: Actor, page: int = 1, per_page: int = 25, queue: str | None = None,
              status: str | None = None, priority: str | None = None,
              service: str | None = None, q: str | None = None) -> Page[TaskInfo]:
        """Ready user tasks the actor may act on, oldest first.

        ``queue``: ``mine`` (claimed by the actor), ``group`` (the actor's groups),
        ``unassigned`` (nobody claimed it), or None for all of them. One statement reads
        the page (tasks, tickets, assignees) and the total; the forms' options may take
        one more.
        """
        page, per_page = _paging(page, per_page)
        with self.db.read() as s:
            user_id = _user_id(s, actor)
            filters, values = queries.ticket_filters(status, priority, service, q)
            statements = queries.inbox_statements(actor.roles, actor.groups,
                                                  user_id is not None, queue, filters)
            if statements is None:
                return Page([], 0, page, per_page)
            statement, count = statements
            params = {"p_user": user_id, **values,
                      **queries.paging((page - 1) * per_page, per_page)}
            rows = self.db.rows(s, statement, params)
            options, memo = directory.form_options(s), {}
            items = [TaskInfo(
                id=id_, name=name, title=title, ticket=number, group=group, assignee=assignee,
                form=self._form(s, definition_id, name, options, memo), due_at=due_at,
                created_at=created_at, for_requester=for_requester, ticket_title=ticket_title,
                priority=priority, status=state, ticket_status=ticket_status, service=service)
                for (id_, name, title, group, _, due_at, created_at, for_requester, state, number,
                     ticket_title, priority, ticket_status, service, definition_id, assignee, _)
                in rows]  # in the order of queries.INBOX_COLUMNS, then assignee and total
            return Page(items, _total(s, rows, count, params, page), page, per_page)

    def queue_counts(self, actor: Actor) -> dict[str, int]:
        """How many ready tasks wait in each of the actor's queues (one statement)."""
        queues = ("mine", "group", "unassigned", None)
        with self.db.read() as s:
            user_id = _user_id(s, actor)
            statement = queries.queue_counts_statement(actor.roles, actor.groups,
                                                       user_id is not None, queues)
            row = s.execute(statement, {"p_user": user_id}).one()
            return {queue or "all": int(value) for queue, value in zip(queues, row, strict=True)}

    def task(self, actor: Actor, task_id: str) -> TaskInfo:
        with self.db.read() as s:
            task, ticket = self._task_and_ticket(s, actor, task_id)
            names = _usernames(s, {task.assignee_id})
            return self._task_info(s, task, ticket, names, directory.form_options(s))

    def claim(self, actor: Actor, task_id: str) -> TaskInfo:
        """Take a group task: colleagues see it is yours until you release it."""
        return self._assign(actor, task_id, claim=True)

    def release(self, actor: Actor, task_id: str) -> TaskInfo:
        return self._assign(actor, task_id, claim=False)

    def _assign(self, actor: Actor, task_id: str, claim: bool) -> TaskInfo:
        with self._writing() as s:
            task, ticket, _, _ = self._locked_task(s, actor, task_id)
            if task.for_requester:
                raise Conflict("tasks of the requester cannot be claimed")
            user_id = _user_id(s, actor)
            if claim and task.assignee_id not in (None, user_id):
                owner = _usernames(s, {task.assignee_id})[task.assignee_id]
                raise Conflict(f"already claimed by {owner}")
            if not claim and task.assignee_id not in (None, user_id) and "admin" not in actor.roles:
                raise Forbidden("only the agent who claimed this task can release it")
            task.assignee_id = user_id if claim else None
            ticket.assignee_id = task.assignee_id
            ticket.updated_at = self.clock()
            definition = self.definitions.get(s, ticket.definition_id)
            batch = Batch(s)
            batch.put(task)
            batch.put(ticket)
            audit.write(batch, [audit.Event(
                action="task_claimed" if claim else "task_released", actor=actor.username,
                at=self.clock(), data={}, ticket_id=ticket.id, ticket_number=ticket.number,
                task_id=task.id, task_name=task.name, process_key=definition.key,
                process_version=definition.version)])
            names = _usernames(s, {task.assignee_id})
            return self._task_info(s, task, ticket, names, directory.form_options(s))

    def complete(self, actor: Actor, task_id: str, data: dict[str, Any]) -> TicketInfo:
        """Validate the form, complete the task and run the process to its next wait state.

        One transaction: a failure anywhere leaves the ticket as it was. Two agents
        completing the same task: one wins, the other gets ``Conflict``.
        """
        try:
            return self._complete(actor, task_id, data)
        except ProcessError as err:
            self._record_failure(task_id, actor, data, err)
            raise

    def _complete(self, actor: Actor, task_id: str, data: dict[str, Any]) -> TicketInfo:
        with self._writing() as s:
            task, ticket, state, open_rows = self._locked_task(s, actor, task_id,
                                                               with_state=True)
            user_id = _user_id(s, actor)
            if task.assignee_id not in (None, user_id):
                claimed_by = self._usernames(s, {task.assignee_id})[task.assignee_id]
                raise Conflict(f"this task is claimed by {claimed_by}; ask them to release it")
            definition = self.definitions.get(s, ticket.definition_id)
            options = directory.form_options(s)
            entered = forms.validate(forms.with_options(definition.form(task.name), options), data)
            now = self.clock()
            step = tickets.load_step(ticket, state, definition, self.script_engine, now,
                                     open_rows)
            workflow = step.workflow
            before = runtime.variables(workflow)
            with outbox.collecting() as requested:
                trace = runtime.complete(workflow, task_id, entered, actor.username,
                                         task.group_key)
            task.state, task.completed_at, task.completed_by_id = "completed", now, user_id
            if not task.for_requester and ticket.responded_at is None:
                ticket.responded_at = now  # the first answer of the desk: response target
            step.event("task_completed", actor.username, {
                "entered": deepcopy(entered), "path": trace.path,
                "changed": runtime.changed(before, runtime.variables(workflow)),
            }, task)
            tickets.save(s, step, actor.username, requested)
            return self._ticket_info(s, ticket, actor, step.open_rows, step.state, options)

    # -- timers, failures and the worker ------------------------------------------------

    def fire_due_timers(self, limit: int = 100) -> WorkerRound:
        """Fire the timers due now, one ticket per transaction.

        A ticket whose step fails is rolled back, its failure recorded for administrators
        and its timers retried later with a back-off; the other tickets go on.
        """
        fired = failed = 0
        for _ in range(limit):
            now = self.clock()
            with self._writing() as s:
                due = timers.due_tickets(s, now, 1)
                if not due:
                    break
                try:
                    with s.begin_nested():
                        fired += self._fire(s, due[0], now)
                    self._close_failures(s, due[0], "timer", now)  # it worked this time
                except Exception as err:  # whatever it is, it must not stop the worker
                    attempts = timers.postpone(s, due[0], now, _error_text(err))
                    self._failure_row(s, due[0], None, "timer", "system", {}, err, now, attempts)
                    failed += 1
        return WorkerRound(fired=fired, failed=failed)

    def _fire(self, s: Session, ticket_id: int, now) -> bool:
        """Fire the ticket's due timers (its row locked); False when none was due after all:
        another worker fired them between the query that found the ticket and its lock
        (that query's join still saw the timer rows the other worker replaced)."""
        ticket = s.get(Ticket, ticket_id, populate_existing=True)
        definition = self.definitions.get(s, ticket.definition_id)
        step = tickets.load_step(ticket, s.get(TicketState, ticket_id), definition,
                                 self.script_engine, now, tickets.open_tasks(s, ticket.id))
        due = [p for p in step.timers_before if p.fire_at <= now]
        if not due and not timers.rows_due(s, ticket_id, now):
            return False
        step.timers_before = None  # rewrite the rows whatever happens: they brought us here
        with outbox.collecting() as requested:
            path = runtime.fire_timers(step.workflow).path
        for timer in due:
            step.event("timer_fired", "system",
                       {"timer": timer.name, "due": timer.fire_at.isoformat(), "path": path})
        tickets.save(s, step, "system", requested)
        return bool(due)

    def deliver_notifications(self, settings: mailer.SmtpSettings | None,
                              limit: int = 100) -> WorkerRound:
        """Send the e-mails of the outbox that are due (nothing when SMTP is not set up)."""
        if settings is None:
            return WorkerRound()
        with self._writing() as s:
            sent, failed = mailer.deliver_due(s, settings, self.clock(), limit)
        return WorkerRound(sent=sent, undelivered=failed)

    def _record_failure(self, task_id: str, actor: Actor, data: dict[str, Any],
                        err: ProcessError) -> None:
        with self.db.write() as s:
            task = s.get(Task, task_id) if isinstance(task_id, str) else None
            if task is not None:
                self._failure_row(s, task.ticket_id, task_id, "complete", actor.username, data,
                                  err, self.clock())

    def _failure_row(self, s: Session, ticket_id: int, task_id: str | None, operation: str,
                     actor: str, data: dict[str, Any], err: Exception, now,
                     attempts: int = 1) -> None:
        message, element = _error_text(err), getattr(err, "element", None)
        open_one = s.scalars(
            select(StepFailure).where(StepFailure.ticket_id == ticket_id,
                                      StepFailure.operation == operation,
                                      StepFailure.task_id == task_id,
                                      StepFailure.resolved_at.is_(None))).first()
        if open_one is not None:  # the same failure again: one row, counted
            open_one.attempts += 1
            open_one.error, open_one.at, open_one.element = message[:4000], now, element
            return
        ticket = s.get(Ticket, ticket_id)
        s.add(StepFailure(ticket_id=ticket_id, task_id=task_id, operation=operation,
                          actor=actor, data=json.dumps(data, default=str), element=element,
                          error=message[:4000], at=now, attempts=max(1, attempts)))
        audit.append(s, [audit.Event(
            action="step_failed", actor=actor, at=now, data={"error": message[:500],
                                                            "element": element},
            ticket_id=ticket_id, ticket_number=ticket.number, task_id=task_id,
            process_key=ticket.process_key, process_version=ticket.process_version)])

    @staticmethod
    def _close_failures(s: Session, ticket_id: int, operation: str, now) -> None:
        for failure in s.scalars(select(StepFailure).where(
                StepFailure.ticket_id == ticket_id, StepFailure.operation == operation,
                StepFailure.resolved_at.is_(None))):
            failure.resolved_at, failure.resolved_by = now, "system"

    def failures(self, actor: Actor, open_only: bool = True) -> list[FailureInfo]:
        """Steps the engine could not finish, newest first (administrators only)."""
        _require_admin(actor)
        with self.db.read() as s:
            query = (select(StepFailure, Ticket.number)
                     .join(Ticket, Ticket.id == StepFailure.ticket_id)
                     .order_by(StepFailure.id.desc()).limit(200))
            if open_only:
                query = query.where(StepFailure.resolved_at.is_(None))
            return [_failure_info(f, number) for f, number in s.execute(query)]

    def retry_failure(self, actor: Actor, failure_id: int) -> FailureInfo:
        """Retry a failed step now: a timer fires again, a completion is replayed as its
        original actor. Raises the new error (and keeps the failure open) if it fails again.
        """
        _require_admin(actor)
        with self.db.read() as s:
            known = isinstance(failure_id, int) and 0 < failure_id < 2**31  # an INTEGER id
            failure = s.get(StepFailure, failure_id) if known else None
            if failure is None or failure.resolved_at is not None:
                raise NotFound(f"no open failure {failure_id}")
            operation, task_id, who = failure.operation, failure.task_id, failure.actor
            data, ticket_id = json.loads(failure.data), failure.ticket_id
        if operation == "timer":
            try:
                with self._writing() as s:
                    s.get(Ticket, ticket_id, with_for_update=True)
                    self._fire(s, ticket_id, self.clock())
            except Exception as err:
                with self.db.write() as s:
                    self._failure_row(s, ticket_id, None, "timer", "system", {}, err,
                                      self.clock())
                raise
        else:
            original = self.actor(who)
            if original is None:
                raise Conflict(f"user {who} no longer exists; the task must be completed anew")
            with self.db.read() as s:
                task = s.get(Task, task_id)
                still_ready = task is not None and task.state == "ready"
            if not still_ready:  # someone completed it since: nothing left to retry
                with self.db.write() as s:
                    self._close_failures(s, ticket_id, "complete", self.clock())
                raise Conflict("the task was completed since; this failure is closed")
            self.complete(original, task_id, data)
        with self.db.write() as s:
            failure = s.get(StepFailure, failure_id)
            failure.resolved_at, failure.resolved_by = self.clock(), actor.username
            ticket = s.get(Ticket, failure.ticket_id)
            audit.append(s, [audit.Event(
                action="failure_retried", actor=actor.username, at=self.clock(),
                data={"failure": failure_id, "operation": operation}, ticket_id=ticket.id,
                ticket_number=ticket.number, task_id=task_id, process_key=ticket.process_key,
                process_version=ticket.process_version)])
            return _failure_info(failure, ticket.number)

    # -- notifications ------------------------------------------------------------------

    def notifications(self, actor: Actor, page: int = 1, per_page: int = 25,
                      unread: bool = False) -> Page[NotificationInfo]:
        """The caller's notifications, newest first."""
        page, per_page = _paging(page, per_page)
        with self.db.read() as s:
            user_id = _user_id(s, actor)
            where = [Notification.user_id == user_id]
            if unread:
                where.append(Notification.read_at.is_(None))
            total = s.scalar(select(func.count()).select_from(Notification).where(*where))
            rows = s.execute(
                select(Notification, Ticket.number).outerjoin(
                    Ticket, Ticket.id == Notification.ticket_id)
                .where(*where).order_by(Notification.id.desc())
                .offset((page - 1) * per_page).limit(per_page)).all()
            return Page([_notification_info(n, number) for n, number in rows], total or 0,
                        page, per_page)

    def unread_count(self, actor: Actor) -> int:
        with self.db.read() as s:
            return s.scalar(select(func.count()).select_from(Notification).where(
                Notification.user_id == _user_id(s, actor),
                Notification.read_at.is_(None))) or 0

    def mark_read(self, actor: Actor, ids: Iterable[int] | None = None) -> int:
        """Mark the caller's notifications read (all of them when ``ids`` is None)."""
        with self.db.write() as s:
            rows = s.scalars(select(Notification).where(
                Notification.user_id == _user_id(s, actor), Notification.read_at.is_(None)))
            wanted = None if ids is None else {int(i) for i in ids}
            count = 0
            for row in rows:
                if wanted is None or row.id in wanted:
                    row.read_at, count = self.clock(), count + 1
            return count

    def outbox(self, actor: Actor, page: int = 1, per_page: int = 50,
               state: str | None = None) -> Page[NotificationInfo]:
        """Every notification with its delivery state (administrators and managers)."""
        if not (actor.has("admin") or actor.has("manager")):
            raise Forbidden("only administrators and managers see the outbox")
        page, per_page = _paging(page, per_page)
        with self.db.read() as s:
            where = [Notification.state == state] if state else []
            total = s.scalar(select(func.count()).select_from(Notification).where(*where))
            rows = s.execute(
                select(Notification, Ticket.number, User.username)
                .outerjoin(Ticket, Ticket.id == Notification.ticket_id)
                .join(User, User.id == Notification.user_id)
                .where(*where).order_by(Notification.id.desc())
                .offset((page - 1) * per_page).limit(per_page)).all()
            return Page([_notification_info(n, number, user) for n, number, user in rows],
                        total or 0, page, per_page)

    # -- monitoring and service states --------------------------------------------------

    def receive_event(self, actor: Actor, source: str, service: str, fingerprint: str,
                      summary: str, severity: str) -> tuple[TicketInfo, bool]:
        """A monitoring event: open an incident, or add to the open one with the same
        fingerprint. Returns the incident and whether it is new."""
        if not actor.has("monitor"):
            raise Forbidden("only monitoring accounts may post events")
        values = {"source": source, "service": service, "fingerprint": fingerprint,
                  "summary": summary, "severity": severity}
        errors = {k: "required" for k, v in values.items() if not isinstance(v, str) or not v}
        if not errors and severity not in monitoring.SEVERITIES:
            errors["severity"] = f"must be one of {', '.join(monitoring.SEVERITIES)}"
        if not errors and len(summary) > 200:
            errors["summary"] = "at most 200 characters"
        _raise_if(errors)
        with self._writing() as s:
            svc = s.get(Service, service)
            if svc is None:
                raise ValidationFailed("unknown service", {"service": f"no service {service!r}"})
            now = self.clock()
            ticket = monitoring.open_incident_for(s, fingerprint[:200])
            if ticket is not None:
                audit.append(s, [audit.Event(
                    action="event_received", actor=actor.username, at=now,
                    data={**values, "repeat": True}, ticket_id=ticket.id,
                    ticket_number=ticket.number, process_key=ticket.process_key,
                    process_version=ticket.process_version)])
                ticket.updated_at = now
                created = False
            else:
                impact, urgency = monitoring.IMPACT_URGENCY[severity]
                info = self._start(s, actor, "incident", "incident", {
                    "title": summary, "description": f"{severity} event from {source} on "
                    f"{service}: {summary}\nfingerprint: {fingerprint}",
                    "service": service, "channel": "monitoring", "impact": impact,
                    "urgency": urgency, "severity": severity, "fingerprint": fingerprint[:200],
                }, item=None)
                ticket = s.scalars(select(Ticket).where(Ticket.number == info.number)).one()
                created = True
            if monitoring.set_by_incident(s, svc, severity, ticket, now):
                audit.append(s, [audit.Event(
                    action="service_state_changed", actor="system", at=now,
                    data={"service": service, "state": svc.state}, ticket_id=ticket.id,
                    ticket_number=ticket.number)])
            return self._ticket_info(s, ticket, actor), created

    def set_service_state(self, actor: Actor, service: str, state: str,
                          reason: str = "") -> ServiceInfo:
        """Set a service's state by hand (e.g. planned maintenance): agents and managers."""
        if not actor.works_desk:
            raise Forbidden("only agents and managers may set a service's state")
        if state not in monitoring.STATES:
            raise ValidationFailed("invalid state", {
                "state": f"must be one of {', '.join(monitoring.STATES)}"})
        if len(reason or "") > 500:
            raise ValidationFailed("reason too long", {"reason": "at most 500 characters"})
        with self.db.write() as s:
            svc = s.get(Service, service)
            if svc is None:
                raise NotFound(f"no service {service!r}")
            now = self.clock()
            svc.state = state  # recorded as a change by hand even when unchanged
            s.add(ServiceStateChange(service_key=svc.key, state=state, reason=reason or "",
                                     ticket_id=None, actor=actor.username, at=now))
            audit.append(s, [audit.Event(
                action="service_state_changed", actor=actor.username, at=now,
                data={"service": service, "state": state, "reason": reason or ""})])
            return ServiceInfo(svc.key, svc.name, svc.state)

    def status_board(self, actor: Actor) -> list[ServiceStatus]:
        """Each service's state, why, its open incidents, and when service should be back."""
        with self.db.read() as s:
            services = list(s.scalars(select(Service).order_by(Service.name)))
            troubled = [svc.key for svc in services if svc.state != "nominal"]
            # Incidents that affect a service: from monitoring, major ones, and every open
            # incident of a service that is not nominal (open statuses are indexed).
            open_incidents = list(s.scalars(
                select(Ticket).where(
                    Ticket.status.in_(monitoring.OPEN), Ticket.kind == "incident",
                    Ticket.service_key.is_not(None),
                    or_(Ticket.fingerprint.is_not(None), Ticket.priority.in_(("P1", "P2")),
                        Ticket.service_key.in_(troubled)))
                .order_by(Ticket.priority, Ticket.id).limit(500)))
            board = []
            for svc in services:
                last = s.scalars(select(ServiceStateChange)
                                 .where(ServiceStateChange.service_key == svc.key)
                                 .order_by(ServiceStateChange.id.desc()).limit(1)).first()
                mine = [t for t in open_incidents if t.service_key == svc.key]
                dues = [t.due_at for t in mine if t.due_at]
                board.append(ServiceStatus(
                    key=svc.key, name=svc.name, state=svc.state,
                    since=last.at if last else None, reason=last.reason if last else "",
                    incidents=[_ticket_summary(t, {}) for t in mine],
                    restore_at=max(dues) if dues and svc.state != "nominal" else None))
            return board

    # -- reports ----------------------------------------------------------------------

    def report_kpis(self, actor: Actor, filters: ReportFilters) -> KpiSummary:
        """The headline KPIs of a period (managers and auditors); SQL aggregates only."""
        reports.require_reader(actor)
        with self.db.read() as s:
            now = self.clock()
            return reports.kpis(s, reports.resolve(s, filters, now), now)

    def report(self, actor: Actor, filters: ReportFilters,
               charts: Iterable[str] | None = None) -> Report:
        """The KPIs and the numbers of each chart of /reports (or only of ``charts``)."""
        reports.require_reader(actor)
        with self.db.read() as s:
            now = self.clock()
            return reports.report(s, reports.resolve(s, filters, now), now, charts)

    # -- conversation -----------------------------------------------------------------

    def comments(self, actor: Actor, number: str) -> list[CommentInfo]:
        """The ticket's comments, oldest first; work notes only for staff."""
        with self.db.read() as s:
            ticket = self._visible_ticket(s, actor, number)
            query = select(Comment).where(Comment.ticket_id == ticket.id)
            if not access.sees_all_tickets(actor):
                query = query.where(Comment.internal.is_(False))
            rows = s.scalars(query.order_by(Comment.id)).all()
            users = {u.id: u for u in s.scalars(
                select(User).where(User.id.in_({r.author_id for r in rows})))}
            return [_comment_info(r, ticket, users[r.author_id]) for r in rows]

    def add_comment(self, actor: Actor, number: str, body: str,
                    internal: bool = False) -> CommentInfo:
        """Add a public comment, or (agents) an internal work note the requester never sees."""
        if internal and not access.may_write_notes(actor):
            raise Forbidden("only agents can write work notes")
        text = body.strip() if isinstance(body, str) else ""
        if not text or len(text) > 10000:
            raise ValidationFailed("Write a comment first.", {
                "body": "This field is required." if not text else "At most 10000 characters."})
        with self.db.write() as s:
            ticket = self._visible_ticket(s, actor, number)
            if not (access.sees_all_tickets(actor) or "requester" in actor.roles):
                raise Forbidden("your role cannot comment on tickets")
            user = directory.user_by_name(s, actor.username)
            comment = Comment(ticket_id=ticket.id, author_id=user.id, body=text,
                              internal=bool(internal), created_at=self.clock())
            s.add(comment)
            ticket.updated_at = self.clock()
            s.flush()
            audit.append(s, [audit.Event(
                action="work_note_added" if internal else "comment_added", actor=actor.username,
                at=self.clock(), data={"comment": comment.id, "body": text},
                ticket_id=ticket.id, ticket_number=ticket.number,
                process_key=ticket.process_key, process_version=ticket.process_version)])
            return _comment_info(comment, ticket, user)

    def progress(self, actor: Actor, number: str) -> list[ProgressStep]:
        """Steps done, the current ones and who holds them, and what may come next."""
        with self.db.read() as s:
            ticket = self._visible_ticket(s, actor, number)
            definition = self.definitions.get(s, ticket.definition_id)
            done = s.execute(
                select(AuditEvent.task_name, AuditEvent.at, User.name)
                .join(User, User.username == AuditEvent.actor, isouter=True)
                .where(AuditEvent.ticket_id == ticket.id, AuditEvent.action == "task_completed")
                .order_by(AuditEvent.seq)).all()
            steps = [ProgressStep(definition.element(name).get("name") or name, "done", who, at)
                     for name, at, who in done]
            current = s.scalars(select(Task).where(Task.ticket_id == ticket.id,
                                                   Task.state == "ready")
                                .order_by(Task.created_at)).all()
            names = dict(s.execute(select(User.id, User.name).where(
                User.id.in_({t.assignee_id for t in current if t.assignee_id}))).all())
            groups = {g.key: g.name for g in directory.groups(s)}
            for task in current:
                who = ("you" if ticket.requester_id == _user_id(s, actor) else "the requester") \
                    if task.for_requester else names.get(task.assignee_id) or \
                    groups.get(task.group_key, task.group_key)
                steps.append(ProgressStep(task.title, "current", who, task.created_at))
            for bpmn_id in next_user_tasks(definition.elements, [t.name for t in current]):
                steps.append(ProgressStep(definition.element(bpmn_id).get("name") or bpmn_id,
                                          "next", None, None))
            return steps

    # -- audit --------------------------------------------------------------------------

    def audit_events(self, actor: Actor, page: int = 1, per_page: int = 50,
                     **filters: Any) -> Page[AuditEventInfo]:
        """Search the trail (auditors and admins): newest first, paginated in SQL.

        Filters: ``ticket``, ``actor_name``, ``action``, ``process``, ``version``,
        ``since``, ``until`` (aware datetimes).
        """
        page, per_page = _paging(page, per_page)
        with self.db.read() as s:
            where = queries.audit_conditions(actor, **filters)
            total = s.scalar(select(func.count()).select_from(AuditEvent).where(*where))
            rows = s.scalars(select(AuditEvent).where(*where).order_by(AuditEvent.seq.desc())
                             .offset((page - 1) * per_page).limit(per_page)).all()
            return Page([_event_info(r) for r in rows], total, page, per_page)

    def audit_export(self, actor: Actor, batch: int = 2000,
                     **filters: Any) -> Iterator[AuditEventInfo]:
        """Every event matching the filters, oldest first, read in batches."""
        where = queries.audit_conditions(actor, **filters)
        last = 0
        while True:
            with self.db.read() as s:
                rows = s.scalars(select(AuditEvent).where(*where, AuditEvent.seq > last)
                                 .order_by(AuditEvent.seq).limit(batch)).all()
                infos = [_event_info(r) for r in rows]
            if not infos:
                return
            yield from infos
            last = infos[-1].seq

    def audit_actions(self) -> list[str]:
        """Every action the trail can hold (for search filters)."""
        return list(audit.ACTIONS)

    def trace(self, actor: Actor, number: str) -> TraceInfo:
        """The ticket's process version and the path it took through it."""
        with self.db.read() as s:
            ticket = self._visible_ticket(s, actor, number)
            query = select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)
            if not access.sees_all_tickets(actor):
                query = query.where(AuditEvent.action.not_in(access.STAFF_ONLY_EVENTS))
            events = [_event_info(r) for r in s.scalars(query.order_by(AuditEvent.seq))]
            counts, by_element = trace.visits(events)
            waiting = [t.name for t in tickets.open_tasks(s, ticket.id)]
            xml = s.scalars(select(ProcessVersion.xml).where(
                ProcessVersion.key == ticket.process_key,
                ProcessVersion.version == ticket.process_version)).one()
            return TraceInfo(ticket=ticket.number,
                             process=ProcessRef(ticket.process_key, ticket.process_version),
                             xml=xml, visits=counts, waiting=waiting, events=events,
                             element_events=by_element)

    def audit_head(self) -> tuple[int, str]:
        """(last seq, its hash): publish it elsewhere to anchor the chain."""
        with self.db.read() as s:
            head = s.get(AuditHead, 1)
            return head.seq, head.hash

    def verify_audit(self) -> tuple[int, int | None, str | None]:
        """(events, first bad seq or None, reason) for the whole chain."""
        with self.db.read() as s:
            return audit.verify(s)

    # -- helpers ----------------------------------------------------------------------

    def _writing(self):
        return _ConflictOnStale(self.db.write())

    def _visible_ticket(self, s: Session, actor: Actor, number: str) -> Ticket:
        ticket = s.scalars(select(Ticket).where(Ticket.number == number)).first()
        if ticket is None or not access.may_see(actor, ticket, _user_id(s, actor)):
            raise NotFound(f"ticket {number} not found")
        return ticket

    def _task_and_ticket(self, s: Session, actor: Actor, task_id: str) -> tuple[Task, Ticket]:
        task = s.get(Task, task_id) if isinstance(task_id, str) else None
        ticket = s.get(Ticket, task.ticket_id) if task else None
        if task is None or not access.may_see(actor, ticket, _user_id(s, actor)):
            raise NotFound("task not found")
        return task, ticket

    def _locked_task(self, s: Session, actor: Actor, task_id: str, with_state: bool = False
                     ) -> tuple[Task, Ticket, TicketState | None, list[Task]]:
        """Lock the ticket row, then read its ready tasks (and its state when asked); the
        rows come detached (``tickets.lock_of_task``)."""
        ticket, state, open_rows = tickets.lock_of_task(s, task_id, with_state)
        user_id = _user_id(s, actor)
        if ticket is None or not access.may_see(actor, ticket, user_id):
            raise NotFound("task not found")
        task = next((row for row in open_rows if row.id == task_id), None)
        if task is None:
            raise Conflict("this task is no longer ready: someone else completed it")
        if not access.may_work_on(actor, task, ticket, user_id):
            who = "the ticket's requester" if task.for_requester else f"group {task.group_key}"
            raise Forbidden(f"this task belongs to {who}")
        return task, ticket, state, open_rows

    def _ticket_info(self, s: Session, ticket: Ticket, actor: Actor,
                     open_tasks: list[Task] | None = None, state: TicketState | None = None,
                     options: directory.FormOptions | None = None) -> TicketInfo:
        """The ticket as ``actor`` may see it; pass what a step already holds to skip reads."""
        if open_tasks is None:
            open_tasks = tickets.open_tasks(s, ticket.id)
        names = self._usernames(s, {ticket.requester_id, ticket.assignee_id}
                                | {t.assignee_id for t in open_tasks})
        options, memo = options or directory.form_options(s), {}
        state = state or s.get(TicketState, ticket.id)
        variables = json.loads(state.variables) if state else {}
        if not access.sees_all_tickets(actor):
            variables = {k: v for k, v in variables.items() if k in REQUESTER_VARIABLES}
        return replace(
            _ticket_summary(ticket, names),
            tasks=[self._task_info(s, t, ticket, names, options, memo) for t in open_tasks],
            data=variables,
        )

    def _form(self, s: Session, definition_id: int, name: str, options: Mapping,
              memo: dict | None) -> dict[str, Any]:
        """The task's form with live options, filled once per listing (``memo``)."""
        key = (definition_id, name)
        if memo is not None and key in memo:
            return memo[key]
        form = forms.with_options(self.definitions.get(s, definition_id).form(name), options)
        if memo is not None:
            memo[key] = form
        return form

    def _usernames(self, s: Session, ids: set[int | None]) -> dict[int, str]:
        """Usernames by user id, read once per desk: a username is never changed."""
        missing = {i for i in ids if i is not None and i not in self._names}
        if missing:
            self._names.update(_usernames(s, missing))
        return {i: self._names[i] for i in ids if i in self._names}

    def _task_info(self, s: Session, task: Task, ticket: Ticket, names: dict[int, str],
                   options: Mapping, memo: dict | None = None) -> TaskInfo:
        """A task as the API shows it; ``memo`` shares filled-in forms across a listing."""
        return TaskInfo(
            id=task.id, name=task.name, title=task.title, ticket=ticket.number,
            group=task.group_key, assignee=names.get(task.assignee_id),
            form=self._form(s, ticket.definition_id, task.name, options, memo),
            due_at=task.due_at,
            created_at=task.created_at, for_requester=task.for_requester,
            ticket_title=ticket.title, priority=ticket.priority, status=task.state,
            ticket_status=ticket.status, service=ticket.service_key,
        )


STALE = "the ticket changed while you worked on it; reload and retry"


class _ConflictOnStale:
    """Turn an optimistic-lock failure (in the unit or at commit) into a clean ``Conflict``."""

    def __init__(self, cm) -> None:
        self.cm = cm

    def __enter__(self) -> Session:
        return self.cm.__enter__()

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            suppressed = self.cm.__exit__(exc_type, exc, tb)
        except StaleDataError as err:  # at commit
            raise Conflict(STALE) from err
        if isinstance(exc, StaleDataError):  # in the unit (rolled back by now)
            raise Conflict(STALE) from exc
        return suppressed


def uploads_from_folder(folder: Path) -> list[deploy.Upload]:
    form_files = {}
    for path in sorted((folder / "forms").glob("*.json")):
        try:
            form_files[path.name] = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            form_files[path.name] = f"not valid JSON: {err}"
    return [deploy.Upload(str(p), p.read_bytes(), form_files)
            for p in sorted([*folder.glob("*.dmn"), *folder.glob("*.bpmn")])]


def _upload(s: Session, key: str, xml: str | bytes,
            forms: dict[str, Any] | None) -> deploy.Upload:
    current = deploy.current_version(s, key)
    known = json.loads(current.forms) if current else {}
    return deploy.Upload(f"{key}.xml", xml, {**known, **(forms or {})})


def _version_row(s: Session, key: str, version: int) -> ProcessVersion:
    if not isinstance(version, int) or not 0 < version < 2**31:  # no database integer is larger
        raise NotFound(f"{key} has no version {version}")
    row = s.scalars(select(ProcessVersion).where(ProcessVersion.key == key,
                                                 ProcessVersion.version == version)).first()
    if row is None:
        raise NotFound(f"{key} has no version {version}")
    return row


def _error_text(err: Exception) -> str:
    """What went wrong, for administrators: the engine's message, or the exception."""
    return getattr(err, "message", None) or f"{type(err).__name__}: {err}"


def _require_admin(actor: Actor) -> None:
    if not actor.has("admin"):
        raise Forbidden("only administrators see and retry failed steps")


def _failure_info(f: StepFailure, number: str) -> FailureInfo:
    return FailureInfo(
        id=f.id, ticket=number, task_id=f.task_id, operation=f.operation, actor=f.actor,
        element=f.element, error=f.error, at=f.at, attempts=f.attempts,
        resolved_at=f.resolved_at, resolved_by=f.resolved_by)


def _notification_info(n: Notification, number: str | None,
                       user: str | None = None) -> NotificationInfo:
    return NotificationInfo(
        id=n.id, kind=n.kind, subject=n.subject, body=n.body, ticket=number,
        created_at=n.created_at, state=n.state, read=n.read_at is not None,
        attempts=n.attempts, last_error=n.last_error, user=user)


def _require_reporter(actor: Actor) -> None:
    if not access.may_report(actor):
        raise Forbidden("your role cannot open tickets")


def _text_errors(values: dict[str, Any]) -> dict[str, str]:
    errors = {}
    for name, (low, high) in INCIDENT_FIELDS.items():
        value = values.get(name)
        if value is None and low == 0:
            continue
        if not isinstance(value, str):
            errors[name] = "Must be text."
        elif len(value.strip()) < low:
            errors[name] = "This field is required."
        elif len(value) > high:
            errors[name] = f"Must be at most {high} characters."
    return errors


def _comment_info(c: Comment, ticket: Ticket, author: User) -> CommentInfo:
    return CommentInfo(id=c.id, ticket=ticket.number, author=author.username,
                       author_name=author.name, body=c.body, internal=c.internal,
                       created_at=c.created_at)


def _raise_if(errors: dict[str, str]) -> None:
    if errors:
        raise ValidationFailed(f"Please correct these fields: {', '.join(sorted(errors))}.",
                               errors)


def _paging(page: Any, per_page: Any) -> tuple[int, int]:
    try:
        page, per_page = int(page), int(per_page)
    except (TypeError, ValueError) as err:
        raise ValidationFailed("page and per_page must be whole numbers",
                               {"page": "Must be a whole number."}) from err
    if not 1 <= page <= MAX_PAGE or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValidationFailed(f"page must be between 1 and {MAX_PAGE} and per_page between 1 "
                               "and 100", {"page": "Out of range."})
    return page, per_page


def _total(s: Session, rows: list, count, params: dict, page: int) -> int:
    """The total a page's rows carry in their last column; counted apart only when there
    are none (none on page 1: nothing matches)."""
    if rows:
        return int(rows[0][-1])
    return int(s.scalar(count, params) or 0) if page > 1 else 0


def _user_id(s: Session, actor: Actor) -> int | None:
    if actor.user_id is not None:
        return actor.user_id
    user = directory.user_by_name(s, actor.username)
    return user.id if user else None


def _usernames(s: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(s.execute(select(User.id, User.username).where(User.id.in_(wanted))).all())


def _ticket_summary(t: Ticket, names: dict[int, str]) -> TicketInfo:
    return TicketInfo(
        number=t.number, kind=t.kind, title=t.title, description=t.description, status=t.status,
        priority=t.priority, requester=names.get(t.requester_id, ""), service=t.service_key,
        item=t.item_key, group=t.group_key, assignee=names.get(t.assignee_id),
        channel=t.channel, created_at=t.created_at, updated_at=t.updated_at,
        resolved_at=t.resolved_at, closed_at=t.closed_at, response_due_at=t.response_due_at,
        due_at=t.due_at, process=ProcessRef(t.process_key, t.process_version),
        paused_at=t.paused_at,
    )


def _event_info(r: AuditEvent) -> AuditEventInfo:
    return AuditEventInfo(
        seq=r.seq, at=r.at, actor=r.actor, action=r.action, ticket=r.ticket_number,
        task=r.task_name, data=json.loads(r.data),
        process=ProcessRef(r.process_key, r.process_version) if r.process_key else None,
        hash=r.hash,
    )


def _version_info(r: ProcessVersion) -> ProcessVersionInfo:
    return ProcessVersionInfo(key=r.key, kind=r.kind, version=r.version, name=r.name,
                              sha256=r.sha256, deployed_at=r.deployed_at,
                              deployed_by=r.deployed_by)
