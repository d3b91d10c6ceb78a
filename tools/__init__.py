"""Operator tools that are not part of the consumer image (prerequisite checks, cost, demo)."""
