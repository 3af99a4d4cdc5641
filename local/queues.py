"""SQS queues of the template and the SQS → Lambda event source mapping, for any SQS endpoint.

Locally the endpoint is a moto server that ``make run`` starts; in tests, moto in process.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from local.lambda_runtime import invoke
from local.template import Function, QueueSource, Stack
from meter.core.logs import logger


def create_queues(stack: Stack, sqs: Any, visibility_timeout: int | None = None) -> dict[str, str]:
    """Create every AWS::SQS::Queue (dead-letter targets wired by ARN); logical id → URL."""
    queues = {k: v for k, v in stack.resources.items() if v["Type"] == "AWS::SQS::Queue"}
    urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in queues}
    for name, resource in queues.items():
        props = resource.get("Properties", {})
        attributes = {k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod") if k in props}
        if visibility_timeout is not None:
            attributes["VisibilityTimeout"] = str(visibility_timeout)
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            arn = sqs.get_queue_attributes(QueueUrl=urls[target], AttributeNames=["QueueArn"])["Attributes"]
            policy = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": int(redrive["maxReceiveCount"])}
            attributes["RedrivePolicy"] = json.dumps(policy)
        if attributes:
            sqs.set_queue_attributes(QueueUrl=urls[name], Attributes=attributes)
    return urls


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message as Lambda's SQS event carries it."""
    attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 3 else "local",
    }


class QueueMapping:
    """Receive a batch, invoke the function, delete what succeeded; failures come back later."""

    def __init__(self, source: QueueSource, function: Function, sqs: Any, queue_url: str):
        self.source, self.function, self.sqs, self.queue_url = source, function, sqs, queue_url
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Deliver one batch; returns how many messages were received."""
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(10, self.source.batch_size),
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=wait_seconds,
        ).get("Messages", [])
        if not received:
            return 0
        records = [lambda_record(m, self.queue_arn) for m in received]
        try:
            response = invoke(self.function, {"Records": records})
        except Exception:
            logger.exception(
                "queue batch failed", extra={"function": self.function.logical_id, "messages": len(records)}
            )
            return len(received)
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        done = [r for r in records if r["messageId"] not in failed] if self.source.report_item_failures else records
        for record in done:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"])
        return len(received)

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            try:
                if self.poll_once(wait_seconds=1) == 0:
                    stop.wait(0.2)
            except Exception:
                logger.exception("queue poll failed", extra={"function": self.function.logical_id})
                stop.wait(1.0)
