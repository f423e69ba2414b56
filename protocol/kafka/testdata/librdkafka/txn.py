"""Drives librdkafka (python3-confluent-kafka) transactions against a broker.

Used by TestTxnLibrdkafka (txn_librdkafka_test.go), which judges the outcome:
this script only does what a transactional application does and reports, one
JSON object per line on stdout, what it was told and what it read.

usage: txn.py BOOTSTRAP IN_TOPIC N_INPUTS PLAIN_TOPIC CTP_TOPIC GROUP TXN_ID
"""

import json
import sys

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

bootstrap, in_topic, n_inputs, plain_topic, ctp_topic, group, txn_id = sys.argv[1:8]
n_inputs = int(n_inputs)
TIMEOUT = 15  # seconds per blocking call; the Go test's own deadline is longer


def report(**kw):
    print(json.dumps(kw), flush=True)


def delivered(err, msg):
    if err is not None:
        raise SystemExit("delivery of %r failed: %s" % (msg.value(), err))


producer = Producer({
    "bootstrap.servers": bootstrap,
    "transactional.id": txn_id,
    "transaction.timeout.ms": 30000,
    "linger.ms": 5,
})
producer.init_transactions(TIMEOUT)


def produce_all(topic, values):
    for v in values:
        producer.produce(topic, value=v.encode(), on_delivery=delivered)
    # Flush before ending so that an aborted transaction's records really
    # are in the log: abort_transaction would otherwise purge them unsent,
    # and the judge could not tell an ignored abort from a never-sent one.
    if producer.flush(TIMEOUT) != 0:
        raise SystemExit("flush timed out")


# Phase 1: producer-only transactions: commit, abort, commit.
for prefix, commit in (("c1", True), ("a", False), ("c2", True)):
    values = ["%s-%d" % (prefix, i) for i in range(5)]
    producer.begin_transaction()
    produce_all(plain_topic, values)
    if commit:
        producer.commit_transaction(TIMEOUT)
    else:
        producer.abort_transaction(TIMEOUT)
    report(event="committed" if commit else "aborted", topic=plain_topic, values=values)

# Phase 2: consume-transform-produce with the input offsets committed in the
# transaction (send_offsets_to_transaction); every third batch is aborted
# once, rewound and redone, so each input must appear once in the output.
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "isolation.level": "read_committed",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
})
consumer.subscribe([in_topic])
done = 0
batch_no = 0
while done < n_inputs:
    msgs = consumer.consume(num_messages=5, timeout=TIMEOUT)
    msgs = [m for m in msgs if m.error() is None]
    if not msgs:
        raise SystemExit("no input after %d of %d" % (done, n_inputs))
    start = msgs[0].offset()
    values = ["t-" + m.value().decode() for m in msgs]
    producer.begin_transaction()
    produce_all(ctp_topic, values)
    if batch_no % 3 == 1:
        producer.abort_transaction(TIMEOUT)
        report(event="aborted", topic=ctp_topic, values=values)
        consumer.seek(TopicPartition(in_topic, msgs[0].partition(), start))
        batch_no += 1
        continue
    positions = consumer.position(consumer.assignment())
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), TIMEOUT)
    producer.commit_transaction(TIMEOUT)
    report(event="committed", topic=ctp_topic, values=values)
    done += len(msgs)
    batch_no += 1
consumer.close()

# Phase 3: a read_committed consumer reads both output topics to their end.
for topic in (plain_topic, ctp_topic):
    reader = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group + "-reader",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    reader.assign([TopicPartition(topic, 0, 0)])
    read = []
    while True:
        m = reader.poll(TIMEOUT)
        if m is None:
            raise SystemExit("reading %s: no EOF within %ds" % (topic, TIMEOUT))
        if m.error() is not None:
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            raise SystemExit("reading %s: %s" % (topic, m.error()))
        read.append(m.value().decode())
    reader.close()
    report(event="read", topic=topic, values=read)
