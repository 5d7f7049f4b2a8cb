"""The public status page: read models, rendering, caching and static export."""
