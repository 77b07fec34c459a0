"""The suite's shared rules live in a plugin, so that tests can load it into a pytest of their own."""

pytest_plugins = ["helpers.pytest_rules"]
