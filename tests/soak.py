"""The soak: a real ``python -m bot run`` under a steady load, Discord's faults and two kill -9s, then an accounting.

Several members use ``/imagine``, refine tiles (button, then the form) and re-roll grids at a steady pace,
and cancel some of their jobs with the Cancel button. Meanwhile every route a job's message goes through
(``PATCH /webhooks/…/messages/@original``, ``POST /channels/…/messages``, ``PATCH /channels/…/messages/…``)
answers now and then with a 429, 500, 502 or 503 (some of them aimed at the grid's upload itself), a
definitive 403 refuses a grid, the gateway is dropped once, and the bot process is killed with
SIGKILL twice at random moments and each time started again on the same database.

Every interaction sent is recorded with what Discord (the fake) saw of it: acknowledged (a deferred
response, type 5 for ``/imagine``, type 6 for a button or the form), refused privately (an ephemeral
message), or never answered — when the bot was dead, or killed before it could answer (Discord would show
the member "The application did not respond"). Once the last bot has settled every job in its store, each
job an accepted interaction created is put in exactly one box:

* **delivered** — exactly one message on Discord carries its grid (buttons ``sg:tile:<job>:N``);
* **duplicated** — more than one does (or one interaction made more than one job);
* **cancelled** — the store says cancelled and the job's message says so;
* **failed aloud** — the store says failed and the admin's log or the job's message says why;
* **lost** — none of these: the member was left without an answer.

``run_soak(plan, model, folder)`` returns a :class:`SoakReport`; the CI test (``tests/cogs/test_soak.py``)
runs a small plan, the benchmarks (``benchmarks/soak_bench.py``) the full one. A run is reproducible by
its seed: every choice (who does what, when, which faults, when the kills come) is drawn from it; what
the bot happens to be doing at those moments still depends on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import store_probe
from tests.conftest import TEST_TOKEN, config_text
from tests.fakediscord import FakeDiscord, FakeDiscordError, Injection, Interaction, Member, RequestDetail
from tests.polling import until

ROOT = Path(__file__).resolve().parents[1]
DEFERRED_MESSAGE, DEFERRED_UPDATE, MODAL = 5, 6, 9
"""Interaction callback types: an acknowledged /imagine, an acknowledged button or form, the refine form."""
ABANDONED = "the interaction could not be acknowledged"
"""The error the bot stores on a job whose interaction it could not acknowledge (``Engine.abandon``)."""

ROUTES: dict[str, tuple[str, str]] = {
    "interaction edit": ("PATCH", r"^/webhooks/\d+/[^/]+/messages/@original$"),
    "channel post": ("POST", r"^/channels/\d+/messages$"),
    "channel edit": ("PATCH", r"^/channels/\d+/messages/\d+$"),
}
"""Every route a job's message (its status, then its outcome) goes through."""
FAULTS = (429, 500, 502, 503)
COUNTS = (
    "sent", "sent_while_down", "refused", "unanswered", "accepted",
    "delivered", "cancelled", "failed_aloud", "lost", "duplicated", "inconsistent",
)  # fmt: skip
"""The headline figures: job-making interactions sent (while the bot was dead; refused privately; never
answered though the bot was up, i.e. killed before it could answer), accepted, and the box of each accepted
one's job. ``inconsistent``: one grid is out but the store does not say delivered."""
QUIET = 45.0
"""Seconds without a change in the store or a request to Discord after which unsettled jobs count as stuck."""


@dataclass(frozen=True)
class SoakPlan:
    """How big and how rough a soak is. Every choice in a run is drawn from ``seed``."""

    jobs: int = 120
    """Job-making interactions (``/imagine``, a refine form, a re-roll) sent while the bot is up."""
    members: int = 6
    seed: int = 1
    pace: float = 0.45
    """Mean seconds between two actions of the members (each drawn from 0.5-1.5× this)."""
    cancel_share: float = 0.08
    """Steps where a member cancels one of their jobs that shows a Cancel button (any, queued or running)."""
    regret_share: float = 0.1
    """/imagine commands their member cancels right after the Cancel button shows (0-1.5 s later)."""
    refine_share: float = 0.12
    reroll_share: float = 0.1
    long_share: float = 0.2
    """Jobs of 256² and 8-20 steps (the others: 64² or 96×64, 1-2 steps): a queue worth cancelling from."""
    kills: int = 2
    gateway_drops: int = 1
    faults: int | None = None
    """Injected 429/5xx answers (each to 1-2 requests); default: one per three jobs."""
    refusals: int = 1
    """Definitive 403s on a grid's upload (the job must fail aloud)."""
    tries_while_down: int = 3
    """``/imagine`` commands sent while the bot is dead, per kill (they cannot be answered)."""
    delivery_retry_for: float = 60.0
    torch_threads: int | None = 1
    """``OMP_NUM_THREADS`` of the bot: one leaves a core to the fake and the members (None: torch's default)."""
    start_within: float = 240.0
    settle_within: float = 300.0

    @property
    def fault_count(self) -> int:
        return self.jobs // 3 if self.faults is None else self.faults


CI = SoakPlan(jobs=30, members=4, pace=0.35, long_share=0.15, faults=12)
"""The size the test suite runs: about a minute on 2 cores, the kills and faults all there."""


@dataclass
class Sent:
    """One interaction a member sent, and what became of it."""

    kind: str
    """imagine | refine | reroll (they make jobs), cancel, form (the tile button that opens the refine form)."""
    member: Member
    at: float
    bot_up: bool
    key: str = ""
    """What finds its job in the store: the prompt (imagine), the suffix (refine), the parent job (reroll)."""
    parent_job: int | None = None
    ix: Interaction | None = None
    error: str | None = None
    skipped: bool = False
    """Never sent after all: the button was gone by the time the member clicked (its job had ended)."""

    @property
    def answer(self) -> str:
        """accepted | refused | form | unanswered | skipped."""
        if self.skipped:
            return "skipped (button gone)"
        if self.ix is None or not self.ix.responses:
            return "unanswered"
        kind = self.ix.responses[0].type
        if kind in (DEFERRED_MESSAGE, DEFERRED_UPDATE):
            return "accepted"
        if kind == MODAL:
            return "form"
        return "refused"

    @property
    def makes_a_job(self) -> bool:
        return self.kind in ("imagine", "refine", "reroll") and not self.skipped


@dataclass
class SoakReport:
    """What a soak saw. ``counts`` holds the headline figures; the rest says why."""

    seed: int
    plan: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    interactions: dict[str, int] = field(default_factory=dict)
    """Every interaction sent, by kind and answer (``imagine accepted``, ``cancel refused`` …)."""
    unacknowledged_jobs: dict[str, int] = field(default_factory=dict)
    """Jobs stored for interactions that were never acknowledged (killed in between), by what became of them."""
    faults: dict[str, int] = field(default_factory=dict)
    """Injected answers that were served, by route and status."""
    kills: list[dict[str, Any]] = field(default_factory=list)
    restarts_s: list[float] = field(default_factory=list)
    gateway: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """One line per job that was lost, duplicated or inconsistent, with its store row and messages."""
    notes: list[str] = field(default_factory=list)
    """Other things worth a look: grids that were edited away, interactions unanswered while the bot was up."""
    tracebacks: list[str] = field(default_factory=list)
    """Every traceback in the bots' logs, one line each: what the log said, and the exception."""
    violations: list[str] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.counts["accepted"]

    def summary(self) -> str:
        c = self.counts
        return (
            f"seed {self.seed}: {c['accepted']} accepted → {c['delivered']} delivered, {c['cancelled']} cancelled, "
            f"{c['failed_aloud']} failed aloud, {c['lost']} lost, {c['duplicated']} duplicated "
            f"({self.timings.get('total_s', 0):.0f} s)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "plan": self.plan,
            "counts": self.counts,
            "interactions": self.interactions,
            "unacknowledged_jobs": self.unacknowledged_jobs,
            "faults": self.faults,
            "kills": self.kills,
            "restarts_s": self.restarts_s,
            "gateway": self.gateway,
            "timings": self.timings,
            "problems": self.problems,
            "notes": self.notes,
            "tracebacks": self.tracebacks,
            "violations": self.violations,
            "protocol_errors": self.protocol_errors,
        }


# --- what a message shows -------------------------------------------------------------------------------


def custom_ids(message: dict[str, Any]) -> Iterator[str]:
    for row in message.get("components") or []:
        for item in row.get("components") or [row]:
            custom_id = item.get("custom_id")
            if isinstance(custom_id, str):
                yield custom_id


def jobs_named(message: dict[str, Any], prefix: str) -> set[int]:
    """The jobs whose ``<prefix><job>`` buttons the message carries (``sg:tile:`` → its grid, ``sg:cancel:``)."""
    found = set()
    for custom_id in custom_ids(message):
        if custom_id.startswith(prefix):
            found.add(int(custom_id[len(prefix) :].split(":")[0]))
    return found


def carries_the_grid(detail: RequestDetail) -> bool:
    """The request that posts a finished grid (its image is named ``seedgrid-<job>.<ext>``)."""
    return any(filename.startswith("seedgrid-") for _, filename, _ in detail.files)


# --- the bot processes ----------------------------------------------------------------------------------


class Bots:
    """``python -m bot run`` processes on one config (one database), one at a time; each has its own log."""

    def __init__(
        self, fake: FakeDiscord, config: Path, folder: Path, start_within: float, environ: dict[str, str] | None = None
    ) -> None:
        self.fake = fake
        self.environ = environ or {}
        self.config = config
        self.folder = folder
        self.start_within = start_within
        self.processes: list[asyncio.subprocess.Process] = []
        self.logs: list[Path] = []

    @property
    def current(self) -> asyncio.subprocess.Process | None:
        return self.processes[-1] if self.processes else None

    async def start(self) -> float:
        """Start one and wait until it has identified and been sent READY; the seconds that took."""
        started = time.monotonic()
        identified = self.fake.identify_count
        log = self.folder / f"bot-{len(self.processes)}.log"
        self.logs.append(log)
        environ = {**os.environ, "DISCORD_TOKEN": TEST_TOKEN, "PYTHONUNBUFFERED": "1", **self.environ}
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(self.config),
                cwd=ROOT, stdout=sink, stderr=sink, env=environ,
            )  # fmt: skip
        self.processes.append(process)

        def up() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"the bot exited ({process.returncode}) while starting:\n{self.tail(log)}")
            return self.fake.identify_count > identified and self.fake.gateway.ready

        await until(up, within=self.start_within, every=0.05, what="the restarted bot to identify and be READY")
        return time.monotonic() - started

    async def kill(self) -> None:
        process = self.current
        if process is not None and process.returncode is None:
            process.kill()  # SIGKILL: no chance to clean up
            await process.wait()

    async def stop(self, grace: float = 90.0) -> None:
        """SIGTERM (the bot finishes what runs), SIGKILL after ``grace`` seconds."""
        process = self.current
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            await self.kill()

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
                await process.wait()

    def text(self) -> str:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace") for log in self.logs if log.exists())

    @staticmethod
    def tail(log: Path, lines: int = 40) -> str:
        try:
            return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def soak_config(plan: SoakPlan, fake: FakeDiscord, model: Path, database: Path) -> str:
    """The test suite's config, with limits that no member reaches and the plan's retry window."""
    text = config_text(
        model,
        database,
        api_base_url=fake.api_base_url,
        gateway_url=fake.gateway_url,
        per_user_limit=100,
        shutdown_timeout=30.0,
    )
    text = text.replace("queue_limit = 100", "queue_limit = 1000")
    return text.replace(
        "progress_interval = 0.5", f"progress_interval = 0.5\ndelivery_retry_for = {plan.delivery_retry_for}"
    )


class Books:
    """The accounting: the store's rows, what Discord (the fake) shows, and the bots' logs, side by side."""

    def __init__(self, rows: list[dict[str, Any]], fake: FakeDiscord, logs: str) -> None:
        self.rows = {r["id"]: r for r in rows}
        self.logs = logs
        messages = fake.all_messages()
        self.current = {m["id"]: m for m in messages}
        self.grids: dict[int, list[str]] = defaultdict(list)  # job → the messages that carry its grid now
        self.ever: dict[int, set[str]] = defaultdict(set)  # job → the messages that ever carried its grid
        self.shown_on: dict[int, set[str]] = defaultdict(set)  # job → the messages that ever showed it
        for message in messages:
            for job in jobs_named(message, "sg:tile:"):
                self.grids[job].append(message["id"])
            for version in fake.message_history(message["id"]):
                for job in jobs_named(version, "sg:tile:"):
                    self.ever[job].add(message["id"])
                for job in jobs_named(version, "sg:cancel:") | jobs_named(version, "sg:tile:"):
                    self.shown_on[job].add(message["id"])
            for job in jobs_named(message, "sg:cancel:"):
                self.shown_on[job].add(message["id"])

    def made_by(self, sent: Sent) -> list[int]:
        """The jobs in the store that an interaction made (one, unless something is wrong)."""
        return [job for job, row in self.rows.items() if _made_by(sent, row)]

    def says(self, job: int, words: str) -> bool:
        """Whether a message that showed the job (or the one the store names) says ``words`` now."""
        row = self.rows[job]
        ids = self.shown_on[job] | ({str(row["message_id"])} if row["message_id"] else set())
        return any(words in (self.current.get(i, {}).get("content") or "") for i in ids)

    def box(self, job: int) -> str:
        """delivered | duplicated | cancelled | failed_aloud | lost | inconsistent (a grid the store disowns)."""
        row = self.rows[job]
        posted = self.grids.get(job, [])
        if len(posted) > 1:
            return "duplicated"
        if len(posted) == 1:
            return "delivered" if row["status"] == "done" and row["delivered_at"] is not None else "inconsistent"
        if row["status"] == "cancelled" and self.says(job, "Cancelled"):
            return "cancelled"
        if row["status"] == "failed" and (
            re.search(rf"job {job} (cannot|could not) be delivered", self.logs) or self.says(job, "❌")
        ):
            return "failed_aloud"
        return "lost"

    def describe(self, job: int) -> str:
        row = {k: v for k, v in self.rows[job].items() if v is not None}
        return f"job {job}: grids on {self.grids.get(job, [])}, shown on {sorted(self.shown_on[job])}, store {row}"

    def recorded_elsewhere(self) -> list[str]:
        """Delivered jobs whose row names another message than the one that carries the grid."""
        return [
            f"job {job}: its grid is on message {posted[0]}, the store names {row['message_id']}"
            for job, row in self.rows.items()
            if len(posted := self.grids.get(job, [])) == 1 and str(row["message_id"]) != posted[0]
        ]

    def flapped(self) -> list[str]:
        """Jobs whose grid was on a message that no longer shows it (edited over)."""
        return [
            f"job {job}: its grid was on message(s) {sorted(gone)} and is gone from there"
            for job in self.rows
            if (gone := self.ever[job] - set(self.grids.get(job, [])))
        ]


def _made_by(sent: Sent, row: dict[str, Any]) -> bool:
    if str(row["user_id"]) != sent.member.id:
        return False
    if sent.kind == "imagine":
        return row["kind"] == "imagine" and row["parent_job"] is None and row["prompt"] == sent.key
    if sent.kind == "reroll":
        return row["kind"] == "imagine" and row["parent_job"] == sent.parent_job
    return row["kind"] == "refine" and sent.key in (row["suffixes"] or "")


class Quiet:
    """A wait's way out when nothing moves any more: neither the store nor the requests to Discord for
    ``QUIET`` seconds (longer than any backoff pause of a delivery) means the rest will never settle."""

    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.last: tuple[Any, ...] | None = None
        self.since = time.monotonic()
        self.was_stuck = False

    async def stuck(self) -> bool:
        """Whether nothing has moved for ``QUIET`` seconds (checked at each call)."""
        now = await self.soak.fingerprint()
        if now != self.last:
            self.last, self.since = now, time.monotonic()
        elif time.monotonic() - self.since > QUIET:
            self.was_stuck = True
            return True
        return False


# --- the soak -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    route: str
    status: int
    count: int
    retry_after: float
    grid: bool
    """Only requests that upload a finished grid (else the next request on the route, whatever it is)."""


@dataclass(frozen=True)
class Step:
    """One moment of the load, drawn in advance from the seed (so two runs of a seed do the same things)."""

    action: str
    """imagine | refine | reroll | cancel (refine and re-roll fall back to imagine while no grid is out)."""
    member: int
    steps: int
    size: str
    regret: float | None
    """For an /imagine: the member cancels it this many seconds after its Cancel button shows."""
    pause: float
    """Seconds until the next step."""
    faults: tuple[Fault, ...] = ()
    refuse: bool = False
    """A 403 awaits the next grid uploaded through an interaction's response."""
    kill: float | None = None
    """The bot is killed this many seconds into the step (and started again)."""
    drop: float | None = None
    """The gateway is dropped this many seconds into the step."""


def schedule(plan: SoakPlan) -> list[Step]:
    """The whole load of a soak, from its seed: what each member does, the faults, the kills and the drop."""
    rng = random.Random(plan.seed)
    n = plan.jobs
    spans = [(0.3 + 0.65 * k / plan.kills, 0.3 + 0.65 * (k + 1) / plan.kills) for k in range(plan.kills)]
    kills = [int(n * rng.uniform(a, b)) for a, b in spans]
    drops = [rng.randint(n // 10, n - n // 10) for _ in range(plan.gateway_drops)]
    refusals = [rng.randint(n // 10, n - 1) for _ in range(plan.refusals)]
    fault_share = plan.fault_count / max(1, n)
    steps: list[Step] = []
    made = 0
    while made < n:
        roll = rng.random()
        shares = (plan.cancel_share, plan.refine_share, plan.reroll_share)
        action = "imagine"
        for name, bound in zip(("cancel", "refine", "reroll"), itertools.accumulate(shares), strict=True):
            if roll < bound:
                action = name
                break
        long = rng.random() < plan.long_share
        faults = tuple(
            Fault(
                route=rng.choice(list(ROUTES)),
                status=rng.choice(FAULTS),
                count=rng.randint(1, 2),
                retry_after=round(rng.uniform(0.1, 0.6), 2),
                grid=rng.random() < 0.5,
            )
            for _ in range(int(fault_share) + (rng.random() < fault_share % 1))
        )
        steps.append(
            Step(
                action=action,
                member=rng.randrange(plan.members),
                steps=rng.randint(8, 20) if long else rng.randint(1, 2),
                size="large" if long else rng.choice(("small", "wide")),
                regret=rng.uniform(0.0, 1.5) if rng.random() < plan.regret_share else None,
                pause=plan.pace * rng.uniform(0.5, 1.5),
                faults=faults if action != "cancel" else (),
                refuse=action != "cancel" and made in refusals,
                kill=rng.uniform(0, plan.pace) if action != "cancel" and made in kills else None,
                drop=rng.uniform(0, plan.pace) if action != "cancel" and made in drops else None,
            )
        )
        made += action != "cancel"
    return steps


class Soak:
    def __init__(self, plan: SoakPlan, fake: FakeDiscord, model: Path, folder: Path) -> None:
        self.plan = plan
        self.fake = fake
        self.steps = schedule(plan)
        self.rng = random.Random(f"{plan.seed}:choices")
        """For what depends on the moment: which grid a member refines, which job they cancel."""
        self.folder = folder
        self.database = folder / "seedgrid.db"
        config = folder / "config.toml"
        config.write_text(soak_config(plan, fake, model, self.database), encoding="utf-8")
        threads = {} if plan.torch_threads is None else {"OMP_NUM_THREADS": str(plan.torch_threads)}
        self.bots = Bots(fake, config, folder, plan.start_within, threads)
        self.up = False
        self.sent: list[Sent] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.injections: list[tuple[str, int, Injection]] = []
        self.kill_times: list[float] = []
        self.rerolled: set[int] = set()
        self.cancel_clicked: set[int] = set()
        self.report = SoakReport(seed=plan.seed, plan=dict(plan.__dict__))
        self.counter = 0
        self._down_tries = 0
        self.started = time.monotonic()
        channels = [fake.channel, fake.add_channel("soak")]
        self.members = [fake.member, *(fake.add_member(f"member{i}") for i in range(1, plan.members))]
        self.home = {m.id: channels[i % len(channels)] for i, m in enumerate(self.members)}
        self.by_id = {m.id: m for m in self.members}

    # --- the run ---

    async def run(self) -> SoakReport:
        plan = self.plan
        self.report.restarts_s.append(await self.bots.start())
        self.up = True
        actions_started = time.monotonic()
        for step in self.steps:
            while not self.up:
                await self._try_while_down()
            for fault in step.faults:
                self._inject(fault)
            if step.refuse:
                self._inject(Fault("interaction edit", 403, 1, 0.0, grid=True))
            if step.kill is not None:
                self._spawn(self._kill_and_restart(step.kill))
            if step.drop is not None:
                self._spawn(self._drop_gateway(step.drop))
            self._act(step)
            await asyncio.sleep(step.pause)  # the load's pace, not a synchronisation
        await self._finish_tasks()
        await until(self._all_answered, within=30, every=0.1, what="every interaction to be answered or expire")
        self.report.timings["actions_s"] = time.monotonic() - actions_started
        settle_started = time.monotonic()
        settled = await self._settle()
        self.report.timings["settle_s"] = time.monotonic() - settle_started
        if not settled:
            self.report.notes.append(
                f"not every job settled (nothing moved for {QUIET:.0f} s, or {plan.settle_within:.0f} s passed)"
            )
        await self._account()
        await self.bots.stop()
        self._read_logs()
        self.report.timings["total_s"] = time.monotonic() - self.started
        self.report.violations = list(self.fake.violations)
        self.report.protocol_errors = list(self.fake.protocol_errors)
        self.report.logs = [str(p) for p in self.bots.logs]
        return self.report

    def _all_answered(self) -> bool:
        """Every interaction Discord delivered has had its answer, or its 3 seconds are over (+ a margin)."""
        now = self.fake.now()
        for sent in self.sent:
            ix = sent.ix
            if ix is not None and not ix.responses and ix.dispatched_at is not None and now - ix.dispatched_at < 5:
                return False
        return True

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _finish_tasks(self) -> None:
        while self.tasks:
            for task in list(self.tasks):
                await task  # an exception here is a bug of the soak itself: let it be seen

    # --- what members do ---

    def _act(self, step: Step) -> None:
        if step.action == "cancel":
            target = self._cancel_target()
            if target is not None:
                self._spawn(self._cancel(*target))
            return
        if step.action in ("refine", "reroll"):
            grid = self._grid_target(reroll=step.action == "reroll")
            if grid is not None:
                self._spawn(self._refine(*grid) if step.action == "refine" else self._reroll(*grid))
                return
        self._spawn(self._imagine(self.members[step.member], step))

    def _record(self, kind: str, member: Member, **fields: Any) -> Sent:
        sent = Sent(kind, member, time.monotonic(), self.up, **fields)
        self.sent.append(sent)
        return sent

    async def _imagine(self, member: Member, step: Step) -> None:
        self.counter += 1
        prompt = f"soak {self.plan.seed} job {self.counter:04d} by {member.name}"
        sent = self._record("imagine", member, key=prompt)
        try:
            sent.ix = await self.fake.slash(
                member,
                "imagine",
                channel=self.home[member.id],
                prompt=prompt,
                seed=self.counter,
                steps=step.steps,
                size=step.size,
            )
        except FakeDiscordError as exc:  # the bot is dead: Discord could not deliver it
            sent.error = str(exc)
            return
        if step.regret is not None:
            await self._regret(sent.ix, member, step.regret)

    async def _regret(self, ix: Interaction, member: Member, after: float) -> None:
        """The member cancels the job they just started, ``after`` seconds after its Cancel button shows."""

        def cancel_shown(message: dict[str, Any]) -> bool:
            return bool(jobs_named(message, "sg:cancel:"))

        try:
            shown = await ix.wait_original(cancel_shown, timeout=10)
        except TimeoutError:  # the bot died first, or the job ended before its message showed the button
            return
        await asyncio.sleep(after)  # the member's hesitation, not a synchronisation
        job = next(iter(jobs_named(shown, "sg:cancel:")))
        if job in self.cancel_clicked:
            return
        self.cancel_clicked.add(job)
        sent = self._record("cancel", member, parent_job=job)
        await self._click(sent, shown, f"sg:cancel:{job}")

    async def _try_while_down(self) -> None:
        """Members keep typing /imagine while the bot is dead (a few times per kill)."""
        if self._down_tries > 0:
            self._down_tries -= 1
            step = Step("imagine", self.rng.randrange(len(self.members)), 1, "small", None, 0.0)
            self._spawn(self._imagine(self.members[step.member], step))
        await asyncio.sleep(1.0)  # the members' pace while nothing answers them, not a synchronisation

    def _owner(self, message: dict[str, Any]) -> Member | None:
        """Who a job's message is for: the mention it starts with, or the member whose command it answers."""
        mention = re.match(r"<@!?(\d+)>", message.get("content") or "")
        if mention:
            return self.by_id.get(mention.group(1))
        for sent in self.sent:
            if sent.ix is not None and sent.ix.original_message_id == message["id"] and sent.kind == "imagine":
                return sent.member
        return None

    def _grid_target(self, *, reroll: bool) -> tuple[dict[str, Any], Member, int, str] | None:
        """A grid on Discord (one not re-rolled yet, for a re-roll), its owner, its job and the button to press."""
        grids = []
        for message in self.fake.all_messages():
            jobs = jobs_named(message, "sg:tile:")
            if len(jobs) != 1:
                continue
            job = next(iter(jobs))
            if reroll:
                button = next((c for c in custom_ids(message) if c.startswith("sg:reroll:")), None)
                if button is None or job in self.rerolled:
                    continue
            else:
                button = self.rng.choice([c for c in custom_ids(message) if c.startswith("sg:tile:")])
            grids.append((message, job, button))
        if not grids:
            return None
        message, job, button = self.rng.choice(grids)
        owner = self._owner(message)
        if owner is None:
            return None
        if reroll:
            self.rerolled.add(job)
        return message, owner, job, button

    def _cancel_target(self) -> tuple[dict[str, Any], Member, int] | None:
        """A job's message that shows a Cancel button, and the job's author."""
        waiting = []
        for message in self.fake.all_messages():
            for job in jobs_named(message, "sg:cancel:") - self.cancel_clicked:
                owner = self._owner(message)
                if owner is not None:
                    waiting.append((message, owner, job))
        if not waiting:
            return None
        target = self.rng.choice(waiting)
        self.cancel_clicked.add(target[2])
        return target

    async def _click(self, sent: Sent, message: dict[str, Any], custom_id: str) -> Interaction | None:
        try:
            sent.ix = await self.fake.click(sent.member, message, custom_id)
        except FakeDiscordError as exc:  # the button is gone (its job ended meanwhile), or the bot is dead
            sent.error = str(exc)
            sent.skipped = "has no component" in sent.error
        return sent.ix

    async def _cancel(self, message: dict[str, Any], owner: Member, job: int) -> None:
        sent = self._record("cancel", owner, parent_job=job)
        await self._click(sent, message, f"sg:cancel:{job}")

    async def _reroll(self, message: dict[str, Any], owner: Member, job: int, button: str) -> None:
        sent = self._record("reroll", owner, key=str(job), parent_job=job)
        await self._click(sent, message, button)

    async def _refine(self, message: dict[str, Any], owner: Member, job: int, button: str) -> None:
        self.counter += 1
        suffix = f", refine-{self.plan.seed}-{self.counter:04d}"
        form = self._record("form", owner, parent_job=job)
        click = await self._click(form, message, button)
        if click is None:
            return
        with contextlib.suppress(TimeoutError):  # not answered in time: the member gives up
            await click.wait_response(timeout=10)
        if click.modal is None:
            return
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))  # the member types (a kill may come meanwhile)
        sent = self._record("refine", owner, key=suffix, parent_job=job)
        field_id = click.modal["components"][0]["components"][0]["custom_id"]
        try:
            sent.ix = await self.fake.submit_modal(owner, click, {field_id: suffix})
        except FakeDiscordError as exc:
            sent.error = str(exc)

    # --- what goes wrong ---

    def _inject(self, fault: Fault) -> None:
        method, path = ROUTES[fault.route]
        when = carries_the_grid if fault.grid else None
        injection = self.fake.inject(
            method, path, status=fault.status, count=fault.count, retry_after=fault.retry_after, when=when
        )
        self.injections.append((fault.route + (" (grid)" if fault.grid else ""), fault.status, injection))

    async def _kill_and_restart(self, after: float) -> None:
        await asyncio.sleep(after)  # a random moment (drawn from the seed), not a synchronisation
        self.up = False
        self._down_tries = self.plan.tries_while_down
        at = time.monotonic()
        await self.bots.kill()
        self.kill_times.append(at)
        rows = await store_probe.jobs(self.database)
        self.report.kills.append(
            {
                "at_s": round(at - self.started, 1),
                "jobs_stored": len(rows),
                "queued": sum(r["status"] == "queued" for r in rows),
                "running": sum(r["status"] == "running" for r in rows),
                "delivering": sum(r["delivery_started_at"] is not None and r["delivered_at"] is None for r in rows),
                "undelivered": sum(r["delivered_at"] is None for r in rows),
            }
        )
        self.report.restarts_s.append(await self.bots.start())
        self.up = True

    async def _drop_gateway(self, after: float) -> None:
        await asyncio.sleep(after)  # a random moment (drawn from the seed), not a synchronisation
        # not while a kill is under way: the drop is of a live bot's connection
        await until(lambda: self.up and self.fake.gateway.connected, within=self.plan.start_within, every=0.05)
        await self.fake.drop_gateway()
        self.report.gateway["drops"] = self.report.gateway.get("drops", 0) + 1

    # --- the end ---

    async def _settle(self) -> bool:
        """Until every job in the store is settled: its outcome posted, or refused for good (it was never
        acknowledged). False when nothing moved for ``QUIET`` seconds first, or ``settle_within`` passed."""
        quiet = Quiet(self)

        def settled(row: dict[str, Any]) -> bool:
            return row["delivered_at"] is not None or (row["status"] == "failed" and row["error"] == ABANDONED)

        async def all_settled() -> bool:
            return all(settled(r) for r in await store_probe.jobs(self.database)) or await quiet.stuck()

        try:
            await until(all_settled, within=self.plan.settle_within, every=0.25, what="every job to settle")
        except AssertionError:
            return False
        return not quiet.was_stuck

    async def fingerprint(self) -> tuple[Any, ...]:
        """What changes while the bot still works on something: the store's rows and the requests Discord got."""
        rows = await store_probe.jobs(self.database)
        return (len(self.fake.requests), tuple((r["status"], r["message_id"], r["delivered_at"]) for r in rows))

    async def _account(self) -> None:
        report = self.report
        books = Books(await store_probe.jobs(self.database), self.fake, self.bots.text())
        made = {index: books.made_by(sent) for index, sent in enumerate(self.sent) if sent.makes_a_job}
        counts: Counter[str] = Counter()
        interactions: Counter[str] = Counter()
        unacknowledged: Counter[str] = Counter()
        for index, sent in enumerate(self.sent):
            answer = sent.answer
            why = self._why_unanswered(sent) if answer == "unanswered" else answer
            interactions[f"{sent.kind} {why}"] += 1
            if why == "unanswered":  # the bot was up and not killed: worth a look
                ix = "never dispatched" if sent.ix is None else repr(sent.ix)
                report.notes.append(
                    f"{sent.kind} by {sent.member.name} at {sent.at - self.started:.1f} s unanswered: {ix} {sent.error}"
                )
            if not sent.makes_a_job:
                continue
            counts["sent"] += 1
            jobs = made[index]
            if answer != "accepted":
                counts["refused" if answer == "refused" else "unanswered" if sent.bot_up else "sent_while_down"] += 1
                unacknowledged.update(books.box(job) for job in jobs)
                continue
            counts["accepted"] += 1
            outcome = "lost" if not jobs else "duplicated" if len(jobs) > 1 else books.box(jobs[0])
            counts[outcome] += 1
            if outcome not in ("delivered", "cancelled", "failed_aloud"):
                what = f"{sent.kind} {sent.key!r} by {sent.member.name}"
                report.problems += [f"{outcome}: {what}: {books.describe(job)}" for job in jobs] or [
                    f"{outcome}: {what}: no job stored"
                ]
        ours = {job for jobs in made.values() for job in jobs}
        for job in books.rows:
            if job not in ours:
                unacknowledged[f"{books.box(job)} (no interaction of the soak)"] += 1
        report.notes += books.flapped()
        report.notes += books.recorded_elsewhere()
        for key in COUNTS:
            report.counts[key] = counts[key]
        report.interactions = dict(sorted(interactions.items()))
        report.unacknowledged_jobs = dict(unacknowledged)
        served: Counter[str] = Counter()
        for route, status, injection in self.injections:
            served[f"{route} {status}"] += injection.hits
        report.faults = dict(sorted(served.items()))
        fake = self.fake
        report.gateway.update(
            identifies=fake.identify_count, resumes=fake.resume_count, connections=fake.gateway_connections
        )

    def _why_unanswered(self, sent: Sent) -> str:
        if not sent.bot_up:
            return "unanswered (bot dead)"
        if any(sent.at - 1.0 <= kill <= sent.at + 10.0 for kill in self.kill_times):
            return "unanswered (bot killed)"
        if sent.kind == "refine":
            form = self._form_before(sent)
            if form is not None and any(form.at <= kill <= sent.at for kill in self.kill_times):
                return "unanswered (form opened before a kill)"
        return "unanswered"

    def _form_before(self, sent: Sent) -> Sent | None:
        index = self.sent.index(sent)
        for earlier in reversed(self.sent[:index]):
            if earlier.kind == "form" and earlier.member is sent.member and earlier.parent_job == sent.parent_job:
                return earlier
        return None

    def _read_logs(self) -> None:
        text = self.bots.text()
        self.report.tracebacks = tracebacks(text)
        if TEST_TOKEN in text:
            self.report.problems.append("the bot's token is in its log")
        self.report.counts["reconciled"] = len(re.findall(r"already on Discord", text))


def tracebacks(log: str) -> list[str]:
    """Each traceback in a log as one line: the log line that announced it, and the exception."""
    lines = log.splitlines()
    found = []
    for index, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last)"):
            continue
        said = lines[index - 1].split(" ", 2)[-1].strip() if index else ""
        raised = next((ln for ln in lines[index + 1 :] if ln and not ln.startswith(" ")), "?")
        found.append(f"{said} → {raised}")
    return found


async def run_soak(plan: SoakPlan, model: Path, folder: Path) -> SoakReport:
    """Run one soak against a fresh fake Discord; ``folder`` gets the config, the database and the bots' logs."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    async with FakeDiscord(token=TEST_TOKEN) as fake:
        soak = Soak(plan, fake, model, folder)
        try:
            return await soak.run()
        finally:
            await soak.bots.close()
