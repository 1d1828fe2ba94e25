"""The machines of a cluster run, and how to reach them with the system's ssh client.

A hosts file has one machine per line, ``[user@]host[:port] [data-dir]``;
blank lines and ``#`` comments are ignored. The host is a name, an IPv4
address or an IPv6 address in brackets (``[::1]:2222``). The system ``ssh``
is used so the user's ssh config, agent and keys apply; it runs in batch mode
(never asks for a password) with a connect timeout.

Nothing read from a hosts file may steer ssh or a shell: user and host names
are limited to letters, digits, ``_``, ``.`` and ``-`` (never first), which
also keeps them harmless where ssh_config substitutes them (``%h``, ``%r`` in
a ProxyCommand), and they reach ssh as ``-l USER -p PORT -- HOST``, after the
end of its options. The data dir must be an absolute path, and is quoted
wherever a remote shell sees it.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass

from storage.documents import read_text

from .errors import JobLoadError

TARGET = "[user@]host[:port]"
HOSTS_LINE = f"{TARGET} [data-dir]"

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""A user or host name (an IPv4 address is one too), or an IPv6 zone."""
_NAME_RULE = "may only have letters, digits, '_', '.' and '-', and may not start with '.' or '-'"

_ADDRESS = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]|(?P<name>[^:\[\]]*))(?::(?P<port>[^:]*))?")


@dataclass(frozen=True)
class Host:
    address: str
    """The host name or IP address, as ssh takes it (an IPv6 address without brackets)."""
    user: str | None = None
    port: int | None = None
    data_dir: str | None = None

    @property
    def name(self) -> str:
        """How messages name the host: as the hosts file does, and its data dir (one machine may be listed twice)."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        address = f"{self.user}@{address}" if self.user else address
        address = f"{address}:{self.port}" if self.port else address
        return f"{address} ({self.data_dir})" if self.data_dir else address


def read_hosts(path: str) -> list[Host]:
    """The hosts of a hosts file; JobLoadError naming the file and line of anything wrong."""
    hosts = []
    for number, line in enumerate(read_text(path, JobLoadError).splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{path}:{number}"
        if len(words) > 2:
            raise JobLoadError(f"{where}: expected '{HOSTS_LINE}', got {line.strip()!r}")
        data_dir = words[1] if len(words) > 1 else None
        if data_dir is not None and not (data_dir.startswith("/") and data_dir.isprintable()):
            raise JobLoadError(f"{where}: the data dir must be an absolute path of printable characters (the job runs "
                               f"in a temporary directory), not {data_dir!r}")
        hosts.append(_parse_host(words[0], data_dir, where))
    if not hosts:
        raise JobLoadError(f"{path}: no hosts in the file (one '{HOSTS_LINE}' per line)")
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise JobLoadError(f"{path}: a host and data dir appear twice; their data would be counted twice")
    return hosts


def _parse_host(word: str, data_dir: str | None, where: str) -> Host:
    """``[user@]host[:port]``, each part checked (see the module's docstring)."""
    user, at, rest = word.rpartition("@")
    if at and not _NAME.fullmatch(user):
        raise JobLoadError(f"{where}: the user name {user!r} {_NAME_RULE}")
    parts = _ADDRESS.fullmatch(rest)
    if parts is None:
        bare_ipv6 = rest.count(":") > 1 and "[" not in rest
        hint = "; an IPv6 address goes in brackets, e.g. [::1] or [::1]:22" if bare_ipv6 else ""
        raise JobLoadError(f"{where}: {word!r} is not {TARGET}{hint}")
    if parts["ipv6"] is not None:
        address = _ipv6(parts["ipv6"], where)
    elif _NAME.fullmatch(parts["name"]):
        address = parts["name"]
    else:
        raise JobLoadError(f"{where}: the host name {parts['name']!r} {_NAME_RULE}")
    port = parts["port"]
    if port is not None and not (re.fullmatch(r"[0-9]{1,5}", port) and 1 <= int(port) <= 65535):
        raise JobLoadError(f"{where}: the port {port!r} is not a number from 1 to 65535")
    return Host(address, user or None, int(port) if port else None, data_dir)


def _ipv6(text: str, where: str) -> str:
    """An IPv6 address, with an optional ``%zone``, as written."""
    try:
        zone = ipaddress.IPv6Address(text).scope_id
    except ValueError:
        raise JobLoadError(f"{where}: [{text}] is not an IPv6 address") from None
    if zone is not None and not _NAME.fullmatch(zone):
        raise JobLoadError(f"{where}: the zone {zone!r} of [{text}] {_NAME_RULE}")
    return text


def remote_command(command_line: str, *arguments: str) -> str:
    """A shell command line for a host: ``command_line`` (``--remote-mr``) split as a shell would, quotes
    working, then ``arguments``, every word quoted so that the remote shell expands nothing in them."""
    try:
        words = shlex.split(command_line)
    except ValueError as e:
        raise JobLoadError(f"--remote-mr {command_line!r}: {e}") from None
    if not words:
        raise JobLoadError("--remote-mr is empty: give the command that runs mr on the hosts")
    return shlex.join([*words, *arguments])


@dataclass(frozen=True)
class Ssh:
    config: str | None = None
    """An ssh_config file (``ssh -F``); default: the user's."""
    options: tuple[str, ...] = ()
    """Extra ``-o`` options."""
    connect_timeout: int = 10

    def command(self, host: Host, remote_command: str) -> list[str]:
        """The argv that runs ``remote_command`` (a shell command line) on ``host``.

        The host comes after ``--`` so ssh never reads it as an option; ssh then
        takes every later word as the remote command (a second ``--`` would
        reach the remote shell).
        """
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.config:
            argv += ["-F", self.config]
        for option in self.options:
            argv += ["-o", option]
        if host.user:
            argv += ["-l", host.user]
        if host.port:
            argv += ["-p", str(host.port)]
        return argv + ["--", host.address, remote_command]
