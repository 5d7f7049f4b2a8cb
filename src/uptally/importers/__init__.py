"""Importers: other monitoring tools' configurations turned into uptally YAML, with a report."""
