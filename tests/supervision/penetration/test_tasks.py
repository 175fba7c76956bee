"""Accepting a block queues its analysis (django-tasks, queue `analytics`); the task calls the service."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django_tasks_db.models import DBTaskResult

from supervision.models import Alert
from supervision.tasks import block_analyse_task

pytestmark = pytest.mark.django_db

IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
                         "QUEUES": ["default", "analytics", "audit"]}}


def test_accepted_block_enqueues_one_analysis_task_per_height_on_commit(
        ledger, ids, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ledger.submit([ledger.register(ids.org(), "org", "甲")])
    assert not DBTaskResult.objects.exists()  # nothing before the commit
    for callback in callbacks:
        callback()
    queued = list(DBTaskResult.objects.filter(task_path="supervision.tasks.block_analyse_task"))
    assert len(queued) == 1
    assert queued[0].queue_name == "analytics"
    assert queued[0].args_kwargs == {"args": [], "kwargs": {"chain_id": "sse", "height": 0}}
    assert queued[0].status == "READY"


def test_queued_task_runs_the_analysis_with_json_arguments(ledger, ids, django_capture_on_commit_callbacks):
    org, person = ids.org(), ids.person()
    with django_capture_on_commit_callbacks(execute=True):
        ledger.submit([ledger.register(org, "org", "甲"), ledger.register(person, "person", "乙")])
    result = DBTaskResult.objects.get(task_path="supervision.tasks.block_analyse_task")
    returned = result.task.call(**result.args_kwargs["kwargs"])
    assert returned["chain"] == "sse" and returned["height"] == 0 and returned["structure_rebuilt"] is True


@override_settings(TASKS=IMMEDIATE)
def test_immediate_backend_runs_the_rules_when_the_block_is_accepted(
        ledger, ids, django_capture_on_commit_callbacks):
    a, b = ids.org(), ids.org()
    with django_capture_on_commit_callbacks(execute=True):
        ledger.submit([ledger.holding(a, b, 3000), ledger.holding(b, a, 2000)])
    assert Alert.objects.filter(code="circular_holding").count() == 1


def test_task_is_declared_on_the_analytics_queue():
    assert block_analyse_task.queue_name == "analytics"
