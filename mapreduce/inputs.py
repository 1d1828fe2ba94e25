"""What a run reads: the files in layout order, and, for S3 runs, how the missing ones arrive.

Local runs need nothing more than ``find_files``; S3 runs (``s3inputs``) add a
fetcher for the objects not yet cached, the listing's figures, and warnings
when the result may be incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storage import Schema, StoredFile, find_files
from storage.commands import format_bytes

if TYPE_CHECKING:
    from storage.remote import Listing

    from .fetch import Fetcher


@dataclass
class Inputs:
    files: list[StoredFile]
    """Everything to read, in layout order; a file still to download has its cache path."""
    fetcher: Fetcher | None = None
    listing: Listing | None = None
    warnings: list[str] = field(default_factory=list)
    """Why the result may be incomplete, though every file given was read."""

    def describe(self) -> list[str]:
        """Summary lines about where the input came from."""
        lines = []
        if self.listing is not None:
            lines.append(f"s3 listing:   {len(self.listing.objects):,} objects, "
                         f"{format_bytes(self.listing.total_bytes)} ({self.listing.list_calls:,} list calls, "
                         f"{self.listing.prefixes:,} prefixes)")
        if self.fetcher is not None:
            lines.append(f"downloaded:   {self.fetcher.fetched_files:,} files, "
                         f"{format_bytes(self.fetcher.fetched_bytes)}")
        return lines + [f"WARNING: {warning}" for warning in self.warnings]


def local_inputs(data_dir: str, selection: Schema | None) -> Inputs:
    return Inputs(find_files(data_dir, selection))
