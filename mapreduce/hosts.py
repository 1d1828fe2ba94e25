"""The machines of a cluster run, and how to reach them with the system's ssh client.

A hosts file has one machine per line, ``[user@]host[:port] [data-dir]``;
blank lines and ``#`` comments are ignored. The system ``ssh`` is used so the
user's ssh config, agent and keys apply; it runs in batch mode (never asks for
a password) with a connect timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.documents import read_text

from .errors import JobLoadError


@dataclass(frozen=True)
class Host:
    target: str
    """``[user@]host`` as ssh takes it."""
    port: int | None = None
    data_dir: str | None = None

    @property
    def name(self) -> str:
        """How messages name the host: its address, and its data dir (one machine may be listed twice)."""
        address = f"{self.target}:{self.port}" if self.port else self.target
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
            raise JobLoadError(f"{where}: expected '[user@]host[:port] [data-dir]', got {line.strip()!r}")
        target, _, port = words[0].rpartition(":") if ":" in words[0] else (words[0], "", "")
        if not target or (port and not port.isdigit()):
            raise JobLoadError(f"{where}: {words[0]!r} is not [user@]host[:port]")
        hosts.append(Host(target, int(port) if port else None, words[1] if len(words) > 1 else None))
    if not hosts:
        raise JobLoadError(f"{path}: no hosts in the file (one '[user@]host[:port] [data-dir]' per line)")
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise JobLoadError(f"{path}: a host and data dir appear twice; their data would be counted twice")
    return hosts


@dataclass(frozen=True)
class Ssh:
    config: str | None = None
    """An ssh_config file (``ssh -F``); default: the user's."""
    options: tuple[str, ...] = ()
    """Extra ``-o`` options."""
    connect_timeout: int = 10

    def command(self, host: Host, remote_command: str) -> list[str]:
        """The argv that runs ``remote_command`` (a shell command line) on ``host``."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.config:
            argv += ["-F", self.config]
        for option in self.options:
            argv += ["-o", option]
        if host.port:
            argv += ["-p", str(host.port)]
        return argv + [host.target, "--", remote_command]
