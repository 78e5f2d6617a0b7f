"""fakediscord: an in-process, protocol-faithful fake of Discord (gateway + REST) for testing bots.

The real, unmodified discord.py client connects to it over real sockets; every request it sends and every
response the fake returns is validated against Discord's OpenAPI description (``spec/openapi.json``).
"""

from tests.fakediscord.errors import DiscordHTTPError, FakeDiscordError
from tests.fakediscord.interactions import CallbackRecord, Interaction, RejectedCallback
from tests.fakediscord.models import Channel, DMChannel, Guild, Intents, Member, Permissions, Role, Upload, User
from tests.fakediscord.rest import Hold, Injection, RequestDetail, RequestRecord
from tests.fakediscord.server import FakeDiscord
from tests.fakediscord.spec import DiscordSpec, SchemaError, load_spec

__all__ = [
    "CallbackRecord",
    "Channel",
    "DMChannel",
    "DiscordHTTPError",
    "DiscordSpec",
    "FakeDiscord",
    "FakeDiscordError",
    "Guild",
    "Hold",
    "Injection",
    "Intents",
    "Interaction",
    "Member",
    "Permissions",
    "RejectedCallback",
    "RequestDetail",
    "RequestRecord",
    "Role",
    "SchemaError",
    "Upload",
    "User",
    "load_spec",
]
