"""Loads the assignment plugin: points, visibility and task markers, the "grading"
Hypothesis profile, and (when grading) the submitted file. Leave this file as it is."""

pytest_plugins = ["minitorch_alexnet.assignment.plugin"]
