"""Mosquitto configuration for a site: password file, per-node ACL, optional TLS listener.

Every edge node gets its own credential and may publish only under its own lanes' topics and its
own node topics, and subscribe only to its own lanes' command, trigger and receipt topics; central
gets one secret for the whole site, shared by one user per connection (`central`, `central-http`,
`central-live`, `central-w1`..): the broker uses the user name as the client id, so no
credential can take over another client's session. Anonymous access is off; a publish above
`MESSAGE_SIZE_LIMIT` is dropped by the broker; with TLS the plain listener is on localhost only.
Passwords are hashed the way `mosquitto_passwd` does (PBKDF2-SHA512, `$7$` format), so no
mosquitto tool is needed here. Files are written without following symbolic links (each into a
fresh temporary file renamed into place): the password file and credentials.env are 0600.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
from dataclasses import dataclass
from pathlib import Path

from smartgate import contract

PBKDF2_ITERATIONS = 101
# the broker drops a publish above this: 4x the contract's payload maximum
# (contract.MAX_PAYLOAD_BYTES), so an oversized passage still reaches central and is answered
# with a `too_large` rejected receipt instead of vanishing
MESSAGE_SIZE_LIMIT = 1024 * 1024
CENTRAL_CONNECTIONS = ("", "-http", "-live")  # + "-w<k>" per worker (central/ingest.py)


@dataclass(frozen=True)
class NodeAccess:
    """An edge node and the lanes it serves."""

    node_id: str
    lanes: tuple[str, ...]


@dataclass(frozen=True)
class TlsFiles:
    """Certificate files for the TLS listener (paths on the broker host)."""

    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    require_client_cert: bool = False


@dataclass(frozen=True)
class BrokerFiles:
    """What `write_broker_config` wrote."""

    conf: Path
    passwords: Path
    acl: Path
    credentials: Path


def parse_node_spec(spec: str) -> NodeAccess:
    """`edge-01=L1,L2` → NodeAccess; raises ValueError naming the bad part."""
    node, sep, lanes = spec.partition("=")
    if not sep or not lanes:
        raise ValueError(f"node spec {spec!r} must look like NODE=LANE[,LANE...]")
    access = NodeAccess(node.strip(), tuple(x.strip() for x in lanes.split(",") if x.strip()))
    for lane in access.lanes:
        contract.passage_topic("site", lane)  # validates the lane segment
    contract.node_availability_topic("site", access.node_id)  # validates the node segment
    return access


def password_hash(password: str, salt: bytes | None = None) -> str:
    """Mosquitto 2 password-file hash (`$7$101$salt$hash`)."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def central_users(central_user: str = "central", workers: int = 4) -> list[str]:
    """The user of each central connection: in-process ingest, HTTP, live feed, workers."""
    return ([central_user + s for s in CENTRAL_CONNECTIONS]
            + [f"{central_user}-w{k}" for k in range(1, workers + 1)])


def acl_text(
    site: str, nodes: list[NodeAccess], central_user: str = "central", central_workers: int = 4,
    readers: tuple[str, ...] = (),
) -> str:
    """Mosquitto ACL: central reads/writes the site; each node only its lanes and node topics;
    a reader (an integrating platform) only reads the decision topics."""
    root = f"{contract.TOPIC_ROOT}/{site}"
    lines = [f"# SmartGate ACL for site {site}"]
    for user in central_users(central_user, central_workers):
        lines += [f"user {user}", f"topic readwrite {root}/#", ""]
    for reader in readers:
        lines += [f"user {reader}", f"topic read {root}/+/decision", ""]
    for node in nodes:
        lines.append(f"user {node.node_id}")
        lines.append(f"topic write {root}/node/{node.node_id}/available")
        lines.append(f"topic write {root}/node/{node.node_id}/status")
        for lane in node.lanes:
            lines.append(f"topic write {root}/{lane}/passage")
            lines.append(f"topic write {root}/{lane}/status")
            lines.append(f"topic write {root}/{lane}/command/ack")
            lines.append(f"topic read {root}/{lane}/command")
            lines.append(f"topic read {root}/{lane}/trigger")
            lines.append(f"topic read {root}/{lane}/receipt")
        lines.append("")
    return "\n".join(lines)


def lane_owners_from_acl(text: str) -> dict[tuple[str, str], str]:
    """(site, lane) -> node id, read from an ACL that `acl_text` wrote (the user that may
    publish a lane's passages serves that lane)."""
    owners: dict[tuple[str, str], str] = {}
    user = None
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "user":
            user = words[1]
        elif len(words) == 3 and words[:2] == ["topic", "write"] and user is not None:
            try:
                site, lane, kind = contract.parse_topic(words[2])
            except contract.ContractError:
                continue
            if kind == "passage":
                owners[(site, lane)] = user
    return owners


def mosquitto_conf_text(
    folder: Path, port: int, bind: str, tls: TlsFiles | None, tls_port: int,
    persistence: bool = True,
) -> str:
    """The mosquitto.conf text, pointing at the password and ACL files in `folder`; with TLS
    the plain listener is bound to localhost (for local tools), TLS to `bind`."""
    lines = [
        "# SmartGate site broker (generated by `smartgate broker config`)",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {folder / 'passwords'}",
        f"acl_file {folder / 'acl'}",
        f"# a larger publish is dropped (contract payload maximum {contract.MAX_PAYLOAD_BYTES})",
        f"message_size_limit {MESSAGE_SIZE_LIMIT}",
        "max_queued_messages 100000",
        "max_inflight_messages 100",
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {folder}/",
        "# save queued QoS 1 messages at once, not every 30 minutes (the default)",
        "autosave_interval 1",
        "autosave_on_changes true",
        "",
        f"listener {port} {'127.0.0.1' if tls is not None else bind}",
        # a listener option (before any listener line it would open a default listener on
        # 1883): the client id is the user name, so no credential takes over another's session
        "use_username_as_clientid true",
    ]
    if tls is not None:
        lines += ["", f"listener {tls_port} {bind}", "use_username_as_clientid true",
                  f"certfile {tls.certfile}", f"keyfile {tls.keyfile}"]
        if tls.cafile is not None:
            lines.append(f"cafile {tls.cafile}")
        if tls.require_client_cert:
            lines.append("require_certificate true")
        lines.append("tls_version tlsv1.2")
    return "\n".join(lines) + "\n"


def write_broker_config(
    folder: Path, site: str, nodes: list[NodeAccess], port: int = 1883, bind: str = "0.0.0.0",
    tls: TlsFiles | None = None, tls_port: int = 8883, central_user: str = "central",
    passwords: dict[str, str] | None = None, broker_user: str = "mosquitto",
    central_workers: int = 4, readers: tuple[str, ...] = (),
) -> BrokerFiles:
    """Write mosquitto.conf, passwords (0600), acl and credentials.env (0600) into `folder`.

    The central users (`central_users`) share the secret of `central_user`; each edge node and
    each reader gets its own. `folder` must not be a symbolic link and no file in it is
    followed: each is written to a new temporary file and renamed over the old one. When run
    as root and `broker_user` exists (mosquitto drops to it), the folder, password file and ACL
    are given to that user so the broker can read them and persist its state.
    """
    contract.passage_topic(site, "L1")  # validates the site segment
    if not nodes:
        raise ValueError("at least one edge node is needed")
    for reader in readers:
        contract.node_status_topic(site, reader)  # validates the user name as a segment
    centrals = central_users(central_user, central_workers)
    secret_users = [central_user, *(n.node_id for n in nodes), *readers]
    users = [*centrals, *secret_users[1:]]
    if len(set(users)) != len(users):
        raise ValueError(f"user names must be unique: {users}")
    folder = folder.absolute()
    folder.mkdir(parents=True, exist_ok=True)
    passwords = dict(passwords or {})
    for user in secret_users:
        passwords.setdefault(user, secrets.token_urlsafe(18))
    secret_of = {u: passwords[central_user] if u in centrals else passwords[u] for u in users}
    files = BrokerFiles(folder / "mosquitto.conf", folder / "passwords", folder / "acl",
                        folder / "credentials.env")
    dir_fd = _open_folder(folder)
    try:
        _write_file(dir_fd, files.passwords.name, 0o600,
                    "".join(f"{u}:{password_hash(secret_of[u])}\n" for u in users), broker_user)
        _write_file(dir_fd, files.acl.name, 0o644,
                    acl_text(site, nodes, central_user, central_workers, readers), broker_user)
        _write_file(dir_fd, files.conf.name, 0o644,
                    mosquitto_conf_text(folder, port, bind, tls, tls_port))
        _write_file(
            dir_fd, files.credentials.name, 0o600,
            "".join(f"SMARTGATE_MQTT_PASSWORD_{u.upper().replace('-', '_')}={passwords[u]}\n"
                    for u in secret_users),
        )
        _give_to_broker(broker_user, dir_fd)
    finally:
        os.close(dir_fd)
    return files


def _open_folder(folder: Path) -> int:
    """A descriptor of `folder`, refusing a symbolic link (O_NOFOLLOW)."""
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ValueError(f"output folder {folder} is not a plain folder "
                         f"(a symbolic link?): {exc.strerror}") from exc


def _broker_ids(user: str) -> tuple[int, int] | None:
    """uid/gid of the broker's user when running as root and it exists."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _give_to_broker(user: str, dir_fd: int) -> None:
    ids = _broker_ids(user)
    if ids is not None:
        os.fchown(dir_fd, *ids)


def _write_file(dir_fd: int, name: str, mode: int, text: str, owner: str | None = None) -> None:
    """Write `name` in the folder of `dir_fd` with `mode` (and `owner`, when root): into a new
    temporary file (O_EXCL, O_NOFOLLOW) renamed over `name`, so a symbolic or hard link planted
    under `name` is replaced, never written through."""
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode,
                 dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), mode)  # whatever the umask
            ids = _broker_ids(owner) if owner else None
            if ids is not None:
                os.fchown(fh.fileno(), *ids)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.unlink(tmp, dir_fd=dir_fd)
        raise
