"""Importers: other tools' configuration and history turned into uptally's, with a report."""
