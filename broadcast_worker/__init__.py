"""Queue trigger on twilio-broadcast: one chunk of a broadcast sent, paced, each recipient at most once."""

import json

import azure.functions as func

from shared.fanout import deliver
from shared.settings import load_settings


def main(msg: func.QueueMessage) -> None:
    deliver(load_settings(), json.loads(msg.get_body()), msg.dequeue_count or 1)
