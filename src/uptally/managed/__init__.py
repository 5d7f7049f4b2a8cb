"""Objects managed at runtime (monitors, components…): the audited path every change takes."""
