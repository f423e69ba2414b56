package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kopernik-io/kopernik/broker"
)

// Handler-level sentinel errors; like the broker's, they become Kafka error
// codes only in errCode.
var (
	errCorruptBatch        = errors.New("kafka: corrupt record batch")
	errUnsupportedMagic    = errors.New("kafka: only record batch v2 (magic 2) is accepted")
	errInvalidRecord       = errors.New("kafka: invalid record")
	errInvalidPartitions   = errors.New("kafka: invalid partitions")
	errInvalidReplication  = errors.New("kafka: invalid replication factor")
	errInvalidRequest      = errors.New("kafka: invalid request")
	errInvalidRequiredAcks = errors.New("kafka: invalid required acks")
	errUnknownTopicID      = errors.New("kafka: unknown topic id")
	errTransactional       = errors.New("kafka: transactions are not supported")
	errInvalidTimestamp    = errors.New("kafka: invalid timestamp")
	errFetchSessionID      = errors.New("kafka: fetch session not found")
	errFetchSessionEpoch   = errors.New("kafka: invalid fetch session epoch")
	errUnsupportedConfig   = errors.New("kafka: unsupported resource")
	// errInternalTopic refuses every produce, fetch, offset or admin
	// request on __consumer_offsets, definitively (INVALID_TOPIC_EXCEPTION,
	// not retriable): group commits are subscriptions, that topic holds
	// nothing (03_metadata.go).
	errInternalTopic = errors.New("kafka: __consumer_offsets is internal and holds no data here: group offsets are read with OffsetFetch")
)

// errCode translates an error to a Kafka error code. It is the one place
// where broker and handler errors meet wire codes.
func errCode(err error) int16 {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, broker.ErrTopicNotFound),
		errors.Is(err, broker.ErrNamespaceNotFound),
		errors.Is(err, broker.ErrTenantNotFound):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, broker.ErrInvalidName), errors.Is(err, errInternalTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, broker.ErrAlreadyExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, broker.ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, broker.ErrInvalidRecordState):
		return kerr.InvalidRecordState.Code
	case errors.Is(err, broker.ErrMessageTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, broker.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, broker.ErrDuplicate):
		// franz-go and the Java client treat this as success for a batch
		// older than the five remembered ones.
		return kerr.DuplicateSequenceNumber.Code
	case errors.Is(err, broker.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, broker.ErrTxnFenced):
		// The coordinator's answer to a zombie (Kafka 2.7+, KIP-588).
		return kerr.ProducerFenced.Code
	case errors.Is(err, broker.ErrProducerFenced):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, broker.ErrInvalidTxnTimeout):
		return kerr.InvalidTransactionTimeout.Code
	case errors.Is(err, broker.ErrInvalidProducerIDMapping):
		return kerr.InvalidProducerIDMapping.Code
	case errors.Is(err, broker.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, broker.ErrConcurrentTransactions):
		return kerr.ConcurrentTransactions.Code
	case errors.Is(err, broker.ErrTxnNotFound):
		return kerr.TransactionalIDNotFound.Code
	case errors.Is(err, broker.ErrTxnNotCoordinator):
		// Cluster mode: another broker coordinates the transactional id;
		// the client finds the coordinator again.
		return kerr.NotCoordinator.Code
	case errors.Is(err, broker.ErrTxnCoordinatorLoading):
		return kerr.CoordinatorLoadInProgress.Code
	case errors.Is(err, broker.ErrTieredUnavailable):
		// Offloaded data and the object store is down or slow: retriable
		// (franz-go retries it internally, sarama redispatches at the same
		// offset); the same fetch succeeds once the store is back.
		return kerr.KafkaStorageError.Code
	case errors.Is(err, broker.ErrResourceExhausted):
		// Out of file descriptors or memory: retriable, and the broker
		// logs the partition and the cause.
		return kerr.KafkaStorageError.Code
	case errors.Is(err, broker.ErrStorage):
		// The partition's log failed on a write or fsync (a full disk):
		// retriable, the log recovers by itself once writes succeed again.
		return kerr.KafkaStorageError.Code
	case errors.Is(err, broker.ErrUnitFenced):
		// Cluster mode: this broker lost the group's coordinator unit
		// before its write; the client finds the coordinator again.
		return kerr.NotCoordinator.Code
	case errors.Is(err, broker.ErrNotOwner):
		// Cluster mode: another broker owns the partition now; the client
		// refreshes metadata, which names the owner as the leader.
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, broker.ErrClosed):
		// The partition is being unloaded (topic deleted, broker closing):
		// the client refreshes metadata and retries.
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, errCorruptBatch):
		return kerr.CorruptMessage.Code
	case errors.Is(err, errUnsupportedMagic):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, errInvalidRecord):
		return kerr.InvalidRecord.Code
	case errors.Is(err, errInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, errInvalidReplication):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, errInvalidRequest), errors.Is(err, broker.ErrNotEmpty):
		return kerr.InvalidRequest.Code
	case errors.Is(err, errInvalidRequiredAcks):
		return kerr.InvalidRequiredAcks.Code
	case errors.Is(err, errUnknownTopicID):
		return kerr.UnknownTopicID.Code
	case errors.Is(err, errTransactional):
		return kerr.TransactionalIDAuthorizationFailed.Code
	case errors.Is(err, errInvalidTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, errFetchSessionID):
		return kerr.FetchSessionIDNotFound.Code
	case errors.Is(err, errFetchSessionEpoch):
		return kerr.InvalidFetchSessionEpoch.Code
	case errors.Is(err, errUnsupportedConfig):
		return kerr.InvalidRequest.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	}
	return kerr.UnknownServerError.Code
}

// errMsg is the error message for responses that carry one (nil on success).
func errMsg(err error) *string {
	if err == nil {
		return nil
	}
	s := broker.Reason(err)
	return &s
}
