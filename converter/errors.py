"""The converter's configuration error, importable without loading the converter."""


class DefinitionError(ValueError):
    """A Histograms.json file or a revision map (not one definition in it) cannot be used."""
