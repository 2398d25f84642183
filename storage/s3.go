package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrBucketNotFound is returned (wrapped) when the configured bucket does
// not exist.
var ErrBucketNotFound = errors.New("bucket not found")

// ErrUnreachable is returned (wrapped) by NewS3 when the endpoint cannot be
// reached.
var ErrUnreachable = errors.New("s3 endpoint unreachable")

// DefaultPartSize is the multipart part size used when S3Config.PartSize is
// zero. It is also the memory one upload of unknown size buffers.
const DefaultPartSize = 16 << 20

// S3Config says where an S3 store lives and how to reach it.
type S3Config struct {
	// Endpoint is host[:port], without a scheme (default s3.amazonaws.com).
	Endpoint string
	Region   string
	Bucket   string
	// Prefix is prepended (with a slash) to every object name.
	Prefix string

	// AccessKey, SecretKey and SessionToken are static credentials. When
	// they are empty, the credentials come from the first of these that
	// gives any: the profile Profile (default "default") of the shared
	// credentials file CredentialsFile (the AWS CLI's format), then, with
	// IAM, the instance metadata service (an EC2 instance role, an ECS task
	// role, an EKS web identity; minio-go reads their AWS_* discovery
	// variables itself). With none, requests are anonymous.
	AccessKey, SecretKey, SessionToken string
	CredentialsFile, Profile           string
	IAM                                bool

	// PathStyle addresses the bucket in the path rather than the host name
	// (needed by most self-hosted servers).
	PathStyle bool
	// Insecure uses plain http.
	Insecure bool
	// CAFile is a PEM bundle of certificates trusted on top of the system
	// roots.
	CAFile string
	// SkipVerify turns TLS certificate verification off. Only when the user
	// explicitly asks for it.
	SkipVerify bool
	// PartSize is the multipart part size (default DefaultPartSize).
	PartSize uint64
	// RetryBudget is how long Open's WithRetry tries one operation again
	// (RetryOptions.Budget); zero keeps WithRetry's default of 5 attempts.
	RetryBudget time.Duration
}

// S3 is a Store in an S3 bucket, under an optional prefix.
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or ends with "/"
	endpoint string
	partSize uint64
}

var (
	_ Store     = (*S3)(nil)
	_ Versioned = (*S3)(nil)
	_ Locker    = (*S3)(nil)
	_ Cleaner   = (*S3)(nil)
)

const (
	dialTimeout  = 5 * time.Second
	checkTimeout = 10 * time.Second
)

// NewS3 connects to the bucket and checks that it exists. A missing bucket
// gives an error wrapping ErrBucketNotFound; an endpoint that cannot be
// reached within seconds, one wrapping ErrUnreachable.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	c, err := connectS3(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if !c.exists {
		return nil, fmt.Errorf("bucket %q does not exist at %s: %w", c.cfg.Bucket, c.endpoint, ErrBucketNotFound)
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &S3{client: c.client, bucket: cfg.Bucket, prefix: prefix, endpoint: c.endpoint, partSize: partSize}, nil
}

// NewS3Client returns a client of cfg's endpoint with cfg's credentials
// and TLS settings (those NewS3 uses), and the endpoint's host[:port],
// after checking that cfg.Bucket exists, with NewS3's errors. It serves
// code that needs what Store does not offer (an object's metadata).
func NewS3Client(ctx context.Context, cfg S3Config) (*minio.Client, string, error) {
	c, err := connectS3(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	if !c.exists {
		return nil, "", fmt.Errorf("bucket %q does not exist at %s: %w", c.cfg.Bucket, c.endpoint, ErrBucketNotFound)
	}
	return c.client, c.endpoint, nil
}

// CreateBucket creates cfg.Bucket when it does not exist, with object
// lock enabled when lock is set (which also turns versioning on). It
// reports whether it created the bucket. An existing bucket is left as it
// is: asking for lock on one without it gives an error wrapping
// ErrNoObjectLock.
func CreateBucket(ctx context.Context, cfg S3Config, lock bool) (bool, error) {
	c, err := connectS3(ctx, cfg)
	if err != nil {
		return false, err
	}
	if c.exists {
		if lock {
			s := &S3{client: c.client, bucket: c.cfg.Bucket, endpoint: c.endpoint}
			on, err := s.ObjectLockEnabled(ctx)
			if err != nil {
				return false, err
			}
			if !on {
				return false, fmt.Errorf("bucket %q at %s exists without object lock, which can only be turned on when a bucket is created: %w", c.cfg.Bucket, c.endpoint, ErrNoObjectLock)
			}
		}
		return false, nil
	}
	err = c.client.MakeBucket(ctx, c.cfg.Bucket, minio.MakeBucketOptions{Region: c.cfg.Region, ObjectLocking: lock})
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("s3 %s: %w", c.endpoint, ctx.Err())
		}
		if isAccessDenied(err) {
			return false, fmt.Errorf("s3 create bucket %q at %s denied; these credentials may not create buckets: %w", c.cfg.Bucket, c.endpoint, mapS3Error(err))
		}
		return false, fmt.Errorf("s3 create bucket %q at %s: %w", c.cfg.Bucket, c.endpoint, mapS3Error(err))
	}
	return true, nil
}

// ErrNoObjectLock is wrapped by CreateBucket when object lock is asked
// for on an existing bucket without it.
var ErrNoObjectLock = errors.New("bucket has no object lock")

type s3Conn struct {
	client   *minio.Client
	endpoint string
	cfg      S3Config
	exists   bool
}

// connectS3 makes the client and checks whether the bucket exists.
func connectS3(ctx context.Context, cfg S3Config) (*s3Conn, error) {
	endpoint := cfg.Endpoint
	switch {
	case strings.HasPrefix(endpoint, "http://"):
		endpoint, cfg.Insecure = strings.TrimPrefix(endpoint, "http://"), true
	case strings.HasPrefix(endpoint, "https://"):
		endpoint = strings.TrimPrefix(endpoint, "https://")
	}
	endpoint = strings.TrimSuffix(endpoint, "/")
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket given")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	tr, err := s3Transport(cfg)
	if err != nil {
		return nil, err
	}
	creds := s3Credentials(cfg)
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	newClient := func(retries int) (*minio.Client, error) {
		c, err := minio.New(endpoint, &minio.Options{
			Creds:        creds,
			Secure:       !cfg.Insecure,
			Transport:    tr,
			Region:       cfg.Region,
			BucketLookup: lookup,
			MaxRetries:   retries,
		})
		if err != nil {
			// minio's errors name the endpoint, never the keys.
			return nil, fmt.Errorf("s3 %s: %w", endpoint, err)
		}
		return c, nil
	}
	// Whole operations are retried by WithRetry; the client retries a little
	// itself so that one failed part does not fail a stream that cannot be
	// rewound.
	client, err := newClient(3)
	if err != nil {
		return nil, err
	}
	check, err := newClient(1) // 1: no retries
	if err != nil {
		return nil, err
	}

	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	ok, err := check.BucketExists(cctx, cfg.Bucket)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("s3 %s: %w", endpoint, ctx.Err())
		}
		if terr := tlsVerifyError(endpoint, cfg, err); terr != nil {
			return nil, terr
		}
		if cfg.Insecure && !isNoSuchBucket(err) && !isAccessDenied(err) && speaksTLS(ctx, endpoint) {
			return nil, fmt.Errorf("s3 %s: the server speaks https, but plain http was asked for (s3.insecure, or an http:// endpoint); use https: %w", endpoint, err)
		}
		switch {
		case isNoSuchBucket(err):
			ok = false
		case isNetError(err) || cctx.Err() != nil:
			return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, endpoint, err)
		case isAccessDenied(err):
			return nil, fmt.Errorf("s3 access to bucket %q at %s denied; check the access key and secret: %w", cfg.Bucket, endpoint, mapS3Error(err))
		default:
			return nil, fmt.Errorf("s3 check bucket %q at %s: %w", cfg.Bucket, endpoint, mapS3Error(err))
		}
	}
	return &s3Conn{client: client, endpoint: endpoint, cfg: cfg, exists: ok}, nil
}

// iamTimeout bounds each request to the instance metadata service, which
// off the cloud may not answer at all.
const iamTimeout = 2 * time.Second

// s3Credentials is the chain S3Config describes: static keys, then the
// shared credentials file, then the instance metadata service. A chain
// where no provider gives keys signs nothing: the requests are anonymous.
func s3Credentials(cfg S3Config) *credentials.Credentials {
	chain := []credentials.Provider{&credentials.Static{Value: credentials.Value{
		AccessKeyID: cfg.AccessKey, SecretAccessKey: cfg.SecretKey, SessionToken: cfg.SessionToken,
		SignerType: credentials.SignatureV4}}}
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		return credentials.New(chain[0])
	}
	if cfg.CredentialsFile != "" {
		profile := cfg.Profile
		if profile == "" {
			profile = "default"
		}
		chain = append(chain, &credentials.FileAWSCredentials{Filename: cfg.CredentialsFile, Profile: profile})
	}
	if cfg.IAM {
		chain = append(chain, &credentials.IAM{Client: &http.Client{Timeout: iamTimeout}})
	}
	return credentials.NewChainCredentials(chain)
}

// S3Transport is the HTTP transport coffer talks to cfg's S3 server
// with: plain http when Insecure, else TLS verified against the system's
// CAs and CAFile, or not at all with SkipVerify. For other requests to
// the same server (doctor's clock check).
func S3Transport(cfg S3Config) (*http.Transport, error) { return s3Transport(cfg) }

func s3Transport(cfg S3Config) (*http.Transport, error) {
	tr, err := minio.DefaultTransport(!cfg.Insecure)
	if err != nil {
		return nil, fmt.Errorf("s3 transport: %w", err)
	}
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	if cfg.Insecure {
		return tr, nil
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.CAFile != "" {
		pool := tr.TLSClientConfig.RootCAs
		if pool == nil {
			if pool, err = x509.SystemCertPool(); err != nil {
				pool = x509.NewCertPool()
			}
		}
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			// The *PathError names the file.
			return nil, fmt.Errorf("s3 ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3 ca_file %s: no PEM certificates found", cfg.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if cfg.SkipVerify {
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	return tr, nil
}

// tlsVerifyError explains err if it is a failed check of the server's
// certificate, wrapping it; else it returns nil.
func tlsVerifyError(endpoint string, cfg S3Config, err error) error {
	var cause error
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		cause = cve
	}
	hint := "set s3.ca_file to the PEM file of the CA that signed it, or s3.skip_verify to turn verification off"
	if cfg.CAFile != "" {
		hint = fmt.Sprintf("it is not signed by a CA in s3.ca_file %s nor by a system one; set s3.ca_file to the right CA, or s3.skip_verify to turn verification off", cfg.CAFile)
	}
	var (
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &ua):
		if cause == nil {
			cause = ua
		}
		return fmt.Errorf("tls: certificate of %s is not trusted (%s): %w", endpoint, hint, cause)
	case errors.As(err, &he):
		if cause == nil {
			cause = he
		}
		return fmt.Errorf("tls: certificate of %s is not valid for that name (use a name or address it lists, or s3.skip_verify to turn verification off): %w", endpoint, cause)
	case errors.As(err, &ci):
		if cause == nil {
			cause = ci
		}
		return fmt.Errorf("tls: certificate of %s is invalid (expired, or not meant for a server): %w", endpoint, cause)
	case cause != nil:
		return fmt.Errorf("tls: certificate of %s failed verification: %w", endpoint, cause)
	}
	return nil
}

// speaksTLS reports whether a TLS handshake with endpoint (host[:port],
// port 80 by default as for plain http) succeeds within seconds. It only
// tells a server that wants https from one that is down: the certificate is
// not checked, and nothing is sent after the handshake.
func speaksTLS(ctx context.Context, endpoint string) bool {
	addr := endpoint
	if _, _, err := net.SplitHostPort(endpoint); err != nil {
		addr = endpoint + ":80"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: dialTimeout},
		Config:    &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Location returns s3://bucket/prefix.
func (s *S3) Location() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

func (s *S3) key(name string) string { return s.prefix + name }

func s3CheckName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
		return permanent(fmt.Errorf("invalid object name %q", name))
	}
	return nil
}

// Put uploads the object: in one request when size is known and at most a
// part, else as a multipart upload of PartSize parts, which is aborted when
// the upload fails or is canceled. IfNotExists sends If-None-Match: *;
// Retention the object lock headers (the bucket must have object lock
// enabled).
func (s *S3) Put(ctx context.Context, name string, r io.Reader, size int64, opts PutOptions) error {
	if err := s3CheckName(name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	po := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s.partSize,
	}
	if opts.IfNotExists {
		po.SetMatchETagExcept("*")
	}
	if ret := opts.Retention; ret != nil {
		switch ret.Mode {
		case LockGovernance:
			po.Mode = minio.Governance
		case LockCompliance:
			po.Mode = minio.Compliance
		default:
			return permanent(fmt.Errorf("put %s: unknown object lock mode %q", name, ret.Mode))
		}
		po.RetainUntilDate = ret.Until.UTC()
		// S3 wants a Content-MD5 (or a checksum) on locked writes.
		po.SendContentMd5 = true
	}
	if size < 0 {
		size = -1
	}
	var info minio.UploadInfo
	var err error
	if (opts.IfNotExists || opts.Retention != nil) && (size < 0 || uint64(size) > s.partSize) {
		// minio-go drops If-None-Match from CompleteMultipartUpload,
		// where S3 checks it: upload the parts ourselves.
		info, err = s.putMultipart(ctx, s.key(name), r, size, po)
	} else {
		info, err = s.client.PutObject(ctx, s.bucket, s.key(name), r, size, po)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("put %s: %w", name, ctx.Err())
		}
		return fmt.Errorf("put %s: %w", name, mapS3Error(err))
	}
	if size >= 0 && info.Size != size {
		return fmt.Errorf("put %s: stored %d bytes, want %d", name, info.Size, size)
	}
	return nil
}

// maxParts is S3's limit on the parts of one upload.
const maxParts = 10000

// putMultipart uploads r in parts of s.partSize (more if size needs it),
// sending po's headers (If-None-Match) with the completion.
func (s *S3) putMultipart(ctx context.Context, key string, r io.Reader, size int64, po minio.PutObjectOptions) (info minio.UploadInfo, err error) {
	partSize := int64(s.partSize)
	if size > 0 {
		partSize = max(partSize, (size+maxParts-1)/maxParts)
	}
	core := minio.Core{Client: s.client}
	// The lock headers go with the initiation, If-None-Match with the
	// completion.
	uploadID, err := core.NewMultipartUpload(ctx, s.bucket, key, minio.PutObjectOptions{ContentType: po.ContentType,
		Mode: po.Mode, RetainUntilDate: po.RetainUntilDate})
	if err != nil {
		return info, err
	}
	defer func() {
		if err != nil {
			// Abort even when ctx is canceled, so that no incomplete
			// upload stays behind (the bucket's lifecycle rule is the
			// safety net for a killed process; see CleanStale).
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			core.AbortMultipartUpload(actx, s.bucket, key, uploadID)
		}
	}()
	buf := make([]byte, partSize)
	var parts []minio.CompletePart
	var total int64
	for num := 1; ; num++ {
		n, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return info, rerr
		}
		if n == 0 && num > 1 {
			break
		}
		if num > maxParts {
			return info, permanent(fmt.Errorf("object larger than %d parts of %d bytes", maxParts, partSize))
		}
		var popts minio.PutObjectPartOptions
		if po.SendContentMd5 {
			sum := md5.Sum(buf[:n])
			popts.Md5Base64 = base64.StdEncoding.EncodeToString(sum[:])
		}
		p, err := core.PutObjectPart(ctx, s.bucket, key, uploadID, num, bytes.NewReader(buf[:n]), int64(n), popts)
		if err != nil {
			return info, err
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
		total += int64(n)
		if rerr != nil {
			break
		}
	}
	info, err = core.CompleteMultipartUpload(ctx, s.bucket, key, uploadID, parts, po)
	info.Size = total
	return info, err
}

// Open reads a range of the object. Reading past the end yields no bytes.
func (s *S3) Open(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	return s.OpenVersion(ctx, name, "", off, length)
}

// OpenVersion reads a range of one version of the object ("" for the
// current one).
func (s *S3) OpenVersion(ctx context.Context, name, versionID string, off, length int64) (io.ReadCloser, error) {
	if err := s3CheckName(name); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if off < 0 {
		return nil, permanent(fmt.Errorf("open %s: negative offset %d", name, off))
	}
	if length == 0 {
		if _, err := s.stat(ctx, name, versionID); err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	gopts := minio.GetObjectOptions{VersionID: versionID}
	switch {
	case length > 0:
		if err := gopts.SetRange(off, off+length-1); err != nil {
			return nil, permanent(fmt.Errorf("open %s: %w", name, err))
		}
	case off > 0:
		if err := gopts.SetRange(off, 0); err != nil {
			return nil, permanent(fmt.Errorf("open %s: %w", name, err))
		}
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(name), gopts)
	if err == nil {
		// GetObject is lazy: Stat sends the request and surfaces errors.
		_, err = obj.Stat()
		if err != nil {
			obj.Close()
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open %s: %w", name, ctx.Err())
		}
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.Code == "InvalidRange" || er.StatusCode == http.StatusRequestedRangeNotSatisfiable) {
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, fmt.Errorf("open %s: %w", name, mapS3Error(err))
	}
	return obj, nil
}

// Stat describes the object.
func (s *S3) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	if err := s3CheckName(name); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	oi, err := s.stat(ctx, name, "")
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	return ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

func (s *S3) stat(ctx context.Context, name, versionID string) (minio.ObjectInfo, error) {
	oi, err := s.client.StatObject(ctx, s.bucket, s.key(name), minio.StatObjectOptions{VersionID: versionID})
	if err != nil {
		if ctx.Err() != nil {
			return oi, ctx.Err()
		}
		return oi, mapS3Error(err)
	}
	return oi, nil
}

// List lists the objects under the store's prefix whose names start with
// prefix, in the lexical order S3 returns them.
func (s *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return s.list(ctx, prefix, false, func(ov ObjectVersion) error { return fn(ov.ObjectInfo) })
}

// ListVersions lists every version and delete marker of the objects whose
// names start with prefix: by name, newest first within a name.
func (s *S3) ListVersions(ctx context.Context, prefix string, fn func(ObjectVersion) error) error {
	return s.list(ctx, prefix, true, fn)
}

func (s *S3) list(ctx context.Context, prefix string, versions bool, fn func(ObjectVersion) error) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{
		Prefix:       s.prefix + prefix,
		Recursive:    true,
		WithVersions: versions,
	})
	stop := func() {
		cancel()
		for range ch { // let the lister goroutine finish
		}
	}
	for oi := range ch {
		if oi.Err != nil {
			stop()
			if ctx.Err() != nil {
				return fmt.Errorf("list %s: %w", prefix, ctx.Err())
			}
			return fmt.Errorf("list %s: %w", prefix, mapS3Error(oi.Err))
		}
		name, ok := strings.CutPrefix(oi.Key, s.prefix)
		if !ok || name == "" || strings.HasSuffix(name, "/") {
			continue // folder markers
		}
		ov := ObjectVersion{ObjectInfo: ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified},
			VersionID: oi.VersionID, DeleteMarker: oi.IsDeleteMarker}
		if err := fn(ov); err != nil {
			stop()
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// Delete removes the object; S3 does not complain about missing ones.
func (s *S3) Delete(ctx context.Context, name string) error {
	if err := s3CheckName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("delete %s: %w", name, ctx.Err())
		}
		if isAccessDenied(err) {
			return fmt.Errorf("delete %s: %w", name, permanent(ErrDeleteDenied))
		}
		err = mapS3Error(err)
		if errors.Is(err, ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// Purge removes every version and delete marker of name whose retention
// has ended (or that has none), and returns the latest retention end of
// the versions it had to leave. In a bucket without versioning it is
// Delete.
func (s *S3) Purge(ctx context.Context, name string) (time.Time, error) {
	if err := s3CheckName(name); err != nil {
		return time.Time{}, fmt.Errorf("purge: %w", err)
	}
	var vs []ObjectVersion
	err := s.list(ctx, name, true, func(ov ObjectVersion) error {
		if ov.Name == name {
			vs = append(vs, ov)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("purge %s: %w", name, err)
	}
	var until time.Time
	now := time.Now()
	for _, v := range vs {
		if v.VersionID == "" || v.VersionID == "null" {
			if err := s.Delete(ctx, name); err != nil {
				return until, err
			}
			continue
		}
		if !v.DeleteMarker {
			// The retention as HEAD reports it (GetObjectRetention's XML
			// differs between servers).
			oi, err := s.stat(ctx, name, v.VersionID)
			if err != nil && !errors.Is(mapS3Error(err), ErrNotExist) {
				return until, fmt.Errorf("purge %s: %w", name, mapS3Error(err))
			}
			if ru, perr := time.Parse(time.RFC3339, oi.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")); err == nil && perr == nil && ru.After(now) {
				if ru.After(until) {
					until = ru
				}
				continue // locked: never try to delete it
			}
		}
		err := s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{VersionID: v.VersionID})
		if err != nil {
			if ctx.Err() != nil {
				return until, fmt.Errorf("purge %s: %w", name, ctx.Err())
			}
			if isAccessDenied(err) {
				return until, fmt.Errorf("purge %s: %w", name, permanent(ErrDeleteDenied))
			}
			if err = mapS3Error(err); !errors.Is(err, ErrNotExist) {
				return until, fmt.Errorf("purge %s: %w", name, err)
			}
		}
	}
	return until, nil
}

// Versioning reports whether the bucket keeps versions (versioning enabled
// or suspended: either way it may hold earlier versions).
func (s *S3) Versioning(ctx context.Context) (bool, error) {
	vc, err := s.client.GetBucketVersioning(ctx, s.bucket)
	if err != nil {
		return false, fmt.Errorf("s3 bucket %q versioning: %w", s.bucket, mapS3Error(err))
	}
	return vc.Enabled() || vc.Suspended(), nil
}

// ObjectLockEnabled reports whether the bucket has object lock enabled.
func (s *S3) ObjectLockEnabled(ctx context.Context) (bool, error) {
	status, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.bucket)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.Code == "ObjectLockConfigurationNotFoundError" || er.Code == "ObjectLockConfigurationNotFound") {
			return false, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, fmt.Errorf("s3 bucket %q object lock configuration: %w", s.bucket, mapS3Error(err))
	}
	return status == "Enabled", nil
}

// CleanStale aborts the incomplete multipart uploads under the store's
// prefix that started more than olderThan ago: what a killed process left.
func (s *S3) CleanStale(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	var stale []minio.ObjectMultipartInfo
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, s.prefix, true) {
		if u.Err != nil {
			return 0, fmt.Errorf("list incomplete uploads: %w", mapS3Error(u.Err))
		}
		if u.Initiated.Before(cutoff) && strings.HasPrefix(u.Key, s.prefix) {
			stale = append(stale, u)
		}
	}
	core := minio.Core{Client: s.client}
	n := 0
	for _, u := range stale {
		if err := core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err != nil {
			if errors.Is(mapS3Error(err), ErrNotExist) {
				continue // finished or aborted meanwhile
			}
			return n, fmt.Errorf("abort upload of %s: %w", strings.TrimPrefix(u.Key, s.prefix), mapS3Error(err))
		}
		n++
	}
	return n, nil
}

// ParseS3URL splits "s3://bucket/prefix" into its bucket and prefix (without
// leading or trailing slashes). Credentials in the URL are refused.
func ParseS3URL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", fmt.Errorf("s3 url: want s3://bucket/prefix")
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		// Do not echo the URL: it holds credentials.
		return "", "", errors.New("s3 url: credentials are not allowed in the url; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if bucket == "" {
		return "", "", fmt.Errorf("s3 url %q: no bucket", u)
	}
	if strings.ContainsAny(bucket, "?#:") || strings.ContainsAny(prefix, "?#") {
		return "", "", fmt.Errorf("s3 url %q: want s3://bucket/prefix", u)
	}
	return bucket, strings.Trim(prefix, "/"), nil
}

// mapS3Error turns S3 error responses into the package's errors: missing
// keys into ErrNotExist, failed preconditions into ErrExists, a missing
// bucket into ErrBucketNotFound, and client errors into permanent ones.
func mapS3Error(err error) error {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return err
	}
	switch {
	case er.Code == "NoSuchBucket":
		return fmt.Errorf("%w: %v", ErrBucketNotFound, err)
	case er.Code == "NoSuchKey" || er.Code == "NotFound" || er.StatusCode == http.StatusNotFound:
		return ErrNotExist
	case er.Code == "PreconditionFailed" || er.StatusCode == http.StatusPreconditionFailed:
		return ErrExists
	case er.StatusCode == http.StatusRequestTimeout, er.StatusCode == http.StatusConflict,
		er.StatusCode == http.StatusTooManyRequests, er.StatusCode >= 500:
		return err
	case er.StatusCode >= 400:
		return permanent(err)
	}
	return err
}

func isAccessDenied(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.StatusCode == http.StatusForbidden || er.Code == "AccessDenied")
}

func isNoSuchBucket(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && er.Code == "NoSuchBucket"
}

// isNetError reports whether err comes from the network rather than from an
// S3 response.
func isNetError(err error) bool {
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.As(err, &oe)
}
