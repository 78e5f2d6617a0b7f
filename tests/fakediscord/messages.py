"""Turning message create/edit requests into stored, spec-shaped message objects."""

from __future__ import annotations

import copy
import itertools
import mimetypes
import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakediscord.errors import empty_message, invalid_form_body
from tests.fakediscord.models import JSONDict
from tests.fakediscord.spec import SchemaError

# Message flags
CROSSPOSTED = 1 << 0
SUPPRESS_EMBEDS = 1 << 2
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_VOICE_MESSAGE = 1 << 13
IS_COMPONENTS_V2 = 1 << 15
#: Flags a bot may set when creating a message (EPHEMERAL only through interactions).
SETTABLE_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_VOICE_MESSAGE | IS_COMPONENTS_V2
#: Flags a bot may change when editing.
EDITABLE_FLAGS = SUPPRESS_EMBEDS | IS_COMPONENTS_V2

# Message types
DEFAULT = 0
REPLY = 19
CHAT_INPUT_COMMAND = 20
CONTEXT_MENU_COMMAND = 23

MAX_CONTENT = 2000  # bots: 2000 (the spec allows 4000, which is the Nitro user limit)
MAX_EMBED_CHARS = 6000
MAX_FILES = 10
MAX_TOP_LEVEL_COMPONENTS_V1 = 5

_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request."""

    field_name: str
    filename: str
    content_type: str | None
    data: bytes

    @property
    def index(self) -> int | None:
        m = _FILE_FIELD.match(self.field_name)
        return int(m.group(1)) if m else None


@dataclass
class StoredAttachment:
    id: str
    channel_id: str
    filename: str
    content_type: str
    data: bytes
    url: str
    description: str | None = None
    ephemeral: bool = False
    width: int | None = None
    height: int | None = None

    def to_payload(self) -> JSONDict:
        """A ``MessageAttachmentResponse``."""
        data: JSONDict = {
            "id": self.id,
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
        }
        if self.description is not None:
            data["description"] = self.description
        if self.width is not None and self.height is not None:
            data["width"] = self.width
            data["height"] = self.height
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass
class StoredMessage:
    """A message as the fake stores it: the spec-shaped dict plus bookkeeping."""

    data: JSONDict
    interaction_id: str | None = None
    visible_to: str | None = None  # user id that can see an ephemeral message
    deleted: bool = False
    history: list[JSONDict] = field(default_factory=list)  # earlier versions, oldest first
    created_at: float = 0.0  # the fake's clock when it was created (for nonce de-duplication)

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def channel_id(self) -> str:
        return str(self.data["channel_id"])

    @property
    def author_id(self) -> str:
        return str(self.data["author"]["id"])

    @property
    def ephemeral(self) -> bool:
        return bool(self.data["flags"] & EPHEMERAL)

    def snapshot(self) -> JSONDict:
        return copy.deepcopy(self.data)


def guess_content_type(filename: str, declared: str | None, data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(filename)
    if guessed:
        return guessed + ("; charset=utf-8" if guessed.startswith("text/") else "")
    return declared or "application/octet-stream"


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF or baseline/progressive JPEG, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + length
    return None


# ---------------------------------------------------------------------- components


def build_components(components: Sequence[JSONDict] | None) -> list[JSONDict]:
    """Request components -> response components: ``None`` dropped, numeric ``id`` assigned in tree order."""
    if not components:
        return []
    counter = itertools.count(1)
    used: set[int] = set()
    for comp in _walk(components):
        if isinstance(comp.get("id"), int):
            used.add(comp["id"])

    def next_id() -> int:
        while True:
            value = next(counter)
            if value not in used:
                return value

    return [_component(c, next_id) for c in components]


def _walk(components: Sequence[JSONDict]) -> Iterator[JSONDict]:
    for comp in components:
        if not isinstance(comp, dict):
            continue
        yield comp
        yield from _walk(comp.get("components") or [])
        for key in ("accessory", "component"):
            child = comp.get(key)
            if isinstance(child, dict):
                yield from _walk([child])


_SELECT_TYPES = frozenset({3, 5, 6, 7, 8})


def _component(comp: JSONDict, next_id: Callable[[], int]) -> JSONDict:
    out: JSONDict = {k: _strip_none(v) for k, v in comp.items() if v is not None}
    out["id"] = comp["id"] if isinstance(comp.get("id"), int) else next_id()
    ctype = out.get("type")
    if "components" in out:
        out["components"] = [_component(c, next_id) for c in out["components"]]
    for key in ("accessory", "component"):
        if isinstance(out.get(key), dict):
            out[key] = _component(out[key], next_id)
    if ctype in _SELECT_TYPES:
        out.setdefault("min_values", 1)
        out.setdefault("max_values", 1)
        if ctype == 3:
            out.setdefault("options", [])
    if ctype == 17:  # container
        out.setdefault("accent_color", None)
        out.setdefault("spoiler", False)
    return out


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def iter_components(components: Sequence[JSONDict]) -> Iterator[JSONDict]:
    """Every component of a stored message, depth first."""
    yield from _walk(components)


def find_component(message: JSONDict, custom_id: str) -> JSONDict | None:
    for comp in iter_components(message.get("components") or []):
        if comp.get("custom_id") == custom_id:
            return comp
    return None


def check_components(
    components: Sequence[JSONDict] | None, flags: int, path: tuple[str | int, ...]
) -> list[SchemaError]:
    """Discord rules the schema does not express: layout, unique custom_ids, well-formed buttons."""
    if not components:
        return []
    where = (*path, "components")
    errors: list[SchemaError] = []
    if not flags & IS_COMPONENTS_V2:
        if len(components) > MAX_TOP_LEVEL_COMPONENTS_V1:
            errors.append(SchemaError(where, "Must be 5 or fewer in length.", "BASE_TYPE_MAX_LENGTH"))
        errors.extend(
            SchemaError(
                (*where, i),
                "Top-level components other than action rows need the IS_COMPONENTS_V2 flag",
                "COMPONENT_LAYOUT_INVALID",
            )
            for i, comp in enumerate(components)
            if isinstance(comp, dict) and comp.get("type") != 1
        )
    seen: set[str] = set()
    for comp in _walk(components):
        custom_id = comp.get("custom_id")
        if custom_id is not None:
            if custom_id in seen:
                message = f"Component custom id {custom_id!r} is duplicated"
                errors.append(SchemaError(where, message, "COMPONENT_CUSTOM_ID_DUPLICATED"))
            seen.add(custom_id)
        if comp.get("type") == 2:
            problem = _button_problem(comp)
            if problem is not None:
                errors.append(SchemaError(where, problem, "BUTTON_COMPONENT_INVALID"))
    return errors


def _button_problem(button: JSONDict) -> str | None:
    style, custom_id = button.get("style"), button.get("custom_id")
    if style == 5:
        return None if button.get("url") and custom_id is None else "Link buttons need a url and no custom_id"
    if style == 6:
        return None if button.get("sku_id") else "Premium buttons need a sku_id"
    if custom_id is None:
        return "Non-link buttons need a custom_id"
    if not button.get("label") and not button.get("emoji"):
        return "Buttons need a label or an emoji"
    return None


# ---------------------------------------------------------------------- embeds and content


def embed_length(embed: JSONDict) -> int:
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text") or "")
    total += len((embed.get("author") or {}).get("name") or "")
    for f in embed.get("fields") or []:
        total += len(f.get("name") or "") + len(f.get("value") or "")
    return total


def check_content(payload: Mapping[str, Any], path: tuple[str | int, ...]) -> list[SchemaError]:
    errors: list[SchemaError] = []
    content = payload.get("content")
    if isinstance(content, str) and len(content) > MAX_CONTENT:
        errors.append(
            SchemaError((*path, "content"), f"Must be {MAX_CONTENT} or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        )
    embeds = payload.get("embeds") or []
    if sum(embed_length(e) for e in embeds if isinstance(e, dict)) > MAX_EMBED_CHARS:
        errors.append(
            SchemaError((*path, "embeds"), "Embed size exceeds maximum size of 6000", "MAX_EMBED_SIZE_EXCEEDED")
        )
    flags = payload.get("flags") or 0
    if flags & IS_COMPONENTS_V2 and (content or embeds):
        errors.append(
            SchemaError(
                (*path, "content"),
                "content and embeds cannot be used with IS_COMPONENTS_V2",
                "MESSAGE_CONTENT_V2_INVALID",
            )
        )
    mentions = payload.get("allowed_mentions")
    if isinstance(mentions, dict):
        parse = mentions.get("parse") or []
        for kind in ("users", "roles"):
            if kind in parse and mentions.get(kind):
                errors.append(
                    SchemaError(
                        (*path, "allowed_mentions"),
                        f"parse:[{kind}] and {kind}: [ids] are mutually exclusive.",
                        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    )
                )
    errors.extend(check_components(payload.get("components"), flags, path))
    return errors


def build_embeds(embeds: Sequence[JSONDict] | None, attachments: Sequence[StoredAttachment]) -> list[JSONDict]:
    by_name = {a.filename: a for a in attachments}
    out: list[JSONDict] = []
    for embed in embeds or []:
        e = _strip_none(embed)
        e.setdefault("type", "rich")
        for key in ("image", "thumbnail"):
            media = e.get(key)
            if isinstance(media, dict) and str(media.get("url", "")).startswith("attachment://"):
                att = by_name.get(media["url"][len("attachment://") :])
                if att is not None:
                    media.update({"url": att.url, "proxy_url": att.url})
                    if att.width is not None and att.height is not None:
                        media.update({"width": att.width, "height": att.height})
        for f in e.get("fields") or []:
            f.setdefault("inline", False)
        out.append(e)
    return out


def mentioned_ids(content: str) -> tuple[list[str], list[str]]:
    return _USER_MENTION.findall(content), _ROLE_MENTION.findall(content)


# ---------------------------------------------------------------------- attachments in a request


@dataclass
class AttachmentPlan:
    keep: list[str]  # existing attachment ids to keep, in order
    new: list[tuple[UploadedFile, JSONDict]]  # uploaded file + its attachments[] entry (may be {})
    order: list[tuple[str, Any]]  # ("keep", id) / ("new", index into new)


def _files_by_index(files: Sequence[UploadedFile], errors: list[SchemaError]) -> dict[int, UploadedFile]:
    by_index: dict[int, UploadedFile] = {}
    for f in files:
        idx = f.index
        if idx is None:
            errors.append(SchemaError((f.field_name,), "File fields must be named files[n]", "FILE_FIELD_NAME_INVALID"))
        elif idx >= MAX_FILES:
            errors.append(SchemaError((f.field_name,), f"Must be {MAX_FILES} or fewer files", "BASE_TYPE_MAX_LENGTH"))
        elif idx in by_index:
            errors.append(SchemaError((f.field_name,), "Duplicate file field", "FILE_FIELD_DUPLICATED"))
        else:
            by_index[idx] = f
    return by_index


def plan_attachments(
    attachments: Sequence[JSONDict] | None,
    files: Sequence[UploadedFile],
    existing: Sequence[str],
    *,
    editing: bool,
    path: tuple[str | int, ...],
) -> AttachmentPlan:
    """Match ``attachments[]`` entries to uploaded ``files[n]`` parts and existing attachments.

    Without ``attachments`` every file becomes a new attachment (an edit also keeps the existing ones).
    With it, the list is the complete new set: ``{"id": <existing id>}`` keeps an attachment,
    ``{"id": n, ...}`` refers to part ``files[n]``, and every uploaded part must be referenced.
    """
    errors: list[SchemaError] = []
    by_index = _files_by_index(files, errors)
    plan = AttachmentPlan(keep=[], new=[], order=[])
    if attachments is None:
        if editing:
            plan.keep = list(existing)
            plan.order = [("keep", a) for a in existing]
        for idx in sorted(by_index):
            plan.order.append(("new", len(plan.new)))
            plan.new.append((by_index[idx], {}))
    else:
        referenced: set[int] = set()
        for i, entry in enumerate(attachments):
            key = str(entry.get("id") if isinstance(entry, dict) else None)
            if editing and key in existing:
                plan.order.append(("keep", key))
                plan.keep.append(key)
            elif key.isdigit() and int(key) in by_index:
                referenced.add(int(key))
                plan.order.append(("new", len(plan.new)))
                plan.new.append((by_index[int(key)], entry))
            else:
                message = f"Unknown attachment or missing files[{key}] part"
                errors.append(SchemaError((*path, "attachments", i, "id"), message, "ATTACHMENT_NOT_FOUND"))
        errors.extend(
            SchemaError(
                (f"files[{idx}]",), f"files[{idx}] is not referenced by attachments[].id", "ATTACHMENT_NOT_REFERENCED"
            )
            for idx in sorted(set(by_index) - referenced)
        )
    if errors:
        raise invalid_form_body(errors)
    return plan


def require_not_empty(payload: Mapping[str, Any], plan: AttachmentPlan | None) -> None:
    if plan is not None and plan.new:
        return
    if payload.get("content") or payload.get("embeds") or payload.get("components") or payload.get("sticker_ids"):
        return
    if payload.get("poll"):
        return
    raise empty_message()
