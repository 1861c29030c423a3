"""Config upgrades: add the keys a newer version knows to an admin's existing config.

``python -m bridge -c config.yaml upgrade-config`` copies every key that
``config.example.yaml`` has and the admin's file lacks, with its default value and its
comments, next to where the example has it. Nothing the admin wrote changes: the
admin's lines are kept byte for byte (values, comments, order, indentation), and the
new lines are indented to match. A backup is written first.

ruamel.yaml's round-trip parser tells where each key sits; the insertion itself works on
the text, which is what keeps the admin's file exactly as it was. The result is checked
with the YAML loader the bridge uses before anything is written.

Some mappings hold the admin's own entries, not settings, and get no example entries:
``bridge.permissions`` and ``logging.modules`` (not even when missing: the built-in
defaults apply then); under ``networks`` only the networks the admin already has get
their new keys (an example network is never switched on).
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RuamelYAMLError

from .config import ConfigError

Path_ = tuple[str, ...]

ADMIN_ENTRIES: frozenset[Path_] = frozenset({("bridge", "permissions"), ("logging", "modules")})
"""Mappings whose keys are the admin's own entries: nothing is added inside them."""
NAMED_SECTIONS: frozenset[Path_] = frozenset({("networks",)})
"""Mappings of admin-chosen names: only names the admin has get new keys."""


class UpgradeError(ConfigError):
    """The config could not be upgraded; the file was left as it was."""


@dataclass
class UpgradeResult:
    text: str
    added: list[str] = field(default_factory=list)
    """Dotted keys added, in the order they were added."""
    skipped: list[str] = field(default_factory=list)
    """Keys that could not be added (inside a flow-style mapping): add them by hand."""

    @property
    def changed(self) -> bool:
        return bool(self.added)


def example_config_text() -> str:
    """``config.example.yaml``: packaged in the wheel, or from the source tree."""
    packaged = resources.files("bridge").joinpath("config.example.yaml")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    in_repo = Path(__file__).resolve().parent.parent / "config.example.yaml"
    if in_repo.is_file():
        return in_repo.read_text(encoding="utf-8")
    raise UpgradeError("config.example.yaml is missing from this installation")


def upgrade_text(admin_text: str, template_text: str) -> UpgradeResult:
    """The admin's config with the template's missing keys added."""
    template_lines = template_text.splitlines()
    template = _parse(template_text, "config.example.yaml")
    if not isinstance(template, CommentedMap):
        raise UpgradeError("config.example.yaml is not a mapping")
    result = UpgradeResult(admin_text)
    skipped: set[Path_] = set()
    for _ in range(10_000):  # each round adds one key; the template has far fewer
        admin = _parse(result.text, "the config") if result.text.strip() else None
        if admin is None:
            result.text = template_text
            result.added = [str(k) for k in template]
            break
        if not isinstance(admin, CommentedMap):
            raise UpgradeError("the config is not a mapping at the top level")
        step = _next_missing(admin, template, (), skipped)
        if step is None:
            break
        target, key_path, admin_map, template_map = step
        if target == "skip":
            skipped.add(key_path)
            result.skipped.append(".".join(key_path))
            continue
        lines = result.text.splitlines()
        steps = (_indent_step(template), _indent_step(admin))
        if target == "fill":
            new_lines = _fill_empty(lines, template_lines, admin_map, template_map, key_path, steps)
            if new_lines is None:
                skipped.add(key_path)
                result.skipped.append(".".join(key_path))
                continue
            added = ".".join(key_path) + ".*"
        else:
            new_lines = _insert_key(lines, template_lines, admin_map, template_map, key_path, steps)
            added = ".".join(key_path)
        result.text = "\n".join(new_lines) + "\n"
        result.added.append(added)
    _verify(admin_text, result)
    return result


def missing_keys(admin_text: str) -> list[str]:
    """Keys the packaged example has and ``admin_text`` lacks (nothing is written)."""
    return upgrade_text(admin_text, example_config_text()).added


# Finding what is missing ---------------------------------------------------------------


def _next_missing(
    admin: CommentedMap, template: CommentedMap, path: Path_, skipped: set[Path_]
) -> tuple[str, Path_, Any, CommentedMap] | None:
    """The first key (in template order) the admin lacks: ``("insert" | "fill" | "skip",
    path, admin parent or admin value, template parent)``."""
    if path in ADMIN_ENTRIES:
        return None
    for key, template_value in template.items():
        key_path = (*path, str(key))
        if key_path in skipped:
            continue
        if key not in admin:
            if path in NAMED_SECTIONS or key_path in NAMED_SECTIONS or key_path in ADMIN_ENTRIES:
                continue  # example entries the admin doesn't use (e.g. an example network)
            if admin.fa.flow_style() or not admin:
                return ("skip", key_path, admin, template)
            return ("insert", key_path, admin, template)
        admin_value = admin[key]
        if isinstance(template_value, CommentedMap):
            if admin_value is None and key_path not in ADMIN_ENTRIES and path not in NAMED_SECTIONS:
                return ("fill", key_path, admin, template)
            if isinstance(admin_value, CommentedMap):
                found = _next_missing(admin_value, template_value, key_path, skipped)
                if found is not None:
                    return found
    return None


# Editing the text ----------------------------------------------------------------------


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], key_line: int, column: int) -> tuple[int, int]:
    """Lines of one key: its leading comments, the key, and its nested value.

    Returns ``(start, end)`` with ``end`` exclusive and trailing blank lines left out.
    """
    start = key_line
    while start > 0 and _is_comment(lines[start - 1]) and _indent(lines[start - 1]) == column:
        start -= 1
    end = key_line + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and _indent(line) <= column:
            break
        end += 1
    while end > key_line + 1 and not lines[end - 1].strip():
        end -= 1
    return start, end


def _indent_step(doc: CommentedMap, default: int = 4) -> int:
    """How far the file indents a nested mapping (2 or 4, usually)."""
    for key, value in doc.items():
        if isinstance(value, CommentedMap) and value and not value.fa.flow_style():
            step = value.lc.key(next(iter(value)))[1] - doc.lc.key(key)[1]
            if step > 0:
                return step
    return default


def _reindent(block: list[str], from_col: int, to_col: int, from_step: int, to_step: int) -> list[str]:
    """Move a block from ``from_col`` to ``to_col``, nesting by the target's step when
    every line sits on the source's steps (otherwise only shifted)."""
    relative = [_indent(line) - from_col for line in block if line.strip()]
    scale = from_step != to_step and all(r >= 0 and r % from_step == 0 for r in relative)
    out = []
    for line in block:
        if not line.strip():
            out.append("")
            continue
        r = _indent(line) - from_col
        new_indent = to_col + (r // from_step * to_step if scale else r)
        out.append(" " * max(new_indent, 0) + line.lstrip(" "))
    return out


def _insert_key(
    lines: list[str],
    template_lines: list[str],
    admin: CommentedMap,
    template: CommentedMap,
    key_path: Path_,
    steps: tuple[int, int],
) -> list[str]:
    key = key_path[-1]
    t_line, t_col = template.lc.key(key)
    t_start, t_end = _block(template_lines, t_line, t_col)
    left_out = _own_entry_lines(template[key], key_path, template_lines)
    new = [line for i, line in enumerate(template_lines[t_start:t_end], t_start) if i not in left_out]

    keys = list(template)
    present_before = [k for k in keys[: keys.index(key)] if k in admin]
    a_col = admin.lc.key(next(iter(admin)))[1]
    if present_before:
        previous = present_before[-1]
        p_line, _ = admin.lc.key(previous)
        _, at = _block(lines, p_line, a_col)
    else:
        first_line = min(admin.lc.key(k)[0] for k in admin)
        at, _ = _block(lines, first_line, a_col)
    new = _reindent(new, t_col, a_col, *steps)
    if t_start > 0 and not template_lines[t_start - 1].strip() and at > 0 and lines[at - 1].strip():
        new = ["", *new]
    if t_end < len(template_lines) and not template_lines[t_end].strip() and at < len(lines) and lines[at].strip():
        new = [*new, ""]
    return lines[:at] + new + lines[at:]


def _own_entry_lines(value: Any, path: Path_, template_lines: list[str]) -> set[int]:
    """Template lines of the admin-entry mappings inside ``value`` (left out when copying)."""
    out: set[int] = set()
    if not isinstance(value, CommentedMap):
        return out
    for key, child in value.items():
        child_path = (*path, str(key))
        if child_path in ADMIN_ENTRIES or child_path in NAMED_SECTIONS:
            line, col = value.lc.key(key)
            start, end = _block(template_lines, line, col)
            out.update(range(start, end))
        else:
            out |= _own_entry_lines(child, child_path, template_lines)
    return out


def _fill_empty(
    lines: list[str],
    template_lines: list[str],
    admin: CommentedMap,
    template: CommentedMap,
    key_path: Path_,
    steps: tuple[int, int],
) -> list[str] | None:
    """``key:`` with no value in the admin's file: add the template's whole mapping under it."""
    key = key_path[-1]
    t_line, t_col = template.lc.key(key)
    _, t_end = _block(template_lines, t_line, t_col)
    left_out = _own_entry_lines(template[key], key_path, template_lines)
    children = [line for i, line in enumerate(template_lines[t_line + 1 : t_end], t_line + 1) if i not in left_out]
    a_line, a_col = admin.lc.key(key)
    after_colon = lines[a_line].split(":", 1)[1].strip() if ":" in lines[a_line] else "?"
    if after_colon and not after_colon.startswith("#"):
        return None  # "key: null" or "key: ~": nothing can go below it
    children = _reindent(children, t_col, a_col, *steps)
    return lines[: a_line + 1] + children + lines[a_line + 1 :]


# Parsing and checking ------------------------------------------------------------------


def _parse(text: str, what: str) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except RuamelYAMLError as e:
        raise UpgradeError(f"{what} is not valid YAML: {e}") from e


def _verify(original: str, result: UpgradeResult) -> None:
    """The upgraded text must load with the bridge's loader and keep every admin value."""
    try:
        before = yaml.safe_load(original) if original.strip() else {}
        after = yaml.safe_load(result.text)
    except yaml.YAMLError as e:
        raise UpgradeError(f"the upgraded config would not load ({e}); nothing was written") from e
    if not _keeps(before, after):
        raise UpgradeError("the upgrade would change existing values; nothing was written")
    original_lines = [line for line in original.splitlines() if line.strip()]
    if not _is_subsequence(original_lines, result.text.splitlines()):
        raise UpgradeError("the upgrade would change existing lines; nothing was written")


def _keeps(before: Any, after: Any) -> bool:
    if isinstance(before, dict):
        return isinstance(after, dict) and all(k in after and _keeps(v, after[k]) for k, v in before.items())
    if before is None and isinstance(after, dict):
        return True  # an empty section that got its keys
    return before == after


def _is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(line == candidate for candidate in it) for line in needles)


# The command -----------------------------------------------------------------------------


def upgrade_file(path: Path, *, dry_run: bool = False, template_text: str | None = None) -> tuple[UpgradeResult, Path | None]:
    """Upgrade the config at ``path`` in place (after a backup); return the result and
    the backup's path (None when nothing changed or on a dry run)."""
    try:
        original = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UpgradeError(f"can't read {path}: {e.strerror}") from e
    result = upgrade_text(original, template_text if template_text is not None else example_config_text())
    if dry_run or not result.changed:
        return result, None
    backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
    shutil.copy2(path, backup)
    # Write next to the file and rename, so a crash leaves the old or the new file whole.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(result.text)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result, backup


def diff(before: str, after: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), name, name + " (upgraded)"
        )
    )
