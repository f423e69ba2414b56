package objectstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// S3Options configures an S3 store.
type S3Options struct {
	// Endpoint is the store's URL (Pulsar's s3ManagedLedgerOffloadServiceEndpoint);
	// empty: AWS S3 of Region. Buckets are addressed path-style with an
	// endpoint (what self-hosted stores need), virtual-host style without.
	Endpoint string
	// Bucket holds the objects (s3ManagedLedgerOffloadBucket); required.
	Bucket string
	// Region (s3ManagedLedgerOffloadRegion); default us-east-1.
	Region string
	// AccessKey and SecretKey, if set, are static credentials (tests);
	// otherwise the standard AWS chain applies (AWS_ACCESS_KEY_ID /
	// AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, AWS_PROFILE, instance roles).
	AccessKey, SecretKey string
	// MaxAttempts per request, retries included, with exponential backoff
	// and jitter on 5xx, 429/SlowDown, connection errors and timeouts
	// (default 5).
	MaxAttempts int
	// MaxBackoff caps the wait between attempts (default 2s).
	MaxBackoff time.Duration
	// AttemptTimeout bounds one HTTP attempt, so that a store that accepts
	// connections but never answers is a retriable timeout (default 30s).
	AttemptTimeout time.Duration
}

// S3 is a Store on an S3 bucket.
type S3 struct {
	c      *s3.Client
	bucket string
}

// NewS3 returns an S3 store. It does not contact the store.
func NewS3(ctx context.Context, o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, fmt.Errorf("objectstore: s3 needs a bucket")
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 2 * time.Second
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 30 * time.Second
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(o.Region),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(o.AttemptTimeout)),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = o.MaxBackoff
				// No client-side retry quota: an outage longer than the
				// quota would otherwise fail requests without trying.
				so.RateLimiter = ratelimit.None
			})
		}),
	}
	if o.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("objectstore: s3 config: %w", err)
	}
	c := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
		// Plain PUTs with Content-Length: not every S3 server takes the
		// SDK's default streaming checksum trailers. Integrity is checked
		// by the caller (sizes, MD5 ETags, its own CRCs).
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3{c: c, bucket: o.Bucket}, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	_, err := s.c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	return s.wrap("put", key, err)
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if off < 0 {
		return nil, fmt.Errorf("objectstore: get %s: negative offset %d", key, off)
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	switch {
	case n == 0:
		return nil, nil
	case n > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := s.c.GetObject(ctx, in)
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	defer out.Body.Close()
	if out.ContentLength != nil && *out.ContentLength >= 0 {
		// The usual case: one allocation of the exact size, no copying.
		b := make([]byte, *out.ContentLength)
		if _, err := io.ReadFull(out.Body, b); err != nil {
			return nil, fmt.Errorf("%w: get %s: reading body: %w", ErrUnavailable, key, err)
		}
		if n > 0 && int64(len(b)) > n {
			return nil, fmt.Errorf("objectstore: get %s: store ignored the range (%d bytes for %d)", key, len(b), n)
		}
		return b, nil
	}
	buf := new(bytes.Buffer)
	if _, err := io.Copy(buf, out.Body); err != nil {
		// A body cut short is the store (or the network) failing mid-way.
		return nil, fmt.Errorf("%w: get %s: reading body: %w", ErrUnavailable, key, err)
	}
	if out.ContentLength != nil && int64(buf.Len()) != *out.ContentLength {
		return nil, fmt.Errorf("%w: get %s: %d bytes of %d", ErrUnavailable, key, buf.Len(), *out.ContentLength)
	}
	if n > 0 && int64(buf.Len()) > n {
		return nil, fmt.Errorf("objectstore: get %s: store ignored the range (%d bytes for %d)", key, buf.Len(), n)
	}
	return buf.Bytes(), nil
}

// Head implements Store.
func (s *S3) Head(ctx context.Context, key string) (Info, error) {
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Info{}, s.wrap("head", key, err)
	}
	return Info{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: strings.Trim(aws.ToString(out.ETag), `"`)}, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	_, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err = s.wrap("delete", key, err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, Info{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: strings.Trim(aws.ToString(o.ETag), `"`)})
		}
	}
	return out, nil
}

// wrap classifies an SDK error (after the SDK's retries) as ErrNotFound,
// ErrUnavailable or a plain, permanent error.
func (s *S3) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == http.StatusNotFound:
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
				return fmt.Errorf("objectstore: %s %s: bucket %s does not exist: %w", op, key, s.bucket, err)
			}
			return fmt.Errorf("%w: %s %s", ErrNotFound, op, key)
		case code == 0 || code >= 500 || // 0: no response at all (connection refused, reset, timeout)
			code == http.StatusTooManyRequests || code == http.StatusRequestTimeout:
			return fmt.Errorf("%w: %s %s: %w", ErrUnavailable, op, key, err)
		}
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "SlowDown" || ae.ErrorCode() == "RequestTimeout") {
			return fmt.Errorf("%w: %s %s: %w", ErrUnavailable, op, key, err)
		}
		return fmt.Errorf("objectstore: %s %s: %w", op, key, err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		isConnError(err) {
		return fmt.Errorf("%w: %s %s: %w", ErrUnavailable, op, key, err)
	}
	return fmt.Errorf("objectstore: %s %s: %w", op, key, err)
}

// isConnError matches transport failures that do not surface as net.Error
// through the SDK's wrapping (a refused or reset connection).
func isConnError(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	s := err.Error()
	return errors.Is(err, io.EOF) || strings.Contains(s, "connection refused") || strings.Contains(s, "connection reset")
}
