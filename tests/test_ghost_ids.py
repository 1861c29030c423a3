"""Ghost user ids round-trip and stay Matrix-legal; ghost names never show a phone number."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from bridge.core.events import UserInfo
from bridge.core.ghosts import looks_like_phone_number, safe_display_name
from bridge.core.ids import GhostKey, NetworkID, RemoteUserID
from bridge.matrix.ids import GhostIDs, escape_localpart, unescape_localpart

DOMAIN = "test.local"
LEGAL_LOCALPART = re.compile(r"[a-z0-9._=\-/]+")

network_names = st.from_regex(r"[a-z][a-z0-9]{0,11}", fullmatch=True)
remote_ids = st.text(min_size=1, max_size=60)
ghost_prefixes = st.from_regex(r"[a-z0-9._=-]{0,8}", fullmatch=True)
domains = st.sampled_from([DOMAIN, "example.org", "localhost:8448", "[::1]:8448", "a.b-c.d"])


def key(network: str, remote: str) -> GhostKey:
    return GhostKey(NetworkID(network), RemoteUserID(remote))


def localpart(mxid: str, domain: str) -> str:
    assert mxid.startswith("@") and mxid.endswith(":" + domain)
    return mxid[1 : -len(domain) - 1]


# --- ghost ids ------------------------------------------------------------------------------


@settings(max_examples=400)
@given(network=network_names, remote=remote_ids, prefix=ghost_prefixes, domain=domains)
@example(network="loopback", remote="=3d_x_=", prefix="hub_", domain=DOMAIN)
@example(network="a", remote="Ünïcødé 🐇 +49 151", prefix="", domain=DOMAIN)
@example(network="telegram", remote="_", prefix="hub_", domain=DOMAIN)
def test_a_ghost_id_parses_back_to_its_key(network: str, remote: str, prefix: str, domain: str) -> None:
    ghosts = GhostIDs(prefix, domain)
    ghost = key(network, remote)
    assert ghosts.parse(ghosts.mxid(ghost)) == ghost


@settings(max_examples=400)
@given(network=network_names, remote=remote_ids)
def test_a_ghost_localpart_uses_only_matrix_legal_characters(network: str, remote: str) -> None:
    mxid = GhostIDs("hub_", DOMAIN).mxid(key(network, remote))
    local = localpart(mxid, DOMAIN)
    assert LEGAL_LOCALPART.fullmatch(local), local
    assert local.startswith(f"hub_{network}_")


@given(remote=remote_ids)
def test_escaping_is_reversible_and_changes_only_what_it_must(remote: str) -> None:
    escaped = escape_localpart(remote)
    assert unescape_localpart(escaped) == remote
    if re.fullmatch(r"[a-z0-9.\-]+", remote):
        assert escaped == remote


@given(network=network_names, a=remote_ids, b=remote_ids)
def test_different_remote_users_get_different_ghost_ids(network: str, a: str, b: str) -> None:
    assume(a != b)
    ghosts = GhostIDs("hub_", DOMAIN)
    assert ghosts.mxid(key(network, a)) != ghosts.mxid(key(network, b))


@settings(max_examples=300)
@given(local=st.text(min_size=1, max_size=40), domain=domains)
def test_users_outside_the_ghost_prefix_are_not_ghosts(local: str, domain: str) -> None:
    assume(not local.startswith("hub_"))
    assert GhostIDs("hub_", DOMAIN).parse(f"@{local}:{domain}") is None


@given(network=network_names, remote=remote_ids, other=st.sampled_from(["example.org", "test.locals", "evil.test.local"]))
def test_ghost_ids_of_another_server_are_not_ghosts(network: str, remote: str, other: str) -> None:
    mxid = GhostIDs("hub_", other).mxid(key(network, remote))
    assert GhostIDs("hub_", DOMAIN).parse(mxid) is None


@pytest.mark.parametrize(
    "mxid",
    [
        "@alice:test.local",
        "@hubbridge:test.local",
        "@hub_:test.local",
        "@hub_loopback:test.local",
        "@hub_loopback_:test.local",
        "@hub_Loopback_x:test.local",
        "@hub_9net_x:test.local",
        "@hub__x:test.local",
        "hub_loopback_x:test.local",
        "@hub_loopback_x",
        "",
    ],
)
def test_parse_rejects_ids_that_are_not_ghosts(mxid: str) -> None:
    assert GhostIDs("hub_", DOMAIN).parse(mxid) is None


@settings(max_examples=300)
@given(local=st.text(alphabet="abcABC=0f_:-", min_size=1, max_size=12))
@example(local="=61")
@example(local="A")
def test_parse_accepts_only_the_canonical_id_of_a_ghost(local: str) -> None:
    ghosts = GhostIDs("hub_", DOMAIN)
    mxid = f"@hub_loopback_{local}:{DOMAIN}"
    parsed = ghosts.parse(mxid)
    assert parsed is None or ghosts.mxid(parsed) == mxid


# --- display names --------------------------------------------------------------------------

PHONE_NAMES = [
    "+49 151 1234 5678",
    "(555) 123-4567",
    "0151/12345678",
    "+1 (555) 123-4567",
    "555.123.4567",
    "+44 20 7946 0958",
    "+33 6 12 34 56 78",
    "+4915112345678",
    "0049 151 12345678",
    "  +49-151-12345678  ",
    "+49\u00a0151\u00a012345678",
    "+１５５５１２３４５６７",
]
KEPT_NAMES = ["Agent 47", "R2-D2", "Apollo 13", "Route 66 Diner", "2Pac", "Class of 2024", "1984", "Zoë"]


def digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


@pytest.mark.parametrize("name", PHONE_NAMES)
def test_a_phone_number_display_name_is_never_shown(name: str) -> None:
    assert looks_like_phone_number(name)
    shown = safe_display_name(UserInfo(user_id=RemoteUserID("u1"), display_name=name), "Loopback")
    assert shown == "Unknown user (Loopback)"
    with_username = safe_display_name(
        UserInfo(user_id=RemoteUserID("u1"), display_name=name, username="alice"), "Loopback"
    )
    assert with_username == "alice (Loopback)"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            "\u202a+49 151 12345678\u202c"
        ),
        pytest.param(
            "\u2068+49 151 12345678\u2069"
        ),
        pytest.param(
            "\u200e+49 151 12345678"
        ),
        pytest.param(
            "+49\u2011151\u201112345678"
        ),
    ],
)
def test_a_phone_number_wrapped_in_invisible_or_unusual_characters_is_never_shown(name: str) -> None:
    shown = safe_display_name(UserInfo(user_id=RemoteUserID("u1"), display_name=name), "Loopback")
    assert "12345678" not in digits(shown)


@pytest.mark.parametrize("name", KEPT_NAMES)
def test_a_normal_name_with_digits_is_kept(name: str) -> None:
    assert not looks_like_phone_number(name)
    shown = safe_display_name(UserInfo(user_id=RemoteUserID("u1"), display_name=name), "Loopback")
    assert shown == f"{name} (Loopback)"


def test_a_name_that_contains_the_persons_phone_number_is_not_shown() -> None:
    info = UserInfo(
        user_id=RemoteUserID("u1"), display_name="Alice +4915112345678", phone="+4915112345678", username="alice"
    )
    assert safe_display_name(info, "Loopback") == "alice (Loopback)"


def test_a_name_holding_the_phone_number_in_another_format_is_not_shown() -> None:
    info = UserInfo(
        user_id=RemoteUserID("u1"), display_name="Alice +49 151 1234 5678", phone="+4915112345678"
    )
    assert "12345678" not in digits(safe_display_name(info, "Loopback"))


def test_a_phone_number_username_fallback_is_not_shown() -> None:
    info = UserInfo(user_id=RemoteUserID("u1"), display_name=None, username="+4915112345678")
    assert "4915112345678" not in digits(safe_display_name(info, "Loopback"))


phone_separators = st.sampled_from([" ", "-", ".", "/", "  ", " - "])


@settings(max_examples=300)
@given(
    groups=st.lists(st.from_regex(r"[0-9]{2,4}", fullmatch=True), min_size=3, max_size=5),
    separator=phone_separators,
    plus=st.booleans(),
    parens=st.booleans(),
)
def test_any_formatted_phone_number_is_recognised(
    groups: list[str], separator: str, plus: bool, parens: bool
) -> None:
    if parens:
        groups = [f"({groups[0]})", *groups[1:]]
    number = ("+" if plus else "") + separator.join(groups)
    assume(len(digits(number)) >= 7)
    assert looks_like_phone_number(number)
    shown = safe_display_name(UserInfo(user_id=RemoteUserID("u"), display_name=number), "Net")
    assert digits(shown) == ""


@settings(max_examples=300)
@given(name=st.text(min_size=1, max_size=30))
def test_a_name_with_a_letter_and_few_digits_is_shown_as_given(name: str) -> None:
    assume(any(c.isalpha() for c in name) and name.strip() and len(digits(name)) < 6)
    info = UserInfo(user_id=RemoteUserID("u"), display_name=name)
    assert safe_display_name(info, "Net") == f"{name.strip()} (Net)"
