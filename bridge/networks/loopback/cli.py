"""Act as people on the loopback network from a shell (handy while trying the demo).

Examples::

    python -m bridge.networks.loopback.cli create-user alice --name Alice
    python -m bridge.networks.loopback.cli create-chat --title Party --members alice bob --id party
    python -m bridge.networks.loopback.cli post --as alice --chat party "hello"
    python -m bridge.networks.loopback.cli messages --chat party

``--as USER`` looks that user's token up through the admin API, so no token is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import Any

import aiohttp

from .client import LoopbackClient, LoopbackError

DEFAULT_URL = "http://127.0.0.1:29410"


def _members(values: list[str]) -> list[str]:
    # accept both "--members a b" and "--members a,b"
    return [m for v in values for m in v.split(",") if m]


def format_message(msg: dict[str, Any]) -> str:
    """One history line: time, id, sender, text and any reply/media/reactions/flags."""
    when = datetime.fromtimestamp(msg["ts"] / 1000).strftime("%Y-%m-%d %H:%M:%S")
    parts = [f"[{when}] {msg['id']} {msg['sender']}:"]
    if msg.get("reply_to"):
        parts.append(f"(reply to {msg['reply_to']})")
    if msg.get("deleted"):
        parts.append("<deleted>")
    else:
        if msg.get("text"):
            parts.append(msg["text"])
        media = msg.get("media")
        if media:
            size, media_id = media["size"], media["media_id"]
            parts.append(f"[{media['kind']}: {media['name']}, {size} bytes, {media_id}]")
    if msg.get("edited"):
        parts.append("(edited)")
    reactions = msg.get("reactions") or {}
    if reactions:
        shown = ", ".join(f"{emoji} {' '.join(users)}" for emoji, users in reactions.items())
        parts.append(f"{{{shown}}}")
    return " ".join(parts)


async def _as(admin: LoopbackClient, user_id: str) -> LoopbackClient:
    user = await admin.admin_get_user(user_id)
    return admin.as_user(user["token"])


async def run(args: argparse.Namespace) -> int:
    """Run one parsed command against the service; returns the exit status."""
    async with LoopbackClient(args.url) as admin:
        if args.command == "create-user":
            made = await admin.admin_create_user(
                args.user_id, args.name or args.user_id, phone=args.phone, username=args.username
            )
            print(f"created user {made['id']} (token {made['token']})")
        elif args.command == "create-chat":
            made = await admin.admin_create_chat(
                args.title,
                _members(args.members),
                chat_id=args.id,
                topic=args.topic,
                kind=args.kind,
            )
            print(f"created chat {made['id']}")
        elif args.command == "users":
            for user in await admin.admin_list_users():
                print(f"{user['id']}\t{user['display_name']}\t{user['token']}")
        elif args.command == "chats":
            for chat in await admin.admin_list_chats():
                print(f"{chat['id']}\t{chat['kind']}\t{chat['title']}\t{','.join(chat['members'])}")
        elif args.command == "messages":
            for msg in await admin.admin_get_messages(args.chat, limit=args.limit):
                print(format_message(msg))
        elif args.command == "post":
            user = await _as(admin, args.as_user)
            sent = await user.send_message(
                args.chat, " ".join(args.text), reply_to=args.reply_to, txn_id=args.txn_id
            )
            print(f"posted {sent['id']}")
        elif args.command == "edit":
            user = await _as(admin, args.as_user)
            await user.edit_message(args.chat, args.message_id, " ".join(args.text))
            print(f"edited {args.message_id}")
        elif args.command == "delete":
            user = await _as(admin, args.as_user)
            await user.delete_message(args.chat, args.message_id)
            print(f"deleted {args.message_id}")
        elif args.command == "react":
            user = await _as(admin, args.as_user)
            if args.remove:
                await user.remove_reaction(args.chat, args.message_id, args.emoji)
            else:
                await user.add_reaction(args.chat, args.message_id, args.emoji)
            print(f"{'removed' if args.remove else 'added'} {args.emoji} on {args.message_id}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.networks.loopback.cli",
        description="Act as people on a running loopback network.",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="service URL (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("create-user", help="create a user")
    p.add_argument("user_id")
    p.add_argument("--name", help="display name (default: the id)")
    p.add_argument("--phone")
    p.add_argument("--username")

    p = sub.add_parser("create-chat", help="create a chat (as the network, no member needed)")
    p.add_argument("--title", required=True)
    p.add_argument("--members", nargs="+", required=True, help="user ids, space or comma separated")
    p.add_argument("--id", help="chat id (default: generated)")
    p.add_argument("--topic")
    p.add_argument("--kind", choices=["group", "direct"], default="group")

    sub.add_parser("users", help="list users with their tokens")
    sub.add_parser("chats", help="list chats")

    p = sub.add_parser("messages", help="print a chat's history, oldest first")
    p.add_argument("--chat", required=True)
    p.add_argument("--limit", type=int, default=50)

    def acting(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--as", dest="as_user", required=True, metavar="USER", help="act as them")
        p.add_argument("--chat", required=True)
        return p

    p = acting("post", "post a message as a user")
    p.add_argument("text", nargs="+", help="message text (several words are joined by spaces)")
    p.add_argument("--reply-to", metavar="MESSAGE_ID")
    p.add_argument("--txn-id", help="idempotency key: posting twice with it sends once")

    p = acting("edit", "edit one of the user's messages")
    p.add_argument("message_id")
    p.add_argument("text", nargs="+")

    p = acting("delete", "delete one of the user's messages")
    p.add_argument("message_id")

    p = acting("react", "add (or --remove) a reaction as a user")
    p.add_argument("message_id")
    p.add_argument("emoji")
    p.add_argument("--remove", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except LoopbackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except aiohttp.ClientError as err:
        print(f"error: cannot reach the loopback network at {args.url}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
