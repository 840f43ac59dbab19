"""Action files (`Needs_Action/*.action.yaml`): one open work item each, identified by its `id`."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
import yaml

from ai_employee.clock import now_stamp
from ai_employee.errors import FormatError
from ai_employee.vault.notes import FAST_DUMPER, edit_file, load_yaml, update_yaml_text

log = structlog.get_logger(__name__)

ACTION_TYPES = ("file_drop", "email", "schedule", "manual")
ACTION_STATUSES = ("new", "planned", "done", "rejected", "failed")
MAX_ACTION_BYTES = 1024 * 1024
# Titles are kept whole up to this (a sanity cap against hostile subjects); file names are shorter.
MAX_TITLE_CHARS = 300
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|#^\[\]]+')


def new_id() -> str:
    from ulid import ULID  # on first use: reading vaults (the CLI's cheap commands) never needs it

    return str(ULID())


def clean_text(value: str, limit: int = MAX_TITLE_CHARS) -> str:
    """A single-line, control-character-free, length-capped version of an untrusted string."""
    # Lone surrogates (an undecodable byte in a file name) become U+FFFD, so the user sees one was there.
    flat = " ".join(unicodedata.normalize("NFC", _SURROGATE.sub("\ufffd", value)).split())
    flat = "".join(ch for ch in flat if unicodedata.category(ch)[0] != "C")
    return shorten(flat.strip(), limit)


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: cut at a word boundary, with an ellipsis, when it is longer."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space >= limit // 2:  # a word boundary not too far back; else a very long word is cut inside
        cut = cut[:space]
    return cut.rstrip(" .,;:-") + "…"


def file_title(title: str, limit: int = 80) -> str:
    """A file-name-safe title: no path separators, no characters Obsidian links choke on; long titles
    cut at a word boundary with an ellipsis (the whole title stays in the note)."""
    safe = _UNSAFE_NAME.sub(" ", clean_text(title, 400))
    safe = " ".join(safe.split()).strip(" .")
    return shorten(safe, limit).rstrip(" .") or "untitled"


@dataclass
class Action:
    """An open work item, as written to and read from an action file."""

    id: str
    type: str
    title: str
    created: str
    status: str = "new"
    source: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    email: dict[str, Any] | None = None
    plan_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_yaml(self) -> str:
        data: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "created": self.created,
            "title": self.title,
            "source": self.source,
        }
        if self.email:
            data["email"] = self.email
        data["content"] = self.content
        if self.plan_id:
            data["plan_id"] = self.plan_id
        data.update(self.extra)
        return yaml.dump(data, Dumper=FAST_DUMPER, sort_keys=False, allow_unicode=True, width=100)

    def source_links(self, action_file: str) -> list[str]:
        """The plan note's links to this item: its original, and its action file by name (the link stays
        right when the action moves on with its plan)."""
        links = [f"Original: [[{self.source['path']}]]"] if self.source.get("path") else []
        return [*links, f"Action: [[{action_file}]] (id `{self.id}`)"]

    @property
    def sender(self) -> str:
        """Who wrote it, if it is mail: the address, lower case ("" otherwise)."""
        return str((self.email or {}).get("from_addr") or "").strip().lower()

    @property
    def thread(self) -> tuple[str, ...]:
        """The Message-IDs that tie it to a conversation: its own and the one it answers."""
        email = self.email or {}
        return tuple(str(v) for v in (email.get("message_id"), email.get("in_reply_to")) if v)

    @property
    def preview(self) -> str:
        value = self.content.get("preview", "")
        return value if isinstance(value, str) else str(value)

    @property
    def media_kind(self) -> str:
        return str(self.content.get("kind", ""))

    @property
    def task(self) -> str:
        """What the owner configured a job or monitor to do (`content.task`), for an item the engine
        raised itself: only those types carry one (what ingest writes never does: no email can set it).
        The planner follows it; the rest of the item is data."""
        if self.type not in PROACTIVE_TYPES:
            return ""
        return str(self.content.get("task") or "").strip()


PROACTIVE_TYPES = ("schedule", "monitor")  # the types of the items the engine raises itself


def file_name(created: datetime, title: str) -> str:
    return f"{created:%Y-%m-%d} {file_title(title)}.action.yaml"


def parse_action(text: str, what: str) -> dict[str, Any]:
    """The mapping in an action file; FormatError with the reason if it is not one."""
    if len(text) > MAX_ACTION_BYTES:
        raise FormatError(f"{what} is larger than {MAX_ACTION_BYTES // 1024} KiB")
    data = load_yaml(text, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FormatError(f"{what} must be a YAML mapping (id: ..., type: ..., title: ...)")
    return {str(k): v for k, v in data.items()}


def action_from_mapping(data: dict[str, Any], fallback_title: str) -> Action:
    """Build an Action from an action file's mapping, tolerating hand-written files' gaps."""
    known = {"id", "type", "status", "created", "title", "source", "content", "email", "plan_id"}
    title = clean_text(str(data.get("title") or fallback_title))
    content = data.get("content")
    if not isinstance(content, dict):
        # Hand-written files may put free text under content/description/body.
        text = content if isinstance(content, str) else data.get("description") or data.get("body") or ""
        content = {"kind": "text", "preview": str(text)}
    email = data.get("email") if isinstance(data.get("email"), dict) else None
    source = data.get("source")
    return Action(
        id=str(data.get("id") or ""),
        type=str(data.get("type") or "manual"),
        title=title or "untitled",
        created=str(data.get("created") or ""),
        status=str(data.get("status") or "new"),
        source=source if isinstance(source, dict) else ({"ref": str(source)} if source else {}),
        content=content,
        email=email,
        plan_id=str(data["plan_id"]) if data.get("plan_id") else None,
        extra={k: v for k, v in data.items() if k not in known},
    )


def read_action(path: Path) -> tuple[Action, dict[str, Any]]:
    """Read an action file; return the Action and the raw mapping (FormatError if unreadable)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path.name} is not UTF-8 text") from exc
    data = parse_action(text, path.name)
    fallback = path.name.removesuffix(".action.yaml")
    return action_from_mapping(data, fallback), data


def adopt_action_file(path: Path, action: Action, raw: dict[str, object], tmp_dir: Path) -> Action:
    """Give a hand-written action file the keys it lacks (id, status, created, type)."""
    updates: dict[str, object] = {}
    if not action.id:
        updates["id"] = action.id = new_id()
    if "status" not in raw:
        updates["status"] = action.status = "new"
    if "created" not in raw:
        updates["created"] = action.created = now_stamp()
    if "type" not in raw:
        updates["type"] = action.type
    # The new keys go first, so `id:` is where scans for it look (the head of the file).
    header = yaml.dump(updates, Dumper=FAST_DUMPER, sort_keys=False, allow_unicode=True, width=1 << 20)

    def adopt(text: str) -> str:
        bom = "\ufeff" if text.startswith("\ufeff") else ""
        newline = "\r\n" if "\r\n" in text else "\n"
        return bom + header.replace("\n", newline) + text[len(bom) :]

    edit_file(path, adopt, tmp_dir)
    log.info("adopted hand-written action", path=path.name, action_id=action.id)
    return action


def reidentify_action_file(path: Path, action: Action, tmp_dir: Path) -> Action:
    """An action file that reuses another's id (a hand-made copy) gets an id of its own, as a new item."""
    action.id, action.status = new_id(), "new"
    edit_file(
        path, lambda text: update_yaml_text(text, {"id": action.id, "status": "new"}, remove=("plan_id",)), tmp_dir
    )
    log.info("action file reuses another's id: given its own", path=path.name, action_id=action.id)
    return action
