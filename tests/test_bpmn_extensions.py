"""Each engine reads a task's assignment and form where that engine writes them, and only there."""

from __future__ import annotations

import pytest

from adapters.camunda import Camunda7Adapter
from adapters.embedded import EmbeddedAdapter
from adapters.flowable import FlowableAdapter
from adapters.zeebe import ZeebeAdapter
from gateway import bpmn

XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:flowable="http://flowable.org/bpmn"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="http://example.com">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start" camunda:formKey="camunda-start" flowable:formKey="flowable-start"/>
    <bpmn:userTask id="review" camunda:candidateGroups="sales, managers" flowable:candidateGroups="flow"
                   camunda:formKey="camunda-form" flowable:assignee="fred">
      <bpmn:extensionElements>
        <zeebe:assignmentDefinition assignee="zed" candidateGroups="zeebe-group"/>
        <zeebe:formDefinition formId="zeebe-form"/>
      </bpmn:extensionElements>
    </bpmn:userTask>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.parametrize(
    ("adapter", "expected"),
    [
        (Camunda7Adapter, (None, ["sales", "managers"], "camunda-form", "camunda-start")),
        (EmbeddedAdapter, (None, ["sales", "managers"], "camunda-form", "camunda-start")),
        (FlowableAdapter, ("fred", ["flow"], None, "flowable-start")),
        (ZeebeAdapter, ("zed", ["zeebe-group"], "zeebe-form", None)),
    ],
)
def test_definition_tasks_are_read_with_the_engines_own_extensions(adapter: type, expected: tuple) -> None:
    (task,), start_form = bpmn.describe_process(XML, "p", adapter.task_extensions)
    start_key = start_form.key if start_form else None
    assert (task.assignee, task.candidate_groups, task.form_key, start_key) == expected
