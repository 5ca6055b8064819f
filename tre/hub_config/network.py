"""No egress: one network namespace per server, joined to the host by a veth pair.

A hub takes a block (a /22) of the address pool (`hub_netns_pool`, default 10.213.0.0/16):

- the hub's API listens on the block's first address, put on the host's `lo` as a /32;
- each server gets a /30 of the block: the host end of its veth pair (`tr<block>h<slot>`)
  and the server's end (`eth0` in namespace `tre-<block>-<slot>`). The namespace has one
  route besides its /30: a host route to the hub's API address. No default route; the host
  does not forward (and an nftables table of this hub drops forwarding to and from the
  servers' links, should someone turn forwarding on). IPv6 is off on both ends;
- the hub's nftables table (`inet tre_hub_<block>`) accepts, from the servers' links, only
  packets to the hub's API port and replies to connections the host opened (the proxy's and
  the hub's connections into the servers); everything else from a server is rejected, so a
  server cannot reach any other listener of the host, nor another server.

Blocks are allocated under a lock file, so hubs of several TRE installations (a demo and a
test run) can share a machine. What a hub allocated is written to `network.json` in its
state directory; a hub that died without cleaning up is cleaned up at its next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import os
import subprocess
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tre.errors import ConfigError

NETNS_DIR = Path("/run/netns")
LOCK_FILE = Path("/run/lock/tre-hub-network.lock")
BLOCK_PREFIX = 22  # 256 /30s: the hub's own address and 255 servers
SERVER_PORT = 8888  # every server has a namespace of its own, so every server can use it


@dataclass(frozen=True)
class ServerLink:
    """One server's namespace and veth pair."""

    netns: str
    host_if: str
    host_ip: str
    server_ip: str

    @property
    def netns_path(self) -> str:
        return str(NETNS_DIR / self.netns)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class HubNetwork:
    """The block of addresses one hub owns, and the names derived from it."""

    pool: str
    block: int
    api_port: int
    internal_port: int = 0  # JupyterHub's own port on 127.0.0.1, behind the API gate

    @property
    def network(self) -> ipaddress.IPv4Network:
        pool = ipaddress.IPv4Network(self.pool)
        return list(pool.subnets(new_prefix=BLOCK_PREFIX))[self.block]

    @property
    def hub_address(self) -> str:
        return str(self.network[1])

    @property
    def tag(self) -> str:
        return f"{self.block:02x}"

    @property
    def interface_prefix(self) -> str:
        return f"tr{self.tag}h"

    @property
    def netns_prefix(self) -> str:
        return f"tre-{self.tag}-"

    @property
    def table(self) -> str:
        return f"tre_hub_{self.tag}"

    def link(self, slot: int) -> ServerLink:
        if not 1 <= slot <= 255:
            raise ValueError(f"server slot {slot} outside 1..255")
        base = self.network[4 * slot]
        return ServerLink(
            netns=f"{self.netns_prefix}{slot:03d}",
            host_if=f"{self.interface_prefix}{slot:03d}",
            host_ip=str(base + 1),
            server_ip=str(base + 2),
        )

    def as_dict(self) -> dict:
        return {"pool": self.pool, "block": self.block, "api_port": self.api_port, "internal_port": self.internal_port}

    def nft_ruleset(self) -> str:
        servers = f'iifname "{self.interface_prefix}*"'
        return f"""table inet {self.table} {{
    chain input {{
        type filter hook input priority filter; policy accept;
        {servers} ct state established,related accept
        {servers} ip daddr {self.hub_address} tcp dport {self.api_port} accept
        {servers} reject with icmpx admin-prohibited
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        {servers} drop
        oifname "{self.interface_prefix}*" drop
    }}
}}
"""


def _run(argv: list[str], *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=check)


def check_tools() -> None:
    """Raise a one-line ConfigError unless `ip` and `nft` are installed."""
    missing = [
        tool for tool in ("ip", "nft") if not any(Path(d, tool).exists() for d in ("/usr/sbin", "/sbin", "/usr/bin"))
    ]
    if missing:
        raise ConfigError(
            f"network isolation needs {' and '.join(missing)}: install iproute2 and nftables "
            '(`make setup` does), or set hub_isolation = "off"'
        )


@contextmanager
def _allocation_lock():
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _blocks_in_use(pool: ipaddress.IPv4Network) -> set[int]:
    blocks = list(pool.subnets(new_prefix=BLOCK_PREFIX))
    used = set()
    out = _run(["ip", "-o", "-4", "addr", "show"]).stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" not in parts:
            continue
        address = ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).ip
        for i, block in enumerate(blocks):
            if address in block:
                used.add(i)
    tables = _run(["nft", "list", "tables"], check=False).stdout
    for line in tables.splitlines():
        name = line.split()[-1] if line.strip() else ""
        if name.startswith("tre_hub_"):
            with suppress(ValueError):
                used.add(int(name.removeprefix("tre_hub_"), 16))
    return used


def allocate(state_file: Path, pool: str, api_port: int) -> HubNetwork:
    """Take a free block of the pool for this hub: the API address on `lo` and the firewall."""
    check_tools()
    try:
        pool_net = ipaddress.IPv4Network(pool)
    except ValueError:
        raise ConfigError(f"hub_netns_pool {pool!r} is not an IPv4 network such as 10.213.0.0/16") from None
    if pool_net.prefixlen > BLOCK_PREFIX:
        raise ConfigError(f"hub_netns_pool {pool} is too small: it needs at least a /{BLOCK_PREFIX}")
    release_stale(state_file)
    with _allocation_lock():
        used = _blocks_in_use(pool_net)
        free = [i for i in range(2 ** (BLOCK_PREFIX - pool_net.prefixlen)) if i not in used]
        if not free:
            raise ConfigError(
                f"no free /{BLOCK_PREFIX} left in hub_netns_pool {pool}: stop another hub or widen the pool"
            )
        net = HubNetwork(pool=str(pool_net), block=free[0], api_port=api_port, internal_port=_free_local_port())
        _run(["ip", "addr", "add", f"{net.hub_address}/32", "dev", "lo"])
        try:
            _run(["nft", "-f", "-"], input=net.nft_ruleset())
        except subprocess.CalledProcessError:
            _run(["ip", "addr", "del", f"{net.hub_address}/32", "dev", "lo"], check=False)
            raise
        state_file.write_text(json.dumps(net.as_dict()))
        state_file.chmod(0o600)
    return net


def _free_local_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(state_file: Path) -> HubNetwork | None:
    """The block the hub of this installation holds, if any."""
    try:
        return HubNetwork(**json.loads(state_file.read_text()))
    except FileNotFoundError:
        return None


def release(net: HubNetwork) -> None:
    """Remove every server namespace of the block, the firewall table and the API address."""
    if NETNS_DIR.is_dir():
        for name in sorted(os.listdir(NETNS_DIR)):
            if name.startswith(net.netns_prefix):
                _run(["ip", "netns", "del", name], check=False)
    _run(["nft", "delete", "table", "inet", net.table], check=False)
    _run(["ip", "addr", "del", f"{net.hub_address}/32", "dev", "lo"], check=False)


def release_stale(state_file: Path) -> None:
    net = load(state_file)
    if net is not None:
        release(net)
        state_file.unlink(missing_ok=True)


def reserve_slot(net: HubNetwork, slots_dir: Path) -> int:
    """Claim the lowest free server slot (atomically, with an O_EXCL file)."""
    slots_dir.mkdir(mode=0o700, exist_ok=True)
    for slot in range(1, 256):
        try:
            fd = os.open(slots_dir / str(slot), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return slot
    raise RuntimeError("all 255 server slots of this hub are in use")


def free_slot(slots_dir: Path, slot: int) -> None:
    (slots_dir / str(slot)).unlink(missing_ok=True)


async def _ip(*args: str, input: str | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        *args,
        stdin=asyncio.subprocess.PIPE if input else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate(input.encode() if input else None)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {err.decode().strip()}")


async def create_link(net: HubNetwork, slot: int) -> ServerLink:
    """Make the server's namespace and veth pair; its only way out is to the hub's API."""
    link = net.link(slot)
    await remove_link(link)  # a leftover of a crashed server in this slot
    await _ip("netns", "add", link.netns)
    host_side = "\n".join(
        [
            f"link add {link.host_if} type veth peer name eth0 netns {link.netns}",
            f"link set {link.host_if} addrgenmode none",
            f"addr add {link.host_ip}/30 dev {link.host_if}",
            f"link set {link.host_if} up",
        ]
    )
    await _ip("-batch", "-", input=host_side + "\n")
    server_side = "\n".join(
        [
            "link set lo up",
            "link set eth0 addrgenmode none",
            f"addr add {link.server_ip}/30 dev eth0",
            "link set eth0 up",
            f"route add {net.hub_address}/32 via {link.host_ip} dev eth0",
        ]
    )
    await _ip("-n", link.netns, "-batch", "-", input=server_side + "\n")
    return link


async def remove_link(link: ServerLink) -> None:
    """Delete the namespace (which deletes its end of the pair, and so the pair)."""
    if (NETNS_DIR / link.netns).exists():
        await _ip("netns", "del", link.netns)
    if Path(f"/sys/class/net/{link.host_if}").exists():
        with contextlib.suppress(RuntimeError):  # gone with the namespace meanwhile
            await _ip("link", "del", link.host_if)
