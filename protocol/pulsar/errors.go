package pulsar

import (
	"context"
	"errors"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// Handler-level errors (translated below like the broker's).
var (
	errIncompatibleSchema = errors.New("pulsar: incompatible schema")
	errNotAllowed         = errors.New("pulsar: not allowed")
	errConsumerNotFound   = errors.New("pulsar: consumer not found")
	errBacklogQuota       = errors.New("pulsar: backlog quota exceeded")
	errTopicTerminated    = errors.New("pulsar: topic terminated")
)

// serverError translates an error to a Pulsar ServerError code. This is the
// only place where broker errors meet wire codes.
func serverError(err error) pb.ServerError {
	switch {
	case err == nil:
		return pb.ServerError_UnknownError
	case errors.Is(err, auth.ErrNotAuthorized):
		// First: a refusal never reports what else went wrong.
		return pb.ServerError_AuthorizationError
	case errors.Is(err, broker.ErrTopicNotFound), errors.Is(err, broker.ErrNamespaceNotFound),
		errors.Is(err, broker.ErrTenantNotFound):
		return pb.ServerError_TopicNotFound
	case errors.Is(err, broker.ErrSubscriptionNotFound):
		return pb.ServerError_SubscriptionNotFound
	case errors.Is(err, broker.ErrInvalidName):
		return pb.ServerError_InvalidTopicName
	case errors.Is(err, broker.ErrTxnNotFound), errors.Is(err, broker.ErrInvalidProducerIDMapping):
		return pb.ServerError_TransactionNotFound
	case errors.Is(err, broker.ErrInvalidTxnState), errors.Is(err, broker.ErrTxnFenced):
		// Before ErrProducerFenced, which ErrTxnFenced wraps: a
		// transaction ended or timed out, not a producer fenced.
		return pb.ServerError_InvalidTxnStatus
	case errors.Is(err, errTxnCoordinator):
		return pb.ServerError_TransactionCoordinatorNotFound
	case errors.Is(err, broker.ErrInvalidTxnTimeout):
		return pb.ServerError_NotAllowedError
	case errors.Is(err, broker.ErrConcurrentTransactions):
		return pb.ServerError_ServiceNotReady
	case errors.Is(err, broker.ErrProducerFenced):
		return pb.ServerError_ProducerFenced
	case errors.Is(err, broker.ErrProducerBusy):
		return pb.ServerError_ProducerBusy
	case errors.Is(err, broker.ErrInUse):
		return pb.ServerError_ConsumerBusy
	case errors.Is(err, broker.ErrMessageTooLarge), errors.Is(err, errNotAllowed):
		return pb.ServerError_NotAllowedError
	case errors.Is(err, broker.ErrNotOwner), errors.Is(err, broker.ErrResourceExhausted), errors.Is(err, broker.ErrClosed), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, broker.ErrTieredUnavailable): // retriable: the object store is down or slow
		return pb.ServerError_ServiceNotReady
	case errors.Is(err, broker.ErrInvalidConfig), errors.Is(err, broker.ErrAlreadyExists), errors.Is(err, broker.ErrNotEmpty):
		return pb.ServerError_MetadataError
	case errors.Is(err, errIncompatibleSchema):
		return pb.ServerError_IncompatibleSchema
	case errors.Is(err, errChecksum):
		return pb.ServerError_ChecksumError
	case errors.Is(err, errTopicTerminated):
		return pb.ServerError_TopicTerminatedError
	case errors.Is(err, errBacklogQuota):
		return pb.ServerError_ProducerBlockedQuotaExceededException
	case errors.Is(err, errConsumerNotFound):
		return pb.ServerError_ConsumerNotFound
	case errors.Is(err, broker.ErrStorage):
		// A failed write or fsync (a full disk): the client reconnects and
		// resends; the log recovers by itself once writes succeed again.
		return pb.ServerError_PersistenceError
	case errors.Is(err, broker.ErrDuplicate), errors.Is(err, broker.ErrOutOfOrderSequence):
		return pb.ServerError_PersistenceError
	}
	return pb.ServerError_UnknownError
}
