"""Discord's JSON error responses, as exceptions the REST handlers raise."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.fakediscord.spec import SchemaError, discord_error_tree


class FakeDiscordError(Exception):
    """A test used the fake in a way a real Discord client would not allow (e.g. clicking a missing button)."""


class DiscordHTTPError(Exception):
    """Raised by a REST handler; the pipeline turns it into Discord's ``{"code", "message", "errors"}`` reply.

    ``violation`` marks answers that mean the bot sent something Discord rejects as malformed (Invalid Form
    Body, unknown route); those are recorded in ``FakeDiscord.violations``. Every other error is a
    protocol-level rejection (already acknowledged, expired token, ...) recorded in
    ``FakeDiscord.protocol_errors``.
    """

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        detail: str | None = None,
        violation: bool | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}" + (f": {detail}" if detail else ""))
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.detail = detail or message
        self.violation = code == 50035 if violation is None else violation

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


def invalid_form_body(errors: Iterable[SchemaError], *, prefix: tuple[str | int, ...] = ()) -> DiscordHTTPError:
    errs = list(errors)
    detail = "; ".join(e.describe() for e in errs)
    return DiscordHTTPError(
        400, 50035, "Invalid Form Body", errors=discord_error_tree(errs, prefix), detail=detail, violation=True
    )


def form_error(path: tuple[str | int, ...], message: str, code: str = "BASE_TYPE_INVALID") -> DiscordHTTPError:
    return invalid_form_body([SchemaError(path, message, code)])


def not_found(what: str = "404: Not Found") -> DiscordHTTPError:
    return DiscordHTTPError(404, 0, what, violation=True)


def unauthorized() -> DiscordHTTPError:
    return DiscordHTTPError(401, 0, "401: Unauthorized")


def unknown_channel() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10003, "Unknown Channel")


def unknown_guild() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10004, "Unknown Guild")


def unknown_member() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10007, "Unknown Member")


def unknown_message() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10008, "Unknown Message")


def unknown_user() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10013, "Unknown User")


def unknown_webhook() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10015, "Unknown Webhook")


def unknown_interaction() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10062, "Unknown interaction")


def unknown_command() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10063, "Unknown application command")


def missing_access() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50001, "Missing Access")


def missing_permissions() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50013, "Missing Permissions")


def cannot_edit_other_user() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50005, "Cannot edit a message authored by another user")


def empty_message() -> DiscordHTTPError:
    return DiscordHTTPError(400, 50006, "Cannot send an empty message", violation=True)


def invalid_webhook_token() -> DiscordHTTPError:
    return DiscordHTTPError(401, 50027, "Invalid Webhook Token")


def already_acknowledged() -> DiscordHTTPError:
    return DiscordHTTPError(400, 40060, "Interaction has already been acknowledged.")


def entity_too_large(limit: int) -> DiscordHTTPError:
    return DiscordHTTPError(413, 40005, "Request entity too large", detail=f"a file exceeds {limit} bytes")


def cannot_send_to_user() -> DiscordHTTPError:
    """A DM to a user whose privacy settings refuse it, or who shares no server with the bot."""
    return DiscordHTTPError(403, 50007, "Cannot send messages to this user")


def cannot_execute_on_dm() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50003, "Cannot execute action on a DM channel")


def invalid_recipients() -> DiscordHTTPError:
    return DiscordHTTPError(400, 50033, "Invalid Recipient(s)")
