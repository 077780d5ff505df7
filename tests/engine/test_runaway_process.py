"""A diagram that loops through automatic tasks without ever waiting is stopped, with an
error naming the element, instead of spinning until SpiffWorkflow gives up."""

from __future__ import annotations

import pytest
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

from engine import ProcessError, runtime
from engine.bpmn import build_spec, read_document
from engine.scripting import DeskScriptEngine

SPIN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d" targetNamespace="urn:t">
  <bpmn:process id="spin" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="again" />
    <bpmn:exclusiveGateway id="again" default="f3">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>f4</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f2" sourceRef="again" targetRef="done">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">n &gt; LIMIT
      </bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="again" targetRef="count" />
    <bpmn:scriptTask id="count" scriptFormat="python">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:script>n = n + 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f4" sourceRef="count" targetRef="again" />
    <bpmn:endEvent id="done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


def spin(limit: int) -> BpmnWorkflow:
    spec, subprocesses = build_spec(read_document(SPIN.replace(b"LIMIT", str(limit).encode()),
                                                  "spin.bpmn"), [])
    workflow = BpmnWorkflow(spec, subprocesses, script_engine=DeskScriptEngine())
    runtime.start(workflow, {"n": 0})
    return workflow


def test_a_short_automatic_loop_runs_to_its_end():
    assert spin(100).is_completed()


def test_an_endless_automatic_loop_is_stopped_and_named():
    with pytest.raises(ProcessError) as caught:
        spin(10**9)
    assert caught.value.element == "count"
    assert "more than 500 automatic tasks in one step" in caught.value.message
