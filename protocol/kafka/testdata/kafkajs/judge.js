// judge.js drives kafkajs against a kopernik broker for the Go tests in
// protocol/kafka (kafkajs_test.go). Usage:
//
//   node judge.js MODE < request.json > answer.json
//
// BROKER (host:port) names the broker. Each mode reads one JSON request on
// stdin and writes one JSON answer on stdout; kafkajs logs go to stderr. A
// failure exits non-zero with the error on stderr, so the Go test fails.
//
// Modes:
//   create   {topic, partitions, configs: {name: value}}            -> {}
//   alter    {topic, configs: {name: value}}                       -> {}
//   produce  {topic, sends: [{compression, messages: [{partition, key, value|null}]}]}
//            -> {sends: [[{partition, baseOffset}]]} (one list per send)
//   consume  {topic, group}: a group consumer from the beginning up to
//            the end offsets it lists first
//            -> {records: [{partition, offset, key, value|null}], offsets: [{partition, low, high}]}
//   seek     {topic, group, partition, offset}: a group consumer from the
//            beginning, seeked to offset as soon as it runs (kafkajs's
//            "seek > recovers from offset out of range")
//            -> {first: {partition, offset, key, value|null}}
'use strict'

const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

const deadline = Date.now() + 60000 // every mode ends well before the Go side's timeout

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = []
    process.stdin.on('data', c => chunks.push(c))
    process.stdin.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))))
    process.stdin.on('error', reject)
  })
}

function record(partition, message) {
  return {
    partition,
    offset: message.offset,
    key: message.key === null ? null : message.key.toString('utf8'),
    value: message.value === null ? null : message.value.toString('utf8'),
  }
}

const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }

async function waitFor(what, cond) {
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 20))
  }
}

const modes = {
  async create(kafka, req) {
    const admin = kafka.admin()
    await admin.connect()
    try {
      const created = await admin.createTopics({
        waitForLeaders: true,
        topics: [{
          topic: req.topic,
          numPartitions: req.partitions,
          configEntries: Object.entries(req.configs).map(([name, value]) => ({ name, value })),
        }],
      })
      if (!created) throw new Error(`topic ${req.topic} not created`)
    } finally {
      await admin.disconnect()
    }
    return {}
  },

  async alter(kafka, req) {
    const admin = kafka.admin()
    await admin.connect()
    try {
      // AlterConfigs replaces the topic's whole set, as Kafka defines it.
      await admin.alterConfigs({
        resources: [{
          type: 2, // TOPIC
          name: req.topic,
          configEntries: Object.entries(req.configs).map(([name, value]) => ({ name, value })),
        }],
      })
    } finally {
      await admin.disconnect()
    }
    return {}
  },

  async produce(kafka, req) {
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    const sends = []
    try {
      for (const send of req.sends) {
        const meta = await producer.send({
          topic: req.topic,
          acks: -1,
          compression: codecs[send.compression],
          messages: send.messages,
        })
        sends.push(meta.map(m => ({ partition: m.partition, baseOffset: m.baseOffset })))
      }
    } finally {
      await producer.disconnect()
    }
    return { sends }
  },

  async consume(kafka, req) {
    const admin = kafka.admin()
    await admin.connect()
    let offsets
    try {
      offsets = (await admin.fetchTopicOffsets(req.topic)).map(o => ({
        partition: o.partition, low: o.low, high: o.high,
      }))
    } finally {
      await admin.disconnect()
    }
    const consumer = kafka.consumer({ groupId: req.group, maxWaitTimeInMs: 200 })
    await consumer.connect()
    const records = []
    const last = new Map() // partition -> last offset seen
    try {
      await consumer.subscribe({ topic: req.topic, fromBeginning: true })
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          records.push(record(partition, message))
          last.set(partition, BigInt(message.offset))
        },
      })
      // The last record of every partition is kept by compaction (the Go
      // side ends each partition with a record of a key of its own).
      await waitFor('the end offsets', () =>
        offsets.every(o => BigInt(o.high) === 0n || last.get(o.partition) >= BigInt(o.high) - 1n))
    } finally {
      await consumer.disconnect()
    }
    return { records, offsets }
  },

  async seek(kafka, req) {
    const consumer = kafka.consumer({ groupId: req.group, maxWaitTimeInMs: 200 })
    await consumer.connect()
    let first = null
    try {
      await consumer.subscribe({ topic: req.topic, fromBeginning: true })
      const running = consumer.run({
        eachMessage: async ({ partition, message }) => {
          if (first === null && partition === req.partition) first = record(partition, message)
        },
      })
      consumer.seek({ topic: req.topic, partition: req.partition, offset: String(req.offset) })
      await running
      await waitFor('a message after the seek', () => first !== null)
    } finally {
      await consumer.disconnect()
    }
    return { first }
  },
}

async function main() {
  const mode = modes[process.argv[2]]
  if (!mode) throw new Error(`unknown mode ${process.argv[2]}`)
  const req = await readStdin()
  const kafka = new Kafka({
    clientId: 'kopernik-judge',
    brokers: [process.env.BROKER],
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log }) =>
      process.stderr.write(`kafkajs ${level} ${namespace}: ${log.message} ${JSON.stringify(log)}\n`),
    retry: { retries: 3 },
  })
  const answer = await mode(kafka, req)
  process.stdout.write(JSON.stringify(answer))
}

main().then(
  () => process.exit(0),
  err => {
    process.stderr.write(`judge.js: ${err && err.stack ? err.stack : err}\n`)
    process.exit(1)
  },
)
