package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/storage"
)

// ErrNoObjectLock is wrapped when a repository asks for object lock where
// objects cannot be locked.
var ErrNoObjectLock = errors.New("object lock is not available")

// InitOption tunes Init.
type InitOption func(*Config)

// WithChunker makes Init record algorithm (ChunkerRabin or ChunkerGear)
// instead of ChunkerGear, with the default sizes.
func WithChunker(algorithm string) InitOption {
	return func(c *Config) { c.Chunker.Algorithm = algorithm }
}

// WithObjectLock makes Init check that the store can lock objects, record
// lock in the config, and write every object of the repository (the
// config and secrets included) with that retention.
func WithObjectLock(lock ObjectLock) InitOption {
	return func(c *Config) { c.ObjectLock = &lock }
}

// CheckObjectLock checks that lock is valid and that st locks objects: an
// S3 bucket with object lock enabled. A local folder, or a bucket without
// object lock, is an error wrapping ErrNoObjectLock.
func CheckObjectLock(ctx context.Context, st storage.Store, lock *ObjectLock) error {
	if err := lock.Validate(); err != nil {
		return err
	}
	l, ok := storage.As[storage.Locker](st)
	if !ok {
		return fmt.Errorf("%w at %s: object lock needs an S3 bucket with object lock enabled, and this store cannot lock objects", ErrNoObjectLock, st.Location())
	}
	on, err := l.ObjectLockEnabled(ctx)
	if err != nil {
		return fmt.Errorf("check object lock at %s: %w", st.Location(), err)
	}
	if !on {
		return fmt.Errorf("%w at %s: the bucket does not have object lock enabled (create it with object lock, or enable object lock and versioning on it)", ErrNoObjectLock, st.Location())
	}
	return nil
}

// locked returns st writing every object with cfg's object lock, or st
// itself when the repository has none.
func locked(st storage.Store, cfg *Config) storage.Store {
	if cfg.ObjectLock == nil {
		return st
	}
	return storage.WithRetention(st, storage.LockMode(cfg.ObjectLock.Mode), cfg.ObjectLock.Days)
}
