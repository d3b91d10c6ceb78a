"""Pulumi entry point: read the validated config, build the stack of its cloud, export outputs."""

import importlib

import pulumi

from stacks import config

settings = config.load()
stack = importlib.import_module(f"stacks.{settings.cloud}")
# The producer and other tools find their target from these outputs.
pulumi.export("cloud", settings.cloud)
for name, value in stack.build(settings).items():
    pulumi.export(name, value)
