"""The pattern itself, pure: the check schedule (no clock, no I/O), the monitor's models, the job sources
and their registry, and the orchestrator with its activity. Imports nothing from the other subpackages."""

from monitoring.core import sources  # noqa: F401 - registers the built-in http and callable job sources
