"""Configuration: the YAML schema and its validating loader."""

from uptally.config.loader import ConfigError, ConfigIssue, load_config, parse_config
from uptally.config.schema import Config

__all__ = ["Config", "ConfigError", "ConfigIssue", "load_config", "parse_config"]
