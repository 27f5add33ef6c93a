"""A graph whose module cannot be imported: the release check must refuse it."""

import module_that_is_not_installed  # noqa: F401  # pylint: disable=unused-import,import-error

graph = None
