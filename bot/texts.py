"""Every sentence members and admins read in Discord, keyed, with parameters.

Code never writes member-facing English inline: it names a key and its parameters, either
rendered at once (:func:`text`) or carried as a :class:`Text` (by a refusal or an error, to be
rendered where it is shown). This is the one place to reword a message.

Every function takes an optional Discord ``locale`` (``"ko"``, ``"en-US"``, …): the sentence comes
from that language's catalogue in :mod:`bot.locales` when it has the key, else from English.
Parameters are ``str.format`` fields. A parameter that is itself a :class:`Text` is rendered in
the same language. Log messages are not here: they are for the admin's terminal, in English.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from bot import locales

ENGLISH: Final[Mapping[str, str]] = MappingProxyType(
    {
        "text.verbatim": "{text}",
        # --- what members typed (bot.inputs) ---
        "input.what.prompt": "prompt",
        "input.what.negative": "negative prompt",
        "input.empty": "The {what} is empty: describe what you want to see.",
        "input.too_long": "The {what} is {length} characters long; the limit is {limit}.",
        "input.seed_range": "The seed must be between 0 and {max}.",
        "input.steps_range": "Steps must be between {min} and {max}.",
        "input.guidance_range": "Guidance must be between {min:g} and {max:g}.",
        "input.unknown_size": "Unknown size {size!r} for {model}; choose one of: {names}.",
        "input.unknown_model": "There is no model {model!r} here; choose one of: {names}.",
        "input.model_gone": (
            "This grid was drawn by {model}, which this bot no longer offers; start a new /imagine instead."
        ),
        "input.no_suffix": "Write at least one suffix: one per line, for example `, watercolor`.",
        "input.too_many_suffixes": "At most {max} suffixes (one tile each); you wrote {count}.",
        "input.suffix_too_long": "Line {line} is {length} characters long; a suffix may have at most {max}.",
        "input.refined_too_long": (
            "This tile's prompt would grow past {max} characters; start a new /imagine instead."
        ),
        "input.invalid_option": "That input is not valid here.",
        # --- refusals before a job is stored (cogs.imagine._access, bot.engine) ---
        "refused.restarting": "The bot is restarting; try again in a minute.",
        "refused.paused": "The bot's admins have paused new jobs for now; try again later.",
        "refused.member_limit": (
            "You already have {limit} jobs waiting or running; "
            "wait for one to finish (or cancel one) before starting another."
        ),
        "refused.queue_full": "The queue is full ({limit} jobs); try again in a few minutes.",
        "refused.direct_messages": "This bot works in servers only, not in direct messages.",
        "refused.guild": "This bot is not enabled in this server.",
        "refused.channel": "This bot is not enabled in this channel; ask an admin where it can be used.",
        "refused.role": "You need one of the roles this server set for the bot.",
        "refused.blocklist": "That prompt is not allowed here (it matched the server's rule `{rule}`).",
        "refused.rate": "You are starting jobs quickly; try again in {seconds} s.",
        "refused.quota": "You have used your {allowance} images for today here; your allowance comes back {resets}.",
        "refused.cooldown": "Slow down: try again in {seconds:.0f} s.",
        "refused.refine_author": "Only the member who made this grid can refine or re-roll it here.",
        "refused.cancel_author": "Only the member who started this job, or a moderator, can cancel it.",
        "refused.not_running": "This job is no longer waiting or running.",
        "refused.unknown_grid": "This grid is no longer known to the bot; start a new /imagine.",
        "refused.unknown_tile": "Job {job} has no tile {tile}.",
        "input.upscale_too_big": (
            "An upscale of this tile would be {width}×{height} pixels; this server allows at most {max} a side."
        ),
        "input.no_image_to_image": "{model} cannot draw from an image, so its tiles cannot be upscaled or varied.",
        "input.recipe_model": "This image was made with the model {model}, which is not configured here.",
        "input.recipe_upscaler": "This image was enlarged by the upscaler {upscaler}, which is not configured here.",
        "input.recipe_unusable": "This recipe cannot be run here: {reason}.",
        "input.chain_too_long": "This image is already {depth} steps from its grid; start again from a new /imagine.",
        # --- why a job failed (shown on its message) ---
        "failed.timeout": "stopped after {seconds} s, the time limit for one job",
        "failed.out_of_memory": "the GPU ran out of memory; try a smaller size or fewer steps",
        "failed.internal": "generation failed with an internal error (details are in the bot's log)",
        "failed.expired_in_redis": "the images expired in Redis before the bot could read them",
        "failed.unreadable_event": "a worker sent something this bot cannot read (are they the same version?)",
        "failed.unreadable_job": "a worker could not read this job (are the bot and workers one version?)",
        "failed.dead_letter": "it stopped {count} GPU workers in a row, so it was set aside",
        "failed.no_worker_for_model": "no GPU worker serves the model {model} right now",
        # --- a job's message while it waits and runs, and its outcome ---
        "job.refining": "Refining tile {tile} of job {job} (seed {seed})",
        "job.queued": "⏳ Queued",
        "job.next": "⏳ Queued — next in line",
        "job.position": "⏳ Queued — position {position} in the queue",
        "job.starting": "🎨 Starting…",
        "job.loading_model": "📦 Loading the model {model}…",
        "job.progress": "🎨 `{bar}`",
        "job.eta": " · ~{seconds:.0f} s left",
        "job.restarting": "⏸ The bot is restarting; this job will run when it is back.",
        "job.delivery_trouble": "⚠️ Done, but Discord is having trouble; retrying the upload…",
        "job.undeliverable": "❌ The grid could not be posted here ({reason}); it is saved as job {job}.",
        "job.failed": "❌ {reason}",
        "job.cancelled": "🚫 Cancelled.",
        "job.cancelled_by": "🚫 Cancelled by {who}.",
        "job.cut_prompt": (
            "ℹ️ The model reads only the first {tokens} tokens of a prompt; this part was ignored: {cut}"
        ),
        "note.negative_unsupported": "ℹ️ {model} takes no negative prompt; yours was not used.",
        "note.negative_low_guidance": (
            "ℹ️ {model} uses a negative prompt only with guidance above {threshold:g}; at {guidance:g} yours "
            "was not used."
        ),
        "note.guidance_unused": "ℹ️ {model} does not use guidance; the value you gave was not used.",
        # --- the finished grid ---
        "grid.refined_title": "Tile {tile} of job {job}, refined",
        "grid.upscaled_title": "Tile {tile} of job {job}, upscaled to {width}×{height}",
        "grid.varied_title": "Tile {tile} of job {job}, varied (strength {strength:g})",
        "grid.strength": "Strength",
        "grid.upscaler": "Upscaler",
        "grid.upscale_footer": "job {job} · Vary for four more like it, Refine to re-prompt this seed",
        "grid.prompt": "**Prompt:** {prompt}",
        "grid.seed": "Seed",
        "grid.seeds": "Seeds",
        "grid.negative": "Negative",
        "grid.steps": "Steps",
        "grid.guidance": "Guidance",
        "grid.size": "Size",
        "grid.model": "Model",
        "grid.time": "Time",
        "grid.time_value": "{seconds:.1f} s",
        "grid.safety": "Safety",
        "grid.flagged_hidden": "⚠️ The safety checker flagged tile(s) {tiles}: hidden.",
        "grid.flagged_spoiler": "⚠️ The safety checker flagged tile(s) {tiles}: sent as a spoiler.",
        "grid.footer": "job {job} · press a number to refine that tile",
        # --- buttons and the refine form ---
        "button.reroll": "Re-roll",
        "button.upscale": "U{tile}",
        "button.vary_subtle": "Vary (subtle)",
        "button.vary_strong": "Vary (strong)",
        "button.refine": "Refine",
        "job.upscaling": "Upscaling tile {tile} of job {job} · seed {seed}",
        "job.varying": "Varying tile {tile} of job {job} · strength {strength:g}",
        "button.cancel": "Cancel",
        "refine.title": "Refine tile {tile} · seed {seed}",
        "refine.label": "One suffix per line (1 to 4 lines)",
        "refine.placeholder": ", watercolor\n, golden hour",
        # --- /imagine's description and options ---
        "imagine.description": "Draw a 2×2 grid of four seeded images from a prompt",
        "imagine.prompt": "What to draw",
        "imagine.negative": "What to keep out of the picture",
        "imagine.seed": "Seed of tile 1 (tiles 2-4 use the next ones); 0 to {max}, random if empty",
        "imagine.steps": "Denoising steps, {min} to {max} (default {default})",
        "imagine.guidance": "How closely to follow the prompt, {min:g} to {max:g} (default {default:g})",
        "imagine.size": "Image size (default {default})",
        "imagine.model": "Which model draws it (default {default})",
        "imagine.steps_by_model": "Denoising steps, {min} to {max} (default: the model's own)",
        "imagine.guidance_by_model": "How closely to follow the prompt, {min:g} to {max:g} (default: the model's own)",
        # --- errors ---
        "error.generic": "Something went wrong; it has been logged for the bot's admin.",
        "error.refine": "Something went wrong with this refinement; it has been logged.",
        "error.prefix": "⚠️ {message}",
        # --- /seedgrid (admins) ---
        "admin.group": "Run the image bot (admins)",
        "admin.status.description": "Model, device, queue and today's figures",
        "admin.queue.description": "Who is waiting, in the order the jobs will run",
        "admin.pause.description": "Refuse new jobs and start no queued ones until resumed",
        "admin.resume.description": "Take new jobs again and run the queue",
        "admin.cancel.description": "Cancel a queued or running job",
        "admin.cancel.job": "The job number (shown under every grid and in /seedgrid queue)",
        "admin.status.model": "**Model** {model}",
        "admin.status.device": "**Device** {device} · **dtype** {dtype}",
        "admin.status.models": "**Models** {models}",
        "admin.status.model_loaded": "{name} (loaded)",
        "admin.status.queue": "**Queue** {waiting} waiting, {running} running",
        "admin.status.paused": " · **paused**",
        "admin.status.no_workers": "**Workers** none connected: jobs wait until one starts (`python -m bot worker`)",
        "admin.status.workers": "**Workers** {count}: {listed}",
        "admin.status.workers_more": " and {count} more",
        "admin.status.done_today": "**Jobs done today** {count}",
        "admin.status.median": " · **median time** {seconds:.1f} s",
        "admin.status.delivering": "**Waiting for delivery** {count} (Discord is slow or failing; retrying)",
        "admin.status.uptime": "**Uptime** {uptime}",
        "duration.days": "{days}d {clock}",
        "duration.clock": "{hours}h {minutes}m {seconds}s",
        "admin.queue.running": "▶️ job {job} · <@{user}> · running",
        "admin.queue.waiting": "{position}. job {job} · <@{user}>",
        "admin.queue.empty": "The queue is empty.",
        "admin.queue.more": "… and {count} more",
        "admin.paused": "⏸ Paused: new jobs are refused; queued ones wait for `/seedgrid resume`.",
        "admin.resumed": "▶️ Resumed.",
        "admin.cancelled": "🚫 Job {job} cancelled.",
        "admin.no_such_job": "There is no job {job} in this server.",
        "admin.not_running": "Job {job} is not waiting or running.",
        # --- /settings (admins): a server's defaults and policies ---
        "settings.group": "This server's defaults and policies (admins)",
        "settings.show.description": "What members get by default here, and where each value comes from",
        "settings.default.description": "Set what members get when they leave an option empty",
        "settings.default.name": "Which default",
        "settings.default.value": "Its value, within the limits of the bot's config file",
        "settings.reset.description": "Give a default back to the bot's config file",
        "settings.nsfw.description": "What happens to flagged tiles in one channel",
        "settings.nsfw.channel": "The channel",
        "settings.nsfw.policy": "allow, blur, spoiler, or file (the config file's choice)",
        "settings.line.server": "**{name}** {value} · set for this server",
        "settings.line.file": "**{name}** {value} · from the config file",
        "settings.line.model": "**{name}** each model's own · from the config file",
        "settings.line.flagged": (
            "**Flagged tiles** {flagged} outside NSFW channels, {nsfw} in them · from the config file"
        ),
        "settings.line.channel": "**Flagged tiles in** <#{channel}> {policy} · set for this server",
        "settings.set": "✅ Members here now get {name} {value} when they leave it empty.",
        "settings.reset": "✅ {name} follows the config file again.",
        "settings.nsfw.set": "✅ Flagged tiles in <#{channel}>: {policy}.",
        "settings.nsfw.reset": "✅ Flagged tiles in <#{channel}> follow the config file again.",
        "settings.quota.description": "How many images a day members with a role may have drawn here",
        "settings.quota.role": "The role (@everyone for all members)",
        "settings.quota.images": "Images a day (0 to 100000); leave it empty to remove the allowance",
        "settings.quota.set": "✅ Members with <@&{role}> may have {images} images drawn a day here.",
        "settings.quota.removed": "✅ <@&{role}> has no daily allowance any more.",
        "settings.line.quota": "**Daily allowance** <@&{role}> {images} images · set for this server",
        # /settings: the server's further policies (bot.rules.server.POLICY_NAMES) and GPU allowances
        "settings.quota.gpu_seconds": "GPU-seconds a day (0 to 1000000); leave it empty for no GPU limit",
        "settings.quota.gpu_set": "✅ Members with <@&{role}> may use {seconds} GPU-seconds a day here.",
        "settings.line.quota_gpu": "**Daily GPU allowance** <@&{role}> {seconds} GPU-seconds · set for this server",
        "settings.blocklist.description": "Words or patterns refused in prompts here, on top of the config file's",
        "settings.blocklist.action": "add, remove, or list this server's entries",
        "settings.blocklist.entry": "A word or phrase, or re:<regular expression>",
        "settings.blocklist.bad_entry": "A blocklist entry is one line of 1 to {max} characters.",
        "settings.blocklist.no_regex": (
            "Regular expressions (`re:`) belong in the bot's config file; here, write a word or a phrase."
        ),
        "settings.blocklist.need_entry": "Say which entry (the `entry` option).",
        "settings.blocklist.full": "This server already has {max} blocklist entries; remove one first.",
        "settings.blocklist.added": "✅ Prompts with {entry} are now refused here.",
        "settings.blocklist.removed": "✅ {entry} is no longer on this server's blocklist.",
        "settings.blocklist.missing": "{entry} is not on this server's blocklist.",
        "settings.blocklist.list": "**This server's blocklist** (and the config file's {count} entries): {entries}",
        "settings.blocklist.empty": "This server has no blocklist entries of its own (the config file has {count}).",
        "settings.channels.description": "The channels where the bot works here (within the config file's)",
        "settings.channels.action": "add or remove a channel, or clear the list (every channel again)",
        "settings.channels.channel": "The channel",
        "settings.channels.need_channel": "Say which channel (the `channel` option).",
        "settings.channels.full": "This server already lists {max} channels.",
        "settings.channels.added": "✅ The bot now works in <#{channel}> (and only the listed channels).",
        "settings.channels.removed": "✅ <#{channel}> is no longer on the list.",
        "settings.channels.cleared": "✅ The bot works in every channel the config file allows again.",
        "settings.roles.description": "The roles a member needs to use the bot here (within the config file's)",
        "settings.roles.action": "add or remove a role, or clear the list (everyone again)",
        "settings.roles.role": "The role",
        "settings.roles.need_role": "Say which role (the `role` option).",
        "settings.roles.full": "This server already lists {max} roles.",
        "settings.roles.added": "✅ Members with <@&{role}> may use the bot here (members need one listed role).",
        "settings.roles.removed": "✅ <@&{role}> is no longer on the list.",
        "settings.roles.cleared": "✅ Every member the config file allows may use the bot here again.",
        "settings.buttons.description": "Who may press a grid's buttons (refine, re-roll, upscale, vary) here",
        "settings.buttons.who": "anyone, author (the grid's member only), or file (the config file's choice)",
        "settings.buttons.set": "✅ A grid's buttons here are now for: {who}.",
        "settings.buttons.reset": "✅ Who may press a grid's buttons follows the config file again.",
        "settings.suggestions.description": "The lines the refine form starts with here",
        "settings.suggestions.lines": "Up to 4 lines separated by | ; leave it empty for the config file's",
        "settings.suggestions.bad": "Write 1 to 4 non-empty lines separated by `|`.",
        "settings.suggestions.set": "✅ The refine form here now starts with: {lines}",
        "settings.suggestions.reset": "✅ The refine form follows the config file again.",
        "settings.private.description": "Whether members may have their results shown to them only",
        "settings.private.allowed": "True: members may choose private results (/preferences private)",
        "settings.private.on": "✅ Members here may now have their results privately (/preferences private).",
        "settings.private.off": "✅ Results here are posted in the channel for everyone again.",
        "settings.line.blocklist.file": "**Blocklist** {count} entries · from the config file",
        "settings.line.blocklist.server": "**Blocklist, this server's** {entries} · set for this server",
        "settings.line.channels.file": "**Channels** {channels} · from the config file",
        "settings.line.channels.server": "**Channels** {channels} · set for this server (within the file's)",
        "settings.line.roles.file": "**Roles** {roles} · from the config file",
        "settings.line.roles.server": "**Roles** {roles} · set for this server (within the file's)",
        "settings.line.everywhere": "any",
        "settings.list.more": "… and {count} more",
        "settings.line.buttons.file": "**Grid buttons** {who} · from the config file",
        "settings.line.buttons.server": "**Grid buttons** {who} · set for this server",
        "settings.line.suggestions.file": "**Refine form lines** {lines} · from the config file",
        "settings.line.suggestions.server": "**Refine form lines** {lines} · set for this server",
        "settings.line.private.file": "**Private results** not allowed · the default",
        "settings.line.private.server": "**Private results** allowed · set for this server",
        "settings.who.anyone": "anyone",
        "settings.who.author": "the member who made the grid",
        "refused.server_channel": "This server's admins have not enabled the bot in this channel.",
        "refused.server_role": "This server's admins have limited the bot to some roles, and you have none of them.",
        "refused.gpu_quota": (
            "You have used your {allowance} GPU-seconds for today here; your allowance comes back {resets}."
        ),
        # --- /preferences and /quota (members) ---
        "prefs.group": "Your own defaults for /imagine",
        "prefs.show.description": "Your defaults, used when you leave an option empty",
        "prefs.set.description": "Set one of your defaults",
        "prefs.set.value": "Its value, within the bot's limits",
        "prefs.reset.description": "Forget one of your defaults",
        "prefs.line.set": "**{name}** {value}",
        "prefs.line.unset": "**{name}** the server's (or the model's own)",
        "prefs.set": "✅ Your default {name} is now {value}.",
        "prefs.reset": "✅ Your default {name} is forgotten: the server's applies.",
        "quota.description": "How many images you have left today in this server",
        "quota.unlimited": "There is no daily allowance for you in this server.",
        "quota.left": "You have {left} of your {allowance} images left today; the allowance comes back {resets}.",
        # /preferences private, and GPU allowances in /quota
        "quota.gpu_left": (
            "You have {left} of your {allowance} GPU-seconds left today; the allowance comes back {resets}."
        ),
        "quota.gpu_unlimited": "There is no daily GPU-seconds limit for you in this server.",
        "prefs.private.description": "Have your results shown to you only, where the server allows it",
        "prefs.private.value": "True: your grids (and what you make from them) are shown to you only",
        "prefs.private.on": "✅ Your results are now shown to you only.",
        "prefs.private.on_not_here": (
            "✅ Saved. This server does not allow private results, so here yours are still posted for everyone."
        ),
        "prefs.private.off": "✅ Your results are posted in the channel again.",
        "prefs.line.private.on": "**private results** on",
        "prefs.line.private.off": "**private results** off",
        "job.private_by_dm": "Your private result, sent here because Discord's 15 minutes to show it ran out:",
        # --- names of commands, options and choices (bot.locales translate them; English is the code's) ---
        # A name is at most 32 characters, lowercase, no spaces (context-menu names excepted).
        "name.imagine": "imagine",
        "name.seedgrid": "seedgrid",
        "name.status": "status",
        "name.queue": "queue",
        "name.pause": "pause",
        "name.resume": "resume",
        "name.cancel": "cancel",
        "name.settings": "settings",
        "name.show": "show",
        "name.default": "default",
        "name.reset": "reset",
        "name.nsfw": "nsfw",
        "name.quota": "quota",
        "name.preferences": "preferences",
        "name.set": "set",
        "name.prompt": "prompt",
        "name.negative": "negative",
        "name.seed": "seed",
        "name.steps": "steps",
        "name.guidance": "guidance",
        "name.size": "size",
        "name.model": "model",
        "name.job": "job",
        "name.name": "name",
        "name.value": "value",
        "name.channel": "channel",
        "name.policy": "policy",
        "name.role": "role",
        "name.images": "images",
        "choice.model": "model",
        "choice.steps": "steps",
        "choice.guidance": "guidance",
        "choice.size": "size",
        "choice.negative": "negative prompt",
        "choice.allow": "allow",
        "choice.blur": "blur",
        "choice.spoiler": "spoiler",
        "choice.file": "as the config file says",
        # --- recipes: Show recipe and /reproduce ---
        "name.show_recipe": "Show recipe",
        "name.reproduce": "reproduce",
        "name.image": "image",
        "name.link": "link",
        "reproduce.description": "Draw an image again from its recipe: a seedgrid PNG, or a link to a seedgrid message",
        "reproduce.image": "A PNG seedgrid posted (or any PNG with AUTOMATIC1111 parameters)",
        "reproduce.link": "A link to a seedgrid message (Copy Message Link)",
        "recipe.give_one": "Give either an image or a message link: one of the two.",
        "recipe.not_png": "{name} is not a PNG: attach the PNG seedgrid posted, as it was posted.",
        "recipe.too_big": "{name} is {size:.1f} MB; a recipe image may be at most {limit:.0f} MB.",
        "recipe.download_failed": "The attachment could not be downloaded; try again.",
        "recipe.unreadable": (
            "{name} carries no recipe seedgrid can read (copies re-encoded by Discord or an editor lose it): "
            "use the original file, or a link to the message."
        ),
        "recipe.bad_link": "That is not a link to a Discord message (right-click the message → Copy Message Link).",
        "recipe.other_server": "That message is in another server; reproduce images of this server here.",
        "recipe.unknown_message": "That message has no recipe this bot knows of: it is not a finished seedgrid image.",
        "recipe.not_ours": "This message was not posted by seedgrid, so it has no recipe.",
        "recipe.none": (
            "This message has no recipe: it is not a finished seedgrid image "
            "(a progress message, a refusal, or an image from before recipes were kept)."
        ),
        "recipe.title": "Recipe of job {job} · {kind}",
        "recipe.kind.imagine": "grid",
        "recipe.kind.refine": "refined grid",
        "recipe.kind.upscale": "upscale",
        "recipe.kind.vary": "variation",
        "recipe.tile": "**{index}** · seed {seed} · {prompt}",
        "recipe.model": "Model",
        "recipe.model_line": "{model} · {family} · `{model_id}`",
        "recipe.settings": "Settings",
        "recipe.settings_line": "{steps} steps · guidance {guidance:g} · {width}×{height} · sampler {sampler}",
        "recipe.strength": "strength {strength:g}",
        "recipe.negative": "Negative prompt",
        "recipe.chain": "Chain",
        "recipe.step": "{kind} · seed {seed} · {width}×{height}",
        "recipe.step_parent": "tile {tile} of job {job}",
        "recipe.this": "this image",
        "recipe.cli": "Command line",
        "recipe.cli_file": "Save the image as `{file}`, then:",
        "recipe.cli_none": "The posted file was re-encoded to fit Discord's upload limit; /reproduce a link to it.",
        "name.blocklist": "blocklist",
        "name.channels": "channels",
        "name.roles": "roles",
        "name.buttons": "buttons",
        "name.suggestions": "suggestions",
        "name.private": "private",
        "name.action": "action",
        "name.entry": "entry",
        "name.who": "who",
        "name.lines": "lines",
        "name.allowed": "allowed",
        "name.gpu_seconds": "gpu_seconds",
        "choice.add": "add",
        "choice.remove": "remove",
        "choice.list": "list",
        "choice.clear": "clear",
        "choice.anyone": "anyone",
        "choice.author": "author only",
    }
)


@dataclass(frozen=True, slots=True)
class Text:
    """A message not yet rendered: its key and parameters (``str(text)`` renders it in English)."""

    key: str
    params: Mapping[str, object] = field(default_factory=dict)

    def __init__(self, key: str, /, **params: object) -> None:
        if key not in ENGLISH:
            raise KeyError(f"no text {key!r} in the catalogue")
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "params", MappingProxyType(params))

    def __str__(self) -> str:
        return self.render(None)

    def render(self, locale: str | None) -> str:
        """This message in ``locale``'s language (English where that language lacks it)."""
        return text(self.key, locale=locale, **self.params)

    def to_json(self) -> str:
        """The key and parameters, to store or send (parameters that are texts are kept as texts)."""
        return json.dumps(self._as_dict(), ensure_ascii=False)

    def _as_dict(self) -> dict[str, object]:
        """What :meth:`to_json` writes, before it is dumped."""
        return {"key": self.key, "params": _params_json(self.params)}

    @classmethod
    def from_json(cls, raw: str) -> Text:
        """What :meth:`to_json` wrote; anything else (a sentence stored by an older version, a key
        this version lacks) is kept verbatim, so nothing is lost."""
        try:
            body = json.loads(raw)
            return cls(body["key"], **_params_from_json(body["params"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls("text.verbatim", text=raw)


def _params_json(params: Mapping[str, object]) -> dict[str, object]:
    return {name: {"text": value._as_dict()} if isinstance(value, Text) else value for name, value in params.items()}


def _params_from_json(params: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            inner = value["text"]
            out[name] = Text(inner["key"], **_params_from_json(inner["params"]))
        else:
            out[name] = value
    return out


def text(key: str, /, *, locale: str | None = None, **params: object) -> str:
    """The message ``key`` in ``locale``'s language, with its parameters filled in."""
    rendered = {name: value.render(locale) if isinstance(value, Text) else value for name, value in params.items()}
    return template(key, locale).format(**rendered)


def template(key: str, locale: str | None) -> str:
    """The unformatted sentence ``key`` in ``locale``'s language, falling back to English."""
    if locale is not None:
        found = locales.catalogue(locale).get(key)
        if found is not None:
            return found
    return ENGLISH[key]


def rendered(message: Text | str, locale: str | None) -> str:
    """``message`` in ``locale``'s language; a plain string is shown as it is."""
    return message.render(locale) if isinstance(message, Text) else message
