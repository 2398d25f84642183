package doctor

import (
	"context"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// TestClockPrivateCA: an S3 server whose certificate a private CA signed
// (s3.ca_file) is asked its time over TLS verified with that CA, as the
// repository is: the check is OK, not "cannot ask the S3 server".
func TestClockPrivateCA(t *testing.T) {
	caFile, certFile, keyFile := testutil.NewCA(t)
	s3 := testutil.StartS3TLS(t, caFile, certFile, keyFile)
	r := checkClock(context.Background(), Options{Now: time.Now}, s3)
	if r.Status != OK {
		t.Fatalf("clock against an S3 server with a private CA: %s %s", r.Status, r.Message)
	}
}
